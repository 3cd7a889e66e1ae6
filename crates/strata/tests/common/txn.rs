//! A transactional producer speaking the protocol itself, and the reads transaction tests check
//! with (tests/transactions.rs).

use std::time::Duration;

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strata::client::Client;
use strata_storage::batch::{build_batch, encode_simple_records, ATTR_TRANSACTIONAL};

use super::consumer;

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub fn txn_id(v: &str) -> TransactionalId {
    TransactionalId(s(v))
}

/// A transactional producer speaking the protocol itself.
pub struct TxnClient {
    pub client: Client,
    pub id: String,
    pub pid: i64,
    pub epoch: i16,
    /// The next sequence of each partition.
    sequences: std::collections::HashMap<(String, i32), i32>,
}

impl TxnClient {
    pub async fn connect(addr: &str, id: &str) -> TxnClient {
        TxnClient {
            client: Client::connect(addr).await.expect("connect"),
            id: id.to_string(),
            pid: -1,
            epoch: -1,
            sequences: Default::default(),
        }
    }

    pub async fn init(&mut self, timeout_ms: i32) -> i16 {
        let r = self
            .client
            .send(
                InitProducerIdRequest::default()
                    .with_transactional_id(Some(txn_id(&self.id)))
                    .with_transaction_timeout_ms(timeout_ms)
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1),
            )
            .await
            .expect("InitProducerId");
        if r.error_code == 0 {
            self.pid = r.producer_id.0;
            self.epoch = r.producer_epoch;
            self.sequences.clear();
        }
        r.error_code
    }

    /// AddPartitionsToTxn at `version`: each partition's error.
    pub async fn add_at(&mut self, version: i16, partitions: &[(&str, i32)]) -> Vec<i16> {
        let mut topics: Vec<AddPartitionsToTxnTopic> = Vec::new();
        for (t, p) in partitions {
            match topics.iter_mut().find(|x| x.name.0.as_str() == *t) {
                Some(x) => x.partitions.push(*p),
                None => topics.push(
                    AddPartitionsToTxnTopic::default()
                        .with_name(TopicName(s(t)))
                        .with_partitions(vec![*p]),
                ),
            }
        }
        let r: AddPartitionsToTxnResponse = self
            .client
            .send_versioned(
                AddPartitionsToTxnRequest::default()
                    .with_v3_and_below_transactional_id(txn_id(&self.id))
                    .with_v3_and_below_producer_id(ProducerId(self.pid))
                    .with_v3_and_below_producer_epoch(self.epoch)
                    .with_v3_and_below_topics(topics),
                version,
            )
            .await
            .expect("AddPartitionsToTxn");
        let mut out = Vec::new();
        for (t, p) in partitions {
            let topic = r
                .results_by_topic_v3_and_below
                .iter()
                .find(|x| x.name.0.as_str() == *t)
                .expect("topic answered");
            let part = topic
                .results_by_partition
                .iter()
                .find(|x| x.partition_index == *p)
                .expect("partition answered");
            out.push(part.partition_error_code);
        }
        out
    }

    pub async fn add(&mut self, partitions: &[(&str, i32)]) -> Vec<i16> {
        self.add_at(3, partitions).await
    }

    /// A transactional produce of `n` records: its error code.
    pub async fn produce(&mut self, topic: &str, partition: i32, n: i32) -> i16 {
        let values: Vec<Vec<u8>> = (0..n).map(|i| format!("v{i}").into_bytes()).collect();
        let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        let records = encode_simple_records(&refs, &vec![0; n as usize]);
        let key = (topic.to_string(), partition);
        let sequence = self.sequences.get(&key).copied().unwrap_or(0);
        let batch = build_batch(
            0,
            ATTR_TRANSACTIONAL,
            n - 1,
            1,
            1,
            self.pid,
            self.epoch,
            sequence,
            n,
            &records,
        );
        let r = self
            .client
            .send(
                ProduceRequest::default()
                    .with_transactional_id(Some(txn_id(&self.id)))
                    .with_acks(-1)
                    .with_timeout_ms(5000)
                    .with_topic_data(vec![TopicProduceData::default()
                        .with_name(TopicName(s(topic)))
                        .with_partition_data(vec![PartitionProduceData::default()
                            .with_index(partition)
                            .with_records(Some(batch.into()))])]),
            )
            .await
            .expect("Produce");
        let code = r.responses[0].partition_responses[0].error_code;
        if code == 0 {
            self.sequences.insert(key, sequence + n);
        }
        code
    }

    pub async fn end(&mut self, commit: bool) -> i16 {
        self.end_at(3, commit).await
    }

    pub async fn end_at(&mut self, version: i16, commit: bool) -> i16 {
        let r: EndTxnResponse = self
            .client
            .send_versioned(
                EndTxnRequest::default()
                    .with_transactional_id(txn_id(&self.id))
                    .with_producer_id(ProducerId(self.pid))
                    .with_producer_epoch(self.epoch)
                    .with_committed(commit),
                version,
            )
            .await
            .expect("EndTxn");
        r.error_code
    }
}

pub async fn describe(
    client: &mut Client,
    id: &str,
) -> describe_transactions_response::TransactionState {
    let r = client
        .send(DescribeTransactionsRequest::default().with_transactional_ids(vec![txn_id(id)]))
        .await
        .expect("DescribeTransactions");
    r.transaction_states.into_iter().next().expect("one answer")
}

/// ListOffsets latest for one partition: read_committed (the last stable offset) or not.
pub async fn latest(client: &mut Client, topic: &str, partition: i32, committed: bool) -> i64 {
    list_offset(client, topic, partition, -1, committed).await
}

/// ListOffsets for one partition at `timestamp` (-1 latest, -2 earliest), read_uncommitted.
pub async fn latest_at(client: &mut Client, topic: &str, partition: i32, timestamp: i64) -> i64 {
    list_offset(client, topic, partition, timestamp, false).await
}

async fn list_offset(
    client: &mut Client,
    topic: &str,
    partition: i32,
    timestamp: i64,
    committed: bool,
) -> i64 {
    let r = client
        .send(
            ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_isolation_level(i8::from(committed))
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_partitions(vec![ListOffsetsPartition::default()
                        .with_partition_index(partition)
                        .with_timestamp(timestamp)])]),
        )
        .await
        .expect("ListOffsets");
    r.topics[0].partitions[0].offset
}

/// Reads a partition from the start with rdkafka: the values, once `expect` came and nothing
/// more arrives for a moment.
pub fn consume_partition(
    addr: &str,
    topic: &str,
    partition: i32,
    isolation: &str,
    expect: usize,
) -> Vec<String> {
    use rdkafka::consumer::Consumer;
    use rdkafka::message::Message;
    let c = consumer(addr, &[("isolation.level", isolation)]);
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, rdkafka::Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut quiet_until = std::time::Instant::now() + Duration::from_secs(1);
    while std::time::Instant::now() < deadline {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                out.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
                quiet_until = std::time::Instant::now() + Duration::from_millis(500);
            }
            Some(Err(e)) => panic!("consumer error {e}"),
            None if out.len() >= expect && std::time::Instant::now() > quiet_until => break,
            None => {}
        }
    }
    out
}
