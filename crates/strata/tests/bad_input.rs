//! Malformed and hostile input over raw TCP: the broker answers with Kafka's error codes or
//! closes the connection, never panics, loses nothing, and keeps serving other clients.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::*;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use strata_storage::batch::{build_batch, encode_simple_records, simple_batch};

struct Raw {
    stream: TcpStream,
    correlation_id: i32,
}

impl Raw {
    fn connect(addr: &str) -> Raw {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Raw {
            stream,
            correlation_id: 0,
        }
    }

    fn frame<R: Request>(&mut self, request: &R, version: i16) -> Vec<u8> {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("raw")));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header.encode(&mut buf, R::header_version(version)).unwrap();
        request.encode(&mut buf, version).unwrap();
        let size = (buf.len() - 4) as i32;
        buf[0..4].copy_from_slice(&size.to_be_bytes());
        buf.to_vec()
    }

    fn send<R: Request>(&mut self, request: &R, version: i16) {
        let frame = self.frame(request, version);
        self.stream.write_all(&frame).unwrap();
    }

    /// Reads one response frame; `None` if the broker closed the connection.
    fn read_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        if self.stream.read_exact(&mut size).is_err() {
            return None;
        }
        let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut frame).ok()?;
        Some(Bytes::from(frame))
    }

    fn receive<R: Request>(&mut self, version: i16) -> (i32, R::Response) {
        let mut frame = self.read_frame().expect("a response");
        let header =
            ResponseHeader::decode(&mut frame, R::Response::header_version(version)).unwrap();
        (
            header.correlation_id,
            R::Response::decode(&mut frame, version).unwrap(),
        )
    }

    fn call<R: Request>(&mut self, request: &R, version: i16) -> R::Response {
        self.send(request, version);
        self.receive::<R>(version).1
    }

    fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.stream.read(&mut b), Ok(0) | Err(_))
    }
}

fn assert_serving(addr: &str) {
    let mut raw = Raw::connect(addr);
    let response = raw.call(&ApiVersionsRequest::default(), 0);
    assert_eq!(response.error_code, 0);
    assert!(response
        .api_keys
        .iter()
        .any(|k| k.api_key == 0 && k.min_version == 0));
}

fn produce_request(topic: &str, partition: i32, records: Vec<u8>) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(Bytes::from(records)))])])
}

fn produce_error(raw: &mut Raw, topic: &str, partition: i32, records: Vec<u8>) -> (i16, i64) {
    let response = raw.call(&produce_request(topic, partition, records), 9);
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn fetch_request(topic: &str, partition: i32, offset: i64, max_wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])])
}

#[test]
fn oversized_frame_closes_the_connection_without_allocating() {
    let broker = BrokerProcess::start(&["socket.request.max.bytes=4096"]);
    let before = broker.rss_kib();
    for _ in 0..20 {
        let mut raw = Raw::connect(&broker.addr);
        raw.stream.write_all(&i32::MAX.to_be_bytes()).unwrap();
        assert!(
            raw.is_closed(),
            "a frame over socket.request.max.bytes closes the connection"
        );
    }
    let mut raw = Raw::connect(&broker.addr);
    raw.stream.write_all(&(-5i32).to_be_bytes()).unwrap();
    assert!(raw.is_closed(), "a negative size closes the connection");
    assert!(
        broker.rss_kib() < before + 32 * 1024,
        "no memory was allocated for the claimed sizes"
    );
    assert_serving(&broker.addr);
    assert!(broker
        .log()
        .contains("larger than socket.request.max.bytes"));
}

