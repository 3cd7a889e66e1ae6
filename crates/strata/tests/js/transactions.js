// Transactions with kafkajs: a committed and an aborted transaction, read back by a
// read_committed consumer (kafkajs' default) and a read_uncommitted one, and sendOffsets, whose
// offsets reach the group only when its transaction commits. Run by tests/js_clients.rs with the
// broker address; prints OK, or FAILED and the reason.
const { Kafka, logLevel } = require('kafkajs');
const kafka = new Kafka({ clientId: 'kjs-tx', brokers: [process.argv[2]], logLevel: logLevel.WARN });
function check(cond, what) { if (!cond) { console.log('FAILED: ' + what); process.exit(1); } }
const sleep = ms => new Promise(r => setTimeout(r, ms));
async function readAll(readUncommitted, expect) {
  const seen = [];
  const consumer = kafka.consumer({ groupId: 'reader-' + readUncommitted + '-' + Date.now(), readUncommitted });
  await consumer.connect();
  await consumer.subscribe({ topic: 'jtx', fromBeginning: true });
  await consumer.run({ eachMessage: async ({ message }) => { seen.push(message.value.toString()); } });
  const deadline = Date.now() + 30000;
  while (seen.length < expect && Date.now() < deadline) await sleep(100);
  await sleep(1000); // anything more would arrive now
  await consumer.disconnect();
  return seen;
}
(async () => {
  const admin = kafka.admin(); await admin.connect();
  await admin.createTopics({ topics: [{ topic: 'jtx', numPartitions: 1 }] });
  const producer = kafka.producer({ transactionalId: 'jtx-1', idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const committed = await producer.transaction();
  await committed.send({ topic: 'jtx', messages: [{ value: 'c1' }, { value: 'c2' }] });
  await committed.commit();
  const aborted = await producer.transaction();
  await aborted.send({ topic: 'jtx', messages: [{ value: 'a1' }, { value: 'a2' }, { value: 'a3' }] });
  await aborted.abort();
  // Offsets sent with a transaction: kept when it commits, dropped when it aborts.
  const withOffsets = await producer.transaction();
  await withOffsets.send({ topic: 'jtx', messages: [{ value: 'c3' }] });
  await withOffsets.sendOffsets({ consumerGroupId: 'jtx-group', topics: [{ topic: 'jtx', partitions: [{ partition: 0, offset: '2' }] }] });
  await withOffsets.commit();
  const dropped = await producer.transaction();
  await dropped.sendOffsets({ consumerGroupId: 'jtx-group', topics: [{ topic: 'jtx', partitions: [{ partition: 0, offset: '5' }] }] });
  await dropped.abort();
  const offsets = await admin.fetchOffsets({ groupId: 'jtx-group', topics: ['jtx'] });
  check(offsets[0].partitions[0].offset === '2', 'group offset ' + JSON.stringify(offsets));
  const rc = await readAll(false, 3);
  check(JSON.stringify(rc) === JSON.stringify(['c1', 'c2', 'c3']), 'read_committed ' + JSON.stringify(rc));
  const ru = await readAll(true, 6);
  check(JSON.stringify(ru) === JSON.stringify(['c1', 'c2', 'a1', 'a2', 'a3', 'c3']), 'read_uncommitted ' + JSON.stringify(ru));
  await producer.disconnect(); await admin.disconnect();
  console.log('OK');
})().catch(e => { console.log('FAILED: ' + e.stack); process.exit(1); });
