//! A log segment: `<base offset>.log` with its `.index` and `.timeindex`.
//!
//! The `.log` file is a plain concatenation of v2 record batches exactly as producers sent them,
//! with the broker-assigned base offset patched in. The segment's size is the end of its last
//! complete batch; nothing past it is ever served. After an unclean shutdown, [`Segment::recover`]
//! scans every batch (length, magic, CRC), truncates the file at the first one that does not check
//! out, and rebuilds both indexes from the surviving batches.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::batch::{self, BatchHeader, HEADER_SIZE, LOG_OVERHEAD};
use crate::io::{offset_file, Io, IoFile, MAPPED_GROW_STEP};
use crate::log::index::{OffsetEntry, OffsetIndex, TimeEntry, TimeIndex};
use crate::log::txn_index::{AbortedSearch, AbortedTxn, TransactionIndex};
use crate::units::{FilePosition, LeaderEpoch, Offset};

/// The leader epoch of a partition that has had one leader since it was created (every log
/// written before leader epochs were kept).
pub const LEADER_EPOCH: LeaderEpoch = LeaderEpoch::INITIAL;

/// What the segment needs to know about one appended batch.
#[derive(Debug, Clone, Copy)]
pub struct AppendedBatch {
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    pub size: u32,
}

/// Where a read of a segment starts and how many bytes it covers.
#[derive(Debug, Clone)]
pub struct SegmentSlice {
    pub file: Arc<dyn IoFile>,
    pub position: FilePosition,
    pub len: u64,
}

/// Where pre-allocated segment files come from and go back to (the `pmem` channel's pool).
pub trait SegmentFileSource: Send + Sync + std::fmt::Debug {
    /// Puts a ready, zeroed file of [`Self::file_bytes`] at `dest` (synced in both directories).
    fn take(&self, dest: &Path) -> io::Result<()>;
    /// Takes back the file at `path` (a deleted segment's `.log`).
    fn give_back(&self, path: &Path) -> io::Result<()>;
    /// The size of every file.
    fn file_bytes(&self) -> u64;
}

/// How a segment's `.log` file is held.
#[derive(Debug, Clone, Default)]
pub struct FileMode {
    /// The active segment is written through a shared mapping (a PMEM tier): stores, msync.
    pub mapped: bool,
    /// The `.log` is allocated to this size when created (`preallocate`, mapped files, pool
    /// files): its length is not its data's, which ends at the first bytes that are not a batch.
    pub preallocate: Option<u64>,
    /// The `.log` comes from this pool and goes back to it: its length never changes, and bytes
    /// past the data are zeroed rather than cut off.
    pub pool: Option<Arc<dyn SegmentFileSource>>,
}

impl FileMode {
    /// Plain files, as Kafka: the file is exactly the data.
    pub fn plain() -> FileMode {
        FileMode::default()
    }
}

/// Gives every segment object its own id, so that a segment replaced at the same base offset
/// (by the cleaner, a migration) is told apart from the one a plan was made from.
static NEXT_SEGMENT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

#[derive(Debug)]
pub struct Segment {
    id: u64,
    base_offset: i64,
    log_path: PathBuf,
    log: Arc<dyn IoFile>,
    mode: FileMode,
    index: OffsetIndex,
    time_index: TimeIndex,
    size: u64,
    next_offset: i64,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    /// Timestamp of the first batch, which `segment.ms` counts from (as Kafka does).
    rolling_timestamp: Option<i64>,
    created_ms: i64,
    bytes_since_last_index_entry: u64,
    index_interval_bytes: u64,
    max_leader_epoch: i32,
    /// The aborted transactions whose markers are in this segment (`.txnindex`), created with
    /// the first one.
    txn_index: Option<TransactionIndex>,
    /// Where the `.txnindex` is (or would be created).
    txn_path: PathBuf,
}

