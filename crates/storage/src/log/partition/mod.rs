//! The log of one partition: an ordered set of segments, the last one active.
//!
//! ```text
//! <log dir>/<topic>-<partition>/
//!     00000000000000000000.log        batches with offsets [0, 1200)
//!     00000000000000000000.index
//!     00000000000000000000.timeindex
//!     00000000000000001200.log        the active segment: appends go here
//!     00000000000000001200.index
//!     00000000000000001200.timeindex
//!     00000000000000001200.snapshot   producer state as of offset 1200
//! ```
//! Invariants: segments are contiguous and ordered by base offset; `log_start_offset <=
//! recovery_point <= log_end_offset` and `log_start_offset <= last_stable_offset <=
//! high_watermark <= log_end_offset`; every byte below a segment's `size` belongs to a batch that
//! passed validation; batches' leader epochs never go down, and each was recorded in the
//! leader-epoch cache before it was written.
//!
//! A leader alone in its ISR (a single broker) moves the high watermark with the log end offset;
//! a follower appends the leader's batches as they are (`append_as_follower`), truncates where
//! the leader's epochs say (`truncate_to`), and is told the high watermark. Consumers read below
//! the high watermark (`read_bounded`).
//!
//! Thread-safety: a `PartitionLog` is used under its partition's mutex. Reads copy out an `Arc` of
//! the segment file and a byte range, so the bytes are sent after the lock is released, and a
//! segment deleted meanwhile stays readable through the open descriptor.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::batch::{self, BatchHeader};
use crate::clock::{Clock, SystemClock};
use crate::config::{LogConfig, TimestampType};
use crate::error::{AppendError, ReadError};
use crate::failure::{is_full, LogDirFailures};
use crate::io::{offset_file, Io, IoFile};
use crate::log::leader_epoch::LeaderEpochCache;
use crate::log::producer_state::{CompletedTxn, ProducerStates, SequenceCheck};
use crate::log::segment::{
    AppendedBatch, FileMode, Segment, SegmentLimits, SegmentSlice, LEADER_EPOCH,
};
use crate::units::{FilePosition, LeaderEpoch, Offset, ProducerId};

pub use compact::{CleanableSegment, CleaningPlan, DirtyStats, PlanOutcome, SegmentUse};

/// The outcome of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: Offset,
    pub last_offset: Offset,
    /// The broker's timestamp for LogAppendTime topics, else -1.
    pub log_append_time: i64,
    pub log_start_offset: Offset,
    /// The batch was a retry of one already written; nothing was appended.
    pub duplicate: bool,
    /// `flush.messages` was reached: the caller should flush (outside the lock).
    pub needs_flush: bool,
}

/// The outcome of a read.
#[derive(Debug, Clone)]
pub struct ReadInfo {
    pub slice: Option<SegmentSlice>,
    pub high_watermark: Offset,
    pub last_stable_offset: Offset,
    pub log_start_offset: Offset,
    /// Where the segment the slice came from ends (at most the read's bound): the records sent
    /// lie below it, so the aborted transactions to send with them are those starting below.
    pub upper_bound: Offset,
}

/// Files to sync for a flush, taken under the lock and synced outside it.
#[derive(Debug)]
pub struct FlushJob {
    /// Each file with its segment's directory, which a failed sync takes offline.
    pub files: Vec<(PathBuf, Arc<dyn IoFile>)>,
    pub target_offset: Offset,
    failures: Arc<LogDirFailures>,
}

impl FlushJob {
    /// Whether every sync of the job costs no more than a memory operation (see
    /// [`IoFile::sync_is_cheap`]), so the job may run on the request's own thread.
    pub fn is_cheap(&self) -> bool {
        self.files.iter().all(|(_, f)| f.sync_is_cheap())
    }

    /// Syncs the files. A failed sync takes its directory offline: what it covered may be lost
    /// even if a later sync succeeds, so nothing it covered may ever be acknowledged.
    pub fn run(&self) -> io::Result<()> {
        let started = std::time::Instant::now();
        for (dir, f) in &self.files {
            if let Err(e) = f.sync_data() {
                self.failures.fail(dir, &e);
                return Err(e);
            }
        }
        // Published when the broker serves metrics (a no-op recorder otherwise).
        metrics::histogram!("strata_log_flush_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        Ok(())
    }
}

/// What a startup did to a log: for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub segments_recovered: usize,
    pub bytes_truncated: u64,
    pub segments_dropped: usize,
}

