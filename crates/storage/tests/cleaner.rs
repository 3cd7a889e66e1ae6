//! The log cleaner on a partition log: the latest record of each key stays at its offset,
//! tombstones stay for `delete.retention.ms` after the cleaning that reached them, aborted
//! transactions and emptied markers go, codecs are kept, and a crash at any step of the swap
//! leaves every record the cleaning keeps (and nothing that was not in the log).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use proptest::prelude::*;
use strata_storage::batch::{
    build_batch, check_batch, encode_records, KeyValueRef, ATTR_TRANSACTIONAL,
};
use strata_storage::control::{ControlType, EndTxnMarker};
use strata_storage::io::sim::SimIo;
use strata_storage::io::Io;
use strata_storage::log::cleaner::{clean_log, offset_map::OffsetMap, CleanResult};
use strata_storage::log::partition::Partition;
use strata_storage::model;
use strata_storage::records;
use strata_storage::units::{Offset, ProducerId};
use strata_storage::{LogConfig, PartitionLog};

const DIR: &str = "/data/t-0";
const DAY: i64 = 24 * 3600 * 1000;

/// (offset, key, value) of every record a consumer reads from the log, in order.
type Records = Vec<(i64, Vec<u8>, Option<Vec<u8>>)>;

fn config() -> LogConfig {
    LogConfig {
        compact: true,
        delete: false,
        ..LogConfig::default()
    }
}

fn open(io: &SimIo, clean: bool, recovery_point: Offset) -> PartitionLog {
    PartitionLog::open(
        Arc::new(io.clone()),
        Path::new(DIR),
        "t",
        0,
        config(),
        clean,
        recovery_point,
        Offset::ZERO,
    )
    .unwrap()
}

fn partition(log: PartitionLog) -> Partition {
    Partition::new("t", 0, PathBuf::from("/data"), log)
}

fn new_io() -> SimIo {
    let io = SimIo::new();
    io.create_dir_durable(Path::new("/data")).unwrap();
    io
}

/// A batch of keyed records (a `None` value is a tombstone), compressed with `codec`.
fn batch(codec: i16, records: &[(&str, Option<&str>)], attributes: i16, pid: i64) -> Vec<u8> {
    let refs: Vec<KeyValueRef<'_>> = records
        .iter()
        .map(|(k, v)| (Some(k.as_bytes()), v.map(str::as_bytes)))
        .collect();
    let plain = encode_records(&refs, &vec![0; refs.len()]);
    let body = records::compression::compress(codec, &plain).unwrap();
    let n = refs.len() as i32;
    let seq = if pid >= 0 { 0 } else { -1 };
    build_batch(
        0,
        attributes | codec,
        n - 1,
        1000,
        1000,
        pid,
        0,
        seq,
        n,
        &body,
    )
}

fn put(log: &mut PartitionLog, key: &str, value: Option<&str>) -> i64 {
    log.append(&batch(0, &[(key, value)], 0, -1), 1000)
        .unwrap()
        .base_offset
        .get()
}

fn read_all(log: &PartitionLog) -> Records {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let info = log.read(offset, 1 << 20, true).unwrap();
        let Some(slice) = info.slice else { break };
        let mut bytes = vec![0; slice.len as usize];
        slice
            .file
            .read_exact_at(&mut bytes, slice.position.get())
            .unwrap();
        let mut at = 0;
        while at < bytes.len() {
            let Ok(h) = check_batch(&bytes[at..]) else {
                break;
            };
            let whole = &bytes[at..at + h.total_size()];
            if !h.is_control() {
                let (recs, refs) = records::decode(whole, &h).unwrap();
                for r in refs {
                    let o = h.base_offset + r.offset_delta as i64;
                    if o >= offset.get() {
                        let value = r.has_value.then(|| value_of(&recs, &r));
                        out.push((o, r.key(&recs).unwrap().to_vec(), value));
                    }
                }
            }
            offset = Offset(h.last_offset() + 1);
            at += h.total_size();
        }
    }
    out
}

