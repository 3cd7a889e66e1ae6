//! The APIs that librdkafka's high-level calls do not reach, through the protocol client:
//! DescribeCluster, DescribeLogDirs, OffsetForLeaderEpoch, InitProducerId,
//! IncrementalAlterConfigs, ListOffsets for the max timestamp, Metadata and Fetch by topic id,
//! and the flush policy.

mod common;

use std::time::Duration;

use common::*;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::producer::FutureRecord;
use strata::client::Client;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

#[test]
fn cluster_log_dirs_and_leader_epochs() {
    let broker = BrokerProcess::start(&["broker.id=7"]);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "dirs", 2, &[]);
    let producer = producer(&broker.addr, &[]);
    produce(&rt, &producer, "dirs", 1, &[(None, Some(vec![1u8; 1000]))]);
    rt.block_on(async {
        let mut client = Client::connect(&broker.addr).await.unwrap();
        let cluster = client
            .send(DescribeClusterRequest::default())
            .await
            .unwrap();
        assert_eq!(cluster.controller_id.0, 7);
        assert_eq!(cluster.brokers.len(), 1);
        assert_eq!(
            format!(
                "{}:{}",
                cluster.brokers[0].host.as_str(),
                cluster.brokers[0].port
            ),
            broker.addr
        );
        assert!(!cluster.cluster_id.is_empty());

        let dirs = client
            .send(DescribeLogDirsRequest::default().with_topics(None))
            .await
            .unwrap();
        assert_eq!(dirs.results.len(), 1);
        let dir = &dirs.results[0];
        assert_eq!(
            dir.log_dir.as_str(),
            broker.data_dir().display().to_string()
        );
        assert!(dir.total_bytes > 0 && dir.usable_bytes > 0 && dir.usable_bytes <= dir.total_bytes);
        let topic = dir
            .topics
            .iter()
            .find(|t| t.name.0.as_str() == "dirs")
            .unwrap();
        let sizes: Vec<(i32, i64)> = topic
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.partition_size))
            .collect();
        assert!(sizes.contains(&(0, 0)));
        assert!(sizes.iter().any(|(p, s)| *p == 1 && *s > 1000), "{sizes:?}");

        let epochs = client
            .send(OffsetForLeaderEpochRequest::default().with_topics(vec![
                    OffsetForLeaderTopic::default()
                        .with_topic(name("dirs"))
                        .with_partitions(vec![
                            OffsetForLeaderPartition::default()
                                .with_partition(1)
                                .with_leader_epoch(0)
                                .with_current_leader_epoch(0),
                            OffsetForLeaderPartition::default()
                                .with_partition(1)
                                .with_leader_epoch(3)
                                .with_current_leader_epoch(-1),
                            OffsetForLeaderPartition::default()
                                .with_partition(9)
                                .with_leader_epoch(0),
                        ]),
                ]))
            .await
            .unwrap();
        let p = &epochs.topics[0].partitions;
        assert_eq!(
            (p[0].error_code, p[0].leader_epoch, p[0].end_offset),
            (0, 0, 1)
        );
        assert_eq!(
            (p[1].error_code, p[1].leader_epoch, p[1].end_offset),
            (0, -1, -1),
            "unknown epoch"
        );
        assert_eq!(p[2].error_code, 3);
    });
}

#[test]
fn producer_ids_are_unique_across_restarts_and_epochs_bump() {
    let mut broker = BrokerProcess::start(&[]);
    let rt = runtime();
    let first = rt.block_on(async {
        let mut client = Client::connect(&broker.addr).await.unwrap();
        let a = client
            .send(
                InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_transaction_timeout_ms(60000),
            )
            .await
            .unwrap();
        let b = client
            .send(
                InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_transaction_timeout_ms(60000),
            )
            .await
            .unwrap();
        assert_eq!((a.error_code, b.error_code), (0, 0));
        assert_ne!(a.producer_id, b.producer_id);
        assert_eq!(a.producer_epoch, 0);
        let bumped = client
            .send(
                InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_producer_id(a.producer_id)
                    .with_producer_epoch(0)
                    .with_transaction_timeout_ms(60000),
            )
            .await
            .unwrap();
        assert_eq!(
            (bumped.producer_id, bumped.producer_epoch),
            (a.producer_id, 1)
        );
        b.producer_id.0
    });
    broker.kill();
    broker.restart();
    rt.block_on(async {
        let mut client = Client::connect(&broker.addr).await.unwrap();
        let c = client
            .send(
                InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_transaction_timeout_ms(60000),
            )
            .await
            .unwrap();
        assert!(
            c.producer_id.0 > first,
            "ids are never reused after a crash: {} then {}",
            first,
            c.producer_id.0
        );
    });
}

