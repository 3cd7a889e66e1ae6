//! Produce and consume through librdkafka against the real broker process.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rdkafka::consumer::Consumer;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::Timestamp;

#[test]
fn round_trip_keys_headers_timestamps_and_null_values_with_every_codec() {
    let broker = BrokerProcess::start(&[]);
    let rt = runtime();
    for (codec_id, codec) in ["none", "gzip", "snappy", "lz4", "zstd"]
        .into_iter()
        .enumerate()
    {
        let topic = format!("codec-{codec}");
        create_topic(&rt, &broker.addr, &topic, 1, &[]);
        let producer = producer(
            &broker.addr,
            &[("compression.codec", codec), ("linger.ms", "5")],
        );
        rt.block_on(async {
            let mut futures = Vec::new();
            for i in 0..200i64 {
                let key = format!("key-{i}");
                let value = format!("value-{i}-{}", "abc".repeat(i as usize % 50));
                let headers = OwnedHeaders::new().insert(Header {
                    key: "h",
                    value: Some(&format!("hv-{i}")),
                });
                let mut record: FutureRecord<'_, str, str> = FutureRecord::to(&topic)
                    .partition(0)
                    .timestamp(1_700_000_000_000 + i);
                // Every tenth record has a null key, a null value (a tombstone) and no headers.
                if i % 10 != 0 {
                    record = record
                        .key(key.as_str())
                        .payload(value.as_str())
                        .headers(headers);
                }
                futures.push(
                    producer
                        .send_result(record)
                        .map_err(|(e, _)| e)
                        .expect("queue"),
                );
            }
            for (i, f) in futures.into_iter().enumerate() {
                let (partition, offset) = f
                    .await
                    .expect("delivered")
                    .map(|d| (d.partition, d.offset))
                    .unwrap_or_else(|(e, _)| panic!("{codec}: {e}"));
                assert_eq!(partition, 0);
                assert_eq!(offset, i as i64, "{codec}: offsets are assigned in order");
            }
        });
        // The batches are stored as the producer compressed them (librdkafka only compresses
        // when the broker advertises what each codec needs, e.g. FindCoordinator for LZ4). A
        // batch that the codec would not shrink (a lone small record) is sent uncompressed by
        // librdkafka, so `none` may appear next to the codec, but nothing else may.
        let codecs = stored_codecs(&broker.data_dir(), &topic, 0);
        assert!(
            codecs.contains(&(codec_id as i16))
                && codecs.iter().all(|c| *c == codec_id as i16 || *c == 0),
            "{codec}: stored codecs {codecs:?}"
        );
        let consumer = consumer(&broker.addr, &[]);
        let messages = consume(&consumer, &topic, 0, 0, 200, Duration::from_secs(30));
        for (i, m) in messages.iter().enumerate() {
            let i = i as i64;
            assert_eq!(m.offset(), i);
            assert_eq!(
                m.timestamp(),
                Timestamp::CreateTime(1_700_000_000_000 + i),
                "{codec}"
            );
            if i % 10 == 0 {
                assert!(m.payload().is_none(), "{codec}: null value stays null");
                assert!(m.key().is_none());
            } else {
                assert_eq!(m.key(), Some(format!("key-{i}").as_bytes()));
                assert_eq!(
                    payload(m),
                    format!("value-{i}-{}", "abc".repeat(i as usize % 50)).into_bytes(),
                    "{codec}"
                );
                let headers = m.headers().expect("headers");
                assert_eq!(headers.count(), 1);
                let h = headers.get(0);
                assert_eq!(h.key, "h");
                assert_eq!(h.value, Some(format!("hv-{i}").as_bytes()));
            }
        }
    }
}

