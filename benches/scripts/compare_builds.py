#!/usr/bin/env python3
"""Alternating old/new comparison of two builds of the comparison program
(`cargo build --release -p shmring-benches` at two commits, binaries copied aside).

usage: compare_builds.py OLD_BINARY NEW_BINARY [ROUNDS]

Each round runs OLD then NEW (cross-process: busy-spin, cache-line, shmring-batch,
mpmc, bare-ring, 3 rounds each; in process: every contender, 3 rounds), then prints for
each figure the per-round NEW/OLD ratio of time per message (above 1: NEW slower),
the median and the spread.
"""
import json, re, statistics, subprocess, sys

old, new = sys.argv[1], sys.argv[2]
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5

def cross(binary):
    out = subprocess.run([binary, "--rounds", "3", "--only",
                          "busy-spin,cache-line,shmring-batch,mpmc,bare-ring", "--json"],
                         capture_output=True, text=True, check=True).stdout
    d = json.loads(out)
    fig = {}
    for r in d["records"]:
        key = f'{r["method"]} {r["metric"]}'
        fig[key] = r["value"]
    # Time-like: round trips in ns stay; throughputs become time per message.
    res = {}
    for k, v in fig.items():
        if v is None or v == 0:
            continue
        if "rtt_8B_p50" in k or "rtt_8B_batch_mean" in k:
            res[k] = v
        elif "tput_8B" in k or "bw_64KiB" in k:
            res[k + " (as time)"] = 1.0 / v
    lim = fig.get("cache-line rtt_8B_p50_ns")
    bs = fig.get("busy-spin rtt_8B_p50_ns")
    if lim and bs:
        res["busy-spin rtt / cache-line limit (same run)"] = bs / lim
    return res

def inproc(binary):
    out = subprocess.run([binary, "--in-process", "--rounds", "3"],
                         capture_output=True, text=True, check=True).stdout
    res = {}
    rows = {}
    for line in out.splitlines():
        m = re.match(r"^(\S.*?)\s{2,}([0-9.]+)\s+[0-9.]+\.\.[0-9.]+\s+[0-9.]+x$", line)
        if m:
            rows[m.group(1).strip()] = float(m.group(2))
    for k, v in rows.items():
        res["in-process " + k + " (as time)"] = 1.0 / v
    if "shmring batch =msgs" in rows and "rtrb chunks" in rows:
        res["in-process rtrb chunks / shmring batch (same run, time)"] = rows["rtrb chunks"] / rows["shmring batch =msgs"]
    if "shmring push/pop =msgs" in rows and "rtrb push/pop" in rows:
        res["in-process rtrb push/pop / shmring push/pop (same run, time)"] = rows["rtrb push/pop"] / rows["shmring push/pop =msgs"]
    return res

ratios = {}
same_run = {}
for i in range(rounds):
    o = {**cross(old), **inproc(old)}
    n = {**cross(new), **inproc(new)}
    for k in o:
        if k in n:
            ratios.setdefault(k, []).append(n[k] / o[k])
        if "same run" in k:
            same_run.setdefault(k, ([], []))[0].append(o[k])
    for k in n:
        if "same run" in k and k in same_run:
            same_run[k][1].append(n[k])
    print(f"round {i + 1}/{rounds} done", file=sys.stderr)

print(f"| figure (new / old; above 1 = new slower) | median | min..max | rounds |")
print("|---|---:|---|---:|")
for k, v in ratios.items():
    print(f"| {k} | {statistics.median(v):.3f} | {min(v):.3f}..{max(v):.3f} | {len(v)} |")
print()
print("| same-run ratio | old median (min..max) | new median (min..max) |")
print("|---|---|---|")
for k, (o, n) in same_run.items():
    print(f"| {k} | {statistics.median(o):.3f} ({min(o):.3f}..{max(o):.3f}) | {statistics.median(n):.3f} ({min(n):.3f}..{max(n):.3f}) |")
