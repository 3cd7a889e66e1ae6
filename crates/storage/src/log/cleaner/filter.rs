//! What the cleaner keeps of each batch, as Kafka's `LogCleaner` decides it:
//!
//! - a record is kept when it is the latest of its key (the dedupe map) or past what the map
//!   covers; a tombstone (null value) only until its batch's delete horizon has passed; a record
//!   without a key never (Kafka counts it invalid);
//! - every record of an aborted transaction goes; the abort marker stays, indexed, while the
//!   cleaning still met data of its transaction, and goes like a tombstone once none is left;
//!   a commit marker goes once the cleaning meets none of its transaction's data;
//! - a batch left with no record is removed, except the last batch of a producer still known
//!   to the log, kept empty so that its sequence numbers survive (Kafka's RETAIN_EMPTY).
//!
//! The first cleaning that keeps a tombstone or an emptied transaction's marker stamps the
//! batch with its delete horizon, `now + delete.retention.ms` (KIP-534): consumers that read
//! the partition within that time still see the deletion.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::batch::BatchHeader;
use crate::control::{parse_end_txn_marker, ControlType};
use crate::log::txn_index::AbortedTxn;
use crate::records::{self, RecordRef};

use super::offset_map::OffsetMap;

/// The aborted and committed transactions the cleaning is inside of (Kafka's
/// `CleanedTransactionMetadata`).
#[derive(Debug, Default)]
pub struct TxnTracker {
    /// Aborted transactions not reached yet, by first offset.
    upcoming: VecDeque<AbortedTxn>,
    /// Aborted transactions reached, by producer: the entry, and whether a batch of it was met.
    ongoing_aborted: HashMap<i64, (AbortedTxn, bool)>,
    /// Producers with a transaction reached whose marker is not reached yet.
    ongoing_committed: HashSet<i64>,
}

impl TxnTracker {
    pub fn new(mut aborted: Vec<AbortedTxn>) -> TxnTracker {
        aborted.sort_by_key(|a| a.first_offset);
        TxnTracker {
            upcoming: aborted.into(),
            ..TxnTracker::default()
        }
    }

    fn reach(&mut self, offset: i64) {
        while self
            .upcoming
            .front()
            .is_some_and(|a| a.first_offset.get() <= offset)
        {
            let a = self.upcoming.pop_front().expect("checked");
            self.ongoing_aborted.insert(a.producer_id.get(), (a, false));
        }
    }

    /// A data batch: true when it belongs to an aborted transaction (its records all go).
    pub fn on_data_batch(&mut self, h: &BatchHeader) -> bool {
        self.reach(h.last_offset());
        if !h.is_transactional() {
            return false;
        }
        match self.ongoing_aborted.get_mut(&h.producer_id) {
            Some((_, met)) => {
                *met = true;
                true
            }
            None => {
                self.ongoing_committed.insert(h.producer_id);
                false
            }
        }
    }

    /// A control batch (`batch` whole): (whether its transaction is empty so the marker may go
    /// once past its horizon, the `.txnindex` entry the cleaned segment must keep for it).
    pub fn on_control_batch(
        &mut self,
        h: &BatchHeader,
        batch: &[u8],
    ) -> (bool, Option<AbortedTxn>) {
        self.reach(h.last_offset());
        match parse_end_txn_marker(batch).map(|m| m.control) {
            Some(ControlType::Abort) => match self.ongoing_aborted.remove(&h.producer_id) {
                Some((entry, true)) => (false, Some(entry)),
                _ => (true, None),
            },
            Some(ControlType::Commit) => (!self.ongoing_committed.remove(&h.producer_id), None),
            None => (false, None),
        }
    }
}

/// What to do with one batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Written as it is.
    Keep,
    /// Not written.
    Remove,
    /// Written again as these bytes.
    Rewrite(Vec<u8>),
}

/// Counts of what the filter did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FilterCounts {
    pub records_removed: u64,
    /// The earliest delete horizon left on a kept batch, when one is.
    pub next_horizon: Option<i64>,
}

