//! Partition log behaviour on real files: rolling, reading across segments, recovery of a torn
//! tail, retention, DeleteRecords and idempotent producer state across restarts.

use std::path::Path;
use std::sync::Arc;

use strata_storage::batch::{self, build_batch, encode_simple_records, simple_batch};
use strata_storage::io::{FaultyIo, Io, RealIo};
use strata_storage::units::{LeaderEpoch, Offset};
use strata_storage::{AppendError, LogConfig, PartitionLog, ReadError, TimestampType};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, config: LogConfig, clean: bool) -> PartitionLog {
    PartitionLog::open(
        Arc::new(RealIo),
        dir,
        "t",
        0,
        config,
        clean,
        Offset(0),
        Offset(0),
    )
    .unwrap()
}

fn value(i: usize) -> Vec<u8> {
    format!("value-{i:05}-{}", "x".repeat(40)).into_bytes()
}

/// Reads every record value from `offset` to the end by walking the returned byte ranges.
fn read_all(log: &PartitionLog, from: Offset) -> Vec<(i64, Vec<u8>)> {
    let mut offset = from.get();
    let mut out = Vec::new();
    while offset < log.log_end_offset().get() {
        let info = log.read(Offset(offset), 300, true).unwrap();
        let slice = info.slice.expect("data below the log end");
        let mut bytes = vec![0u8; slice.len as usize];
        slice
            .file
            .read_exact_at(&mut bytes, slice.position.get())
            .unwrap();
        let found: Vec<(i64, Vec<u8>)> = batch::values_in(&bytes)
            .into_iter()
            .filter(|(o, _)| *o >= offset)
            .map(|(o, v)| (o, v.unwrap_or_default()))
            .collect();
        let progressed = !found.is_empty();
        out.extend(found);
        assert!(
            progressed,
            "a read returned no whole batch at offset {offset}"
        );
        offset = out.last().map(|(o, _)| o + 1).unwrap_or(offset);
    }
    out
}

#[test]
fn appends_roll_segments_and_read_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(), true);
    for i in 0..100 {
        let info = log
            .append(&simple_batch(&[&value(i)], 1000 + i as i64), 0)
            .unwrap();
        assert_eq!(info.base_offset, Offset(i as i64));
    }
    assert!(log.segment_count() > 3, "1 KiB segments must roll");
    let got = read_all(&log, Offset(0));
    assert_eq!(got.len(), 100);
    for (i, (o, v)) in got.iter().enumerate() {
        assert_eq!(*o, i as i64);
        assert_eq!(v, &value(i));
    }
    // A read from the middle starts at the batch holding the offset.
    assert_eq!(read_all(&log, Offset(57))[0], (57, value(57)));
    // Segment files are named by their 20-digit base offset.
    let names: Vec<String> = RealIo.list_dir(dir.path()).unwrap();
    assert!(names.contains(&"00000000000000000000.log".to_string()));
    assert!(names.iter().filter(|n| n.ends_with(".log")).count() == log.segment_count());
}

#[test]
fn reopen_after_clean_close_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = open(dir.path(), config(), true);
        for i in 0..50 {
            log.append(&simple_batch(&[&value(i)], 5), 0).unwrap();
        }
        log.close().unwrap();
    }
    let log = open(dir.path(), config(), true);
    assert_eq!(log.log_end_offset(), Offset(50));
    assert_eq!(read_all(&log, Offset(0)).len(), 50);
}

#[test]
fn unclean_open_truncates_torn_tail_and_rebuilds_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let active;
    {
        let mut log = open(
            dir.path(),
            LogConfig {
                segment_bytes: 1 << 20,
                ..config()
            },
            true,
        );
        for i in 0..30 {
            log.append(&simple_batch(&[&value(i)], 5), 0).unwrap();
        }
        log.flush().unwrap();
        active = log.segments().last().unwrap().log_path().to_path_buf();
    }
    // A torn write: half a batch at the end, then garbage in the index.
    let file = RealIo.open(&active, false).unwrap();
    let len = file.len().unwrap();
    let partial = simple_batch(&[&value(99)], 5);
    file.write_vectored_at(&[&partial[..partial.len() / 2]], len)
        .unwrap();
    let index = active.with_extension("index");
    RealIo
        .open(&index, false)
        .unwrap()
        .write_vectored_at(&[&[0xff; 16]], 0)
        .unwrap();

    let log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 1 << 20,
            ..config()
        },
        false,
    );
    let report = log.recovery_report();
    assert_eq!(report.segments_recovered, 1);
    assert_eq!(report.bytes_truncated, (partial.len() / 2) as u64);
    assert_eq!(log.log_end_offset(), Offset(30));
    let got = read_all(&log, Offset(0));
    assert_eq!(got.len(), 30);
    assert_eq!(got[29], (29, value(29)));
    assert_eq!(read_all(&log, Offset(17))[0], (17, value(17)));
}

