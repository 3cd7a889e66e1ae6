//! The migrator's own fail-stop path: a running `Migrator` (its planner and worker threads, as
//! the broker starts them) moving segments onto a second tier whose device fails or fills up, on
//! the simulated disk. A failed device takes what it holds offline, and nothing acknowledged and
//! flushed is lost across a power loss; a full device only makes moves wait, and they finish once
//! space returns.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_storage::batch::simple_batch;
use strata_storage::io::sim::{SimFault, SimIo};
use strata_storage::io::Io;
use strata_storage::log_manager::{LogManager, LogManagerConfig};
use strata_storage::model::read_values;
use strata_storage::tier::migrator::{MigrationStats, MigratorConfig};
use strata_storage::tier::policy::MigrationPolicy;
use strata_storage::tier::TierDir;
use strata_storage::{AppendError, LogConfig, Partition};

const RECORDS: usize = 60;

fn value(i: usize) -> Vec<u8> {
    format!("record {i} {}", "m".repeat(150)).into_bytes()
}

/// A tiered log manager on `io`: a 32 KiB first tier that demotes above 40% usage to a large
/// second tier, checked every 10 ms, with 2 KiB segments.
fn open_manager(io: &SimIo) -> Arc<LogManager> {
    for d in ["/data", "/fast", "/slow"] {
        io.create_dir_durable(Path::new(d)).unwrap();
    }
    LogManager::open(
        Arc::new(io.clone()),
        LogManagerConfig {
            log_dirs: vec!["/data".into()],
            retention_check_interval_ms: 3_600_000,
            flush_scheduler_interval_ms: 3_600_000,
            flush_offset_checkpoint_interval_ms: 3_600_000,
            tiers: Some((
                vec![TierDir {
                    path: "/fast".into(),
                    capacity_bytes: 32 * 1024,
                }],
                vec![TierDir {
                    path: "/slow".into(),
                    capacity_bytes: 1 << 30,
                }],
            )),
            migration: Some(MigratorConfig {
                policy: MigrationPolicy {
                    threshold: Some(0.3),
                    hysteresis: 0.1,
                },
                threads: 1,
                max_bytes_per_sec: None,
                interval: Duration::from_millis(10),
            }),
            mapped_tiers: [false, false],
            pool: None,
        },
        Arc::new(|_| LogConfig {
            segment_bytes: 2048,
            ..LogConfig::default()
        }),
    )
    .expect("open")
}

/// A topic of one partition holding `RECORDS` flushed records, enough to fill the first tier
/// past its threshold.
fn filled(manager: &LogManager) -> Arc<Partition> {
    let topic = manager
        .create_topic("t", 1, BTreeMap::new(), [7; 16])
        .expect("create");
    let partition = topic.partition(0).expect("partition 0");
    {
        let mut log = partition.log();
        for i in 0..RECORDS {
            log.append(&simple_batch(&[&value(i)], 1000), 1000)
                .expect("append");
        }
        log.flush().expect("flush");
        assert!(log.segment_count() > 5, "the records span many segments");
    }
    partition
}

fn wait_for(what: &str, stats: &MigrationStats, done: impl Fn(&MigrationStats) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done(stats) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn expected() -> Vec<Vec<u8>> {
    (0..RECORDS).map(value).collect()
}

#[test]
fn a_second_tier_that_fails_takes_the_partition_offline_and_loses_nothing() {
    let io = SimIo::new();
    let manager = open_manager(&io);
    let partition = filled(&manager);
    io.fail_device(Path::new("/slow"), SimFault::Io);
    manager.start_background();
    let stats = manager.migration_stats().expect("migration runs");
    wait_for("a failed move", &stats, |s| {
        s.failed.load(Ordering::SeqCst) >= 1
    });
    assert_eq!(stats.demotions.load(Ordering::SeqCst), 0);
    {
        let mut log = partition.log();
        let offline = log.offline().expect("the partition is offline");
        assert!(
            offline.starts_with("/slow"),
            "offline because of {}",
            offline.display()
        );
        assert!(matches!(
            log.append(&simple_batch(&[b"after"], 1000), 1000),
            Err(AppendError::Offline { .. })
        ));
    }
    // The other tier and the log directory were not failed.
    let failures = manager.failures();
    assert!(!failures.is_offline(Path::new("/fast/t-0")));
    assert!(!failures.is_offline(Path::new("/data")));
    // No further move starts while the partition is offline.
    let failed = stats.failed.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(stats.demotions.load(Ordering::SeqCst), 0);
    assert!(stats.failed.load(Ordering::SeqCst) >= failed);
    let _ = manager.shutdown();
    drop(partition);
    drop(manager);

    // Power loss, a new disk in place of the failed one, restart: every record is there.
    io.crash();
    io.repair_device(Path::new("/slow"));
    let manager = open_manager(&io);
    let partition = manager
        .topic("t")
        .and_then(|t| t.partition(0))
        .expect("t-0");
    let log = partition.log();
    assert!(log.offline().is_none());
    assert_eq!(read_values(&log, 0), expected());
}

#[test]
fn a_full_second_tier_makes_moves_wait_until_space_returns() {
    let io = SimIo::new();
    let manager = open_manager(&io);
    let partition = filled(&manager);
    io.fail_device(Path::new("/slow"), SimFault::Full);
    manager.start_background();
    let stats = manager.migration_stats().expect("migration runs");
    wait_for("a refused move", &stats, |s| {
        s.failed.load(Ordering::SeqCst) >= 2
    });
    assert_eq!(stats.demotions.load(Ordering::SeqCst), 0);
    {
        // A full device stops nothing: the partition serves and takes appends.
        let mut log = partition.log();
        assert!(log.offline().is_none(), "{:?}", log.offline());
        assert!(!manager.failures().is_offline(Path::new("/slow/t-0")));
        assert_eq!(read_values(&log, 0), expected());
        let info = log
            .append(&simple_batch(&[&value(RECORDS)], 1000), 1000)
            .expect("append while the second tier is full");
        assert_eq!(info.base_offset.get(), RECORDS as i64);
        // Nothing half-copied stays on the full device.
        assert!(io
            .list_dir(Path::new("/slow/t-0"))
            .unwrap_or_default()
            .iter()
            .all(|n| !n.ends_with(".log") && !n.ends_with(".migrating")));
    }
    io.repair_device(Path::new("/slow"));
    wait_for("a demotion", &stats, |s| {
        s.demotions.load(Ordering::SeqCst) >= 1
    });
    manager.shutdown().expect("clean shutdown");
    let log = partition.log();
    let mut all = expected();
    all.push(value(RECORDS));
    assert_eq!(read_values(&log, 0), all);
    assert!(
        log.segments().any(|s| s.dir().starts_with("/slow")),
        "segments were moved down"
    );
}
