// Consumer groups with kafkajs (a pure JavaScript client): produce, a group member consumes and
// auto-commits, the admin client fetches offsets, lists, describes and deletes the group. Run by
// tests/js_clients.rs with the broker address; prints OK, or FAILED and the reason.
const { Kafka, logLevel } = require('kafkajs');
const kafka = new Kafka({ clientId: 'kjs', brokers: [process.argv[2]], logLevel: logLevel.WARN });
function check(cond, what) { if (!cond) { console.log('FAILED: ' + what); process.exit(1); } }
(async () => {
  const admin = kafka.admin(); await admin.connect();
  await admin.createTopics({ topics: [{ topic: 'js', numPartitions: 4 }] });
  const producer = kafka.producer(); await producer.connect();
  const messages = []; for (let i = 0; i < 100; i++) messages.push({ value: 'v' + i, partition: i % 4 });
  await producer.send({ topic: 'js', messages });
  const seen = new Set();
  const consumer = kafka.consumer({ groupId: 'jsg' });
  await consumer.connect();
  await consumer.subscribe({ topic: 'js', fromBeginning: true });
  await consumer.run({ eachMessage: async ({ message }) => { seen.add(message.value.toString()); } });
  const deadline = Date.now() + 30000;
  while (seen.size < 100 && Date.now() < deadline) await new Promise(r => setTimeout(r, 100));
  check(seen.size === 100, 'consumed ' + seen.size);
  // kafkajs commits as it goes (autoCommit); wait for the offsets to land.
  let offsets;
  for (let i = 0; i < 100; i++) {
    offsets = await admin.fetchOffsets({ groupId: 'jsg', topics: ['js'] });
    if (offsets[0].partitions.every(p => p.offset === '25')) break;
    await new Promise(r => setTimeout(r, 100));
  }
  check(offsets[0].partitions.every(p => p.offset === '25'), 'committed ' + JSON.stringify(offsets));
  const groups = await admin.listGroups();
  check(groups.groups.some(g => g.groupId === 'jsg'), 'listGroups ' + JSON.stringify(groups));
  const described = await admin.describeGroups(['jsg']);
  check(described.groups[0].state === 'Stable' && described.groups[0].members.length === 1, 'describeGroups ' + JSON.stringify(described));
  await consumer.disconnect();
  await admin.deleteGroups(['jsg']);
  const after = await admin.listGroups();
  check(!after.groups.some(g => g.groupId === 'jsg'), 'deleted');
  await producer.disconnect(); await admin.disconnect();
  console.log('OK');
})().catch(e => { console.log('FAILED: ' + e.stack); process.exit(1); });
