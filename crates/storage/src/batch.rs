//! The v2 record batch header (message format 2), parsed without decoding records.
//!
//! Byte layout (big-endian), 61 bytes before the records:
//! ```text
//!  0 base_offset            i64   rewritten by the broker when the batch is appended
//!  8 batch_length           i32   bytes after this field (total = 12 + batch_length)
//! 12 partition_leader_epoch i32
//! 16 magic                  i8    always 2
//! 17 crc                    u32   CRC32C of bytes 21..end
//! 21 attributes             i16   bits 0-2 codec, 3 timestamp type, 4 transactional, 5 control
//! 23 last_offset_delta      i32
//! 27 base_timestamp         i64
//! 35 max_timestamp          i64
//! 43 producer_id            i64
//! 51 producer_epoch         i16
//! 53 base_sequence          i32
//! 57 records_count          i32
//! 61 records ...
//! ```
//! The base offset and the leader epoch lie outside the CRC, so the broker can assign offsets
//! without recomputing it; a LogAppendTime topic rewrites the timestamps and recomputes the CRC.

use thiserror::Error;

pub const HEADER_SIZE: usize = 61;
/// Bytes of the header that precede `batch_length`'s coverage.
pub const LOG_OVERHEAD: usize = 12;
pub const MAGIC_OFFSET: usize = 16;
pub const CRC_OFFSET: usize = 17;
pub const ATTRIBUTES_OFFSET: usize = 21;
pub const MAX_TIMESTAMP_OFFSET: usize = 35;
pub const NO_PRODUCER_ID: i64 = -1;
pub const NO_SEQUENCE: i32 = -1;

pub const ATTR_TIMESTAMP_TYPE: i16 = 1 << 3;
pub const ATTR_TRANSACTIONAL: i16 = 1 << 4;
pub const ATTR_CONTROL: i16 = 1 << 5;

/// Why a batch was refused. Handlers map these to Kafka error codes.
#[derive(Debug, Error, PartialEq, Eq, Clone)]
pub enum BatchError {
    #[error("record batch is truncated: {available} bytes available, {needed} needed")]
    Truncated { available: usize, needed: usize },
    #[error("record batch length {0} is invalid")]
    InvalidLength(i32),
    #[error("record batch magic {0} is not supported (only 2)")]
    InvalidMagic(i8),
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("record batch count {count} does not match last offset delta {last_offset_delta}")]
    CountMismatch { count: i32, last_offset_delta: i32 },
    #[error("record batch base offset {0} must be 0 when produced")]
    InvalidBaseOffset(i64),
    #[error("replicated record batch at offset {got} does not continue the log at {expected}")]
    OffsetGap { expected: i64, got: i64 },
    #[error("replicated record batch has leader epoch {0}, older than the log's")]
    InvalidLeaderEpoch(i32),
}

/// A parsed v2 batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}

impl BatchHeader {
    /// Parses the header at the start of `bytes`; checks only that 61 bytes are there.
    pub fn parse(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
        if bytes.len() < HEADER_SIZE {
            return Err(BatchError::Truncated {
                available: bytes.len(),
                needed: HEADER_SIZE,
            });
        }
        Ok(BatchHeader {
            base_offset: be_i64(bytes, 0),
            batch_length: be_i32(bytes, 8),
            partition_leader_epoch: be_i32(bytes, 12),
            magic: bytes[16] as i8,
            crc: u32::from_be_bytes(bytes[17..21].try_into().expect("4 bytes")),
            attributes: be_i16(bytes, 21),
            last_offset_delta: be_i32(bytes, 23),
            base_timestamp: be_i64(bytes, 27),
            max_timestamp: be_i64(bytes, 35),
            producer_id: be_i64(bytes, 43),
            producer_epoch: be_i16(bytes, 51),
            base_sequence: be_i32(bytes, 53),
            records_count: be_i32(bytes, 57),
        })
    }

    /// Total size of the batch on disk and on the wire.
    pub fn total_size(&self) -> usize {
        // A header that was only parsed, not checked, may carry a negative length.
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(self.last_offset_delta as i64)
    }
    pub fn compression(&self) -> i16 {
        self.attributes & 0x7
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTR_TIMESTAMP_TYPE != 0
    }
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
    /// The sequence number of the batch's last record, wrapping as Kafka does.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence == NO_SEQUENCE {
            return NO_SEQUENCE;
        }
        let last = self.base_sequence as i64 + self.last_offset_delta as i64;
        if last > i32::MAX as i64 {
            (last - i32::MAX as i64 - 1) as i32
        } else {
            last as i32
        }
    }
}

