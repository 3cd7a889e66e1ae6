//! The records inside a v2 batch, for the two places that must look at them: the key check of
//! a produce to a compacted topic, and the log cleaner, which keeps some records of a batch and
//! writes them back with the batch's own codec, base offset and last offset delta.
//!
//! Record layout (message format v2), after the batch header and inside the compression:
//! ```text
//! length varint | attributes i8 | timestamp delta varlong | offset delta varint |
//! key length varint | key | value length varint | value | header count varint | headers
//! ```
//! Lengths of -1 are null. Deltas are relative to the batch's base offset and base timestamp,
//! so a record's bytes stay valid in any batch with the same two bases.

pub mod compression;

use std::io;

use crate::batch::{self, BatchHeader, ATTRIBUTES_OFFSET, CRC_OFFSET, HEADER_SIZE, LOG_OVERHEAD};

/// Attributes bit 6: the batch's base timestamp holds the delete horizon (KIP-534), set by the
/// cleaner on a batch holding tombstones or a marker of an emptied transaction.
pub const ATTR_DELETE_HORIZON: i16 = 1 << 6;

/// The most bytes a batch's records may expand to when decompressed (a bomb is refused).
pub const DECOMPRESSION_LIMIT: usize = 64 << 20;

/// One record, located in the records bytes of its batch (decompressed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef {
    /// The record's bytes, length prefix included: `start..end`.
    pub start: usize,
    pub end: usize,
    /// The record's attributes byte (unused by v2, kept as written).
    attributes: u8,
    /// Where the offset delta begins (what follows the timestamp delta).
    rest: usize,
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    /// The key's bytes, `None` for a null key.
    pub key: Option<(usize, usize)>,
    /// False for a null value (a tombstone).
    pub has_value: bool,
}

impl RecordRef {
    pub fn key<'a>(&self, records: &'a [u8]) -> Option<&'a [u8]> {
        self.key.map(|(s, e)| &records[s..e])
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

fn varint(bytes: &[u8], at: &mut usize) -> io::Result<i64> {
    batch::read_varint(bytes, at).ok_or_else(|| invalid("malformed varint in a record"))
}

/// Skips a length-prefixed field; returns its range, `None` when null (negative length).
fn field(bytes: &[u8], at: &mut usize, end: usize) -> io::Result<Option<(usize, usize)>> {
    let len = varint(bytes, at)?;
    if len < 0 {
        return Ok(None);
    }
    let start = *at;
    let stop = start
        .checked_add(len as usize)
        .filter(|s| *s <= end)
        .ok_or_else(|| invalid("record field past the record's end"))?;
    *at = stop;
    Ok(Some((start, stop)))
}

/// Parses `count` records that must fill `records` exactly.
pub fn parse(records: &[u8], count: i32) -> io::Result<Vec<RecordRef>> {
    // Every record takes at least a few bytes, so the count cannot make this allocate much.
    let mut out = Vec::with_capacity((count.max(0) as usize).min(records.len()));
    let mut at = 0;
    for _ in 0..count.max(0) {
        let start = at;
        let length = varint(records, &mut at)?;
        let end = usize::try_from(length)
            .ok()
            .and_then(|l| at.checked_add(l))
            .filter(|e| *e <= records.len())
            .ok_or_else(|| invalid("record length past the batch's end"))?;
        let attributes = *records
            .get(at)
            .ok_or_else(|| invalid("record past the batch's end"))?;
        at += 1;
        let timestamp_delta = varint(records, &mut at)?;
        let rest = at;
        let offset_delta = varint(records, &mut at)?;
        let offset_delta =
            i32::try_from(offset_delta).map_err(|_| invalid("record offset delta out of range"))?;
        let key = field(records, &mut at, end)?;
        let has_value = field(records, &mut at, end)?.is_some();
        let headers = varint(records, &mut at)?;
        for _ in 0..headers.max(0) {
            field(records, &mut at, end)?;
            field(records, &mut at, end)?;
            if at > end {
                return Err(invalid("record header past the record's end"));
            }
        }
        if headers < 0 || at != end {
            return Err(invalid("record does not end where its length says"));
        }
        out.push(RecordRef {
            start,
            end,
            attributes,
            rest,
            offset_delta,
            timestamp_delta,
            key,
            has_value,
        });
    }
    if at != records.len() {
        return Err(invalid("bytes after the batch's last record"));
    }
    Ok(out)
}