#[test]
fn corrupt_batch_in_the_middle_truncates_from_there() {
    let dir = tempfile::tempdir().unwrap();
    let path;
    let mut positions = Vec::new();
    {
        let mut log = open(
            dir.path(),
            LogConfig {
                segment_bytes: 1 << 20,
                ..config()
            },
            true,
        );
        for i in 0..10 {
            positions.push(log.segments().last().unwrap().size());
            log.append(&simple_batch(&[&value(i)], 5), 0).unwrap();
        }
        path = log.segments().last().unwrap().log_path().to_path_buf();
    }
    let file = RealIo.open(&path, false).unwrap();
    // Flip one byte inside batch 6's records: its CRC no longer matches.
    let at = positions[6] + 70;
    let mut b = [0u8; 1];
    file.read_exact_at(&mut b, at).unwrap();
    file.write_vectored_at(&[&[b[0] ^ 0x55]], at).unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 1 << 20,
            ..config()
        },
        false,
    );
    assert_eq!(log.log_end_offset(), Offset(6));
    assert_eq!(read_all(&log, Offset(0)).len(), 6);
}

#[test]
fn retention_by_time_deletes_old_segments_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            retention_ms: 1000,
            ..config()
        },
        true,
    );
    for i in 0..40 {
        // The first 20 records are old, the rest are recent.
        let ts = if i < 20 { 1_000 } else { 100_000 };
        log.append(&simple_batch(&[&value(i)], ts), 0).unwrap();
    }
    let before = log.segment_count();
    let deleted = log.apply_retention(100_500).unwrap();
    assert!(deleted > 0);
    assert_eq!(log.segment_count(), before - deleted);
    assert!(log.log_start_offset() > Offset(0) && log.log_start_offset() <= Offset(20));
    let got = read_all(&log, log.log_start_offset());
    assert_eq!(got.last().unwrap().0, 39);
    assert!(matches!(
        log.read(Offset(0), 100, true),
        Err(ReadError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn retention_by_bytes_keeps_the_newest_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            retention_bytes: 2048,
            retention_ms: -1,
            ..config()
        },
        true,
    );
    for i in 0..100 {
        log.append(&simple_batch(&[&value(i)], 1), 0).unwrap();
    }
    log.apply_retention(i64::MAX / 2).unwrap();
    assert!(
        log.size_bytes() <= 2048 + 1024,
        "size {} after retention",
        log.size_bytes()
    );
    assert_eq!(log.log_end_offset(), Offset(100));
    assert_eq!(read_all(&log, log.log_start_offset()).last().unwrap().0, 99);
}

#[test]
fn delete_records_moves_log_start_and_survives_restart_via_caller_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(), true);
    for i in 0..60 {
        log.append(&simple_batch(&[&value(i)], 1), 0).unwrap();
    }
    assert_eq!(log.delete_records_before(Offset(42)).unwrap(), Offset(42));
    assert!(matches!(
        log.read(Offset(41), 100, true),
        Err(ReadError::OffsetOutOfRange { .. })
    ));
    assert_eq!(read_all(&log, Offset(42))[0], (42, value(42)));
    log.close().unwrap();
    let log = PartitionLog::open(
        Arc::new(RealIo),
        dir.path(),
        "t",
        0,
        config(),
        true,
        Offset(0),
        Offset(42),
    )
    .unwrap();
    assert_eq!(log.log_start_offset(), Offset(42));
}

#[test]
fn oversized_batch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            max_message_bytes: 100,
            ..config()
        },
        true,
    );
    let err = log.append(&simple_batch(&[&[0u8; 200]], 1), 0).unwrap_err();
    assert!(matches!(err, AppendError::MessageTooLarge { .. }));
    assert_eq!(log.log_end_offset(), Offset(0));
}

