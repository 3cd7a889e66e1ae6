// kafkajs with SASL SCRAM-SHA-512 over TLS: creates a topic, produces and consumes 20 records
// as bob, and checks that a wrong password is refused. Run by tests/scram.rs with the SASL_SSL
// address and the CA file; prints OK, or FAILED and the reason.
const fs = require('fs');
const { Kafka, logLevel } = require('kafkajs');
const [addr, caFile] = process.argv.slice(2);
const ssl = { ca: [fs.readFileSync(caFile, 'utf-8')] };
const client = (password) => new Kafka({
  clientId: 'kjs-scram', brokers: [addr], logLevel: logLevel.NOTHING, ssl,
  sasl: { mechanism: 'scram-sha-512', username: 'bob', password },
  retry: { retries: 0 },
});
function check(cond, what) { if (!cond) { console.log('FAILED: ' + what); process.exit(1); } }
(async () => {
  const kafka = client('bob-secret');
  const admin = kafka.admin(); await admin.connect();
  await admin.createTopics({ topics: [{ topic: 'js-scram', numPartitions: 1 }] });
  const producer = kafka.producer(); await producer.connect();
  const messages = []; for (let i = 0; i < 20; i++) messages.push({ value: 'v' + i });
  await producer.send({ topic: 'js-scram', messages });
  const seen = [];
  const consumer = kafka.consumer({ groupId: 'js-scram-g' });
  await consumer.connect();
  await consumer.subscribe({ topic: 'js-scram', fromBeginning: true });
  await consumer.run({ eachMessage: async ({ message }) => { seen.push(message.value.toString()); } });
  const deadline = Date.now() + 30000;
  while (seen.length < 20 && Date.now() < deadline) await new Promise(r => setTimeout(r, 100));
  check(seen.length === 20 && seen[19] === 'v19', 'consumed ' + JSON.stringify(seen));
  await consumer.disconnect(); await producer.disconnect(); await admin.disconnect();
  let refused = false;
  const wrong = client('not-bobs').admin();
  try { await wrong.connect(); } catch (e) { refused = /SASL|authentication/i.test(e.message + e.type); }
  check(refused, 'a wrong password connected');
  console.log('OK');
})().catch(e => { console.log('FAILED: ' + e.stack); process.exit(1); });
