# The Feast definitions TestImportFeast applies with `feast apply` and imports
# with `featured import feast`: what maps (an entity, a push source, a Kafka
# source, a stream feature view with aggregations, plain feature views on
# both, feature services) and what does not (an on-demand feature view, a
# view over a batch-only source, an unsupported aggregation).
from datetime import timedelta

import pandas as pd

from feast import (
    Entity,
    FeatureService,
    FeatureView,
    Field,
    FileSource,
    KafkaSource,
    PushSource,
    RequestSource,
    ValueType,
)
from feast.aggregation import Aggregation
from feast.data_format import JsonFormat
from feast.on_demand_feature_view import on_demand_feature_view
from feast.stream_feature_view import StreamFeatureView
from feast.types import Float64, Int64, String

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)

driver_stats_file = FileSource(
    name="driver_stats_file",
    path="data/driver_stats.parquet",
    timestamp_field="event_timestamp",
)
driver_stats_push = PushSource(name="driver_stats_push", batch_source=driver_stats_file)

driver_hourly_stats = FeatureView(
    name="driver_hourly_stats",
    entities=[driver],
    ttl=timedelta(days=1),
    schema=[
        Field(name="conv_rate", dtype=Float64),
        Field(name="acc_rate", dtype=Float64),
        Field(name="avg_daily_trips", dtype=Int64),
        Field(name="city", dtype=String),
    ],
    source=driver_stats_push,
)

trips_file = FileSource(
    name="trips_file",
    path="data/trips.parquet",
    timestamp_field="event_timestamp",
)
driver_trips_kafka = KafkaSource(
    name="driver_trips_kafka",
    kafka_bootstrap_servers="localhost:9092",
    topic="driver_trips",
    timestamp_field="event_timestamp",
    batch_source=trips_file,
    message_format=JsonFormat(schema_json="driver_id integer, trip_km double, event_timestamp timestamp"),
    watermark_delay_threshold=timedelta(minutes=5),
)

driver_trips = StreamFeatureView(
    name="driver_trips",
    source=driver_trips_kafka,
    entities=[driver],
    ttl=timedelta(days=7),
    schema=[Field(name="trip_km", dtype=Float64)],
    aggregations=[
        Aggregation(column="trip_km", function="sum", time_window=timedelta(hours=1)),
        Aggregation(column="trip_km", function="count", time_window=timedelta(days=1), slide_interval=timedelta(hours=1)),
        Aggregation(column="trip_km", function="mean", time_window=timedelta(hours=1), name="avg_trip_km_1h"),
        Aggregation(column="trip_km", function="max", time_window=timedelta(days=7), slide_interval=timedelta(days=1)),
        Aggregation(column="trip_km", function="median", time_window=timedelta(hours=1)),
    ],
    timestamp_field="event_timestamp",
)

# Only a batch source: featured has nothing to ingest it from.
driver_profile = FeatureView(
    name="driver_profile",
    entities=[driver],
    ttl=timedelta(days=30),
    schema=[Field(name="rating", dtype=Float64)],
    source=FileSource(name="driver_profile_file", path="data/driver_profile.parquet", timestamp_field="event_timestamp"),
)

val_to_add = RequestSource(name="val_to_add", schema=[Field(name="val_to_add", dtype=Int64)])


@on_demand_feature_view(
    sources=[driver_hourly_stats, val_to_add],
    schema=[Field(name="conv_rate_plus_val", dtype=Float64)],
)
def transformed_conv_rate(inputs: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame()
    out["conv_rate_plus_val"] = inputs["conv_rate"] + inputs["val_to_add"]
    return out


driver_activity = FeatureService(
    name="driver_activity",
    features=[driver_hourly_stats[["conv_rate", "avg_daily_trips"]]],
)
driver_model = FeatureService(
    name="driver_model",
    features=[driver_hourly_stats, driver_trips],
)