#[derive(Debug)]
pub struct PartitionLog {
    topic: String,
    partition: i32,
    dir: PathBuf,
    io: Arc<dyn Io>,
    config: LogConfig,
    segments: BTreeMap<Offset, Segment>,
    log_start_offset: Offset,
    recovery_point: Offset,
    unflushed_messages: i64,
    last_flush_ms: i64,
    producers: ProducerStates,
    recovery: RecoveryReport,
    /// Where segments go when the log keeps them in tier directories; None: all in `dir`.
    placer: Option<Arc<dyn SegmentPlacer>>,
    /// Directories taken offline by I/O errors (shared by the broker's logs).
    failures: Arc<LogDirFailures>,
    /// Why the log stopped on its own (a panic while it was locked); None while it serves.
    stopped: Option<String>,
    /// Where each leader epoch began (`leader-epoch-checkpoint`).
    leader_epochs: LeaderEpochCache,
    /// The epoch this replica leads with (stamped into appended batches); None: a follower.
    leading_epoch: Option<LeaderEpoch>,
    /// The offset below which every replica in the ISR has the records: what consumers see.
    high_watermark: Offset,
    /// The offset below which no transaction is open: the oldest open transaction's first
    /// offset, at most the high watermark (and at least the log start).
    last_stable_offset: Offset,
    /// Transactions whose marker is written but not yet below the high watermark, in marker
    /// order (Kafka's unreplicated transactions): until the marker is replicated, a new leader
    /// may still see the transaction open, so its records are not stable yet.
    unreplicated_txns: std::collections::VecDeque<CompletedTxn>,
    /// Whether the high watermark follows the log end at once (a leader alone in its ISR).
    follows_log_end: bool,
    /// Whether this replica follows another's log (then only `append_as_follower` writes).
    follower: bool,
    /// Where the log reads the time (segment ages, the flush schedule).
    clock: Arc<dyn Clock>,
    /// Where the cleaner's next pass starts (`cleaner-offset-checkpoint`).
    cleaner_checkpoint: Offset,
    /// The earliest delete horizon the last cleaning left on a kept batch.
    next_delete_horizon: Option<i64>,
    /// Segments held by the cleaner or a migration while they work outside the lock.
    in_use: BTreeMap<Offset, SegmentUse>,
}

/// Chooses the directory of each new segment and accounts for the space segments take, for logs
/// whose segments live in tier directories rather than in their own directory.
pub trait SegmentPlacer: Send + Sync + std::fmt::Debug {
    /// Every directory that may hold this partition's segments, first tier first.
    fn segment_dirs(&self) -> Vec<PathBuf>;
    /// The directory for a new segment of up to `bytes`, with that much reserved in it; an
    /// error when no tier has room.
    fn place(&self, bytes: u64) -> io::Result<PathBuf>;
    /// Counts `bytes` as used in `dir` (segments found at startup).
    fn charge(&self, dir: &Path, bytes: u64);
    /// Gives back `bytes` in `dir` (a sealed segment smaller than its reservation, a deletion).
    fn release(&self, dir: &Path, bytes: u64);
    /// Counts bytes appended to a segment in `dir`.
    fn wrote(&self, _dir: &Path, _bytes: u64) {}
    /// Counts bytes read (located for a fetch) from a segment in `dir`.
    fn read(&self, _dir: &Path, _bytes: u64) {}
    /// How segment files in `dir` are held (mapped on a PMEM tier, from a pool).
    fn file_mode(&self, _dir: &Path) -> FileMode {
        FileMode::plain()
    }
    /// The largest segment any directory can hold, when that is bounded (pool files).
    fn max_segment_bytes(&self) -> Option<u64> {
        None
    }
}

fn limits(config: &LogConfig, max_leader_epoch: LeaderEpoch) -> SegmentLimits {
    SegmentLimits {
        index_interval_bytes: config.index_interval_bytes,
        max_index_bytes: config.segment_index_bytes,
        max_leader_epoch,
    }
}