/// The value bytes of a record (they follow the key in the record's layout).
fn value_of(records: &[u8], r: &records::RecordRef) -> Vec<u8> {
    let (_, key_end) = r.key.unwrap();
    let mut at = key_end;
    let len = strata_storage::batch::read_varint(records, &mut at).unwrap();
    records[at..at + len as usize].to_vec()
}

fn clean(p: &Partition, io: &SimIo, now: i64) -> CleanResult {
    let mut map = OffsetMap::new(1 << 20, 0.9);
    clean_log(p, io, &mut map, now, 4096, &|_| {}, &|| Ok(()))
        .unwrap()
        .expect("something to clean")
}

/// What a cleaning must leave of `records` below `end`: the latest of each key (tombstones
/// too when `keep_tombstones`); everything from `end` on.
fn expected(records: &Records, end: i64, keep_tombstones: bool) -> Records {
    let mut latest: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
    for (o, k, _) in records.iter().filter(|r| r.0 < end) {
        latest.insert(k.clone(), *o);
    }
    records
        .iter()
        .filter(|(o, k, v)| *o >= end || (latest[k] == *o && (v.is_some() || keep_tombstones)))
        .cloned()
        .collect()
}

#[test]
fn the_latest_record_of_each_key_stays_at_its_offset() {
    let io = new_io();
    let mut log = open(&io, true, Offset::ZERO);
    for i in 0..300 {
        put(&mut log, &format!("k{}", i % 17), Some(&format!("v{i}")));
        if i % 40 == 39 {
            log.roll().unwrap();
        }
    }
    let before = read_all(&log);
    let segments = log.segment_count();
    let active_base = log.segments().last().unwrap().base_offset().get();
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    let p = partition(log);
    let result = clean(&p, &io, 5000);
    assert_eq!(result.cleaned_up_to, active_base);
    assert!(result.records_removed > 200, "{result:?}");
    let log = p.log();
    assert_eq!(read_all(&log), expected(&before, active_base, true));
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (start, end));
    assert!(
        log.segment_count() < segments,
        "small cleaned segments are grouped"
    );
    assert_eq!(log.cleaner_checkpoint(), Offset(active_base));
    // The cleaned log survives a restart, clean or not.
    drop(log);
    let log = open(&io, false, Offset(end.get()));
    assert_eq!(read_all(&log), expected(&before, active_base, true));
}

#[test]
fn tombstones_stay_until_their_delete_horizon_then_go() {
    let io = new_io();
    let mut log = open(&io, true, Offset::ZERO);
    put(&mut log, "a", Some("1"));
    put(&mut log, "b", Some("2"));
    put(&mut log, "a", None);
    log.roll().unwrap();
    put(&mut log, "c", Some("3"));
    let p = partition(log);
    clean(&p, &io, 10_000);
    let got = read_all(&p.log());
    assert_eq!(
        got,
        vec![
            (1, b"b".to_vec(), Some(b"2".to_vec())),
            (2, b"a".to_vec(), None),
            (3, b"c".to_vec(), Some(b"3".to_vec()))
        ],
        "the tombstone stays, the value it deleted goes"
    );
    assert_eq!(p.log().next_delete_horizon(), Some(10_000 + DAY));
    // Before the horizon nothing changes; after it the tombstone goes.
    p.log().roll().unwrap();
    clean(&p, &io, 10_000 + DAY - 1);
    assert_eq!(read_all(&p.log()).len(), 3);
    clean(&p, &io, 10_000 + DAY);
    let got = read_all(&p.log());
    assert_eq!(
        got,
        vec![
            (1, b"b".to_vec(), Some(b"2".to_vec())),
            (3, b"c".to_vec(), Some(b"3".to_vec()))
        ]
    );
    assert_eq!(p.log().next_delete_horizon(), None);
}

