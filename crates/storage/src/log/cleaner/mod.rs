//! Kafka's log cleaner: compacts a log to the latest record of each key.
//!
//! One pass over a partition ([`clean_log`]):
//! 1. **Plan** (under the partition's lock): the sealed segments below the first uncleanable
//!    offset, held so that no migration moves them meanwhile (`partition/compact.rs`).
//! 2. **Map** (no lock): the dirty segments, from the cleaner checkpoint on, are read into the
//!    dedupe map (key -> latest offset); aborted transactions and control batches add nothing.
//!    A full map ends the pass where it got to; the next pass goes on from there.
//! 3. **Clean** (no lock): every segment from the log start up to where the map reached, in
//!    groups of consecutive segments of one directory that fit one segment, is written again
//!    with only what [`filter`] keeps, as `<base>.*.cleaned`, and synced.
//! 4. **Swap** (under the lock, a few renames): the cleaned segment replaces its group
//!    ([`swap`]); if a segment of the group went meanwhile (retention), the copy is dropped.
//!
//! Offsets never change: a kept batch keeps its base offset and last offset delta, a rewritten
//! one is compressed again with its own codec. Readers are never blocked: they hold the old
//! files' descriptors until they are done.

pub mod filter;
pub mod offset_map;
pub mod swap;

use std::io;
use std::path::PathBuf;

use crate::batch::{self, BatchHeader, LOG_OVERHEAD};
use crate::io::{Io, IoFile};
use crate::log::partition::{CleanableSegment, CleaningPlan, Partition, PlanOutcome, SegmentUse};
use crate::log::segment::{AppendedBatch, FileMode, Segment};
use crate::units::Offset;

use filter::{BatchFilter, FilterCounts, TxnTracker, Verdict};
use offset_map::OffsetMap;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CleanResult {
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_removed: u64,
    pub segments_cleaned: u64,
    /// Where the next pass starts (the new cleaner checkpoint).
    pub cleaned_up_to: i64,
    /// The map filled before the dirty range ended: another pass is due.
    pub map_full: bool,
}

/// Reads the batches of a segment file in order, a buffer at a time.
struct BatchReader<'a> {
    file: &'a dyn IoFile,
    size: u64,
    at: u64,
    buf: Vec<u8>,
    buf_start: u64,
    chunk: usize,
    read: u64,
}

