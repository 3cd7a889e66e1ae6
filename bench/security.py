#!/usr/bin/env python3
"""Security benchmarks, recorded in docs/BENCHMARKS.md ("Security"):

- produce and consume over SASL_SSL (SCRAM-SHA-512, TLS 1.3 from rustls) against PLAINTEXT on the
  same broker, alternating, fresh topics (`tls`). TLS loses sendfile: record bytes are read into
  the broker and encrypted; this kernel offers no kTLS to hand that to;
- new SASL_SSL connections per second, each a TCP connect, a TLS handshake, ApiVersions and a
  SCRAM-SHA-512 exchange, from 4 client threads (`connections`). The client keeps the salted
  password (RFC 5802 allows it) so that its PBKDF2 does not hide the broker's cost;
- produce with 10,000 ACLs loaded (authorizer on, the producer's principal not a super user)
  against the same broker without an authorizer (`acls`).

Each reports min / median / max of STRATA_BENCH_RUNS runs (3), with the broker's CPU seconds per
GB (or per 1,000 connections) next to it.

    python3 bench/security.py                 # all of it
    python3 bench/security.py tls acls
    STRATA_BENCH_SCALE=0.1 python3 bench/security.py tls   # a quick pass
"""
import base64
import hashlib
import hmac
import os
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the driver's broker, tools and report helpers)

RECORD = 1024
PROPS = ["acks=1", "linger.ms=5", "batch.size=1048576"]
PASSWORD = "bench-secret"


def certificates(directory):
    """A CA and a server certificate for 127.0.0.1, made with openssl: ca.pem and server.pem
    (key and chain in one file, as ssl.keystore.location takes it)."""
    def sh(*args):
        subprocess.run(args, cwd=directory, check=True, capture_output=True)
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bench CA")
    sh("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    with open(os.path.join(directory, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    sh("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
       "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext")
    with open(os.path.join(directory, "server.pem"), "w") as out:
        for name in ("server.key", "server.crt", "ca.pem"):
            out.write(open(os.path.join(directory, name)).read())
    return os.path.join(directory, "ca.pem"), os.path.join(directory, "server.pem")


class SecureBroker:
    """A broker with its PLAINTEXT listener and a SASL_SSL (or `protocol`) one with
    SCRAM-SHA-512, and the user `bench` created; `extra` adds settings."""

    def __init__(self, extra=(), protocol="SASL_SSL"):
        self.certs = tempfile.mkdtemp(prefix="strata-bench-certs-", dir=run.DATA_ROOT)
        self.ca, server = certificates(self.certs)
        self.port = run.free_port()
        self.broker = run.Broker([
            f"listeners=PLAINTEXT://127.0.0.1:0,{protocol}://127.0.0.1:{self.port}",
            f"ssl.keystore.location={server}",
            "sasl.enabled.mechanisms=SCRAM-SHA-512",
        ] + list(extra))
        run.run_tool(["configs", "--bootstrap-server", self.broker.addr, "--alter", "--entity-type", "users",
                      "--entity-name", "bench", "--add-config", f"SCRAM-SHA-512=[iterations=4096,password={PASSWORD}]"])
        self.config = os.path.join(self.certs, "client.properties")
        with open(self.config, "w") as f:
            f.write("security.protocol=SASL_SSL\n"
                    f"ssl.ca.location={self.ca}\n"
                    "sasl.mechanism=SCRAM-SHA-512\n"
                    "sasl.username=bench\n"
                    f"sasl.password={PASSWORD}\n")

    @property
    def secure_addr(self):
        """The SASL listener's address."""
        return f"127.0.0.1:{self.port}"

    def stop(self):
        self.broker.stop()


def measured(broker, records, what, tool):
    return run.measured(broker, records, RECORD, what, tool)


