//! Transactions in the partition log: transactional batches open a producer's transaction, its
//! marker ends it, an abort is indexed in `.txnindex` and found by a read_committed fetch's
//! search; all of it survives a restart and follows a truncation.

use std::path::Path;
use std::sync::Arc;

use strata_storage::batch::{build_batch, encode_simple_records, ATTR_TRANSACTIONAL};
use strata_storage::control::{parse_end_txn_marker, ControlType, EndTxnMarker};
use strata_storage::io::sim::SimIo;
use strata_storage::io::Io;
use strata_storage::log::txn_index::AbortedTxn;
use strata_storage::units::{Offset, ProducerId};
use strata_storage::{AppendError, LogConfig, PartitionLog};

const DIR: &str = "/data/t-0";

/// The log in `DIR` with 2 KiB segments, opened after a clean shutdown or not.
fn open_log(io: &SimIo, clean: bool) -> PartitionLog {
    let config = LogConfig {
        segment_bytes: 2048,
        ..LogConfig::default()
    };
    PartitionLog::open(
        Arc::new(io.clone()),
        Path::new(DIR),
        "t",
        0,
        config,
        clean,
        Offset::ZERO,
        Offset::ZERO,
    )
    .unwrap()
}

fn open(io: &SimIo) -> PartitionLog {
    open_log(io, true)
}

/// A transactional batch of `n` records of producer `pid` (epoch 0) from sequence `seq`.
fn txn_batch(pid: i64, seq: i32, n: i32) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("p{pid} s{}", seq + i).into_bytes())
        .collect();
    let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
    let records = encode_simple_records(&refs, &vec![0; n as usize]);
    build_batch(0, ATTR_TRANSACTIONAL, n - 1, 1, 1, pid, 0, seq, n, &records)
}

fn marker(control: ControlType) -> EndTxnMarker {
    EndTxnMarker {
        control,
        coordinator_epoch: 3,
    }
}

#[test]
fn an_aborted_transaction_is_indexed_and_found_by_a_read_committed_search() {
    let io = SimIo::new();
    io.create_dir_durable(Path::new("/data")).unwrap();
    let mut log = open(&io);
    // Producer 7 writes 0..=2 and 5..=6; producer 8 writes 3..=4 in between.
    log.append(&txn_batch(7, 0, 3), 0).unwrap();
    log.append(&txn_batch(8, 0, 2), 0).unwrap();
    log.append(&txn_batch(7, 3, 2), 0).unwrap();
    assert_eq!(
        log.producer_states().first_unstable_offset(),
        Some(Offset(0))
    );
    // Producer 7 aborts: the marker at 7, its transaction [0, 7]; 8's is still open at 3.
    let (info, completed) = log
        .append_txn_marker(ProducerId(7), 0, marker(ControlType::Abort), 10)
        .unwrap();
    assert_eq!(info.base_offset, Offset(7));
    let completed = completed.expect("7 had a transaction open");
    assert!(completed.aborted);
    assert_eq!(
        log.aborted_transactions(Offset(0), log.log_end_offset()),
        [AbortedTxn {
            producer_id: ProducerId(7),
            first_offset: Offset(0),
            last_offset: Offset(7),
            last_stable_offset: Offset(3),
        }]
    );
    // Producer 8 commits: nothing is indexed for a commit.
    let (info, completed) = log
        .append_txn_marker(ProducerId(8), 0, marker(ControlType::Commit), 11)
        .unwrap();
    assert_eq!(info.base_offset, Offset(8));
    assert!(!completed.unwrap().aborted);
    assert_eq!(log.producer_states().first_unstable_offset(), None);
    assert_eq!(
        log.aborted_transactions(Offset(0), log.log_end_offset())
            .len(),
        1
    );
    // A fetch past the aborted transaction hears nothing of it.
    assert!(log
        .aborted_transactions(Offset(8), log.log_end_offset())
        .is_empty());
    // The marker is a control batch in the log, as clients read it.
    let slice = log.read(Offset(7), 1 << 16, true).unwrap().slice.unwrap();
    let mut bytes = vec![0u8; slice.len as usize];
    slice
        .file
        .read_exact_at(&mut bytes, slice.position.get())
        .unwrap();
    assert_eq!(
        parse_end_txn_marker(&bytes),
        Some(marker(ControlType::Abort))
    );

    // A clean restart keeps the index and the producers' state.
    log.close().unwrap();
    drop(log);
    let mut log = open(&io);
    assert_eq!(
        log.aborted_transactions(Offset(0), log.log_end_offset())
            .len(),
        1
    );
    // Truncating below the abort marker drops its entry.
    log.truncate_to(Offset(7)).unwrap();
    assert!(log
        .aborted_transactions(Offset(0), log.log_end_offset())
        .is_empty());
}

