//! The tiered channel with the real broker: new segments go to the first tier while it has
//! room, then to the second; every record stays readable across restarts and crashes.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use rdkafka::Message;

fn logs_in(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn segments_fill_the_first_tier_then_the_second_and_stay_readable() {
    let tiers = tempfile::tempdir().unwrap();
    let fast = tiers.path().join("fast");
    let slow = tiers.path().join("slow");
    let mut broker = BrokerProcess::start(&[
        "log.channel.type=tiered",
        "storage.tiers.types=NVME,HDD",
        &format!("storage.tiers.first.paths={}", fast.display()),
        "storage.tiers.first.sizes=200000",
        &format!("storage.tiers.second.paths={}", slow.display()),
    ]);
    let rt = runtime();
    create_topic(
        &rt,
        &broker.addr,
        "tiered",
        1,
        &[("segment.bytes", "50000")],
    );
    let producer = producer(&broker.addr, &[("linger.ms", "0"), ("batch.size", "8192")]);
    let records: Vec<KeyValue> = (0..600)
        .map(|i| {
            (
                None,
                Some(format!("{i:04}-{}", "t".repeat(1000)).into_bytes()),
            )
        })
        .collect();
    for chunk in records.chunks(20) {
        produce(&rt, &producer, "tiered", 0, chunk);
    }
    let (on_fast, on_slow) = (
        logs_in(&fast.join("tiered-0")),
        logs_in(&slow.join("tiered-0")),
    );
    assert!(
        (2..=4).contains(&on_fast),
        "the first tier holds what fits in 200 kB: {on_fast} segments"
    );
    assert!(
        on_slow >= 8,
        "the rest goes to the second tier: {on_slow} segments"
    );
    assert_eq!(
        logs_in(&broker.data_dir().join("tiered-0")),
        0,
        "no segment in log.dirs"
    );

    let check = |broker: &BrokerProcess| {
        let consumer = consumer(&broker.addr, &[]);
        let got = consume(&consumer, "tiered", 0, 0, 600, Duration::from_secs(30));
        for (i, m) in got.iter().enumerate() {
            assert_eq!(m.offset(), i as i64);
            assert_eq!(Some(payload(m)), records[i].1);
        }
    };
    check(&broker);
    drop(producer);
    broker.stop();
    broker.restart();
    check(&broker);
    broker.kill();
    broker.restart();
    check(&broker);
    // Appends continue, in the second tier since the first is full.
    let producer = common::producer(&broker.addr, &[]);
    assert_eq!(
        produce(&rt, &producer, "tiered", 0, &records[..1]),
        vec![600]
    );
}

#[test]
fn describe_log_dirs_reports_each_tier_directory() {
    use kafka_protocol::messages::DescribeLogDirsRequest;
    let tiers = tempfile::tempdir().unwrap();
    let (fast, slow) = (tiers.path().join("fast"), tiers.path().join("slow"));
    let broker = BrokerProcess::start(&[
        "log.channel.type=tiered",
        &format!("storage.tiers.first.paths={}", fast.display()),
        "storage.tiers.first.sizes=100000",
        &format!("storage.tiers.second.paths={}", slow.display()),
    ]);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "dirs", 1, &[("segment.bytes", "40000")]);
    let producer = producer(&broker.addr, &[("linger.ms", "0"), ("batch.size", "8192")]);
    for _ in 0..10 {
        produce(
            &rt,
            &producer,
            "dirs",
            0,
            &vec![(None, Some(vec![7u8; 1000])); 20],
        );
    }
    let dirs = rt.block_on(async {
        let mut client = strata::client::Client::connect(&broker.addr).await.unwrap();
        client
            .send(DescribeLogDirsRequest::default().with_topics(None))
            .await
            .unwrap()
    });
    let fast = fast.canonicalize().unwrap().display().to_string();
    let slow = slow.canonicalize().unwrap().display().to_string();
    let find = |d: &str| {
        dirs.results
            .iter()
            .find(|r| r.log_dir.as_str() == d)
            .unwrap_or_else(|| panic!("{d} not reported"))
    };
    let (f, s) = (find(&fast), find(&slow));
    assert_eq!(f.total_bytes, 100000);
    assert!(f.usable_bytes >= 0 && f.usable_bytes < 100000);
    let size = |r: &kafka_protocol::messages::describe_log_dirs_response::DescribeLogDirsResult| {
        r.topics[0].partitions[0].partition_size
    };
    assert!(size(f) > 0 && size(s) > 0, "segments in both tiers");
    assert!(size(f) + size(s) > 200_000, "all bytes are accounted for");
}
