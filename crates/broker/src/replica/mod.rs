//! The replica manager (Kafka's ReplicaManager): the produce, fetch, flush and waiting logic
//! between the handlers and storage. Handlers decode a request, call in here per partition, and
//! encode what comes back; followers and transactions will extend this layer, not the handlers.
//!
//! - **Append.** A partition's records are appended under its lock. When `flush.messages` or
//!   `flush.ms` asks for a flush, the files to sync are collected under the lock and synced
//!   outside it (group commit: one sync covers everything appended before it): in the request's
//!   task when every sync is a memory operation (a PMEM tier), else on the blocking pool. A
//!   response waits for the flush that covers it, and a flush that failed acknowledges nothing.
//! - **Read.** A consumer reads below the high watermark (the last stable offset for
//!   read_committed), with the leader epoch it knows checked against the partition's.
//! - **Wait.** A fetch that found too little parks on the partitions it asked for: each partition
//!   has its own wake-up, signalled by appends to it, so an append wakes only the fetches that
//!   read that partition.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use strata_storage::log::partition::FlushJob;
use strata_storage::log::txn_index::AbortedTxn;
use strata_storage::{
    AppendError, AppendInfo, LeaderEpoch, LogManager, Offset, Partition, ReadError, ReadInfo,
};
use tokio::sync::Notify;

pub mod client;
pub mod cluster;
pub mod fetcher;
#[cfg(test)]
mod sim;
pub mod state;
pub mod throttle;

pub use state::{AcksError, IsrChange, ReplicaState, ReplicaStates, Role, RoleChange};

/// Why a partition's append was refused before or around storage.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error("This server does not host this topic-partition: {topic}-{partition}")]
    UnknownTopicOrPartition { topic: String, partition: i32 },
    #[error("records are null")]
    NullRecords,
    /// A transactional batch to a partition that is not in its producer's ongoing transaction.
    #[error("producer {producer_id} has no transaction open on {topic}-{partition}")]
    InvalidTxnState {
        producer_id: i64,
        topic: String,
        partition: i32,
    },
    /// A transactional batch of another epoch than its transactional id's current one.
    #[error("producer {producer_id} has epoch {current}, the batch {got}")]
    InvalidProducerEpoch {
        producer_id: i64,
        current: i16,
        got: i16,
    },
    #[error(transparent)]
    Append(#[from] AppendError),
    /// The flush that `flush.messages` asked for could not start: the append is not
    /// acknowledged.
    #[error("flush failed: {0}")]
    FlushNotStarted(std::io::Error),
}

/// Why a partition's read was refused.
#[derive(Debug)]
pub enum FetchError {
    /// The client knows a newer leader epoch than this replica's.
    UnknownLeaderEpoch,
    /// The client's leader epoch is older than this replica's: it must refresh its metadata.
    FencedLeaderEpoch,
    Read(ReadError),
}

/// Whether this thread is a worker of a multi-threaded runtime, where `block_in_place` works.
pub(crate) fn may_block_in_place() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

/// A flush to complete outside the partition's lock.
#[derive(Debug)]
pub struct PendingFlush {
    partition: Arc<Partition>,
    job: FlushJob,
}

impl PendingFlush {
    pub fn new(partition: Arc<Partition>, job: FlushJob) -> PendingFlush {
        PendingFlush { partition, job }
    }
}

/// Checks transactional batches against the transaction coordinator: the partition must be in
/// the producer's ongoing transaction. Called under the partition's lock, so that no marker can
/// come between the check and the append.
pub trait TxnVerifier: Send + Sync {
    fn verify(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), ProduceError>;
}

/// What an append did.
#[derive(Debug)]
pub struct Appended {
    pub info: AppendInfo,
    /// The flush the append asked for, to complete before it is acknowledged.
    pub flush: Option<PendingFlush>,
}

/// What a consumer's read found.
#[derive(Debug)]
pub struct Read {
    pub info: ReadInfo,
    /// read_committed: the aborted transactions with records among those read.
    pub aborted: Vec<AbortedTxn>,
}

/// Read isolation, as Fetch and ListOffsets ask for it; a follower reads up to the log end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    ReadUncommitted,
    ReadCommitted,
    Follower,
}

