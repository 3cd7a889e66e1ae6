//! Compacted topics through a real broker and librdkafka: the cleaner keeps the latest record
//! of each key at its offset (consumers read across the gaps), tombstones stay, a keyless
//! record is refused with INVALID_RECORD, and all of it survives a restart.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;

/// (offset, key, value) as a consumer reads them.
type Records = Vec<(i64, Vec<u8>, Option<Vec<u8>>)>;

/// Every record of partition 0 of `topic`, from the start to its end.
fn read_partition(addr: &str, topic: &str) -> Records {
    let consumer = consumer(addr, &[("enable.partition.eof", "true")]);
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    loop {
        assert!(std::time::Instant::now() < deadline, "no end of partition");
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push((
                m.offset(),
                m.key().unwrap_or_default().to_vec(),
                m.payload().map(<[u8]>::to_vec),
            )),
            Some(Err(KafkaError::PartitionEOF(_))) => return out,
            Some(Err(e)) => panic!("consume: {e}"),
            None => {}
        }
    }
}

/// The cleaner's checkpoint for `topic`-0 in the broker's data directory.
fn cleaned_up_to(broker: &BrokerProcess, topic: &str) -> Option<i64> {
    let text = std::fs::read_to_string(broker.data_dir().join("cleaner-offset-checkpoint")).ok()?;
    text.lines().skip(2).find_map(|l| {
        let mut parts = l.rsplitn(3, ' ');
        let (offset, partition, name) = (parts.next()?, parts.next()?, parts.next()?);
        (name == topic && partition == "0").then(|| offset.parse().ok())?
    })
}

/// What compaction up to `end` leaves of `written`: the latest record of each key below it,
/// everything from it on.
fn compacted(written: &Records, end: i64) -> Records {
    let mut latest = BTreeMap::new();
    for (o, k, _) in written.iter().filter(|r| r.0 < end) {
        latest.insert(k.clone(), *o);
    }
    written
        .iter()
        .filter(|(o, k, _)| *o >= end || latest[k] == *o)
        .cloned()
        .collect()
}

#[test]
fn a_compacted_topic_keeps_the_latest_record_of_each_key() {
    let port = free_port();
    let metrics = format!("metrics.prometheus.listener=127.0.0.1:{port}");
    let mut broker = BrokerProcess::start(&["log.cleaner.backoff.ms=100", &metrics]);
    let rt = runtime();
    create_topic(
        &rt,
        &broker.addr,
        "table",
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "16384"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    );
    let producer = producer(
        &broker.addr,
        &[
            ("compression.codec", "lz4"),
            ("linger.ms", "0"),
            ("batch.size", "2000"),
        ],
    );
    // First a tombstone of a key never written again: whatever offset the cleaner reaches, it
    // is the latest of its key and stays (delete.retention.ms is a day).
    let records: Vec<KeyValue> = std::iter::once((Some(b"gone".to_vec()), None))
        .chain((0..800).map(|i| {
            // Values that do not compress away, so that the log spans many segments.
            let noise: String = (0..40)
                .map(|j| char::from(b'a' + ((i * 7919 + j * 104_729) % 26) as u8))
                .collect();
            let value = (i % 50 != 7).then(|| format!("value-{i}-{noise}").into_bytes());
            (Some(format!("key-{}", i % 40).into_bytes()), value)
        }))
        .collect();
    let offsets = produce(&rt, &producer, "table", 0, &records);
    let written: Records = offsets
        .iter()
        .zip(&records)
        .map(|(o, (k, v))| (*o, k.clone().unwrap(), v.clone()))
        .collect();
    assert!(
        eventually(Duration::from_secs(60), || cleaned_up_to(&broker, "table")
            .is_some_and(|c| c > 400)),
        "the cleaner reached the topic: {:?}",
        cleaned_up_to(&broker, "table")
    );
    let end = cleaned_up_to(&broker, "table").unwrap();
    let got = read_partition(&broker.addr, "table");
    assert_eq!(got, compacted(&written, end), "cleaned up to {end}");
    assert!(
        got.len() < written.len() / 2,
        "{} of {}",
        got.len(),
        written.len()
    );
    assert!(
        got.iter().any(|r| r.0 < end && r.2.is_none()),
        "tombstones stay for delete.retention.ms"
    );

    // The cleaner's work shows in its metrics.
    let labelled = |name: &str, label: &str| metric_value(&scrape_metrics(port), name, label);
    let metric = |name: &str| labelled(name, "");
    assert!(eventually(Duration::from_secs(10), || {
        metric("strata_cleaner_passes_total") >= 1.0
            && metric("strata_cleaner_records_removed_total") >= (written.len() - got.len()) as f64
    }));
    assert!(metric("strata_cleaner_written_bytes_total") > 0.0);
    let ratio = labelled("strata_cleaner_dirty_ratio", "topic=\"table\"");
    assert!((0.0..0.5).contains(&ratio), "dirty ratio {ratio}");

    // A record without a key is refused, and nothing of it is stored.
    let refused = rt.block_on(async {
        let record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to("table").partition(0).payload(b"no key");
        producer
            .send(record, Duration::from_secs(10))
            .await
            .map(|_| ())
            .map_err(|(e, _)| e)
    });
    assert!(
        matches!(
            refused,
            Err(KafkaError::MessageProduction(
                RDKafkaErrorCode::InvalidRecord
            ))
        ),
        "{refused:?}"
    );
    assert_eq!(read_partition(&broker.addr, "table"), got);

    // After a restart the log and the cleaner's checkpoint are as they were.
    broker.stop();
    broker.restart();
    assert_eq!(read_partition(&broker.addr, "table"), got);
    assert_eq!(cleaned_up_to(&broker, "table"), Some(end));
}