def tls(report):
    records = run.n(1_000_000)
    sb = SecureBroker()
    b = sb.broker
    secure_props = ["security.protocol=SASL_SSL", f"ssl.ca.location={sb.ca}", "sasl.mechanism=SCRAM-SHA-512",
                    "sasl.username=bench", f"sasl.password={PASSWORD}"]
    results = {k: [] for k in ("produce-plaintext", "produce-sasl_ssl", "consume-plaintext", "consume-sasl_ssl")}
    try:
        for i in range(run.RUNS):
            for kind in ("plaintext", "sasl_ssl"):
                topic = f"t{i}-{kind}"
                run.create_topic(b, topic, 1)
                props = PROPS + (secure_props if kind == "sasl_ssl" else [])
                addr = sb.secure_addr if kind == "sasl_ssl" else b.addr

                def produce():
                    # producer_perf uses the broker's address; give it the listener's.
                    saved, b.addr = b.addr, addr
                    try:
                        return run.producer_perf(b, topic, records, RECORD, props)
                    finally:
                        b.addr = saved
                results[f"produce-{kind}"].append(measured(b, records, f"produce {kind}", produce))

                def consume():
                    saved, b.addr = b.addr, addr
                    try:
                        extra = ["--consumer.config", sb.config] if kind == "sasl_ssl" else []
                        return run.consumer_perf(b, topic, records, extra=extra)
                    finally:
                        b.addr = saved
                results[f"consume-{kind}"].append(measured(b, records, f"consume {kind}", consume))
    finally:
        sb.stop()
    report["tls"] = {"records": records, **results}


def recv_frame(s):
    size = b""
    while len(size) < 4:
        chunk = s.recv(4 - len(size))
        if not chunk:
            raise ConnectionError("closed")
        size += chunk
    (n,) = struct.unpack(">i", size)
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def request(s, api_key, version, body, correlation=1):
    """A request with header v1 (client id "bench"), answered; returns the body after the
    correlation id."""
    header = struct.pack(">hhih", api_key, version, correlation, 5) + b"bench"
    frame = header + body
    s.sendall(struct.pack(">i", len(frame)) + frame)
    return recv_frame(s)[4:]


def kafka_bytes(b):
    return struct.pack(">i", len(b)) + b


class ScramClient:
    """SCRAM-SHA-512's client side, the salted password computed once per salt."""
    salted = {}

    def exchange(self, s):
        nonce = base64.b64encode(os.urandom(18)).decode()
        bare = f"n=bench,r={nonce}"
        # SaslHandshake v1 (key 17), SaslAuthenticate v1 (key 36): not flexible versions.
        r = request(s, 17, 1, struct.pack(">h", 13) + b"SCRAM-SHA-512")
        assert struct.unpack(">h", r[:2])[0] == 0, "handshake refused"
        r = request(s, 36, 1, kafka_bytes(("n,," + bare).encode()))
        code = struct.unpack(">h", r[:2])[0]
        assert code == 0, f"first message refused ({code})"
        (mlen,) = struct.unpack(">h", r[2:4])
        rest = r[4 + max(mlen, 0):]
        (blen,) = struct.unpack(">i", rest[:4])
        server_first = rest[4:4 + blen].decode()
        fields = dict(f.split("=", 1) for f in server_first.split(","))
        salt, iterations = base64.b64decode(fields["s"]), int(fields["i"])
        key = (salt, iterations)
        if key not in self.salted:
            self.salted[key] = hashlib.pbkdf2_hmac("sha512", PASSWORD.encode(), salt, iterations)
        salted = self.salted[key]
        client_key = hmac.new(salted, b"Client Key", "sha512").digest()
        stored = hashlib.sha512(client_key).digest()
        without_proof = f"c=biws,r={fields['r']}"
        auth = f"{bare},{server_first},{without_proof}".encode()
        signature = hmac.new(stored, auth, "sha512").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        final = f"{without_proof},p={base64.b64encode(proof).decode()}".encode()
        r = request(s, 36, 1, kafka_bytes(final), correlation=2)
        assert struct.unpack(">h", r[:2])[0] == 0, "proof refused"


def connections(report):
    per_thread = run.n(2000) // 4
    results = []
    sb = SecureBroker()
    try:
        context = ssl.create_default_context(cafile=sb.ca)
        for _ in range(run.RUNS):
            errors = []

            def worker():
                scram = ScramClient()
                try:
                    for _ in range(per_thread):
                        with socket.create_connection(("127.0.0.1", sb.port)) as raw:
                            with context.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                                request(s, 18, 0, b"")  # ApiVersions v0
                                scram.exchange(s)
                except Exception as e:  # noqa: BLE001 (reported below)
                    errors.append(e)
            threads = [threading.Thread(target=worker) for _ in range(4)]
            cpu, wall = sb.broker.cpu_seconds(), time.time()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.time() - wall
            if errors:
                raise RuntimeError(f"connections failed: {errors[0]}")
            total = per_thread * 4
            r = {"per_s": total / wall, "broker_cpu_ms_per_connection": (sb.broker.cpu_seconds() - cpu) * 1000 / total}
            run.log(f"connections: {r['per_s']:.0f}/s, {r['broker_cpu_ms_per_connection']:.2f} broker CPU ms each")
            results.append(r)
    finally:
        sb.stop()
    report["connections"] = {"per_thread": per_thread, "runs": results}


