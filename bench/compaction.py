#!/usr/bin/env python3
"""Log compaction benchmarks, recorded in docs/BENCHMARKS.md ("Log compaction"):

- cleaner: how fast the cleaner compacts a dirty log (1 KiB records, 10% distinct keys), in MB
  of dirty log per second of cleaning, next to the data disk's sequential read and write speeds
  measured in the same run, and the broker's CPU seconds per GB cleaned;
- produce: producer-perf on a plain topic while the cleaner compacts another topic, against the
  same run with the cleaner idle (the two alternating);
- memory: the broker's peak RSS while it compacts a topic of 10 million distinct keys with the
  default dedupe buffer (128 MiB: several passes), against the goal of buffer + 64 MiB.

The dirty log is written while `min.compaction.lag.ms` holds the cleaner back; setting it to 0
(`strata configs --alter`) lets the cleaner start, and its work is read from the broker's
`log cleaned` lines. Min / median / max of STRATA_BENCH_RUNS runs (3).

    python3 bench/compaction.py                 # all of it
    python3 bench/compaction.py cleaner produce
    STRATA_BENCH_SCALE=0.1 python3 bench/compaction.py   # a quick pass
"""
import calendar
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402

RECORD = 1024
PROPS = ["acks=1", "linger.ms=5", "batch.size=1048576"]
HOLD = "min.compaction.lag.ms=86400000"
BROKER = ["log.cleaner.backoff.ms=200"]
CLEANED = re.compile(r"^(\S+)Z .*log cleaned topic=(\S+) partition=(\d+) read=(\d+) written=(\d+) "
                     r"removed=(\d+) up_to=(\d+) millis=(\d+)", re.M)


