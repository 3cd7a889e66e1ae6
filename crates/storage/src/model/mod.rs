//! The storage model: a seeded (or fuzzer-driven) random sequence of appends, follower appends,
//! rolls, flushes, truncations, new leader epochs, migrations (some interrupted), deletions,
//! injected faults and crashes on the simulated disk, checked against a simple model of what
//! must survive. `tests/model.rs` runs it over seeds; the `storage_model` fuzz target lets a
//! coverage-guided fuzzer choose the operations.
//!
//! The model: every acknowledged record in order; `durable` = how many of them a flush covered.
//! After a crash the log must hold a prefix of the acknowledged records at least `durable` long,
//! byte for byte, with every segment in exactly one tier.
//!
//! Faults are injected too: an operation fails once with EIO (a write tears first; a sync breaks
//! the file's later syncs, as Linux may after a writeback error) or ENOSPC. After an EIO the log
//! must be offline (refusing appends, reads and flushes) until a restart; after an ENOSPC that
//! refused an append it must hold exactly what it held before. A flush that failed covers
//! nothing.
//!
//! Replication's operations run too: batches appended as a follower appends them (at the offsets
//! and epochs they carry), new leader epochs, and truncation of the tail. Leader epochs in the log
//! never go down and are all in the leader-epoch cache; the high watermark follows the log end
//! (the log leads alone).
//!
//! Transactions run too (see `txn`): transactional batches of two producers and their COMMIT
//! and ABORT markers; the last stable offset and the aborted-transaction index must agree with
//! the model at every step, crashes included.
//!
//! The same sequence runs on the `pmem` channel too: segments are pool files (one tier, no
//! migrations; the pool's cleaner runs instead, sometimes interrupted), and pool files must never
//! be lost or show a previous owner's bytes.
#![allow(clippy::too_many_arguments)]

mod txn;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::batch::{self, simple_batch};
use crate::clock::{Clock, ManualClock};
use crate::io::sim::{SimFault, SimIo};
use crate::io::Io;
use crate::log::partition::SegmentPlacer;
use crate::tier::migration::{copy_segment, delete_segment_files};
use crate::tier::pool::{SegmentPool, POOL_DIR};
use crate::tier::usage::{PartitionPlacer, TierUsage};
use crate::tier::TierDir;
use crate::units::{FilePosition, LeaderEpoch, Offset};
use crate::{AppendError, LogConfig, PartitionLog, ReadError};

/// The source of every choice a run makes: seeded, or read from a fuzzer's bytes.
pub trait Choices {
    /// A number below `n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64;
    /// Whether the source has run dry (a fuzzer's input ends the run there).
    fn exhausted(&self) -> bool {
        false
    }
}

/// Choices from a seed (xorshift): a failure is replayed from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

impl Choices for Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Choices read from bytes, two at a time: the coverage-guided fuzzer steers the run.
pub struct ByteChoices<'a> {
    bytes: &'a [u8],
}

impl<'a> ByteChoices<'a> {
    pub fn new(bytes: &'a [u8]) -> ByteChoices<'a> {
        ByteChoices { bytes }
    }
}

impl Choices for ByteChoices<'_> {
    fn below(&mut self, n: u64) -> u64 {
        let take = self.bytes.len().min(2);
        let (head, rest) = self.bytes.split_at(take);
        self.bytes = rest;
        let v = head.iter().fold(0u64, |v, b| (v << 8) | *b as u64);
        v % n
    }
    fn exhausted(&self) -> bool {
        self.bytes.is_empty()
    }
}

pub const HOME: &str = "/home/m-0";

pub fn placer(usage: &Arc<TierUsage>) -> Arc<dyn SegmentPlacer> {
    Arc::new(PartitionPlacer {
        usage: usage.clone(),
        partition_dir_name: "m-0".into(),
    })
}

thread_local! {
    /// The simulated time of the run on this thread: every log the model opens reads it.
    static CLOCK: Arc<ManualClock> = Arc::new(ManualClock::new(1_000_000));
}

