#!/usr/bin/env python3
"""Before/after comparison of two broker builds on this machine: the same client binary (the
"after" one) drives both brokers, in alternating order round after round, so that only the
broker differs and drift of the machine favours neither. Prints each scenario's min / median /
max per arm and the ratio of the medians; raw numbers go to a JSON file.

    git worktree add /tmp/before <commit>
    (cd /tmp/before && CARGO_TARGET_DIR=~/.cache/strata-before cargo build --release)
    cargo build --release
    python3 bench/compare.py --before ~/.cache/strata-before/release/strata \
        --after target/release/strata --rounds 6 lat240k,lat120k,pc,p100,disk,disk-one,pmem-one

Scenarios: lat240k / lat120k (end-to-end latency at a fixed rate, as bench/run.py's latency),
pc (producer-perf then consumer-perf of 1 M 1 KiB records, with broker CPU per GB), p100 (8
producer clients on 100 partitions), disk / disk-one / pmem-one (tier-sync's durable layouts).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--before", required=True, help="the baseline broker binary")
parser.add_argument("--after", required=True, help="the broker binary to compare (also the client)")
parser.add_argument("--rounds", type=int, default=6)
parser.add_argument("--json", default="compare.json", help="where the raw numbers go")
parser.add_argument("scenarios", help="comma-separated scenario names")
opts = parser.parse_args()
NEW, BASE = os.path.abspath(os.path.expanduser(opts.after)), os.path.abspath(os.path.expanduser(opts.before))
CLIENT = NEW
scenarios = opts.scenarios.split(",")
rounds = opts.rounds
outpath = opts.json
out = {}
os.makedirs(run.DATA_ROOT, exist_ok=True)

def broker(binary, overrides, kind=None):
    run.STRATA = binary
    try:
        b = run.tier_broker(kind, None, first_bytes=1 << 30, extra=overrides) if kind else run.Broker(overrides)
    finally:
        run.STRATA = CLIENT
    return b

def latency(binary, rate):
    b = broker(binary, [])
    try:
        run.create_topic(b, "e2e", 1)
        records = min(1_000_000, rate * 20)
        path = os.path.join(b.dir, "e2e.json")
        consumer = subprocess.Popen([CLIENT, "bench", "--bootstrap-server", b.addr, "--type", "consumer", "--threads", "1",
             "--shared-topic", "e2e", "--num-records", str(records), "--record-size", "1024",
             "--json", path, "--consumer-props", "fetch.wait.max.ms=10"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2)
        c0 = b.cpu_seconds()
        run.producer_perf(b, "e2e", records, 1024, run.PRODUCER_PROPS, throughput=rate)
        consumer.wait(timeout=600)
        d = json.load(open(path))
        lat = d["aggregate"]["latency_ms"]
        return {"p50": lat["p50"], "p99": lat["p99"], "cpu": b.cpu_seconds() - c0}
    finally:
        b.stop()

def partitions100(binary):
    b = broker(binary, [])
    try:
        run.create_topic(b, "p100", 100)
        c0 = b.cpu_seconds()
        d = run.bench(b, ["--type", "producer", "--threads", "8", "--shared-topic", "p100", "--num-records",
                          "1000000", "--record-size", "1024", "--producer-props"] + run.PRODUCER_PROPS)
        return {"mb_s": d["aggregate"]["mb_per_s"], "cpu": b.cpu_seconds() - c0}
    finally:
        b.stop()

def durable(binary, kind, records, props):
    b = broker(binary, ["log.flush.interval.messages=1", run.SEGMENT_64M], kind)
    try:
        run.create_topic(b, "durable", 1)
        c0 = b.cpu_seconds()
        r = run.producer_perf(b, "durable", records, 1024, props)
        return {"rec_s": r["records_per_s"], "cpu": b.cpu_seconds() - c0}
    finally:
        b.stop()

def produce_consume(binary):
    b = broker(binary, [])
    try:
        run.create_topic(b, "p1", 1)
        c0 = b.cpu_seconds()
        r = run.producer_perf(b, "p1", 1_000_000, 1024, run.PRODUCER_PROPS)
        c1 = b.cpu_seconds()
        c = run.consumer_perf(b, "p1", 1_000_000)
        c2 = b.cpu_seconds()
        gb = 1_000_000 * 1024 / 1e9
        return {"produce_mb_s": r["mb_per_s"], "consume_mb_s": c["mb_per_s"], "cpu_gb_produced": (c1 - c0) / gb, "cpu_gb_consumed": (c2 - c1) / gb}
    finally:
        b.stop()

RUNNERS = {
    "lat240k": lambda bin: latency(bin, 240000),
    "lat120k": lambda bin: latency(bin, 120000),
    "p100": partitions100,
    "disk": lambda bin: durable(bin, "file", 200_000, run.SYNC_PROPS),
    "disk-one": lambda bin: durable(bin, "file", 20_000, run.SYNC_ONE_PROPS),
    "pmem-one": lambda bin: durable(bin, "pmem", 20_000, run.SYNC_ONE_PROPS),
    "pc": produce_consume,
}
for r in range(rounds):
    arms = [("base", BASE), ("new", NEW)] if r % 2 == 0 else [("new", NEW), ("base", BASE)]
    for sc in scenarios:
        for arm, b in arms:
            res = RUNNERS[sc](b)
            out.setdefault(sc, {}).setdefault(arm, []).append(res)
            run.log(f"round {r} {sc} {arm}: {res}")
            json.dump(out, open(outpath, "w"), indent=1)
print("SUMMARY")
for sc, arms in out.items():
    for key in arms["base"][0]:
        b = sorted(x[key] for x in arms["base"]); n = sorted(x[key] for x in arms.get("new", []))
        if not n: continue
        print(f"{sc:10} {key:16} base {b[0]:.2f}/{statistics.median(b):.2f}/{b[-1]:.2f}  new {n[0]:.2f}/{statistics.median(n):.2f}/{n[-1]:.2f}  ratio {statistics.median(n)/statistics.median(b):.3f}")