#[test]
fn compressed_batches_are_written_again_with_their_codec() {
    for codec in [1, 2, 3, 4] {
        let io = new_io();
        let mut log = open(&io, true, Offset::ZERO);
        log.append(
            &batch(
                codec,
                &[("x", Some("1")), ("y", Some("2")), ("x", Some("3"))],
                0,
                -1,
            ),
            1000,
        )
        .unwrap();
        log.roll().unwrap();
        let p = partition(log);
        clean(&p, &io, 5000);
        let log = p.log();
        let seg = log.segments().next().unwrap();
        let bytes = seg
            .read_bytes(strata_storage::FilePosition(0), seg.size() as usize)
            .unwrap();
        let h = check_batch(&bytes).unwrap();
        assert_eq!(h.compression(), codec);
        assert_eq!(
            (h.base_offset, h.last_offset_delta, h.records_count),
            (0, 2, 2)
        );
        assert_eq!(
            read_all(&log),
            vec![
                (1, b"y".to_vec(), Some(b"2".to_vec())),
                (2, b"x".to_vec(), Some(b"3".to_vec()))
            ],
            "codec {codec}"
        );
    }
}

#[test]
fn aborted_transactions_go_and_their_markers_follow() {
    let io = new_io();
    let mut log = open(&io, true, Offset::ZERO);
    let marker = |control| EndTxnMarker {
        control,
        coordinator_epoch: 0,
    };
    // Producer 7 writes k=aborted and aborts; producer 8 writes k=committed and commits.
    log.append(
        &batch(0, &[("k", Some("aborted"))], ATTR_TRANSACTIONAL, 7),
        1000,
    )
    .unwrap();
    log.append(
        &batch(0, &[("j", Some("committed"))], ATTR_TRANSACTIONAL, 8),
        1000,
    )
    .unwrap();
    log.append_txn_marker(ProducerId(7), 0, marker(ControlType::Abort), 1000)
        .unwrap();
    log.append_txn_marker(ProducerId(8), 0, marker(ControlType::Commit), 1000)
        .unwrap();
    put(&mut log, "k", Some("plain"));
    // Producer 7 goes on: its aborted batch is no longer its last (which the cleaner keeps,
    // emptied, for its sequence numbers, as Kafka does).
    let mut next = batch(0, &[("m", Some("later"))], ATTR_TRANSACTIONAL, 7);
    next[53..57].copy_from_slice(&1i32.to_be_bytes());
    let crc = crc32c::crc32c(&next[21..]);
    next[17..21].copy_from_slice(&crc.to_be_bytes());
    log.append(&next, 1000).unwrap();
    log.append_txn_marker(ProducerId(7), 0, marker(ControlType::Commit), 1000)
        .unwrap();
    log.roll().unwrap();
    let p = partition(log);
    clean(&p, &io, 5000);
    {
        let log = p.log();
        assert_eq!(
            read_all(&log),
            vec![
                (1, b"j".to_vec(), Some(b"committed".to_vec())),
                (4, b"k".to_vec(), Some(b"plain".to_vec())),
                (5, b"m".to_vec(), Some(b"later".to_vec()))
            ]
        );
        // The abort marker stays (data of its transaction was met), still indexed.
        let aborted = log.aborted_transactions(Offset(0), log.log_end_offset());
        assert_eq!(aborted.len(), 1);
        assert_eq!(aborted[0].producer_id, ProducerId(7));
    }
    // The next cleaning finds the aborted transaction empty: its marker gets a horizon, and
    // goes after it; the commit marker's transaction still has data, so it stays.
    clean(&p, &io, 6000);
    clean(&p, &io, 6000 + DAY);
    let log = p.log();
    let seg = log.segments().next().unwrap();
    let bytes = seg
        .read_bytes(strata_storage::FilePosition(0), seg.size() as usize)
        .unwrap();
    let mut controls = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let h = check_batch(&bytes[at..]).unwrap();
        if h.is_control() {
            controls.push(h.producer_id);
        }
        at += h.total_size();
    }
    assert_eq!(controls, vec![8, 7], "only the commit markers are left");
    assert!(log
        .aborted_transactions(Offset(0), log.log_end_offset())
        .is_empty());
}