/// How the segment files of a log in `dir` are held: the placer's say, with `preallocate` (and
/// every mapped file, which must have its full size to be mapped) allocating a whole
/// `segment.bytes` up front.
fn file_mode(placer: &Option<Arc<dyn SegmentPlacer>>, config: &LogConfig, dir: &Path) -> FileMode {
    let mut mode = placer
        .as_ref()
        .map(|p| p.file_mode(dir))
        .unwrap_or_default();
    if let Some(pool) = &mode.pool {
        mode.preallocate = Some(pool.file_bytes());
    } else if config.preallocate || mode.mapped {
        mode.preallocate = Some(config.segment_bytes);
    }
    mode
}

/// `<topic>-<partition>`, Kafka's partition directory name.
pub fn partition_dir_name(topic: &str, partition: i32) -> String {
    format!("{topic}-{partition}")
}

mod append;
mod compact;
mod flush;
mod open;
mod retention;
mod truncate;
mod txn;

impl PartitionLog {
    /// Makes the log read the time from `clock` (simulated tests control time this way).
    pub fn set_clock(&mut self, clock: Arc<dyn Clock>) {
        let now = clock.now_ms();
        self.last_flush_ms = now;
        for segment in self.segments.values_mut() {
            segment.set_created_ms(now);
        }
        self.clock = clock;
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Shares the broker's record of offline directories with this log.
    pub fn set_failures(&mut self, failures: Arc<LogDirFailures>) {
        self.failures = failures;
    }

    /// Stops the log for good (until a restart): a panic while it was locked may have left its
    /// state half-changed.
    pub fn stop(&mut self, reason: &str) {
        if self.stopped.is_none() {
            tracing::error!(topic = %self.topic, partition = self.partition, reason, "log stopped");
            self.stopped = Some(reason.to_string());
        }
    }

    /// Stops the log because its files are being removed (its partition deleted, or no longer
    /// hosted here): whoever still holds it is refused from now on, and no write of its reaches
    /// a directory on the way out (which would look like a failing disk).
    pub fn close_for_removal(&mut self) {
        self.stopped.get_or_insert_with(|| "removed".to_string());
    }

    /// The offline directory that stops this log, if any: its own, or one holding its segments.
    pub fn offline(&self) -> Option<PathBuf> {
        if self.stopped.is_some() {
            return Some(self.dir.clone());
        }
        if self.failures.offline_dirs_known() {
            let mut dirs = self.segment_dirs();
            dirs.push(self.dir.clone());
            return self
                .failures
                .offline_among(dirs.iter().map(PathBuf::as_path));
        }
        None
    }

    /// The offsets' order, checked after every change (always on: a log that broke it would
    /// serve or acknowledge the wrong records). A few comparisons.
    fn assert_invariants(&self) {
        let (start, end) = (self.log_start_offset, self.log_end_offset());
        assert!(
            start <= self.last_stable_offset
                && self.last_stable_offset <= self.high_watermark
                && self.high_watermark <= end,
            "{}-{}: offsets out of order: log start {start}, last stable {}, high watermark {}, \
             log end {end}",
            self.topic,
            self.partition,
            self.last_stable_offset,
            self.high_watermark
        );
        assert!(
            start <= self.recovery_point && self.recovery_point <= end,
            "{}-{}: recovery point {} outside [{start}, {end}]",
            self.topic,
            self.partition,
            self.recovery_point
        );
    }

    fn offline_error(dir: PathBuf) -> io::Error {
        io::Error::other(format!("directory {} is offline", dir.display()))
    }

    /// Passes `result` on, taking `dir`'s directory offline first when it is an I/O error other
    /// than a full device.
    fn fail_stop<T>(&self, dir: &Path, result: io::Result<T>) -> io::Result<T> {
        if let Err(e) = &result {
            if !is_full(e) {
                self.failures.fail(dir, e);
            }
        }
        result
    }

    /// Takes `dir` offline for `e` (not for a full device): work on the log's files outside
    /// the lock (the cleaner's) failed there.
    pub fn fail_dir(&self, dir: &Path, e: &io::Error) {
        if !is_full(e) {
            self.failures.fail(dir, e);
        }
    }

    /// Refuses to change a log that is offline.
    fn check_online(&self) -> io::Result<()> {
        match self.offline() {
            Some(dir) => Err(Self::offline_error(dir)),
            None => Ok(()),
        }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }
    pub fn partition(&self) -> i32 {
        self.partition
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn config(&self) -> &LogConfig {
        &self.config
    }
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }
    pub fn log_start_offset(&self) -> Offset {
        self.log_start_offset
    }
    pub fn log_end_offset(&self) -> Offset {
        self.active().next_offset()
    }
    pub fn high_watermark(&self) -> Offset {
        self.high_watermark
    }
    pub fn last_stable_offset(&self) -> Offset {
        self.last_stable_offset
    }
    /// The epoch batches are written with: the leading epoch, else the newest recorded.
    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.leading_epoch
            .or(self.leader_epochs.latest_epoch())
            .unwrap_or(LEADER_EPOCH)
    }
    pub fn leader_epochs(&self) -> &LeaderEpochCache {
        &self.leader_epochs
    }
    /// The leader epoch `offset` was (or, at the log end, will be) written in, as ListOffsets
    /// reports it; a log that recorded no epoch was led with epoch 0.
    pub fn epoch_for_offset(&self, offset: Offset) -> LeaderEpoch {
        if offset >= self.log_end_offset() {
            return self.leader_epoch();
        }
        self.leader_epochs
            .epoch_for(offset)
            .unwrap_or(LeaderEpoch::INITIAL)
    }
    /// Where `epoch` ends in this log (OffsetForLeaderEpoch, see
    /// [`LeaderEpochCache::end_offset_for`]). A log that has recorded no epoch yet has been led
    /// with epoch 0 from its start.
    pub fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> (LeaderEpoch, Offset) {
        let end = self.log_end_offset();
        if self.leader_epochs.latest_epoch().is_none() {
            return match epoch {
                LeaderEpoch::INITIAL => (LeaderEpoch::INITIAL, end),
                _ => (LeaderEpoch::UNDEFINED, Offset(-1)),
            };
        }
        self.leader_epochs.end_offset_for(epoch, end)
    }
    fn limits(&self) -> SegmentLimits {
        limits(&self.config, self.leader_epoch())
    }

