#!/usr/bin/env python3
"""Replication benchmarks, recorded in docs/BENCHMARKS.md ("Replication"): three brokers of one
cluster on this machine (each `broker,controller`, formatted with `strata storage format`).

- rf: producer-perf acks=all at replication factor 3 (min.insync.replicas=2) against 1, the two
  alternating on fresh topics of the same cluster; the three brokers' CPU seconds per GB
  together (at RF 3 that includes the two followers' fetching and writing).
- failover: a partition's leader killed (kill -9) under an acks=all load of one record every
  5 ms, 20 times: the time from the kill to the next acknowledged record, p50 and max
  (goal: under broker.session.timeout.ms + 1 s, default settings).
- kills: 50 random leader kills under that load (broker.session.timeout.ms=3000), each broker
  restarted after its kill; then every acknowledged record is looked for: lost must be 0.
- tls: acks=all at replication factor 3 with the brokers' inter-broker listener on SSL (followers
  fetch over TLS; clients stay on PLAINTEXT) against PLAINTEXT, alternating fresh clusters.
- txn: transactions across the cluster: producer-perf (acks=all, idempotent) to a topic of
  three partitions at replication factor 3 (their leaders on the three brokers, the
  transaction coordinator on one of them), without transactions and with 10,000 and 100
  records per transaction, alternating on fresh topics.

    python3 bench/replication.py                 # all of it
    python3 bench/replication.py rf
    python3 bench/replication.py txn
    python3 bench/replication.py tls
    python3 bench/replication.py --render       # rewrite the block from bench/replication.json
    STRATA_BENCH_SCALE=0.1 python3 bench/replication.py   # a quick pass (fewer records, kills)
"""
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the driver's tools and report helpers)

RECORD = 1024
PROPS = ["acks=all", "linger.ms=5", "batch.size=1048576"]


def free_port():
    """A free port below the ephemeral range: a restarted node binds its ports again, and an
    ephemeral port may meanwhile be some connection's local end."""
    while True:
        port = random.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue


class Cluster:
    """Three formatted nodes on loopback; `addr` is the bootstrap list, so the driver's tools
    take a Cluster where they take a Broker."""

    def __init__(self, extra=(), n=3, internal_tls=False):
        """`internal_tls`: the brokers talk to each other on an SSL listener of their own."""
        os.makedirs(run.DATA_ROOT, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix="strata-bench-cluster-", dir=run.DATA_ROOT)
        cluster_id = subprocess.check_output([run.STRATA, "storage", "random-uuid"], text=True).strip()
        ports = [(free_port(), free_port()) for _ in range(n)]
        if internal_tls:
            ca, keystore = certificates(self.dir)
        voters = ",".join(f"{i + 1}@127.0.0.1:{c}" for i, (_, c) in enumerate(ports))
        self.nodes = {}
        for i, (port, cport) in enumerate(ports):
            node = i + 1
            data = os.path.join(self.dir, f"node{node}")
            config = os.path.join(self.dir, f"node{node}.properties")
            listeners = [f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}"]
            if internal_tls:
                listeners = [
                    f"listeners=PLAINTEXT://127.0.0.1:{port},INTERNAL://127.0.0.1:{free_port()},"
                    f"CONTROLLER://127.0.0.1:{cport}",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,INTERNAL:SSL,CONTROLLER:PLAINTEXT",
                    "inter.broker.listener.name=INTERNAL",
                    f"ssl.keystore.location={keystore}", f"ssl.truststore.location={ca}",
                ]
            with open(config, "w") as f:
                f.write("\n".join([
                    "process.roles=broker,controller", f"node.id={node}",
                    f"controller.quorum.voters={voters}", "controller.listener.names=CONTROLLER",
                ] + listeners + [
                    f"log.dirs={data}", f"broker.rack=rack-{'a' if node % 2 else 'b'}",
                ] + list(extra)) + "\n")
            subprocess.run([run.STRATA, "storage", "format", "-t", cluster_id, "-c", config],
                           check=True, capture_output=True)
            self.nodes[node] = {"config": config, "port": port, "proc": None, "dead_cpu": 0.0}
        for node in self.nodes:
            self.start(node)
        self.addr = ",".join(f"127.0.0.1:{v['port']}" for v in self.nodes.values())
        self.peak_rss_kib = 0
        self.wait_for_brokers()

    def start(self, node):
        n = self.nodes[node]
        log = open(os.path.join(self.dir, f"node{node}.log"), "a")
        n["proc"] = subprocess.Popen([run.STRATA, "server", "--config", n["config"]],
                                     stdout=subprocess.PIPE, stderr=log, text=True)
        line = n["proc"].stdout.readline()
        if not line.startswith("listening on"):
            raise RuntimeError(f"node {node} did not start: {line!r}")

    def kill(self, node):
        n = self.nodes[node]
        n["dead_cpu"] += self._cpu(n["proc"].pid)
        n["proc"].kill()
        n["proc"].wait()
        n["proc"] = None

    def wait_for_brokers(self, timeout=60):
        from confluent_kafka.admin import AdminClient
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                brokers = AdminClient({"bootstrap.servers": self.live_addr()}).list_topics(timeout=5).brokers
                if len(brokers) == len(self.nodes):
                    return
            except Exception:  # noqa: BLE001 (not answering yet)
                pass
            time.sleep(0.5)
        raise RuntimeError("the cluster's brokers did not all register")

    def live_addr(self):
        return ",".join(f"127.0.0.1:{n['port']}" for n in self.nodes.values() if n["proc"])

    @staticmethod
    def _cpu(pid):
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def cpu_seconds(self):
        return sum(n["dead_cpu"] + (self._cpu(n["proc"].pid) if n["proc"] else 0) for n in self.nodes.values())

    def rss_kib(self):
        total = 0
        for n in self.nodes.values():
            if n["proc"]:
                with open(f"/proc/{n['proc'].pid}/status") as f:
                    total += next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        return total

    def partition(self, topic):
        """(leader, isr) of partition 0 of `topic`, as `strata topics --describe` shows it."""
        out = subprocess.run([run.STRATA, "topics", "--bootstrap-server", self.live_addr(), "--describe",
                              "--topic", topic], capture_output=True, text=True, timeout=30).stdout
        m = re.search(r"Partition: 0\s+Leader: (-?\d+)\s+Replicas: ([\d,]+)\s+Isr: ([\d,]*)", out)
        if not m:
            return -1, []
        return int(m.group(1)), [int(x) for x in m.group(3).split(",") if x]

    def controller(self):
        """The active controller's node id (-1 when none answers)."""
        out = subprocess.run([run.STRATA, "metadata-quorum", "--bootstrap-server", self.live_addr().split(",")[0],
                              "describe", "--status"], capture_output=True, text=True, timeout=30).stdout
        m = re.search(r"LeaderId:\s+(-?\d+)", out)
        return int(m.group(1)) if m else -1

    def wait_for_isr(self, topic, size, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            leader, isr = self.partition(topic)
            if leader >= 0 and len(isr) == size:
                return leader
            time.sleep(0.2)
        raise RuntimeError(f"{topic} did not reach an ISR of {size}")

    def stop(self):
        for n in self.nodes.values():
            if n["proc"]:
                n["proc"].terminate()
                n["proc"].wait(timeout=120)
        shutil.rmtree(self.dir, ignore_errors=True)


def certificates(directory):
    """A CA and a key and certificate for 127.0.0.1 signed by it (openssl): the CA's PEM and
    the keystore PEM (key, then certificate)."""
    def ssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)
    ssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
        "-out", "ca.pem", "-days", "2", "-subj", "/CN=strata bench CA")
    ssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "server.key",
        "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    with open(os.path.join(directory, "san.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "2", "-extfile", "san.cnf")
    keystore = os.path.join(directory, "server.pem")
    with open(keystore, "w") as out:
        for name in ("server.key", "server.crt"):
            with open(os.path.join(directory, name)) as f:
                out.write(f.read())
    return os.path.join(directory, "ca.pem"), keystore