#[test]
fn incremental_alter_configs_set_delete_append() {
    let broker = BrokerProcess::start(&[]);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "inc", 1, &[("retention.ms", "5000")]);
    rt.block_on(async {
        let mut client = Client::connect(&broker.addr).await.unwrap();
        let alter = |configs: Vec<(&str, i8, Option<&str>)>| {
            IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("inc"))
                .with_configs(
                    configs
                        .into_iter()
                        .map(|(k, op, v)| {
                            AlterableConfig::default()
                                .with_name(StrBytes::from_string(k.to_string()))
                                .with_config_operation(op)
                                .with_value(v.map(|v| StrBytes::from_string(v.to_string())))
                        })
                        .collect(),
                )])
        };
        let r = client.send(alter(vec![("segment.bytes", 0, Some("2000000")), ("retention.ms", 1, None)])).await.unwrap();
        assert_eq!(r.responses[0].error_code, 0);
        let described = client
            .send(DescribeConfigsRequest::default().with_resources(vec![kafka_protocol::messages::describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("inc"))]))
            .await
            .unwrap();
        let get = |k: &str| described.results[0].configs.iter().find(|c| c.name.as_str() == k).map(|c| (c.value.as_ref().unwrap().to_string(), c.config_source)).unwrap();
        assert_eq!(get("segment.bytes"), ("2000000".to_string(), 1));
        assert_eq!(get("retention.ms"), ("604800000".to_string(), 5), "deleted override falls back to the default");
        let r = client.send(alter(vec![("retention.ms", 2, Some("1"))])).await.unwrap();
        assert_eq!(r.responses[0].error_code, 40, "APPEND applies to lists only");
        let r = client.send(alter(vec![("cleanup.policy", 2, Some("delete"))])).await.unwrap();
        assert_eq!(r.responses[0].error_code, 0);
        let r = client.send(alter(vec![("segment.bytes", 0, Some("1"))])).await.unwrap();
        assert_eq!(r.responses[0].error_code, 40);
        assert!(r.responses[0].error_message.as_ref().unwrap().contains("segment.bytes"));
    });
}