#[test]
fn acks_zero_one_and_all_are_all_stored() {
    let broker = BrokerProcess::start(&[]);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "acks", 1, &[]);
    let mut expected = Vec::new();
    for acks in ["0", "1", "all"] {
        let producer = producer(&broker.addr, &[("acks", acks)]);
        let records: Vec<_> = (0..50)
            .map(|i| (None, Some(format!("acks={acks} {i}").into_bytes())))
            .collect();
        let offsets = produce(&rt, &producer, "acks", 0, &records);
        if acks != "0" {
            // With acks=0 the producer never learns the offsets.
            assert_eq!(offsets.len(), 50);
            assert!(offsets.iter().all(|o| *o >= 0));
        }
        expected.extend(records.into_iter().map(|(_, v)| v.unwrap()));
    }
    let consumer = consumer(&broker.addr, &[]);
    let got: Vec<Vec<u8>> = consume(&consumer, "acks", 0, 0, 150, Duration::from_secs(30))
        .iter()
        .map(payload)
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn idempotent_producer_writes_each_record_once_in_order() {
    let broker = BrokerProcess::start(&[]);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "idem", 3, &[]);
    let producer = producer(
        &broker.addr,
        &[
            ("enable.idempotence", "true"),
            ("max.in.flight.requests.per.connection", "5"),
            ("linger.ms", "2"),
        ],
    );
    for p in 0..3 {
        let records: Vec<_> = (0..500)
            .map(|i| (None, Some(format!("{p}-{i}").into_bytes())))
            .collect();
        let offsets = produce(&rt, &producer, "idem", p, &records);
        assert_eq!(offsets, (0..500).collect::<Vec<i64>>());
    }
    let consumer = consumer(&broker.addr, &[]);
    for p in 0..3 {
        let got = consume(&consumer, "idem", p, 0, 500, Duration::from_secs(30));
        for (i, m) in got.iter().enumerate() {
            assert_eq!(payload(m), format!("{p}-{i}").into_bytes());
        }
        let (low, high) = consumer
            .fetch_watermarks("idem", p, Duration::from_secs(5))
            .unwrap();
        assert_eq!((low, high), (0, 500), "no duplicates were written");
    }
}

#[test]
fn waiting_consumer_is_woken_by_a_new_record() {
    let broker = BrokerProcess::start(&[]);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "wake", 1, &[]);
    // The fetch waits up to 30 s; only a wake-up on append delivers the record quickly.
    let consumer = consumer(&broker.addr, &[("fetch.wait.max.ms", "30000")]);
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("wake", 0, rdkafka::Offset::Offset(0))
        .unwrap();
    consumer.assign(&tpl).unwrap();
    // Let the consumer's fetch reach the broker and park.
    let parked = Instant::now();
    while parked.elapsed() < Duration::from_millis(1500) {
        assert!(consumer.poll(Duration::from_millis(100)).is_none());
    }
    let producer = producer(&broker.addr, &[("linger.ms", "0")]);
    let mut latencies = Vec::new();
    for round in 0..3 {
        let sent = Instant::now();
        produce(
            &rt,
            &producer,
            "wake",
            0,
            &[(None, Some(format!("r{round}").into_bytes()))],
        );
        let received = loop {
            if let Some(m) = consumer.poll(Duration::from_millis(10)) {
                let m = m.unwrap();
                assert_eq!(m.payload(), Some(format!("r{round}").as_bytes()));
                break sent.elapsed();
            }
            assert!(
                sent.elapsed() < Duration::from_secs(10),
                "record not delivered"
            );
        };
        latencies.push(received);
        std::thread::sleep(Duration::from_millis(300));
    }
    eprintln!("produce-to-consume latencies with a parked fetch: {latencies:?}");
    // A fetch that slept until its 30 s deadline would take seconds, not milliseconds. Every
    // round is well under that; the best of three rounds is well under 100 ms (a busy machine
    // may slow one round, hardly all three).
    assert!(
        latencies
            .iter()
            .min()
            .is_some_and(|l| *l < Duration::from_millis(100)),
        "{latencies:?}"
    );
    assert!(
        latencies.iter().all(|l| *l < Duration::from_secs(2)),
        "{latencies:?}"
    );
}

