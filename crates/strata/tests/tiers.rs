//! The tiered channel with the real broker: new segments go to the first tier while it has
//! room, then to the second; every record stays readable across restarts and crashes.

mod common;

use std::path::{Path, PathBuf};
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

/// Values of about 1 kB numbered by `numbers`, each starting with its number: `0042-ffff...`.
fn numbered_records(numbers: std::ops::Range<usize>, fill: char) -> Vec<KeyValue> {
    numbers
        .map(|i| {
            let value = format!("{i:04}-{}", fill.to_string().repeat(1000));
            (None, Some(value.into_bytes()))
        })
        .collect()
}

/// Bytes of the `.log` files in `dir`.
fn log_bytes_in(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// A broker with the tiered channel: a first tier of `first_bytes` in `<dir>/fast` and a second
/// tier in `<dir>/slow`, plus `extra` settings. Returns the broker and the two tier directories.
fn tiered_broker(
    dir: &Path,
    first_bytes: u64,
    extra: &[&str],
) -> (BrokerProcess, PathBuf, PathBuf) {
    let (fast, slow) = (dir.join("fast"), dir.join("slow"));
    let mut settings = vec![
        "log.channel.type=tiered".to_string(),
        format!("storage.tiers.first.paths={}", fast.display()),
        format!("storage.tiers.first.sizes={first_bytes}"),
        format!("storage.tiers.second.paths={}", slow.display()),
    ];
    settings.extend(extra.iter().map(|s| s.to_string()));
    (start_with(&settings), fast, slow)
}

/// A tiered broker whose 400 kB first tier is kept at 50% (band 10%), checked every 50 ms, with
/// topic "moving" of 40 kB segments: small enough that a few hundred records move.
fn migrating_broker(dir: &Path) -> (BrokerProcess, PathBuf, PathBuf) {
    let (broker, fast, slow) = tiered_broker(
        dir,
        400000,
        &[
            "storage.migrate.threshold=0.5",
            "storage.migrate.hysteresis=0.1",
            "storage.migrate.interval.ms=50",
        ],
    );
    create_topic(
        &runtime(),
        &broker.addr,
        "moving",
        1,
        &[("segment.bytes", "40000")],
    );
    (broker, fast, slow)
}

#[test]
fn segments_fill_the_first_tier_then_the_second_and_stay_readable() {
    let tiers = tempfile::tempdir().unwrap();
    // Placement alone: nothing migrates, so the counts below stay put.
    let (mut broker, fast, slow) = tiered_broker(
        tiers.path(),
        200000,
        &[
            "storage.tiers.types=NVME,HDD",
            "storage.migrate.threshold=-1",
        ],
    );
    let rt = runtime();
    create_topic(
        &rt,
        &broker.addr,
        "tiered",
        1,
        &[("segment.bytes", "50000")],
    );
    let producer = producer(&broker.addr, &[("linger.ms", "0"), ("batch.size", "8192")]);
    let records = numbered_records(0..600, 't');
    for chunk in records.chunks(20) {
        produce(&rt, &producer, "tiered", 0, chunk);
    }
    let (on_fast, on_slow) = (
        logs_in(&fast.join("tiered-0")),
        logs_in(&slow.join("tiered-0")),
    );
    // `strata tiers` shows the same picture from the directories.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "tiers",
            "--override",
            "log.channel.type=tiered",
            "--override",
            "storage.tiers.types=NVME,HDD",
        ])
        .args([
            "--override",
            &format!("storage.tiers.first.paths={}", fast.display()),
            "--override",
            "storage.tiers.first.sizes=200000",
        ])
        .args([
            "--override",
            &format!("storage.tiers.second.paths={}", slow.display()),
        ])
        .args([
            "--override",
            &format!("log.dirs={}", broker.data_dir().display()),
        ])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    let tier_line = |tier: &str| {
        out.lines()
            .find(|l| l.starts_with(tier))
            .unwrap_or_else(|| panic!("no {tier} line in {out}"))
            .to_string()
    };
    assert!(
        tier_line("first ").contains("NVME") && tier_line("first ").contains("195.3 KiB"),
        "{out}"
    );
    assert!(
        tier_line("first ")
            .trim_end()
            .ends_with(&format!(" {on_fast}")),
        "{out}"
    );
    assert!(
        tier_line("second")
            .trim_end()
            .ends_with(&format!(" {on_slow}")),
        "{out}"
    );
    assert_eq!(
        out.lines()
            .filter(|l| l.split_whitespace().take(2).eq(["tiered", "0"]))
            .count(),
        on_fast + on_slow,
        "{out}"
    );
    assert!(out.contains("migrations in flight: 0"), "{out}");
    // Use against capacity, from the data the segments hold (not what files reserve).
    let used: f64 = tier_line("first ")
        .split_whitespace()
        .find_map(|w| w.strip_suffix('%'))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no use percentage in {out}"));
    let fast_bytes = log_bytes_in(&fast.join("tiered-0"));
    assert!(
        (used - fast_bytes as f64 * 100.0 / 200_000.0).abs() < 0.1,
        "{used}% of 200000 for {fast_bytes} bytes: {out}"
    );
    // Without tier keys it asks the running broker, and sees the same directories.
    let asked = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["tiers", "--bootstrap-server", &broker.addr])
        .output()
        .unwrap();
    let asked = String::from_utf8_lossy(&asked.stdout).into_owned();
    assert!(
        asked.contains(&format!("configuration: the broker at {}", broker.addr)),
        "{asked}"
    );
    // (Type, directory, capacity, data: the broker's own settings also carry its threshold.)
    let columns = |line: &str| {
        line.split_whitespace()
            .take(6)
            .collect::<Vec<_>>()
            .join(" ")
    };
    for tier in ["first ", "second"] {
        assert_eq!(
            asked.lines().find(|l| l.starts_with(tier)).map(columns),
            Some(columns(&tier_line(tier))),
            "{asked}"
        );
    }
    assert!(
        asked
            .lines()
            .any(|l| l.starts_with("first ") && l.contains(" - ")),
        "the broker runs without migration (threshold -1): {asked}"
    );
    // Its output cut short by a closed pipe (`| head -1`) ends it quietly.
    let mut cut = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["tiers", "--bootstrap-server", &broker.addr])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 1];
    std::io::Read::read_exact(cut.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(cut.stdout.take());
    let cut = cut.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&cut.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
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
    let (broker, fast, slow) =
        tiered_broker(tiers.path(), 100000, &["storage.migrate.threshold=-1"]);
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

#[test]
fn migration_keeps_the_first_tier_at_the_threshold_while_clients_run_and_survives_kill_dash_nine() {
    let tiers = tempfile::tempdir().unwrap();
    let (mut broker, fast, slow) = migrating_broker(tiers.path());
    let rt = runtime();
    let producer = producer(
        &broker.addr,
        &[("linger.ms", "0"), ("batch.size", "8192"), ("acks", "all")],
    );
    let consumer = consumer(&broker.addr, &[]);
    let records = numbered_records(0..800, 'm');
    // Produce and consume at the same time while segments move.
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("moving", 0, rdkafka::Offset::Offset(0))
        .unwrap();
    rdkafka::consumer::Consumer::assign(&consumer, &tpl).unwrap();
    let mut seen = Vec::new();
    for chunk in records.chunks(10) {
        produce(&rt, &producer, "moving", 0, chunk);
        while let Some(m) = consumer.poll(Duration::from_millis(5)) {
            seen.push(m.unwrap().detach());
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while seen.len() < 800 && std::time::Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(50)) {
            seen.push(m.unwrap().detach());
        }
    }
    assert_eq!(seen.len(), 800, "every record consumed once");
    for (i, m) in seen.iter().enumerate() {
        assert_eq!(m.offset(), i as i64, "in order");
        assert_eq!(Some(payload(m)), records[i].1);
    }
    // The first tier settles at or below threshold + band (240 kB of 400 kB: at most 6 segments
    // of 40 kB, counting the active one's full reservation), the rest is on the second tier.
    assert!(
        eventually(Duration::from_secs(20), || logs_in(&fast.join("moving-0"))
            <= 6),
        "first tier still holds {} segments",
        logs_in(&fast.join("moving-0"))
    );
    assert!(logs_in(&slow.join("moving-0")) >= 10);
    let temporaries = |dir: &Path| {
        std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".migrating"))
                    .count()
            })
            .unwrap_or(0)
    };
    // A crash in the middle of whatever is moving; then every acknowledged record is there once.
    broker.kill();
    broker.restart();
    assert_eq!(
        temporaries(&fast.join("moving-0")) + temporaries(&slow.join("moving-0")),
        0
    );
    let consumer = common::consumer(&broker.addr, &[]);
    let got = consume(&consumer, "moving", 0, 0, 800, Duration::from_secs(30));
    for (i, m) in got.iter().enumerate() {
        assert_eq!(Some(payload(m)), records[i].1);
    }
    let mut both = 0;
    for name in std::fs::read_dir(fast.join("moving-0"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
    {
        if name.ends_with(".log") && slow.join("moving-0").join(&name).exists() {
            both += 1;
        }
    }
    assert_eq!(both, 0, "no segment is kept in both tiers");
}

#[test]
fn both_tiers_full_fails_produce_with_storage_error_keeps_reads_and_resumes() {
    let tiers = tempfile::tempdir().unwrap();
    let (broker, _, _) = tiered_broker(
        tiers.path(),
        100000,
        &[
            "storage.tiers.second.sizes=100000",
            "storage.migrate.threshold=-1",
        ],
    );
    create_topic(
        &runtime(),
        &broker.addr,
        "full",
        1,
        &[("segment.bytes", "40000")],
    );
    let acknowledged = fill_until_storage_error_then_resume(&broker.addr, "full");
    assert!(acknowledged > 100, "{acknowledged} records fit");
}

#[test]
fn prometheus_metrics_show_tiers_and_migrations() {
    let port = free_port();
    let tiers = tempfile::tempdir().unwrap();
    let metrics = format!("metrics.prometheus.listener=127.0.0.1:{port}");
    let (broker, _, _) = tiered_broker(
        tiers.path(),
        300000,
        &["storage.migrate.interval.ms=50", &metrics],
    );
    let rt = runtime();
    create_topic(
        &rt,
        &broker.addr,
        "watched",
        1,
        &[("segment.bytes", "30000")],
    );
    let producer = producer(&broker.addr, &[("linger.ms", "0"), ("batch.size", "8192")]);
    for _ in 0..20 {
        produce(
            &rt,
            &producer,
            "watched",
            0,
            &vec![(None, Some(vec![3u8; 1000])); 20],
        );
    }
    let scrape = || scrape_metrics(port);
    let value = metric_value;
    assert!(
        eventually(Duration::from_secs(20), || {
            let body = scrape();
            value(&body, "strata_migrations_total", "direction=\"down\"") > 0.0
                && value(&body, "strata_tier_written_bytes_total", "tier=\"first\"") > 0.0
        }),
        "{}",
        scrape()
    );
    let body = scrape();
    assert_eq!(
        value(&body, "strata_tier_capacity_bytes", "tier=\"first\""),
        300000.0,
        "{body}"
    );
    assert!(
        value(&body, "strata_tier_used_bytes", "tier=\"second\"") > 0.0
            && value(&body, "strata_tier_segments", "tier=\"second\"") > 0.0,
        "{body}"
    );
    assert!(
        value(&body, "strata_migration_bytes_total", "") > 0.0,
        "{body}"
    );
    assert!(value(&body, "strata_log_bytes", "") >= 400_000.0, "{body}");
    assert!(
        value(&body, "strata_tier_written_bytes_total", "tier=\"second\"") > 0.0,
        "migrations count as writes to the second tier: {body}"
    );
    // Each move is logged at INFO, with where it went.
    let log = broker.log();
    assert!(
        log.lines().any(|l| l.contains("INFO")
            && l.contains("segment moved down to the second tier")
            && l.contains("topic=watched")),
        "{log}"
    );
    for name in [
        "strata_tier_written_bytes_total",
        "strata_tier_used_bytes",
        "strata_migrations_total",
    ] {
        assert!(
            body.contains(&format!("# HELP {name} ")),
            "no help for {name}: {body}"
        );
    }
}

#[test]
fn a_topic_with_the_file_channel_stays_in_log_dirs_and_channels_do_not_change() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let tiers = tempfile::tempdir().unwrap();
    let (broker, fast, slow) = tiered_broker(tiers.path(), 10_000_000, &[]);
    let rt = runtime();
    let admin: AdminClient<_> = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .create()
        .unwrap();
    let create = |name: &str, channel: &str| {
        let topic = NewTopic::new(name, 1, TopicReplication::Fixed(1)).set("channel.type", channel);
        rt.block_on(admin.create_topics(&[topic], &AdminOptions::new()))
            .unwrap()
            .remove(0)
            .map_err(|(_, e)| e)
    };
    create("plain", "file").unwrap();
    create("fast", "tiered").unwrap();
    assert_eq!(
        create("pooled", "pmem").unwrap_err(),
        rdkafka::types::RDKafkaErrorCode::InvalidConfig,
        "pmem needs the broker's pmem channel"
    );
    let producer = producer(&broker.addr, &[("linger.ms", "0")]);
    for topic in ["plain", "fast"] {
        produce(&rt, &producer, topic, 0, &[(None, Some(b"x".to_vec()))]);
    }
    // The file topic's segments are in log.dirs, the tiered topic's in the tiers.
    assert_eq!(logs_in(&broker.data_dir().join("plain-0")), 1);
    assert_eq!(
        logs_in(&fast.join("plain-0")) + logs_in(&slow.join("plain-0")),
        0
    );
    assert_eq!(
        logs_in(&fast.join("fast-0")) + logs_in(&slow.join("fast-0")),
        1
    );
    assert_eq!(logs_in(&broker.data_dir().join("fast-0")), 0);
    // An existing topic keeps its channel.
    let response = rt.block_on(async {
        use kafka_protocol::messages::incremental_alter_configs_request::{
            AlterConfigsResource, AlterableConfig,
        };
        use kafka_protocol::protocol::StrBytes;
        let mut client = strata::client::Client::connect(&broker.addr).await.unwrap();
        client
            .send(
                kafka_protocol::messages::IncrementalAlterConfigsRequest::default().with_resources(
                    vec![AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(StrBytes::from_static_str("plain"))
                        .with_configs(vec![AlterableConfig::default()
                            .with_name(StrBytes::from_static_str("channel.type"))
                            .with_config_operation(0)
                            .with_value(Some(StrBytes::from_static_str("tiered")))])],
                ),
            )
            .await
            .unwrap()
    });
    assert_eq!(response.responses[0].error_code, 40, "INVALID_CONFIG");
    let message = response.responses[0]
        .error_message
        .as_ref()
        .unwrap()
        .to_string();
    assert!(message.contains("channel.type"), "{message}");
    // Both are still readable after a restart.
    let mut broker = broker;
    broker.stop();
    broker.restart();
    let consumer = consumer(&broker.addr, &[]);
    for topic in ["plain", "fast"] {
        let got = consume(&consumer, topic, 0, 0, 1, Duration::from_secs(20));
        assert_eq!(payload(&got[0]), b"x");
    }
}

