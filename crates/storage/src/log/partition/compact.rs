//! The log's side of compaction: what the cleaner may clean, which segments it holds, and the
//! swap of cleaned segments into place (`log/cleaner/` does the reading and writing).
//!
//! The cleaner takes whole sealed segments below the first uncleanable offset: the active
//! segment's base, the last stable offset (no open transaction is cleaned), and the first
//! segment younger than `min.compaction.lag.ms`; only below the recovery point (the log is
//! flushed first), so that a cleaned segment, which may have gaps between its batches and end
//! before the next segment begins, is never scanned by a recovery. A segment is held by the
//! cleaner or by a migration, never both (`in_use`).

use std::collections::HashMap;

use super::*;
use crate::log::cleaner::swap;
use crate::log::txn_index::AbortedTxn;

/// Who holds a segment while working on it outside the partition's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentUse {
    Cleaning,
    Migrating,
}

/// A sealed segment as the cleaner reads it.
#[derive(Debug, Clone)]
pub struct CleanableSegment {
    pub base: Offset,
    pub id: u64,
    pub dir: PathBuf,
    pub file: Arc<dyn IoFile>,
    pub size: u64,
    pub next_offset: Offset,
    pub index_bytes: u64,
}

/// How dirty a compacted log is (Kafka's `LogToClean`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DirtyStats {
    pub first_dirty: Offset,
    pub first_uncleanable: Offset,
    pub clean_bytes: u64,
    pub dirty_bytes: u64,
    /// `max.compaction.lag.ms` has passed for the first dirty segment.
    pub overdue: bool,
    /// A delete horizon left by the last cleaning has passed: tombstones can go.
    pub horizon_due: bool,
}

impl DirtyStats {
    /// dirty / (clean + dirty), 0 for an empty range.
    pub fn ratio(&self) -> f64 {
        let total = self.clean_bytes + self.dirty_bytes;
        if total == 0 {
            0.0
        } else {
            self.dirty_bytes as f64 / total as f64
        }
    }
}

/// What the cleaner works from, taken under the lock; its segments are held until released.
#[derive(Debug, Clone)]
pub struct CleaningPlan {
    pub segments: Vec<CleanableSegment>,
    pub first_dirty: Offset,
    pub aborted: Vec<AbortedTxn>,
    /// Producer id -> the last offset of its last data batch, for producers the log knows.
    pub last_data_offsets: HashMap<i64, i64>,
    pub config: LogConfig,
    pub limits: SegmentLimits,
    /// How the cleaned segment's files are held in each directory (plain or pool files).
    pub modes: HashMap<PathBuf, FileMode>,
}

/// What [`PartitionLog::plan_cleaning`] found.
#[derive(Debug)]
pub enum PlanOutcome {
    /// Nothing to clean now.
    Nothing,
    /// The cleanable range is above the recovery point: flush, then plan again.
    NeedsFlush,
    Plan(Box<CleaningPlan>),
}

impl PartitionLog {
    /// Where the next cleaning starts (`cleaner-offset-checkpoint`).
    pub fn cleaner_checkpoint(&self) -> Offset {
        self.cleaner_checkpoint
    }
    pub fn set_cleaner_checkpoint(&mut self, offset: Offset) {
        self.cleaner_checkpoint = offset;
    }

    /// Holds segments for `what`: all of them, or none when one is held already.
    pub fn reserve_segments(&mut self, bases: &[Offset], what: SegmentUse) -> bool {
        if bases.iter().any(|b| self.in_use.contains_key(b)) {
            return false;
        }
        for b in bases {
            self.in_use.insert(*b, what);
        }
        true
    }

    pub fn release_segments(&mut self, bases: &[Offset], what: SegmentUse) {
        for b in bases {
            if self.in_use.get(b) == Some(&what) {
                self.in_use.remove(b);
            }
        }
    }

    pub fn segment_in_use(&self, base: Offset) -> Option<SegmentUse> {
        self.in_use.get(&base).copied()
    }

    /// The sealed segments the cleaner may take, oldest first, and the first uncleanable offset.
    fn cleanable_segments(&self, now_ms: i64) -> (Vec<&Segment>, Offset) {
        let mut limit = self.active().base_offset().min(self.last_stable_offset);
        let lag = self.config.min_compaction_lag_ms;
        let mut out = Vec::new();
        for s in self.segments.values() {
            let young = lag > 0 && s.max_timestamp() > now_ms.saturating_sub(lag);
            if s.next_offset() > limit || young || self.in_use.contains_key(&s.base_offset()) {
                limit = limit.min(s.base_offset());
                break;
            }
            out.push(s);
        }
        (out, limit)
    }

    /// How dirty the log is; None when it is not compacted.
    pub fn dirty_stats(&self, now_ms: i64) -> Option<DirtyStats> {
        if !self.config.compact {
            return None;
        }
        let (segments, first_uncleanable) = self.cleanable_segments(now_ms);
        let first_dirty = self.first_dirty_offset();
        let (mut clean_bytes, mut dirty_bytes) = (0, 0);
        let mut overdue = false;
        for s in &segments {
            if s.next_offset() <= first_dirty {
                clean_bytes += s.size();
            } else {
                dirty_bytes += s.size();
                let max_lag = self.config.max_compaction_lag_ms;
                if !overdue && (0..i64::MAX).contains(&max_lag) {
                    overdue = s
                        .first_timestamp()
                        .is_some_and(|t| t >= 0 && t < now_ms.saturating_sub(max_lag));
                }
            }
        }
        Some(DirtyStats {
            first_dirty,
            first_uncleanable,
            clean_bytes,
            dirty_bytes,
            overdue,
            horizon_due: self.next_delete_horizon.is_some_and(|h| h <= now_ms),
        })
    }