/// The run's clock.
pub fn clock() -> Arc<ManualClock> {
    CLOCK.with(|c| c.clone())
}

/// Retention by time and `segment.ms` in the model: short against the clock's steps.
const RETENTION_MS: i64 = 120_000;
const SEGMENT_MS: i64 = 40_000;

pub fn open(io: &SimIo, usage: &Arc<TierUsage>, clean: bool, start: i64) -> PartitionLog {
    let config = LogConfig {
        segment_bytes: 600,
        index_interval_bytes: 100,
        retention_ms: RETENTION_MS,
        segment_ms: SEGMENT_MS,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open_placed(
        Arc::new(io.clone()),
        Path::new(HOME),
        "m",
        0,
        config,
        clean,
        Offset::ZERO,
        Offset(start),
        Some(placer(usage)),
    )
    .expect("open");
    log.set_clock(clock());
    log
}

/// Which channel a run models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Tiered,
    Pmem,
}

const POOL_FILE_BYTES: u64 = 600;
const POOL_FILES: usize = 4;

pub fn new_usage() -> Arc<TierUsage> {
    TierUsage::new(
        &[TierDir {
            path: "/fast".into(),
            capacity_bytes: 3000,
        }],
        &[TierDir {
            path: "/slow".into(),
            capacity_bytes: 1 << 40,
        }],
    )
}

/// The tiers of a run (opening the pool, and finishing its interrupted steps, for `pmem`).
pub fn usage_for(io: &SimIo, channel: Channel) -> Arc<TierUsage> {
    match channel {
        Channel::Tiered => new_usage(),
        Channel::Pmem => {
            let (pool, _) = SegmentPool::open(
                Arc::new(io.clone()),
                Path::new("/fast"),
                POOL_FILE_BYTES,
                POOL_FILES,
            )
            .expect("pool");
            TierUsage::with_layout(
                &[TierDir {
                    path: "/fast".into(),
                    capacity_bytes: 1 << 40,
                }],
                &[],
                [true, false],
                &[pool],
            )
        }
    }
}

/// Files owned by the pool or by a segment: never fewer than before (nothing leaks).
pub fn pool_owned_files(io: &SimIo) -> usize {
    let pool = io
        .list_dir(&Path::new("/fast").join(POOL_DIR))
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.starts_with("free-") || n.starts_with("dirty-"))
        .count();
    let logs = io
        .list_dir(Path::new("/fast/m-0"))
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.ends_with(".log"))
        .count();
    pool + logs
}

/// Each segment's base offset, directory, size and next offset, for traces and failures.
fn segments_of(log: &PartitionLog) -> Vec<(i64, PathBuf, u64, i64)> {
    log.segments()
        .map(|s| {
            (
                s.base_offset().get(),
                s.dir().to_path_buf(),
                s.size(),
                s.next_offset().get(),
            )
        })
        .collect()
}

/// Every record value from `from` to the end, read through the log's byte ranges.
pub fn read_values(log: &PartitionLog, from: i64) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < log.log_end_offset().get() {
        let slice = log
            .read(Offset(offset), 1 << 20, true)
            .expect("read")
            .slice
            .unwrap_or_else(|| {
                panic!(
                    "no data at {offset} below {} from {}; sealed {:?}",
                    log.log_end_offset().get(),
                    log.log_start_offset().get(),
                    segments_of(log)
                )
            });
        let mut bytes = vec![0u8; slice.len as usize];
        slice
            .file
            .read_exact_at(&mut bytes, slice.position.get())
            .expect("bytes");
        let found = batch::values_in(&bytes);
        assert!(!found.is_empty(), "no whole batch at offset {offset}");
        for (o, v) in &found {
            if *o >= offset {
                out.push(v.clone().unwrap_or_default());
            }
        }
        offset = found.last().map(|(o, _)| o + 1).unwrap_or(offset);
    }
    out
}