/// Sizing of a segment's indexes.
#[derive(Debug, Clone, Copy)]
pub struct SegmentLimits {
    pub index_interval_bytes: u64,
    pub max_index_bytes: usize,
    /// The newest leader epoch the partition knows: recovery takes no batch claiming a later
    /// one (an epoch is recorded before any batch of it is written).
    pub max_leader_epoch: LeaderEpoch,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Segment {
    fn paths(dir: &Path, base_offset: i64, suffix: &str) -> (PathBuf, PathBuf, PathBuf) {
        (
            offset_file(dir, base_offset, &format!("log{suffix}")),
            offset_file(dir, base_offset, &format!("index{suffix}")),
            offset_file(dir, base_offset, &format!("timeindex{suffix}")),
        )
    }

    /// Creates a new, empty, active segment.
    pub fn create(
        io: &dyn Io,
        dir: &Path,
        base_offset: Offset,
        limits: SegmentLimits,
        mode: &FileMode,
    ) -> io::Result<Segment> {
        Self::create_suffixed(io, dir, base_offset, limits, mode, "")
    }

    /// As [`Segment::create`], with `suffix` after each file's name (the cleaner writes
    /// `<base>.log.cleaned` and its indexes, renamed into place when the cleaning commits).
    pub fn create_suffixed(
        io: &dyn Io,
        dir: &Path,
        base_offset: Offset,
        limits: SegmentLimits,
        mode: &FileMode,
        suffix: &str,
    ) -> io::Result<Segment> {
        let base_offset = base_offset.get();
        let (log_path, index_path, time_path) = Self::paths(dir, base_offset, suffix);
        if let Some(pool) = &mode.pool {
            pool.take(&log_path)?;
        } else {
            let log = io.open(&log_path, true)?;
            log.set_len(0)?;
            if let Some(bytes) = mode.preallocate {
                // A mapped file grows a step at a time as it is written (io/mapped.rs): on a
                // memory tier every allocated byte is memory.
                let now = if mode.mapped {
                    bytes.min(MAPPED_GROW_STEP)
                } else {
                    bytes
                };
                log.allocate(now)?;
            }
        }
        let log = if mode.mapped {
            io.open_mapped(&log_path, mode.preallocate.unwrap_or(0))?
        } else {
            io.open(&log_path, false)?
        };
        let mut index = OffsetIndex::open(io, &index_path, true, limits.max_index_bytes)?;
        index.reset()?;
        let mut time_index = TimeIndex::open(io, &time_path, true, limits.max_index_bytes)?;
        time_index.reset()?;
        // A leftover of an earlier segment at this offset is not this one's.
        let txn_path = offset_file(dir, base_offset, &format!("txnindex{suffix}"));
        io.remove_if_present(&txn_path)?;
        // The new files' directory entries must be durable before any of their bytes count as
        // flushed: after power loss, a synced file without its entry is gone.
        io.sync_dir(dir)?;
        let mut segment =
            Segment::assemble(base_offset, log_path, log, mode, index, time_index, limits);
        segment.txn_path = txn_path;
        Ok(segment)
    }

    /// A segment with nothing known about its contents yet.
    fn assemble(
        base_offset: i64,
        log_path: PathBuf,
        log: Arc<dyn IoFile>,
        mode: &FileMode,
        index: OffsetIndex,
        time_index: TimeIndex,
        limits: SegmentLimits,
    ) -> Segment {
        let txn_path = log_path.with_extension("txnindex");
        Segment {
            id: NEXT_SEGMENT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            base_offset,
            log_path,
            log,
            mode: mode.clone(),
            index,
            time_index,
            size: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            rolling_timestamp: None,
            created_ms: now_ms(),
            bytes_since_last_index_entry: 0,
            index_interval_bytes: limits.index_interval_bytes,
            max_leader_epoch: limits.max_leader_epoch.get(),
            txn_index: None,
            txn_path,
        }
    }

    /// Opens an existing segment, trusting its indexes (a clean shutdown, or a segment below the
    /// recovery point). Its end is found from the last index entry by walking batch headers.
    pub fn open(
        io: &dyn Io,
        dir: &Path,
        base_offset: Offset,
        active: bool,
        limits: SegmentLimits,
        mode: &FileMode,
    ) -> io::Result<Segment> {
        let base_offset = base_offset.get();
        let (log_path, index_path, time_path) = Self::paths(dir, base_offset, "");
        // Only an active segment is written, so only it is mapped, over its full size (a file
        // cut to its data when it rolled may be active again after a recovery: it grows again
        // as it is written).
        let log = if active && mode.mapped {
            io.open_mapped(&log_path, mode.preallocate.unwrap_or(0))?
        } else {
            io.open(&log_path, false)?
        };
        let index = OffsetIndex::open(io, &index_path, active, limits.max_index_bytes)?;
        let time_index = TimeIndex::open(io, &time_path, active, limits.max_index_bytes)?;
        let file_len = log.len()?;
        let mut segment =
            Segment::assemble(base_offset, log_path, log, mode, index, time_index, limits);
        segment.size = file_len;
        let txn_path = offset_file(dir, base_offset, "txnindex");
        if io.exists(&txn_path) {
            segment.txn_index = Some(TransactionIndex::open(io, &txn_path)?);
        }
        let start = segment
            .index
            .last()?
            .map(|e| e.position as u64)
            .unwrap_or(0);
        if let Some(entry) = segment.time_index.last()? {
            segment.max_timestamp = entry.timestamp;
            segment.offset_of_max_timestamp = base_offset + entry.relative_offset as i64;
        }
        if start > file_len {
            // The index points past the log: it cannot be trusted, so rebuild it from the log.
            tracing::warn!(segment = %segment.log_path.display(), "index points past the log; rebuilding");
            segment.rebuild()?;
            if !active {
                segment.seal()?;
            }
            return Ok(segment);
        }
        let mut position = start;
        // The index entry names the batch at `start` by its last offset only, so the walk
        // accepts any base offset from the segment's own on; what it accepts must still lie in
        // the segment's 32-bit relative range, which keeps every offset sum below i64::MAX.
        while position < file_len {
            match segment.read_header(position)? {
                Some(h)
                    if position + h.total_size() as u64 <= file_len
                        && h.magic == 2
                        && segment.holds(&h, segment.base_offset) =>
                {
                    segment.next_offset = h.last_offset() + 1;
                    if h.max_timestamp > segment.max_timestamp {
                        segment.max_timestamp = h.max_timestamp;
                        segment.offset_of_max_timestamp = h.last_offset();
                    }
                    position += h.total_size() as u64;
                }
                _ => break,
            }
        }
        // Bytes past the last whole batch (a torn write) are never served, and the next append
        // overwrites them; recovery, when it runs, cuts them off.
        segment.size = position;
        segment.bytes_since_last_index_entry = position - start;
        if let Some(first) = segment.read_header(0)? {
            segment.rolling_timestamp = Some(first.max_timestamp);
        }
        if !active && segment.trims_on_seal() && file_len > position {
            // A sealed segment of a pre-allocated file whose trim did not reach the disk.
            segment.log.set_len(position)?;
        }
        Ok(segment)
    }

    /// Scans every batch from the start, truncates at the first invalid one and rebuilds the
    /// indexes. Returns the number of bytes truncated. A batch must continue the one before it
    /// exactly: recovery scans only segments above the recovery point, which the cleaner never
    /// writes, and the base offset lies outside the CRC.
    pub fn recover(&mut self) -> io::Result<u64> {
        self.scan(true)
    }

    /// As [`Segment::recover`] for a segment whose batches were valid (a truncation, an index
    /// to rebuild): offsets need only go up, since a cleaned segment has gaps between batches.
    pub fn rebuild(&mut self) -> io::Result<u64> {
        self.scan(false)
    }

    fn scan(&mut self, continuous: bool) -> io::Result<u64> {
        let file_len = self.log.len()?;
        self.index.reset()?;
        self.time_index.reset()?;
        self.next_offset = self.base_offset;
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = self.base_offset;
        self.rolling_timestamp = None;
        self.bytes_since_last_index_entry = 0;
        let mut position = 0u64;
        let mut buf = Vec::new();
        // Every batch this log wrote carries a leader epoch of 0 or more (the CRC does not
        // cover it: a damaged one may read negative).
        let mut epoch = LEADER_EPOCH.get();
        while position + LOG_OVERHEAD as u64 <= file_len {
            let mut prefix = [0u8; LOG_OVERHEAD];
            self.log.read_exact_at(&mut prefix, position)?;
            let length = i32::from_be_bytes(prefix[8..12].try_into().expect("4 bytes"));
            if length < (HEADER_SIZE - LOG_OVERHEAD) as i32
                || position + LOG_OVERHEAD as u64 + length as u64 > file_len
            {
                break;
            }
            buf.resize(LOG_OVERHEAD + length as usize, 0);
            self.log.read_exact_at(&mut buf, position)?;
            // The CRC does not cover the base offset and the leader epoch, so check them against
            // what the broker writes: offsets continue the segment's (exactly, unless the
            // cleaner may have removed batches) within its 32-bit relative range, and epochs
            // never go down nor past the newest one recorded.
            let header = match batch::check_batch(&buf) {
                Ok(h)
                    if (!continuous || h.base_offset == self.next_offset)
                        && self.holds(&h, self.next_offset)
                        && (epoch..=self.max_leader_epoch).contains(&h.partition_leader_epoch) =>
                {
                    h
                }
                _ => break,
            };
            epoch = header.partition_leader_epoch;
            let appended = AppendedBatch {
                base_offset: header.base_offset,
                last_offset: header.last_offset(),
                max_timestamp: header.max_timestamp,
                size: header.total_size() as u32,
            };
            self.index_batch(position, &appended)?;
            position += header.total_size() as u64;
        }
        let truncated = self.cut_log(position, file_len)?;
        self.size = position;
        self.index.persist()?;
        self.time_index.persist()?;
        // Aborts whose markers were cut off are no longer in the log.
        if let Some(t) = &mut self.txn_index {
            t.truncate_to(Offset(self.next_offset))?;
        }
        Ok(truncated)
    }

    /// Makes `position` the end of the log's data; returns how many bytes were dropped. A plain
    /// file is cut there; a pre-allocated one keeps its length and reads as zeros from there, so
    /// that nothing after the data can ever be taken for a batch.
    fn cut_log(&self, position: u64, file_len: u64) -> io::Result<u64> {
        if position >= file_len {
            return Ok(0);
        }
        if self.mode.preallocate.is_some() {
            // What is dropped is a torn batch at most: report the length it claims.
            let mut prefix = [0u8; LOG_OVERHEAD];
            let n = self.log.read_at(&mut prefix, position)?;
            let claimed = if n == LOG_OVERHEAD {
                let length = i32::from_be_bytes(prefix[8..12].try_into().expect("4 bytes"));
                (LOG_OVERHEAD as u64 + length.max(0) as u64).min(file_len - position)
            } else {
                0
            };
            let dropped = if prefix[..n].iter().any(|b| *b != 0) {
                claimed.max(n as u64)
            } else {
                0
            };
            // Everything past the data was written by this segment (the file was zeroed when it
            // was allocated), so zeros from here restore that state.
            self.log.zero_range(position, file_len)?;
            Ok(dropped)
        } else {
            self.log.set_len(position)?;
            Ok(file_len - position)
        }
    }

    /// Sets the newest leader epoch recovery accepts (the partition learned a new one).
    pub fn set_max_leader_epoch(&mut self, epoch: LeaderEpoch) {
        self.max_leader_epoch = epoch.get();
    }

    /// Whether a batch header read from the file can belong to this segment after offset
    /// `from`: its offsets start at or after `from` and end within the segment's 32-bit relative
    /// range. Headers come from disk and may claim anything (a base offset near i64::MAX, a
    /// negative delta), so the arithmetic is checked rather than trusted.
    fn holds(&self, h: &BatchHeader, from: i64) -> bool {
        if h.last_offset_delta < 0 || h.base_offset < from {
            return false;
        }
        h.base_offset
            .checked_add(h.last_offset_delta as i64)
            .and_then(|last| last.checked_sub(self.base_offset))
            .is_some_and(|relative| (0..=i32::MAX as i64).contains(&relative))
    }

    /// A pre-allocated file that is not a pool's is cut to its data when sealed.
    fn trims_on_seal(&self) -> bool {
        self.mode.preallocate.is_some() && self.mode.pool.is_none()
    }

    /// The most bytes this segment's file can hold, when that is bounded (pool files, mappings).
    pub fn capacity(&self) -> Option<u64> {
        match (&self.mode.pool, self.log.write_limit()) {
            (Some(pool), Some(limit)) => Some(pool.file_bytes().min(limit)),
            (Some(pool), None) => Some(pool.file_bytes()),
            (None, limit) => limit,
        }
    }

    fn read_header(&self, position: u64) -> io::Result<Option<BatchHeader>> {
        let mut buf = [0u8; HEADER_SIZE];
        let mut filled = 0;
        while filled < HEADER_SIZE {
            let n = self
                .log
                .read_at(&mut buf[filled..], position + filled as u64)?;
            if n == 0 {
                return Ok(None);
            }
            filled += n;
        }
        Ok(BatchHeader::parse(&buf).ok())
    }

    /// Records a batch that now sits at `position` in the indexes and the segment's bookkeeping.
    fn index_batch(&mut self, position: u64, b: &AppendedBatch) -> io::Result<()> {
        if self.rolling_timestamp.is_none() {
            self.rolling_timestamp = Some(b.max_timestamp);
        }
        if b.max_timestamp > self.max_timestamp {
            self.max_timestamp = b.max_timestamp;
            self.offset_of_max_timestamp = b.last_offset;
        }
        if self.bytes_since_last_index_entry > self.index_interval_bytes {
            self.index.append(OffsetEntry {
                relative_offset: (b.last_offset - self.base_offset) as u32,
                position: position as u32,
            })?;
            self.time_index.append(TimeEntry {
                timestamp: self.max_timestamp,
                relative_offset: (self.offset_of_max_timestamp - self.base_offset) as u32,
            })?;
            self.bytes_since_last_index_entry = 0;
        }
        self.bytes_since_last_index_entry += b.size as u64;
        self.next_offset = b.last_offset + 1;
        self.size = position + b.size as u64;
        Ok(())
    }

    /// Appends batches (already given their offsets) with one positional vectored write.
    pub fn append(&mut self, bufs: &[&[u8]], batches: &[AppendedBatch]) -> io::Result<()> {
        let position = self.size;
        self.log.write_vectored_at(bufs, position)?;
        let mut at = position;
        for b in batches {
            self.index_batch(at, b)?;
            at += b.size as u64;
        }
        debug_assert_eq!(
            at,
            position + bufs.iter().map(|b| b.len() as u64).sum::<u64>()
        );
        Ok(())
    }

    /// The position of the batch that contains `offset` and its header, searching from the
    /// offset index's floor entry. `None` if `offset` is at or past the segment's end.
    pub fn find_batch(&self, offset: Offset) -> io::Result<Option<(FilePosition, BatchHeader)>> {
        Ok(self
            .find_batch_at(offset.get())?
            .map(|(p, h)| (FilePosition(p), h)))
    }

    fn find_batch_at(&self, offset: i64) -> io::Result<Option<(u64, BatchHeader)>> {
        let mut position = match self.index.floor(offset - self.base_offset)? {
            Some(e) => e.position as u64,
            None => 0,
        };
        while position < self.size {
            let Some(h) = self.read_header(position)? else {
                return Ok(None);
            };
            if h.last_offset() >= offset {
                return Ok(Some((position, h)));
            }
            position += h.total_size() as u64;
        }
        Ok(None)
    }

    /// Bytes to send for a fetch at `offset`: from the batch holding it, at most `max_bytes`
    /// (but the first batch whole), never past `max_position`.
    pub fn read(
        &self,
        offset: Offset,
        max_bytes: u64,
        max_position: FilePosition,
        min_one_batch: bool,
    ) -> io::Result<Option<SegmentSlice>> {
        let max_position = max_position.get();
        let Some((position, first)) = self.find_batch_at(offset.get())? else {
            return Ok(None);
        };
        let limit = max_position.min(self.size);
        if position >= limit {
            return Ok(None);
        }
        let first_size = first.total_size() as u64;
        let wanted = if min_one_batch {
            max_bytes.max(first_size)
        } else {
            max_bytes
        };
        let len = wanted.min(limit - position);
        if len == 0 {
            return Ok(None);
        }
        Ok(Some(SegmentSlice {
            file: self.log.clone(),
            position: FilePosition(position),
            len,
        }))
    }

    /// Reads `len` bytes at `position` into memory (tools, ListOffsets, the memory-copy path).
    pub fn read_bytes(&self, position: FilePosition, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0; len];
        self.log.read_exact_at(&mut buf, position.get())?;
        Ok(buf)
    }

