//! Idempotent producers' state of one partition: for each producer id, its epoch and the last
//! five batches it wrote (sequence range and offsets), as Kafka keeps.
//!
//! A retried batch whose sequences match one of the five is a duplicate: it is not written again
//! and the producer gets the offsets of the original. A batch whose first sequence is not the
//! last sequence + 1 is out of order. State is snapshotted to `<offset>.snapshot` at every roll
//! and at shutdown, and rebuilt at startup from the latest snapshot plus the batch headers after
//! it.
//!
//! A transactional producer's first batch of a transaction opens it (`current_txn_first_offset`)
//! until its marker ends it (`complete_txn`); the oldest open transaction's first offset bounds
//! the partition's last stable offset.
//!
//! Snapshot format (big-endian), version 1: `crc32c u32 | 0xFFFFFFFF | count u32 | count x
//! entry`, where an entry is `producer_id i64 | epoch i16 | n u8 | n x (first_seq i32, last_seq
//! i32, first_offset i64, last_offset i64) | last_timestamp i64 | txn_first_offset i64 (-1:
//! none)`. Version 0 (still read) had no tag and no txn_first_offset. The CRC covers everything
//! after itself.

use std::collections::{BTreeMap, VecDeque};

use crate::batch::BatchHeader;
use crate::units::{Offset, ProducerId};

/// The first word of a version-1 snapshot's body (version 0 began with the producer count).
const SNAPSHOT_V1_TAG: u32 = u32::MAX;

/// How many batches per producer are remembered for duplicate detection.
pub const BATCHES_REMEMBERED: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRecord {
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub first_offset: Offset,
    pub last_offset: Offset,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<BatchRecord>,
    pub last_timestamp: i64,
    /// The first offset of the producer's open transaction, if one is open: nothing from it on
    /// is stable until its marker is written.
    pub current_txn_first_offset: Option<Offset>,
}

/// A transaction its marker ended (Kafka's `CompletedTxn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: ProducerId,
    pub first_offset: Offset,
    /// The marker's offset.
    pub last_offset: Offset,
    pub aborted: bool,
}

