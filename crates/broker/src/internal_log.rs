//! An internal topic a coordinator keeps its state in (`__consumer_offsets`,
//! `__transaction_state`): keyed records written by the broker, replayed whole at startup.
//!
//! Records are appended while the coordinator holds its lock (so they reach the log in the order
//! the coordinator decided them), but syncs never run there: a flush that the topic's flush
//! policy or a rewrite asks for is staged, and [`InternalLog::complete_staged`] runs it once the
//! coordinator's lock is released (the request's response waits for it; the coordinator's timer
//! completes the others).
//!
//! The topics are compacted (`cleanup.policy=compact`), cleaned by the log cleaner as any other:
//! the latest record of each key stays. The cleaner never touches the active segment, which for
//! these topics is `offsets.topic.segment.bytes` (100 MiB) and could hold millions of dead
//! records a reload would replay; so once the active segment holds at least
//! [`ROLL_MIN_RECORDS`] records and more than twice as many as the partition has live keys, the
//! coordinator rolls it and wakes the cleaner. A reload then reads the cleaned log (about one
//! record per live key) and an active segment of at most about 2 x live + that minimum.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use strata_storage::batch::{self, BatchHeader};
use strata_storage::log::partition::FlushJob;
use strata_storage::log_manager::{LogManager, Partition};
use strata_storage::units::Offset;

/// An active segment is rolled for the cleaner only once it holds this many records.
pub const ROLL_MIN_RECORDS: u64 = 10_000;

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

/// Creates an internal topic when it does not exist: compacted, plain files on any channel
/// (small, and read whole at startup), never deleted by time or size. A topic an earlier
/// version created (delete policy, kept short by rewrites) becomes compacted.
pub fn ensure_topic(
    logs: &LogManager,
    name: &str,
    partitions: i32,
    segment_bytes: u64,
) -> Result<(), strata_storage::LogError> {
    ensure_topic_with_id(
        logs,
        name,
        partitions,
        segment_bytes,
        *uuid::Uuid::new_v4().as_bytes(),
    )
}

/// [`ensure_topic`] with the id a new topic gets.
pub fn ensure_topic_with_id(
    logs: &LogManager,
    name: &str,
    partitions: i32,
    segment_bytes: u64,
    id: [u8; 16],
) -> Result<(), strata_storage::LogError> {
    if let Some(topic) = logs.topic(name) {
        let mut overrides = topic.overrides();
        if overrides.get(CLEANUP_POLICY).map(String::as_str) != Some("compact") {
            overrides.insert(CLEANUP_POLICY.to_string(), "compact".to_string());
            logs.set_topic_overrides(name, overrides)?;
        }
        return Ok(());
    }
    logs.create_topic(name, partitions, internal_overrides(segment_bytes), id)?;
    Ok(())
}

