"""A compacted topic read to its end by confluent-kafka (librdkafka) and kafka-python after the
cleaner ran: offset gaps, a tombstone, committed transactional records, an aborted transaction
removed (its producer's last batch kept empty) and transaction markers among the records. Run by
tests/python_clients.rs with the broker's address (cleaner backoff 100 ms); prints OK at the end.
"""
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer
from kafka import TopicPartition as KTopicPartition

bootstrap = sys.argv[1]
TOPIC = "compacted"


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", flush=True)
        sys.exit(1)


admin = AdminClient({"bootstrap.servers": bootstrap})
futures = admin.create_topics([NewTopic(TOPIC, 1, 1, config={
    "cleanup.policy": "compact", "segment.ms": "500", "min.cleanable.dirty.ratio": "0.01"})])
futures[TOPIC].result(10)

tx = Producer({"bootstrap.servers": bootstrap, "transactional.id": "compact-tx"})
tx.init_transactions(10)
tx.begin_transaction()
for k in "abcde":
    tx.produce(TOPIC, key=k, value="v1", partition=0)
tx.commit_transaction(10)

plain = Producer({"bootstrap.servers": bootstrap})
plain.produce(TOPIC, key="a", value="v2", partition=0)
plain.produce(TOPIC, key="b", value="v2", partition=0)
plain.produce(TOPIC, key="c", value=None, partition=0)
check(plain.flush(10) == 0, "plain records delivered")

tx.begin_transaction()
tx.produce(TOPIC, key="a", value="aborted", partition=0)
tx.produce(TOPIC, key="f", value="aborted", partition=0)
tx.flush(10)
tx.abort_transaction(10)

# segment.ms passes: the next record rolls the segment, so all of the above can be cleaned.
time.sleep(1.0)
plain.produce(TOPIC, key="end", value="last", partition=0)
check(plain.flush(10) == 0, "last record delivered")

EXPECTED = [("d", "v1"), ("e", "v1"), ("a", "v2"), ("b", "v2"), ("c", None), ("end", "last")]


def read_confluent(isolation):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader-" + isolation,
                  "enable.auto.commit": False, "isolation.level": isolation,
                  "enable.partition.eof": True})
    c.assign([TopicPartition(TOPIC, 0, 0)])
    out = []
    deadline = time.time() + 20
    while time.time() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            if m.error().code() == -191:  # _PARTITION_EOF
                break
            check(False, f"consume error {m.error()}")
        out.append((m.offset(), m.key().decode(),
                    None if m.value() is None else m.value().decode()))
    c.close()
    return out


def read_kafka_python():
    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                      isolation_level="read_uncommitted")
    tp = KTopicPartition(TOPIC, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    end = c.end_offsets([tp])[tp]
    out = []
    deadline = time.time() + 20
    while time.time() < deadline and c.position(tp) < end:
        for _, msgs in c.poll(timeout_ms=200).items():
            out.extend((m.offset, m.key.decode(),
                        None if m.value is None else m.value.decode()) for m in msgs)
    c.close()
    return out


# The cleaner runs in the background: wait until a reader sees the compacted log.
deadline = time.time() + 30
got = []
while time.time() < deadline:
    got = read_confluent("read_uncommitted")
    if [(k, v) for _, k, v in got] == EXPECTED:
        break
    time.sleep(0.3)
check([(k, v) for _, k, v in got] == EXPECTED, f"compacted log {got}")
offsets = [o for o, _, _ in got]
check(offsets == sorted(offsets) and offsets[-1] - offsets[0] + 1 > len(offsets),
      f"offsets keep their values, with gaps: {offsets}")
check(read_confluent("read_committed") == got, "read_committed reads the same")
check(read_kafka_python() == got, f"kafka-python reads the same: {read_kafka_python()}")
print("OK")
