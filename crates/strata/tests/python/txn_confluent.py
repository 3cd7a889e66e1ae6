"""Transactions with confluent-kafka (librdkafka's Python client): committed and aborted
transactions read back by read_committed and read_uncommitted consumers, a zombie producer fenced
by a new one with the same transactional id, and consume-transform-produce with
send_offsets_to_transaction, whose offsets reach the group only when the transaction commits.
Run by tests/python_clients.rs with the broker's address; prints OK at the end."""
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

bootstrap = sys.argv[1]


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", flush=True)
        sys.exit(1)


admin = AdminClient({"bootstrap.servers": bootstrap})
for f in admin.create_topics([NewTopic("tx-out", 2, 1), NewTopic("tx-in", 1, 1),
                              NewTopic("tx-fence", 1, 1)]).values():
    f.result()


def txn_producer(txn_id, **extra):
    conf = {"bootstrap.servers": bootstrap, "transactional.id": txn_id, "linger.ms": 5}
    conf.update(extra)
    p = Producer(conf)
    p.init_transactions(30)
    return p


def read_all(topic, partitions, isolation, expect=None, seconds=20):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{isolation}-{time.time()}",
                  "isolation.level": isolation, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    values = []
    deadline = time.time() + seconds
    idle_until = time.time() + 3
    while time.time() < deadline:
        m = c.poll(0.2)
        if m is None:
            if (expect is not None and len(values) >= expect) and time.time() > idle_until:
                break
            continue
        check(m.error() is None, f"consumer error {m.error()}")
        values.append(m.value().decode())
        idle_until = time.time() + 1
    c.close()
    return values


# 1. A mix of committed and aborted transactions over two partitions.
p = txn_producer("tx-mix")
for i in range(6):
    p.begin_transaction()
    for j in range(10):
        p.produce("tx-out", value=f"{i}-{j}", partition=j % 2)
    p.flush()
    if i % 2 == 0:
        p.commit_transaction(30)
    else:
        p.abort_transaction(30)
committed = read_all("tx-out", 2, "read_committed", expect=30)
everything = read_all("tx-out", 2, "read_uncommitted", expect=60)
check(sorted(committed) == sorted(f"{i}-{j}" for i in (0, 2, 4) for j in range(10)),
      f"read_committed sees exactly the committed transactions: {sorted(committed)}")
check(len(everything) == 60, f"read_uncommitted sees all 60 records, got {len(everything)}")

# An open transaction holds read_committed consumers back at its first offset; its commit
# releases them.
p.begin_transaction()
p.produce("tx-out", value="open-0", partition=0)
p.flush()
before = read_all("tx-out", 2, "read_committed", expect=30, seconds=5)
check("open-0" not in before and len(before) == 30, "an open transaction's record is not read")
c = Consumer({"bootstrap.servers": bootstrap, "group.id": "lso", "isolation.level": "read_committed"})
low, high = c.get_watermark_offsets(TopicPartition("tx-out", 0), timeout=10)
c.close()
p.commit_transaction(30)
after = read_all("tx-out", 2, "read_committed", expect=31)
check("open-0" in after, "the committed record is read")

# 2. Fencing: a second producer with the same transactional id aborts the first one's open
# transaction, and the first one can no longer commit.
zombie = txn_producer("tx-fenced")
zombie.begin_transaction()
zombie.produce("tx-fence", value="zombie")
zombie.flush()
successor = txn_producer("tx-fenced")
try:
    zombie.produce("tx-fence", value="zombie-2")
    zombie.flush(5)
    zombie.commit_transaction(10)
    check(False, "the fenced producer committed")
except KafkaException as e:
    err = e.args[0]
    check(err.fatal() or "fenced" in str(err).lower(), f"the zombie is fenced: {err}")
successor.begin_transaction()
successor.produce("tx-fence", value="successor")
successor.flush()
successor.commit_transaction(30)
fenced = read_all("tx-fence", 1, "read_committed", expect=1)
check(fenced == ["successor"], f"only the successor's record is committed: {fenced}")

# 3. Consume-transform-produce: offsets committed with the transaction.
plain = Producer({"bootstrap.servers": bootstrap})
for i in range(20):
    plain.produce("tx-in", value=f"in-{i}")
plain.flush()
consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "ctp", "enable.auto.commit": False,
                     "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
consumer.subscribe(["tx-in"])
ctp = txn_producer("tx-ctp")


def transform_batch(commit):
    got = []
    deadline = time.time() + 30
    while len(got) < 10 and time.time() < deadline:
        m = consumer.poll(0.5)
        if m is None or m.error():
            continue
        got.append(m)
    check(len(got) == 10, f"the consumer reads 10 records, got {len(got)}")
    ctp.begin_transaction()
    for m in got:
        ctp.produce("tx-out", value="t-" + m.value().decode(), partition=1)
    ctp.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                    consumer.consumer_group_metadata(), 30)
    if commit:
        ctp.commit_transaction(30)
    else:
        ctp.abort_transaction(30)
    return [m.value().decode() for m in got]


first = transform_batch(True)
check(first == [f"in-{i}" for i in range(10)], f"first batch {first}")
offsets = consumer.committed([TopicPartition("tx-in", 0)], timeout=10)
check(offsets[0].offset == 10, f"the committed transaction moved the group to 10: {offsets}")
second = transform_batch(False)
offsets = consumer.committed([TopicPartition("tx-in", 0)], timeout=10)
check(offsets[0].offset == 10, f"the aborted transaction left the group at 10: {offsets}")
consumer.close()
outputs = [v for v in read_all("tx-out", 2, "read_committed", expect=41) if v.startswith("t-")]
check(sorted(outputs) == sorted(f"t-in-{i}" for i in range(10)),
      f"only the committed transformation is visible: {outputs}")
print("OK")