def measured_on():
    """When and where a scenario ran (scenarios of one report may come from different runs)."""
    return f"{time.strftime('%Y-%m-%d')} on {run.machine()}"


def create(cluster, topic, rf, configs=(), partitions=1):
    args = ["topics", "--bootstrap-server", cluster.addr, "--create", "--topic", topic, "--partitions",
            str(partitions), "--replication-factor", str(rf)]
    for c in configs:
        args += ["--config", c]
    run.run_tool(args)
    cluster.wait_for_isr(topic, rf)


def warm(gib):
    """Touches `gib` GiB of fresh memory and frees it: the host reclaims freed guest memory
    after a while, so each measured run is preceded by its own warm-up (see run.warm_memory)."""
    block = bytearray(gib << 30)
    for i in range(0, len(block), 4096):
        block[i] = 1
    del block


def measure_acks_all(cluster, topic, records):
    """The acks=all producer-perf run on `topic`, with the brokers' CPU per GB; first a warm-up
    (the followers have fetched once: one that asked before its leader knew the topic waits
    replica.fetch.backoff.ms, as Kafka's do) and memory warmed for three copies."""
    run.producer_perf(cluster, topic, 1000, RECORD, PROPS)
    warm(max(1, 3 * records * RECORD >> 30) + 1)
    cpu = cluster.cpu_seconds()
    r = run.producer_perf(cluster, topic, records, RECORD, PROPS)
    r["broker_cpu_s_per_gb"] = (cluster.cpu_seconds() - cpu) / (records * RECORD / 1e9)
    return r


def scenario_rf(report):
    records = run.n(200_000)
    # Fresh page cache on this virtual machine costs several times its usual CPU at first touch
    # (see run.warm_memory); replication factor 3 writes three copies of everything.
    run.warm_memory()
    cluster = Cluster()
    results = {"replication factor 1": [], "replication factor 3": []}
    try:
        for i in range(run.RUNS):
            for rf, name in ((1, "replication factor 1"), (3, "replication factor 3")):
                topic = f"rf{rf}-{i}"
                create(cluster, topic, rf, ["min.insync.replicas=2"] if rf == 3 else [])
                r = measure_acks_all(cluster, topic, records)
                run.log(f"{name}: {r['mb_per_s']:.1f} MB/s, {r['broker_cpu_s_per_gb']:.2f} s/GB, p99 {r['p99_ms']} ms")
                results[name].append(r)
    finally:
        cluster.stop()
    report["rf"] = {"records": records, "results": results, "measured": measured_on()}


def scenario_tls(report):
    """RF 3 acks=all with the followers fetching over PLAINTEXT, then over TLS, on fresh
    clusters one after the other (one cluster cannot change its inter-broker listener)."""
    records = run.n(200_000)
    results = {"inter-broker PLAINTEXT": [], "inter-broker SSL": []}
    pair = ((False, "inter-broker PLAINTEXT"), (True, "inter-broker SSL"))
    # A first pair unrecorded (the first clusters of a run pay for fresh memory), then the two
    # in turns, each going first every other time.
    for i in range(-1, run.RUNS):
        for tls, name in (pair if i % 2 == 0 else pair[::-1]):
            run.warm_memory()
            cluster = Cluster(internal_tls=tls)
            try:
                topic = f"tls{i}"
                create(cluster, topic, 3, ["min.insync.replicas=2"])
                r = measure_acks_all(cluster, topic, records)
                run.log(f"{name}{' (warm-up)' if i < 0 else ''}: {r['mb_per_s']:.1f} MB/s, "
                        f"{r['broker_cpu_s_per_gb']:.2f} s/GB, p99 {r['p99_ms']} ms")
                if i >= 0:
                    results[name].append(r)
            finally:
                cluster.stop()
    report["tls"] = {"records": records, "results": results, "measured": measured_on()}