    /// The first record with timestamp >= `timestamp`: (offset, its timestamp).
    pub fn find_offset_by_timestamp(
        &self,
        timestamp: i64,
        start_offset: Offset,
    ) -> io::Result<Option<(Offset, i64)>> {
        let start_offset = start_offset.get();
        if self.max_timestamp < timestamp {
            return Ok(None);
        }
        // Every batch up to the floor entry's offset has a max timestamp below `timestamp`.
        let from = match self.time_index.floor(timestamp - 1)? {
            Some(e) => (self.base_offset + e.relative_offset as i64 + 1).max(start_offset),
            None => start_offset.max(self.base_offset),
        };
        let mut position = match self.find_batch_at(from)? {
            Some((p, _)) => p,
            None => return Ok(None),
        };
        while position < self.size {
            let Some(h) = self.read_header(position)? else {
                break;
            };
            if h.max_timestamp >= timestamp && h.last_offset() >= start_offset {
                let bytes = self.read_bytes(FilePosition(position), h.total_size())?;
                if let Some(records) = batch::record_timestamps(&bytes, &h) {
                    for (delta, ts) in records {
                        let offset = h.base_offset + delta as i64;
                        if ts >= timestamp && offset >= start_offset {
                            return Ok(Some((Offset(offset), ts)));
                        }
                    }
                } else {
                    return Ok(Some((
                        Offset(h.base_offset.max(start_offset)),
                        h.max_timestamp,
                    )));
                }
            }
            position += h.total_size() as u64;
        }
        Ok(None)
    }