impl<'a> BatchReader<'a> {
    fn new(file: &'a dyn IoFile, size: u64, chunk: usize) -> BatchReader<'a> {
        BatchReader {
            file,
            size,
            at: 0,
            buf: Vec::new(),
            buf_start: 0,
            chunk: chunk.max(4096),
            read: 0,
        }
    }

    /// Makes the buffer hold `[at, at + n)`.
    fn fill(&mut self, n: u64) -> io::Result<()> {
        let have = self.buf_start + self.buf.len() as u64;
        if self.at >= self.buf_start && self.at + n <= have {
            return Ok(());
        }
        let len = (self.size - self.at).min(n.max(self.chunk as u64)) as usize;
        self.buf.resize(len, 0);
        self.file.read_exact_at(&mut self.buf, self.at)?;
        self.buf_start = self.at;
        self.read += len as u64;
        Ok(())
    }

    /// The next batch (header, whole bytes); None at the end of the data.
    fn next_batch(&mut self) -> io::Result<Option<(BatchHeader, &[u8])>> {
        if self.at + LOG_OVERHEAD as u64 > self.size {
            return Ok(None);
        }
        self.fill(LOG_OVERHEAD as u64)?;
        let from = (self.at - self.buf_start) as usize;
        let length = i32::from_be_bytes(self.buf[from + 8..from + 12].try_into().expect("4"));
        let total = LOG_OVERHEAD as u64 + length.max(0) as u64;
        if self.at + total > self.size {
            return Ok(None);
        }
        self.fill(total)?;
        let from = (self.at - self.buf_start) as usize;
        let bytes = &self.buf[from..from + total as usize];
        let Ok(h) = batch::check_batch(bytes) else {
            return Ok(None);
        };
        self.at += total;
        Ok(Some((h, bytes)))
    }
}

/// Whether a data batch belongs to an aborted transaction of `plan` (map building only; the
/// cleaning tracks transactions in order with [`TxnTracker`]).
fn is_aborted(plan: &CleaningPlan, h: &BatchHeader) -> bool {
    h.is_transactional()
        && plan.aborted.iter().any(|a| {
            a.producer_id.get() == h.producer_id
                && a.first_offset.get() <= h.base_offset
                && h.last_offset() < a.last_offset.get()
        })
}

/// Step 2: fills `map` from the dirty segments; returns (bytes read, whether it filled).
fn build_map(
    plan: &CleaningPlan,
    map: &mut OffsetMap,
    chunk: usize,
    pace: &dyn Fn(u64),
) -> io::Result<(u64, bool)> {
    let first_dirty = plan.first_dirty.get();
    // Below the first dirty offset the log is clean: no key there has a later record there.
    map.set_latest_offset(first_dirty - 1);
    let mut read = 0;
    for s in plan
        .segments
        .iter()
        .filter(|s| s.next_offset > plan.first_dirty)
    {
        let mut reader = BatchReader::new(&*s.file, s.size, chunk);
        let mut full = false;
        while let Some((h, bytes)) = reader.next_batch()? {
            if h.last_offset() < first_dirty {
                continue;
            }
            if !h.is_control() && !is_aborted(plan, &h) {
                if map.len() + h.records_count.max(0) as usize > map.capacity() {
                    full = true;
                    break;
                }
                if let Ok((recs, refs)) = crate::records::decode(bytes, &h) {
                    for r in &refs {
                        if let Some(key) = r.key(&recs) {
                            map.put(key, h.base_offset + r.offset_delta as i64);
                        }
                    }
                }
            }
            map.set_latest_offset(h.last_offset());
        }
        read += reader.read;
        pace(reader.read);
        if full {
            return Ok((read, true));
        }
        // The whole segment is in the map, including offsets its last batches left unused.
        map.set_latest_offset(s.next_offset.get() - 1);
    }
    Ok((read, false))
}

/// Consecutive segments of one directory whose data fits one segment and one index, with
/// offsets within one segment's 32-bit range (Kafka's `groupSegmentsBySize`).
fn group_segments(plan: &CleaningPlan, end: i64) -> Vec<Vec<CleanableSegment>> {
    let max_bytes = plan.config.segment_bytes;
    let max_index = plan.config.segment_index_bytes as u64;
    let mut groups: Vec<Vec<CleanableSegment>> = Vec::new();
    for s in plan.segments.iter().filter(|s| s.base.get() < end) {
        let fits = groups.last().is_some_and(|g| {
            let first = &g[0];
            first.dir == s.dir
                && g.iter().map(|x| x.size).sum::<u64>() + s.size <= max_bytes
                && g.iter().map(|x| x.index_bytes).sum::<u64>() + s.index_bytes <= max_index
                && s.next_offset.get() - first.base.get() <= i32::MAX as i64
        });
        if fits {
            groups.last_mut().expect("checked").push(s.clone());
        } else {
            groups.push(vec![s.clone()]);
        }
    }
    groups
}

/// How the cleaned files in `dir` are held (a pool's file on the pmem channel).
fn mode_of(plan: &CleaningPlan, dir: &std::path::Path) -> FileMode {
    plan.modes.get(dir).cloned().unwrap_or_default()
}

/// Step 3 for one group: writes and syncs `<base>.*.cleaned`; returns (bytes read, written).
#[allow(clippy::too_many_arguments)]
fn write_cleaned(
    io: &dyn Io,
    plan: &CleaningPlan,
    group: &[CleanableSegment],
    filter: &mut BatchFilter<'_>,
    chunk: usize,
    pace: &dyn Fn(u64),
) -> io::Result<(u64, u64)> {
    let first = &group[0];
    let mode = mode_of(plan, &first.dir);
    let mut out = Segment::create_suffixed(
        io,
        &first.dir,
        first.base,
        plan.limits,
        &mode,
        swap::CLEANED,
    )?;
    out.open_txn_index(io)?;
    let (mut read, mut written) = (0, 0);
    let mut pending: Vec<u8> = Vec::new();
    let mut batches: Vec<AppendedBatch> = Vec::new();
    let mut index = Vec::new();
    let flush = |out: &mut Segment, pending: &mut Vec<u8>, batches: &mut Vec<AppendedBatch>| {
        if pending.is_empty() {
            return Ok(());
        }
        let r = out.append(&[pending.as_slice()], batches);
        pace(pending.len() as u64);
        pending.clear();
        batches.clear();
        r
    };
    for s in group {
        let mut reader = BatchReader::new(&*s.file, s.size, chunk);
        while let Some((h, bytes)) = reader.next_batch()? {
            let verdict = filter.decide(&h, bytes, &mut index);
            let kept: &[u8] = match &verdict {
                Verdict::Keep => bytes,
                Verdict::Remove => continue,
                Verdict::Rewrite(b) => b,
            };
            let kh = BatchHeader::parse(kept).expect("a whole batch");
            batches.push(AppendedBatch {
                base_offset: kh.base_offset,
                last_offset: kh.last_offset(),
                max_timestamp: kh.max_timestamp,
                size: kept.len() as u32,
            });
            pending.extend_from_slice(kept);
            written += kept.len() as u64;
            for entry in index.drain(..) {
                flush(&mut out, &mut pending, &mut batches)?;
                out.append_aborted(io, entry)?;
            }
            if pending.len() >= chunk {
                flush(&mut out, &mut pending, &mut batches)?;
            }
        }
        read += reader.read;
        pace(reader.read);
    }
    flush(&mut out, &mut pending, &mut batches)?;
    out.seal()?;
    out.flush()?;
    Ok((read, written))
}

/// One cleaning pass over a partition (see the module's steps). None when nothing was due.
/// `pace` is called with every chunk of bytes read or written (`log.cleaner.io.max.bytes.per.
/// second`). When the log must be flushed first, `after_flush` then makes its new recovery
/// point durable (the log manager writes its checkpoints): a restart must never scan a cleaned
/// segment as one to recover.
#[allow(clippy::too_many_arguments)]
pub fn clean_log(
    partition: &Partition,
    io: &dyn Io,
    map: &mut OffsetMap,
    now_ms: i64,
    chunk: usize,
    pace: &dyn Fn(u64),
    after_flush: &dyn Fn() -> io::Result<()>,
) -> io::Result<Option<CleanResult>> {
    let mut flushed = false;
    let plan = loop {
        let outcome = partition.log().plan_cleaning(now_ms);
        match outcome {
            PlanOutcome::Nothing => return Ok(None),
            PlanOutcome::Plan(plan) => break plan,
            PlanOutcome::NeedsFlush if flushed => return Ok(None),
            PlanOutcome::NeedsFlush => {
                // Cleaned segments must lie below the recovery point: flush, outside the lock.
                let job = partition.log().begin_flush()?;
                job.run()?;
                partition.log().complete_flush(job.target_offset)?;
                after_flush()?;
                flushed = true;
            }
        }
    };
    let bases: Vec<Offset> = plan.segments.iter().map(|s| s.base).collect();
    let result = clean_planned(partition, io, &plan, map, now_ms, chunk, pace);
    partition
        .log()
        .release_segments(&bases, SegmentUse::Cleaning);
    result.map(Some)
}

fn clean_planned(
    partition: &Partition,
    io: &dyn Io,
    plan: &CleaningPlan,
    map: &mut OffsetMap,
    now_ms: i64,
    chunk: usize,
    pace: &dyn Fn(u64),
) -> io::Result<CleanResult> {
    let mut result = CleanResult::default();
    let (read, full) = build_map(plan, map, chunk, pace)?;
    result.bytes_read += read;
    result.map_full = full;
    let end = (map.latest_offset() + 1).max(plan.first_dirty.get());
    let mut tracker = TxnTracker::new(plan.aborted.clone());
    let mut counts = FilterCounts::default();
    let mut filter = BatchFilter {
        map,
        tracker: &mut tracker,
        now_ms,
        delete_retention_ms: plan.config.delete_retention_ms,
        last_data_offsets: &plan.last_data_offsets,
        counts: &mut counts,
    };
    for group in group_segments(plan, end) {
        let dir: PathBuf = group[0].dir.clone();
        let base = group[0].base.get();
        let written = write_cleaned(io, plan, &group, &mut filter, chunk, pace);
        let (read, written) = match written {
            Ok(x) => x,
            Err(e) => {
                let _ = swap::discard(io, &dir, base, &mode_of(plan, &dir));
                partition.log().fail_dir(&dir, &e);
                return Err(e);
            }
        };
        result.bytes_read += read;
        result.bytes_written += written;
        let sources: Vec<(Offset, u64)> = group.iter().map(|s| (s.base, s.id)).collect();
        let swapped = partition.log().swap_cleaned(&sources, &dir)?;
        if !swapped {
            swap::discard(io, &dir, base, &mode_of(plan, &dir))?;
        }
        result.segments_cleaned += group.len() as u64;
    }
    result.records_removed = counts.records_removed;
    result.cleaned_up_to = end;
    partition
        .log()
        .finish_cleaning(Offset(end), counts.next_horizon);
    Ok(result)
}