#[test]
fn truncated_garbage_and_mid_request_disconnects_leave_the_broker_serving() {
    let broker = BrokerProcess::start(&[]);
    // A frame cut short by a disconnect.
    let mut raw = Raw::connect(&broker.addr);
    raw.stream.write_all(&100i32.to_be_bytes()).unwrap();
    raw.stream.write_all(&[0u8; 10]).unwrap();
    drop(raw);
    // A frame too short to hold a header.
    let mut raw = Raw::connect(&broker.addr);
    raw.stream.write_all(&3i32.to_be_bytes()).unwrap();
    raw.stream.write_all(&[1, 2, 3]).unwrap();
    assert!(raw.is_closed());
    // An unknown API key.
    let mut raw = Raw::connect(&broker.addr);
    raw.stream.write_all(&12i32.to_be_bytes()).unwrap();
    raw.stream
        .write_all(&[0x7f, 0x7f, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0, 0])
        .unwrap();
    assert!(raw.is_closed());
    // A known API with a garbage body.
    let mut raw = Raw::connect(&broker.addr);
    let mut frame = vec![0, 3, 0, 9, 0, 0, 0, 7, 0, 0];
    frame.extend_from_slice(&[0xff; 40]);
    raw.stream
        .write_all(&(frame.len() as i32).to_be_bytes())
        .unwrap();
    raw.stream.write_all(&frame).unwrap();
    assert!(raw.is_closed());
    // A tiny request whose array claims two billion elements. (The protocol crate reserved
    // room for all of them and the failed allocation aborted the broker; see
    // vendor/kafka-protocol/STRATA-PATCH.md.)
    for (key, version) in [(3i16, 1i16), (44, 0), (19, 2), (3, 12)] {
        let mut raw = Raw::connect(&broker.addr);
        let mut frame = BytesMut::new();
        frame.put_i16(key);
        frame.put_i16(version);
        frame.put_i32(9);
        frame.put_i16(-1);
        if version >= 9 && key == 3 {
            frame.put_u8(0); // header tagged fields
            frame.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x07]); // compact array of 2^31 - 2
        } else {
            frame.put_i32(i32::MAX);
        }
        raw.stream
            .write_all(&(frame.len() as i32).to_be_bytes())
            .unwrap();
        raw.stream.write_all(&frame).unwrap();
        assert!(raw.is_closed());
    }
    assert_serving(&broker.addr);
    // Random frames.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..200 {
        let mut raw = Raw::connect(&broker.addr);
        let mut frame = Vec::new();
        let len = (seed % 64) as usize + 8;
        for _ in 0..len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            frame.push(seed as u8);
        }
        raw.stream
            .write_all(&(frame.len() as i32).to_be_bytes())
            .unwrap();
        raw.stream.write_all(&frame).unwrap();
        drop(raw);
    }
    assert_serving(&broker.addr);
    assert!(!broker.log().contains("panicked"));
}

#[test]
fn unknown_versions_get_kafkas_answers() {
    let broker = BrokerProcess::start(&[]);
    // ApiVersions of a version the broker does not know: a v0 response with UNSUPPORTED_VERSION.
    let mut raw = Raw::connect(&broker.addr);
    let mut frame = BytesMut::new();
    frame.put_i16(18);
    frame.put_i16(99);
    frame.put_i32(42);
    frame.put_i16(-1);
    frame.put_slice(&[0, 0, 0]);
    raw.stream
        .write_all(&(frame.len() as i32).to_be_bytes())
        .unwrap();
    raw.stream.write_all(&frame).unwrap();
    let mut response = raw.read_frame().unwrap();
    assert_eq!(response.get_i32(), 42, "correlation id");
    let body = ApiVersionsResponse::decode(&mut response, 0).unwrap();
    assert_eq!(body.error_code, 35, "UNSUPPORTED_VERSION");
    let produce = body.api_keys.iter().find(|k| k.api_key == 0).unwrap();
    assert_eq!((produce.min_version, produce.max_version), (0, 11));
    // Any other API at an unsupported version: the connection is closed, as Kafka does.
    let mut raw = Raw::connect(&broker.addr);
    raw.send(&MetadataRequest::default(), 12);
    let _ = raw.receive::<MetadataRequest>(12);
    let mut frame = raw.frame(&MetadataRequest::default(), 12);
    frame[6..8].copy_from_slice(&99i16.to_be_bytes());
    raw.stream.write_all(&frame).unwrap();
    assert!(raw.is_closed());
    assert_serving(&broker.addr);
}