#[test]
fn log_append_time_topic_stamps_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            timestamp_type: TimestampType::LogAppendTime,
            ..config()
        },
        true,
    );
    let info = log.append(&simple_batch(&[b"a"], 5), 777).unwrap();
    assert_eq!(info.log_append_time, 777);
    let slice = log.read(Offset(0), 1000, true).unwrap().slice.unwrap();
    let mut bytes = vec![0; slice.len as usize];
    slice
        .file
        .read_exact_at(&mut bytes, slice.position.get())
        .unwrap();
    let h = batch::check_batch(&bytes).unwrap();
    assert!(h.is_log_append_time());
    assert_eq!(h.max_timestamp, 777);
}

#[test]
fn offset_for_timestamp_finds_first_record_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(), true);
    for i in 0..50 {
        log.append(&simple_batch(&[&value(i)], 1000 + 10 * i as i64), 0)
            .unwrap();
    }
    assert_eq!(
        log.offset_for_timestamp(1000).unwrap(),
        Some((Offset(0), 1000))
    );
    assert_eq!(
        log.offset_for_timestamp(1205).unwrap(),
        Some((Offset(21), 1210))
    );
    assert_eq!(log.offset_for_timestamp(5000).unwrap(), None);
    assert_eq!(log.max_timestamp(), Some((Offset(49), 1490)));
}

fn idempotent_batch(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..n).map(value).collect();
    let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
    let records = encode_simple_records(&refs, &vec![0; n]);
    build_batch(
        0,
        0,
        n as i32 - 1,
        1,
        1,
        pid,
        epoch,
        seq,
        n as i32,
        &records,
    )
}

#[test]
fn duplicate_batches_are_not_written_twice_even_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = open(dir.path(), config(), true);
        for k in 0..20 {
            log.append(&idempotent_batch(5, 0, k * 2, 2), 0).unwrap();
        }
        let dup = log.append(&idempotent_batch(5, 0, 38, 2), 0).unwrap();
        assert!(dup.duplicate);
        assert_eq!(dup.base_offset, Offset(38));
        assert_eq!(log.log_end_offset(), Offset(40));
    }
    // Unclean restart: the state is rebuilt from the snapshot and the log.
    let mut log = open(dir.path(), config(), false);
    let dup = log.append(&idempotent_batch(5, 0, 36, 2), 0).unwrap();
    assert!(
        dup.duplicate,
        "a retry of one of the last five batches is a duplicate"
    );
    assert_eq!(dup.base_offset, Offset(36));
    assert!(matches!(
        log.append(&idempotent_batch(5, 0, 50, 1), 0),
        Err(AppendError::OutOfOrderSequence { .. })
    ));
    assert_eq!(
        log.append(&idempotent_batch(5, 0, 40, 1), 0)
            .unwrap()
            .base_offset,
        Offset(40)
    );
}

#[test]
fn full_disk_refuses_append_and_keeps_acknowledged_data() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultyIo::new();
    let faults = io.faults();
    let mut log = PartitionLog::open(
        Arc::new(io),
        dir.path(),
        "t",
        0,
        config(),
        true,
        Offset(0),
        Offset(0),
    )
    .unwrap();
    for i in 0..5 {
        log.append(&simple_batch(&[&value(i)], 1), 0).unwrap();
    }
    faults.set_space_left(10);
    let err = log.append(&simple_batch(&[&value(5)], 1), 0).unwrap_err();
    assert!(matches!(err, AppendError::Storage(_)));
    assert_eq!(log.log_end_offset(), Offset(5));
    assert_eq!(read_all(&log, Offset(0)).len(), 5);
    faults.set_space_left(u64::MAX);
    assert_eq!(
        log.append(&simple_batch(&[&value(5)], 1), 0)
            .unwrap()
            .base_offset,
        Offset(5)
    );
    assert_eq!(read_all(&log, Offset(0))[5], (5, value(5)));
}

#[test]
fn index_pointing_past_the_log_is_rebuilt_on_clean_open() {
    let dir = tempfile::tempdir().unwrap();
    let index;
    {
        let mut log = open(
            dir.path(),
            LogConfig {
                segment_bytes: 1 << 20,
                ..config()
            },
            true,
        );
        for i in 0..30 {
            log.append(&simple_batch(&[&value(i)], 5), 0).unwrap();
        }
        log.close().unwrap();
        index = log
            .segments()
            .last()
            .unwrap()
            .log_path()
            .with_extension("index");
    }
    let file = RealIo.open(&index, false).unwrap();
    let len = file.len().unwrap();
    file.write_vectored_at(&[&[0x7f; 8]], len - 8).unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 1 << 20,
            ..config()
        },
        true,
    );
    assert_eq!(log.log_end_offset(), Offset(30));
    assert_eq!(read_all(&log, Offset(0)).len(), 30);
}