#[test]
fn list_offsets_max_timestamp_and_fetch_by_topic_id() {
    let broker = BrokerProcess::start(&[]);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "ids", 1, &[]);
    let producer = producer(&broker.addr, &[("linger.ms", "0")]);
    rt.block_on(async {
        for (i, ts) in [5000i64, 9000, 7000].iter().enumerate() {
            let v = format!("v{i}");
            let record: FutureRecord<'_, str, str> = FutureRecord::to("ids")
                .partition(0)
                .payload(v.as_str())
                .timestamp(*ts);
            producer
                .send(record, Duration::from_secs(10))
                .await
                .unwrap();
        }
        let mut client = Client::connect(&broker.addr).await.unwrap();
        let offsets = client
            .send(ListOffsetsRequest::default().with_topics(
                vec![ListOffsetsTopic::default().with_name(name("ids")).with_partitions(vec![
                ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-3),
                ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-2),
                ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-1),
                ListOffsetsPartition::default().with_partition_index(0).with_timestamp(6000),
            ])],
            ))
            .await
            .unwrap();
        let p = &offsets.topics[0].partitions;
        assert_eq!((p[0].offset, p[0].timestamp), (1, 9000), "max timestamp");
        assert_eq!(p[1].offset, 0);
        assert_eq!(p[2].offset, 3);
        assert_eq!(
            (p[3].offset, p[3].timestamp),
            (1, 9000),
            "first record at or after 6000"
        );
        assert!(
            p.iter().all(|p| p.leader_epoch == 0 && p.error_code == 0),
            "the epoch each offset was written in: {p:?}"
        );
        // A client ahead of the log's epoch is told so, as by Fetch.
        let ahead = client
            .send(
                ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
                    .with_name(name("ids"))
                    .with_partitions(vec![ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_current_leader_epoch(1)
                        .with_timestamp(-1)])]),
            )
            .await
            .unwrap();
        assert_eq!(
            ahead.topics[0].partitions[0].error_code,
            kafka_protocol::ResponseError::UnknownLeaderEpoch.code()
        );

        let metadata = client
            .send(MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(name("ids"))),
            ])))
            .await
            .unwrap();
        let id = metadata.topics[0].topic_id;
        assert!(!id.is_nil());
        let by_id = client
            .send(MetadataRequest::default().with_topics(Some(
                vec![MetadataRequestTopic::default().with_name(None).with_topic_id(id)],
            )))
            .await
            .unwrap();
        assert_eq!(by_id.topics[0].name.as_ref().unwrap().0.as_str(), "ids");
        let unknown = client
            .send(MetadataRequest::default().with_topics(Some(
                vec![MetadataRequestTopic::default()
                    .with_name(None)
                    .with_topic_id(uuid::Uuid::from_u128(1))],
            )))
            .await
            .unwrap();
        assert_eq!(unknown.topics[0].error_code, 100, "UNKNOWN_TOPIC_ID");

        let fetch = client
            .send(
                FetchRequest::default()
                    .with_max_wait_ms(0)
                    .with_max_bytes(1 << 20)
                    .with_session_epoch(-1)
                    .with_topics(vec![FetchTopic::default()
                        .with_topic_id(id)
                        .with_partitions(vec![FetchPartition::default()
                            .with_partition(0)
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(1 << 20)])]),
            )
            .await
            .unwrap();
        assert_eq!(fetch.responses[0].topic_id, id);
        let p = &fetch.responses[0].partitions[0];
        assert_eq!(
            (
                p.error_code,
                p.high_watermark,
                p.last_stable_offset,
                p.log_start_offset
            ),
            (0, 3, 3, 0)
        );
        let records = p.records.clone().unwrap();
        let mut buf = records.clone();
        let mut values: Vec<Vec<u8>> = Vec::new();
        while !buf.is_empty() {
            let batch = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).unwrap();
            values.extend(
                batch
                    .records
                    .iter()
                    .map(|r| r.value.clone().unwrap().to_vec()),
            );
        }
        assert_eq!(values, vec![b"v0".to_vec(), b"v1".to_vec(), b"v2".to_vec()]);
    });
}

#[test]
fn flush_messages_syncs_and_advances_the_recovery_point() {
    let broker = BrokerProcess::start(&[
        "log.flush.interval.messages=1",
        "log.flush.offset.checkpoint.interval.ms=100",
    ]);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "synced", 1, &[]);
    let producer = producer(&broker.addr, &[("acks", "all")]);
    let records: Vec<KeyValue> = (0..20)
        .map(|i| (None, Some(format!("s{i}").into_bytes())))
        .collect();
    assert_eq!(
        produce(&rt, &producer, "synced", 0, &records),
        (0..20).collect::<Vec<i64>>()
    );
    let checkpoint = broker.data_dir().join("recovery-point-offset-checkpoint");
    assert!(
        eventually(Duration::from_secs(10), || std::fs::read_to_string(
            &checkpoint
        )
        .unwrap_or_default()
        .contains("synced 0 20")),
        "{}",
        std::fs::read_to_string(&checkpoint).unwrap_or_default()
    );
}

#[test]
fn fetch_honours_partition_max_bytes_and_max_bytes_but_returns_a_first_batch_whole() {
    let broker = BrokerProcess::start(&[]);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "limits", 2, &[]);
    let producer = producer(&broker.addr, &[("linger.ms", "0")]);
    for p in 0..2 {
        for i in 0..3 {
            produce(
                &rt,
                &producer,
                "limits",
                p,
                &[(None, Some(vec![i as u8; 1000]))],
            );
        }
    }
    rt.block_on(async {
        let mut client = Client::connect(&broker.addr).await.unwrap();
        // The negotiated Fetch version names topics by id.
        let metadata = client
            .send(MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(name("limits"))),
            ])))
            .await
            .unwrap();
        let id = metadata.topics[0].topic_id;
        let fetch = |max_bytes: i32, limits: [i32; 2]| {
            FetchRequest::default()
                .with_max_wait_ms(0)
                .with_max_bytes(max_bytes)
                .with_session_epoch(-1)
                .with_topics(vec![FetchTopic::default()
                    .with_topic_id(id)
                    .with_partitions(
                        (0..2)
                            .map(|p| {
                                FetchPartition::default()
                                    .with_partition(p)
                                    .with_fetch_offset(0)
                                    .with_partition_max_bytes(limits[p as usize])
                            })
                            .collect(),
                    )])
        };
        let sizes = |r: &FetchResponse| -> Vec<usize> {
            r.responses[0]
                .partitions
                .iter()
                .map(|p| p.records.as_ref().map(|b| b.len()).unwrap_or(0))
                .collect()
        };
        // Everything fits.
        let all = client
            .send(fetch(1 << 20, [1 << 20, 1 << 20]))
            .await
            .unwrap();
        let batch = sizes(&all)[0] / 3;
        assert!(
            batch > 1000,
            "{:?}",
            all.responses[0].partitions[0].error_code
        );
        assert_eq!(sizes(&all), vec![3 * batch, 3 * batch]);
        // partition_max_bytes cuts each partition's bytes (a trailing partial batch is allowed).
        let cut = client.send(fetch(1 << 20, [2500, 1500])).await.unwrap();
        assert_eq!(sizes(&cut), vec![2500, 1500]);
        // A first batch larger than the limits still comes whole; then max_bytes is spent.
        let tiny = client
            .send(fetch(batch as i32 + 100, [10, 1 << 20]))
            .await
            .unwrap();
        assert_eq!(sizes(&tiny), vec![batch, 100]);
        let none_left = client.send(fetch(10, [10, 10])).await.unwrap();
        assert_eq!(sizes(&none_left), vec![batch, 0]);
    });
}