#[test]
fn an_unknown_cleanup_policy_is_refused() {
    let broker = BrokerProcess::start(&[]);
    let (ok, _, err) = strata_tool(
        "topics",
        &broker.addr,
        &[
            "--create",
            "--topic",
            "t",
            "--config",
            "cleanup.policy=compact,shrink",
        ],
    );
    assert!(!ok);
    assert!(err.contains("cleanup.policy"), "{err}");
    let (ok, out, err) = strata_tool(
        "topics",
        &broker.addr,
        &[
            "--create",
            "--topic",
            "both",
            "--config",
            "cleanup.policy=compact,delete",
        ],
    );
    assert!(ok, "{out}{err}");
}

/// Files of a partition in a directory tree (`<dir>/<topic>-<partition>/...`).
fn files_under(dir: &std::path::Path, partition_dir: &str) -> Vec<String> {
    std::fs::read_dir(dir.join(partition_dir))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_tiered_topic_is_compacted_while_its_segments_migrate() {
    let tiers = tempfile::tempdir().unwrap();
    let (fast, slow) = (tiers.path().join("fast"), tiers.path().join("slow"));
    let settings = [
        "log.channel.type=tiered".to_string(),
        format!("storage.tiers.first.paths={}", fast.display()),
        "storage.tiers.first.sizes=200000".to_string(),
        format!("storage.tiers.second.paths={}", slow.display()),
        "storage.migrate.threshold=0.5".to_string(),
        "storage.migrate.hysteresis=0.1".to_string(),
        "storage.migrate.interval.ms=50".to_string(),
        "log.cleaner.backoff.ms=50".to_string(),
    ];
    let mut broker = start_with(&settings);
    let rt = runtime();
    create_topic(
        &rt,
        &broker.addr,
        "tiered",
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "40000"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    );
    let producer = producer(&broker.addr, &[("linger.ms", "0"), ("batch.size", "4000")]);
    let mut written: Records = Vec::new();
    // Rounds of writes: the cleaner and the migrator both work between and during them.
    for round in 0..6 {
        let records: Vec<KeyValue> = (0..300)
            .map(|i| {
                let n = round * 300 + i;
                (
                    Some(format!("key-{}", n % 600).into_bytes()),
                    Some(format!("value-{n}-{}", "v".repeat(150)).into_bytes()),
                )
            })
            .collect();
        let offsets = produce(&rt, &producer, "tiered", 0, &records);
        written.extend(
            offsets
                .iter()
                .zip(&records)
                .map(|(o, (k, v))| (*o, k.clone().unwrap(), v.clone())),
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let last = written.last().unwrap().0;
    assert!(
        eventually(Duration::from_secs(60), || cleaned_up_to(&broker, "tiered")
            .is_some_and(|c| c > last - 300)),
        "cleaned up to {:?}",
        cleaned_up_to(&broker, "tiered")
    );
    let end = cleaned_up_to(&broker, "tiered").unwrap();
    let got = read_partition(&broker.addr, "tiered");
    assert_eq!(got, compacted(&written, end));
    // Segments moved down while the log grew (and may have come back up once the cleaner
    // shrank it), and no cleaning or migration left files behind.
    let log = broker.log();
    assert!(log.contains("moved down to the second tier"), "{log}");
    assert!(log.contains("log cleaned"), "{log}");
    let (in_fast, in_slow) = (
        files_under(&fast, "tiered-0"),
        files_under(&slow, "tiered-0"),
    );
    for f in in_fast.iter().chain(&in_slow) {
        assert!(
            !f.ends_with(".cleaned") && !f.ends_with(".swap") && !f.ends_with(".migrating"),
            "{f} left behind"
        );
    }
    broker.stop();
    broker.restart();
    assert_eq!(read_partition(&broker.addr, "tiered"), got);
}

/// The dirty ratio of each partition of a compacted topic, as `strata topics --describe` shows
/// it (from `DirtyRatio:` on each partition line; None when the line has no such field).
fn described_dirty_ratios(addr: &str, topic: &str) -> Vec<Option<String>> {
    let (ok, out, err) = strata_tool("topics", addr, &["--describe", "--topic", topic]);
    assert!(ok, "{err}");
    out.lines()
        .filter(|l| l.contains("\tPartition: "))
        .map(|l| {
            l.split('\t')
                .find_map(|f| f.strip_prefix("DirtyRatio: "))
                .map(str::to_string)
        })
        .collect()
}

/// `strata topics --describe` shows each partition's dirty ratio for a compacted topic (all of
/// its sealed log while the cleaner is off, nothing once it has cleaned), and none for others.
#[test]
fn topics_describe_shows_the_dirty_ratio_of_compacted_partitions() {
    let mut broker = BrokerProcess::start(&["log.cleaner.enable=false"]);
    let rt = runtime();
    let compact = [
        ("cleanup.policy", "compact"),
        ("segment.bytes", "4096"),
        ("min.cleanable.dirty.ratio", "0.01"),
    ];
    create_topic(&rt, &broker.addr, "kv", 2, &compact);
    create_topic(&rt, &broker.addr, "plain", 1, &[]);
    let producer = producer(&broker.addr, &[("linger.ms", "0"), ("batch.size", "1000")]);
    let records: Vec<KeyValue> = (0..200)
        .map(|i| {
            (
                Some(format!("key-{}", i % 10).into_bytes()),
                Some(vec![b'v'; 100]),
            )
        })
        .collect();
    produce(&rt, &producer, "kv", 0, &records);
    produce(&rt, &producer, "plain", 0, &records);
    // Partition 0 has sealed segments none of which was cleaned; partition 1 is empty.
    assert_eq!(
        described_dirty_ratios(&broker.addr, "kv"),
        vec![Some("1.00".to_string()), Some("0.00".to_string())]
    );
    assert_eq!(described_dirty_ratios(&broker.addr, "plain"), vec![None]);

    broker.stop();
    broker.remove_override("log.cleaner.enable");
    broker.set_override("log.cleaner.backoff.ms=100");
    broker.restart();
    assert!(
        eventually(Duration::from_secs(60), || cleaned_up_to(&broker, "kv")
            .is_some()),
        "the cleaner reached the topic"
    );
    // The checkpoint can land a moment before the ratio the broker reports follows it.
    let clean = vec![Some("0.00".to_string()), Some("0.00".to_string())];
    let mut last = Vec::new();
    assert!(
        eventually(Duration::from_secs(10), || {
            last = described_dirty_ratios(&broker.addr, "kv");
            last == clean
        }),
        "dirty ratios {last:?} after cleaning"
    );
}