/// After an operation failed: whether the log stopped (an I/O error took its directory
/// offline; the broker must restart it) rather than refused one append (a full device). A
/// stopped log must refuse everything.
fn stopped_after_error(
    log: &mut PartitionLog,
    armed: bool,
    error: &str,
    (seed, step): (u64, i64),
) -> bool {
    assert!(armed, "seed {seed} step {step}: unexpected error {error}");
    if log.offline().is_none() {
        assert!(
            error.contains("ENOSPC"),
            "seed {seed} step {step}: the log kept serving after {error}"
        );
        return false;
    }
    assert!(
        matches!(
            log.append(&simple_batch(&[b"refused"], 0), 0),
            Err(AppendError::Offline { .. })
        ),
        "seed {seed} step {step}: an offline log took an append"
    );
    assert!(
        matches!(
            log.read(log.log_start_offset(), 100, true),
            Err(ReadError::Offline { .. })
        ),
        "seed {seed} step {step}: an offline log served a read"
    );
    assert!(
        log.flush().is_err(),
        "seed {seed} step {step}: an offline log flushed"
    );
    true
}

/// One run of `steps` random operations (fewer when `rng` runs dry) on a fresh simulated disk;
/// panics, naming `seed` and the step, at the first violation of the model.
pub fn run(seed: u64, channel: Channel, rng: &mut dyn Choices, steps: i64) {
    let io = SimIo::new();
    for d in ["/fast", "/slow", "/home"] {
        io.create_dir_durable(Path::new(d)).unwrap();
    }
    let mut usage = usage_for(&io, channel);
    let mut log = open(&io, &usage, true, 0);
    let mut owned = pool_owned_files(&io);
    // The model.
    let mut acknowledged: Vec<Vec<u8>> = Vec::new();
    let mut durable = 0usize;
    let mut start = 0i64;
    // The leader epoch a controller gave the partition: after a restart it leads with it again.
    let mut epoch = 0;
    let mut txns = txn::TxnModel::default();
    // Power loss and restart (see crash_and_recover): the model keeps what survived.
    macro_rules! crash {
        ($step:expr) => {
            (log, usage) = crash_and_recover(
                &io,
                log,
                channel,
                start,
                (seed, $step),
                &mut acknowledged,
                &mut durable,
            );
            txns.truncate(acknowledged.len() as i64);
        };
    }
    for step in 0..steps {
        if rng.exhausted() {
            break;
        }
        let op = rng.below(125);
        // Time passes: up to 2 s a step, so that retention and segment.ms come into play.
        clock().advance(rng.below(2000) as i64);
        let now = clock().now_ms();
        if std::env::var("STRATA_MODEL_TRACE").is_ok() {
            eprintln!(
                "step {step} op {op} leo {} start {start} acked {} durable {durable} epochs {:?}",
                log.log_end_offset().get(),
                acknowledged.len(),
                log.leader_epochs().entries()
            );
        }
        if std::env::var("STRATA_MODEL_TRACE").is_ok() {
            eprintln!("  segments {:?}", segments_of(&log));
            eprintln!(
                "  open transactions {:?}",
                log.producer_states().ongoing_txns().collect::<Vec<_>>()
            );
        }
        let armed = io.injection_pending();
        match op {
            0..=54 => {
                let n = 1 + rng.below(3) as usize;
                let values: Vec<Vec<u8>> = (0..n)
                    .map(|i| {
                        format!("s{seed}-{step}-{i}-{}", "v".repeat(rng.below(60) as usize))
                            .into_bytes()
                    })
                    .collect();
                let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
                let appended = if rng.below(4) == 0 {
                    // As a follower: the batch carries its offset and the leader's epoch.
                    let mut b = simple_batch(&refs, now);
                    b[0..8].copy_from_slice(&log.log_end_offset().get().to_be_bytes());
                    b[12..16].copy_from_slice(&log.leader_epoch().get().to_be_bytes());
                    log.append_as_follower(&b, now)
                } else {
                    log.append(&simple_batch(&refs, now), now)
                };
                match appended {
                    Ok(info) => {
                        assert_eq!(
                            info.base_offset.get() as usize,
                            acknowledged.len(),
                            "seed {seed} step {step}"
                        );
                        acknowledged.extend(values);
                    }
                    Err(e) => {
                        if stopped_after_error(&mut log, armed, &e.to_string(), (seed, step)) {
                            crash!(step);
                        }
                    }
                }
            }
            55..=64 => match log.flush() {
                Ok(()) => durable = acknowledged.len(),
                Err(e) => {
                    // A sync failure always stops the log: what it covered may be lost.
                    assert!(
                        stopped_after_error(&mut log, armed, "a failed sync", (seed, step)),
                        "seed {seed} step {step}: the log kept serving after a failed flush: {e}"
                    );
                    crash!(step);
                }
            },
            65..=69 => {
                if let Err(e) = log.roll() {
                    if stopped_after_error(&mut log, armed, &e.to_string(), (seed, step)) {
                        crash!(step);
                    }
                }
            }
            70..=84 if channel == Channel::Pmem => {
                // The pool's cleaner zeroes a given-back file, sometimes interrupted.
                let interrupt = rng.below(3) == 0;
                if interrupt {
                    io.fail_after(rng.below(4));
                }
                let done = usage.pools()[0].clean_one();
                io.fail_after(u64::MAX);
                if done.is_err() {
                    crash!(step);
                }
            }
            70..=84 => {
                // Move a random sealed segment to the other tier, sometimes interrupted.
                let sealed = log.sealed_segments();
                if sealed.is_empty() {
                    continue;
                }
                let (base, from, _, _) = sealed[rng.below(sealed.len() as u64) as usize].clone();
                let base = base.get();
                let to: PathBuf = if from.starts_with("/fast") {
                    "/slow/m-0".into()
                } else {
                    "/fast/m-0".into()
                };
                let interrupt = rng.below(3) == 0;
                if interrupt {
                    io.fail_after(rng.below(20));
                }
                let done = copy_segment(&io, &from, &to, base, 64)
                    .and_then(|_| log.switch_segment(Offset(base), &from, &to))
                    .and_then(|switched| {
                        if switched {
                            delete_segment_files(&io, &from, base)
                        } else {
                            Ok(())
                        }
                    });
                io.fail_after(u64::MAX);
                if done.is_err() {
                    // The process died mid-migration.
                    crash!(step);
                }
            }
            85..=89 => {
                let end = log.log_end_offset().get();
                let to = start + rng.below((end - start + 1) as u64) as i64;
                match log.delete_records_before(Offset(to)) {
                    Ok(new_start) => start = new_start.get(),
                    Err(e) => {
                        // Records below `to` were asked to go: they may or may not survive.
                        start = to;
                        if stopped_after_error(&mut log, armed, &e.to_string(), (seed, step)) {
                            crash!(step);
                        }
                    }
                }
            }
            100..=104 => {
                // A follower's truncation to where the leader's epochs end.
                let end = log.log_end_offset().get();
                let to = start + rng.below((end - start + 1) as u64) as i64;
                if std::env::var("STRATA_MODEL_TRACE").is_ok() {
                    eprintln!("  truncate to {to}");
                }
                // Where the cut falls: the start of the batch that holds `to`.
                let cut = if to < end {
                    let slice = log
                        .read(Offset(to), 1, true)
                        .expect("read")
                        .slice
                        .expect("a batch");
                    let mut header = vec![0u8; batch::HEADER_SIZE];
                    slice
                        .file
                        .read_exact_at(&mut header, slice.position.get())
                        .expect("header");
                    batch::BatchHeader::parse(&header)
                        .expect("batch")
                        .base_offset
                } else {
                    to
                };
                match log.truncate_to(Offset(to)) {
                    Ok(()) => {
                        // A batch holding `to` goes whole.
                        let end = log.log_end_offset().get();
                        assert_eq!(end, cut, "seed {seed} step {step}");
                        acknowledged.truncate(end as usize);
                        txns.truncate(end);
                        durable = durable.min(end as usize);
                        // Cut inside a batch that began below the log start: nothing is left.
                        start = start.min(end);
                    }
                    Err(e) => {
                        // Whether the cut reached the disk is unknown: only what is below it
                        // is still promised.
                        durable = durable.min(cut.max(0) as usize);
                        if stopped_after_error(&mut log, armed, &e.to_string(), (seed, step)) {
                            crash!(step);
                        }
                    }
                }
            }
            105..=109 => {
                // A new leader epoch, led alone.
                let next = epoch.max(log.leader_epoch().get()) + 1 + rng.below(3) as i32;
                let led = log.become_leader(LeaderEpoch(next), true);
                if led.is_ok() {
                    epoch = next;
                }
                if let Err(e) = led {
                    if stopped_after_error(&mut log, armed, &e.to_string(), (seed, step)) {
                        crash!(step);
                    }
                }
            }
            110..=114 => {
                // Retention by time (retention.ms): expired segments go from the head.
                match log.apply_retention(now) {
                    Ok(_) => start = start.max(log.log_start_offset().get()),
                    Err(e) => {
                        // The log start may have moved before a deletion failed.
                        start = start.max(log.log_start_offset().get());
                        if stopped_after_error(&mut log, armed, &e.to_string(), (seed, step)) {
                            crash!(step);
                        }
                    }
                }
            }
            115..=124 => {
                // A transactional batch, or a transaction's marker, of one of two producers.
                let pid = txn::PRODUCERS[rng.below(2) as usize];
                let (appended, values) = if op < 120 {
                    let values: Vec<Vec<u8>> = (0..1 + rng.below(3))
                        .map(|i| format!("t{seed}-{step}-{i}").into_bytes())
                        .collect();
                    (txns.append_data(&mut log, pid, &values, now), values)
                } else {
                    let commit = rng.below(2) == 0;
                    (
                        txns.append_marker(&mut log, pid, commit, now),
                        vec![txn::MARKER_VALUE.to_vec()],
                    )
                };
                match appended {
                    Ok(base) => {
                        assert_eq!(base as usize, acknowledged.len(), "seed {seed} step {step}");
                        acknowledged.extend(values);
                    }
                    Err(e) => {
                        if stopped_after_error(&mut log, armed, &e.to_string(), (seed, step)) {
                            crash!(step);
                        }
                    }
                }
            }
            90..=94 => {
                // A fault a few operations ahead: whatever it hits must stop or refuse.
                let fault = if rng.below(2) == 0 {
                    SimFault::Io
                } else {
                    SimFault::Full
                };
                io.inject(rng.below(12), fault);
            }
            _ => {
                crash!(step);
            }
        }
        if log.leader_epoch().get() < epoch && !io.injection_pending() {
            log.become_leader(LeaderEpoch(epoch), true)
                .expect("lead again after a restart");
        }
        // Always: epochs never go down and are all recorded; the high watermark is the end.
        check_epochs(&log, (seed, step));
        txns.check(&log, (seed, step));
        assert_eq!(
            log.high_watermark().get(),
            log.log_end_offset().get(),
            "seed {seed} step {step}: high watermark"
        );
        // Always: the log reads back exactly what the model holds, and no segment is twice.
        let values = read_values(&log, log.log_start_offset().get());
        let skip = (log.log_start_offset().get() - start).max(0) as usize;
        assert_eq!(
            values.len() + skip,
            acknowledged.len() - start as usize,
            "seed {seed} step {step}: length"
        );
        assert!(
            values
                .iter()
                .zip(&acknowledged[start as usize + skip..])
                .all(|(a, b)| a == b),
            "seed {seed} step {step}: contents"
        );
        if channel == Channel::Pmem {
            let now = pool_owned_files(&io);
            assert!(
                now >= owned,
                "seed {seed} step {step}: a pool file leaked ({now} < {owned})"
            );
            owned = now;
        }
        for (base, dir, _, _) in log.sealed_segments() {
            let other: PathBuf = if dir.starts_with("/fast") {
                "/slow/m-0".into()
            } else {
                "/fast/m-0".into()
            };
            assert!(
                !io.exists(&other.join(format!("{base:020}.log"))),
                "seed {seed} step {step}: segment {base} in both tiers"
            );
        }
    }
}