def load_acls(addr, count):
    """`count` ACLs for other principals and resources (literal and prefixed, topics and
    groups), in one CreateAcls request, with confluent-kafka's admin client."""
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient,
                                       ResourcePatternType, ResourceType)
    admin = AdminClient({"bootstrap.servers": addr})
    bindings = []
    for i in range(count):
        kind = i % 4
        if kind == 0:
            b = AclBinding(ResourceType.TOPIC, f"topic-{i}", ResourcePatternType.LITERAL, f"User:user-{i}", "*",
                           AclOperation.WRITE, AclPermissionType.ALLOW)
        elif kind == 1:
            b = AclBinding(ResourceType.TOPIC, f"team-{i}-", ResourcePatternType.PREFIXED, f"User:user-{i}", "*",
                           AclOperation.READ, AclPermissionType.ALLOW)
        elif kind == 2:
            b = AclBinding(ResourceType.GROUP, f"group-{i}", ResourcePatternType.LITERAL, f"User:user-{i}", "*",
                           AclOperation.READ, AclPermissionType.ALLOW)
        else:
            b = AclBinding(ResourceType.TOPIC, f"p{i % 97}-{i}", ResourcePatternType.PREFIXED, f"User:user-{i}",
                           "10.0.0.1", AclOperation.ALL, AclPermissionType.DENY)
        bindings.append(b)
    futures = admin.create_acls(bindings, request_timeout=120)
    for f in futures.values():
        f.result()


def acls(report):
    records = run.n(1_000_000)
    results = {"no authorizer": [], "10,000 ACLs": []}
    rounds = max(run.RUNS, 5)
    authorizer = ["authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                  # The tools (ANONYMOUS, on plaintext) load the ACLs; the producer is `bench`.
                  "super.users=User:ANONYMOUS"]
    props = PROPS + ["security.protocol=SASL_PLAINTEXT", "sasl.mechanism=SCRAM-SHA-512",
                     "sasl.username=bench", f"sasl.password={PASSWORD}"]
    for i in range(rounds):
        for name in results:
            with_acls = name != "no authorizer"
            sb = SecureBroker(authorizer if with_acls else [], protocol="SASL_PLAINTEXT")
            broker = sb.broker
            try:
                topic = f"acl-{i}"
                run.create_topic(broker, topic, 1)
                if with_acls:
                    load_acls(broker.addr, 10_000 - 3)
                    run.run_tool(["acls", "--bootstrap-server", broker.addr, "--add", "--allow-principal", "User:bench",
                                  "--producer", "--topic", topic])
                plain = broker.addr
                broker.addr = sb.secure_addr
                try:
                    results[name].append(measured(broker, records, name, lambda: run.producer_perf(
                        broker, topic, records, RECORD, props)))
                finally:
                    broker.addr = plain
            finally:
                sb.stop()
    report["acls"] = {"records": records, **results}


