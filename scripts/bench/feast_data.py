"""Writes generated_data.parquet for Feast: one row per entity 0..9999 with
event_timestamp a minute ago and feature_f = Value(entity, f), the formula of
loadtest/workload.go (so Feast, Redis and featured serve the same numbers).
Usage: python feast_data.py OUT.parquet"""

import datetime
import sys

import numpy as np
import pandas as pd

KEYSPACE, FEATURES = 10_000, 250


def main(out):
    e = np.arange(KEYSPACE, dtype=np.int64)
    cols = {"entity": e}
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=1)
    cols["event_timestamp"] = pd.Series([now] * KEYSPACE, dtype="datetime64[us, UTC]")
    for f in range(FEATURES):
        cols[f"feature_{f}"] = 1 + (e * 7919 + f * 104729) % 10007
    pd.DataFrame(cols).to_parquet(out, index=False)


if __name__ == "__main__":
    main(sys.argv[1])