/// The leader epochs of the log's batches, in order: never decreasing, none newer than the
/// cache's latest, and each recorded at or before its first batch.
fn check_epochs(log: &PartitionLog, (seed, step): (u64, i64)) {
    let latest = log
        .leader_epochs()
        .latest_epoch()
        .map_or(0, LeaderEpoch::get);
    let mut previous = i32::MIN;
    for segment in log.segments() {
        let mut position = 0;
        while position < segment.size() {
            let header = segment
                .read_bytes(FilePosition(position), batch::HEADER_SIZE)
                .expect("header");
            let h = batch::BatchHeader::parse(&header).expect("a batch");
            position += h.total_size() as u64;
            if h.last_offset() < log.log_start_offset().get() {
                continue; // deleted (DeleteRecords), though still in the file
            }
            let epoch = h.partition_leader_epoch;
            assert!(
                epoch >= previous && epoch <= latest,
                "seed {seed} step {step}: epoch {epoch} after {previous}, latest {latest}"
            );
            if epoch > previous && log.leader_epochs().latest_epoch().is_some() {
                let recorded = log
                    .leader_epochs()
                    .entries()
                    .iter()
                    .rev()
                    .find(|e| e.epoch.get() <= epoch)
                    .map(|e| e.start_offset.get());
                // (The cache's first epoch begins at the log start, as in Kafka.)
                assert!(
                    recorded.is_some_and(|s| s <= h.base_offset.max(log.log_start_offset().get())),
                    "seed {seed} step {step}: epoch {epoch} at {} not recorded in {:?} (log start {})",
                    h.base_offset,
                    log.leader_epochs().entries(),
                    log.log_start_offset().get()
                );
            }
            previous = epoch;
        }
    }
}

