#!/usr/bin/env python3
"""Transactions benchmarks, recorded in docs/BENCHMARKS.md ("Transactions"):

- the transactional producer (1 KiB records, 10,000 and 100 records per transaction) against the
  idempotent producer without transactions, on one broker, the three alternating, fresh topics;
- a read_committed consumer against a read_uncommitted one over the same transactional log;
- the coordinator's reload after 100,000 transactions (the ignored test
  reload_time_after_100k_transactions, release build).

Each reports min / median / max of STRATA_BENCH_RUNS runs (3), with the broker's CPU seconds per
GB next to throughput.

    python3 bench/transactions.py              # all of it
    python3 bench/transactions.py produce consume
    STRATA_BENCH_SCALE=0.1 python3 bench/transactions.py produce   # a quick pass
"""
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the driver's broker, tools and report helpers)

RECORD = 1024
PRODUCERS = [
    ("idempotent, no transactions", []),
    ("transactional, 10,000 per transaction", ["--transactional-id", "bench-tx", "--transaction-records", "10000"]),
    ("transactional, 100 per transaction", ["--transactional-id", "bench-tx", "--transaction-records", "100"]),
]
PROPS = ["acks=all", "enable.idempotence=true", "linger.ms=5"]


def measured(broker, records, what, tool):
    """Runs `tool()` and adds the broker's CPU seconds per GB moved to its numbers."""
    cpu = broker.cpu_seconds()
    r = tool()
    r["broker_cpu_s_per_gb"] = (broker.cpu_seconds() - cpu) / (records * RECORD / 1e9)
    run.log(f"{what}: {r['records_per_s']:.0f} rec/s, {r['broker_cpu_s_per_gb']:.2f} s/GB")
    return r


def produce(report):
    records = run.n(200_000)
    broker = run.Broker([])
    try:
        # Warm-up: the first transactional producer creates __transaction_state (50 partitions);
        # that one-time cost is not what the rows compare.
        run.create_topic(broker, "warm-up", 1)
        run.producer_perf(broker, "warm-up", 1000, RECORD, PROPS,
                          extra=["--transactional-id", "bench-tx", "--transaction-records", "100"])
        results = {name: [] for name, _ in PRODUCERS}
        for i in range(run.RUNS):
            for j, (name, extra) in enumerate(PRODUCERS):
                topic = f"p{i}-{j}"
                run.create_topic(broker, topic, 1)
                results[name].append(measured(broker, records, name, lambda: run.producer_perf(
                    broker, topic, records, RECORD, PROPS, extra=extra)))
    finally:
        broker.stop()
    report["produce"] = {"records": records, "results": results}


def consume(report):
    records = run.n(200_000)
    broker = run.Broker([])
    try:
        run.create_topic(broker, "c", 1)
        run.producer_perf(broker, "c", records, RECORD, PROPS,
                          extra=["--transactional-id", "bench-c", "--transaction-records", "1000"])
        results = {"read_uncommitted": [], "read_committed": []}
        for i in range(run.RUNS):
            for isolation in results:
                with tempfile.NamedTemporaryFile("w", suffix=".properties", delete=False) as f:
                    f.write(f"isolation.level={isolation}\n")
                results[isolation].append(measured(broker, records, isolation, lambda: run.consumer_perf(
                    broker, "c", records, extra=["--consumer.config", f.name])))
                os.unlink(f.name)
    finally:
        broker.stop()
    report["consume"] = {"records": records, "results": results}


def reload(report):
    runs = []
    for i in range(run.RUNS):
        run.log(f"reload run {i + 1}")
        out = subprocess.run(["cargo", "test", "--release", "--quiet", "-p", "strata", "--test", "transactions", "--",
                              "--ignored", "--exact", "reload_time_after_100k_transactions", "--nocapture"],
                             cwd=run.ROOT, capture_output=True, text=True, timeout=3600)
        if out.returncode != 0:
            raise RuntimeError(f"reload test failed: {out.stderr[-2000:]}{out.stdout[-2000:]}")
        for line in out.stdout.splitlines():
            m = re.match(r"TXN_RELOAD ids=(\d+) transactions=(\d+) state_records=(\d+) reload_us=(\d+) txn_s=([\d.]+)", line)
            if m:
                runs.append({"ids": int(m.group(1)), "transactions": int(m.group(2)), "records": int(m.group(3)),
                             "reload_us": int(m.group(4)), "txn_s": float(m.group(5))})
    report["reload"] = runs