#[test]
fn a_marker_of_an_older_producer_epoch_is_refused() {
    let io = SimIo::new();
    io.create_dir_durable(Path::new("/data")).unwrap();
    let mut log = open(&io);
    let values: [&[u8]; 1] = [b"x"];
    let records = encode_simple_records(&values, &[0]);
    let epoch_2 = build_batch(0, ATTR_TRANSACTIONAL, 0, 1, 1, 9, 2, 0, 1, &records);
    log.append(&epoch_2, 0).unwrap();
    let refused = log.append_txn_marker(ProducerId(9), 1, marker(ControlType::Abort), 0);
    assert!(
        matches!(
            refused,
            Err(AppendError::InvalidProducerEpoch {
                current: 2,
                got: 1,
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(log.log_end_offset(), Offset(1), "nothing written");
    assert_eq!(
        log.producer_states().first_unstable_offset(),
        Some(Offset(0))
    );
}

#[test]
fn recovery_rebuilds_an_abort_entry_that_was_lost() {
    let io = SimIo::new();
    io.create_dir_durable(Path::new("/data")).unwrap();
    let mut log = open(&io);
    log.append(&txn_batch(7, 0, 3), 0).unwrap();
    log.append(&txn_batch(8, 0, 1), 0).unwrap();
    log.append_txn_marker(ProducerId(7), 0, marker(ControlType::Abort), 10)
        .unwrap();
    // Enough committed traffic afterwards to roll a few 2 KiB segments.
    for seq in 0..40 {
        log.append(&txn_batch(9, seq * 10, 10), 0).unwrap();
        log.append_txn_marker(ProducerId(9), 0, marker(ControlType::Commit), 10)
            .unwrap();
    }
    assert!(log.segment_count() > 2, "{} segments", log.segment_count());
    let expected = log.aborted_transactions(Offset(0), log.log_end_offset());
    assert_eq!(expected.len(), 1);
    log.flush().unwrap();
    drop(log);
    // The abort's index entry is lost (as if never synced) and the shutdown was not clean.
    let index = Path::new(DIR).join(format!("{:020}.txnindex", 0));
    io.remove_file(&index).unwrap();
    io.sync_dir(Path::new(DIR)).unwrap();
    io.crash();
    let log = open_log(&io, false);
    assert_eq!(
        log.aborted_transactions(Offset(0), log.log_end_offset()),
        expected,
        "recovery rebuilt the entry"
    );
    assert_eq!(
        log.producer_states().first_unstable_offset(),
        Some(Offset(3)),
        "producer 8's transaction is still open"
    );
    // The rebuilt entry is durable: another crash keeps it, and a clean open does not add it twice.
    drop(log);
    io.crash();
    let log = open_log(&io, true);
    assert_eq!(
        log.aborted_transactions(Offset(0), log.log_end_offset()),
        expected
    );
}

/// Every byte of `log` from `from` to its end, as a follower's fetch copies it.
fn copy_from(log: &PartitionLog, from: Offset) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = from;
    while at < log.log_end_offset() {
        let slice = log.read(at, 1 << 20, true).unwrap().slice.unwrap();
        let mut bytes = vec![0u8; slice.len as usize];
        slice
            .file
            .read_exact_at(&mut bytes, slice.position.get())
            .unwrap();
        let mut position = 0;
        while position < bytes.len() {
            let h = strata_storage::batch::BatchHeader::parse(&bytes[position..]).unwrap();
            at = Offset(h.last_offset() + 1);
            position += h.total_size();
        }
        out.extend_from_slice(&bytes);
    }
    out
}

/// With followers, a completed transaction stays unstable until its marker is below the high
/// watermark (a new leader elected before then may still hold it open); a follower copying the
/// leader's batches completes the transactions their markers end and indexes the aborts, so it
/// serves read_committed exactly as the leader did once it leads.
#[test]
fn markers_are_stable_once_replicated_and_followers_complete_transactions() {
    let io = SimIo::new();
    io.create_dir_durable(Path::new("/data")).unwrap();
    let mut leader = open(&io);
    leader
        .become_leader(strata_storage::units::LeaderEpoch(1), false)
        .unwrap();
    leader.append(&txn_batch(7, 0, 3), 0).unwrap(); // 0..=2
    leader.append(&txn_batch(8, 0, 2), 0).unwrap(); // 3..=4
    leader
        .append_txn_marker(ProducerId(7), 0, marker(ControlType::Abort), 10)
        .unwrap(); // 5
    leader
        .append_txn_marker(ProducerId(8), 0, marker(ControlType::Commit), 11)
        .unwrap(); // 6
    assert_eq!(leader.producer_states().first_unstable_offset(), None);
    // Nothing is replicated: nothing is stable.
    assert_eq!(leader.last_stable_offset(), Offset(0));
    leader.advance_high_watermark(Offset(5));
    // Both markers are still above the high watermark: their transactions' records are not
    // stable yet, though the records themselves are below it.
    assert_eq!(leader.last_stable_offset(), Offset(0));
    leader.advance_high_watermark(Offset(6));
    // 7's abort is replicated; 8's commit (its transaction began at 3) is not.
    assert_eq!(leader.last_stable_offset(), Offset(3));
    leader.advance_high_watermark(Offset(7));
    assert_eq!(leader.last_stable_offset(), Offset(7));

    let follower_io = SimIo::new();
    follower_io.create_dir_durable(Path::new("/data")).unwrap();
    let mut follower = open(&follower_io);
    follower.become_follower();
    follower
        .append_as_follower(&copy_from(&leader, Offset(0)), 20)
        .unwrap();
    assert_eq!(follower.log_end_offset(), Offset(7));
    assert_eq!(follower.producer_states().first_unstable_offset(), None);
    assert_eq!(
        follower.aborted_transactions(Offset(0), follower.log_end_offset()),
        [AbortedTxn {
            producer_id: ProducerId(7),
            first_offset: Offset(0),
            last_offset: Offset(5),
            last_stable_offset: Offset(3),
        }]
    );
    assert_eq!(follower.last_stable_offset(), Offset(0));
    follower.advance_high_watermark(Offset(7));
    assert_eq!(follower.last_stable_offset(), Offset(7));
    // Its index survives a restart as the leader's does.
    follower.close().unwrap();
    drop(follower);
    let follower = open(&follower_io);
    assert_eq!(
        follower
            .aborted_transactions(Offset(0), follower.log_end_offset())
            .len(),
        1
    );
}
