"""The feast-benchmarks workload as Feast definitions (feast-dev/feast-benchmarks,
python/feature_repos/redis/example.py), unchanged but for the file path and the
current API names: int64 entity "entity", 25 views feature_view_0..24 of 10 int64
features (feature_{10v}..feature_{10v+9}), TTL 1 day, services feature_service_0..4
over the first 5/10/15/20/25 views. scripts/bench-peers.sh copies this directory
next to the generated Parquet file and runs `feast apply` there."""

import datetime
import os

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Int64

generated_data_source = FileSource(
    path=os.path.join(os.path.dirname(os.path.abspath(__file__)), "generated_data.parquet"),
    timestamp_field="event_timestamp",
)

entity = Entity(name="entity", join_keys=["entity"], value_type=ValueType.INT64)

feature_views = [
    FeatureView(
        name=f"feature_view_{i}",
        entities=[entity],
        ttl=datetime.timedelta(days=1),
        schema=[Field(name=f"feature_{10 * i + j}", dtype=Int64) for j in range(10)],
        online=True,
        source=generated_data_source,
    )
    for i in range(25)
]

feature_services = [
    FeatureService(name=f"feature_service_{i}", features=feature_views[: 5 * (i + 1)])
    for i in range(5)
]

for _i, _fv in enumerate(feature_views):
    globals()[f"feature_view_{_i}"] = _fv
for _i, _fs in enumerate(feature_services):
    globals()[f"feature_service_{_i}"] = _fs