#[test]
fn bad_batches_get_kafka_error_codes_and_store_nothing() {
    let broker = BrokerProcess::start(&["message.max.bytes=2000"]);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "strict", 1, &[]);
    let mut raw = Raw::connect(&broker.addr);
    assert_eq!(
        produce_error(&mut raw, "strict", 0, simple_batch(&[b"good"], 1)),
        (0, 0)
    );

    let mut bad_crc = simple_batch(&[b"hello"], 1);
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 1;
    assert_eq!(
        produce_error(&mut raw, "strict", 0, bad_crc).0,
        2,
        "CORRUPT_MESSAGE"
    );

    let mut magic = simple_batch(&[b"hello"], 1);
    magic[16] = 1;
    assert_eq!(
        produce_error(&mut raw, "strict", 0, magic).0,
        2,
        "CORRUPT_MESSAGE for magic 1"
    );

    let mut long = simple_batch(&[b"hello"], 1);
    let claimed = i32::from_be_bytes(long[8..12].try_into().unwrap()) + 100;
    long[8..12].copy_from_slice(&claimed.to_be_bytes());
    assert_eq!(
        produce_error(&mut raw, "strict", 0, long).0,
        2,
        "CORRUPT_MESSAGE for a length past the end"
    );

    let mut two = simple_batch(&[b"a"], 1);
    two.extend_from_slice(&simple_batch(&[b"b"], 1)[..20]);
    assert_eq!(
        produce_error(&mut raw, "strict", 0, two).0,
        2,
        "a trailing partial batch is corrupt"
    );

    let records = encode_simple_records(&[b"a", b"b"], &[0, 0]);
    let count = build_batch(0, 0, 1, 1, 1, -1, -1, -1, 5, &records);
    assert_eq!(
        produce_error(&mut raw, "strict", 0, count).0,
        87,
        "INVALID_RECORD for a count mismatch"
    );

    let offsets = build_batch(0, 0, 5, 1, 1, -1, -1, -1, 2, &records);
    assert_eq!(
        produce_error(&mut raw, "strict", 0, offsets).0,
        87,
        "INVALID_RECORD for a last offset delta mismatch"
    );

    let big = simple_batch(&[&[7u8; 3000]], 1);
    assert_eq!(
        produce_error(&mut raw, "strict", 0, big).0,
        10,
        "MESSAGE_TOO_LARGE"
    );

    // A transactional batch (and a control batch, which is one too): no transaction can be
    // open on the partition, so INVALID_TXN_STATE, as for a partition not added to one.
    let txn = build_batch(0, 1 << 4, 1, 1, 1, 77, 0, 0, 2, &records);
    assert_eq!(
        produce_error(&mut raw, "strict", 0, txn).0,
        48,
        "INVALID_TXN_STATE"
    );
    let control = strata_storage::control::end_txn_marker_batch(
        77,
        0,
        strata_storage::control::EndTxnMarker {
            control: strata_storage::control::ControlType::Abort,
            coordinator_epoch: 0,
        },
        1,
    );
    assert_eq!(
        produce_error(&mut raw, "strict", 0, control).0,
        48,
        "a client's control batch is refused"
    );
    assert_eq!(
        produce_error(&mut raw, "strict", 5, simple_batch(&[b"x"], 1)).0,
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    assert_eq!(
        produce_error(&mut raw, "nowhere", 0, simple_batch(&[b"x"], 1)).0,
        3,
        "produce does not auto-create"
    );

    // Nothing of the refused batches was stored.
    assert_eq!(
        produce_error(&mut raw, "strict", 0, simple_batch(&[b"after"], 1)),
        (0, 1)
    );
    let consumer = consumer(&broker.addr, &[]);
    let got = consume(&consumer, "strict", 0, 0, 2, Duration::from_secs(10));
    assert_eq!(
        got.iter().map(payload).collect::<Vec<_>>(),
        vec![b"good".to_vec(), b"after".to_vec()]
    );
}