impl Isolation {
    pub fn from_level(level: i8) -> Isolation {
        if level == 1 {
            Isolation::ReadCommitted
        } else {
            Isolation::ReadUncommitted
        }
    }
}

type PartitionKey = (String, i32);

pub struct ReplicaManager {
    logs: Arc<LogManager>,
    /// The transaction coordinator, once it exists; without it transactional batches are
    /// refused.
    txn_verifier: std::sync::OnceLock<Weak<dyn TxnVerifier>>,
    /// The fetches parked on each partition, woken by its appends.
    waiting: Mutex<HashMap<PartitionKey, Vec<Weak<Notify>>>>,
    /// Each partition's part in replication (a node of a cluster).
    states: ReplicaStates,
    /// Replication throttles (partition reassignment).
    throttles: throttle::Throttles,
}

impl std::fmt::Debug for ReplicaManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaManager").finish_non_exhaustive()
    }
}

impl ReplicaManager {
    pub fn new(logs: Arc<LogManager>) -> ReplicaManager {
        ReplicaManager {
            logs,
            txn_verifier: std::sync::OnceLock::new(),
            waiting: Mutex::new(HashMap::new()),
            states: ReplicaStates::default(),
            throttles: throttle::Throttles::default(),
        }
    }

    pub fn throttles(&self) -> &throttle::Throttles {
        &self.throttles
    }

    /// Whether `partition` of `topic` is listed in the topic's `key`
    /// (`*.replication.throttled.replicas`) for `broker`.
    pub fn throttled(&self, key: &str, topic: &str, partition: i32, broker: i32) -> bool {
        self.logs.topic(topic).is_some_and(|t| {
            throttle::listed(
                t.overrides().get(key).map(String::as_str),
                partition,
                broker,
            )
        })
    }

    pub fn states(&self) -> &ReplicaStates {
        &self.states
    }

    pub fn logs(&self) -> &Arc<LogManager> {
        &self.logs
    }

    /// Installs the transaction coordinator's check of transactional batches (once).
    pub fn set_txn_verifier(&self, verifier: Weak<dyn TxnVerifier>) {
        let _ = self.txn_verifier.set(verifier);
    }

    /// Appends a produce request's records for one partition as its leader. Waiting fetches of
    /// the partition are woken once the request's appends are done ([`Self::appended`]).
    pub fn append(
        &self,
        topic: &str,
        partition: i32,
        records: Option<&[u8]>,
        now_ms: i64,
    ) -> Result<Appended, ProduceError> {
        let unknown = || ProduceError::UnknownTopicOrPartition {
            topic: topic.to_string(),
            partition,
        };
        let t = self.logs.topic(topic).ok_or_else(unknown)?;
        let p = t.partition(partition).ok_or_else(unknown)?;
        let records = records.ok_or(ProduceError::NullRecords)?;
        let mut log = p.log();
        // Every batch of a request comes from one producer: the first one's header says whether
        // they are transactional (a header too short is refused by the append's validation).
        // Checked under the partition's lock: a marker cannot come between check and append.
        if let Ok(h) = strata_storage::batch::BatchHeader::parse(records) {
            if h.is_transactional() {
                let refused = || ProduceError::InvalidTxnState {
                    producer_id: h.producer_id,
                    topic: topic.to_string(),
                    partition,
                };
                if h.is_control() {
                    return Err(refused());
                }
                let verifier = self.txn_verifier.get().and_then(Weak::upgrade);
                match verifier {
                    Some(v) => v.verify(h.producer_id, h.producer_epoch, topic, partition)?,
                    None => return Err(refused()),
                }
            }
        }
        // An append is a copy into the page cache, done in the connection's task; one that
        // rolls the segment first syncs files, so it tells the runtime that this thread will
        // block, and the runtime moves the other connections' tasks elsewhere meanwhile.
        let info = if log.append_may_roll(records.len() as u64, now_ms) && may_block_in_place() {
            tokio::task::block_in_place(|| log.append(records, now_ms))?
        } else {
            log.append(records, now_ms)?
        };
        if !info.duplicate {
            t.stats
                .bytes_in
                .fetch_add(records.len() as u64, Ordering::Relaxed);
            let count = info.last_offset.get() - info.base_offset.get() + 1;
            t.stats
                .records_in
                .fetch_add(count.max(0) as u64, Ordering::Relaxed);
        }
        if !info.needs_flush {
            return Ok(Appended { info, flush: None });
        }
        let job = log.begin_flush().map_err(ProduceError::FlushNotStarted)?;
        drop(log);
        Ok(Appended {
            info,
            flush: Some(PendingFlush { partition: p, job }),
        })
    }

