//! Two ordinary mistakes that used to lose or hide acknowledged data: a second broker started on
//! the same data directory, and a broker restarted with another channel's configuration.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

fn values(prefix: &str, n: usize) -> Vec<KeyValue> {
    (0..n)
        .map(|i| (None, Some(format!("{prefix}-{i}").into_bytes())))
        .collect()
}

fn read_values(addr: &str, topic: &str, count: usize) -> Vec<String> {
    let consumer = consumer(addr, &[]);
    consume(&consumer, topic, 0, 0, count, Duration::from_secs(20))
        .iter()
        .map(|m| String::from_utf8(payload(m)).unwrap())
        .collect()
}

fn expected(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// The settings of a tiered broker with its tiers under `dir`.
fn tiered(fast: &Path, slow: &Path, first_bytes: u64) -> Vec<String> {
    vec![
        "log.channel.type=tiered".to_string(),
        format!("storage.tiers.first.paths={}", fast.display()),
        format!("storage.tiers.first.sizes={first_bytes}"),
        format!("storage.tiers.second.paths={}", slow.display()),
        "storage.tiers.types=NVME,HDD".to_string(),
    ]
}

#[test]
fn a_second_broker_on_the_same_data_directory_refuses_to_start() {
    let scratch = tempfile::tempdir().unwrap();
    let (fast, slow) = (scratch.path().join("fast"), scratch.path().join("slow"));
    let settings = tiered(&fast, &slow, 100_000_000);
    let refs: Vec<&str> = settings.iter().map(String::as_str).collect();
    let broker = BrokerProcess::start(&refs);
    let rt = runtime();
    let producer = producer(&broker.addr, &[]);
    produce(&rt, &producer, "kept", 0, &values("kept", 20));

    // Same log.dirs: refused, naming the directory, before anything in it is touched.
    let mut second = BrokerProcess::on_data_dir(&broker.data_dir(), &refs);
    let log = second.start_refused();
    let lock_message = format!(
        "Failed to acquire lock on file .lock in {}",
        broker.data_dir().display()
    );
    assert!(log.contains(&lock_message), "{log}");
    assert_eq!(log.matches(&lock_message).count(), 1, "said once: {log}");

    // Another log.dirs but the same tier directories: refused, naming the first tier.
    let other = scratch.path().join("other-data");
    let mut third = BrokerProcess::on_data_dir(&other, &refs);
    let log = third.start_refused();
    let lock_message = format!("Failed to acquire lock on file .lock in {}", fast.display());
    assert!(log.contains(&lock_message), "{log}");

    // The first broker was not disturbed.
    assert_eq!(read_values(&broker.addr, "kept", 20), expected("kept", 20));
    assert_eq!(
        produce(&rt, &producer, "kept", 0, &values("more", 1)),
        vec![20]
    );
}

#[test]
fn a_crashed_broker_leaves_no_lock_behind() {
    let mut broker = BrokerProcess::start(&[]);
    let rt = runtime();
    produce(&rt, &producer(&broker.addr, &[]), "t", 0, &values("v", 5));
    broker.kill();
    broker.restart();
    assert_eq!(read_values(&broker.addr, "t", 5), expected("v", 5));
}

#[test]
fn a_file_topic_stays_readable_when_the_broker_turns_tiered() {
    let mut broker = BrokerProcess::start(&[]);
    let rt = runtime();
    produce(
        &rt,
        &producer(&broker.addr, &[]),
        "demo",
        0,
        &values("demo", 30),
    );
    broker.stop();

    let scratch = tempfile::tempdir().unwrap();
    let (fast, slow) = (scratch.path().join("fast"), scratch.path().join("slow"));
    for s in tiered(&fast, &slow, 100_000_000) {
        broker.set_override(&s);
    }
    broker.restart();
    // Opened where it is, on the channel it was created on: the same records, and new ones
    // continue its offsets in its own directory.
    assert_eq!(read_values(&broker.addr, "demo", 30), expected("demo", 30));
    assert_eq!(
        produce(
            &rt,
            &producer(&broker.addr, &[]),
            "demo",
            0,
            &values("after", 1)
        ),
        vec![30]
    );
    assert!(!fast.join("demo-0").exists(), "no segment went to a tier");
    // A topic created now is tiered.
    produce(
        &rt,
        &producer(&broker.addr, &[]),
        "fresh",
        0,
        &values("f", 1),
    );
    assert_eq!(
        segments_in(&fast.join("fresh-0")) + segments_in(&slow.join("fresh-0")),
        1
    );
    assert_eq!(segments_in(&broker.data_dir().join("fresh-0")), 0);
}

fn segments_in(dir: &PathBuf) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".log"))
            })
            .count()
        })
        .unwrap_or(0)
}

#[test]
fn a_tiered_topic_stops_a_broker_that_does_not_look_where_its_data_is() {
    let scratch = tempfile::tempdir().unwrap();
    let (fast, slow) = (scratch.path().join("fast"), scratch.path().join("slow"));
    // A first tier smaller than one segment: every segment is placed on the second tier.
    let settings = tiered(&fast, &slow, 1000);
    let mut broker = start_with(&settings);
    let rt = runtime();
    produce(
        &rt,
        &producer(&broker.addr, &[]),
        "big",
        0,
        &values("big", 40),
    );
    broker.stop();
    assert_eq!(segments_in(&slow.join("big-0")), 1);

    // Back to the file channel: the start stops, naming the topic, where its data is and what
    // to do; nothing is served as empty.
    for key in [
        "log.channel.type",
        "storage.tiers.first.paths",
        "storage.tiers.first.sizes",
    ] {
        broker.remove_override(key);
    }
    broker.remove_override("storage.tiers.second.paths");
    broker.remove_override("storage.tiers.types");
    let log = broker.start_refused();
    assert!(
        log.contains("topic big was created on the tiered channel"),
        "{log}"
    );
    assert!(
        log.contains(&slow.join("big-0").display().to_string()),
        "{log}"
    );
    assert!(log.contains("log.channel.type=tiered"), "{log}");

    // Tiered again, but the second tier moved elsewhere: the old one still holds the data.
    let moved = scratch.path().join("slow2");
    for s in tiered(&fast, &moved, 1000) {
        broker.set_override(&s);
    }
    let log = broker.start_refused();
    assert!(
        log.contains(&slow.join("big-0").display().to_string()),
        "{log}"
    );

    // With the directories that hold it, everything is there.
    for s in &settings {
        broker.set_override(s);
    }
    broker.restart();
    assert_eq!(read_values(&broker.addr, "big", 40), expected("big", 40));
}

#[test]
fn a_data_directory_that_is_a_file_is_refused_naming_it_and_its_cause_once() {
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let mut broker = BrokerProcess::on_data_dir(&file, &[]);
    let log = broker.start_refused();
    let expected = format!(
        "data directory {}: Not a directory (os error 20)",
        file.display()
    );
    assert!(log.contains(&expected), "{log}");
    assert_eq!(
        log.matches("os error 20").count(),
        1,
        "the cause said once: {log}"
    );
    // A directory inside a file cannot be created either: named, with the cause once.
    let inside = file.join("data");
    let mut broker = BrokerProcess::on_data_dir(&inside, &[]);
    let log = broker.start_refused();
    assert!(
        log.contains(&format!("data directory {}:", inside.display())),
        "{log}"
    );
    assert_eq!(log.matches("(os error").count(), 1, "{log}");
}