    /// Drops everything from `offset` on, with the whole batch that holds `offset` (batches are
    /// never split, so the segment may end before `offset`, as in Kafka).
    pub fn truncate_to(&mut self, offset: Offset) -> io::Result<()> {
        let offset = offset.get();
        let position = match self.find_batch_at(offset)? {
            Some((p, _)) => p,
            None => return Ok(()),
        };
        let file_len = self.log.len()?;
        self.cut_log(position, file_len)?;
        self.index.truncate_above(offset - 1 - self.base_offset)?;
        self.time_index.truncate_above(i64::MAX)?;
        self.rebuild()?;
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.log.sync_data()?;
        self.index.persist()?;
        self.time_index.persist()?;
        self.index.sync()?;
        self.time_index.sync()?;
        match &self.txn_index {
            Some(t) => t.sync(),
            None => Ok(()),
        }
    }

    /// Records an aborted transaction whose marker was just written to this segment, creating
    /// the `.txnindex` with the first one (its directory entry made durable at once).
    pub fn append_aborted(&mut self, io: &dyn Io, txn: AbortedTxn) -> io::Result<()> {
        self.open_txn_index(io)?;
        self.txn_index.as_mut().expect("opened above").append(txn)
    }

    /// Creates the `.txnindex` (empty) if the segment has none yet, its entry made durable.
    pub fn open_txn_index(&mut self, io: &dyn Io) -> io::Result<()> {
        if self.txn_index.is_none() {
            let index = TransactionIndex::open(io, &self.txn_path)?;
            io.sync_dir(self.dir())?;
            self.txn_index = Some(index);
        }
        Ok(())
    }