#[test]
fn flush_interval_ms_syncs_in_the_background() {
    let broker = BrokerProcess::start(&[
        "log.flush.interval.ms=100",
        "log.flush.scheduler.interval.ms=20",
        "log.flush.offset.checkpoint.interval.ms=50",
    ]);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "timed", 1, &[]);
    let producer = producer(&broker.addr, &[]);
    let records: Vec<KeyValue> = (0..7)
        .map(|i| (None, Some(format!("t{i}").into_bytes())))
        .collect();
    produce(&rt, &producer, "timed", 0, &records);
    let checkpoint = broker.data_dir().join("recovery-point-offset-checkpoint");
    assert!(
        eventually(Duration::from_secs(10), || std::fs::read_to_string(
            &checkpoint
        )
        .unwrap_or_default()
        .contains("timed 0 7")),
        "{}",
        std::fs::read_to_string(&checkpoint).unwrap_or_default()
    );
}

#[test]
fn find_coordinator_names_this_broker_for_groups_and_transactions() {
    let broker = BrokerProcess::start(&["broker.id=3"]);
    let rt = runtime();
    rt.block_on(async {
        let mut client = Client::connect(&broker.addr).await.unwrap();
        // The negotiated version (6) batches keys.
        let r = client
            .send(
                FindCoordinatorRequest::default()
                    .with_key_type(0)
                    .with_coordinator_keys(vec![
                        StrBytes::from_static_str("g1"),
                        StrBytes::from_static_str("g2"),
                    ]),
            )
            .await
            .unwrap();
        assert_eq!(r.coordinators.len(), 2);
        for c in &r.coordinators {
            assert_eq!((c.error_code, c.node_id.0), (0, 3));
            assert_eq!(format!("{}:{}", c.host.as_str(), c.port), broker.addr);
        }
        assert_eq!(r.coordinators[1].key.as_str(), "g2");
        let r = client
            .send(
                FindCoordinatorRequest::default()
                    .with_key_type(1)
                    .with_coordinator_keys(vec![StrBytes::from_static_str("txn")]),
            )
            .await
            .unwrap();
        assert_eq!(
            (r.coordinators[0].error_code, r.coordinators[0].node_id.0),
            (0, 3)
        );
        // Asking for a transaction coordinator creates the transaction state topic, as Kafka.
        let topics = client
            .send(MetadataRequest::default().with_topics(None))
            .await
            .unwrap();
        let state = topics
            .topics
            .iter()
            .find(|t| {
                t.name
                    .as_ref()
                    .is_some_and(|n| n.as_str() == "__transaction_state")
            })
            .expect("__transaction_state exists");
        assert!(state.is_internal);
        assert_eq!(
            state.partitions.len(),
            50,
            "transaction.state.log.num.partitions"
        );
        let r = client
            .send(
                FindCoordinatorRequest::default()
                    .with_key_type(2)
                    .with_coordinator_keys(vec![StrBytes::from_static_str("x")]),
            )
            .await
            .unwrap();
        assert_eq!(
            r.coordinators[0].error_code, 42,
            "INVALID_REQUEST for unknown key types"
        );
    });
}