#[test]
fn fetch_out_of_range_and_of_a_deleted_topic() {
    let broker = BrokerProcess::start(&[]);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "gone", 1, &[]);
    let mut raw = Raw::connect(&broker.addr);
    assert_eq!(
        produce_error(&mut raw, "gone", 0, simple_batch(&[b"a", b"b"], 1)).0,
        0
    );
    let response = raw.call(&fetch_request("gone", 0, 5, 0), 11);
    let p = &response.responses[0].partitions[0];
    assert_eq!(p.error_code, 1, "OFFSET_OUT_OF_RANGE");
    assert_eq!((p.high_watermark, p.log_start_offset), (2, 0));
    let response = raw.call(&fetch_request("gone", 0, 0, 0), 11);
    assert_eq!(response.responses[0].partitions[0].error_code, 0);
    assert!(
        response.responses[0].partitions[0]
            .records
            .as_ref()
            .unwrap()
            .len()
            > 61
    );

    // A fetch parked on the topic is answered when the topic is deleted.
    let mut parked = Raw::connect(&broker.addr);
    parked.send(&fetch_request("gone", 0, 2, 20_000), 11);
    std::thread::sleep(Duration::from_millis(300));
    let deleted = raw.call(
        &DeleteTopicsRequest::default()
            .with_timeout_ms(5000)
            .with_topic_names(vec![TopicName(StrBytes::from_static_str("gone"))]),
        4,
    );
    assert_eq!(deleted.responses[0].error_code, 0);
    let started = std::time::Instant::now();
    let (_, response) = parked.receive::<FetchRequest>(11);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        response.responses[0].partitions[0].error_code, 3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    let response = raw.call(&fetch_request("gone", 0, 0, 0), 11);
    assert_eq!(response.responses[0].partitions[0].error_code, 3);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let broker = BrokerProcess::start(&[]);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "pipe", 1, &[]);
    let mut raw = Raw::connect(&broker.addr);
    // A long-polling fetch first, then quick requests: answers keep the request order.
    raw.send(&fetch_request("pipe", 0, 0, 500), 11);
    raw.send(&ApiVersionsRequest::default(), 3);
    raw.send(&MetadataRequest::default().with_topics(None), 12);
    raw.send(&produce_request("pipe", 0, simple_batch(&[b"p"], 1)), 9);
    let (c1, fetch) = raw.receive::<FetchRequest>(11);
    let (c2, _) = raw.receive::<ApiVersionsRequest>(3);
    let (c3, metadata) = raw.receive::<MetadataRequest>(12);
    let (c4, produce) = raw.receive::<ProduceRequest>(9);
    assert_eq!((c1, c2, c3, c4), (1, 2, 3, 4));
    // "pipe" and the internal offsets topic.
    assert_eq!(metadata.topics.len(), 2);
    assert_eq!(produce.responses[0].partition_responses[0].base_offset, 0);
    // The fetch was answered once it had data or its wait ended.
    assert_eq!(fetch.responses[0].partitions[0].error_code, 0);
}

#[test]
fn acks_zero_failure_closes_the_connection() {
    let broker = BrokerProcess::start(&[]);
    let mut raw = Raw::connect(&broker.addr);
    let request = produce_request("missing", 0, simple_batch(&[b"x"], 1)).with_acks(0);
    raw.send(&request, 9);
    assert!(
        raw.is_closed(),
        "an acks=0 producer learns of a failure by the connection closing"
    );
}

#[test]
fn full_disk_fails_appends_with_storage_error_and_keeps_serving_reads() {
    let dir = tempfile::tempdir().unwrap();
    let io = strata_storage::io::FaultyIo::new();
    let faults = io.faults();
    let broker = InProcessBroker::start(dir.path(), Arc::new(io), &[]);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "full", 1, &[]);
    let mut raw = Raw::connect(&broker.addr);
    for i in 0..10 {
        assert_eq!(
            produce_error(
                &mut raw,
                "full",
                0,
                simple_batch(&[format!("v{i}").as_bytes()], 1)
            ),
            (0, i)
        );
    }
    faults.set_space_left(0);
    for _ in 0..3 {
        assert_eq!(
            produce_error(&mut raw, "full", 0, simple_batch(&[b"lost"], 1)).0,
            56,
            "KAFKA_STORAGE_ERROR"
        );
    }
    // Reads continue while the disk is full.
    let consumer = consumer(&broker.addr, &[]);
    let got = consume(&consumer, "full", 0, 0, 10, Duration::from_secs(10));
    assert_eq!(
        got.iter().map(payload).collect::<Vec<_>>(),
        (0..10)
            .map(|i| format!("v{i}").into_bytes())
            .collect::<Vec<_>>()
    );
    // Space comes back: writing resumes where it stopped.
    faults.set_space_left(u64::MAX);
    assert_eq!(
        produce_error(&mut raw, "full", 0, simple_batch(&[b"v10"], 1)),
        (0, 10)
    );
    let got = consume(&consumer, "full", 0, 10, 1, Duration::from_secs(10));
    assert_eq!(payload(&got[0]), b"v10".to_vec());
}