TXN_PRODUCERS = [
    ("idempotent, no transactions", []),
    ("transactional, 10,000 per transaction", ["--transactional-id", "bench-tx", "--transaction-records", "10000"]),
    ("transactional, 100 per transaction", ["--transactional-id", "bench-tx", "--transaction-records", "100"]),
]


def scenario_txn(report):
    records = run.n(200_000)
    props = ["acks=all", "enable.idempotence=true", "linger.ms=5"]
    run.warm_memory()
    cluster = Cluster()
    results = {name: [] for name, _ in TXN_PRODUCERS}
    try:
        # Warm-up: the first transactional producer has the controller create
        # __transaction_state (50 partitions, three replicas each); a one-time cost.
        create(cluster, "txn-warm-up", 3, ["min.insync.replicas=2"], partitions=3)
        run.producer_perf(cluster, "txn-warm-up", 1000, RECORD, props, extra=TXN_PRODUCERS[2][1])
        for i in range(run.RUNS):
            for j, (name, extra) in enumerate(TXN_PRODUCERS):
                topic = f"txn{i}-{j}"
                create(cluster, topic, 3, ["min.insync.replicas=2"], partitions=3)
                warm(max(1, 3 * records * RECORD >> 30) + 1)
                cpu = cluster.cpu_seconds()
                r = run.producer_perf(cluster, topic, records, RECORD, props, extra=extra)
                r["broker_cpu_s_per_gb"] = (cluster.cpu_seconds() - cpu) / (records * RECORD / 1e9)
                run.log(f"{name}: {r['records_per_s']:.0f} rec/s, {r['broker_cpu_s_per_gb']:.2f} s/GB, "
                        f"p99 {r['p99_ms']} ms")
                results[name].append(r)
    finally:
        cluster.stop()
    report["txn"] = {"records": records, "results": results, "measured": measured_on()}


