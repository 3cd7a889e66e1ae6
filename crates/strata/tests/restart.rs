//! Durability across restarts: clean shutdown, kill -9 with a torn tail, retention in the
//! background, and memory that does not grow with the data stored.

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;
use rdkafka::consumer::Consumer;
use rdkafka::Message;

fn values(prefix: &str, n: usize) -> Vec<KeyValue> {
    (0..n)
        .map(|i| {
            (
                Some(format!("k{i}").into_bytes()),
                Some(format!("{prefix}-{i}-{}", "z".repeat(100)).into_bytes()),
            )
        })
        .collect()
}

#[test]
fn clean_restart_keeps_data_topics_and_configs_without_recovery() {
    let mut broker = BrokerProcess::start(&[]);
    let rt = runtime();
    create_topic(
        &rt,
        &broker.addr,
        "keep",
        2,
        &[("retention.ms", "123456789")],
    );
    let producer = producer(&broker.addr, &[]);
    let records = values("keep", 300);
    produce(&rt, &producer, "keep", 1, &records);
    drop(producer);
    let topic_id = |broker: &BrokerProcess| {
        let consumer = consumer(&broker.addr, &[]);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
            .args([
                "topics",
                "--bootstrap-server",
                &broker.addr,
                "--describe",
                "--topic",
                "keep",
            ])
            .output()
            .unwrap();
        drop(consumer);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split("TopicId: ")
            .nth(1)
            .and_then(|s| s.split('\t').next())
            .unwrap_or_default()
            .to_string()
    };
    let id_before = topic_id(&broker);
    assert!(!id_before.is_empty());
    broker.stop();
    assert!(broker.log().contains("shut down cleanly"));
    broker.restart();
    let consumer = consumer(&broker.addr, &[]);
    let got = consume(&consumer, "keep", 1, 0, 300, Duration::from_secs(20));
    assert_eq!(
        got.iter().map(payload).collect::<Vec<_>>(),
        records
            .iter()
            .map(|(_, v)| v.clone().unwrap())
            .collect::<Vec<_>>()
    );
    let metadata = consumer
        .fetch_metadata(Some("keep"), Duration::from_secs(5))
        .unwrap();
    assert_eq!(metadata.topics()[0].partitions().len(), 2);
    assert!(
        !broker.log().contains("recovered "),
        "a clean start recovers nothing"
    );
    // New appends continue after the old ones.
    let again = common::producer(&broker.addr, &[]);
    assert_eq!(
        produce(&rt, &again, "keep", 1, &values("more", 1)),
        vec![300]
    );
    // The topic's config override survived.
    let (ok, out, _) = {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
            .args([
                "topics",
                "--bootstrap-server",
                &broker.addr,
                "--describe",
                "--topic",
                "keep",
            ])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            (),
        )
    };
    assert!(
        ok && out.contains("Configs: retention.ms=123456789"),
        "{out}"
    );
}

#[test]
fn kill_dash_nine_with_torn_tail_recovers_every_acknowledged_record() {
    let mut broker = BrokerProcess::start(&[]);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "crash", 1, &[("segment.bytes", "65536")]);
    let producer = producer(&broker.addr, &[("acks", "all"), ("batch.size", "16384")]);
    let records = values("crash", 2000);
    produce(&rt, &producer, "crash", 0, &records);
    drop(producer);
    broker.kill();
    // Simulate a write torn by the crash: a partial batch after the last whole one.
    let segments = segment_files(&broker.data_dir(), "crash", 0);
    assert!(segments.len() > 2, "small segments rolled");
    let active = segments.last().unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(active)
        .unwrap();
    let mut torn = vec![0u8; 300];
    torn[..8].copy_from_slice(&9999i64.to_be_bytes());
    torn[8..12].copy_from_slice(&1000i32.to_be_bytes());
    torn[16] = 2;
    f.write_all(&torn).unwrap();
    drop(f);

    broker.restart();
    // One summary line, and one for the log whose torn tail was cut (300 bytes appended).
    let log = broker.log();
    assert!(
        log.contains("logs after an unclean shutdown in "),
        "an unclean start recovers: {log}"
    );
    assert_eq!(
        log.matches("logs after an unclean shutdown").count(),
        1,
        "one summary: {log}"
    );
    assert!(
        log.contains("recovered crash-0: 300 bytes of a torn tail truncated"),
        "{log}"
    );
    assert!(!log.contains("RecoveryReport {"), "no debug structs: {log}");
    let consumer = consumer(&broker.addr, &[]);
    assert_eq!(
        consumer
            .fetch_watermarks("crash", 0, Duration::from_secs(5))
            .unwrap(),
        (0, 2000)
    );
    let got = consume(&consumer, "crash", 0, 0, 2000, Duration::from_secs(30));
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.offset(), i as i64);
        assert_eq!(Some(payload(m)), records[i].1);
    }
    // The torn bytes are gone and appends continue at the right offset.
    let again = common::producer(&broker.addr, &[]);
    assert_eq!(
        produce(&rt, &again, "crash", 0, &values("after", 3)),
        vec![2000, 2001, 2002]
    );
    let got = consume(&consumer, "crash", 0, 1999, 4, Duration::from_secs(10));
    assert_eq!(
        got.iter().map(|m| m.offset()).collect::<Vec<_>>(),
        vec![1999, 2000, 2001, 2002]
    );
}