def render(report):
    rows = ["| measurement | command | goal | min / **median** / max | broker CPU | client CPU | status |",
            "|---|---|---|---|---|---|---|"]


    notes = []
    t = report.get("tls")
    if t:
        for what, goal in (("produce", 0.80), ("consume", 0.60)):
            plain, secure = t[f"{what}-plaintext"], t[f"{what}-sasl_ssl"]
            ratios = [s["mb_per_s"] / p["mb_per_s"] for s, p in zip(secure, plain)]
            tool = "producer-perf" if what == "produce" else "consumer-perf"
            for label, runs in (("PLAINTEXT", plain), ("SASL_SSL (SCRAM-SHA-512, TLS 1.3)", secure)):
                cpu = run.mmm([r["broker_cpu_s_per_gb"] for r in runs])[1]
                client = run.mmm([r.get("client_cpu_s_per_gb", 0) for r in runs])[1]
                rows.append(f"| {what} over {label} | `strata {tool} ... --num-records {t['records']} --record-size 1024` | report | "
                            f"{run.mmm_text([r['mb_per_s'] for r in runs], 1, 'MB/s')} | {cpu:.2f} s/GB | {client:.2f} s/GB | - |")
            mid = run.mmm(ratios)[1]
            rows.append(f"| {what}: SASL_SSL / PLAINTEXT, same run | (the two rows above, run by run) | >= {goal:.0%} | "
                        f"{run.mmm_text([100 * r for r in ratios], 0, '%')} | | | {'met' if mid >= goal else '**missed**'} |")
    c = report.get("connections")
    if c:
        rows.append(f"| new SASL_SSL connections (TCP + TLS 1.3 + ApiVersions + SCRAM-SHA-512), 4 client threads | "
                    f"`python3 bench/security.py connections` | report | {run.mmm_text([r['per_s'] for r in c['runs']], 0, '/s')} | "
                    f"{run.mmm([r['broker_cpu_ms_per_connection'] for r in c['runs']])[1]:.2f} ms each | | - |")
    a = report.get("acls")
    if a:
        none, loaded = a["no authorizer"], a["10,000 ACLs"]
        for label, runs in (("no authorizer", none), ("10,000 ACLs loaded, authorizer on", loaded)):
            cpu = run.mmm([r["broker_cpu_s_per_gb"] for r in runs])[1]
            client = run.mmm([r.get("client_cpu_s_per_gb", 0) for r in runs])[1]
            rows.append(f"| produce, {label} | `strata producer-perf --num-records {a['records']} --record-size 1024` | report | "
                        f"{run.mmm_text([r['mb_per_s'] for r in runs], 1, 'MB/s')} | {cpu:.2f} s/GB | {client:.2f} s/GB | - |")
        ratios = [l["mb_per_s"] / n["mb_per_s"] for l, n in zip(loaded, none)]
        mid = run.mmm(ratios)[1]
        rows.append(f"| produce with 10,000 ACLs / without an authorizer | (the two rows above, run by run) | >= 95% | "
                    f"{run.mmm_text([100 * r for r in ratios], 0, '%')} | | | {'met' if mid >= 0.95 else '**missed**'} |")
        cost = [l["broker_cpu_s_per_gb"] / n["broker_cpu_s_per_gb"] for l, n in zip(loaded, none)]
        rows.append(f"| broker CPU per GB with 10,000 ACLs / without an authorizer | (the two rows above, run by run) | report | "
                    f"{run.mmm_text(cost, 2, 'x')} | | | - |")
    body = "\n".join(rows)
    bound = ""
    if t:
        med = lambda runs, k: run.mmm([r.get(k, 0) for r in runs])[1]
        plain, secure = t["produce-plaintext"], t["produce-sasl_ssl"]
        total_plain = med(plain, "broker_cpu_s_per_gb") + med(plain, "client_cpu_s_per_gb")
        free_broker = med(plain, "broker_cpu_s_per_gb") + med(secure, "client_cpu_s_per_gb")
        if free_broker > 0:
            bound = (f" even a broker whose TLS cost nothing would bring the SASL_SSL produce to about "
                     f"{100 * total_plain / free_broker:.0f}% of PLAINTEXT here (the CPU per GB of the client's TLS "
                     f"produce, {med(secure, 'client_cpu_s_per_gb'):.2f} s/GB, against "
                     f"{med(plain, 'client_cpu_s_per_gb'):.2f} plaintext);")
    body += ("\n\nMachine: " + run.machine() + ". Producer props: `" + " ".join(PROPS) + "`; consumers read what "
             "the producer wrote, 1 partition. The broker and the librdkafka client share the machine's two cores, "
             "and over TLS the client is what binds:" + bound + " the broker's cost per GB is the figure that "
             "compares brokers. librdkafka writes TLS in small pieces: 56,790 write calls for 100 MB produced over "
             "SASL_SSL against 107 sendmsg calls over PLAINTEXT (strace), so the broker decrypts records of about "
             "2 KB, each with its fixed cost. TLS costs sendfile: over PLAINTEXT record bytes go from the page cache "
             "to the socket in the kernel, over TLS they are read into the broker (1 MiB chunks), encrypted by "
             "rustls and written; this kernel offers no kTLS to keep them in the kernel. The SASL producer in the ACL "
             "rows authenticates once per connection; each produce request is then checked against the 10,000 ACLs "
             "(two hash lookups plus one per distinct prefix length). Writes into fresh page cache on this virtual "
             "machine cost the broker up to four times their usual CPU at times (host faults on first touch, visible "
             "as `copy_folio_from_iter_atomic` in a profile), which makes single produce runs swing; `tls` and `acls` "
             "warm the memory first and alternate their configurations. producer-perf no longer spins while "
             "librdkafka's queue is full (the binding's 1 ms poll re-polls without blocking in its last "
             "millisecond): that spin took most of a core from the broker over TLS.")
    run.write_block("security", body, "## Security")


def warmed(part):
    def run_part(report):
        run.warm_memory()
        part(report)
    return run_part


if __name__ == "__main__":
    run.run_parts({"tls": warmed(tls), "connections": connections, "acls": warmed(acls)}, render, "security")