def render(report):
    rows = []
    if "produce" in report:
        p = report["produce"]
        base = run.statistics.median(r["records_per_s"] for r in p["results"][PRODUCERS[0][0]])
        rows += [f"Producer: `strata producer-perf --num-records {p['records']} --record-size {RECORD} --throughput -1 "
                 f"--producer-props {' '.join(PROPS)} [--transactional-id bench-tx --transaction-records N]`, one broker, "
                 "the three alternating on fresh one-partition topics.", "",
                 "| producer | records/s, min / **median** / max | of the idempotent producer | p99 latency (median) | broker CPU s/GB (median) |",
                 "|---|---|---|---|---|"]
        for name, _ in PRODUCERS:
            rs = p["results"][name]
            lo, mid, hi = run.mmm([r["records_per_s"] for r in rs])
            rows.append(f"| {name} | {lo:,.0f} / **{mid:,.0f}** / {hi:,.0f} | {mid / base:.0%} | "
                        f"{run.statistics.median(r['p99_ms'] for r in rs):.0f} ms | "
                        f"{run.statistics.median(r['broker_cpu_s_per_gb'] for r in rs):.2f} |")
        rows.append("")
    if "consume" in report:
        c = report["consume"]
        base = run.statistics.median(r["mb_per_s"] for r in c["results"]["read_uncommitted"])
        rows += [f"Consumer: `strata consumer-perf --messages {c['records']} --consumer.config F` (F sets "
                 "`isolation.level`), the two alternating over the same log, written by a transactional producer "
                 "(1,000 records per transaction: markers among the records).", "",
                 "| isolation | MB/s, min / **median** / max | of read_uncommitted | broker CPU s/GB (median) |",
                 "|---|---|---|---|"]
        for isolation in ("read_uncommitted", "read_committed"):
            rs = c["results"][isolation]
            lo, mid, hi = run.mmm([r["mb_per_s"] for r in rs])
            rows.append(f"| {isolation} | {lo:.1f} / **{mid:.1f}** / {hi:.1f} | {mid / base:.0%} | "
                        f"{run.statistics.median(r['broker_cpu_s_per_gb'] for r in rs):.2f} |")
        rows.append("")
    if report.get("reload"):
        rows += ["Coordinator reload: `cargo test --release -p strata --test transactions -- --ignored "
                 "reload_time_after_100k_transactions` (100,000 committed transactions, one at a time, then a "
                 "clean restart; the reload is the broker's logged `transaction state loaded` time).", "",
                 "| transactional ids | transactions | records the reload read from `__transaction_state` | reload, min / **median** / max | running them took (median) |",
                 "|---|---|---|---|---|"]
        for ids in sorted({r["ids"] for r in report["reload"]}):
            rs = [r for r in report["reload"] if r["ids"] == ids]
            lo, mid, hi = run.mmm([r["reload_us"] / 1000 for r in rs])
            rows.append(f"| {ids:,} | {rs[0]['transactions']:,} | {run.statistics.median(r['records'] for r in rs):,.0f} | "
                        f"{lo:.1f} / **{mid:.1f}** / {hi:.1f} ms | {run.statistics.median(r['txn_s'] for r in rs):.0f} s |")
    run.write_block("transactions", f"_Run on {time.strftime('%Y-%m-%d')}, {run.RUNS} runs, record counts x{run.SCALE}, "
                    f"`python3 bench/transactions.py`._ Machine: {run.machine()}.\n\n" + "\n".join(rows),
                    "## Transactions")


PARTS = {"produce": produce, "consume": consume, "reload": reload}


def main():
    run.run_parts(PARTS, render, "transactions")


if __name__ == "__main__":
    main()
