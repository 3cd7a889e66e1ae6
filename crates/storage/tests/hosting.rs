//! A broker of a cluster hosts its replicas only: a topic's log manager holds some of its
//! partitions, knows how many it has, keeps that across restarts, creates the logs of partitions
//! it comes to host and removes those it no longer hosts (refusing, cleanly, whoever still
//! holds one), and a restart removes what a crash left of a removal.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use strata_storage::batch::simple_batch;
use strata_storage::io::{Io, RealIo};
use strata_storage::log_manager::{LogManager, LogManagerConfig};
use strata_storage::LogConfig;

fn open(dir: &std::path::Path) -> Arc<LogManager> {
    LogManager::open(
        Arc::new(RealIo),
        LogManagerConfig {
            log_dirs: vec![dir.to_path_buf()],
            retention_check_interval_ms: 3_600_000,
            flush_scheduler_interval_ms: 3_600_000,
            flush_offset_checkpoint_interval_ms: 3_600_000,
            tiers: None,
            migration: None,
            mapped_tiers: [false, false],
            pool: None,
        },
        Arc::new(|_| LogConfig::default()),
    )
    .expect("open")
}

fn set(items: &[i32]) -> BTreeSet<i32> {
    items.iter().copied().collect()
}

#[test]
fn a_topic_hosts_some_partitions_and_changes_which_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let manager = open(dir.path());
    let topic = manager
        .create_topic_hosting("t", 4, BTreeMap::new(), [1; 16], &set(&[0, 2]))
        .unwrap();
    assert_eq!(topic.partition_count(), 4);
    assert_eq!(topic.hosted(), set(&[0, 2]));
    assert!(topic.partition(1).is_none() && topic.has_partition(1));
    assert!(!topic.has_partition(4));
    let exists = |p: i32| dir.path().join(format!("t-{p}")).exists();
    assert_eq!(
        (0..4).map(exists).collect::<Vec<_>>(),
        [true, false, true, false]
    );
    let p0 = topic.partition(0).unwrap();
    p0.log()
        .append(&simple_batch(&[b"kept"], 1000), 1000)
        .unwrap();
    drop(manager);

    // Reopened: the same partitions, the same count.
    let manager = open(dir.path());
    let topic = manager.topic("t").unwrap();
    assert_eq!((topic.partition_count(), topic.hosted()), (4, set(&[0, 2])));
    assert_eq!(topic.partition(0).unwrap().log().log_end_offset().get(), 1);

    // Now 1 and 5 (the topic grew to 6), no longer 2: 2's log is removed, and whoever still
    // holds it is refused without its directory being taken for a failed disk.
    let held = topic.partition(2).unwrap();
    let removed = manager.host_partitions("t", 6, &set(&[0, 1, 5])).unwrap();
    assert_eq!(removed, vec![2]);
    assert_eq!(
        (topic.partition_count(), topic.hosted()),
        (6, set(&[0, 1, 5]))
    );
    assert!(!exists(2) && exists(1) && dir.path().join("t-5").exists());
    assert!(held
        .log()
        .append(&simple_batch(&[b"late"], 1000), 1000)
        .is_err());
    assert!(!manager.failures().offline_dirs_known());
    // The same hosting again changes nothing.
    assert!(manager
        .host_partitions("t", 6, &set(&[0, 1, 5]))
        .unwrap()
        .is_empty());
    drop(manager);

    // A crash after the topic file was written but before a removed partition's directory
    // went: the restart removes it.
    std::fs::create_dir(dir.path().join("t-3")).unwrap();
    std::fs::write(dir.path().join("t-3").join("00000000000000000000.log"), b"").unwrap();
    let manager = open(dir.path());
    let topic = manager.topic("t").unwrap();
    assert_eq!(
        (topic.partition_count(), topic.hosted()),
        (6, set(&[0, 1, 5]))
    );
    assert!(!exists(3));
    assert_eq!(topic.partition(0).unwrap().log().log_end_offset().get(), 1);
    // A broker alone's topics host everything, and their files say nothing more than before.
    manager
        .create_topic("all", 2, BTreeMap::new(), [2; 16])
        .unwrap();
    let meta = dir.path().join(strata_storage::log_manager::METADATA_DIR);
    let all = String::from_utf8(RealIo.read_all(&meta.join("all.topic")).unwrap()).unwrap();
    assert!(!all.contains("hosted="), "{all}");
    let some = String::from_utf8(RealIo.read_all(&meta.join("t.topic")).unwrap()).unwrap();
    assert!(some.contains("hosted=0,1,5\n"), "{some}");
}