/// Demotions first; then the first tier grows (a restart with a larger
/// `storage.migrate...first.sizes`), its usage falls below the band, and the newest second-tier
/// segments move back up, while every record stays readable in order.
#[test]
fn segments_move_back_up_when_the_first_tier_has_room() {
    let tiers = tempfile::tempdir().unwrap();
    let (mut broker, fast, slow) = migrating_broker(tiers.path());
    let rt = runtime();
    let producer = producer(&broker.addr, &[("linger.ms", "0"), ("batch.size", "8192")]);
    let records = numbered_records(0..600, 'u');
    for chunk in records.chunks(20) {
        produce(&rt, &producer, "moving", 0, chunk);
    }
    drop(producer);
    // Generous: under CI's load the migrator's passes come later than their interval.
    assert!(
        eventually(Duration::from_secs(60), || logs_in(&fast.join("moving-0"))
            <= 6),
        "{} segments on the first tier",
        logs_in(&fast.join("moving-0"))
    );
    let bases = |dir: &Path| -> Vec<i64> {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_string_lossy()
                    .strip_suffix(".log")
                    .and_then(|b| b.parse().ok())
            })
            .collect()
    };
    let down_before = logs_in(&slow.join("moving-0"));
    // Sealed segments on the second tier (the active one, wherever it is, never moves).
    let active_before = bases(&fast.join("moving-0"))
        .into_iter()
        .chain(bases(&slow.join("moving-0")))
        .max()
        .unwrap();
    let on_second_before: Vec<i64> = bases(&slow.join("moving-0"))
        .into_iter()
        .filter(|b| *b != active_before)
        .collect();
    assert!(down_before >= 8, "{down_before} segments went down");
    // Twice the room: usage (about 200 kB of 800 kB) is below the band, so segments come up
    // until the first tier holds 400 kB.
    broker.stop();
    broker.set_override("storage.tiers.first.sizes=800000");
    broker.restart();
    // A consumer reads from the start while segments come up.
    let consumer = consumer(&broker.addr, &[]);
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("moving", 0, rdkafka::Offset::Offset(0))
        .unwrap();
    rdkafka::consumer::Consumer::assign(&consumer, &tpl).unwrap();
    let mut seen = Vec::new();
    let read_up_to = |n: usize, seen: &mut Vec<rdkafka::message::OwnedMessage>| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while seen.len() < n && std::time::Instant::now() < deadline {
            if let Some(m) = consumer.poll(Duration::from_millis(20)) {
                seen.push(m.unwrap().detach());
            }
        }
    };
    read_up_to(600, &mut seen);
    assert!(
        eventually(Duration::from_secs(20), || logs_in(&fast.join("moving-0"))
            >= 9),
        "only {} segments on the first tier",
        logs_in(&fast.join("moving-0"))
    );
    assert!(logs_in(&slow.join("moving-0")) < down_before);
    // What came up is the newest of what was down: every promoted segment is newer than every
    // segment still on the second tier. (Segments that were placed on the first tier stay there
    // while it is within its band, however old.)
    let up = bases(&fast.join("moving-0"));
    let promoted: Vec<i64> = on_second_before
        .iter()
        .filter(|b| up.contains(b))
        .copied()
        .collect();
    let remaining: Vec<i64> = on_second_before
        .iter()
        .filter(|b| !up.contains(b))
        .copied()
        .collect();
    assert!(
        !promoted.is_empty() && !remaining.is_empty(),
        "promoted {promoted:?}, left {remaining:?}"
    );
    assert!(
        promoted.iter().min() > remaining.iter().max(),
        "promoted {promoted:?}, left on the second tier {remaining:?}"
    );
    // Then a producer adds 100 records (the first tier passes its band again, so segments move
    // down) while the consumer goes on: every record once, in order.
    let producer = common::producer(&broker.addr, &[("linger.ms", "0")]);
    let more = numbered_records(600..700, 'u');
    for chunk in more.chunks(10) {
        produce(&rt, &producer, "moving", 0, chunk);
        read_up_to(seen.len() + 1, &mut seen);
    }
    read_up_to(700, &mut seen);
    assert_eq!(seen.len(), 700, "every record once");
    for (i, m) in seen.iter().enumerate() {
        assert_eq!(m.offset(), i as i64);
        let expected = if i < 600 {
            &records[i].1
        } else {
            &more[i - 600].1
        };
        assert_eq!(Some(payload(m)), *expected, "offset {i}");
    }
}