/// After a crash in a cleaning: `got` holds every record of `cleaned` (what the cleaning keeps)
/// and nothing that `before` (the log) did not hold.
fn assert_kept(got: &Records, before: &Records, cleaned: &Records, crash_after: u64) {
    for r in cleaned {
        assert!(got.contains(r), "{r:?} lost at crash point {crash_after}");
    }
    for r in got {
        assert!(
            before.contains(r),
            "{r:?} invented at crash point {crash_after}"
        );
    }
}

/// Builds a log of several sealed segments, flushed (its recovery point at its end).
fn crash_test_log(io: &SimIo) -> (Records, i64, Offset) {
    let mut log = open(io, true, Offset::ZERO);
    for i in 0..120 {
        let value = format!("v{i}");
        put(
            &mut log,
            &format!("k{}", i % 9),
            (i % 11 != 5).then_some(&value[..]),
        );
        if i % 30 == 29 {
            log.roll().unwrap();
        }
    }
    log.flush().unwrap();
    let active_base = log.segments().last().unwrap().base_offset().get();
    (read_all(&log), active_base, log.log_end_offset())
}

#[test]
fn a_crash_at_every_step_of_a_cleaning_keeps_what_it_keeps() {
    let total = {
        let io = new_io();
        crash_test_log(&io);
        let log = open(&io, true, Offset::ZERO);
        let before = io.operations();
        clean(&partition(log), &io, 5000);
        io.operations() - before
    };
    assert!(total > 20, "a cleaning takes many steps ({total})");
    for crash_after in 0..=total {
        let io = new_io();
        let (before, active_base, end) = crash_test_log(&io);
        let cleaned = expected(&before, active_base, true);
        let log = open(&io, true, Offset::ZERO);
        io.fail_after(crash_after);
        let p = partition(log);
        let mut map = OffsetMap::new(1 << 20, 0.9);
        let _ = clean_log(&p, &io, &mut map, 5000, 4096, &|_| {}, &|| Ok(()));
        drop(p);
        io.crash();
        // The recovery point checkpoint was durable before the cleaning began.
        let log = open(&io, false, end);
        let got = read_all(&log);
        assert_kept(&got, &before, &cleaned, crash_after);
        for name in io.list_dir(Path::new(DIR)).unwrap() {
            assert!(
                !name.ends_with(".cleaned") && !name.ends_with(".swap"),
                "{name} left at crash point {crash_after}"
            );
        }
        // Cleaning again gets to the same log.
        let p = partition(log);
        let mut map = OffsetMap::new(1 << 20, 0.9);
        clean_log(&p, &io, &mut map, 5000, 4096, &|_| {}, &|| Ok(())).unwrap();
        assert_eq!(read_all(&p.log()), cleaned, "crash point {crash_after}");
    }
}

