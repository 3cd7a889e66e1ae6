//! The `pmem` channel with the real broker: every segment is a pre-allocated pool file on the
//! first tier (/dev/shm here, the stand-in for persistent memory), written through a mapping;
//! pool files go back to the pool zeroed; nothing acknowledged is lost to kill -9.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use rdkafka::Message;

const SEGMENT: u64 = 100_000;
const CAPACITY: u64 = 2_000_000;
/// log.pmem.pool.ratio (0.8) x capacity / segment size.
const POOL_FILES: usize = 16;

/// A directory on tmpfs when the machine has one (as a PMEM tier would be), else on disk.
fn fast_dir() -> tempfile::TempDir {
    if Path::new("/dev/shm").is_dir() {
        if let Ok(d) = tempfile::tempdir_in("/dev/shm") {
            return d;
        }
    }
    tempfile::tempdir().unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn pool_files(fast: &Path, kind: &str) -> Vec<PathBuf> {
    let pool = fast.join(".pool");
    names(&pool)
        .into_iter()
        .filter(|n| n.starts_with(&format!("{kind}-")))
        .map(|n| pool.join(n))
        .collect()
}

fn segment_logs(fast: &Path, partition_dir: &str) -> Vec<PathBuf> {
    let dir = fast.join(partition_dir);
    names(&dir)
        .into_iter()
        .filter(|n| n.ends_with(".log"))
        .map(|n| dir.join(n))
        .collect()
}

fn pmem_broker(fast: &Path, extra: &[&str]) -> BrokerProcess {
    let mut settings = vec![
        "log.channel.type=pmem".to_string(),
        format!("storage.tiers.first.paths={}", fast.display()),
        format!("storage.tiers.first.sizes={CAPACITY}"),
        format!("log.segment.bytes={SEGMENT}"),
        // Given-back files are reused at once (no fetch is reading them in this test).
        "log.segment.delete.delay.ms=0".to_string(),
    ];
    settings.extend(extra.iter().map(|s| s.to_string()));
    start_with(&settings)
}

fn records(from: usize, to: usize) -> Vec<KeyValue> {
    (from..to)
        .map(|i| {
            (
                Some(format!("k{i}").into_bytes()),
                Some(format!("{i:05}-{}", "p".repeat(1000)).into_bytes()),
            )
        })
        .collect()
}

#[test]
fn pmem_segments_are_pool_files_that_return_zeroed_and_survive_kill_dash_nine() {
    let fast = fast_dir();
    let fast = fast.path();
    let mut broker = pmem_broker(fast, &["log.flush.interval.messages=1"]);
    // The pool is allocated at first start: 16 files of one segment each.
    let free = pool_files(fast, "free");
    assert_eq!(free.len(), POOL_FILES);
    for f in &free {
        assert_eq!(std::fs::metadata(f).unwrap().len(), SEGMENT);
    }

    let rt = runtime();
    create_topic(&rt, &broker.addr, "pm", 1, &[]);
    let producer = producer(
        &broker.addr,
        &[("linger.ms", "0"), ("batch.size", "16384"), ("acks", "all")],
    );
    let first = records(0, 500);
    for chunk in first.chunks(25) {
        produce(&rt, &producer, "pm", 0, chunk);
    }
    // Each segment is a whole pool file taken from the pool.
    let logs = segment_logs(fast, "pm-0");
    assert!(logs.len() >= 5, "{} segments", logs.len());
    for log in &logs {
        assert_eq!(
            std::fs::metadata(log).unwrap().len(),
            SEGMENT,
            "{}",
            log.display()
        );
    }
    assert_eq!(pool_files(fast, "free").len() + logs.len(), POOL_FILES);
    // The active segment is written through a shared mapping (PMEM's access path).
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", broker.pid())).unwrap();
    let active = logs.last().unwrap().display().to_string();
    assert!(
        maps.lines()
            .any(|l| l.ends_with(&active) && l.contains("rw-s")),
        "{active} is not mapped shared:\n{maps}"
    );

    // `strata tiers` shows the segments and the pool.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "tiers",
            "--override",
            "log.channel.type=pmem",
            "--override",
            &format!("storage.tiers.first.paths={}", fast.display()),
            "--override",
            &format!("storage.tiers.first.sizes={CAPACITY}"),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "{} free, 0 waiting to be zeroed, files of 97.7 KiB",
            POOL_FILES - logs.len()
        )),
        "{text}"
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.split_whitespace().take(2).eq(["pm", "0"]))
            .count(),
        logs.len(),
        "{text}"
    );

    // kill -9: every acknowledged (and flushed) record is there after the restart.
    broker.kill();
    broker.restart();
    let consumer = consumer(&broker.addr, &[]);
    let got = consume(&consumer, "pm", 0, 0, 500, Duration::from_secs(30));
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.offset(), i as i64);
        assert_eq!(Some(payload(m)), first[i].1);
    }

    // Deleting records frees whole segments: their files go back to the pool, zeroed.
    let admin: rdkafka::admin::AdminClient<_> = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("pm", 0, rdkafka::Offset::Offset(400))
        .unwrap();
    rt.block_on(admin.delete_records(&tpl, &rdkafka::admin::AdminOptions::new()))
        .unwrap();
    let in_use = segment_logs(fast, "pm-0").len();
    assert!(in_use < logs.len(), "segments were deleted");
    assert!(
        eventually(Duration::from_secs(10), || {
            pool_files(fast, "dirty").is_empty()
                && pool_files(fast, "free").len() + segment_logs(fast, "pm-0").len() == POOL_FILES
        }),
        "pool: {:?}",
        names(&fast.join(".pool"))
    );
    for f in pool_files(fast, "free") {
        let bytes = std::fs::read(&f).unwrap();
        assert_eq!(bytes.len() as u64, SEGMENT);
        assert!(
            bytes.iter().all(|b| *b == 0),
            "{} is not zeroed",
            f.display()
        );
    }

    // Reused files hold only new records: more produce, and read back from the start offset.
    let producer = common::producer(
        &broker.addr,
        &[("linger.ms", "0"), ("batch.size", "16384"), ("acks", "all")],
    );
    let second = records(500, 900);
    for chunk in second.chunks(25) {
        produce(&rt, &producer, "pm", 0, chunk);
    }
    broker.kill();
    broker.restart();
    let consumer = common::consumer(&broker.addr, &[]);
    let got = consume(&consumer, "pm", 0, 400, 500, Duration::from_secs(30));
    for (i, m) in got.iter().enumerate() {
        let n = 400 + i;
        assert_eq!(m.offset(), n as i64);
        let expected = if n < 500 {
            &first[n].1
        } else {
            &second[n - 500].1
        };
        assert_eq!(Some(payload(m)), *expected, "offset {n}");
    }

    // Deleting the topic gives every file back.
    rt.block_on(admin.delete_topics(&["pm"], &rdkafka::admin::AdminOptions::new()))
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || pool_files(fast, "free").len()
            == POOL_FILES),
        "pool: {:?}",
        names(&fast.join(".pool"))
    );
}

#[test]
fn a_full_pmem_tier_fails_produce_with_storage_error_and_resumes() {
    let fast = fast_dir();
    let fast = fast.path();
    // Room for three segments.
    let broker = pmem_broker(
        fast,
        &[&format!("storage.tiers.first.sizes={}", 3 * SEGMENT)],
    );
    create_topic(&runtime(), &broker.addr, "full", 1, &[]);
    let acknowledged = fill_until_storage_error_then_resume(&broker.addr, "full");
    assert!(acknowledged > 150, "{acknowledged} records fit");
}
