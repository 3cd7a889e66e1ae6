//! Response framing, with zero-copy record sets.
//!
//! A response is a list of parts: encoded bytes and, for Fetch, byte ranges of segment files that
//! the connection sends with `sendfile(2)`. The message itself is encoded by the kafka-protocol
//! crate; a record set that should come from a file is given to the encoder as a slice of a
//! shared zero-filled placeholder of the right length, and [`SpliceBuf`] recognises that slice by
//! its address and records "send this file range here" instead of copying it.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::{Encodable, HeaderVersion};
use strata_storage::io::IoFile;

/// What the writer sends for one request.
pub enum Slot {
    /// Already known: a response, or nothing (acks=0).
    Ready(Option<Response>),
    /// Being worked on.
    Pending(tokio::task::JoinHandle<Option<Response>>),
    /// Send what came before, then close the connection (an acks=0 produce that failed).
    Close,
}

/// Why a connection was closed by the broker.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {size} bytes is larger than socket.request.max.bytes {max}")]
    FrameTooLarge { size: i64, max: usize },
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

/// The largest record set sent from a file in one piece; larger ones are copied.
pub const MAX_SPLICE_BYTES: usize = 64 << 20;

/// One piece of a response on the wire.
#[derive(Debug, Clone)]
pub enum Part {
    Bytes(Bytes),
    File {
        file: Arc<dyn IoFile>,
        position: u64,
        len: u64,
    },
}

/// An encoded response, size prefix included.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub parts: Vec<Part>,
}

impl Response {
    pub fn len(&self) -> u64 {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Bytes(b) => b.len() as u64,
                Part::File { len, .. } => *len,
            })
            .sum()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A file range to be sent in place of a placeholder.
#[derive(Debug, Clone)]
pub struct FileRange {
    pub file: Arc<dyn IoFile>,
    pub position: u64,
    pub len: u64,
}

fn placeholder() -> &'static Bytes {
    static PLACEHOLDER: OnceLock<Bytes> = OnceLock::new();
    // Zeroed allocation: the kernel maps zero pages lazily, and nothing ever writes here.
    PLACEHOLDER.get_or_init(|| Bytes::from(vec![0u8; MAX_SPLICE_BYTES]))
}

/// Bytes standing for a file range of `len` bytes in a message given to the encoder.
pub fn placeholder_for(len: usize) -> Bytes {
    placeholder().slice(0..len)
}

fn is_placeholder(s: &[u8]) -> bool {
    let base = placeholder().as_ptr() as usize;
    let at = s.as_ptr() as usize;
    !s.is_empty() && at >= base && at + s.len() <= base + MAX_SPLICE_BYTES
}

/// An encoding buffer that turns placeholders into file parts.
pub struct SpliceBuf {
    current: BytesMut,
    parts: Vec<Part>,
    ranges: VecDeque<FileRange>,
    /// Bytes already moved into `parts`.
    emitted: usize,
}

impl SpliceBuf {
    pub fn new(capacity: usize, ranges: Vec<FileRange>) -> SpliceBuf {
        SpliceBuf {
            current: BytesMut::with_capacity(capacity),
            parts: Vec::new(),
            ranges: ranges.into(),
            emitted: 0,
        }
    }
    pub fn finish(mut self) -> Response {
        if !self.current.is_empty() {
            self.parts.push(Part::Bytes(self.current.freeze()));
        }
        debug_assert!(self.ranges.is_empty(), "every file range was placed");
        Response { parts: self.parts }
    }
}

// SAFETY: every method delegates to the inner `BytesMut`, which upholds `BufMut`'s contract.
unsafe impl BufMut for SpliceBuf {
    fn remaining_mut(&self) -> usize {
        self.current.remaining_mut()
    }
    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller initialised `cnt` bytes of `chunk_mut()`, which is `current`'s.
        unsafe { self.current.advance_mut(cnt) }
    }
    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.current.chunk_mut()
    }
    fn put_slice(&mut self, src: &[u8]) {
        if is_placeholder(src)
            && self
                .ranges
                .front()
                .is_some_and(|r| r.len == src.len() as u64)
        {
            let range = self.ranges.pop_front().expect("checked above");
            let done = std::mem::take(&mut self.current);
            self.emitted += done.len() + src.len();
            self.parts.push(Part::Bytes(done.freeze()));
            self.parts.push(Part::File {
                file: range.file,
                position: range.position,
                len: range.len,
            });
        } else {
            self.current.extend_from_slice(src);
        }
    }
}

impl ByteBufMut for SpliceBuf {
    fn offset(&self) -> usize {
        self.emitted + self.current.len()
    }
    fn seek(&mut self, offset: usize) {
        self.current.resize(offset.saturating_sub(self.emitted), 0);
    }
    fn range(&mut self, r: std::ops::Range<usize>) -> &mut [u8] {
        let start = r.start.saturating_sub(self.emitted);
        let end = r.end.saturating_sub(self.emitted);
        &mut self.current[start..end]
    }
}

/// Encodes a response message with its header and size prefix.
pub fn encode_response<R: Encodable + HeaderVersion>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
    ranges: Vec<FileRange>,
) -> Result<Response, EncodeError> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = api_key.response_header_version(version);
    let size = header
        .compute_size(header_version)
        .map_err(|e| EncodeError(e.to_string()))?
        + body
            .compute_size(version)
            .map_err(|e| EncodeError(e.to_string()))?;
    let inline = size - ranges.iter().map(|r| r.len as usize).sum::<usize>();
    let mut buf = SpliceBuf::new(inline + 4, ranges);
    buf.put_i32(size as i32);
    header
        .encode(&mut buf, header_version)
        .map_err(|e| EncodeError(e.to_string()))?;
    body.encode(&mut buf, version)
        .map_err(|e| EncodeError(e.to_string()))?;
    Ok(buf.finish())
}

/// A message that could not be encoded (a bug: every response is built by the broker).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode response: {0}")]
pub struct EncodeError(pub String);