#[test]
fn a_read_returns_up_to_max_bytes_of_following_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 1 << 20,
            ..config()
        },
        true,
    );
    let mut sizes = Vec::new();
    for i in 0..3 {
        let b = simple_batch(&[&value(i)], 5);
        sizes.push(b.len() as u64);
        log.append(&b, 0).unwrap();
    }
    let total: u64 = sizes.iter().sum();
    assert_eq!(
        log.read(Offset(0), 1 << 20, true)
            .unwrap()
            .slice
            .unwrap()
            .len,
        total
    );
    assert_eq!(
        log.read(Offset(1), 1 << 20, true)
            .unwrap()
            .slice
            .unwrap()
            .len,
        total - sizes[0]
    );
    // The first batch comes whole even when it exceeds the limit.
    assert_eq!(
        log.read(Offset(0), 10, true).unwrap().slice.unwrap().len,
        sizes[0]
    );
    assert!(log.read(Offset(3), 1 << 20, true).unwrap().slice.is_none());
}

#[test]
fn segment_ms_rolls_by_record_timestamps_as_kafka_does() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 1 << 20,
            segment_ms: 1000,
            ..config()
        },
        true,
    );
    // Old timestamps alone do not roll: the span between the first and the incoming one counts.
    log.append(&simple_batch(&[b"a"], 5_000), 1_000_000)
        .unwrap();
    log.append(&simple_batch(&[b"b"], 5_900), 1_000_000)
        .unwrap();
    assert_eq!(log.segment_count(), 1);
    log.append(&simple_batch(&[b"c"], 6_100), 1_000_000)
        .unwrap();
    assert_eq!(
        log.segment_count(),
        2,
        "more than segment.ms after the first timestamp"
    );
    assert_eq!(log.segments().last().unwrap().base_offset(), Offset(2));
}

#[test]
fn a_full_offset_index_rolls_the_segment() {
    let dir = tempfile::tempdir().unwrap();
    // Room for two index entries, one every batch.
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 1 << 20,
            segment_index_bytes: 16,
            index_interval_bytes: 0,
            ..config()
        },
        true,
    );
    for i in 0..6 {
        log.append(&simple_batch(&[&value(i)], 1), 0).unwrap();
    }
    assert!(log.segment_count() >= 2, "{} segments", log.segment_count());
    assert_eq!(read_all(&log, Offset(0)).len(), 6);
}

mod recovery_properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Whatever a crash does to the tail (cut it anywhere, or damage one byte), recovery
        /// keeps exactly the batches that lie wholly before the damage, and the log reads back.
        #[test]
        fn recovery_keeps_exactly_the_undamaged_prefix(
            sizes in proptest::collection::vec(1usize..300, 1..40),
            cut_fraction in 0.0f64..1.0,
            flip in any::<bool>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut ends = Vec::new();
            let path;
            {
                let mut log = open(dir.path(), LogConfig { segment_bytes: 1 << 20, ..config() }, true);
                for (i, n) in sizes.iter().enumerate() {
                    log.append(&simple_batch(&[&vec![i as u8; *n]], 1), 0).unwrap();
                    ends.push(log.segments().last().unwrap().size());
                }
                path = log.segments().last().unwrap().log_path().to_path_buf();
            }
            let total = *ends.last().unwrap();
            let damage_at = ((total as f64) * cut_fraction) as u64;
            let file = RealIo.open(&path, false).unwrap();
            if flip {
                let mut b = [0u8; 1];
                file.read_exact_at(&mut b, damage_at).unwrap();
                file.write_vectored_at(&[&[b[0] ^ 0xa5]], damage_at).unwrap();
            } else {
                file.set_len(damage_at).unwrap();
            }
            // Batches ending at or before the damaged byte survive (a cut at `damage_at` keeps
            // bytes below it; a flipped byte at `damage_at` spoils the batch holding it).
            let survivors = ends.iter().filter(|e| **e <= damage_at).count();
            let log = open(dir.path(), LogConfig { segment_bytes: 1 << 20, ..config() }, false);
            prop_assert_eq!(log.log_end_offset(), Offset(survivors as i64));
            let got = read_all(&log, Offset(0));
            prop_assert_eq!(got.len(), survivors);
            for (i, (offset, v)) in got.iter().enumerate() {
                prop_assert_eq!(*offset, i as i64);
                prop_assert_eq!(v, &vec![i as u8; sizes[i]]);
            }
        }
    }
}