/// An internal topic's configs.
pub fn internal_overrides(segment_bytes: u64) -> BTreeMap<String, String> {
    [
        (CLEANUP_POLICY, "compact".to_string()),
        ("segment.bytes", segment_bytes.to_string()),
        ("channel.type", "file".to_string()),
        ("retention.ms", "-1".to_string()),
        ("retention.bytes", "-1".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The id of internal topic `name` in the cluster `cluster_id`: the same on every node, so that
/// the topic each node made at its start is the one the controller records.
pub fn internal_topic_id(cluster_id: &str, name: &str) -> [u8; 16] {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{cluster_id}/{name}").as_bytes(),
    );
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest.as_ref()[..16]);
    id
}

const CLEANUP_POLICY: &str = "cleanup.policy";

/// A flush to run outside the coordinator's lock.
struct StagedFlush {
    partition: Arc<Partition>,
    job: FlushJob,
}

pub struct InternalLog {
    logs: Arc<LogManager>,
    topic: &'static str,
    partitions: i32,
    staged: Mutex<Vec<StagedFlush>>,
    /// Records read by [`Self::replay`] (what a coordinator's load read).
    replayed: std::sync::atomic::AtomicU64,
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
            replayed: Default::default(),
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
            self.stage(&partition, job);
        }
        Ok(())
    }

    /// Stages a flush of `partition` (a marker appended there asked for one, say).
    pub fn stage_flush(&self, partition: &Arc<Partition>, job: FlushJob) {
        self.stage(partition, job);
    }

    fn stage(&self, partition: &Arc<Partition>, job: FlushJob) {
        self.staged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(StagedFlush {
                partition: partition.clone(),
                job,
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

    /// Runs the staged flushes; call it without the coordinator's lock. The first failure is
    /// returned (its directory is then offline).
    pub fn complete_staged(&self) -> io::Result<()> {
        let staged = std::mem::take(&mut *self.staged.lock().unwrap_or_else(|e| e.into_inner()));
        let mut result = Ok(());
        for s in staged {
            let done = s
                .job
                .run()
                .and_then(|()| s.partition.log().complete_flush(s.job.target_offset));
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
        // A node of a cluster hosts its replicas only: a partition hosted elsewhere has
        // nothing here to replay.
        let Some(partition) = self
            .logs
            .topic(self.topic)
            .and_then(|t| t.partition(partition))
        else {
            return Ok(());
        };
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
                self.replayed
                    .fetch_add(h.records_count.max(0) as u64, Ordering::Relaxed);
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

    /// How many records [`Self::replay`] has read.
    pub fn records_replayed(&self) -> u64 {
        self.replayed.load(Ordering::Relaxed)
    }

    /// When the active segment of `partition` holds at least [`ROLL_MIN_RECORDS`] records and
    /// more than twice `live_count()` (the partition's live keys), rolls it so that the cleaner
    /// may compact it, and wakes the cleaner. Returns whether it rolled.
    pub fn maybe_roll(&self, partition: i32, live_count: impl FnOnce() -> u64) -> io::Result<bool> {
        let handle = self.partition(partition)?;
        let active_records = {
            let log = handle.log();
            log.log_end_offset().since(log.active_base_offset())
        };
        if active_records < ROLL_MIN_RECORDS {
            return Ok(false);
        }
        let live = live_count();
        if active_records <= 2 * live {
            return Ok(false);
        }
        handle.log().roll()?;
        self.logs.wake_cleaner();
        tracing::debug!(
            topic = self.topic,
            partition,
            live,
            rolled = active_records,
            "internal partition rolled for the cleaner"
        );
        Ok(true)
    }
}

pub fn now_ms() -> i64 {
    strata_storage::now_ms()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use strata_storage::io::RealIo;
    use strata_storage::log_manager::LogManagerConfig;

    /// A log manager over one directory, with the default log config and no background work.
    pub(crate) fn manager(dir: &std::path::Path) -> Arc<LogManager> {
        LogManager::open(
            Arc::new(RealIo),
            LogManagerConfig {
                log_dirs: vec![dir.to_path_buf()],
                retention_check_interval_ms: 3_600_000,
                flush_scheduler_interval_ms: 3_600_000,
                flush_offset_checkpoint_interval_ms: 3_600_000,
                tiers: None,
                migration: None,
                mapped_tiers: [false, false],
                pool: None,
            },
            Arc::new(|_| strata_storage::LogConfig::default()),
        )
        .unwrap()
    }

    /// A new internal topic is compacted; one an earlier version made (no policy, kept short
    /// by rewrites) becomes compacted, keeping its other settings and its records.
    #[test]
    fn internal_topics_are_compacted_and_older_ones_become_so() {
        let dir = tempfile::tempdir().unwrap();
        let logs = manager(dir.path());
        ensure_topic(&logs, "__new", 2, 1 << 20).unwrap();
        let policy = |logs: &LogManager, t: &str| {
            logs.topic(t)
                .unwrap()
                .overrides()
                .get(CLEANUP_POLICY)
                .cloned()
        };
        assert_eq!(policy(&logs, "__new").as_deref(), Some("compact"));
        let old: BTreeMap<String, String> = [("retention.ms".to_string(), "-1".to_string())].into();
        logs.create_topic("__old", 1, old, [7; 16]).unwrap();
        let log = InternalLog::new(logs.clone(), "__old").unwrap();
        log.write(0, &[(b"k".to_vec(), Some(b"v".to_vec()))])
            .unwrap();
        drop(log);
        assert_eq!(policy(&logs, "__old"), None);
        ensure_topic(&logs, "__old", 1, 1 << 20).unwrap();
        logs.shutdown().unwrap();
        drop(logs);
        let logs = manager(dir.path());
        assert_eq!(policy(&logs, "__old").as_deref(), Some("compact"));
        let topic = logs.topic("__old").unwrap();
        assert_eq!(
            topic.overrides().get("retention.ms").map(String::as_str),
            Some("-1")
        );
        let log = InternalLog::new(logs.clone(), "__old").unwrap();
        let mut seen = Vec::new();
        log.replay(0, |_, bytes, _| seen.push(bytes.len())).unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(log.records_replayed(), 1);
    }
}
