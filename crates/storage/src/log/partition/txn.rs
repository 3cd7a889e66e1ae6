//! Transaction markers in the log and the aborted transactions a `read_committed` fetch must
//! hear of.

use super::*;
use crate::control::{end_txn_marker_batch, ControlType, EndTxnMarker};
use crate::log::producer_state::CompletedTxn;
use crate::log::txn_index::AbortedTxn;

impl PartitionLog {
    /// Writes the marker that ends `producer_id`'s transaction at the log end (Kafka's
    /// WriteTxnMarkers on a leader). The producer's open transaction, if any, is completed; an
    /// abort is recorded in the active segment's `.txnindex`, with the last stable offset once it
    /// completed (the oldest other open transaction's first offset, else just past the marker).
    /// A marker of an older producer epoch than the log knows is refused.
    pub fn append_txn_marker(
        &mut self,
        producer_id: ProducerId,
        producer_epoch: i16,
        marker: EndTxnMarker,
        now_ms: i64,
    ) -> Result<(AppendInfo, Option<CompletedTxn>), AppendError> {
        if let Some(dir) = self.offline() {
            return Err(AppendError::Offline { dir });
        }
        if self.follower {
            return Err(AppendError::NotLeader);
        }
        if let Some(current) = self.producers.get(producer_id).map(|e| e.epoch) {
            if producer_epoch < current {
                return Err(AppendError::InvalidProducerEpoch {
                    producer_id,
                    current,
                    got: producer_epoch,
                });
            }
        }
        let epoch = self.leader_epoch();
        let offset = self.log_end_offset();
        if self.leader_epochs.latest_epoch() != Some(epoch) {
            let assigned = self.leader_epochs.assign(epoch, offset);
            self.fail_stop(&self.dir, assigned)?;
        }
        let mut bytes = end_txn_marker_batch(producer_id.get(), producer_epoch, marker, now_ms);
        // The offset and the leader epoch go into the first 16 bytes, outside the CRC.
        bytes[0..8].copy_from_slice(&offset.get().to_be_bytes());
        bytes[12..16].copy_from_slice(&epoch.get().to_be_bytes());
        let header = batch::check_batch(&bytes)?;
        let (needs_flush, completed) = self.write_marker_batch(&bytes, header, marker, now_ms)?;
        Ok((
            AppendInfo {
                base_offset: offset,
                last_offset: offset,
                log_append_time: -1,
                log_start_offset: self.log_start_offset,
                duplicate: false,
                needs_flush,
            },
            completed,
        ))
    }

    /// Writes a marker batch (`bytes`, checked, at the log end) and completes the transaction it
    /// ends: what a leader's marker and a follower's copy of one both do. Returns whether a
    /// flush is due and the transaction completed.
    pub(super) fn write_marker_batch(
        &mut self,
        bytes: &[u8],
        header: BatchHeader,
        marker: EndTxnMarker,
        now_ms: i64,
    ) -> Result<(bool, Option<CompletedTxn>), AppendError> {
        let producer_id = ProducerId(header.producer_id);
        let offset = Offset(header.base_offset);
        debug_assert_eq!(offset, self.log_end_offset());
        let appended = AppendedBatch {
            base_offset: offset.get(),
            last_offset: offset.get(),
            max_timestamp: header.max_timestamp,
            size: bytes.len() as u32,
        };
        // The segment the marker goes to is settled first (a roll), so that an abort's index
        // entry can be written before the marker: a marker is never in the log without its
        // entry. If the marker then cannot be written, the entry is cut again.
        self.maybe_roll(bytes.len() as u64, 1, header.max_timestamp, now_ms)?;
        let entry = (marker.control == ControlType::Abort)
            .then(|| self.producers.get(producer_id))
            .flatten()
            .and_then(|e| e.current_txn_first_offset)
            .map(|first_offset| AbortedTxn {
                producer_id,
                first_offset,
                last_offset: offset,
                // Kafka's: the oldest other open transaction's first offset once this one
                // completes, else just past the marker.
                last_stable_offset: self
                    .producers
                    .ongoing_txns()
                    .find(|(_, p)| *p != producer_id)
                    .map_or(offset.next(), |(o, _)| o),
            });
        let io = self.io.clone();
        let dir = self.active().dir().to_path_buf();
        if let Some(entry) = entry {
            let recorded = self.active_mut().append_aborted(&*io, entry);
            self.fail_stop(&dir, recorded)?;
        }
        let needs_flush = match self.write_batches(&[bytes], &[header], &[appended], now_ms) {
            Ok(needs_flush) => needs_flush,
            Err(e) => {
                if entry.is_some() && self.offline().is_none() {
                    let cut = self.active_mut().cut_aborted_from(offset);
                    self.fail_stop(&dir, cut)?;
                }
                return Err(e);
            }
        };
        let completed = self.producers.complete_txn(
            producer_id,
            header.producer_epoch,
            offset,
            marker.control == ControlType::Abort,
        );
        if let Some(txn) = completed {
            if txn.last_offset >= self.high_watermark {
                self.unreplicated_txns.push_back(txn);
            }
        }
        self.refresh_last_stable_offset();
        Ok((needs_flush, completed))
    }

    /// The aborted transactions with records in `[fetch_offset, upper_bound)`, from the
    /// `.txnindex` of the segment holding `fetch_offset` on, until one says the search is
    /// complete (what a `read_committed` Fetch returns with its records).
    pub fn aborted_transactions(
        &self,
        fetch_offset: Offset,
        upper_bound: Offset,
    ) -> Vec<AbortedTxn> {
        let first = self
            .segments
            .range(..=fetch_offset)
            .next_back()
            .map(|(b, _)| *b)
            .unwrap_or(fetch_offset);
        let mut out = Vec::new();
        for segment in self.segments.range(first..).map(|(_, s)| s) {
            let search = segment.aborted_between(fetch_offset, upper_bound);
            out.extend(search.aborted);
            if search.complete {
                break;
            }
        }
        out
    }
}
