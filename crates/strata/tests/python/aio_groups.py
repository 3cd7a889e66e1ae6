"""Consumer groups with aiokafka (asyncio, its own protocol code): produce, two members of a group
split a topic, commit, and a new member resumes from the committed offsets. Run by
tests/python_clients.rs with the broker address; prints OK, or FAILED and the reason."""
import asyncio
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

bootstrap = sys.argv[1]


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", flush=True)
        sys.exit(1)


async def main():
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic("aio", 4, 1)])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    for i in range(100):
        await producer.send_and_wait("aio", b"v%d" % i, partition=i % 4)
    await producer.stop()

    def member():
        return AIOKafkaConsumer("aio", bootstrap_servers=bootstrap, group_id="aiog",
                                auto_offset_reset="earliest", enable_auto_commit=False)

    c1 = member()
    await c1.start()
    values = set()
    loop = asyncio.get_event_loop()
    deadline = loop.time() + 30
    while len(values) < 100 and loop.time() < deadline:
        batches = await c1.getmany(timeout_ms=200)
        for msgs in batches.values():
            values.update(m.value for m in msgs)
    check(len(values) == 100, f"one member reads all 100 records (got {len(values)})")
    await c1.commit({TopicPartition("aio", p): 20 for p in range(4)})
    check(await c1.committed(TopicPartition("aio", 0)) == 20, "the commit reads back")
    c2 = member()
    await c2.start()
    deadline = loop.time() + 30
    while loop.time() < deadline:
        await c1.getmany(timeout_ms=100)
        await c2.getmany(timeout_ms=100)
        if len(c1.assignment()) == 2 and len(c2.assignment()) == 2:
            break
    a1 = {tp.partition for tp in c1.assignment()}
    a2 = {tp.partition for tp in c2.assignment()}
    check(a1 | a2 == {0, 1, 2, 3} and len(a1) == 2, f"two members split the partitions ({a1}, {a2})")
    await c1.stop()
    await c2.stop()
    # A new member resumes from the committed offsets: 5 records per partition remain.
    c3 = member()
    await c3.start()
    rest = []
    deadline = loop.time() + 30
    while len(rest) < 20 and loop.time() < deadline:
        for msgs in (await c3.getmany(timeout_ms=200)).values():
            rest.extend(msgs)
    check(len(rest) == 20 and all(m.offset >= 20 for m in rest), f"resumed at the commits: {len(rest)}")
    await c3.stop()
    await admin.close()
    print("OK", flush=True)


asyncio.run(main())
