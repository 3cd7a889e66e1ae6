//! Transactions in the storage model: two producers write transactional batches and end their
//! transactions with COMMIT or ABORT markers, among everything else the model does (crashes,
//! truncations, retention, migrations). The model replays the surviving events to know which
//! transactions are open and which were aborted; the log must agree at every step: its last
//! stable offset is the oldest open transaction's first offset (within the log start and the
//! high watermark), and its `.txnindex` files list exactly the aborted transactions whose
//! markers are in the log, after any crash too (recovery rebuilds what was not synced).

use crate::batch::{build_batch, encode_simple_records, ATTR_TRANSACTIONAL, NO_SEQUENCE};
use crate::control::{ControlType, EndTxnMarker};
use crate::units::{Offset, ProducerId};
use crate::{AppendError, PartitionLog};

/// The transactional producers of a run.
pub const PRODUCERS: [i64; 2] = [101, 102];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Data,
    Commit,
    Abort,
}

/// The transactional events the log acknowledged: (offset, producer, what).
#[derive(Debug, Default)]
pub struct TxnModel {
    events: Vec<(i64, i64, Event)>,
}

/// A control record's value as `values_in` reads it: version 0 and coordinator epoch 0.
pub const MARKER_VALUE: [u8; 6] = [0; 6];

impl TxnModel {
    /// Appends a transactional batch of `values` for `pid` (no sequences: the model checks
    /// transactions, not idempotence).
    pub fn append_data(
        &mut self,
        log: &mut PartitionLog,
        pid: i64,
        values: &[Vec<u8>],
        now: i64,
    ) -> Result<i64, AppendError> {
        let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        let n = values.len() as i32;
        let records = encode_simple_records(&refs, &vec![0; values.len()]);
        let batch = build_batch(
            0,
            ATTR_TRANSACTIONAL,
            n - 1,
            now,
            now,
            pid,
            0,
            NO_SEQUENCE,
            n,
            &records,
        );
        let info = log.append(&batch, now)?;
        self.events.push((info.base_offset.get(), pid, Event::Data));
        Ok(info.base_offset.get())
    }

    /// Appends `pid`'s COMMIT or ABORT marker.
    pub fn append_marker(
        &mut self,
        log: &mut PartitionLog,
        pid: i64,
        commit: bool,
        now: i64,
    ) -> Result<i64, AppendError> {
        let marker = EndTxnMarker {
            control: if commit {
                ControlType::Commit
            } else {
                ControlType::Abort
            },
            coordinator_epoch: 0,
        };
        let (info, _) = log.append_txn_marker(ProducerId(pid), 0, marker, now)?;
        let event = if commit { Event::Commit } else { Event::Abort };
        self.events.push((info.base_offset.get(), pid, event));
        Ok(info.base_offset.get())
    }

    /// Forgets the events at or past `end` (a truncation, or what a crash lost).
    pub fn truncate(&mut self, end: i64) {
        self.events.retain(|(o, _, _)| *o < end);
    }

    /// Every transaction the events make: its producer, data offsets, and its marker (offset,
    /// aborted) once ended.
    fn replay(&self) -> Vec<Txn> {
        let mut done = Vec::new();
        let mut open: Vec<Txn> = Vec::new();
        for &(offset, pid, event) in &self.events {
            let at = open.iter().position(|t| t.pid == pid);
            match (event, at) {
                (Event::Data, None) => open.push(Txn {
                    pid,
                    data: vec![offset],
                    end: None,
                }),
                (Event::Data, Some(i)) => open[i].data.push(offset),
                (Event::Commit | Event::Abort, Some(i)) => {
                    let mut t = open.remove(i);
                    t.end = Some((offset, event == Event::Abort));
                    done.push(t);
                }
                (_, None) => {}
            }
        }
        done.extend(open);
        done
    }

    /// The log's open transactions, last stable offset and aborted-transaction index agree
    /// with the model, as far as consumers can tell. Records below the log start cannot be
    /// read, and a recovery may forget what it knew of them (as Kafka's, which drops producers
    /// below the log start): a transaction's first offset in the log may then be its first
    /// batch at or after the log start, and a transaction with no batch left there may be
    /// forgotten. Nothing else may differ.
    pub fn check(&self, log: &PartitionLog, (seed, step): (u64, i64)) {
        let start = log.log_start_offset().get();
        let hw = log.high_watermark();
        let txns = self.replay();
        let ctx = || format!("seed {seed} step {step}: events {:?}", self.events);
        // The first offset a consumer can see of each transaction, if any.
        let visible = |t: &Txn| t.data.iter().copied().find(|d| *d >= start);
        let mut bound = hw;
        for (first, pid) in log.producer_states().ongoing_txns() {
            let t = txns
                .iter()
                .find(|t| t.pid == pid.get() && t.end.is_none())
                .unwrap_or_else(|| panic!("{}: the log has {pid} open at {first}", ctx()));
            assert!(
                t.data.contains(&first.get()),
                "{}: {pid} open at {first}",
                ctx()
            );
        }
        for t in txns.iter().filter(|t| t.end.is_none()) {
            let in_log = log
                .producer_states()
                .get(ProducerId(t.pid))
                .and_then(|e| e.current_txn_first_offset);
            if let Some(v) = visible(t) {
                assert!(
                    in_log.is_some_and(|f| f.get() <= v),
                    "{}: {} open with records from {v}, the log says {in_log:?}",
                    ctx(),
                    t.pid
                );
                bound = bound.min(Offset(v));
            }
        }
        let lso = log.last_stable_offset();
        let own = log
            .producer_states()
            .first_unstable_offset()
            .map_or(hw, |f| f.clamp(log.log_start_offset(), hw));
        assert!(
            lso == own && lso <= bound.max(log.log_start_offset()),
            "{}: last stable offset {lso}, open transactions allow {bound}",
            ctx()
        );
        let found: Vec<(i64, i64, i64)> = log
            .aborted_transactions(log.log_start_offset(), log.log_end_offset())
            .iter()
            .map(|a| {
                (
                    a.producer_id.get(),
                    a.first_offset.get(),
                    a.last_offset.get(),
                )
            })
            .collect();
        for (pid, first, last) in &found {
            assert!(
                txns.iter().any(|t| t.pid == *pid
                    && t.end == Some((*last, true))
                    && t.data.contains(first)),
                "{}: index entry ({pid}, {first}, {last}) of no aborted transaction; {found:?}",
                ctx()
            );
        }
        for t in &txns {
            let (Some((marker, true)), Some(v)) = (t.end, visible(t)) else {
                continue;
            };
            if marker < start {
                continue;
            }
            assert!(
                found
                    .iter()
                    .any(|(p, f, l)| *p == t.pid && *l == marker && *f <= v),
                "{}: the abort of {} at {marker} is not indexed; {found:?}",
                ctx(),
                t.pid
            );
        }
    }
}

/// A transaction as the model knows it.
#[derive(Debug)]
struct Txn {
    pid: i64,
    data: Vec<i64>,
    /// The marker's offset and whether it aborted.
    end: Option<(i64, bool)>,
}
