"""Consumer groups with kafka-python (a client not built on librdkafka): produce, two members of a
group split a topic, offsets are committed and read back, the admin client lists, describes and
deletes the group. Run by tests/python_clients.rs with the broker's address; exits non-zero (with
a message) on the first thing that is not as Kafka would have it."""
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

bootstrap = sys.argv[1]


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", flush=True)
        sys.exit(1)


admin = KafkaAdminClient(bootstrap_servers=bootstrap)
admin.create_topics([NewTopic("py", 4, 1)])
producer = KafkaProducer(bootstrap_servers=bootstrap)
for i in range(100):
    producer.send("py", value=b"v%d" % i, partition=i % 4)
producer.flush()


def member():
    return KafkaConsumer("py", bootstrap_servers=bootstrap, group_id="pyg", auto_offset_reset="earliest",
                         enable_auto_commit=False)


c1 = member()
values = set()
deadline = time.time() + 30
while len(values) < 100 and time.time() < deadline:
    for _, msgs in c1.poll(timeout_ms=200).items():
        values.update(m.value for m in msgs)
check(values == {b"v%d" % i for i in range(100)}, f"one member reads all 100 records (got {len(values)})")
c1.commit()
check(c1.committed(TopicPartition("py", 0)) == 25, "the commit reads back")

c2 = member()
deadline = time.time() + 30
while time.time() < deadline:
    c1.poll(timeout_ms=100)
    c2.poll(timeout_ms=100)
    if len(c1.assignment()) == 2 and len(c2.assignment()) == 2:
        break
a1 = {tp.partition for tp in c1.assignment()}
a2 = {tp.partition for tp in c2.assignment()}
check(len(a1) == 2 and len(a2) == 2 and a1 | a2 == {0, 1, 2, 3}, f"two members split the partitions ({a1}, {a2})")

groups = admin.list_groups()
check(any(g["group_id"] == "pyg" and g["group_state"] == "Stable" for g in groups), f"list_groups: {groups}")
described = admin.describe_groups(["pyg"])["pyg"]
check(described["group_state"] == "Stable" and len(described["members"]) == 2, f"describe_groups: {described}")
assigned = sorted(p for m in described["members"] for a in m["member_assignment"]["assigned_partitions"]
                  for p in a["partitions"])
check(assigned == [0, 1, 2, 3], f"assignments in describe_groups: {assigned}")
# Both groups in one request (OffsetFetch v8+ with several groups).
offsets = admin.list_group_offsets(["pyg", "nobody"])
check({tp.partition: o.offset for tp, o in offsets["pyg"].items()} == {0: 25, 1: 25, 2: 25, 3: 25},
      f"list_group_offsets: {offsets}")
check(not offsets["nobody"], f"an unknown group has no offsets: {offsets}")

c1.close()
c2.close()
deadline = time.time() + 30
while time.time() < deadline:
    if admin.describe_groups(["pyg"])["pyg"]["group_state"] == "Empty":
        break
    time.sleep(0.2)
admin.delete_groups(["pyg"])
check(all(g["group_id"] != "pyg" for g in admin.list_groups()), "the group is deleted")
print("OK", flush=True)