class Load:
    """An acks=all, idempotent producer sending one numbered record every 5 ms to partition 0;
    remembers when each was acknowledged."""

    def __init__(self, bootstrap, topic):
        from confluent_kafka import Producer
        self.producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                                  "linger.ms": 0, "message.timeout.ms": 120000,
                                  "topic.metadata.refresh.interval.ms": 1000})
        self.topic = topic
        self.acked = {}   # value -> (offset, ack time)
        self.sent = {}    # value -> send time
        self.failed = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        i = 0
        while not self.stop.is_set():
            value = f"r{i:08d}"
            i += 1

            def done(err, msg, value=value):
                if err is None:
                    self.acked[value] = (msg.offset(), time.time())
                else:
                    self.failed += 1
            while True:
                try:
                    self.sent[value] = time.time()
                    self.producer.produce(self.topic, value.encode(), partition=0, on_delivery=done)
                    break
                except BufferError:
                    self.producer.poll(0.01)
            self.producer.poll(0.005)
        self.producer.flush(120)

    def first_ack_after(self, t0, timeout=60):
        """Seconds from `t0` to the first acknowledgement of a record sent after it (an answer
        to a record sent before the kill may still be on its way to the client)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            after = [t for v, (_, t) in list(self.acked.items()) if self.sent.get(v, 0) > t0]
            if after:
                return min(after) - t0
            time.sleep(0.01)
        raise RuntimeError("no record was acknowledged after the kill")

    def finish(self):
        self.stop.set()
        self.thread.join()


def consume_all(bootstrap, topic):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-check", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, 0, 0)])
    values = {}
    idle = time.time()
    while time.time() - idle < 10:
        m = c.poll(1.0)
        if m is None or m.error():
            continue
        idle = time.time()
        v = m.value().decode()
        values.setdefault(v, []).append(m.offset())
    c.close()
    return values


def kill_loop(report, key, kills, extra):
    cluster = Cluster(extra)
    try:
        topic = "failover"
        create(cluster, topic, 3, ["min.insync.replicas=2"])
        load = Load(cluster.addr, topic)
        time.sleep(2)
        gaps = []
        with_controller = []
        for k in range(kills):
            leader = cluster.wait_for_isr(topic, 3)
            if k and random.random() < 0.5:
                time.sleep(random.random() * 2)
            controller = cluster.controller() == leader
            t0 = time.time()
            cluster.kill(leader)
            gap = load.first_ack_after(t0)
            gaps.append(gap)
            with_controller.append(controller)
            also = " (the active controller too)" if controller else ""
            run.log(f"{key}: kill {k + 1}/{kills} of broker {leader}{also}: next acknowledged record after {gap:.2f} s")
            cluster.start(leader)
        cluster.wait_for_isr(topic, 3)
        time.sleep(1)
        load.finish()
        stored = consume_all(cluster.live_addr(), topic)
        lost = [v for v, (o, _) in load.acked.items() if o not in stored.get(v, [])]
        duplicates = sum(len(o) - 1 for o in stored.values())
        run.log(f"{key}: {len(load.acked)} acknowledged, {len(lost)} lost, {duplicates} duplicated, "
                f"{load.failed} failed deliveries")
        report[key] = {"kills": kills, "gaps_s": gaps, "with_controller": with_controller,
                       "acknowledged": len(load.acked), "lost": len(lost),
                       "duplicates": duplicates, "failed": load.failed, "settings": list(extra),
                       "measured": measured_on()}
    finally:
        cluster.stop()


def scenario_failover(report):
    kill_loop(report, "failover", max(3, int(20 * min(1.0, run.SCALE * 10))), [])


def scenario_kills(report):
    kill_loop(report, "kills", max(5, int(50 * min(1.0, run.SCALE * 10))),
              ["broker.session.timeout.ms=3000", "broker.heartbeat.interval.ms=500"])


def comparison_rows(r, base, other, label, where, suffix):
    """Each configuration's producer-perf row, then the second against the first, run by run."""
    cmd = (f"`strata producer-perf --num-records {r['records']} --record-size 1024 --producer-props "
           f"acks=all linger.ms=5 batch.size=1048576`{suffix}")
    rows = []
    for name, runs in r["results"].items():
        rows.append(f"| acks=all, {name} | {cmd} | report | {run.fmt([x['mb_per_s'] for x in runs])} MB/s, "
                    f"p99 {run.fmt([x['p99_ms'] for x in runs], digits=0)} ms | "
                    f"{run.fmt([x['broker_cpu_s_per_gb'] for x in runs], digits=2)} s/GB | - |")
    first, second = r["results"][base], r["results"][other]
    ratios = [100 * b["mb_per_s"] / a["mb_per_s"] for a, b in zip(first, second)]
    costs = [b["broker_cpu_s_per_gb"] / a["broker_cpu_s_per_gb"] for a, b in zip(first, second)]
    rows.append(f"| {label} | {where} | report | "
                f"{run.fmt(ratios, digits=0)} % throughput, {run.fmt(costs, digits=2)} x CPU per GB | | - |")
    return rows


