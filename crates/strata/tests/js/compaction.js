// A compacted topic read to its end by kafkajs after the cleaner ran: offset gaps, a tombstone,
// committed transactional records and an aborted transaction removed (its producer's last batch
// kept empty), with transaction markers among the records. Run by tests/js_clients.rs with the
// broker address (cleaner backoff 100 ms); prints OK, or FAILED and the reason.
const { Kafka, logLevel } = require('kafkajs');
const kafka = new Kafka({ clientId: 'kjs-compact', brokers: [process.argv[2]], logLevel: logLevel.WARN });
function check(cond, what) { if (!cond) { console.log('FAILED: ' + what); process.exit(1); } }
const sleep = ms => new Promise(r => setTimeout(r, ms));
const TOPIC = 'jcompact';
const EXPECTED = [['d', 'v1'], ['e', 'v1'], ['a', 'v2'], ['b', 'v2'], ['c', null], ['end', 'last']];
async function readAll(readUncommitted, end) {
  const seen = [];
  const consumer = kafka.consumer({ groupId: 'reader-' + readUncommitted + '-' + Date.now(), readUncommitted });
  await consumer.connect();
  await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
  let last = -1;
  await consumer.run({ eachMessage: async ({ message }) => {
    last = Number(message.offset);
    seen.push([last, message.key.toString(), message.value === null ? null : message.value.toString()]);
  } });
  const deadline = Date.now() + 20000;
  while (last < end && Date.now() < deadline) await sleep(50);
  await consumer.disconnect();
  return seen;
}
(async () => {
  const admin = kafka.admin(); await admin.connect();
  await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 1, configEntries: [
    { name: 'cleanup.policy', value: 'compact' }, { name: 'segment.ms', value: '500' },
    { name: 'min.cleanable.dirty.ratio', value: '0.01' }] }] });
  const tx = kafka.producer({ transactionalId: 'jcompact-tx', idempotent: true, maxInFlightRequests: 1 });
  await tx.connect();
  const t1 = await tx.transaction();
  await t1.send({ topic: TOPIC, messages: 'abcde'.split('').map(k => ({ key: k, value: 'v1', partition: 0 })) });
  await t1.commit();
  const plain = kafka.producer(); await plain.connect();
  await plain.send({ topic: TOPIC, messages: [{ key: 'a', value: 'v2', partition: 0 }, { key: 'b', value: 'v2', partition: 0 },
    { key: 'c', value: null, partition: 0 }] });
  const t2 = await tx.transaction();
  await t2.send({ topic: TOPIC, messages: [{ key: 'a', value: 'aborted', partition: 0 }, { key: 'f', value: 'aborted', partition: 0 }] });
  await t2.abort();
  // segment.ms passes: the next record rolls the segment, so all of the above can be cleaned.
  await sleep(1000);
  const [sent] = await plain.send({ topic: TOPIC, messages: [{ key: 'end', value: 'last', partition: 0 }] });
  const end = Number(sent.baseOffset);
  let got = [];
  const deadline = Date.now() + 30000;
  while (Date.now() < deadline) {
    got = await readAll(true, end);
    if (JSON.stringify(got.map(r => [r[1], r[2]])) === JSON.stringify(EXPECTED)) break;
    await sleep(300);
  }
  check(JSON.stringify(got.map(r => [r[1], r[2]])) === JSON.stringify(EXPECTED), 'compacted log ' + JSON.stringify(got));
  const offsets = got.map(r => r[0]);
  check(offsets[offsets.length - 1] - offsets[0] + 1 > offsets.length, 'offsets with gaps ' + JSON.stringify(offsets));
  const committed = await readAll(false, end);
  check(JSON.stringify(committed) === JSON.stringify(got), 'read_committed ' + JSON.stringify(committed));
  await tx.disconnect(); await plain.disconnect(); await admin.disconnect();
  console.log('OK');
})().catch(e => { console.log('FAILED: ' + e.stack); process.exit(1); });
