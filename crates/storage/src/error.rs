use std::io;

use thiserror::Error;

use crate::batch::BatchError;
use crate::units::{Offset, ProducerId};

/// Why an append was refused. Handlers map each to a Kafka error code.
#[derive(Debug, Error)]
pub enum AppendError {
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] BatchError),
    #[error("record batch of {size} bytes is larger than max.message.bytes {max}")]
    MessageTooLarge { size: usize, max: usize },
    #[error("record batches of {size} bytes do not fit in a segment of {max} bytes")]
    RecordListTooLarge { size: u64, max: u64 },
    #[error("out of order sequence for producer {producer_id}: expected {expected}, got {got}")]
    OutOfOrderSequence {
        producer_id: ProducerId,
        expected: i32,
        got: i32,
    },
    #[error("producer {producer_id} epoch {got} is older than the current {current}")]
    InvalidProducerEpoch {
        producer_id: ProducerId,
        current: i16,
        got: i16,
    },
    /// Records without a key sent to a compacted topic (INVALID_RECORD): their indexes in the
    /// batch, which ProduceResponse's `record_errors` names, as Kafka's does.
    #[error(
        "Compacted topic cannot accept message without key in topic partition {topic}-{partition}."
    )]
    KeylessRecord {
        topic: String,
        partition: i32,
        batch_indexes: Vec<i32>,
    },
    /// Records that cannot be read inside a valid batch frame (CORRUPT_MESSAGE).
    #[error("corrupt records in a batch: {0}")]
    CorruptRecords(String),
    #[error("storage error: {0}")]
    Storage(#[from] io::Error),
    #[error("the log's directory {} is offline after an I/O error", dir.display())]
    Offline { dir: std::path::PathBuf },
    /// A leader's append to a follower's log (only the leader's records may be copied in).
    #[error("this replica follows: only its leader appends")]
    NotLeader,
}

/// Why a read was refused.
#[derive(Debug, Error)]
pub enum ReadError {
    #[error("offset {offset} is outside [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: Offset,
        log_start_offset: Offset,
        log_end_offset: Offset,
    },
    #[error("storage error: {0}")]
    Storage(#[from] io::Error),
    #[error("the log's directory {} is offline after an I/O error", dir.display())]
    Offline { dir: std::path::PathBuf },
}

/// Errors of opening, creating or deleting logs.
#[derive(Debug, Error)]
pub enum LogError {
    #[error("topic {0} already exists")]
    TopicExists(String),
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    #[error("invalid partition count {0}")]
    InvalidPartitions(i32),
    #[error(
        "Failed to acquire lock on file .lock in {dir}. A broker in another process is using \
         this directory."
    )]
    DirectoryLocked { dir: String },
    #[error("{message}")]
    MisplacedTopic { topic: String, message: String },
    // The cause is part of the message and not a `source`, so that an error chain printed
    // whole (`{:#}`) does not repeat it.
    #[error("data directory {dir}: {cause}")]
    Directory { dir: String, cause: io::Error },
    #[error("corrupt metadata file {path}: {reason}")]
    CorruptMetadata { path: String, reason: String },
    #[error("storage error: {0}")]
    Storage(io::Error),
}

impl From<io::Error> for LogError {
    fn from(e: io::Error) -> LogError {
        LogError::Storage(e)
    }
}

impl LogError {
    /// An error of a data or tier directory itself (it cannot be created, read or locked).
    pub fn dir(dir: &std::path::Path, source: io::Error) -> LogError {
        LogError::Directory {
            dir: dir.display().to_string(),
            cause: source,
        }
    }
}