/// Reads go on while a pass works: a read completes while the cleaner is stopped in the middle
/// of its pass (it holds no lock while it reads and writes), and every read, before, during and
/// after the swap, is a whole view of the log: records of the log only, in offset order, with
/// every record the cleaning keeps.
#[test]
fn reads_are_never_blocked_or_torn_while_the_cleaner_works() {
    let io = new_io();
    let (before, active_base, _) = crash_test_log(&io);
    let cleaned = expected(&before, active_base, true);
    let p = Arc::new(partition(open(&io, true, Offset::ZERO)));
    let (paused_tx, paused_rx) = std::sync::mpsc::channel::<()>();
    let (resume_tx, resume_rx) = std::sync::mpsc::channel::<()>();
    let cleaner = {
        let (p, io) = (p.clone(), io.clone());
        std::thread::spawn(move || {
            let first = std::sync::atomic::AtomicBool::new(true);
            let (paused_tx, resume_rx) = (
                std::sync::Mutex::new(paused_tx),
                std::sync::Mutex::new(resume_rx),
            );
            let pace = |_n: u64| {
                if first.swap(false, std::sync::atomic::Ordering::SeqCst) {
                    paused_tx.lock().unwrap().send(()).unwrap();
                    resume_rx.lock().unwrap().recv().unwrap();
                }
            };
            let mut map = OffsetMap::new(1 << 20, 0.9);
            clean_log(&p, &io, &mut map, 5000, 512, &pace, &|| Ok(()))
                .unwrap()
                .expect("something to clean")
        })
    };
    paused_rx.recv().unwrap();
    // The pass is under way and stopped: a read is served, and sees the log as it was.
    assert_eq!(read_all(&p.log()), before);
    resume_tx.send(()).unwrap();
    let check = |got: &Records| {
        assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "out of order");
        for r in got {
            assert!(before.contains(r), "{r:?} was never written");
        }
        for r in &cleaned {
            assert!(got.contains(r), "{r:?} missing from a read during cleaning");
        }
    };
    // Reads while the pass goes on (at least one, which may come after it ended: the check
    // holds for every state from the first to the last).
    loop {
        check(&read_all(&p.log()));
        if cleaner.is_finished() {
            break;
        }
    }
    let result = cleaner.join().unwrap();
    assert_eq!(result.cleaned_up_to, active_base);
    assert_eq!(read_all(&p.log()), cleaned);
}

/// The pmem channel: a log whose segments are files of the pool (and, once it is used up, files
/// of their own that join it when given back), on the fast tier.
fn open_pmem(io: &SimIo, clean: bool, recovery_point: Offset) -> PartitionLog {
    open_pmem_with(io, clean, recovery_point).0
}

fn open_pmem_with(
    io: &SimIo,
    clean: bool,
    recovery_point: Offset,
) -> (PartitionLog, Arc<strata_storage::tier::usage::TierUsage>) {
    let usage = model::usage_for(io, model::Channel::Pmem);
    let log = PartitionLog::open_placed(
        Arc::new(io.clone()),
        Path::new(model::HOME),
        "m",
        0,
        LogConfig {
            segment_bytes: 600,
            ..config()
        },
        clean,
        recovery_point,
        Offset::ZERO,
        Some(model::placer(&usage)),
    )
    .unwrap();
    (log, usage)
}

/// On the pmem channel a crash anywhere in a cleaning loses no record it keeps and no file of
/// the pool: a cleaned segment that never committed gives its pool file back.
#[test]
fn a_crash_while_cleaning_a_pmem_log_loses_no_pool_file() {
    let build = |io: &SimIo| {
        for d in ["/fast", "/slow", "/home"] {
            io.create_dir_durable(Path::new(d)).unwrap();
        }
        let (mut log, usage) = open_pmem_with(io, true, Offset::ZERO);
        for i in 0..40 {
            let value = format!("v{i}");
            put(
                &mut log,
                &format!("k{}", i % 5),
                (i % 11 != 5).then_some(&value[..]),
            );
            if i % 5 == 4 {
                log.roll().unwrap();
            }
        }
        // The first two segments go back to the pool and are zeroed: the cleaned segment takes
        // a pool file.
        log.delete_records_before(Offset(10)).unwrap();
        while usage.pools()[0].clean_one().unwrap() {}
        assert!(usage.pools()[0].free_count() >= 2);
        log.flush().unwrap();
        let active_base = log.segments().last().unwrap().base_offset().get();
        (read_all(&log), active_base, log.log_end_offset())
    };
    let total = {
        let io = SimIo::new();
        build(&io);
        let p = Partition::new(
            "m",
            0,
            PathBuf::from("/home"),
            open_pmem(&io, true, Offset::ZERO),
        );
        let before = io.operations();
        clean(&p, &io, 5000);
        io.operations() - before
    };
    assert!(total > 20, "a cleaning takes many steps ({total})");
    for crash_after in 0..=total {
        let io = SimIo::new();
        let (before, active_base, end) = build(&io);
        let owned = model::pool_owned_files(&io);
        let cleaned = expected(&before, active_base, true);
        let p = Partition::new(
            "m",
            0,
            PathBuf::from("/home"),
            open_pmem(&io, true, Offset::ZERO),
        );
        io.fail_after(crash_after);
        let mut map = OffsetMap::new(1 << 20, 0.9);
        let _ = clean_log(&p, &io, &mut map, 5000, 4096, &|_| {}, &|| Ok(()));
        drop(p);
        io.crash();
        let log = open_pmem(&io, false, end);
        let got = read_all(&log);
        assert_kept(&got, &before, &cleaned, crash_after);
        let now = model::pool_owned_files(&io);
        assert!(
            now >= owned,
            "a pool file was lost at crash point {crash_after}: {now} < {owned}"
        );
    }
}