    /// Completes flushes: in this task when every sync is a memory operation, else on the
    /// blocking pool. False when any failed (its directory is then offline).
    pub async fn complete_flushes(flushes: Vec<PendingFlush>) -> bool {
        if flushes.is_empty() {
            return true;
        }
        if flushes.iter().all(|f| f.job.is_cheap()) {
            return Self::run_flushes(flushes);
        }
        tokio::task::spawn_blocking(move || Self::run_flushes(flushes))
            .await
            .unwrap_or(false)
    }

    /// Completes the flushes right here when every sync is a memory operation (cheaper than a
    /// hop to another task): Ok(whether all succeeded); else gives them back.
    pub fn complete_cheap_flushes(flushes: Vec<PendingFlush>) -> Result<bool, Vec<PendingFlush>> {
        if flushes.iter().all(|f| f.job.is_cheap()) {
            Ok(Self::run_flushes(flushes))
        } else {
            Err(flushes)
        }
    }

    /// Completes flushes in this thread (a coordinator's work), telling the runtime that it
    /// blocks when it is a runtime worker. False when any failed.
    pub fn complete_flushes_blocking(flushes: Vec<PendingFlush>) -> bool {
        match Self::complete_cheap_flushes(flushes) {
            Ok(ok) => ok,
            Err(flushes) if may_block_in_place() => {
                tokio::task::block_in_place(|| Self::run_flushes(flushes))
            }
            Err(flushes) => Self::run_flushes(flushes),
        }
    }

    /// Completes flushes nobody waits for (acks=0) in the background.
    pub fn complete_flushes_detached(flushes: Vec<PendingFlush>) {
        if !flushes.is_empty() {
            tokio::spawn(Self::complete_flushes(flushes));
        }
    }

    fn run_flushes(flushes: Vec<PendingFlush>) -> bool {
        let mut ok = true;
        for PendingFlush { partition, job } in flushes {
            // A sync that failed took its directory offline, and then no flush of that log can
            // complete (complete_flush refuses), even one whose own syncs succeeded.
            let done = job
                .run()
                .and_then(|()| partition.log().complete_flush(job.target_offset));
            if let Err(e) = done {
                tracing::debug!(topic = %partition.topic, partition = partition.index, error = %e, "flush failed");
                ok = false;
            }
        }
        ok
    }

    /// Reads one partition for a consumer's fetch: below the high watermark, or below the last
    /// stable offset with the aborted transactions among the records for read_committed.
    /// `known_epoch`: the partition's leader epoch as this replica knows it when it is not the
    /// leader (a follower serving a consumer, KIP-392); the log's own otherwise.
    #[allow(clippy::too_many_arguments)]
    pub fn read(
        &self,
        partition: &Partition,
        offset: Offset,
        max_bytes: u64,
        min_one_batch: bool,
        isolation: Isolation,
        current_leader_epoch: LeaderEpoch,
        known_epoch: Option<LeaderEpoch>,
    ) -> Result<Read, FetchError> {
        let log = partition.log();
        let epoch = known_epoch.unwrap_or_else(|| log.leader_epoch());
        if current_leader_epoch > epoch {
            return Err(FetchError::UnknownLeaderEpoch);
        }
        // A negative epoch on the wire means the client does not know it: not checked.
        if current_leader_epoch.get() >= 0 && current_leader_epoch < epoch {
            return Err(FetchError::FencedLeaderEpoch);
        }
        let visible = match isolation {
            Isolation::ReadUncommitted => log.high_watermark(),
            Isolation::ReadCommitted => log.last_stable_offset(),
            Isolation::Follower => log.log_end_offset(),
        };
        let info = log
            .read_bounded(offset, max_bytes, min_one_batch, visible)
            .map_err(FetchError::Read)?;
        let aborted = match (isolation, &info.slice) {
            (Isolation::ReadCommitted, Some(_)) => {
                log.aborted_transactions(offset, info.upper_bound)
            }
            _ => Vec::new(),
        };
        Ok(Read { info, aborted })
    }