/// Checks the frame of one batch at the start of `bytes`: length, magic and CRC.
/// Returns the header; the batch occupies `header.total_size()` bytes.
pub fn check_batch(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    if bytes.len() < LOG_OVERHEAD + 5 {
        return Err(BatchError::Truncated {
            available: bytes.len(),
            needed: LOG_OVERHEAD + 5,
        });
    }
    let batch_length = be_i32(bytes, 8);
    if batch_length < (HEADER_SIZE - LOG_OVERHEAD) as i32 {
        return Err(BatchError::InvalidLength(batch_length));
    }
    let magic = bytes[MAGIC_OFFSET] as i8;
    if magic != 2 {
        return Err(BatchError::InvalidMagic(magic));
    }
    let total = LOG_OVERHEAD + batch_length as usize;
    if bytes.len() < total {
        return Err(BatchError::Truncated {
            available: bytes.len(),
            needed: total,
        });
    }
    let header = BatchHeader::parse(bytes)?;
    let computed = crc32c::crc32c(&bytes[ATTRIBUTES_OFFSET..total]);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    Ok(header)
}

/// Validates a batch that a producer sent: frame checks plus the header's own consistency.
pub fn validate_produced_batch(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = check_batch(bytes)?;
    if header.records_count < 1 || header.last_offset_delta != header.records_count - 1 {
        return Err(BatchError::CountMismatch {
            count: header.records_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    if header.base_offset != 0 {
        return Err(BatchError::InvalidBaseOffset(header.base_offset));
    }
    Ok(header)
}

/// Rewrites the timestamps of a batch to `now_ms` and marks it LogAppendTime, recomputing the CRC.
pub fn stamp_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attributes = be_i16(batch, ATTRIBUTES_OFFSET) | ATTR_TIMESTAMP_TYPE;
    batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    // Kafka sets both the base and the max timestamp under LogAppendTime.
    batch[27..35].copy_from_slice(&now_ms.to_be_bytes());
    batch[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Splits a produce request's records into validated batches: (offset in `bytes`, header).
pub fn split_produced(bytes: &[u8]) -> Result<Vec<(usize, BatchHeader)>, BatchError> {
    let mut out = Vec::with_capacity(1);
    let mut at = 0;
    while at < bytes.len() {
        let header = validate_produced_batch(&bytes[at..])?;
        out.push((at, header));
        at += header.total_size();
    }
    Ok(out)
}

/// Builds a v2 batch from already-encoded records (tests, tools and control batches).
#[allow(clippy::too_many_arguments)]
pub fn build_batch(
    base_offset: i64,
    attributes: i16,
    last_offset_delta: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    records_count: i32,
    records: &[u8],
) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER_SIZE + records.len());
    b.extend_from_slice(&base_offset.to_be_bytes());
    b.extend_from_slice(&((HEADER_SIZE - LOG_OVERHEAD + records.len()) as i32).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes());
    b.push(2);
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&attributes.to_be_bytes());
    b.extend_from_slice(&last_offset_delta.to_be_bytes());
    b.extend_from_slice(&base_timestamp.to_be_bytes());
    b.extend_from_slice(&max_timestamp.to_be_bytes());
    b.extend_from_slice(&producer_id.to_be_bytes());
    b.extend_from_slice(&producer_epoch.to_be_bytes());
    b.extend_from_slice(&base_sequence.to_be_bytes());
    b.extend_from_slice(&records_count.to_be_bytes());
    b.extend_from_slice(records);
    let crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..]);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Encodes simple records (no headers) the way a v2 producer does; for tests and tools.
/// A record to encode: (key, value), each None for null.
pub type KeyValueRef<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

pub fn encode_simple_records(values: &[&[u8]], timestamp_deltas: &[i64]) -> Vec<u8> {
    let records: Vec<KeyValueRef<'_>> = values.iter().map(|v| (None, Some(*v))).collect();
    encode_records(&records, timestamp_deltas)
}