def segment_size(records, size, segment_bytes=64 << 20):
    """At most `segment_bytes`, and smaller for a small log so that it still spans about 16
    segments (only sealed ones are cleaned)."""
    return max(1 << 20, min(segment_bytes, records * size // 16))


def fill(broker, topic, records, size, keys, segment_bytes=64 << 20):
    """A compacted topic of `records` records over `keys` keys, held back from the cleaner."""
    segment_bytes = segment_size(records, size, segment_bytes)
    run.create_topic(broker, topic, 1, ["cleanup.policy=compact", f"segment.bytes={segment_bytes}", HOLD,
                                        "min.cleanable.dirty.ratio=0.01"])
    run.run_tool(["producer-perf", "--topic", topic, "--num-records", str(records), "--record-size", str(size),
                  "--throughput", "-1", "--bootstrap-server", broker.addr, "--key-count", str(keys),
                  "--producer-props"] + PROPS, broker)
    part = os.path.join(broker.dir, f"{topic}-0")
    logs = sorted(f for f in os.listdir(part) if f.endswith(".log"))
    # The active segment is never cleaned: the dirty log is the sealed ones.
    return sum(os.path.getsize(os.path.join(part, f)) for f in logs[:-1])


def release(broker, topic):
    run.run_tool(["configs", "--bootstrap-server", broker.addr, "--alter", "--entity-type", "topics",
                  "--entity-name", topic, "--add-config", "min.compaction.lag.ms=0"])


def passes(broker, topic):
    with open(os.path.join(broker.dir, "broker.log")) as f:
        found = []
        for m in CLEANED.finditer(f.read()):
            if m.group(2) != topic:
                continue
            p = dict(zip(("read", "written", "removed", "up_to", "millis"), map(int, m.groups()[3:])))
            # When the pass ended, in seconds since the epoch (the broker logs UTC).
            p["end_s"] = calendar.timegm(time.strptime(m.group(1).split(".")[0], "%Y-%m-%dT%H:%M:%S")) + \
                float("0." + m.group(1).split(".")[1])
            found.append(p)
        return found


def cleaner_cpu_ticks(broker):
    """CPU time the broker's cleaner threads have used, in clock ticks."""
    total = 0
    task_dir = f"/proc/{broker.proc.pid}/task"
    for task in os.listdir(task_dir):
        try:
            with open(f"{task_dir}/{task}/stat") as f:
                stat = f.read()
        except FileNotFoundError:
            continue
        name, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if name.startswith("log-cleaner"):
            total += int(rest[11]) + int(rest[12])
    return total


def wait_cleaned(broker, topic, until, timeout=1800, sample=None):
    """Waits until the cleaner's passes over `topic` reach offset `until`; returns them."""
    if until <= 0:
        raise RuntimeError(f"{topic} has no sealed segment to clean")
    deadline = time.time() + timeout
    while time.time() < deadline:
        if sample:
            sample()
        ps = passes(broker, topic)
        if ps and ps[-1]["up_to"] >= until:
            return ps
        time.sleep(0.05)
    raise RuntimeError(f"the cleaner did not reach {until} of {topic}: {passes(broker, topic)}")


def active_base(broker, topic):
    part = os.path.join(broker.dir, f"{topic}-0")
    return int(sorted(f for f in os.listdir(part) if f.endswith(".log"))[-1].split(".")[0])


def cleaner(report):
    records = run.n(1_000_000)
    runs = []
    for i in range(run.RUNS):
        broker = run.Broker(BROKER)
        try:
            dirty = fill(broker, "c", records, RECORD, records // 10)
            end = active_base(broker, "c")
            cpu, wall = broker.cpu_seconds(), time.time()
            release(broker, "c")
            ps = wait_cleaned(broker, "c", end)
            cpu = broker.cpu_seconds() - cpu
            millis = sum(p["millis"] for p in ps)
            r = {"dirty_bytes": dirty, "millis": millis, "passes": len(ps), "wall_s": time.time() - wall,
                 "written": sum(p["written"] for p in ps), "removed": sum(p["removed"] for p in ps),
                 "mb_s": dirty / 1e6 / (millis / 1000), "cpu_s_per_gb": cpu / (dirty / 1e9)}
            run.log(f"cleaner run {i + 1}: {r}")
            runs.append(r)
        finally:
            broker.stop()
    disk = run.limit_disk_write_gb_s(run.DATA_ROOT)
    disk_read = run.limit_disk_read_gb_s(run.DATA_ROOT)
    report["cleaner"] = {"records": records, "runs": runs, "disk_write_gb_s": disk, "disk_read_gb_s": disk_read,
                         "segment_bytes": segment_size(records, RECORD)}


def produce(report):
    # The other topic is large enough that its cleaning outlasts the producer's run.
    records = run.n(1_000_000)
    dirty_records = run.n(3_000_000)
    results = {"cleaner idle": [], "cleaner compacting another topic": []}
    for i in range(run.RUNS):
        for arm in results:
            broker = run.Broker(BROKER)
            try:
                fill(broker, "bg", dirty_records, RECORD, dirty_records // 10)
                end = active_base(broker, "bg")
                run.create_topic(broker, "p", 1)
                if arm != "cleaner idle":
                    release(broker, "bg")
                    # The pass has begun: the cleaner's thread is using the CPU.
                    deadline = time.time() + 60
                    while cleaner_cpu_ticks(broker) == 0:
                        if time.time() > deadline:
                            raise RuntimeError("the cleaner did not start")
                        time.sleep(0.01)
                cpu, cleaner_cpu = broker.cpu_seconds(), cleaner_cpu_ticks(broker)
                started = time.time()
                r = run.producer_perf(broker, "p", records, RECORD, PROPS)
                finished = time.time()
                r["broker_cpu_s_per_gb"] = (broker.cpu_seconds() - cpu) / (records * RECORD / 1e9)
                # The cleaner runs at nice 10: what CPU it got while the producer ran.
                r["cleaner_cpu_s"] = (cleaner_cpu_ticks(broker) - cleaner_cpu) / os.sysconf("SC_CLK_TCK")
                # How much of the producer's run the cleaner's passes covered.
                overlap = 0.0
                if arm != "cleaner idle":
                    for p in wait_cleaned(broker, "bg", end):
                        begun = p["end_s"] - p["millis"] / 1000
                        overlap += max(0.0, min(finished, p["end_s"]) - max(started, begun))
                r["cleaning_ms"] = overlap * 1000
                r["producing_ms"] = (finished - started) * 1000
                run.log(f"{arm}: {r['mb_per_s']:.1f} MB/s, cleaner busy {r['cleaning_ms']:.0f} ms of "
                        f"{r['producing_ms']:.0f}")
                results[arm].append(r)
            finally:
                broker.stop()
    report["produce"] = {"records": records, "dirty_records": dirty_records, "results": results}


def memory(report):
    keys = run.n(10_000_000)
    runs = []
    for i in range(run.RUNS):
        broker = run.Broker(BROKER)
        try:
            fill(broker, "m", keys, 100, keys, segment_bytes=256 << 20)
            end = active_base(broker, "m")
            before = broker.rss_kib()
            broker.peak_rss_kib = 0
            release(broker, "m")

            def sample():
                broker.peak_rss_kib = max(broker.peak_rss_kib, broker.rss_kib())
            ps = wait_cleaned(broker, "m", end, sample=sample)
            r = {"keys": keys, "rss_before_kib": before, "peak_rss_kib": broker.peak_rss_kib,
                 "passes": len(ps), "millis": sum(p["millis"] for p in ps)}
            run.log(f"memory run {i + 1}: {r}")
            runs.append(r)
        finally:
            broker.stop()
    report["memory"] = runs
    for r in runs:
        r["segment_bytes"] = segment_size(keys, 100, 256 << 20)


def render(report):
    rows = []
    if "cleaner" in report:
        c = report["cleaner"]
        rs = c["runs"]
        lo, mid, hi = run.mmm([r["mb_s"] for r in rs])
        rows += [f"Cleaner: {c['records']:,} records of {RECORD} B over {c['records'] // 10:,} keys (10% distinct), "
                 f"{c['segment_bytes'] / 1e6:,.0f} MB segments, written while `min.compaction.lag.ms` held the cleaner "
                 "back, then released; MB/s of dirty log per second the cleaner worked (the sum of its passes' times). "
                 "The log was just written, so the cleaner reads it from the page cache; it writes about a tenth "
                 "of it back, hence a rate above the disk's write speed.", "",
                 "| dirty log | cleaner MB/s, min / **median** / max | passes | kept of the log | broker CPU s/GB (median) "
                 "| data disk sequential read (O_DIRECT) / write (synced) |",
                 "|---|---|---|---|---|---|"]
        rows.append(f"| {run.statistics.median(r['dirty_bytes'] for r in rs) / 1e6:,.0f} MB | {lo:,.0f} / **{mid:,.0f}** / "
                    f"{hi:,.0f} | {run.statistics.median(r['passes'] for r in rs):.0f} | "
                    f"{run.statistics.median(r['written'] / r['dirty_bytes'] for r in rs):.0%} | "
                    f"{run.statistics.median(r['cpu_s_per_gb'] for r in rs):.2f} | "
                    f"{c.get('disk_read_gb_s', 0) * 1000:,.0f} / {c['disk_write_gb_s'] * 1000:,.0f} MB/s |")
        rows.append("")
    if "produce" in report:
        p = report["produce"]
        base = run.statistics.median(r["mb_per_s"] for r in p["results"]["cleaner idle"])
        rows += [f"Producer while the cleaner works: `strata producer-perf --num-records {p['records']} --record-size "
                 f"{RECORD} --throughput -1 --producer-props {' '.join(PROPS)}` on a plain topic, while the cleaner "
                 f"compacts another of {p['dirty_records']:,} records (10% distinct keys), against the same with the "
                 "cleaner idle; fresh broker per run, the two alternating.", "",
                 "| run | MB/s, min / **median** / max | of idle | p99 latency (median) | broker CPU s/GB (median) "
                 "| cleaner in a pass during the run (median) | cleaner CPU during the run (median) |",
                 "|---|---|---|---|---|---|---|"]
        for arm, rs in p["results"].items():
            lo, mid, hi = run.mmm([r["mb_per_s"] for r in rs])
            busy = run.statistics.median(min(1.0, r["cleaning_ms"] / r["producing_ms"]) for r in rs)
            rows.append(f"| {arm} | {lo:.1f} / **{mid:.1f}** / {hi:.1f} | {mid / base:.0%} | "
                        f"{run.statistics.median(r['p99_ms'] for r in rs):.0f} ms | "
                        f"{run.statistics.median(r['broker_cpu_s_per_gb'] for r in rs):.2f} | {busy:.0%} | "
                        f"{run.statistics.median(r.get('cleaner_cpu_s', 0) for r in rs):.1f} s |")
        rows.append("")
    if "memory" in report:
        rs = report["memory"]
        lo, mid, hi = run.mmm([r["peak_rss_kib"] / 1024 for r in rs])
        rows += [f"Memory: a topic of {rs[0]['keys']:,} distinct keys (100 B records, "
                 f"{rs[0]['segment_bytes'] / 1e6:,.1f} MB segments) compacted with "
                 "the default `log.cleaner.dedupe.buffer.size` (128 MiB); the broker's RSS sampled every 50 ms "
                 "while it cleaned. Goal: under the buffer + 64 MiB (192 MiB).", "",
                 "| keys | passes | RSS before | peak RSS, min / **median** / max | cleaning took (median) |",
                 "|---|---|---|---|---|",
                 f"| {rs[0]['keys']:,} | {run.statistics.median(r['passes'] for r in rs):.0f} | "
                 f"{run.statistics.median(r['rss_before_kib'] for r in rs) / 1024:.0f} MiB | {lo:.0f} / **{mid:.0f}** / "
                 f"{hi:.0f} MiB | {run.statistics.median(r['millis'] for r in rs) / 1000:.1f} s |", ""]
    run.write_block("compaction", f"_Run on {time.strftime('%Y-%m-%d')}, {run.RUNS} runs, record counts x{run.SCALE}, "
                    f"`python3 bench/compaction.py`._ Machine: {run.machine()}.\n\n" + "\n".join(rows),
                    "## Log compaction")


PARTS = {"cleaner": cleaner, "produce": produce, "memory": memory}


def main():
    run.run_parts(PARTS, render, "compaction")


if __name__ == "__main__":
    main()
