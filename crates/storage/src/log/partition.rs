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
//! recovery_point <= log_end_offset`; every byte below a segment's `size` belongs to a batch that
//! passed validation. There is one broker, so the high watermark is the log end offset.
//!
//! Thread-safety: a `PartitionLog` is used under its partition's mutex. Reads copy out an `Arc` of
//! the segment file and a byte range, so the bytes are sent after the lock is released, and a
//! segment deleted meanwhile stays readable through the open descriptor.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::batch::{self, BatchHeader};
use crate::config::{LogConfig, TimestampType};
use crate::error::{AppendError, ReadError};
use crate::failure::{is_full, LogDirFailures};
use crate::io::{offset_file, Io, IoFile};
use crate::log::producer_state::{ProducerStates, SequenceCheck};
use crate::log::segment::{
    AppendedBatch, FileMode, Segment, SegmentLimits, SegmentSlice, LEADER_EPOCH,
};

/// The outcome of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The broker's timestamp for LogAppendTime topics, else -1.
    pub log_append_time: i64,
    pub log_start_offset: i64,
    /// The batch was a retry of one already written; nothing was appended.
    pub duplicate: bool,
    /// `flush.messages` was reached: the caller should flush (outside the lock).
    pub needs_flush: bool,
}

/// The outcome of a read.
#[derive(Debug, Clone)]
pub struct ReadInfo {
    pub slice: Option<SegmentSlice>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

/// Files to sync for a flush, taken under the lock and synced outside it.
#[derive(Debug)]
pub struct FlushJob {
    /// Each file with its segment's directory, which a failed sync takes offline.
    pub files: Vec<(PathBuf, Arc<dyn IoFile>)>,
    pub target_offset: i64,
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
        for (dir, f) in &self.files {
            if let Err(e) = f.sync_data() {
                self.failures.fail(dir, &e);
                return Err(e);
            }
        }
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
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    recovery_point: i64,
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

fn limits(config: &LogConfig) -> SegmentLimits {
    SegmentLimits {
        index_interval_bytes: config.index_interval_bytes,
        max_index_bytes: config.segment_index_bytes,
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

impl PartitionLog {
    /// Opens the log in `dir` (creating it when new). With `clean == false` every segment from the
    /// one holding `recovery_point` on is scanned and truncated at its first bad batch.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        io: Arc<dyn Io>,
        dir: &Path,
        topic: &str,
        partition: i32,
        config: LogConfig,
        clean: bool,
        recovery_point: i64,
        log_start_offset: i64,
    ) -> io::Result<PartitionLog> {
        Self::open_placed(
            io,
            dir,
            topic,
            partition,
            config,
            clean,
            recovery_point,
            log_start_offset,
            None,
        )
    }

    /// As [`PartitionLog::open`], with segments placed in tier directories by `placer`.
    #[allow(clippy::too_many_arguments)]
    pub fn open_placed(
        io: Arc<dyn Io>,
        dir: &Path,
        topic: &str,
        partition: i32,
        config: LogConfig,
        clean: bool,
        recovery_point: i64,
        log_start_offset: i64,
        placer: Option<Arc<dyn SegmentPlacer>>,
    ) -> io::Result<PartitionLog> {
        io.create_dir_all(dir)?;
        let mut snapshots = Vec::new();
        for name in io.list_dir(dir)? {
            let path = dir.join(&name);
            let (stem, ext) = match name.rsplit_once('.') {
                Some(x) => x,
                None => continue,
            };
            if matches!(ext, "tmp" | "deleted" | "cleaned" | "swap") {
                io.remove_file(&path)?;
                continue;
            }
            let Ok(offset) = stem.parse::<i64>() else {
                continue;
            };
            if ext == "snapshot" {
                snapshots.push(offset);
            }
        }
        // Segments may sit in several directories (tiers); interrupted migrations and deletions
        // are resolved first, so that each segment is in exactly one of them.
        let segment_dirs = match &placer {
            Some(p) => p.segment_dirs(),
            None => vec![dir.to_path_buf()],
        };
        let located = crate::tier::migration::recover_segments(&*io, &segment_dirs)?;
        let bases: Vec<i64> = located.segments.keys().copied().collect();
        let home = |base: &i64| {
            located
                .segments
                .get(base)
                .cloned()
                .unwrap_or_else(|| dir.to_path_buf())
        };
        let log_config = config.clone();
        let mode = |base: &i64| file_mode(&placer, &log_config, &home(base));
        let mut log = PartitionLog {
            topic: topic.to_string(),
            partition,
            dir: dir.to_path_buf(),
            io: io.clone(),
            config,
            segments: BTreeMap::new(),
            log_start_offset: 0,
            recovery_point,
            unflushed_messages: 0,
            last_flush_ms: crate::log::segment::now_ms(),
            producers: ProducerStates::default(),
            recovery: RecoveryReport::default(),
            placer: placer.clone(),
            failures: Arc::new(LogDirFailures::default()),
            stopped: None,
        };
        let lim = limits(&log.config);
        let mut truncated_at: Option<i64> = None;
        // Segments must continue one another exactly. A gap means a segment lost its tail (or
        // all of it) in a crash while a later one survived: nothing after the gap is kept.
        let mut expected: Option<i64> = None;
        for (i, base) in bases.iter().enumerate() {
            let next_base = bases.get(i + 1).copied().unwrap_or(i64::MAX);
            if next_base <= log_start_offset && truncated_at.is_none() {
                // Wholly below the log start: deleted before the crash, though the deletion
                // may not have reached the disk.
                Segment::open(&*io, &home(base), *base, false, lim, &mode(base))?.delete(&*io)?;
                log.recovery.segments_dropped += 1;
                continue;
            }
            if truncated_at.is_none() && expected.is_some_and(|e| e != *base) {
                truncated_at = expected;
            }
            if truncated_at.is_some() {
                Segment::open(&*io, &home(base), *base, false, lim, &mode(base))?.delete(&*io)?;
                log.recovery.segments_dropped += 1;
                continue;
            }
            let last = i + 1 == bases.len();
            let needs_recovery = !clean && next_base > recovery_point;
            let active = last || needs_recovery;
            let mut segment = Segment::open(&*io, &home(base), *base, active, lim, &mode(base))?;
            if needs_recovery {
                let cut = segment.recover()?;
                log.recovery.segments_recovered += 1;
                log.recovery.bytes_truncated += cut;
                if !last {
                    segment.seal()?;
                }
            }
            expected = Some(segment.next_offset());
            log.segments.insert(*base, segment);
        }
        if log.segments.is_empty() {
            let start = log_start_offset.max(0);
            let segment = log.create_segment(start)?;
            log.segments.insert(start, segment);
        } else {
            if truncated_at.is_some() {
                // The last kept segment becomes the active one again.
                let (&base, _) = log.segments.iter().next_back().expect("not empty");
                drop(log.segments.remove(&base));
                log.segments.insert(
                    base,
                    Segment::open(&*io, &home(&base), base, true, lim, &mode(&base))?,
                );
            }
            if let Some(p) = &placer {
                for (dir, bytes) in log.space_taken() {
                    p.charge(&dir, bytes);
                }
            }
        }
        if log_start_offset > log.log_end_offset() {
            // Records were deleted up to an offset the recovered log does not reach (the tail was
            // never synced): as Kafka does, start over, empty, at the log start offset.
            tracing::warn!(
                topic,
                partition,
                log_start_offset,
                log_end_offset = log.log_end_offset(),
                "log ends before its start offset; starting it over empty"
            );
            for (_, segment) in std::mem::take(&mut log.segments) {
                if let Some(p) = &placer {
                    p.release(segment.dir(), segment.size());
                }
                segment.delete(&*io)?;
            }
            let segment = log.create_segment(log_start_offset)?;
            log.segments.insert(log_start_offset, segment);
        }
        let first_base = *log.segments.keys().next().expect("not empty");
        log.log_start_offset = log_start_offset.max(first_base).min(log.log_end_offset());
        log.recovery_point = log
            .recovery_point
            .clamp(log.log_start_offset, log.log_end_offset());
        if !clean {
            log.recovery_point = log.log_end_offset();
        }
        log.load_producer_state(&snapshots)?;
        Ok(log)
    }

    fn load_producer_state(&mut self, snapshots: &[i64]) -> io::Result<()> {
        let end = self.log_end_offset();
        let mut from = self.log_start_offset;
        let mut sorted = snapshots.to_vec();
        sorted.sort_unstable();
        for offset in sorted.iter().rev() {
            let path = offset_file(&self.dir, *offset, "snapshot");
            if *offset > end {
                self.io.remove_file(&path)?;
                continue;
            }
            if let Some(state) = self
                .io
                .read_all(&path)
                .ok()
                .and_then(|b| ProducerStates::decode(&b))
            {
                self.producers = state;
                from = (*offset).max(self.log_start_offset);
                break;
            }
        }
        // Replay the headers of batches after the snapshot.
        let mut headers = Vec::new();
        for segment in self.segments.values() {
            if segment.next_offset() <= from {
                continue;
            }
            let mut position = match segment.find_batch(from)? {
                Some((p, _)) => p,
                None => continue,
            };
            while position < segment.size() {
                let bytes = segment.read_bytes(position, batch::HEADER_SIZE)?;
                let Ok(h) = BatchHeader::parse(&bytes) else {
                    break;
                };
                if h.has_producer_id() && h.last_offset() >= from {
                    headers.push(h);
                }
                position += h.total_size() as u64;
            }
        }
        for h in headers {
            self.producers.update(&h, h.base_offset, h.last_offset());
        }
        Ok(())
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
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset()
    }
    pub fn high_watermark(&self) -> i64 {
        self.log_end_offset()
    }
    pub fn recovery_point(&self) -> i64 {
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

    /// Validates and appends the batches of one produce request with a single write.
    pub fn append(&mut self, records: &[u8], now_ms: i64) -> Result<AppendInfo, AppendError> {
        if let Some(dir) = self.offline() {
            return Err(AppendError::Offline { dir });
        }
        let batches = batch::split_produced(records)?;
        for (_, h) in &batches {
            if h.total_size() > self.config.max_message_bytes {
                return Err(AppendError::MessageTooLarge {
                    size: h.total_size(),
                    max: self.config.max_message_bytes,
                });
            }
        }
        // Sequence checks for idempotent producers, in order, against the state as it will be.
        let mut staged: Option<ProducerStates> = None;
        for (_, h) in &batches {
            if !h.has_producer_id() || h.base_sequence < 0 {
                continue;
            }
            let states = staged.as_ref().unwrap_or(&self.producers);
            match states.check(h) {
                SequenceCheck::New => {
                    if batches.len() > 1 {
                        staged
                            .get_or_insert_with(|| self.producers.clone())
                            .update(h, 0, 0);
                    }
                }
                SequenceCheck::Duplicate {
                    first_offset,
                    last_offset,
                } if batches.len() == 1 => {
                    return Ok(AppendInfo {
                        base_offset: first_offset,
                        last_offset,
                        log_append_time: -1,
                        log_start_offset: self.log_start_offset,
                        duplicate: true,
                        needs_flush: false,
                    });
                }
                SequenceCheck::Duplicate { .. } => {
                    return Err(AppendError::OutOfOrderSequence {
                        producer_id: h.producer_id,
                        expected: -1,
                        got: h.base_sequence,
                    })
                }
                SequenceCheck::OutOfOrder { expected, got } => {
                    return Err(AppendError::OutOfOrderSequence {
                        producer_id: h.producer_id,
                        expected,
                        got,
                    })
                }
                SequenceCheck::FencedEpoch { current, got } => {
                    return Err(AppendError::InvalidProducerEpoch {
                        producer_id: h.producer_id,
                        current,
                        got,
                    })
                }
            }
        }

        let total: u64 = batches.iter().map(|(_, h)| h.total_size() as u64).sum();
        if total > self.max_append_bytes() {
            return Err(AppendError::RecordListTooLarge {
                size: total,
                max: self.max_append_bytes(),
            });
        }
        let messages: i64 = batches
            .iter()
            .map(|(_, h)| h.last_offset_delta as i64 + 1)
            .sum();
        let max_timestamp = batches
            .iter()
            .map(|(_, h)| h.max_timestamp)
            .max()
            .unwrap_or(-1);
        // A roll stops the directory it failed in itself (a full device refuses only).
        self.maybe_roll(total, messages, max_timestamp, now_ms)?;

        let log_append_time = self.config.timestamp_type == TimestampType::LogAppendTime;
        let mut next = self.log_end_offset();
        let base_offset = next;
        let mut prefixes: Vec<[u8; 16]> = Vec::with_capacity(batches.len());
        let mut stamped: Vec<Vec<u8>> = Vec::new();
        let mut appended = Vec::with_capacity(batches.len());
        for (at, h) in &batches {
            let bytes = &records[*at..*at + h.total_size()];
            let mut prefix = [0u8; 16];
            prefix.copy_from_slice(&bytes[..16]);
            prefix[0..8].copy_from_slice(&next.to_be_bytes());
            prefix[12..16].copy_from_slice(&LEADER_EPOCH.to_be_bytes());
            prefixes.push(prefix);
            if log_append_time {
                let mut copy = bytes.to_vec();
                batch::stamp_log_append_time(&mut copy, now_ms);
                stamped.push(copy);
            }
            let max_timestamp = if log_append_time {
                now_ms
            } else {
                h.max_timestamp
            };
            appended.push(AppendedBatch {
                base_offset: next,
                last_offset: next + h.last_offset_delta as i64,
                max_timestamp,
                size: h.total_size() as u32,
            });
            next += h.last_offset_delta as i64 + 1;
        }
        let mut bufs: Vec<&[u8]> = Vec::with_capacity(batches.len() * 2);
        for (i, (at, h)) in batches.iter().enumerate() {
            bufs.push(&prefixes[i]);
            if log_append_time {
                bufs.push(&stamped[i][16..]);
            } else {
                bufs.push(&records[*at + 16..*at + h.total_size()]);
            }
        }
        let active = self.active_mut();
        let size_before = active.size();
        if let Err(e) = active.append(&bufs, &appended) {
            let dir = self.active().dir().to_path_buf();
            if is_full(&e) {
                // Nothing of a write that met a full device may be served or recovered as
                // data: cut it off, and the log goes on when space returns. If even the cut
                // fails, the file is in an unknown state: stop.
                let cut = self.active_mut().truncate_file_to(size_before);
                self.fail_stop(&dir, cut)?;
            } else {
                self.failures.fail(&dir, &e);
            }
            return Err(AppendError::Storage(e));
        }
        if let Some(p) = &self.placer {
            p.wrote(self.active().dir(), total);
        }
        for (i, (_, h)) in batches.iter().enumerate() {
            if h.has_producer_id() {
                self.producers
                    .update(h, appended[i].base_offset, appended[i].last_offset);
            }
        }
        self.unflushed_messages += messages;
        let needs_flush = self.unflushed_messages >= self.config.flush_messages
            || now_ms - self.last_flush_ms >= self.config.flush_ms;
        Ok(AppendInfo {
            base_offset,
            last_offset: next - 1,
            log_append_time: if log_append_time { now_ms } else { -1 },
            log_start_offset: self.log_start_offset,
            duplicate: false,
            needs_flush,
        })
    }

    fn maybe_roll(
        &mut self,
        incoming: u64,
        messages: i64,
        incoming_max_timestamp: i64,
        now_ms: i64,
    ) -> io::Result<()> {
        let active = self.active();
        if active.is_empty() {
            return Ok(());
        }
        let too_big = active.size() + incoming > self.config.segment_bytes
            || active
                .capacity()
                .is_some_and(|c| active.size() + incoming > c);
        // As Kafka: `segment.ms` counts from the segment's first timestamp to the incoming
        // batch's, or, for a segment without timestamps, from its creation to now.
        let waited = match active.first_timestamp() {
            Some(first) if self.config.timestamp_type == TimestampType::CreateTime => {
                incoming_max_timestamp - first
            }
            Some(first) => now_ms - first,
            None => now_ms - active.created_ms(),
        };
        let too_old = waited > self.config.segment_ms;
        let offsets_overflow =
            active.next_offset() + messages - active.base_offset() > i32::MAX as i64;
        if too_big || too_old || offsets_overflow || active.index_is_full() {
            self.roll()?;
        }
        Ok(())
    }

    /// Starts a new active segment at the log end offset.
    ///
    /// The new segment is made first and the old one sealed after, so that a roll refused for a
    /// full device changes nothing: the old segment stays active and appends resume on it when
    /// space returns.
    pub fn roll(&mut self) -> io::Result<()> {
        self.check_online()?;
        if self.active().is_empty() {
            return Ok(());
        }
        let next = self.log_end_offset();
        let reserved = self.config.segment_bytes;
        let segment = self.create_segment(next)?;
        if let Err(e) = self.write_producer_snapshot(next) {
            let dir = segment.dir().to_path_buf();
            let removed = self.discard_segment(segment);
            self.fail_stop(&dir, removed)?;
            return self.fail_stop(&self.dir, Err(e));
        }
        let sealed = self.active_mut().seal();
        let dir = self.active().dir().to_path_buf();
        self.fail_stop(&dir, sealed)?;
        if let Some(p) = &self.placer {
            let active = self.active();
            p.release(active.dir(), reserved.saturating_sub(active.size()));
        }
        self.segments.insert(next, segment);
        Ok(())
    }

    /// Removes a segment that never joined the log, with its reservation.
    fn discard_segment(&self, segment: Segment) -> io::Result<()> {
        if let Some(p) = &self.placer {
            p.release(segment.dir(), self.config.segment_bytes);
        }
        segment.delete(&*self.io)
    }

    /// A new segment at `base_offset`, in the placer's choice of directory or the log's own.
    fn create_segment(&self, base_offset: i64) -> io::Result<Segment> {
        let dir = match &self.placer {
            Some(p) => {
                let dir = p.place(self.config.segment_bytes)?;
                let made = self.io.create_dir_all(&dir);
                if made.is_err() {
                    p.release(&dir, self.config.segment_bytes);
                }
                self.fail_stop(&dir, made)?;
                dir
            }
            None => self.dir.clone(),
        };
        let mode = file_mode(&self.placer, &self.config, &dir);
        let created = Segment::create(&*self.io, &dir, base_offset, limits(&self.config), &mode);
        if let Err(e) = &created {
            if let Some(p) = &self.placer {
                p.release(&dir, self.config.segment_bytes);
            }
            // What a failed creation left behind must not be taken for a segment later.
            if is_full(e) {
                let log_path = offset_file(&dir, base_offset, "log");
                let leftovers = match &mode.pool {
                    // A pool file taken for the segment goes back to the pool, not away.
                    Some(pool) if self.io.exists(&log_path) => pool
                        .give_back(&log_path)
                        .and_then(|()| self.io.sync_dir(&dir)),
                    _ => Ok(()),
                }
                .and_then(|()| {
                    crate::tier::migration::delete_segment_files(&*self.io, &dir, base_offset)
                });
                self.fail_stop(&dir, leftovers)?;
            }
        }
        self.fail_stop(&dir, created)
    }

    /// The largest batch set one append may carry: it must fit in one segment, as in Kafka.
    fn max_append_bytes(&self) -> u64 {
        let pool = self.placer.as_ref().and_then(|p| p.max_segment_bytes());
        pool.map_or(self.config.segment_bytes, |b| {
            b.min(self.config.segment_bytes)
        })
    }

    fn write_producer_snapshot(&self, offset: i64) -> io::Result<()> {
        let path = offset_file(&self.dir, offset, "snapshot");
        self.io.write_atomic(&path, &self.producers.encode())?;
        // Keep the two newest snapshots.
        let mut old: Vec<i64> = self
            .io
            .list_dir(&self.dir)?
            .iter()
            .filter_map(|n| n.strip_suffix(".snapshot").and_then(|s| s.parse().ok()))
            .collect();
        old.sort_unstable();
        if old.len() > 2 {
            for o in &old[..old.len() - 2] {
                let _ = self.io.remove_file(&offset_file(&self.dir, *o, "snapshot"));
            }
        }
        Ok(())
    }

    /// The bytes to send for a fetch at `offset`.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: u64,
        min_one_batch: bool,
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
        let mut slice = None;
        if offset < end {
            let first = self
                .segments
                .range(..=offset)
                .next_back()
                .map(|(b, _)| *b)
                .unwrap_or(offset);
            for (_, segment) in self.segments.range(first..) {
                if let Some(s) = segment.read(offset, max_bytes, u64::MAX, min_one_batch)? {
                    if let Some(p) = &self.placer {
                        p.read(segment.dir(), s.len);
                    }
                    slice = Some(s);
                    break;
                }
            }
        }
        Ok(ReadInfo {
            slice,
            high_watermark: end,
            log_start_offset: self.log_start_offset,
        })
    }

    /// Collects what a flush must sync; the caller runs it outside the lock and then calls
    /// [`PartitionLog::complete_flush`].
    pub fn begin_flush(&mut self) -> io::Result<FlushJob> {
        self.check_online()?;
        let target = self.log_end_offset();
        let recovery_point = self.recovery_point;
        let mut files = Vec::new();
        let from = self
            .segments
            .range(..=recovery_point)
            .next_back()
            .map(|(b, _)| *b)
            .unwrap_or(0);
        let mut failed = None;
        for (_, segment) in self.segments.range_mut(from..) {
            if let Err(e) = segment.persist_indexes() {
                failed = Some((segment.dir().to_path_buf(), e));
                break;
            }
            let dir = segment.dir().to_path_buf();
            files.extend(segment.files().into_iter().map(|f| (dir.clone(), f)));
        }
        if let Some((dir, e)) = failed {
            self.failures.fail(&dir, &e);
            return Err(e);
        }
        self.unflushed_messages = 0;
        self.last_flush_ms = crate::log::segment::now_ms();
        Ok(FlushJob {
            files,
            target_offset: target,
            failures: self.failures.clone(),
        })
    }

    /// Moves the recovery point after a flush's syncs succeeded. Refused when the log went
    /// offline meanwhile: another sync of the same files may have failed, and after a failed
    /// sync a later successful one proves nothing about the pages the failed one covered.
    pub fn complete_flush(&mut self, target_offset: i64) -> io::Result<()> {
        self.check_online()?;
        self.recovery_point = self
            .recovery_point
            .max(target_offset)
            .min(self.log_end_offset());
        Ok(())
    }

    /// Flushes under the lock (background flusher, shutdown, tests).
    pub fn flush(&mut self) -> io::Result<()> {
        let job = self.begin_flush()?;
        job.run()?;
        self.complete_flush(job.target_offset)
    }

    pub fn unflushed_messages(&self) -> i64 {
        self.unflushed_messages
    }
    pub fn ms_since_flush(&self, now_ms: i64) -> i64 {
        now_ms - self.last_flush_ms
    }

    /// Moves the log start offset to `offset` (DeleteRecords) and deletes segments below it.
    pub fn delete_records_before(&mut self, offset: i64) -> io::Result<i64> {
        self.check_online()?;
        let dir = self.dir.clone();
        let result = self.delete_records_before_online(offset);
        self.fail_stop(&dir, result)
    }

    fn delete_records_before_online(&mut self, offset: i64) -> io::Result<i64> {
        let end = self.log_end_offset();
        let offset = offset.clamp(self.log_start_offset, end);
        self.log_start_offset = self.log_start_offset.max(offset);
        // Sealed segments go first: on full tiers that frees the room the roll below needs.
        self.delete_segments_below(offset)?;
        if offset == end && !self.active().is_empty() {
            self.roll()?;
            self.delete_segments_below(offset)?;
        }
        Ok(self.log_start_offset)
    }

    fn delete_segments_below(&mut self, offset: i64) -> io::Result<usize> {
        let mut deleted = 0;
        while self.segments.len() > 1 {
            let (&base, first) = self.segments.iter().next().expect("not empty");
            if first.next_offset() > offset {
                break;
            }
            let segment = self.segments.remove(&base).expect("present");
            if let Some(p) = &self.placer {
                p.release(segment.dir(), segment.size());
            }
            segment.delete(&*self.io)?;
            deleted += 1;
        }
        let first_base = *self.segments.keys().next().expect("not empty");
        self.log_start_offset = self.log_start_offset.max(first_base);
        self.producers.truncate_head(self.log_start_offset);
        if self.recovery_point < self.log_start_offset {
            self.recovery_point = self.log_start_offset;
        }
        Ok(deleted)
    }

    /// Applies `retention.ms` and `retention.bytes`; returns the number of segments deleted.
    pub fn apply_retention(&mut self, now_ms: i64) -> io::Result<usize> {
        self.check_online()?;
        let dir = self.dir.clone();
        let result = self.apply_retention_online(now_ms);
        self.fail_stop(&dir, result)
    }

    fn apply_retention_online(&mut self, now_ms: i64) -> io::Result<usize> {
        let mut delete_below: Option<i64> = None;
        if self.config.retention_ms >= 0 {
            for segment in self.segments.values() {
                if now_ms - segment.retention_timestamp() > self.config.retention_ms
                    && !segment.is_empty()
                {
                    delete_below = Some(segment.next_offset());
                } else {
                    break;
                }
            }
        }
        if self.config.retention_bytes >= 0 {
            let mut excess = self.size_bytes() as i64 - self.config.retention_bytes;
            for segment in self.segments.values().take(self.segments.len() - 1) {
                if excess - segment.size() as i64 >= 0 {
                    excess -= segment.size() as i64;
                    delete_below = Some(delete_below.unwrap_or(0).max(segment.next_offset()));
                } else {
                    break;
                }
            }
        }
        let Some(offset) = delete_below else {
            return Ok(0);
        };
        self.log_start_offset = self.log_start_offset.max(offset.min(self.log_end_offset()));
        let mut deleted = self.delete_segments_below(offset)?;
        if offset >= self.log_end_offset() && !self.active().is_empty() {
            // The active segment itself expired: roll so it can go, as Kafka does (after the
            // sealed ones went, so that a full tier has room for the new segment).
            self.roll()?;
            deleted += self.delete_segments_below(offset)?;
        }
        Ok(deleted)
    }

    /// The first record with timestamp >= `timestamp`: (offset, timestamp).
    pub fn offset_for_timestamp(&self, timestamp: i64) -> io::Result<Option<(i64, i64)>> {
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
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        let mut best: Option<(i64, i64)> = None;
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
    pub fn sealed_segments(&self) -> Vec<(i64, PathBuf, u64, i64)> {
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
        base_offset: i64,
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
        let moved = Segment::open(
            &*self.io,
            to_dir,
            base_offset,
            false,
            limits(&self.config),
            &mode,
        );
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