/// Encodes records of (key, value), each None for null, with the given timestamp deltas.
pub fn encode_records(records: &[KeyValueRef<'_>], timestamp_deltas: &[i64]) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        loop {
            if z < 0x80 {
                out.push(z as u8);
                return;
            }
            out.push((z as u8 & 0x7f) | 0x80);
            z >>= 7;
        }
    }
    fn bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
        match b {
            Some(b) => {
                varint(out, b.len() as i64);
                out.extend_from_slice(b);
            }
            None => varint(out, -1),
        }
    }
    let mut out = Vec::new();
    for (i, (key, value)) in records.iter().enumerate() {
        let mut body = Vec::new();
        body.push(0); // attributes
        varint(&mut body, *timestamp_deltas.get(i).unwrap_or(&0));
        varint(&mut body, i as i64);
        bytes(&mut body, *key);
        bytes(&mut body, *value);
        varint(&mut body, 0); // no headers
        varint(&mut out, body.len() as i64);
        out.extend_from_slice(&body);
    }
    out
}

/// An uncompressed batch of (key, value) records, all with CreateTime `timestamp`.
pub fn keyed_batch(records: &[KeyValueRef<'_>], timestamp: i64) -> Vec<u8> {
    let encoded = encode_records(records, &vec![0; records.len()]);
    let n = records.len() as i32;
    build_batch(
        0,
        0,
        n - 1,
        timestamp,
        timestamp,
        NO_PRODUCER_ID,
        -1,
        NO_SEQUENCE,
        n,
        &encoded,
    )
}

/// An uncompressed transactional batch of a producer without sequences (a coordinator's
/// writes in a transaction, such as the offsets of Kafka's TxnOffsetCommit).
pub fn transactional_batch(
    records: &[KeyValueRef<'_>],
    producer_id: i64,
    producer_epoch: i16,
    timestamp: i64,
) -> Vec<u8> {
    let encoded = encode_records(records, &vec![0; records.len()]);
    let n = records.len() as i32;
    build_batch(
        0,
        ATTR_TRANSACTIONAL,
        n - 1,
        timestamp,
        timestamp,
        producer_id,
        producer_epoch,
        NO_SEQUENCE,
        n,
        &encoded,
    )
}

/// A batch of `values` with CreateTime `timestamp` for each record, no producer id.
pub fn simple_batch(values: &[&[u8]], timestamp: i64) -> Vec<u8> {
    let records: Vec<KeyValueRef<'_>> = values.iter().map(|v| (None, Some(*v))).collect();
    keyed_batch(&records, timestamp)
}

/// Reads a zigzag varint at `*at`, advancing it; `None` when malformed or truncated.
pub fn read_varint(bytes: &[u8], at: &mut usize) -> Option<i64> {
    let mut value: u64 = 0;
    let mut shift = 0;
    loop {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
    Some(((value >> 1) as i64) ^ -((value & 1) as i64))
}

/// One record of an uncompressed batch, as far as the broker and its tools look into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub offset_delta: i32,
    pub timestamp: i64,
    /// None for a null key.
    pub key: Option<&'a [u8]>,
    /// None for a null value.
    pub value: Option<&'a [u8]>,
}

/// The records of an uncompressed batch; `None` for a compressed batch or malformed records.
/// Used by ListOffsets and tests, never on the produce or fetch path.
pub fn uncompressed_records<'a>(
    batch: &'a [u8],
    header: &BatchHeader,
) -> Option<Vec<RecordView<'a>>> {
    if header.compression() != 0 {
        return None;
    }
    // The count comes from the batch; every record takes at least one byte.
    let mut out = Vec::with_capacity((header.records_count.max(0) as usize).min(batch.len()));
    let mut at = HEADER_SIZE;
    let end = header.total_size().min(batch.len());
    for _ in 0..header.records_count {
        let length = read_varint(batch, &mut at)?;
        let record_end = at.checked_add(usize::try_from(length).ok()?)?;
        if record_end > end {
            return None;
        }
        at += 1; // attributes
        let timestamp_delta = read_varint(batch, &mut at)?;
        let offset_delta = read_varint(batch, &mut at)?;
        let key_length = read_varint(batch, &mut at)?;
        let key = if key_length < 0 {
            None
        } else {
            let key_end = at.checked_add(key_length as usize)?;
            if key_end > record_end {
                return None;
            }
            let key = &batch[at..key_end];
            at = key_end;
            Some(key)
        };
        let value_length = read_varint(batch, &mut at)?;
        let value = if value_length < 0 {
            None
        } else {
            let value_end = at.checked_add(value_length as usize)?;
            if value_end > record_end {
                return None;
            }
            Some(&batch[at..value_end])
        };
        let timestamp = if header.is_log_append_time() {
            header.max_timestamp
        } else {
            header.base_timestamp.wrapping_add(timestamp_delta)
        };
        out.push(RecordView {
            offset_delta: offset_delta as i32,
            timestamp,
            key,
            value,
        });
        at = record_end;
    }
    Some(out)
}

