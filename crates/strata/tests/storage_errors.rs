//! Storage errors met by a running broker: a data directory on a small tmpfs that fills up, and
//! a device that fails. A full device refuses produce and resumes by itself; a failed one takes
//! its directory offline (fail-stop) and the broker stops when no directory is left.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rdkafka::consumer::Consumer;

/// A tmpfs of `bytes` mounted on a fresh directory, unmounted when dropped.
struct Tmpfs {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Tmpfs {
    fn mount(bytes: u64) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("small");
        std::fs::create_dir(&path).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&path)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (CI runs as root)"
        );
        Tmpfs { _dir: dir, path }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

fn read_count(addr: &str, topic: &str, count: usize) -> usize {
    let consumer = consumer(addr, &[]);
    let got = consume(&consumer, topic, 0, 0, count, Duration::from_secs(20));
    assert!(got.iter().all(|m| payload(m) == vec![b'f'; 1000]));
    got.len()
}

#[test]
fn a_full_tmpfs_data_directory_refuses_produce_keeps_reads_and_resumes() {
    let tmpfs = Tmpfs::mount(6 << 20);
    // Room taken by something else, given back later.
    let filler = tmpfs.path.join("filler");
    std::fs::write(&filler, vec![1u8; 2 << 20]).unwrap();
    let data = tmpfs.path.join("data");
    let mut broker = BrokerProcess::on_data_dir(
        &data,
        &[
            "log.segment.bytes=262144",
            "offsets.topic.num.partitions=1",
            "log.index.size.max.bytes=65536",
        ],
    );
    broker.restart();
    let rt = runtime();
    create_topic(&rt, &broker.addr, "full", 1, &[]);

    let (acknowledged, refusal) = produce_until_refused(&rt, &broker.addr, "full", 10_000);
    assert_eq!(
        refusal,
        Some(rdkafka::error::RDKafkaErrorCode::KafkaStorageError),
        "the tmpfs fills up"
    );
    assert!(
        acknowledged > 1000,
        "{acknowledged} records before it was full"
    );
    // Reads continue while nothing can be written, and a second refusal is the same.
    assert_eq!(read_count(&broker.addr, "full", acknowledged), acknowledged);
    let (more, refusal) = produce_until_refused(&rt, &broker.addr, "full", 1);
    assert_eq!(
        (more, refusal),
        (0, Some(rdkafka::error::RDKafkaErrorCode::KafkaStorageError))
    );

    // Space returns: writing resumes by itself, right after the acknowledged records.
    std::fs::remove_file(&filler).unwrap();
    let (resumed, _) = produce_until_refused(&rt, &broker.addr, "full", 100);
    assert_eq!(resumed, 100);
    let producer = producer(&broker.addr, &[]);
    let offsets = produce(&rt, &producer, "full", 0, &[(None, Some(vec![b'f'; 1000]))]);
    assert_eq!(offsets, vec![(acknowledged + 100) as i64]);
    drop(producer);

    // Nothing partial was kept: after a restart every acknowledged record reads back in order.
    broker.stop();
    broker.restart();
    let total = acknowledged + 101;
    assert_eq!(read_count(&broker.addr, "full", total), total);
}

fn partition_leader(addr: &str, topic: &str) -> (i32, Option<rdkafka::types::RDKafkaRespErr>) {
    let consumer = consumer(addr, &[]);
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .unwrap();
    let p = &metadata.topics()[0].partitions()[0];
    (p.leader(), p.error())
}

#[test]
fn a_failed_device_takes_its_directory_offline_until_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let io = strata_storage::io::FaultyIo::new();
    let faults = io.faults();
    let rt = runtime();
    let acknowledged;
    {
        let broker = InProcessBroker::start(dir.path(), Arc::new(io), &[]);
        create_topic(&rt, &broker.addr, "fails", 1, &[]);
        let (ok, refusal) = produce_until_refused(&rt, &broker.addr, "fails", 50);
        assert_eq!((ok, refusal), (50, None));
        acknowledged = ok;
        assert_eq!(partition_leader(&broker.addr, "fails").0, 0);

        faults.set_broken(true);
        let (ok, refusal) = produce_until_refused(&rt, &broker.addr, "fails", 1);
        assert_eq!(
            (ok, refusal),
            (0, Some(rdkafka::error::RDKafkaErrorCode::KafkaStorageError))
        );
        // The device works again, but the directory stays offline: nothing is written after
        // an error until a restart has recovered the logs.
        // (librdkafka, told the partition has no leader now, waits for one until the record
        // times out.)
        faults.set_broken(false);
        let (ok, refusal) = produce_until_refused(&rt, &broker.addr, "fails", 1);
        assert_eq!(ok, 0);
        assert!(
            matches!(
                refusal,
                Some(
                    rdkafka::error::RDKafkaErrorCode::KafkaStorageError
                        | rdkafka::error::RDKafkaErrorCode::MessageTimedOut
                )
            ),
            "{refusal:?}"
        );
        let (leader, error) = partition_leader(&broker.addr, "fails");
        assert_eq!(leader, -1, "an offline partition has no leader");
        assert_eq!(
            error,
            Some(rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE)
        );
        // Its only log directory is gone: the broker says it must stop.
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), broker.broker.all_dirs_offline())
                .await
                .expect("every directory is offline")
        });
        assert_eq!(
            broker.broker.logs.failures().offline_dirs(),
            vec![dir.path().to_path_buf()]
        );
        // Shutdown marks no offline directory clean.
        broker.broker.shutdown().unwrap();
        assert!(!dir.path().join(".kafka_cleanshutdown").exists());
    }
    // Restarted on a working device: recovered, everything acknowledged is there.
    let broker = InProcessBroker::start(dir.path(), Arc::new(strata_storage::io::RealIo), &[]);
    assert!(!broker.broker.logs.was_clean_start());
    assert_eq!(
        read_count(&broker.addr, "fails", acknowledged),
        acknowledged
    );
    // Nothing from the failed appends was kept: the next record follows the acknowledged ones.
    let producer = producer(&broker.addr, &[]);
    let offsets = produce(
        &rt,
        &producer,
        "fails",
        0,
        &[(None, Some(vec![b'f'; 1000]))],
    );
    assert_eq!(offsets, vec![acknowledged as i64]);
}