    /// Makes this replica the leader with `epoch`, alone in its ISR when `alone` (its high
    /// watermark then follows its log end). The epoch is recorded at the log end offset.
    pub fn become_leader(&mut self, epoch: LeaderEpoch, alone: bool) -> io::Result<()> {
        self.check_online()?;
        let end = self.log_end_offset();
        let assigned = self.leader_epochs.assign(epoch, end);
        self.fail_stop(&self.dir, assigned)?;
        self.leading_epoch = Some(self.leader_epoch().max(epoch));
        let newest = self.leader_epoch();
        for segment in self.segments.values_mut() {
            segment.set_max_leader_epoch(newest);
        }
        self.follows_log_end = alone;
        self.follower = false;
        if alone {
            self.advance_high_watermark(end);
        }
        Ok(())
    }

    /// Makes this replica a follower: it appends what the leader sends and is told the high
    /// watermark.
    pub fn become_follower(&mut self) {
        self.leading_epoch = None;
        self.follows_log_end = false;
        self.follower = true;
    }

    /// Whether this replica follows another's log.
    pub fn is_follower(&self) -> bool {
        self.follower
    }

    /// Whether this leader is alone in its ISR, so that its high watermark follows its log
    /// end (else the replication layer moves it as followers catch up).
    pub fn set_alone_in_isr(&mut self, alone: bool) {
        self.follows_log_end = alone && self.leading_epoch.is_some();
        if self.follows_log_end {
            let end = self.log_end_offset();
            self.advance_high_watermark(end);
        }
    }

    /// Moves the high watermark up to `offset` (at most the log end); returns the new one.
    pub fn advance_high_watermark(&mut self, offset: Offset) -> Offset {
        let hw = offset.min(self.log_end_offset()).max(self.high_watermark);
        assert!(
            hw >= self.log_start_offset,
            "high watermark {hw} below the log start {}",
            self.log_start_offset
        );
        self.high_watermark = hw;
        self.refresh_last_stable_offset();
        hw
    }

