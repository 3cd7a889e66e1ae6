//! An internal topic a coordinator keeps its state in (`__consumer_offsets`,
//! `__transaction_state`): keyed records written by the broker, replayed whole at startup.
//!
//! Records are appended while the coordinator holds its lock (so they reach the log in the order
//! the coordinator decided them), but syncs never run there: a flush that the topic's flush
//! policy or a rewrite asks for is staged, and [`InternalLog::complete_staged`] runs it once the
//! coordinator's lock is released (the request's response waits for it; the coordinator's timer
//! completes the others).
//!
//! Until the log cleaner exists (issue 13), a partition is kept short by a rewrite: when it holds
//! at least [`REWRITE_MIN_RECORDS`] records and more than twice as many as are live, the live
//! ones are written again and everything before them is deleted once the copy is durable.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};

use strata_storage::batch::{self, BatchHeader};
use strata_storage::log::partition::FlushJob;
use strata_storage::log_manager::{LogManager, Partition};
use strata_storage::units::Offset;

/// A partition is rewritten only once it holds this many records.
pub const REWRITE_MIN_RECORDS: u64 = 10_000;

/// A record to write: key and value (None: a tombstone).
pub type KeyValue = (Vec<u8>, Option<Vec<u8>>);

/// Kafka's partition of a key (a group, a transactional id): Java's `String.hashCode`.
pub fn java_hash(s: &str) -> i32 {
    let mut h: i32 = 0;
    for unit in s.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(unit as i32);
    }
    h
}