/// (offset delta, timestamp) of each record of an uncompressed batch.
pub fn record_timestamps(batch: &[u8], header: &BatchHeader) -> Option<Vec<(i32, i64)>> {
    uncompressed_records(batch, header).map(|records| {
        records
            .iter()
            .map(|r| (r.offset_delta, r.timestamp))
            .collect()
    })
}

/// Record values from every whole batch in `bytes` (a slice read from a segment), with their
/// offsets; for tests and tools.
pub fn values_in(bytes: &[u8]) -> Vec<(i64, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let Ok(h) = check_batch(&bytes[at..]) else {
            break;
        };
        for r in uncompressed_records(&bytes[at..at + h.total_size()], &h).unwrap_or_default() {
            out.push((
                h.base_offset + r.offset_delta as i64,
                r.value.map(<[u8]>::to_vec),
            ));
        }
        at += h.total_size();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn valid_batch_round_trips_its_header() {
        let b = simple_batch(&[b"a", b"bc"], 1000);
        let h = validate_produced_batch(&b).unwrap();
        assert_eq!(h.records_count, 2);
        assert_eq!(h.last_offset_delta, 1);
        assert_eq!(h.max_timestamp, 1000);
        assert_eq!(h.total_size(), b.len());
    }

    #[test]
    fn flipped_bit_fails_crc() {
        let mut b = simple_batch(&[b"hello"], 1);
        let last = b.len() - 1;
        b[last] ^= 1;
        assert!(matches!(
            check_batch(&b),
            Err(BatchError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn wrong_magic_is_refused() {
        let mut b = simple_batch(&[b"x"], 1);
        b[MAGIC_OFFSET] = 1;
        assert_eq!(check_batch(&b), Err(BatchError::InvalidMagic(1)));
    }

    #[test]
    fn count_mismatch_is_refused() {
        let records = encode_simple_records(&[b"a"], &[0]);
        let b = build_batch(0, 0, 3, 0, 0, -1, -1, -1, 1, &records);
        assert!(matches!(
            validate_produced_batch(&b),
            Err(BatchError::CountMismatch { .. })
        ));
    }

    #[test]
    fn length_past_end_is_truncated() {
        let mut b = simple_batch(&[b"abc"], 1);
        b.truncate(b.len() - 1);
        assert!(matches!(check_batch(&b), Err(BatchError::Truncated { .. })));
    }

    #[test]
    fn negative_length_is_invalid() {
        let mut b = simple_batch(&[b"abc"], 1);
        b[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(check_batch(&b), Err(BatchError::InvalidLength(-5)));
    }

    #[test]
    fn log_append_time_stamp_keeps_crc_valid() {
        let mut b = simple_batch(&[b"abc"], 1);
        stamp_log_append_time(&mut b, 777);
        let h = check_batch(&b).unwrap();
        assert!(h.is_log_append_time());
        assert_eq!(h.max_timestamp, 777);
    }

    #[test]
    fn record_timestamps_of_uncompressed_batch() {
        let records = encode_simple_records(&[b"a", b"b", b"c"], &[0, 5, 2]);
        let b = build_batch(0, 0, 2, 100, 105, -1, -1, -1, 3, &records);
        let h = check_batch(&b).unwrap();
        assert_eq!(
            record_timestamps(&b, &h).unwrap(),
            vec![(0, 100), (1, 105), (2, 102)]
        );
    }

    #[test]
    fn last_sequence_wraps() {
        let records = encode_simple_records(&[b"a", b"b"], &[0, 0]);
        let b = build_batch(0, 0, 1, 0, 0, 5, 0, i32::MAX, 2, &records);
        assert_eq!(BatchHeader::parse(&b).unwrap().last_sequence(), 0);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = split_produced(&bytes);
        }

        #[test]
        fn any_single_bit_flip_in_crc_range_is_detected(values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 1..5), bit in any::<usize>()) {
            let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
            let mut b = simple_batch(&refs, 5);
            let span = (b.len() - ATTRIBUTES_OFFSET) * 8;
            let bit = bit % span;
            b[ATTRIBUTES_OFFSET + bit / 8] ^= 1 << (bit % 8);
            prop_assert!(check_batch(&b).is_err());
        }
    }
}