    /// Recomputes the last stable offset after the high watermark or the open transactions
    /// changed.
    fn refresh_last_stable_offset(&mut self) {
        while self
            .unreplicated_txns
            .front()
            .is_some_and(|t| t.last_offset < self.high_watermark)
        {
            self.unreplicated_txns.pop_front();
        }
        let unreplicated = self.unreplicated_txns.iter().map(|t| t.first_offset).min();
        let first = match (self.producers.first_unstable_offset(), unreplicated) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_stable_offset = match first {
            Some(first) => first.clamp(self.log_start_offset, self.high_watermark),
            None => self.high_watermark,
        };
    }

    /// Sets the high watermark read from `replication-offset-checkpoint` at startup, within
    /// the log's bounds.
    pub fn restore_high_watermark(&mut self, offset: Offset) {
        let hw = offset.clamp(self.log_start_offset, self.log_end_offset());
        self.high_watermark = if self.follows_log_end {
            self.log_end_offset()
        } else {
            hw
        };
        self.refresh_last_stable_offset();
    }
    pub fn recovery_point(&self) -> Offset {
        self.recovery_point
    }
    pub fn recovery_report(&self) -> RecoveryReport {
        self.recovery
    }
    pub fn producer_states(&self) -> &ProducerStates {
        &self.producers
    }
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size()).sum()
    }
    pub fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.segments.values()
    }
    /// The base offset of the active segment (the only one appends go to; never cleaned).
    pub fn active_base_offset(&self) -> Offset {
        self.active().base_offset()
    }
    fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("a log always has an active segment")
    }
    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has an active segment")
    }

    /// The bytes to send for a fetch at `offset`.
    pub fn read(
        &self,
        offset: Offset,
        max_bytes: u64,
        min_one_batch: bool,
    ) -> Result<ReadInfo, ReadError> {
        self.read_bounded(offset, max_bytes, min_one_batch, Offset::MAX)
    }

    /// As [`PartitionLog::read`], returning no batch that reaches `max_offset` or beyond (a
    /// consumer reads below the high watermark, a follower to the log end).
    pub fn read_bounded(
        &self,
        offset: Offset,
        max_bytes: u64,
        min_one_batch: bool,
        max_offset: Offset,
    ) -> Result<ReadInfo, ReadError> {
        if let Some(dir) = self.offline() {
            return Err(ReadError::Offline { dir });
        }
        let end = self.log_end_offset();
        if offset < self.log_start_offset || offset > end {
            return Err(ReadError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: end,
            });
        }
        let bound = max_offset.min(end);
        let mut slice = None;
        let mut upper_bound = offset;
        if offset < bound {
            let first = self
                .segments
                .range(..=offset)
                .next_back()
                .map(|(b, _)| *b)
                .unwrap_or(offset);
            for (_, segment) in self.segments.range(first..bound) {
                // The bytes end before the batch that holds `bound`.
                let max_position = if bound < segment.next_offset() {
                    segment
                        .find_batch(bound)?
                        .map_or(FilePosition::END, |(p, _)| p)
                } else {
                    FilePosition::END
                };
                if let Some(s) = segment.read(offset, max_bytes, max_position, min_one_batch)? {
                    if let Some(p) = &self.placer {
                        p.read(segment.dir(), s.len);
                    }
                    upper_bound = bound.min(segment.next_offset());
                    slice = Some(s);
                    break;
                }
            }
        }
        Ok(ReadInfo {
            slice,
            high_watermark: self.high_watermark,
            last_stable_offset: self.last_stable_offset,
            log_start_offset: self.log_start_offset,
            upper_bound,
        })
    }

    /// The first record with timestamp >= `timestamp`: (offset, timestamp).
    pub fn offset_for_timestamp(&self, timestamp: i64) -> io::Result<Option<(Offset, i64)>> {
        for segment in self.segments.values() {
            if segment.max_timestamp() < timestamp {
                continue;
            }
            if let Some(found) =
                segment.find_offset_by_timestamp(timestamp, self.log_start_offset)?
            {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The record with the largest timestamp: (offset, timestamp), or None for an empty log.
    pub fn max_timestamp(&self) -> Option<(Offset, i64)> {
        let mut best: Option<(Offset, i64)> = None;
        for segment in self.segments.values() {
            if segment.max_timestamp() >= 0
                && best.is_none_or(|(_, ts)| segment.max_timestamp() > ts)
            {
                best = Some((segment.offset_of_max_timestamp(), segment.max_timestamp()));
            }
        }
        best
    }

    /// Writes everything needed for a clean start: indexes, producer snapshot, a final sync.
    pub fn close(&mut self) -> io::Result<()> {
        self.flush()?;
        let end = self.log_end_offset();
        let written = self.write_producer_snapshot(end);
        let dir = self.dir.clone();
        self.fail_stop(&dir, written)
    }

    /// Removes the log's files and directory.
    pub fn delete_all(self) -> io::Result<()> {
        let io = self.io.clone();
        let dir = self.dir.clone();
        if let Some(p) = &self.placer {
            for (dir, bytes) in self.space_taken() {
                p.release(&dir, bytes);
            }
            for d in p.segment_dirs() {
                if io.exists(&d) {
                    io.remove_dir_all(&d)?;
                }
            }
        }
        drop(self);
        io.remove_dir_all(&dir)
    }

    /// Sealed segments: (base offset, directory, size, retention timestamp), oldest first.
    pub fn sealed_segments(&self) -> Vec<(Offset, PathBuf, u64, i64)> {
        let active = self.active().base_offset();
        self.segments
            .values()
            .filter(|s| s.base_offset() != active)
            .map(|s| {
                (
                    s.base_offset(),
                    s.dir().to_path_buf(),
                    s.size(),
                    s.retention_timestamp(),
                )
            })
            .collect()
    }

    /// Points readers at a segment's copy in `to_dir` (a migration's switch step). Returns false,
    /// changing nothing, when the segment is gone, active, or no longer in `from_dir` (retention
    /// or a deletion won the race): the caller then discards its copy.
    pub fn switch_segment(
        &mut self,
        base_offset: Offset,
        from_dir: &Path,
        to_dir: &Path,
    ) -> io::Result<bool> {
        self.check_online()?;
        let active = self.active().base_offset();
        match self.segments.get(&base_offset) {
            Some(s) if base_offset != active && s.dir() == from_dir => {}
            _ => return Ok(false),
        }
        let mode = file_mode(&self.placer, &self.config, to_dir);
        let moved = Segment::open(&*self.io, to_dir, base_offset, false, self.limits(), &mode);
        let moved = self.fail_stop(to_dir, moved)?;
        let size = moved.size();
        // Readers that already hold the old files finish on them; new reads use the copy.
        self.segments.insert(base_offset, moved);
        if let Some(p) = &self.placer {
            p.release(from_dir, size);
            p.charge(to_dir, size);
        }
        Ok(true)
    }

    /// The space each segment takes in its directory: sealed segments their size, the active one
    /// a full `segment.bytes` (what it may still grow to).
    fn space_taken(&self) -> Vec<(PathBuf, u64)> {
        let active = self.active().base_offset();
        self.segments
            .values()
            .map(|s| {
                let bytes = if s.base_offset() == active {
                    self.config.segment_bytes.max(s.size())
                } else {
                    s.size()
                };
                (s.dir().to_path_buf(), bytes)
            })
            .collect()
    }

    /// The directories of the log's segments (its own, or tier directories).
    pub fn segment_dirs(&self) -> Vec<PathBuf> {
        match &self.placer {
            Some(p) => p.segment_dirs(),
            None => vec![self.dir.clone()],
        }
    }
}

/// One partition: its log under a mutex.
#[derive(Debug)]
pub struct Partition {
    pub topic: String,
    pub index: i32,
    pub log_dir: PathBuf,
    log: Mutex<PartitionLog>,
}

impl Partition {
    /// Partition `index` of `topic`, whose home is `log_dir` (a `log.dirs` entry).
    pub fn new(topic: &str, index: i32, log_dir: PathBuf, log: PartitionLog) -> Partition {
        Partition {
            topic: topic.to_string(),
            index,
            log_dir,
            log: Mutex::new(log),
        }
    }

    /// The log, for a caller that owns the partition alone (tests, tools).
    pub fn into_log(self) -> PartitionLog {
        self.log.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    /// Locks the log. A panic while it was held (a bug) may have left the log half-changed, so
    /// the log is then stopped: it answers KAFKA_STORAGE_ERROR until a restart recovers it.
    pub fn log(&self) -> MutexGuard<'_, PartitionLog> {
        self.log.lock().unwrap_or_else(|poisoned| {
            let mut log = poisoned.into_inner();
            log.stop("a thread panicked while it held the partition's lock");
            log
        })
    }
}