/// Power loss and restart: the log must hold a prefix of the acknowledged records covering
/// every flushed one; the model then forgets what did not survive.
fn crash_and_recover(
    io: &SimIo,
    log: PartitionLog,
    channel: Channel,
    start: i64,
    (seed, step): (u64, i64),
    acknowledged: &mut Vec<Vec<u8>>,
    durable: &mut usize,
) -> (PartitionLog, Arc<TierUsage>) {
    drop(log);
    io.crash();
    if std::env::var("STRATA_MODEL_TRACE").is_ok() {
        for d in ["/fast/m-0", "/slow/m-0", HOME] {
            let names = io.list_dir(Path::new(d)).unwrap_or_default();
            let sizes: Vec<(String, usize)> = names
                .into_iter()
                .map(|n| {
                    (
                        n.clone(),
                        io.contents(&Path::new(d).join(&n))
                            .map(|c| c.len())
                            .unwrap_or(0),
                    )
                })
                .collect();
            eprintln!("  after crash {d}: {sizes:?}");
        }
    }
    let usage = usage_for(io, channel);
    let log = open(io, &usage, false, start);
    let values = read_values(&log, start);
    check_after_crash(
        seed,
        step,
        &acknowledged[start as usize..],
        durable.saturating_sub(start as usize),
        &values,
    );
    acknowledged.truncate(start as usize + values.len());
    *durable = acknowledged.len();
    (log, usage)
}

fn check_after_crash(
    seed: u64,
    step: i64,
    acknowledged: &[Vec<u8>],
    durable: usize,
    recovered: &[Vec<u8>],
) {
    assert!(
        recovered.len() >= durable,
        "seed {seed} step {step}: lost flushed records ({} < {durable})",
        recovered.len()
    );
    assert!(
        recovered.len() <= acknowledged.len(),
        "seed {seed} step {step}: records from nowhere"
    );
    assert!(
        recovered.iter().zip(acknowledged).all(|(a, b)| a == b),
        "seed {seed} step {step}: recovered bytes differ"
    );
}