#[test]
fn idempotent_producer_state_survives_kill_dash_nine() {
    let mut broker = BrokerProcess::start(&[]);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "idem-crash", 1, &[]);
    {
        let producer = producer(&broker.addr, &[("enable.idempotence", "true")]);
        produce(&rt, &producer, "idem-crash", 0, &values("a", 100));
    }
    broker.kill();
    broker.restart();
    let producer = producer(&broker.addr, &[("enable.idempotence", "true")]);
    assert_eq!(
        produce(&rt, &producer, "idem-crash", 0, &values("b", 10)),
        (100..110).collect::<Vec<i64>>()
    );
}

#[test]
fn retention_deletes_old_segments_in_the_background() {
    let broker = BrokerProcess::start(&["log.retention.check.interval.ms=100"]);
    let rt = runtime();
    create_topic(
        &rt,
        &broker.addr,
        "expire",
        1,
        &[("segment.bytes", "4096"), ("retention.ms", "2000")],
    );
    let producer = producer(&broker.addr, &[("linger.ms", "0")]);
    for chunk in 0..30 {
        produce(
            &rt,
            &producer,
            "expire",
            0,
            &values(&format!("c{chunk}"), 10),
        );
    }
    let before = segment_files(&broker.data_dir(), "expire", 0).len();
    assert!(before > 5, "{before} segments");
    let consumer = consumer(&broker.addr, &[]);
    // Everything is older than 2 s soon; the active segment is rolled and deleted too.
    assert!(
        eventually(Duration::from_secs(20), || consumer
            .fetch_watermarks("expire", 0, Duration::from_secs(5))
            .map(|w| w.0)
            .unwrap_or(0)
            == 300),
        "log start offset did not reach the end: {:?}",
        consumer.fetch_watermarks("expire", 0, Duration::from_secs(5))
    );
    assert!(segment_files(&broker.data_dir(), "expire", 0).len() <= 2);
    // The partition keeps working.
    assert_eq!(
        produce(&rt, &producer, "expire", 0, &values("new", 1)),
        vec![300]
    );
}

#[test]
fn broker_memory_does_not_grow_with_data_stored() {
    const TOTAL: usize = 5 << 30;
    const RECORD: usize = 64 << 10;
    let broker = BrokerProcess::start(&["log.segment.bytes=268435456"]);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "bulk", 4, &[]);
    let producer = producer(
        &broker.addr,
        &[
            ("linger.ms", "20"),
            ("batch.size", "1048576"),
            ("queue.buffering.max.kbytes", "262144"),
            ("acks", "1"),
        ],
    );
    let value = vec![0x5au8; RECORD];
    let mut max_rss = 0;
    rt.block_on(async {
        let mut pending = std::collections::VecDeque::new();
        for i in 0..TOTAL / RECORD {
            let key = i.to_string();
            let record = rdkafka::producer::FutureRecord::to("bulk")
                .partition((i % 4) as i32)
                .key(&key)
                .payload(&value);
            pending.push_back(
                producer
                    .send_result(record)
                    .map_err(|(e, _)| e)
                    .expect("queue"),
            );
            if pending.len() >= 2048 {
                pending.pop_front().unwrap().await.unwrap().unwrap();
            }
            if i % 8192 == 0 {
                max_rss = max_rss.max(broker.rss_kib());
            }
        }
        while let Some(f) = pending.pop_front() {
            f.await.unwrap().unwrap();
        }
    });
    max_rss = max_rss.max(broker.rss_kib());
    let consumer = consumer(&broker.addr, &[]);
    let stored: i64 = (0..4)
        .map(|p| {
            consumer
                .fetch_watermarks("bulk", p, Duration::from_secs(5))
                .unwrap()
                .1
        })
        .sum();
    assert_eq!(stored as usize, TOTAL / RECORD);
    eprintln!(
        "broker RSS peak while storing 5 GiB: {} MiB",
        max_rss / 1024
    );
    assert!(max_rss < 300 * 1024, "RSS {} MiB", max_rss / 1024);
}