/// Creates an internal topic when it does not exist: plain files on any channel (small, and
/// read whole at startup), never deleted by time or size.
pub fn ensure_topic(
    logs: &LogManager,
    name: &str,
    partitions: i32,
    segment_bytes: u64,
) -> Result<(), strata_storage::LogError> {
    if logs.topic(name).is_some() {
        return Ok(());
    }
    let overrides: BTreeMap<String, String> = [
        ("segment.bytes", segment_bytes.to_string()),
        ("channel.type", "file".to_string()),
        ("retention.ms", "-1".to_string()),
        ("retention.bytes", "-1".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    logs.create_topic(
        name,
        partitions,
        overrides,
        *uuid::Uuid::new_v4().as_bytes(),
    )?;
    Ok(())
}

/// A flush to run outside the coordinator's lock, and the log start offset a rewrite may move
/// to once it is durable.
struct StagedFlush {
    partition: Arc<Partition>,
    job: FlushJob,
    delete_before: Option<Offset>,
}

pub struct InternalLog {
    logs: Arc<LogManager>,
    topic: &'static str,
    partitions: i32,
    staged: Mutex<Vec<StagedFlush>>,
}

impl std::fmt::Debug for InternalLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalLog")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl InternalLog {
    /// The log over `topic`, which must exist.
    pub fn new(logs: Arc<LogManager>, topic: &'static str) -> io::Result<InternalLog> {
        let t = logs.topic(topic).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("{topic} does not exist"))
        })?;
        Ok(InternalLog {
            partitions: t.partition_count(),
            logs,
            topic,
            staged: Mutex::new(Vec::new()),
        })
    }

    pub fn topic(&self) -> &'static str {
        self.topic
    }

    pub fn partition_count(&self) -> i32 {
        self.partitions
    }

    /// The partition that holds `key`'s records, as Kafka places them.
    pub fn partition_for(&self, key: &str) -> i32 {
        (java_hash(key) & 0x7fff_ffff) % self.partitions.max(1)
    }

    pub fn partition(&self, index: i32) -> io::Result<Arc<Partition>> {
        self.logs
            .topic(self.topic)
            .and_then(|t| t.partition(index))
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "internal partition missing"))
    }

    /// Appends keyed records (no producer) to `partition`.
    pub fn write(&self, partition: i32, records: &[KeyValue]) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        for chunk in records.chunks(500) {
            let refs: Vec<batch::KeyValueRef<'_>> = chunk
                .iter()
                .map(|(k, v)| (Some(k.as_slice()), v.as_deref()))
                .collect();
            self.write_batch(partition, &batch::keyed_batch(&refs, now_ms()))?;
        }
        Ok(())
    }

    /// Appends one whole batch (built by the caller: a transactional one, say) to `partition`.
    pub fn write_batch(&self, partition: i32, bytes: &[u8]) -> io::Result<()> {
        let partition = self.partition(partition)?;
        let mut log = partition.log();
        let info = log
            .append(bytes, now_ms())
            .map_err(|e| io::Error::other(e.to_string()))?;
        if info.needs_flush {
            let job = log.begin_flush()?;
            drop(log);
            self.stage(&partition, job, None);
        }
        Ok(())
    }

    /// Stages a flush of `partition` (a marker appended there asked for one, say).
    pub fn stage_flush(&self, partition: &Arc<Partition>, job: FlushJob) {
        self.stage(partition, job, None);
    }

    fn stage(&self, partition: &Arc<Partition>, job: FlushJob, delete_before: Option<Offset>) {
        self.staged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(StagedFlush {
                partition: partition.clone(),
                job,
                delete_before,
            });
    }

    /// Whether flushes wait to be completed.
    pub fn has_staged(&self) -> bool {
        !self
            .staged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// Runs the staged flushes; call it without the coordinator's lock. A rewrite's old records
    /// are deleted once its copy is durable. The first failure is returned (its directory is
    /// then offline).
    pub fn complete_staged(&self) -> io::Result<()> {
        let staged = std::mem::take(&mut *self.staged.lock().unwrap_or_else(|e| e.into_inner()));
        let mut result = Ok(());
        for s in staged {
            let done = s
                .job
                .run()
                .and_then(|()| s.partition.log().complete_flush(s.job.target_offset))
                .and_then(|()| match s.delete_before {
                    Some(start) => s.partition.log().delete_records_before(start).map(|_| ()),
                    None => Ok(()),
                });
            if let Err(e) = done {
                tracing::warn!(topic = self.topic, partition = s.partition.index, error = %e, "flush failed");
                if result.is_ok() {
                    result = Err(e);
                }
            }
        }
        result
    }

    /// As [`Self::complete_staged`], on the async runtime saying that the thread blocks, so that
    /// other tasks move elsewhere meanwhile.
    pub fn complete_staged_blocking(&self) -> io::Result<()> {
        if !self.has_staged() {
            return Ok(());
        }
        if crate::replica::may_block_in_place() {
            tokio::task::block_in_place(|| self.complete_staged())
        } else {
            self.complete_staged()
        }
    }

    /// Every whole batch of `partition` from its log start, in order: `apply(header, bytes,
    /// from)` where `from` is the first offset not yet applied (a batch read twice is applied
    /// from there).
    pub fn replay(
        &self,
        partition: i32,
        mut apply: impl FnMut(&BatchHeader, &[u8], i64),
    ) -> io::Result<()> {
        let partition = self.partition(partition)?;
        let log = partition.log();
        let end = log.log_end_offset().get();
        let mut offset = log.log_start_offset().get();
        while offset < end {
            let read = log
                .read(Offset(offset), 1 << 20, true)
                .map_err(|e| io::Error::other(e.to_string()))?;
            let Some(slice) = read.slice else { break };
            let mut bytes = vec![0u8; slice.len as usize];
            slice.file.read_exact_at(&mut bytes, slice.position.get())?;
            let mut at = 0;
            let before = offset;
            while at < bytes.len() {
                let Ok(h) = batch::check_batch(&bytes[at..]) else {
                    break;
                };
                apply(&h, &bytes[at..at + h.total_size()], offset);
                offset = offset.max(h.last_offset() + 1);
                at += h.total_size();
            }
            if offset == before {
                // Nothing whole could be read here: skip the batch rather than spin.
                offset += 1;
            }
        }
        Ok(())
    }

    /// The records `partition` holds (log end minus log start), and whether a transaction is
    /// open on it.
    pub fn size(&self, partition: i32) -> io::Result<(u64, bool)> {
        let handle = self.partition(partition)?;
        let log = handle.log();
        Ok((
            log.log_end_offset().since(log.log_start_offset()),
            log.producer_states().first_unstable_offset().is_some(),
        ))
    }

    /// When `partition` holds at least [`REWRITE_MIN_RECORDS`] records, more than twice
    /// `live_count()`, and no open transaction (whose records must stay), writes `live()` again
    /// and deletes everything before it once it is durable. Returns whether it did.
    pub fn maybe_rewrite(
        &self,
        partition: i32,
        live_count: impl FnOnce() -> u64,
        live: impl FnOnce() -> Vec<KeyValue>,
    ) -> io::Result<bool> {
        let (records, open_txn) = self.size(partition)?;
        if records < REWRITE_MIN_RECORDS || open_txn {
            return Ok(false);
        }
        let live_count = live_count();
        if records <= 2 * live_count {
            return Ok(false);
        }
        let handle = self.partition(partition)?;
        let start = handle.log().log_end_offset();
        self.write(partition, &live())?;
        // The rewritten records must be on disk before the old ones may go: the deletion
        // follows the flush, outside the coordinator's lock.
        let job = handle.log().begin_flush()?;
        self.stage(&handle, job, Some(start));
        tracing::debug!(
            topic = self.topic,
            partition,
            live = live_count,
            dropped = records,
            "internal partition rewritten"
        );
        Ok(true)
    }
}

pub fn now_ms() -> i64 {
    strata_storage::now_ms()
}