def render(report):
    rows = ["| measurement | command | goal | min / **median** / max | broker CPU (3 brokers) | status |",
            "|---|---|---|---|---|---|"]
    for key, base, other, label, where, suffix in (
            ("rf", "replication factor 1", "replication factor 3", "replication factor 3 / 1, same run",
             "(the two rows above, run by run)", ""),
            ("tls", "inter-broker PLAINTEXT", "inter-broker SSL", "inter-broker SSL / PLAINTEXT, run by run",
             "(the two rows above)", ", RF 3")):
        r = report.get(key)
        if r:
            rows += comparison_rows(r, base, other, label, where, suffix)
    txn = report.get("txn")
    if txn:
        cmd = (f"`strata producer-perf --num-records {txn['records']} --record-size 1024 --producer-props "
               "acks=all enable.idempotence=true linger.ms=5 [--transactional-id bench-tx "
               "--transaction-records N]`, 3 partitions, RF 3")
        base = txn["results"]["idempotent, no transactions"]
        for name, runs in txn["results"].items():
            ratio = [100 * r["records_per_s"] / b["records_per_s"] for b, r in zip(base, runs)]
            rows.append(f"| {name} | {cmd} | report | {run.fmt([r['records_per_s'] for r in runs], digits=0)} "
                        f"records/s ({run.fmt(ratio, digits=0)} % of idempotent), p99 "
                        f"{run.fmt([r['p99_ms'] for r in runs], digits=0)} ms | "
                        f"{run.fmt([r['broker_cpu_s_per_gb'] for r in runs], digits=2)} s/GB | - |")
    for key, goal_s in (("failover", 10.0), ("kills", None)):
        r = report.get(key)
        if not r:
            continue
        gaps = sorted(r["gaps_s"])
        settings = ", ".join(r["settings"]) or "default settings, broker.session.timeout.ms=9000"
        cmd = f"`python3 bench/replication.py {key}`"
        spread = f"{gaps[0]:.2f} / **{statistics.median(gaps):.2f}** / {gaps[-1]:.2f} s"
        both = [g for g, c in zip(r["gaps_s"], r.get("with_controller", [])) if c]
        if both:
            spread += (f"; {len(both)} of the kills took the active controller too: "
                       f"{min(both):.2f} / {max(both):.2f} s (min / max)")
        if goal_s:
            status = "met" if gaps[-1] < goal_s else ("p50 met, max missed" if statistics.median(gaps) < goal_s
                                                      else "**missed**")
            rows.append(f"| failover: kill -9 of the leader to the next acknowledged record, {r['kills']} kills "
                        f"({settings}) | {cmd} | < session timeout + 1 s | {spread} | | {status} |")
        else:
            rows.append(f"| failover, {r['kills']} kills ({settings}) | {cmd} | report | {spread} | | - |")
        status = "met" if r["lost"] == 0 else "**missed**"
        rows.append(f"| acknowledged records lost over {r['kills']} leader kills under acks=all load | {cmd} | 0 | "
                    f"{r['lost']} of {r['acknowledged']:,} ({r['duplicates']} duplicated) | | {status} |")
    runs = {}
    for key in ("rf", "tls", "txn", "failover", "kills"):
        if key in report:
            runs.setdefault(report[key].get("measured", "an earlier run"), []).append(key)
    where = "; ".join(f"{', '.join(keys)}: measured {m}" for m, keys in runs.items())
    notes = (f"\n{where}. Three brokers of one cluster (each "
             "`process.roles=broker,controller`, formatted by `strata storage format`) and the client share the "
             "two cores; one partition (three for txn), its topic with `min.insync.replicas=2` at replication factor 3; each "
             "configuration warmed by 1,000 records first. The load of the kill runs is an idempotent acks=all "
             "producer (confluent-kafka) sending one record every 5 ms; a failover is timed from the kill to the "
             "first acknowledgement of a record sent after it, and each killed broker is restarted and back in "
             "the ISR before the next kill. At the end every acknowledged record is looked for at the offset "
             "its acknowledgement gave.")
    return "\n".join(rows) + "\n" + notes


RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "replication.json")


def main():
    if sys.argv[1:] == ["--render"]:
        with open(RESULTS) as f:
            report = json.load(f)
    else:
        wanted = sys.argv[1:] or ["rf", "tls", "failover", "kills", "txn"]
        report = {}
        if os.path.exists(RESULTS):
            with open(RESULTS) as f:
                report = json.load(f)
        for name in wanted:
            {"rf": scenario_rf, "failover": scenario_failover, "kills": scenario_kills,
             "txn": scenario_txn, "tls": scenario_tls}[name](report)
        with open(RESULTS, "w") as f:
            json.dump(report, f, indent=1)
    text = render(report)
    print(text)
    run.write_block("replication", text, "## Replication")


if __name__ == "__main__":
    main()