#[test]
fn a_small_map_cleans_in_several_passes() {
    let io = new_io();
    let mut log = open(&io, true, Offset::ZERO);
    for i in 0..400 {
        put(&mut log, &format!("k{}", i % 100), Some(&format!("v{i}")));
        if i % 50 == 49 {
            log.roll().unwrap();
        }
    }
    let before = read_all(&log);
    let active_base = log.segments().last().unwrap().base_offset().get();
    let p = partition(log);
    // Room for 60 keys a pass, of 100.
    let mut passes = 0;
    loop {
        let mut map = OffsetMap::new(24 * 67, 0.9);
        assert_eq!(map.capacity(), 60);
        let r = clean_log(&p, &io, &mut map, 5000, 4096, &|_| {}, &|| Ok(()))
            .unwrap()
            .unwrap();
        passes += 1;
        if r.cleaned_up_to >= active_base {
            break;
        }
        assert!(r.map_full);
        assert!(passes < 20);
    }
    assert!(passes > 1);
    assert_eq!(read_all(&p.log()), expected(&before, active_base, true));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Against a model (the latest record per key, offsets kept): random puts, deletes, rolls
    /// and cleanings, with codecs.
    #[test]
    fn cleaning_matches_the_latest_value_per_key_model(
        ops in proptest::collection::vec((0u8..12, 0u8..8, 0i16..5), 1..150)
    ) {
        let io = new_io();
        let mut log = open(&io, true, Offset::ZERO);
        let mut written: Records = Vec::new();
        let mut now = 10_000;
        let mut cleaned_to = 0;
        for (op, key, codec) in ops {
            match op {
                0 => { log.roll().unwrap(); }
                1 => {}
                _ => {
                    let k = format!("k{key}");
                    let v = format!("v{}", written.len());
                    let value = (op != 2).then_some(v.as_str());
                    let o = log.append(&batch(codec, &[(&k, value)], 0, -1), 1000).unwrap().base_offset.get();
                    written.push((o, k.into_bytes(), value.map(|v| v.as_bytes().to_vec())));
                }
            }
            if op == 1 {
                let p = partition(log);
                let mut map = OffsetMap::new(1 << 16, 0.9);
                if let Some(r) = clean_log(&p, &io, &mut map, now, 4096, &|_| {}, &|| Ok(())).unwrap() {
                    cleaned_to = cleaned_to.max(r.cleaned_up_to);
                }
                now += 1;
                log = p.into_log();
                // Tombstones are all younger than a day: every one stays.
                let want = expected(&written, cleaned_to, true);
                prop_assert_eq!(read_all(&log), want);
            }
        }
    }
}