/// The story: five minutes of the `segment_recovery` fuzz target found a 94-byte segment whose
/// first batch header claims a base offset of 0x7ffffffffffffff8. Opening the partition walked
/// that header, added its delta and one to the base offset, and panicked with "attempt to add
/// with overflow" (a release build wrapped to a negative log end offset instead). Headers read
/// from disk are now checked against the segment's 32-bit relative range before any sum.
#[test]
fn a_header_claiming_an_offset_near_i64_max_is_not_data() {
    let finding = include_bytes!("data/segment_recovery-add-overflow.bin");
    for clean in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let file = RealIo
            .open(&dir.path().join("00000000000000000000.log"), true)
            .unwrap();
        file.write_vectored_at(&[finding], 0).unwrap();
        drop(file);
        let mut log = open(dir.path(), config(), clean);
        assert_eq!(log.log_end_offset(), Offset(0), "clean={clean}");
        assert_eq!(log.size_bytes(), 0, "clean={clean}");
        // The log is usable: the next append gets offset 0 and reads back.
        let info = log.append(&simple_batch(&[b"after"], 1), 0).unwrap();
        assert_eq!(info.base_offset, Offset(0));
        assert_eq!(read_all(&log, Offset(0)), vec![(0, b"after".to_vec())]);
    }
}

/// Segment files named by offsets a segment could never reach are not taken for segments.
#[test]
fn segment_names_beyond_the_offset_range_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = open(dir.path(), config(), true);
        log.append(&simple_batch(&[b"kept"], 1), 0).unwrap();
        log.close().unwrap();
    }
    let stray = dir.path().join("09223372036854775807.log");
    std::fs::write(&stray, simple_batch(&[b"stray"], 1)).unwrap();
    let log = open(dir.path(), config(), false);
    assert_eq!(log.log_end_offset(), Offset(1));
    assert_eq!(read_all(&log, Offset(0)), vec![(0, b"kept".to_vec())]);
}

/// A batch as a leader stored it: at `offset`, with `epoch`.
fn replicated(offset: i64, epoch: i32, values: &[&[u8]]) -> Vec<u8> {
    let mut b = simple_batch(values, 1000 + offset);
    b[0..8].copy_from_slice(&offset.to_be_bytes());
    b[12..16].copy_from_slice(&epoch.to_be_bytes());
    b
}

#[test]
fn a_follower_appends_at_the_leaders_offsets_and_consumers_see_only_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(), true);
    log.become_follower();
    log.append_as_follower(&replicated(0, 3, &[b"a", b"b"]), 0)
        .unwrap();
    log.append_as_follower(&replicated(2, 5, &[b"c"]), 0)
        .unwrap();
    assert_eq!(log.log_end_offset(), Offset(3));
    // A gap, an older epoch and a corrupt batch are refused.
    assert!(log
        .append_as_follower(&replicated(4, 5, &[b"x"]), 0)
        .is_err());
    assert!(log
        .append_as_follower(&replicated(3, 4, &[b"x"]), 0)
        .is_err());
    let mut corrupt = replicated(3, 5, &[b"x"]);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    assert!(log.append_as_follower(&corrupt, 0).is_err());
    // The leader has confirmed nothing yet: a consumer sees nothing, a follower read sees all.
    assert_eq!(log.high_watermark(), Offset(0));
    assert!(log
        .read_bounded(Offset(0), 1 << 20, true, log.high_watermark())
        .unwrap()
        .slice
        .is_none());
    assert_eq!(read_all(&log, Offset(0)).len(), 3);
    log.advance_high_watermark(Offset(2));
    let slice = log
        .read_bounded(Offset(0), 1 << 20, true, log.high_watermark())
        .unwrap()
        .slice
        .unwrap();
    let mut bytes = vec![0u8; slice.len as usize];
    slice
        .file
        .read_exact_at(&mut bytes, slice.position.get())
        .unwrap();
    assert_eq!(
        batch::values_in(&bytes),
        vec![(0, Some(b"a".to_vec())), (1, Some(b"b".to_vec()))],
        "only the batches below the high watermark"
    );
    // The epochs were recorded where they began, and answer OffsetForLeaderEpoch as Kafka does.
    assert_eq!(
        log.end_offset_for_epoch(LeaderEpoch(3)),
        (LeaderEpoch(3), Offset(2))
    );
    assert_eq!(
        log.end_offset_for_epoch(LeaderEpoch(4)),
        (LeaderEpoch(3), Offset(2))
    );
    assert_eq!(
        log.end_offset_for_epoch(LeaderEpoch(5)),
        (LeaderEpoch(5), Offset(3))
    );
    assert_eq!(
        log.end_offset_for_epoch(LeaderEpoch(6)),
        (LeaderEpoch(-1), Offset(-1))
    );
    assert_eq!(
        log.end_offset_for_epoch(LeaderEpoch(1)),
        (LeaderEpoch(1), Offset(0))
    );
}