    /// Drops the aborted transactions whose markers are at or past `offset` (a marker that was
    /// indexed but could not be written).
    pub fn cut_aborted_from(&mut self, offset: Offset) -> io::Result<()> {
        match &mut self.txn_index {
            Some(index) => index.truncate_to(offset),
            None => Ok(()),
        }
    }

    /// The aborted transactions of this segment with records in `[fetch, upper)`.
    pub fn aborted_between(&self, fetch: Offset, upper: Offset) -> AbortedSearch {
        self.txn_index
            .as_ref()
            .map(|t| t.collect_aborted(fetch, upper))
            .unwrap_or_default()
    }

    /// The segment stops being appended to: indexes go to disk and leave memory.
    pub fn seal(&mut self) -> io::Result<()> {
        self.index.seal()?;
        self.time_index.seal()?;
        if self.trims_on_seal() && self.log.len()? > self.size {
            self.log.set_len(self.size)?;
        }
        Ok(())
    }

    /// Writes out index entries still in memory (clean shutdown).
    pub fn persist_indexes(&mut self) -> io::Result<()> {
        self.index.persist()?;
        self.time_index.persist()
    }

    pub fn delete(self, io: &dyn Io) -> io::Result<()> {
        let index_path = self.index.path().to_path_buf();
        let time_path = self.time_index.path().to_path_buf();
        match &self.mode.pool {
            Some(pool) => pool.give_back(&self.log_path)?,
            None => io.remove_file(&self.log_path)?,
        }
        io.remove_if_present(&index_path)?;
        io.remove_if_present(&time_path)?;
        io.remove_if_present(&self.txn_path)?;
        // Make the removal durable, or a crash could bring the segment back.
        io.sync_dir(self.dir())
    }

