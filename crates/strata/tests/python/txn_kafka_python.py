"""Transactions with kafka-python's transactional producer: a committed and an aborted
transaction, read back by read_committed and read_uncommitted consumers. Run by
tests/python_clients.rs with the broker's address; prints OK at the end."""
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

bootstrap = sys.argv[1]


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", flush=True)
        sys.exit(1)


KafkaAdminClient(bootstrap_servers=bootstrap).create_topics([NewTopic("kptx", 1, 1)])
producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id="kp-tx")
producer.init_transactions()
producer.begin_transaction()
for i in range(5):
    producer.send("kptx", value=b"c%d" % i)
producer.commit_transaction()
producer.begin_transaction()
for i in range(3):
    producer.send("kptx", value=b"a%d" % i)
producer.flush()
producer.abort_transaction()
producer.begin_transaction()
producer.send("kptx", value=b"last")
producer.commit_transaction()


def read(isolation, expect):
    c = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation,
                      auto_offset_reset="earliest", enable_auto_commit=False)
    c.assign([TopicPartition("kptx", 0)])
    c.seek_to_beginning()
    values = []
    deadline = time.time() + 20
    while time.time() < deadline and len(values) < expect:
        for _, msgs in c.poll(timeout_ms=200).items():
            values.extend(m.value for m in msgs)
    c.close()
    return values


committed = read("read_committed", 6)
check(committed == [b"c%d" % i for i in range(5)] + [b"last"], f"read_committed {committed}")
everything = read("read_uncommitted", 9)
check(len(everything) == 9, f"read_uncommitted {everything}")
print("OK")