#[test]
fn truncation_drops_whole_batches_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = open(dir.path(), config(), true);
        for i in 0..40 {
            log.append(&simple_batch(&[&value(i), &value(i + 100)], 1), 0)
                .unwrap();
        }
        log.become_leader(LeaderEpoch(7), true).unwrap();
        log.append(&simple_batch(&[b"epoch 7"], 1), 0).unwrap();
        assert!(log.segment_count() > 3);
        // Offset 31 is the second record of the batch at 30: that whole batch goes.
        log.truncate_to(Offset(31)).unwrap();
        assert_eq!(log.log_end_offset(), Offset(30));
        assert_eq!(log.high_watermark(), Offset(30));
        assert_eq!(
            log.leader_epochs().latest_epoch(),
            Some(LeaderEpoch(0)),
            "epoch 7 began at 80"
        );
        // Appends continue at the new end, in the active (cut) segment.
        assert_eq!(
            log.append(&simple_batch(&[b"new"], 1), 0)
                .unwrap()
                .base_offset,
            Offset(30)
        );
    }
    // Not even a crash brings the truncated records back (opened as after one).
    let log = open(dir.path(), config(), false);
    assert_eq!(log.log_end_offset(), Offset(31));
    let values = read_all(&log, Offset(0));
    assert_eq!(values[29].1, value(114));
    assert_eq!(values[30], (30, b"new".to_vec()));
}

#[test]
fn a_follower_behind_the_leaders_log_start_starts_over_there() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = open(dir.path(), config(), true);
        log.become_follower();
        for i in 0..30 {
            log.append_as_follower(&replicated(i, 2, &[&value(i as usize)]), 0)
                .unwrap();
        }
        log.advance_high_watermark(Offset(20));
        assert!(log.segment_count() > 2);
        // The leader's log now starts at 500: everything here goes, and the log starts there.
        log.truncate_fully_and_start_at(Offset(500)).unwrap();
        assert_eq!(log.log_start_offset(), Offset(500));
        assert_eq!(log.log_end_offset(), Offset(500));
        assert_eq!(log.high_watermark(), Offset(500));
        assert_eq!(log.segment_count(), 1);
        assert_eq!(log.leader_epochs().latest_epoch(), None);
        log.append_as_follower(&replicated(500, 3, &[b"after"]), 0)
            .unwrap();
    }
    // After a crash the log still starts at 500 and holds only what came after.
    let log = open(dir.path(), config(), false);
    assert_eq!(log.log_start_offset(), Offset(500));
    assert_eq!(read_all(&log, Offset(500)), vec![(500, b"after".to_vec())]);
    let files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".log"))
        .collect();
    assert_eq!(files, vec!["00000000000000000500.log".to_string()]);
}

/// The produce path asks this before an append, to move an append that will roll (and so sync
/// files) off the async runtime's threads; it must never say no to a roll.
#[test]
fn append_may_roll_says_yes_before_every_roll() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(), true);
    assert!(!log.append_may_roll(100, 0), "an empty segment never rolls");
    for i in 0..100 {
        let batch = simple_batch(&[&value(i)], 1000 + i as i64);
        let predicted = log.append_may_roll(batch.len() as u64, 0);
        let segments = log.segment_count();
        log.append(&batch, 0).unwrap();
        if log.segment_count() > segments {
            assert!(predicted, "append {i} rolled unannounced");
        }
    }
    assert!(log.segment_count() > 5);
}
