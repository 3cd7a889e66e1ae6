"""Transactions with aiokafka: a committed and an aborted transaction (its context manager
aborts on an exception), read back by a read_committed consumer, and send_offsets_to_transaction
moving a group's offset only when the transaction commits. Run by tests/python_clients.rs with
the broker's address; prints OK at the end."""
import asyncio
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

bootstrap = sys.argv[1]


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", flush=True)
        sys.exit(1)


class Abort(Exception):
    pass


async def main():
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic("aiotx", 1, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id="aio-tx")
    await producer.start()
    async with producer.transaction():
        for i in range(4):
            await producer.send_and_wait("aiotx", b"c%d" % i)
    try:
        async with producer.transaction():
            await producer.send_and_wait("aiotx", b"aborted")
            raise Abort()
    except Abort:
        pass
    async with producer.transaction():
        await producer.send_and_wait("aiotx", b"c4")
        await producer.send_offsets_to_transaction({TopicPartition("aiotx", 0): 3}, "aio-group")
    try:
        async with producer.transaction():
            await producer.send_offsets_to_transaction({TopicPartition("aiotx", 0): 5}, "aio-group")
            raise Abort()
    except Abort:
        pass
    await producer.stop()

    consumer = AIOKafkaConsumer("aiotx", bootstrap_servers=bootstrap, group_id="aio-group",
                                isolation_level="read_committed", auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    committed = await consumer.committed(TopicPartition("aiotx", 0))
    check(committed == 3, f"the committed transaction's offset, not the aborted one's: {committed}")
    await consumer.stop()

    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                              auto_offset_reset="earliest", enable_auto_commit=False)
    await reader.start()
    reader.assign([TopicPartition("aiotx", 0)])
    await reader.seek_to_beginning()
    values = []
    try:
        while len(values) < 5:
            batch = await asyncio.wait_for(reader.getmany(timeout_ms=500), 20)
            for msgs in batch.values():
                values.extend(m.value for m in msgs)
    except asyncio.TimeoutError:
        pass
    await reader.stop()
    check(values == [b"c0", b"c1", b"c2", b"c3", b"c4"], f"read_committed {values}")
    print("OK")


asyncio.run(main())
