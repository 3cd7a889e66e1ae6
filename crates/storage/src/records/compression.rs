//! Kafka's record codecs (attributes bits 0-2): 1 gzip, 2 snappy (xerial framing, raw accepted),
//! 3 lz4 (the LZ4 frame format), 4 zstd. Decompression is bounded: a small batch that would
//! expand past `limit` bytes (a decompression bomb) is refused rather than allocated.

use std::io::{self, Read, Write};

pub const NONE: i16 = 0;
pub const GZIP: i16 = 1;
pub const SNAPPY: i16 = 2;
pub const LZ4: i16 = 3;
pub const ZSTD: i16 = 4;

/// xerial snappy-java's stream header: magic, version 1, compatible version 1.
const SNAPPY_MAGIC: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
/// snappy-java's block size, which Kafka's Java producer writes.
const SNAPPY_BLOCK: usize = 32 * 1024;
/// Kafka's default `compression.zstd.level`.
const ZSTD_LEVEL: i32 = 3;

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// Reads all of `reader` into a vector of at most `limit` bytes.
fn read_bounded(reader: impl Read, limit: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    reader.take(limit as u64 + 1).read_to_end(&mut out)?;
    if out.len() > limit {
        return Err(invalid("records expand past the decompression limit"));
    }
    Ok(out)
}

/// The records of a batch compressed with `codec`, decompressed; at most `limit` bytes.
pub fn decompress(codec: i16, bytes: &[u8], limit: usize) -> io::Result<Vec<u8>> {
    match codec {
        NONE => {
            if bytes.len() > limit {
                return Err(invalid("records past the limit"));
            }
            Ok(bytes.to_vec())
        }
        GZIP => read_bounded(flate2::read::MultiGzDecoder::new(bytes), limit),
        SNAPPY => snappy_decompress(bytes, limit),
        LZ4 => read_bounded(lz4::Decoder::new(bytes)?, limit),
        ZSTD => read_bounded(zstd::stream::read::Decoder::new(bytes)?, limit),
        _ => Err(invalid("unknown compression codec")),
    }
}

fn snappy_decompress(bytes: &[u8], limit: usize) -> io::Result<Vec<u8>> {
    let raw = |block: &[u8], out: &mut Vec<u8>| -> io::Result<()> {
        let len = snap::raw::decompress_len(block).map_err(|_| invalid("bad snappy block"))?;
        if out.len() + len > limit {
            return Err(invalid("records expand past the decompression limit"));
        }
        let at = out.len();
        out.resize(at + len, 0);
        snap::raw::Decoder::new()
            .decompress(block, &mut out[at..])
            .map_err(|_| invalid("bad snappy block"))?;
        Ok(())
    };
    let mut out = Vec::new();
    if !bytes.starts_with(SNAPPY_MAGIC) {
        // Raw snappy, as snappy-java's reader also accepts.
        raw(bytes, &mut out)?;
        return Ok(out);
    }
    let mut at = SNAPPY_MAGIC.len();
    while at < bytes.len() {
        let len = bytes
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")) as usize)
            .ok_or_else(|| invalid("truncated snappy block length"))?;
        at += 4;
        let block = at
            .checked_add(len)
            .and_then(|end| bytes.get(at..end))
            .ok_or_else(|| invalid("truncated snappy block"))?;
        raw(block, &mut out)?;
        at += len;
    }
    Ok(out)
}

/// `records` compressed with `codec`, as Kafka's producers write it.
pub fn compress(codec: i16, records: &[u8]) -> io::Result<Vec<u8>> {
    match codec {
        NONE => Ok(records.to_vec()),
        GZIP => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(records)?;
            e.finish()
        }
        SNAPPY => {
            let mut out = SNAPPY_MAGIC.to_vec();
            let mut encoder = snap::raw::Encoder::new();
            for block in records.chunks(SNAPPY_BLOCK) {
                let compressed = encoder
                    .compress_vec(block)
                    .map_err(|e| io::Error::other(e.to_string()))?;
                out.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
                out.extend_from_slice(&compressed);
            }
            Ok(out)
        }
        LZ4 => {
            let mut e = lz4::EncoderBuilder::new()
                .block_mode(lz4::BlockMode::Independent)
                .build(Vec::new())?;
            e.write_all(records)?;
            let (out, result) = e.finish();
            result.map(|_| out)
        }
        ZSTD => zstd::bulk::compress(records, ZSTD_LEVEL),
        _ => Err(invalid("unknown compression codec")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_round_trips() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_be_bytes())
            .collect();
        for codec in [NONE, GZIP, SNAPPY, LZ4, ZSTD] {
            let c = compress(codec, &data).unwrap();
            assert_eq!(
                decompress(codec, &c, data.len()).unwrap(),
                data,
                "codec {codec}"
            );
            if codec != NONE {
                assert!(c.len() < data.len(), "codec {codec} compresses");
            }
        }
    }

    #[test]
    fn raw_snappy_is_read_too() {
        let data = b"hello hello hello hello".repeat(10);
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(decompress(SNAPPY, &raw, 1 << 20).unwrap(), data);
    }

    #[test]
    fn expansion_past_the_limit_is_refused() {
        let zeros = vec![0u8; 10 << 20];
        for codec in [GZIP, SNAPPY, LZ4, ZSTD] {
            let c = compress(codec, &zeros).unwrap();
            assert!(c.len() < 1 << 20);
            assert!(decompress(codec, &c, 1 << 20).is_err(), "codec {codec}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for codec in [GZIP, SNAPPY, LZ4, ZSTD, 5, 7] {
            for bytes in [
                &b""[..],
                b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01\xff\xff",
                b"xyz",
            ] {
                let _ = decompress(codec, bytes, 1 << 20);
            }
        }
    }
}