    pub fn base_offset(&self) -> Offset {
        Offset(self.base_offset)
    }
    /// This segment object's id (see [`NEXT_SEGMENT_ID`]).
    pub fn id(&self) -> u64 {
        self.id
    }
    /// The `.log` file, for readers that walk it outside the partition's lock (the cleaner).
    pub fn log_file(&self) -> Arc<dyn IoFile> {
        self.log.clone()
    }
    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn next_offset(&self) -> Offset {
        Offset(self.next_offset)
    }
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }
    pub fn offset_of_max_timestamp(&self) -> Offset {
        Offset(self.offset_of_max_timestamp)
    }
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }
    pub fn index_is_full(&self) -> bool {
        self.index.is_full() || self.time_index.is_full()
    }
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
    /// The directory holding the segment's files.
    pub fn dir(&self) -> &Path {
        self.log_path.parent().unwrap_or(Path::new("."))
    }
    pub fn index_bytes(&self) -> u64 {
        self.index.size_bytes() + self.time_index.size_bytes()
    }
    /// The first batch's max timestamp, which `segment.ms` counts from.
    pub fn first_timestamp(&self) -> Option<i64> {
        self.rolling_timestamp
    }
    /// When this segment was created (or opened).
    pub fn created_ms(&self) -> i64 {
        self.created_ms
    }
    /// Sets when this segment was created, by the log's clock.
    pub fn set_created_ms(&mut self, ms: i64) {
        self.created_ms = ms;
    }
    /// The largest timestamp in the segment for retention: its max timestamp, or, for an empty
    /// segment, when it was created.
    pub fn retention_timestamp(&self) -> i64 {
        if self.max_timestamp >= 0 {
            self.max_timestamp
        } else {
            self.created_ms
        }
    }
}

impl Segment {
    /// The files a flush syncs.
    pub fn files(&self) -> Vec<Arc<dyn IoFile>> {
        let mut files = vec![self.log.clone(), self.index.file(), self.time_index.file()];
        files.extend(self.txn_index.as_ref().map(TransactionIndex::file));
        files
    }

    /// Cuts the log file back to `size` after a failed write (best effort).
    pub fn truncate_file_to(&mut self, size: u64) -> io::Result<()> {
        self.size = size;
        let file_len = self.log.len()?;
        self.cut_log(size, file_len).map(|_| ())
    }

    /// How the `.log` file is held.
    pub fn mode(&self) -> &FileMode {
        &self.mode
    }
}
