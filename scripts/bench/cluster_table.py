#!/usr/bin/env python3
"""Markdown table of scripts/bench/cluster.sh's results: per workload and
target, single node against the 3-node cluster, medians over the rounds with
their range, and the ratio of the medians."""
import glob
import json
import os
import statistics
import sys
from collections import defaultdict

out = sys.argv[1]
runs = defaultdict(list)  # (target, workload, label) -> results
for path in sorted(glob.glob(os.path.join(out, "*.json"))):
    if path.endswith("cluster-status.json"):
        continue
    r = json.load(open(path))
    w = r["workload"]
    name = f"push {w['push_events']} events" if r["target"] == "push" else f"{w['entities']}x{w['features']}"
    runs[(r["target"], name, r["label"])].append(r)


def rate(r):
    return r["events_per_s"] if r["target"] == "push" else r["throughput_rps"]


def cell(rs, f, fmt):
    v = [f(r) for r in rs]
    m = statistics.median(v)
    if len(v) == 1:
        return m, fmt.format(m)
    return m, f"{fmt.format(m)} ({fmt.format(min(v))} to {fmt.format(max(v))})"


print("| workload | target | | 1 node | 3 nodes | 3 / 1 |")
print("| --- | --- | --- | ---: | ---: | ---: |")
keys = sorted({(t, n) for t, n, _ in runs}, key=lambda k: (k[0] == "push", k[1] != "1x50", k[1], k[0]))
for target, name in keys:
    one, three = runs.get((target, name, "single"), []), runs.get((target, name, "cluster"), [])
    if not one or not three:
        continue
    unit = "events/s" if target == "push" else "req/s"
    rows = [
        (unit, rate, "{:,.0f}"),
        ("p50 ms", lambda r: r["latency_us"]["p50"] / 1000, "{:.2f}"),
        ("p99 ms", lambda r: r["latency_us"]["p99"] / 1000, "{:.2f}"),
        ("server CPU µs/req", lambda r: (r.get("server_cpu") or {}).get("us_per_request", 0), "{:,.0f}"),
        ("errors", lambda r: r["errors"], "{:.0f}"),
    ]
    for i, (what, f, fmt) in enumerate(rows):
        m1, c1 = cell(one, f, fmt)
        m3, c3 = cell(three, f, fmt)
        ratio = f"**{m3 / m1:.2f}x**" if i == 0 and m1 else (f"{m3 / m1:.2f}x" if m1 else "")
        label = (name, target, len(one)) if i == 0 else ("", "", "")
        print(f"| {label[0]} | {label[1]} | {what} | {c1} | {c3} | {ratio} |")

fw = os.path.join(out, "forwarded.txt")
if os.path.exists(fw):
    print()
    print("Rows forwarded by the cluster (featured_cluster_forwarded_rows_total over the 3 nodes, against")
    print("the rows sent, estimated as the measured rate x (warm-up + duration) x entities):")
    print()
    for line in open(fw):
        target, name, rnd, fwd = line.split()
        path = os.path.join(out, f"cluster-{target}-{name}-r{rnd}.json")
        if not os.path.exists(path):
            continue
        r = json.load(open(path))
        sent = r["throughput_rps"] * (r["warmup_s"] + r["duration_s"]) * r["workload"]["entities"]
        print(f"- {target} {name} round {rnd}: {int(fwd):,} of ~{sent:,.0f} rows forwarded ({int(fwd) / sent:.0%})")