#[test]
fn a_backlog_of_moves_longer_than_the_migration_queue_drains_completely() {
    // ~220 segments of 16 kB land on a 4 MB first tier kept at 25%, with migration slowed to
    // 500 kB/s: the planner asks for more moves than its queue (64) holds, and every one that
    // did not fit must be planned again later, not taken for done.
    let tiers = tempfile::tempdir().unwrap();
    let (broker, fast, slow) = tiered_broker(
        tiers.path(),
        4_000_000,
        &[
            "storage.migrate.threshold=0.25",
            "storage.migrate.hysteresis=0.05",
            "storage.migrate.interval.ms=50",
            "storage.migrate.max.bytes.per.sec=500000",
        ],
    );
    let rt = runtime();
    create_topic(
        &rt,
        &broker.addr,
        "backlog",
        1,
        &[("segment.bytes", "16000")],
    );
    let producer = producer(&broker.addr, &[("linger.ms", "0"), ("batch.size", "8192")]);
    let records = numbered_records(0..3500, 'b');
    for chunk in records.chunks(100) {
        produce(&rt, &producer, "backlog", 0, chunk);
    }
    drop(producer);
    // Settled: at most threshold + band = 30% of 4 MB (1.2 MB, the active segment counted
    // whole), where the queue's leftovers kept it at 3 MB.
    assert!(
        eventually(Duration::from_secs(60), || log_bytes_in(
            &fast.join("backlog-0")
        ) <= 1_200_000),
        "{} bytes still on the first tier",
        log_bytes_in(&fast.join("backlog-0"))
    );
    assert!(logs_in(&slow.join("backlog-0")) >= 140);
    let consumer = consumer(&broker.addr, &[]);
    let got = consume(&consumer, "backlog", 0, 0, 3500, Duration::from_secs(30));
    for (i, m) in got.iter().enumerate() {
        assert_eq!(Some(payload(m)), records[i].1);
    }
}