/// Clients cannot write the internal offsets topic, nor change its partition count (which
/// decides where each group's offsets live); its records stay the broker's.
#[test]
fn the_offsets_topic_is_the_brokers_alone() {
    let broker = BrokerProcess::start(&[]);
    let mut raw = Raw::connect(&broker.addr);
    let response = raw.call(
        &produce_request("__consumer_offsets", 0, simple_batch(&[b"forged"], 1)),
        9,
    );
    assert_eq!(
        response.responses[0].partition_responses[0].error_code, 17,
        "INVALID_TOPIC_EXCEPTION"
    );
    let response = raw.call(
        &CreatePartitionsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![
            kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("__consumer_offsets")))
                .with_count(60),
        ]),
        3,
    );
    assert_eq!(response.results[0].error_code, 42, "INVALID_REQUEST");
    let metadata = raw.call(&MetadataRequest::default().with_topics(None), 12);
    let offsets = metadata
        .topics
        .iter()
        .find(|t| {
            t.name
                .as_ref()
                .is_some_and(|n| n.as_str() == "__consumer_offsets")
        })
        .unwrap();
    assert!(offsets.is_internal);
    assert_eq!(offsets.partitions.len(), 50);
}

/// Records without a key sent to a compacted topic: INVALID_RECORD with Kafka's message and
/// `record_errors` naming each keyless record's index in the batch; nothing is stored.
#[test]
fn keyless_records_on_a_compacted_topic_are_named_in_record_errors() {
    let broker = BrokerProcess::start(&[]);
    let rt = runtime();
    create_topic(
        &rt,
        &broker.addr,
        "table",
        1,
        &[("cleanup.policy", "compact")],
    );
    let mut raw = Raw::connect(&broker.addr);
    let batch = strata_storage::batch::keyed_batch(
        &[
            (Some(b"k0".as_slice()), Some(b"v0".as_slice())),
            (None, Some(b"v1".as_slice())),
            (Some(b"k2".as_slice()), Some(b"v2".as_slice())),
            (None, Some(b"v3".as_slice())),
        ],
        1,
    );
    let response = raw.call(&produce_request("table", 0, batch), 9);
    let p = &response.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 87, "INVALID_RECORD");
    let each = "Compacted topic cannot accept message without key in topic partition table-0.";
    let errors: Vec<(i32, Option<&str>)> = p
        .record_errors
        .iter()
        .map(|e| {
            (
                e.batch_index,
                e.batch_index_error_message.as_ref().map(|m| m.as_str()),
            )
        })
        .collect();
    assert_eq!(errors, vec![(1, Some(each)), (3, Some(each))]);
    assert_eq!(
        p.error_message.as_ref().map(|m| m.as_str()),
        Some(
            format!(
                "One or more records have been rejected due to 2 record errors in total, and only \
                 showing the first three errors at most: [RecordError(batchIndex=1, \
                 message='{each}'), RecordError(batchIndex=3, message='{each}')]"
            )
            .as_str()
        )
    );
    // Nothing of the batch was stored: the next keyed record takes offset 0.
    let keyed =
        strata_storage::batch::keyed_batch(&[(Some(b"k".as_slice()), Some(b"v".as_slice()))], 1);
    assert_eq!(produce_error(&mut raw, "table", 0, keyed), (0, 0));
}