#[test]
fn list_offsets_earliest_latest_and_by_time() {
    let broker = BrokerProcess::start(&[]);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "times", 1, &[]);
    let producer = producer(&broker.addr, &[("linger.ms", "0")]);
    rt.block_on(async {
        for i in 0..20i64 {
            let v = format!("{i}");
            let record: FutureRecord<'_, str, str> = FutureRecord::to("times")
                .partition(0)
                .payload(v.as_str())
                .timestamp(1_000_000 + i * 1000);
            producer
                .send(record, Duration::from_secs(10))
                .await
                .unwrap();
        }
    });
    let consumer = consumer(&broker.addr, &[]);
    assert_eq!(
        consumer
            .fetch_watermarks("times", 0, Duration::from_secs(5))
            .unwrap(),
        (0, 20)
    );
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("times", 0, rdkafka::Offset::Offset(1_005_500))
        .unwrap();
    let found = consumer
        .offsets_for_times(tpl, Duration::from_secs(5))
        .unwrap();
    assert_eq!(
        found.find_partition("times", 0).unwrap().offset(),
        rdkafka::Offset::Offset(6)
    );
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("times", 0, rdkafka::Offset::Offset(9_000_000))
        .unwrap();
    let found = consumer
        .offsets_for_times(tpl, Duration::from_secs(5))
        .unwrap();
    assert_eq!(
        found.find_partition("times", 0).unwrap().offset(),
        rdkafka::Offset::End,
        "past the last timestamp: no offset"
    );
}

#[test]
fn debian_kcat_lists_produces_and_consumes() {
    if std::process::Command::new("kcat")
        .arg("-V")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").is_err(),
            "kcat must be installed in CI (.ci/run installs it)"
        );
        eprintln!("kcat not installed; skipping");
        return;
    }
    let broker = BrokerProcess::start(&[]);
    let run = |args: &[&str], input: &str| -> String {
        let all: Vec<&str> = ["-b", broker.addr.as_str()]
            .into_iter()
            .chain(args.iter().copied())
            .collect();
        let out = output_with_stdin("kcat", &all, input);
        assert!(
            out.status.success(),
            "kcat {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let metadata = run(&["-L"], "");
    assert!(metadata.contains("1 brokers:"), "{metadata}");
    assert!(
        metadata.contains(&format!("broker 0 at {}", broker.addr)),
        "{metadata}"
    );
    let (one, two, three) = ("one".repeat(40), "two".repeat(40), "three".repeat(40));
    for (codec_id, codec) in ["none", "gzip", "snappy", "lz4", "zstd"]
        .into_iter()
        .enumerate()
    {
        let topic = format!("kcat-{codec}");
        run(
            &["-P", "-t", &topic, "-z", codec, "-K", ":"],
            &format!("k1:{one}\nk2:{two}\nk3:{three}\n"),
        );
        let out = run(&["-C", "-t", &topic, "-e", "-f", "%o %k %s\\n"], "");
        assert_eq!(
            out,
            format!("0 k1 {one}\n1 k2 {two}\n2 k3 {three}\n"),
            "{codec}"
        );
        let codecs = stored_codecs(&broker.data_dir(), &topic, 0);
        assert!(
            !codecs.is_empty() && codecs.iter().all(|c| *c == codec_id as i16),
            "kcat {codec}: stored codecs {codecs:?}"
        );
    }
}

#[test]
fn log_append_time_topic_stamps_records_with_the_broker_time() {
    let broker = BrokerProcess::start(&[]);
    let rt = runtime();
    create_topic(
        &rt,
        &broker.addr,
        "stamped",
        1,
        &[("message.timestamp.type", "LogAppendTime")],
    );
    let producer = producer(&broker.addr, &[]);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    rt.block_on(async {
        let record: FutureRecord<'_, str, str> = FutureRecord::to("stamped")
            .partition(0)
            .payload("x")
            .timestamp(42);
        producer
            .send(record, Duration::from_secs(10))
            .await
            .unwrap();
    });
    let after = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let consumer = consumer(&broker.addr, &[]);
    let got = consume(&consumer, "stamped", 0, 0, 1, Duration::from_secs(10));
    match got[0].timestamp() {
        Timestamp::LogAppendTime(t) => {
            assert!(t >= before && t <= after, "{t} not in [{before}, {after}]")
        }
        other => panic!("expected LogAppendTime, got {other:?}"),
    }
}