/// What a producer's batch turns out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Write it.
    New,
    /// Already written at these offsets; answer with them, write nothing.
    Duplicate {
        first_offset: Offset,
        last_offset: Offset,
    },
    OutOfOrder {
        expected: i32,
        got: i32,
    },
    /// The producer's epoch is older than the one already seen.
    FencedEpoch {
        current: i16,
        got: i16,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStates {
    producers: BTreeMap<ProducerId, ProducerEntry>,
    /// The open transactions by first offset (each producer's `current_txn_first_offset`), so
    /// that the oldest is found without a scan.
    ongoing: BTreeMap<Offset, ProducerId>,
}

fn next_sequence(last: i32) -> i32 {
    if last == i32::MAX {
        0
    } else {
        last + 1
    }
}

impl ProducerStates {
    pub fn len(&self) -> usize {
        self.producers.len()
    }
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
    pub fn get(&self, producer_id: ProducerId) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Checks a produced batch against the producer's state without changing it.
    pub fn check(&self, h: &BatchHeader) -> SequenceCheck {
        let Some(entry) = self.producers.get(&ProducerId(h.producer_id)) else {
            // Kafka accepts a producer it has no state for only from its first sequence; any
            // later sequence means earlier batches are missing.
            return if h.base_sequence == 0 {
                SequenceCheck::New
            } else {
                SequenceCheck::OutOfOrder {
                    expected: 0,
                    got: h.base_sequence,
                }
            };
        };
        if h.producer_epoch < entry.epoch {
            return SequenceCheck::FencedEpoch {
                current: entry.epoch,
                got: h.producer_epoch,
            };
        }
        if h.producer_epoch > entry.epoch {
            // A bumped epoch restarts its sequences at zero.
            return if h.base_sequence == 0 {
                SequenceCheck::New
            } else {
                SequenceCheck::OutOfOrder {
                    expected: 0,
                    got: h.base_sequence,
                }
            };
        }
        for b in &entry.batches {
            if b.first_sequence == h.base_sequence && b.last_sequence == h.last_sequence() {
                return SequenceCheck::Duplicate {
                    first_offset: b.first_offset,
                    last_offset: b.last_offset,
                };
            }
        }
        let expected = entry
            .batches
            .back()
            .map(|b| next_sequence(b.last_sequence))
            .unwrap_or(0);
        if h.base_sequence != expected {
            return SequenceCheck::OutOfOrder {
                expected,
                got: h.base_sequence,
            };
        }
        SequenceCheck::New
    }

    /// Records a batch that was written at `first_offset..=last_offset`.
    pub fn update(&mut self, h: &BatchHeader, first_offset: Offset, last_offset: Offset) {
        let entry = self.producers.entry(ProducerId(h.producer_id)).or_default();
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        if h.base_sequence >= 0 {
            entry.batches.push_back(BatchRecord {
                first_sequence: h.base_sequence,
                last_sequence: h.last_sequence(),
                first_offset,
                last_offset,
            });
            while entry.batches.len() > BATCHES_REMEMBERED {
                entry.batches.pop_front();
            }
        }
        entry.last_timestamp = h.max_timestamp;
        if h.is_transactional() && !h.is_control() && entry.current_txn_first_offset.is_none() {
            entry.current_txn_first_offset = Some(first_offset);
            self.ongoing.insert(first_offset, ProducerId(h.producer_id));
        }
    }

    /// Ends the producer's open transaction with the marker at `marker_offset`, written with
    /// `epoch` (a newer epoch than the producer's, written by a coordinator that fenced it,
    /// restarts its sequences); None when it has none open (a marker may be written again after
    /// a coordinator's restart).
    pub fn complete_txn(
        &mut self,
        producer_id: ProducerId,
        epoch: i16,
        marker_offset: Offset,
        aborted: bool,
    ) -> Option<CompletedTxn> {
        let entry = self.producers.entry(producer_id).or_default();
        if epoch > entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        let first_offset = entry.current_txn_first_offset.take()?;
        self.ongoing.remove(&first_offset);
        Some(CompletedTxn {
            producer_id,
            first_offset,
            last_offset: marker_offset,
            aborted,
        })
    }

    /// The first offset of the oldest open transaction: the last stable offset can be no
    /// higher.
    pub fn first_unstable_offset(&self) -> Option<Offset> {
        self.ongoing.keys().next().copied()
    }

    /// The open transactions, oldest first: (first offset, producer id).
    pub fn ongoing_txns(&self) -> impl Iterator<Item = (Offset, ProducerId)> + '_ {
        self.ongoing.iter().map(|(o, p)| (*o, *p))
    }

    /// Every producer with its state, by id (DescribeProducers).
    pub fn iter(&self) -> impl Iterator<Item = (ProducerId, &ProducerEntry)> {
        self.producers.iter().map(|(p, e)| (*p, e))
    }

    /// Forgets batches below `log_start_offset`; producers with nothing left are dropped.
    pub fn truncate_head(&mut self, log_start_offset: Offset) {
        self.producers.retain(|_, e| {
            e.batches.retain(|b| b.last_offset >= log_start_offset);
            // A producer with an open transaction stays: its marker is still to come.
            !e.batches.is_empty() || e.current_txn_first_offset.is_some()
        });
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&SNAPSHOT_V1_TAG.to_be_bytes());
        body.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        for (pid, e) in &self.producers {
            body.extend_from_slice(&pid.get().to_be_bytes());
            body.extend_from_slice(&e.epoch.to_be_bytes());
            body.push(e.batches.len() as u8);
            for b in &e.batches {
                body.extend_from_slice(&b.first_sequence.to_be_bytes());
                body.extend_from_slice(&b.last_sequence.to_be_bytes());
                body.extend_from_slice(&b.first_offset.get().to_be_bytes());
                body.extend_from_slice(&b.last_offset.get().to_be_bytes());
            }
            body.extend_from_slice(&e.last_timestamp.to_be_bytes());
            let txn = e.current_txn_first_offset.map_or(-1, Offset::get);
            body.extend_from_slice(&txn.to_be_bytes());
        }
        let mut out = crc32c::crc32c(&body).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        out
    }

    /// Decodes a snapshot; `None` if it is corrupt (the caller then rebuilds from the log).
    pub fn decode(bytes: &[u8]) -> Option<ProducerStates> {
        let crc = u32::from_be_bytes(bytes.get(0..4)?.try_into().ok()?);
        let body = &bytes[4..];
        if crc32c::crc32c(body) != crc {
            return None;
        }
        let mut at = 0usize;
        let mut take = |n: usize| -> Option<&[u8]> {
            let s = body.get(at..at + n)?;
            at += n;
            Some(s)
        };
        let mut count = u32::from_be_bytes(take(4)?.try_into().ok()?);
        // Version 1 begins with a tag and keeps open transactions; version 0 began with the
        // count (and is still read: a broker upgraded in place keeps its snapshots).
        let v1 = count == SNAPSHOT_V1_TAG;
        if v1 {
            count = u32::from_be_bytes(take(4)?.try_into().ok()?);
        }
        let mut producers = BTreeMap::new();
        for _ in 0..count {
            let pid = ProducerId(i64::from_be_bytes(take(8)?.try_into().ok()?));
            let epoch = i16::from_be_bytes(take(2)?.try_into().ok()?);
            let n = take(1)?[0];
            let mut batches = VecDeque::new();
            for _ in 0..n {
                batches.push_back(BatchRecord {
                    first_sequence: i32::from_be_bytes(take(4)?.try_into().ok()?),
                    last_sequence: i32::from_be_bytes(take(4)?.try_into().ok()?),
                    first_offset: Offset(i64::from_be_bytes(take(8)?.try_into().ok()?)),
                    last_offset: Offset(i64::from_be_bytes(take(8)?.try_into().ok()?)),
                });
            }
            let last_timestamp = i64::from_be_bytes(take(8)?.try_into().ok()?);
            let current_txn_first_offset = if v1 {
                let first = i64::from_be_bytes(take(8)?.try_into().ok()?);
                (first >= 0).then_some(Offset(first))
            } else {
                None
            };
            producers.insert(
                pid,
                ProducerEntry {
                    epoch,
                    batches,
                    last_timestamp,
                    current_txn_first_offset,
                },
            );
        }
        let ongoing = producers
            .iter()
            .filter_map(|(pid, e)| e.current_txn_first_offset.map(|o| (o, *pid)))
            .collect();
        Some(ProducerStates { producers, ongoing })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{build_batch, encode_simple_records, BatchHeader};

    fn header(pid: i64, epoch: i16, seq: i32, n: i32) -> BatchHeader {
        let values: Vec<&[u8]> = (0..n).map(|_| b"v".as_slice()).collect();
        let records = encode_simple_records(&values, &vec![0; n as usize]);
        BatchHeader::parse(&build_batch(
            0,
            0,
            n - 1,
            1,
            1,
            pid,
            epoch,
            seq,
            n,
            &records,
        ))
        .unwrap()
    }

    #[test]
    fn retried_batch_is_a_duplicate_with_original_offsets() {
        let mut s = ProducerStates::default();
        let h = header(7, 0, 0, 3);
        assert_eq!(s.check(&h), SequenceCheck::New);
        s.update(&h, Offset(10), Offset(12));
        assert_eq!(
            s.check(&h),
            SequenceCheck::Duplicate {
                first_offset: Offset(10),
                last_offset: Offset(12)
            }
        );
        assert_eq!(s.check(&header(7, 0, 3, 1)), SequenceCheck::New);
        assert_eq!(
            s.check(&header(7, 0, 5, 1)),
            SequenceCheck::OutOfOrder {
                expected: 3,
                got: 5
            }
        );
    }

    #[test]
    fn older_epoch_is_fenced_and_new_epoch_restarts_at_zero() {
        let mut s = ProducerStates::default();
        s.update(&header(1, 3, 0, 1), Offset(0), Offset(0));
        assert_eq!(
            s.check(&header(1, 2, 1, 1)),
            SequenceCheck::FencedEpoch { current: 3, got: 2 }
        );
        assert_eq!(s.check(&header(1, 4, 0, 1)), SequenceCheck::New);
        assert!(matches!(
            s.check(&header(1, 4, 1, 1)),
            SequenceCheck::OutOfOrder { .. }
        ));
    }

    fn txn_header(pid: i64, seq: i32, n: i32) -> BatchHeader {
        let values: Vec<&[u8]> = (0..n).map(|_| b"v".as_slice()).collect();
        let records = encode_simple_records(&values, &vec![0; n as usize]);
        BatchHeader::parse(&build_batch(
            0,
            crate::batch::ATTR_TRANSACTIONAL,
            n - 1,
            1,
            1,
            pid,
            0,
            seq,
            n,
            &records,
        ))
        .unwrap()
    }

    #[test]
    fn open_transactions_bound_the_stable_offset_until_their_markers() {
        let mut s = ProducerStates::default();
        s.update(&header(5, 0, 0, 2), Offset(0), Offset(1));
        assert_eq!(s.first_unstable_offset(), None, "not transactional");
        s.update(&txn_header(7, 0, 2), Offset(2), Offset(3));
        s.update(&txn_header(8, 0, 1), Offset(4), Offset(4));
        s.update(&txn_header(7, 2, 1), Offset(5), Offset(5));
        assert_eq!(s.first_unstable_offset(), Some(Offset(2)));
        assert_eq!(
            s.complete_txn(ProducerId(7), 0, Offset(6), true),
            Some(CompletedTxn {
                producer_id: ProducerId(7),
                first_offset: Offset(2),
                last_offset: Offset(6),
                aborted: true
            })
        );
        assert_eq!(s.first_unstable_offset(), Some(Offset(4)));
        assert_eq!(
            s.complete_txn(ProducerId(7), 0, Offset(7), false),
            None,
            "none open"
        );
        // Retention does not forget a producer whose transaction is open.
        s.truncate_head(Offset(100));
        assert!(s.get(ProducerId(8)).is_some());
        assert!(s.get(ProducerId(7)).is_none());
        // The open transaction survives a snapshot.
        let back = ProducerStates::decode(&s.encode()).unwrap();
        assert_eq!(back.first_unstable_offset(), Some(Offset(4)));
    }

    #[test]
    fn a_version_0_snapshot_is_still_read() {
        // count 1 | pid 9 | epoch 1 | one batch (seq 0..1, offsets 10..11) | timestamp 5
        let mut body = Vec::new();
        body.extend_from_slice(&1u32.to_be_bytes());
        body.extend_from_slice(&9i64.to_be_bytes());
        body.extend_from_slice(&1i16.to_be_bytes());
        body.push(1);
        for v in [0i32, 1] {
            body.extend_from_slice(&v.to_be_bytes());
        }
        for v in [10i64, 11, 5] {
            body.extend_from_slice(&v.to_be_bytes());
        }
        let mut bytes = crc32c::crc32c(&body).to_be_bytes().to_vec();
        bytes.extend_from_slice(&body);
        let s = ProducerStates::decode(&bytes).unwrap();
        let e = s.get(ProducerId(9)).unwrap();
        assert_eq!((e.epoch, e.batches.len(), e.last_timestamp), (1, 1, 5));
        assert_eq!(e.current_txn_first_offset, None);
    }

    #[test]
    fn snapshot_round_trips_and_detects_corruption() {
        let mut s = ProducerStates::default();
        for i in 0..8 {
            s.update(
                &header(9, 1, i * 2, 2),
                Offset(i as i64 * 2),
                Offset(i as i64 * 2 + 1),
            );
        }
        s.update(&header(11, 0, 0, 1), Offset(100), Offset(100));
        let bytes = s.encode();
        assert_eq!(ProducerStates::decode(&bytes), Some(s.clone()));
        assert_eq!(
            s.get(ProducerId(9)).unwrap().batches.len(),
            BATCHES_REMEMBERED
        );
        let mut bad = bytes.clone();
        bad[10] ^= 1;
        assert_eq!(ProducerStates::decode(&bad), None);
    }
}