    /// Wakes the fetches waiting on a partition after appends to it.
    pub fn appended(&self, topic: &str, partition: i32) {
        let waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(fetches) = waiting.get(&(topic.to_string(), partition)) {
            for fetch in fetches.iter().filter_map(Weak::upgrade) {
                fetch.notify_one();
            }
        }
    }

    /// Wakes every waiting fetch (a topic was deleted: its fetches answer now).
    pub fn wake_all(&self) {
        let waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        for fetch in waiting.values().flatten().filter_map(Weak::upgrade) {
            fetch.notify_one();
        }
    }

    /// Registers a fetch's wait on `partitions`; call it before the fetch first looks at them,
    /// so that no append between the look and the wait is missed (a wake-up that comes before
    /// the wait is kept as a permit). Dropping the waiter unregisters it.
    pub fn waiter<'a>(
        self: &Arc<Self>,
        partitions: impl IntoIterator<Item = (&'a str, i32)>,
    ) -> Waiter {
        let wakeup = Arc::new(Notify::new());
        let keys: Vec<PartitionKey> = partitions
            .into_iter()
            .map(|(t, p)| (t.to_string(), p))
            .collect();
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        for key in &keys {
            waiting
                .entry(key.clone())
                .or_default()
                .push(Arc::downgrade(&wakeup));
        }
        Waiter {
            replicas: self.clone(),
            keys,
            wakeup,
        }
    }
}

/// One fetch's registration on the partitions it waits for.
pub struct Waiter {
    replicas: Arc<ReplicaManager>,
    keys: Vec<PartitionKey>,
    wakeup: Arc<Notify>,
}

impl Waiter {
    /// Parks until one of the partitions is appended to (since the waiter was made or last
    /// woke), or until `deadline`.
    pub async fn wait_until(&self, deadline: Instant) {
        tokio::select! {
            _ = self.wakeup.notified() => {}
            _ = tokio::time::sleep_until(deadline.into()) => {}
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let mut waiting = self
            .replicas
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for key in &self.keys {
            if let Some(fetches) = waiting.get_mut(key) {
                fetches
                    .retain(|w| w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), &*self.wakeup));
                if fetches.is_empty() {
                    waiting.remove(key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use strata_storage::io::sim::SimIo;
    use strata_storage::log_manager::LogManagerConfig;

    fn replicas() -> Arc<ReplicaManager> {
        let logs = LogManager::open(
            Arc::new(SimIo::new()),
            LogManagerConfig {
                log_dirs: vec!["/data".into()],
                retention_check_interval_ms: 1000,
                flush_scheduler_interval_ms: 1000,
                flush_offset_checkpoint_interval_ms: 1000,
                tiers: None,
                migration: None,
                mapped_tiers: [false, false],
                pool: None,
            },
            Arc::new(|_: &std::collections::BTreeMap<String, String>| Default::default()),
        )
        .expect("logs");
        Arc::new(ReplicaManager::new(logs))
    }

    /// Whether the waiter has been woken: one poll, no sleeping.
    async fn woken(waiter: &Waiter) -> bool {
        let far = Instant::now() + Duration::from_secs(3600);
        tokio::time::timeout(Duration::ZERO, waiter.wait_until(far))
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn an_append_wakes_only_the_fetches_of_its_partition() {
        let replicas = replicas();
        let on_zero = replicas.waiter([("t", 0)]);
        let on_both = replicas.waiter([("t", 0), ("t", 1)]);
        replicas.appended("t", 1);
        replicas.appended("other", 0);
        assert!(
            !woken(&on_zero).await,
            "an append to another partition woke it"
        );
        assert!(woken(&on_both).await);
        // A wake-up that comes before the wait is kept, so none is lost.
        replicas.appended("t", 0);
        assert!(woken(&on_zero).await);
        assert!(!woken(&on_zero).await, "one wake-up, one return");
    }

    #[tokio::test]
    async fn a_dropped_waiter_is_unregistered() {
        let replicas = replicas();
        let waiter = replicas.waiter([("t", 0), ("t", 1)]);
        assert_eq!(replicas.waiting.lock().unwrap().len(), 2);
        drop(waiter);
        assert!(replicas.waiting.lock().unwrap().is_empty());
    }
}