impl FilterCounts {
    fn horizon(&mut self, h: i64) {
        self.next_horizon = Some(self.next_horizon.map_or(h, |n| n.min(h)));
    }
}

/// The decision for a batch at once, with what it needs from the log around it.
pub struct BatchFilter<'a> {
    pub map: &'a OffsetMap,
    pub tracker: &'a mut TxnTracker,
    pub now_ms: i64,
    pub delete_retention_ms: i64,
    /// Producer id -> the last offset of its last data batch (producers the log still knows).
    pub last_data_offsets: &'a HashMap<i64, i64>,
    pub counts: &'a mut FilterCounts,
}

impl BatchFilter<'_> {
    fn new_horizon(&self) -> i64 {
        self.now_ms.saturating_add(self.delete_retention_ms)
    }

    /// Decides for `batch` (whole, checked); `index` receives the aborted transaction the
    /// cleaned segment's `.txnindex` must hold for a kept abort marker.
    pub fn decide(
        &mut self,
        h: &BatchHeader,
        batch: &[u8],
        index: &mut Vec<AbortedTxn>,
    ) -> Verdict {
        let horizon = records::delete_horizon(h);
        if h.is_control() {
            let (empty, entry) = self.tracker.on_control_batch(h, batch);
            if let Some(e) = entry {
                index.push(e);
            }
            if !empty {
                return Verdict::Keep;
            }
            return match horizon {
                Some(t) if t <= self.now_ms => {
                    self.counts.records_removed += h.records_count.max(0) as u64;
                    Verdict::Remove
                }
                Some(t) => {
                    self.counts.horizon(t);
                    Verdict::Keep
                }
                None => {
                    let t = self.new_horizon();
                    self.counts.horizon(t);
                    self.rewrite_all(h, batch, t)
                }
            };
        }
        let aborted = self.tracker.on_data_batch(h);
        // Past what the map covers: the next pass decides (as Kafka keeps such records).
        if !aborted && h.base_offset > self.map.latest_offset() {
            return Verdict::Keep;
        }
        let Ok((recs, refs)) = records::decode(batch, h) else {
            // Unreadable records are kept as they are: removing nothing is always safe.
            return Verdict::Keep;
        };
        let retain_deletes = horizon.is_none_or(|t| self.now_ms < t);
        let kept: Vec<RecordRef> = if aborted {
            Vec::new()
        } else {
            refs.iter()
                .copied()
                .filter(|r| {
                    let offset = h.base_offset + r.offset_delta as i64;
                    if offset > self.map.latest_offset() {
                        return true;
                    }
                    let Some(key) = r.key(&recs) else {
                        return false;
                    };
                    let latest = self.map.get(key).is_none_or(|o| offset >= o);
                    latest && (r.has_value || retain_deletes)
                })
                .collect()
        };
        self.counts.records_removed += (refs.len() - kept.len()) as u64;
        let tombstones = kept.iter().any(|r| !r.has_value);
        let set_horizon = tombstones && horizon.is_none();
        if tombstones {
            self.counts
                .horizon(horizon.unwrap_or_else(|| self.new_horizon()));
        }
        if kept.len() == refs.len() && !set_horizon {
            return Verdict::Keep;
        }
        if kept.is_empty() {
            let last_of_producer = h.has_producer_id()
                && self.last_data_offsets.get(&h.producer_id) == Some(&h.last_offset());
            if !last_of_producer {
                return Verdict::Remove;
            }
            if h.records_count == 0 {
                return Verdict::Keep;
            }
        }
        let new_horizon = set_horizon.then(|| self.new_horizon());
        match records::rebuild(batch, h, &recs, &kept, new_horizon) {
            Ok(bytes) => Verdict::Rewrite(bytes),
            Err(_) => Verdict::Keep,
        }
    }

    fn rewrite_all(&mut self, h: &BatchHeader, batch: &[u8], horizon: i64) -> Verdict {
        match records::decode(batch, h)
            .and_then(|(recs, refs)| records::rebuild(batch, h, &recs, &refs, Some(horizon)))
        {
            Ok(bytes) => Verdict::Rewrite(bytes),
            Err(_) => Verdict::Keep,
        }
    }
}
