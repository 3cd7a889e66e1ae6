"""kafka-python over SASL_SSL with PLAIN: it produces and reads back with the right password,
and a wrong one is refused. Run by tests/security.rs with the SASL_SSL listener's address and
the CA file; prints OK at the end.
"""
import sys

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

bootstrap, cafile = sys.argv[1], sys.argv[2]
TOPIC = "py-secure"


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", flush=True)
        sys.exit(1)


def settings(password):
    return dict(bootstrap_servers=bootstrap, security_protocol="SASL_SSL", sasl_mechanism="PLAIN",
                sasl_plain_username="alice", sasl_plain_password=password, ssl_cafile=cafile,
                request_timeout_ms=10000)


producer = KafkaProducer(**settings("alice-secret"))
for i in range(20):
    producer.send(TOPIC, value=f"py-{i}".encode(), partition=0)
producer.flush(10)
producer.close()

consumer = KafkaConsumer(**settings("alice-secret"), auto_offset_reset="earliest",
                         enable_auto_commit=False, consumer_timeout_ms=10000)
consumer.assign([TopicPartition(TOPIC, 0)])
got = []
for message in consumer:
    got.append(message.value.decode())
    if len(got) == 20:
        break
consumer.close()
check(got == [f"py-{i}" for i in range(20)], f"read back {got}")

try:
    wrong = KafkaProducer(**settings("wrong-password"), max_block_ms=5000)
    wrong.send(TOPIC, value=b"intruder", partition=0).get(timeout=5)
    check(False, "a wrong password produced")
except KafkaError:
    pass

print("OK", flush=True)