/// The records of a checked batch (`batch` is the whole batch): decompressed, and located.
pub fn decode(batch: &[u8], header: &BatchHeader) -> io::Result<(Vec<u8>, Vec<RecordRef>)> {
    let end = header.total_size().min(batch.len());
    let body = batch
        .get(HEADER_SIZE..end)
        .ok_or_else(|| invalid("batch shorter than its header"))?;
    let records = compression::decompress(header.compression(), body, DECOMPRESSION_LIMIT)?;
    let refs = parse(&records, header.records_count)?;
    Ok((records, refs))
}

/// The indexes in the batch of its records without a key (Kafka refuses them on a compacted
/// topic, naming each); an error when the records cannot be read.
pub fn keyless_records(batch: &[u8], header: &BatchHeader) -> io::Result<Vec<i32>> {
    let (_, refs) = decode(batch, header)?;
    Ok(refs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.key.is_none())
        .map(|(i, _)| i as i32)
        .collect())
}

/// The delete horizon of a batch the cleaner marked (KIP-534), else None.
pub fn delete_horizon(header: &BatchHeader) -> Option<i64> {
    (header.attributes & ATTR_DELETE_HORIZON != 0).then_some(header.base_timestamp)
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Writes `batch` again with only the records `kept` (of `refs`, in `records`), with the
/// batch's base offset, last offset delta, producer fields and codec; with `horizon`, the batch
/// is marked with that delete horizon (its base timestamp, the records' timestamp deltas
/// rebased on it). No record kept gives an empty batch (Kafka's, kept for a producer's state):
/// uncompressed, both timestamps the old maximum.
pub fn rebuild(
    batch: &[u8],
    header: &BatchHeader,
    records: &[u8],
    kept: &[RecordRef],
    horizon: Option<i64>,
) -> io::Result<Vec<u8>> {
    let mut attributes = header.attributes;
    let mut base_timestamp = header.base_timestamp;
    let mut max_timestamp = header.max_timestamp;
    let mut body = Vec::new();
    if kept.is_empty() {
        attributes &= !(0x7 | ATTR_DELETE_HORIZON);
        base_timestamp = header.max_timestamp;
    } else {
        if let Some(h) = horizon {
            attributes |= ATTR_DELETE_HORIZON;
            base_timestamp = h;
        }
        let mut plain = Vec::with_capacity(records.len());
        if !header.is_log_append_time() {
            max_timestamp = i64::MIN;
        }
        for r in kept {
            let timestamp = header.base_timestamp.wrapping_add(r.timestamp_delta);
            if !header.is_log_append_time() {
                max_timestamp = max_timestamp.max(timestamp);
            }
            if base_timestamp == header.base_timestamp {
                plain.extend_from_slice(&records[r.start..r.end]);
            } else {
                let mut rec = vec![r.attributes];
                put_varint(&mut rec, timestamp.wrapping_sub(base_timestamp));
                rec.extend_from_slice(&records[r.rest..r.end]);
                put_varint(&mut plain, rec.len() as i64);
                plain.extend_from_slice(&rec);
            }
        }
        body = compression::compress(header.compression(), &plain)?;
    }
    let mut out = Vec::with_capacity(HEADER_SIZE + body.len());
    out.extend_from_slice(&batch[..HEADER_SIZE]);
    out.extend_from_slice(&body);
    let length = (out.len() - LOG_OVERHEAD) as i32;
    out[8..12].copy_from_slice(&length.to_be_bytes());
    out[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    out[27..35].copy_from_slice(&base_timestamp.to_be_bytes());
    out[35..43].copy_from_slice(&max_timestamp.to_be_bytes());
    out[57..61].copy_from_slice(&(kept.len() as i32).to_be_bytes());
    let crc = crc32c::crc32c(&out[ATTRIBUTES_OFFSET..]);
    out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{
        build_batch, check_batch, encode_records, uncompressed_records, KeyValueRef,
    };

    fn batch_of(codec: i16, records: &[KeyValueRef<'_>]) -> Vec<u8> {
        let deltas: Vec<i64> = (0..records.len() as i64).map(|i| i * 10).collect();
        let plain = encode_records(records, &deltas);
        let body = compression::compress(codec, &plain).unwrap();
        let n = records.len() as i32;
        let mut b = build_batch(
            0,
            codec,
            n - 1,
            1000,
            1000 + 10 * (n as i64 - 1),
            7,
            1,
            5,
            n,
            &body,
        );
        b[0..8].copy_from_slice(&100i64.to_be_bytes());
        b
    }

    #[test]
    fn keeps_chosen_records_with_offsets_codec_and_sequences() {
        let recs: Vec<KeyValueRef<'_>> = vec![
            (Some(b"a"), Some(b"1")),
            (Some(b"b"), None),
            (Some(b"c"), Some(b"3")),
        ];
        for codec in [0, 1, 2, 3, 4] {
            let b = batch_of(codec, &recs);
            let h = check_batch(&b).unwrap();
            assert!(keyless_records(&b, &h).unwrap().is_empty());
            let (records, refs) = decode(&b, &h).unwrap();
            assert_eq!(refs.len(), 3);
            assert_eq!(refs[1].key(&records), Some(&b"b"[..]));
            assert!(!refs[1].has_value);
            let kept = [refs[1]];
            let out = rebuild(&b, &h, &records, &kept, None).unwrap();
            let oh = check_batch(&out).unwrap();
            assert_eq!(oh.base_offset, 100);
            assert_eq!(oh.last_offset_delta, 2, "the last offset stays");
            assert_eq!(oh.records_count, 1);
            assert_eq!(oh.compression(), codec);
            assert_eq!(
                (oh.producer_id, oh.producer_epoch, oh.base_sequence),
                (7, 1, 5)
            );
            assert_eq!(oh.max_timestamp, 1010);
            let (r2, refs2) = decode(&out, &oh).unwrap();
            assert_eq!(refs2[0].offset_delta, 1);
            assert_eq!(refs2[0].key(&r2), Some(&b"b"[..]));
        }
    }

    #[test]
    fn a_delete_horizon_rebases_timestamps() {
        let recs: Vec<KeyValueRef<'_>> = vec![(Some(b"a"), Some(b"1")), (Some(b"b"), None)];
        let b = batch_of(0, &recs);
        let h = check_batch(&b).unwrap();
        let (records, refs) = decode(&b, &h).unwrap();
        let out = rebuild(&b, &h, &records, &refs, Some(5_000_000)).unwrap();
        let oh = check_batch(&out).unwrap();
        assert_eq!(delete_horizon(&oh), Some(5_000_000));
        let views = uncompressed_records(&out, &oh).unwrap();
        assert_eq!(
            views.iter().map(|v| v.timestamp).collect::<Vec<_>>(),
            vec![1000, 1010],
            "record timestamps are unchanged"
        );
        assert_eq!(oh.max_timestamp, 1010);
    }

    #[test]
    fn nothing_kept_gives_an_empty_batch() {
        let recs: Vec<KeyValueRef<'_>> = vec![(Some(b"a"), Some(b"1"))];
        let b = batch_of(4, &recs);
        let h = check_batch(&b).unwrap();
        let (records, _) = decode(&b, &h).unwrap();
        let out = rebuild(&b, &h, &records, &[], None).unwrap();
        let oh = check_batch(&out).unwrap();
        assert_eq!(
            (oh.records_count, oh.compression(), oh.base_sequence),
            (0, 0, 5)
        );
        assert_eq!(out.len(), HEADER_SIZE);
    }

    #[test]
    fn keyless_records_are_found_and_bad_records_refused() {
        let recs: Vec<KeyValueRef<'_>> = vec![(Some(b"a"), Some(b"1")), (None, Some(b"2"))];
        let b = batch_of(1, &recs);
        assert!(!keyless_records(&b, &check_batch(&b).unwrap())
            .unwrap()
            .is_empty());
        // A count that does not match the records.
        let plain = encode_records(&recs, &[0, 0]);
        let bad = build_batch(0, 0, 2, 0, 0, -1, -1, -1, 3, &plain);
        assert!(decode(&bad, &check_batch(&bad).unwrap()).is_err());
        let short = build_batch(0, 0, 0, 0, 0, -1, -1, -1, 1, &plain);
        assert!(decode(&short, &check_batch(&short).unwrap()).is_err());
    }
}
