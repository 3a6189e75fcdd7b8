#!/usr/bin/env python3
"""Medians of benches/headline.sh's runs: python3 benches/headline-summary.py OUT_DIR"""
import glob
import json
import os
import statistics
import sys

out = sys.argv[1]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def get(v, *keys):
    for k in keys:
        if not isinstance(v, dict) or k not in v:
            return None
        v = v[k]
    return v


FIGURES = {
    "C": ("1:1 TCP, 2,000 msgs/s: deliver p50 / p99 ms, µs CPU/msg",
          lambda j: (get(j, "latency", "send_to_deliver", "p50_ms"),
                     get(j, "latency", "send_to_deliver", "p99_ms"),
                     get(j, "cpu", "server_cpu_us_per_unit"))),
    "A": ("1:1 TCP, window 32: msgs/s, µs CPU/msg",
          lambda j: (get(j, "throughput", "delivered_per_s"), get(j, "cpu", "server_cpu_us_per_unit"))),
    "B": ("1:1 TLS, window 32: msgs/s, µs CPU/msg",
          lambda j: (get(j, "throughput", "delivered_per_s"), get(j, "cpu", "server_cpu_us_per_unit"))),
    "G": ("fan-out, 1,000 members, 10 senders: deliveries/s, µs CPU/delivery",
          lambda j: (get(j, "throughput", "deliveries_per_s"), get(j, "cpu", "server_cpu_us_per_unit"))),
    "I": ("idle TCP, 2,000: KiB per connection cold / warm",
          lambda j: (find(j, "kib_per_connection"), find(j, "kib_per_connection_warm"))),
}


def find(j, key):
    """The first value of `key` anywhere in `j` (the idle report nests its memory figures)."""
    if isinstance(j, dict):
        if key in j:
            return j[key]
        for v in j.values():
            r = find(v, key)
            if r is not None:
                return r
    elif isinstance(j, list):
        for v in j:
            r = find(v, key)
            if r is not None:
                return r
    return None


def fmt(x):
    if x is None:
        return "-"
    if isinstance(x, float) and x >= 1000:
        return f"{x:,.0f}"
    return f"{x:g}" if isinstance(x, float) else str(x)


for probe in ("start", "end"):
    j = load(os.path.join(out, f"probe-{probe}.json"))
    if j:
        a, o = j.get("append_fdatasync", {}), j.get("overwrite_fdatasync", {})
        print(f"fsync probe ({probe}): append p50 {a.get('p50_ms')} / p99 {a.get('p99_ms')} ms; "
              f"overwrite p50 {o.get('p50_ms')} / p99 {o.get('p99_ms')} ms")

print("| figure | prev | new |")
print("|---|---|---|")
for f, (label, pick) in FIGURES.items():
    cells = []
    for b in ("prev", "new"):
        runs = []
        for path in sorted(glob.glob(os.path.join(out, f"{f}-{b}-*.json"))):
            j = load(path)
            if j is None:
                runs.append(None)
                continue
            runs.append(pick(j))
            if not j.get("ok", False):
                print(f"!! {os.path.basename(path)}: ok is false", file=sys.stderr)
        good = [r for r in runs if r and all(v is not None for v in r)]
        if not good:
            cells.append("-")
            continue
        meds = [statistics.median(r[i] for r in good) for i in range(len(good[0]))]
        first = " [" + ", ".join(fmt(r[0]) for r in good) + "]"
        if f == "C":
            p99s = " [p99 " + ", ".join(fmt(r[1]) for r in good) + "]"
            cells.append(f"{fmt(meds[0])} / {fmt(meds[1])} ms{p99s}, {fmt(meds[2])} µs")
        elif f == "I":
            cells.append(f"{fmt(meds[0])} / {fmt(meds[1])}")
        else:
            cells.append(f"{fmt(meds[0])}{first} at {fmt(meds[1])} µs")
    print(f"| [{f}] {label} | {cells[0]} | {cells[1]} |")
