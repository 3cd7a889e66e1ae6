//! Control batches: the transaction markers (Kafka's `EndTransactionMarker`) that end a
//! transaction in each of its partitions.
//!
//! ```text
//! a v2 batch, attributes TRANSACTIONAL | CONTROL, the producer's id and epoch, no sequence,
//! one record:
//!     key   version i16 = 0 | type i16 (0 ABORT, 1 COMMIT)
//!     value version i16 = 0 | coordinator epoch i32
//! ```
//! Clients never hand control records to applications; a `read_committed` consumer drops the
//! records of a producer's aborted transaction up to its ABORT marker.

use crate::batch::{self, build_batch, BatchHeader, ATTR_CONTROL, ATTR_TRANSACTIONAL, NO_SEQUENCE};

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlType {
    Abort,
    Commit,
}

impl ControlType {
    fn code(self) -> i16 {
        match self {
            ControlType::Abort => 0,
            ControlType::Commit => 1,
        }
    }
}

/// A decoded transaction marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndTxnMarker {
    pub control: ControlType,
    pub coordinator_epoch: i32,
}

/// The marker batch for a producer's transaction (base offset 0: the log assigns it).
pub fn end_txn_marker_batch(
    producer_id: i64,
    producer_epoch: i16,
    marker: EndTxnMarker,
    timestamp: i64,
) -> Vec<u8> {
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&marker.control.code().to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&marker.coordinator_epoch.to_be_bytes());
    let records = batch::encode_records(&[(Some(&key), Some(&value))], &[0]);
    build_batch(
        0,
        ATTR_TRANSACTIONAL | ATTR_CONTROL,
        0,
        timestamp,
        timestamp,
        producer_id,
        producer_epoch,
        NO_SEQUENCE,
        1,
        &records,
    )
}

/// The marker in a control batch (`bytes` the whole, checked batch); None when the batch is not
/// a control batch or its record is not a transaction marker Kafka would accept.
pub fn parse_end_txn_marker(bytes: &[u8]) -> Option<EndTxnMarker> {
    let h = BatchHeader::parse(bytes).ok()?;
    if !h.is_control() || h.records_count != 1 || h.compression() != 0 {
        return None;
    }
    let records = bytes.get(batch::HEADER_SIZE..h.total_size())?;
    let mut at = 0;
    let _length = batch::read_varint(records, &mut at)?;
    at += 1; // record attributes
    let _timestamp_delta = batch::read_varint(records, &mut at)?;
    let _offset_delta = batch::read_varint(records, &mut at)?;
    let key_len = usize::try_from(batch::read_varint(records, &mut at)?).ok()?;
    let key = records.get(at..at + key_len)?;
    at += key_len;
    let value_len = usize::try_from(batch::read_varint(records, &mut at)?).ok()?;
    let value = records.get(at..at + value_len)?;
    if key.len() < 4 || value.len() < 6 || i16::from_be_bytes([value[0], value[1]]) < 0 {
        return None;
    }
    let control = match i16::from_be_bytes([key[2], key[3]]) {
        0 => ControlType::Abort,
        1 => ControlType::Commit,
        _ => return None,
    };
    Some(EndTxnMarker {
        control,
        coordinator_epoch: i32::from_be_bytes(value[2..6].try_into().ok()?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_and_are_valid_control_batches() {
        for control in [ControlType::Abort, ControlType::Commit] {
            let marker = EndTxnMarker {
                control,
                coordinator_epoch: 7,
            };
            let b = end_txn_marker_batch(42, 3, marker, 1_000);
            let h = batch::check_batch(&b).expect("a valid batch (CRC)");
            assert!(h.is_control() && h.is_transactional());
            assert_eq!((h.producer_id, h.producer_epoch), (42, 3));
            assert_eq!((h.records_count, h.last_offset_delta), (1, 0));
            assert_eq!(parse_end_txn_marker(&b), Some(marker));
        }
    }

    #[test]
    fn a_data_batch_is_no_marker() {
        let b = batch::simple_batch(&[b"x"], 0);
        assert_eq!(parse_end_txn_marker(&b), None);
        // A control batch whose key names an unknown type is not a transaction marker.
        let mut bad = end_txn_marker_batch(
            1,
            0,
            EndTxnMarker {
                control: ControlType::Commit,
                coordinator_epoch: 0,
            },
            0,
        );
        let key_type_at = bad.len() - 6 - 1 - 2;
        bad[key_type_at] = 9;
        assert_eq!(parse_end_txn_marker(&bad), None);
    }
}