/// The tier policy changes at run time (dynamic broker configs, `strata configs --broker 0`):
/// a broker started with migration off starts moving segments down once a threshold is set,
/// at the bandwidth bound set with it, and the bound lifted lets the rest go at once; the
/// settings hold across a restart.
#[test]
fn the_tier_policy_changes_live_through_dynamic_broker_configs() {
    let tiers = tempfile::tempdir().unwrap();
    let (mut broker, fast, slow) = tiered_broker(
        tiers.path(),
        400000,
        &[
            "storage.migrate.threshold=-1",
            "storage.migrate.interval.ms=50",
        ],
    );
    let rt = runtime();
    create_topic(
        &rt,
        &broker.addr,
        "policy",
        1,
        &[("segment.bytes", "40000")],
    );
    let producer = producer(&broker.addr, &[("linger.ms", "0"), ("batch.size", "8192")]);
    for chunk in numbered_records(0..300, 'p').chunks(20) {
        produce(&rt, &producer, "policy", 0, chunk);
    }
    let (part_fast, part_slow) = (fast.join("policy-0"), slow.join("policy-0"));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(logs_in(&part_slow), 0, "migration is off");
    let alter = |config: &str| {
        let (ok, out) = alter_broker_configs(&broker.addr, "0", config);
        assert!(ok, "{out}");
    };
    // A threshold, with a bound of 8 kB/s: a 40 kB segment takes five seconds to move.
    alter("storage.migrate.threshold=0.5,storage.migrate.max.bytes.per.sec=8000");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        logs_in(&part_slow),
        0,
        "the bound holds the first move back"
    );
    alter("storage.migrate.max.bytes.per.sec=-1");
    assert!(
        eventually(Duration::from_secs(20), || log_bytes_in(&part_fast)
            <= 200_000
            && logs_in(&part_slow) > 0),
        "fast {} bytes, slow {} segments",
        log_bytes_in(&part_fast),
        logs_in(&part_slow)
    );
    // The broker describes what it runs with; a static tier setting is refused.
    let (_, out, _) = strata_tool("configs", &broker.addr, &["--describe", "--broker", "0"]);
    assert!(out.contains("Dynamic configs for broker 0 are:"), "{out}");
    assert!(
        out.contains("storage.migrate.threshold=0.5 sensitive=false synonyms={DYNAMIC_BROKER_CONFIG:storage.migrate.threshold=0.5"),
        "{out}"
    );
    let (ok, out) = alter_broker_configs(&broker.addr, "0", "storage.migrate.threads=4");
    assert!(
        !ok && out.contains("Cannot update these configs dynamically"),
        "{out}"
    );
    broker.stop();
    broker.restart();
    let (_, out, _) = strata_tool("configs", &broker.addr, &["--describe", "--broker", "0"]);
    assert!(out.contains("storage.migrate.threshold=0.5"), "{out}");
    let consumer = consumer(&broker.addr, &[]);
    let got = consume(&consumer, "policy", 0, 0, 300, Duration::from_secs(30));
    assert_eq!(payload(&got[299])[..4], *b"0299");
}