    /// The checkpoint within the log: a checkpoint outside it (the log was truncated or
    /// deleted from its head past it) starts over at the log start, as Kafka does.
    fn first_dirty_offset(&self) -> Offset {
        let c = self.cleaner_checkpoint;
        if c < self.log_start_offset || c > self.log_end_offset() {
            self.log_start_offset
        } else {
            c
        }
    }

    /// Takes the segments a cleaning works on and holds them for it.
    pub fn plan_cleaning(&mut self, now_ms: i64) -> PlanOutcome {
        if !self.config.compact || self.offline().is_some() {
            return PlanOutcome::Nothing;
        }
        let (segments, first_uncleanable) = self.cleanable_segments(now_ms);
        if segments.is_empty() {
            return PlanOutcome::Nothing;
        }
        if self.recovery_point < first_uncleanable {
            return PlanOutcome::NeedsFlush;
        }
        let mut aborted = Vec::new();
        let mut modes = HashMap::new();
        let planned: Vec<CleanableSegment> = segments
            .iter()
            .map(|s| {
                aborted.extend(s.aborted_between(Offset::ZERO, Offset::MAX).aborted);
                modes.entry(s.dir().to_path_buf()).or_insert_with(|| {
                    let mut mode = file_mode(&self.placer, &self.config, s.dir());
                    // Cleaned segments are written sealed, through the descriptor.
                    mode.mapped = false;
                    if mode.pool.is_none() {
                        mode.preallocate = None;
                    }
                    mode
                });
                CleanableSegment {
                    base: s.base_offset(),
                    id: s.id(),
                    dir: s.dir().to_path_buf(),
                    file: s.log_file(),
                    size: s.size(),
                    next_offset: s.next_offset(),
                    index_bytes: s.index_bytes(),
                }
            })
            .collect();
        let bases: Vec<Offset> = planned.iter().map(|s| s.base).collect();
        if !self.reserve_segments(&bases, SegmentUse::Cleaning) {
            return PlanOutcome::Nothing;
        }
        let last_data_offsets = self
            .producers
            .iter()
            .filter_map(|(id, e)| e.batches.back().map(|b| (id.get(), b.last_offset.get())))
            .collect();
        PlanOutcome::Plan(Box::new(CleaningPlan {
            segments: planned,
            first_dirty: self.first_dirty_offset(),
            aborted,
            last_data_offsets,
            config: self.config.clone(),
            limits: self.limits(),
            modes,
        }))
    }

    /// Puts a cleaned segment (written and synced as `<base>.*.cleaned` in `dir`) in place of
    /// `sources` (base offset, segment id), the first of which has the same base. Returns false,
    /// changing nothing, when a source is gone or was replaced meanwhile (retention, a
    /// truncation): the caller then removes its files. An I/O error takes the directory
    /// offline; the next start completes a swap that committed (`cleaner/swap.rs`).
    pub fn swap_cleaned(&mut self, sources: &[(Offset, u64)], dir: &Path) -> io::Result<bool> {
        self.check_online()?;
        let active = self.active().base_offset();
        let intact = sources.iter().all(|(base, id)| {
            *base != active && self.segments.get(base).is_some_and(|s| s.id() == *id)
        });
        let Some(&(base, _)) = sources.first() else {
            return Ok(false);
        };
        if !intact {
            return Ok(false);
        }
        // A cleaned segment may have gaps a recovery would take for lost data: it must never
        // be above the recovery point (the cleaner flushes first).
        let end = self.segments[&sources[sources.len() - 1].0].next_offset();
        assert!(
            end <= self.recovery_point,
            "{}-{}: cleaned segments up to {end} above the recovery point {}",
            self.topic,
            self.partition,
            self.recovery_point
        );
        let swapped = self.swap_cleaned_online(sources, dir, base);
        let swapped = self.fail_stop(dir, swapped)?;
        self.assert_invariants();
        Ok(swapped)
    }

    fn swap_cleaned_online(
        &mut self,
        sources: &[(Offset, u64)],
        dir: &Path,
        base: Offset,
    ) -> io::Result<bool> {
        // 1. `.cleaned` -> `.swap`, the `.log` last: the commit.
        swap::commit(&*self.io, dir, base.get())?;
        // 2. The sources go (a pool file goes back to its pool).
        for (b, _) in sources {
            let old = self.segments.remove(b).expect("checked present");
            if let Some(p) = &self.placer {
                p.release(old.dir(), old.size());
            }
            old.delete(&*self.io)?;
        }
        // 3. `.swap` -> the segment's names, the `.log` last.
        swap::install(&*self.io, dir, base.get())?;
        let mode = file_mode(&self.placer, &self.config, dir);
        let cleaned = Segment::open(&*self.io, dir, base, false, self.limits(), &mode)?;
        if let Some(p) = &self.placer {
            p.charge(dir, cleaned.size());
        }
        self.segments.insert(base, cleaned);
        Ok(true)
    }

    /// The earliest delete horizon a cleaning left (a later cleaning removes what it guards).
    pub fn next_delete_horizon(&self) -> Option<i64> {
        self.next_delete_horizon
    }

    /// Called by the cleaner after a pass: where the next starts, and the horizons it left.
    pub fn finish_cleaning(&mut self, cleaned_up_to: Offset, next_delete_horizon: Option<i64>) {
        self.cleaner_checkpoint = self.cleaner_checkpoint.max(cleaned_up_to);
        self.next_delete_horizon = next_delete_horizon;
    }
}
