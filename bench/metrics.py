#!/usr/bin/env python3
"""The cost of watching the broker, recorded in docs/BENCHMARKS.md ("Metrics"): produce
throughput and the broker's CPU seconds per GB with the Prometheus endpoint on and scraped every
second (`scraped`), and with the web console's `/api/state` fetched every second as an open page
does (`console`), each against a broker with neither: two brokers side by side, taking turns in
alternating order after a warm-up run each; min / median / max of max(STRATA_BENCH_RUNS, 7)
rounds and the ratio run by run, with the requests' size and time.

    python3 bench/metrics.py                 # both
    python3 bench/metrics.py console
    STRATA_BENCH_SCALE=0.1 python3 bench/metrics.py   # a quick pass
"""
import os
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the driver's broker, tools and report helpers)

RECORD = 1024
PROPS = ["acks=1", "linger.ms=5", "batch.size=1048576"]
GOAL = 0.97


class Scraper:
    """GETs `url` every second in a thread, as Prometheus (or an open console page) would;
    keeps each request's time and size."""

    def __init__(self, url):
        self.url = url
        self.stop_event = threading.Event()
        self.times, self.sizes = [], []
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stop_event.is_set():
            started = time.time()
            body = urllib.request.urlopen(self.url, timeout=10).read()
            self.times.append(time.time() - started)
            self.sizes.append(len(body))
            self.stop_event.wait(max(0.0, 1.0 - (time.time() - started)))

    def stop(self):
        self.stop_event.set()
        self.thread.join()


def one(broker, name, i, records):
    """One produce run into a fresh topic, deleted after it (its pages freed for the next)."""
    topic = f"metrics-{i}"
    run.create_topic(broker, topic, 1)
    r = run.measured(broker, records, RECORD, f"produce, metrics {name}", lambda: run.producer_perf(
        broker, topic, records, RECORD, PROPS))
    run.run_tool(["topics", "--bootstrap-server", broker.addr, "--delete", "--topic", topic])
    return r


def side_by_side(report, key, setting, path):
    """Two brokers, one with `setting` on a free port and `path` on it fetched every second,
    taking turns at producing."""
    records = run.n(3_000_000)
    port = run.free_port()
    brokers = {"off": run.Broker([]),
               "scraped": run.Broker([f"{setting}=127.0.0.1:{port}"])}
    scraper = Scraper(f"http://127.0.0.1:{port}{path}")
    results = {name: [] for name in brokers}
    try:
        names = list(brokers)
        for name in names:  # a warm-up run each, not recorded
            one(brokers[name], name, -1, records)
        for i in range(max(run.RUNS, 7)):
            for name in (names if i % 2 == 0 else names[::-1]):
                results[name].append(one(brokers[name], name, i, records))
    finally:
        scraper.stop()
        for b in brokers.values():
            b.stop()
    report[key] = {"records": records, **results, "scrapes": len(scraper.times),
                         "scrape_ms": [1000 * t for t in scraper.times], "scrape_kb": run.mmm(scraper.sizes)[1] / 1000}


def scraped(report):
    side_by_side(report, "scraped", "metrics.prometheus.listener", "/metrics")


def console(report):
    side_by_side(report, "console", "http.console.listener", "/api/state")


def rows_for(s, on_label, what):
    """The table rows of one side-by-side comparison."""


    rows = []
    off, on = s["off"], s["scraped"]
    for label, runs in ((f"{what} off", off), (on_label, on)):
        cpu = run.mmm([r["broker_cpu_s_per_gb"] for r in runs])[1]
        client = run.mmm([r["client_cpu_s_per_gb"] for r in runs])[1]
        rows.append(f"| produce, {label} | `strata producer-perf --num-records {s['records']} --record-size {RECORD}` | "
                    f"report | {run.mmm_text([r['mb_per_s'] for r in runs], 1, 'MB/s')} | {cpu:.2f} s/GB | {client:.2f} s/GB | - |")
    ratios = [a["mb_per_s"] / b["mb_per_s"] for a, b in zip(on, off)]
    mid = run.mmm(ratios)[1]
    rows.append(f"| produce: {what} on / off, same run | (the two rows above, run by run) | >= {GOAL:.0%} | "
                f"{run.mmm_text([100 * r for r in ratios], 0, '%')} | | | {'met' if mid >= GOAL else '**missed**'} |")
    cost = [a["broker_cpu_s_per_gb"] / b["broker_cpu_s_per_gb"] for a, b in zip(on, off)]
    rows.append(f"| broker CPU per GB: {what} on / off | (the two rows above, run by run) | report | {run.mmm_text(cost, 2, 'x')} "
                f"| | | - |")
    rows.append(f"| one request of the {what} (all of them, during and between the runs) | "
                f"`python3 bench/metrics.py` | report | {run.mmm_text(s['scrape_ms'], 2, 'ms')} | | | - |")
    return rows


def render(report):
    rows = ["| measurement | command | goal | min / **median** / max | broker CPU | client CPU | status |",
            "|---|---|---|---|---|---|---|"]
    notes = []
    s = report.get("scraped")
    if s:
        rows += rows_for(s, "`/metrics` scraped every second", "metrics")
        notes.append(f"Metrics: {s['scrapes']} scrapes of {s['scrape_kb']:.0f} kB (every API's latency histogram is "
                     f"on the page from the start); producer p99 latency (median of runs) "
                     f"{run.mmm([r['p99_ms'] for r in s['off']])[1]:.0f} ms off, "
                     f"{run.mmm([r['p99_ms'] for r in s['scraped']])[1]:.0f} ms scraped.")
    c = report.get("console")
    if c:
        rows += rows_for(c, "the console's `/api/state` fetched every second", "console")
        notes.append(f"Console: {c['scrapes']} snapshots of {c['scrape_kb']:.0f} kB, as an open page asks; producer p99 "
                     f"latency (median of runs) {run.mmm([r['p99_ms'] for r in c['off']])[1]:.0f} ms off, "
                     f"{run.mmm([r['p99_ms'] for r in c['scraped']])[1]:.0f} ms with the console.")
    if not rows[2:]:
        return

    body = "\n".join(rows)
    body += ("\n\nMachine: " + run.machine() + ". Producer props: `" + " ".join(PROPS) + "`, 1 partition. Two "
             "brokers run side by side for each comparison, one with the endpoint off, one asked every second from "
             "start to end; each run produces into a fresh topic, deleted after it; the two take turns, in "
             "alternating order, after an unrecorded warm-up run each. " + " ".join(notes) + " "
             "With the endpoint on, a request costs two clock reads, one counter and one histogram sample "
             "(handles looked up at start), an append two relaxed atomic adds per partition; the rest is copied "
             "from state once a second.")
    run.write_block("metrics", body, "## Metrics and the web console")


if __name__ == "__main__":
    run.run_parts({"scraped": lambda report: (run.warm_memory(), scraped(report)),
                   "console": lambda report: (run.warm_memory(), console(report))}, render, "metrics")
