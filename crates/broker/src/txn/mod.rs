//! The transaction coordinator (KIP-98): every transactional id's producer id, epoch and
//! transaction, kept in `__transaction_state` and loaded at startup.
//!
//! ```text
//!   InitProducerId      AddPartitions / AddOffsets        EndTxn
//!  Empty ---------------------------------> Ongoing --------------> PrepareCommit | PrepareAbort
//!   ^  ^                                                                  | markers written
//!   |  +------------------ InitProducerId ---- CompleteCommit | CompleteAbort <-+
//! ```
//! Each transition is appended to the id's partition of `__transaction_state` under the
//! coordinator's lock and answered once durable (as the topic's flush policy makes it). EndTxn
//! writes the decision (Prepare*), then the COMMIT or ABORT marker to every partition of the
//! transaction, then Complete*; a crash between the two leaves Prepare* in the log, and loading
//! finishes the markers. InitProducerId on an id with an ongoing transaction bumps the epoch
//! (fencing the old producer), aborts that transaction and answers CONCURRENT_TRANSACTIONS so the
//! producer retries; so does the timer for a transaction older than its timeout.
//!
//! Lock order: a partition's lock (a produce verifying its transaction) may be held when this
//! coordinator's lock is taken, never the other way round: markers are written after the lock is
//! released, and the lock is held only for bookkeeping and appends to `__transaction_state`.

pub mod cluster;
pub mod markers;
pub mod state;
mod verify;

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use kafka_protocol::ResponseError;

use crate::group::Coordinator as GroupCoordinator;
use crate::internal_log::{now_ms, InternalLog, KeyValue};
use crate::producer_ids::ProducerIds;
use crate::replica::{ProduceError, ReplicaManager, TxnVerifier};
pub use state::{TopicPartition, TxnMetadata, TxnState};
use strata_storage::LogManager;
pub use verify::VerifyError;

pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// The `transaction.*` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TxnConfig {
    /// `transaction.state.log.num.partitions`.
    pub partitions: i32,
    /// `transaction.state.log.segment.bytes`.
    pub segment_bytes: u64,
    /// `transaction.state.log.replication.factor` (a cluster's topic).
    pub replication_factor: i16,
    /// `transaction.state.log.min.isr`: the in-sync replicas a state change needs (the topic's
    /// `min.insync.replicas`).
    pub min_isr: usize,
    /// `request.timeout.ms`: how long a state change or a marker waits for its ISR.
    pub write_timeout_ms: u64,
    /// `transaction.max.timeout.ms`: the longest `transaction.timeout.ms` a producer may ask.
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`: an id unused this long (no transaction open) is dropped.
    pub id_expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
    pub abort_timed_out_interval_ms: u64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`.
    pub remove_expired_interval_ms: u64,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            partitions: 50,
            segment_bytes: 104_857_600,
            replication_factor: 3,
            min_isr: 2,
            write_timeout_ms: 30_000,
            max_timeout_ms: 900_000,
            id_expiration_ms: 604_800_000,
            abort_timed_out_interval_ms: 10_000,
            remove_expired_interval_ms: 3_600_000,
        }
    }
}

#[derive(Debug, Default)]
struct Txns {
    by_id: HashMap<String, TxnMetadata>,
    /// Producer id -> transactional id.
    by_producer: HashMap<i64, String>,
}

/// A transaction listed by ListTransactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnListing {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: TxnState,
    pub start_ms: i64,
}

pub struct TxnCoordinator {
    config: TxnConfig,
    /// Itself, for the work it hands to background tasks (markers retried).
    this: std::sync::OnceLock<std::sync::Weak<TxnCoordinator>>,
    /// The partitions of `__transaction_state` whose ids this broker coordinates; None: all of
    /// them (a broker alone). On a node of a cluster, those it leads.
    owned: Mutex<Option<BTreeSet<i32>>>,
    /// The rest of the cluster (a node of a cluster).
    cluster: std::sync::OnceLock<Arc<cluster::TxnCluster>>,
    /// Verified transactional writes of producers coordinated elsewhere: topic -> (partition,
    /// producer id) -> epoch. Set before the coordinator is asked and removed by the
    /// partition's next marker, so a write whose transaction ended meanwhile is refused.
    guards: Mutex<verify::Guards>,
    /// Transactions whose markers are being written now (one sender at a time).
    completing: Mutex<std::collections::HashSet<String>>,
    /// `__transaction_state`, created (as Kafka does) when the first transactional id needs it.
    log: std::sync::OnceLock<InternalLog>,
    logs: Arc<LogManager>,
    txns: Mutex<Txns>,
    producer_ids: Arc<ProducerIds>,
    replicas: Arc<ReplicaManager>,
    groups: Arc<GroupCoordinator>,
}

impl std::fmt::Debug for TxnCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxnCoordinator").finish_non_exhaustive()
    }
}

/// What an EndTxn (or the coordinator itself) decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnResult {
    Commit,
    Abort,
}

impl TxnCoordinator {
    /// Loads every transactional id from `__transaction_state`, completes the transactions a
    /// crash left between their decision and their markers, and registers itself with the
    /// replica manager to verify transactional produce requests. A node of a cluster
    /// (`cluster_node`) loads nothing yet: it coordinates the ids of the partitions it will
    /// lead.
    pub fn open(
        config: TxnConfig,
        producer_ids: Arc<ProducerIds>,
        replicas: Arc<ReplicaManager>,
        groups: Arc<GroupCoordinator>,
        cluster_node: bool,
    ) -> io::Result<Arc<TxnCoordinator>> {
        let logs = replicas.logs().clone();
        // A node of a cluster loads partitions as it is made their leader (`take_over`).
        let existing = match logs.topic(TRANSACTION_STATE_TOPIC) {
            Some(_) if !cluster_node => {
                // An earlier version's topic becomes compacted.
                crate::internal_log::ensure_topic(
                    &logs,
                    TRANSACTION_STATE_TOPIC,
                    config.partitions,
                    config.segment_bytes,
                )
                .map_err(io::Error::other)?;
                Some(InternalLog::new(logs.clone(), TRANSACTION_STATE_TOPIC)?)
            }
            _ => None,
        };
        let mut txns = Txns::default();
        if let Some(log) = &existing {
            Self::load(log, &mut txns)?;
        }
        let coordinator = Arc::new(TxnCoordinator {
            config,
            this: std::sync::OnceLock::new(),
            owned: Mutex::new(cluster_node.then(BTreeSet::new)),
            cluster: std::sync::OnceLock::new(),
            guards: Mutex::new(verify::Guards::new()),
            completing: Mutex::new(Default::default()),
            log: existing.map(std::sync::OnceLock::from).unwrap_or_default(),
            logs,
            txns: Mutex::new(txns),
            producer_ids,
            replicas: replicas.clone(),
            groups,
        });
        let _ = coordinator.this.set(Arc::downgrade(&coordinator));
        let verifier: Arc<dyn TxnVerifier> = coordinator.clone();
        replicas.set_txn_verifier(Arc::downgrade(&verifier));
        coordinator.complete_prepared();
        Ok(coordinator)
    }

    /// How many records the load at startup read (None: the topic did not exist).
    pub fn records_loaded(&self) -> Option<u64> {
        self.log.get().map(|l| l.records_replayed())
    }

    /// Replays `__transaction_state`: each id's last record is its state.
    fn load(log: &InternalLog, txns: &mut Txns) -> io::Result<()> {
        for p in 0..log.partition_count() {
            Self::load_partition(log, p, txns)?;
        }
        Ok(())
    }

    /// Replays one partition of `__transaction_state` into `txns`.
    fn load_partition(log: &InternalLog, partition: i32, txns: &mut Txns) -> io::Result<()> {
        let mut found: HashMap<String, Option<TxnMetadata>> = HashMap::new();
        log.replay(partition, |h, bytes, from| {
            if h.is_control() {
                return;
            }
            let Some(records) = strata_storage::batch::uncompressed_records(bytes, h) else {
                return;
            };
            for r in records {
                if h.base_offset + (r.offset_delta as i64) < from {
                    continue;
                }
                let Some(id) = r.key.and_then(state::decode_key) else {
                    continue;
                };
                found.insert(id, r.value.and_then(state::decode_value));
            }
        })?;
        for (id, m) in found {
            if let Some(old) = txns.by_id.remove(&id) {
                txns.by_producer.remove(&old.producer_id);
            }
            if let Some(m) = m {
                txns.by_producer.insert(m.producer_id, id.clone());
                txns.by_id.insert(id, m);
            }
        }
        Ok(())
    }

    /// `__transaction_state`, created with `transaction.state.log.*` when it does not exist yet
    /// (the first FindCoordinator or InitProducerId of a transactional id).
    pub fn log(&self) -> Result<&InternalLog, ResponseError> {
        if let Some(log) = self.log.get() {
            return Ok(log);
        }
        if self.cluster.get().is_some() {
            // A cluster's topic comes from the controller (see FindCoordinator); its logs exist
            // once this node's image holds it.
            if self.logs.topic(TRANSACTION_STATE_TOPIC).is_none() {
                return Err(ResponseError::CoordinatorNotAvailable);
            }
            return match InternalLog::new(self.logs.clone(), TRANSACTION_STATE_TOPIC) {
                Ok(log) => Ok(self.log.get_or_init(|| log)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot open {TRANSACTION_STATE_TOPIC}");
                    Err(ResponseError::CoordinatorNotAvailable)
                }
            };
        }
        let created = crate::internal_log::ensure_topic(
            &self.logs,
            TRANSACTION_STATE_TOPIC,
            self.config.partitions,
            self.config.segment_bytes,
        )
        .map_err(io::Error::other)
        .and_then(|()| InternalLog::new(self.logs.clone(), TRANSACTION_STATE_TOPIC));
        match created {
            Ok(log) => Ok(self.log.get_or_init(|| log)),
            Err(e) => {
                tracing::error!(error = %e, "cannot create {TRANSACTION_STATE_TOPIC}");
                Err(ResponseError::CoordinatorNotAvailable)
            }
        }
    }

    pub fn config(&self) -> &TxnConfig {
        &self.config
    }

    /// How many transactional ids are known.
    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The partition of `__transaction_state` that holds `transactional_id`.
    pub fn partition_for(&self, transactional_id: &str) -> i32 {
        match self.log.get() {
            Some(log) => log.partition_for(transactional_id),
            None => {
                (crate::internal_log::java_hash(transactional_id) & 0x7fff_ffff)
                    % self.config.partitions.max(1)
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Txns> {
        self.txns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `m` as `id`'s state and makes it the current one; call under the lock.
    fn store(&self, txns: &mut Txns, id: &str, m: TxnMetadata) -> Result<(), ResponseError> {
        let record: KeyValue = (state::encode_key(id), Some(state::encode_value(&m)));
        let log = self.log()?;
        let partition = log.partition_for(id);
        if let Err(e) = log.write(partition, &[record]) {
            tracing::error!(transactional_id = id, error = %e, "transaction state not stored");
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        if let Some(old) = txns.by_id.get(id) {
            if old.producer_id != m.producer_id {
                txns.by_producer.remove(&old.producer_id);
            }
        }
        txns.by_producer.insert(m.producer_id, id.to_string());
        txns.by_id.insert(id.to_string(), m);
        self.maybe_roll(log, txns, partition);
        Ok(())
    }

    /// Rolls a partition of `__transaction_state` for the cleaner when its active segment holds
    /// far more records than the partition has transactional ids (see
    /// [`InternalLog::maybe_roll`]).
    fn maybe_roll(&self, log: &InternalLog, txns: &Txns, partition: i32) {
        let live = || {
            txns.by_id
                .keys()
                .filter(|id| self.partition_for(id) == partition)
                .count() as u64
        };
        if let Err(e) = log.maybe_roll(partition, live) {
            tracing::warn!(partition, error = %e, "rolling the transaction state partition failed");
        }
    }

    /// Runs flushes the appends asked for, outside the lock, and on a node of a cluster waits
    /// until the partitions of `ids` hold them on their ISR (`transaction.state.log.min.isr`,
    /// up to `request.timeout.ms`): a state change is answered only then, as Kafka's are. The
    /// error is Kafka's: NOT_COORDINATOR when the log failed or leadership moved,
    /// COORDINATOR_NOT_AVAILABLE when too few replicas have it.
    fn durable(&self, ids: &[&str]) -> Result<(), ResponseError> {
        let Some(log) = self.log.get() else {
            return Ok(());
        };
        log.complete_staged_blocking()
            .map_err(|_| ResponseError::NotCoordinator)?;
        if self.cluster.get().is_none() {
            return Ok(());
        }
        let partitions: BTreeSet<i32> = ids.iter().map(|id| self.partition_for(id)).collect();
        for p in partitions {
            let Ok(partition) = log.partition(p) else {
                return Err(ResponseError::NotCoordinator);
            };
            let end = partition.log().log_end_offset();
            // Appended without the replica manager: wake the followers' parked fetches, or
            // they would take the write only at their `replica.fetch.wait.max.ms`.
            self.replicas.appended(TRANSACTION_STATE_TOPIC, p);
            self.wait_replicated(TRANSACTION_STATE_TOPIC, p, end, self.config.min_isr)
                .map_err(|e| match e {
                    crate::replica::AcksError::NotLeader => ResponseError::NotCoordinator,
                    _ => ResponseError::CoordinatorNotAvailable,
                })?;
        }
        Ok(())
    }

    /// Waits (a node of a cluster) until `topic`-`partition`'s high watermark reaches `end`, up
    /// to `request.timeout.ms`; at once for a broker alone.
    pub(crate) fn wait_replicated(
        &self,
        topic: &str,
        partition: i32,
        end: strata_storage::Offset,
        min_isr: usize,
    ) -> Result<(), crate::replica::AcksError> {
        if self.cluster.get().is_none() {
            return Ok(());
        }
        let (Some(state), Some(p)) = (
            self.replicas.states().get(topic, partition),
            self.logs.topic(topic).and_then(|t| t.partition(partition)),
        ) else {
            return Err(crate::replica::AcksError::NotLeader);
        };
        let deadline = tokio::time::Instant::now()
            + std::time::Duration::from_millis(self.config.write_timeout_ms);
        cluster::block_on(state.wait_for_hw(&p, end, min_isr, deadline))
    }

    /// InitProducerId with a transactional id: the id's producer id with its epoch bumped (a
    /// new producer id when the id is new or its epoch is exhausted). `expected` is the
    /// producer id and epoch the producer holds (KIP-360), if it says.
    pub fn init_producer_id(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), ResponseError> {
        if transactional_id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        self.check_owned(transactional_id)?;
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Err(ResponseError::InvalidTransactionTimeout);
        }
        let fenced = {
            let mut txns = self.lock();
            let current = match txns.by_id.get(transactional_id) {
                Some(m) => m.clone(),
                None => TxnMetadata {
                    producer_id: self.new_producer_id()?,
                    last_producer_id: -1,
                    producer_epoch: -1,
                    timeout_ms,
                    state: TxnState::Empty,
                    partitions: BTreeSet::new(),
                    start_ms: -1,
                    last_update_ms: now_ms(),
                },
            };
            if let Some((pid, epoch)) = expected {
                let known = current.producer_epoch < 0
                    || pid == current.producer_id
                    || (pid == current.last_producer_id && state::epoch_exhausted(epoch));
                if !known {
                    return Err(ResponseError::ProducerFenced);
                }
                if pid == current.producer_id
                    && current.producer_epoch >= 0
                    && epoch != current.producer_epoch
                {
                    return Err(ResponseError::ProducerFenced);
                }
            }
            match current.state {
                TxnState::PrepareCommit | TxnState::PrepareAbort => {
                    return Err(ResponseError::ConcurrentTransactions)
                }
                TxnState::Ongoing => {
                    // Fence the producer that holds the id and abort its transaction; the
                    // caller retries and gets the epoch after this one.
                    let mut m = current;
                    m.producer_epoch = m.producer_epoch.saturating_add(1);
                    m.state = TxnState::PrepareAbort;
                    m.last_update_ms = now_ms();
                    self.store(&mut txns, transactional_id, m)?;
                    true
                }
                TxnState::Empty
                | TxnState::CompleteCommit
                | TxnState::CompleteAbort
                | TxnState::Dead
                | TxnState::PrepareEpochFence => {
                    let mut m = current;
                    if state::epoch_exhausted(m.producer_epoch) {
                        m.last_producer_id = m.producer_id;
                        m.producer_id = self.new_producer_id()?;
                        m.producer_epoch = 0;
                    } else {
                        m.producer_epoch += 1;
                    }
                    m.timeout_ms = timeout_ms;
                    m.state = TxnState::Empty;
                    m.partitions.clear();
                    m.start_ms = -1;
                    m.last_update_ms = now_ms();
                    let answer = (m.producer_id, m.producer_epoch);
                    self.store(&mut txns, transactional_id, m)?;
                    drop(txns);
                    self.durable(&[transactional_id])?;
                    tracing::info!(
                        transactional_id,
                        producer_id = answer.0,
                        producer_epoch = answer.1,
                        "initialized transactional id"
                    );
                    return Ok(answer);
                }
            }
        };
        debug_assert!(fenced);
        self.durable(&[transactional_id])?;
        tracing::info!(
            transactional_id,
            "fenced the previous producer and aborting its transaction"
        );
        self.complete(transactional_id);
        Err(ResponseError::ConcurrentTransactions)
    }

    fn new_producer_id(&self) -> Result<i64, ResponseError> {
        self.producer_ids.next().map_err(|e| {
            tracing::error!(error = %e, "cannot reserve producer ids");
            ResponseError::CoordinatorNotAvailable
        })
    }

    /// Checks a request of the producer holding `transactional_id` (its id and epoch) and
    /// returns its metadata.
    fn check_producer<'a>(
        &self,
        txns: &'a Txns,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<&'a TxnMetadata, ResponseError> {
        if transactional_id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        self.check_owned(transactional_id)?;
        let m = txns
            .by_id
            .get(transactional_id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        if m.producer_id != producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if m.producer_epoch != producer_epoch {
            return Err(ResponseError::ProducerFenced);
        }
        Ok(m)
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's offsets partition): the
    /// partitions join the producer's transaction, which begins if none is ongoing. With
    /// `verify_only`, only says whether they are in it already (KIP-890's check).
    pub fn add_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
        verify_only: bool,
    ) -> Result<(), ResponseError> {
        {
            let mut txns = self.lock();
            let m = self.check_producer(&txns, transactional_id, producer_id, producer_epoch)?;
            if m.state.is_prepared() {
                return Err(ResponseError::ConcurrentTransactions);
            }
            let all_in =
                m.state == TxnState::Ongoing && partitions.iter().all(|p| m.partitions.contains(p));
            if all_in {
                return Ok(());
            }
            if verify_only {
                return Err(ResponseError::InvalidTxnState);
            }
            let mut m = m.clone();
            let now = now_ms();
            if m.state != TxnState::Ongoing {
                m.partitions.clear();
                m.start_ms = now;
            }
            m.state = TxnState::Ongoing;
            m.partitions.extend(partitions.iter().cloned());
            m.last_update_ms = now;
            self.store(&mut txns, transactional_id, m)?;
        }
        self.durable(&[transactional_id])
    }

    /// EndTxn: decides the producer's transaction, writes its markers and completes it. A retry
    /// of a decision already taken is answered as it was.
    pub fn end_txn(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        result: TxnResult,
    ) -> Result<(), ResponseError> {
        {
            let mut txns = self.lock();
            let m = self.check_producer(&txns, transactional_id, producer_id, producer_epoch)?;
            let next = match (m.state, result) {
                (TxnState::Ongoing, TxnResult::Commit) => TxnState::PrepareCommit,
                (TxnState::Ongoing, TxnResult::Abort) => TxnState::PrepareAbort,
                (TxnState::CompleteCommit, TxnResult::Commit)
                | (TxnState::CompleteAbort, TxnResult::Abort) => return Ok(()),
                (TxnState::PrepareCommit, TxnResult::Commit)
                | (TxnState::PrepareAbort, TxnResult::Abort) => {
                    return Err(ResponseError::ConcurrentTransactions)
                }
                _ => return Err(ResponseError::InvalidTxnState),
            };
            let mut m = m.clone();
            m.state = next;
            m.last_update_ms = now_ms();
            self.store(&mut txns, transactional_id, m)?;
        }
        self.durable(&[transactional_id])?;
        crate::failpoint::crash_if("txn-after-prepare");
        // Decided: the client's answer no longer depends on the markers (a marker that cannot
        // be written now is retried by the timer, and after a restart).
        self.complete(transactional_id);
        Ok(())
    }

    /// A transaction's metadata (DescribeTransactions).
    pub fn describe(&self, transactional_id: &str) -> Option<TxnMetadata> {
        self.lock()
            .by_id
            .get(transactional_id)
            .filter(|m| m.state != TxnState::Dead)
            .cloned()
    }

    /// Transactions matching the filters (ListTransactions): states (empty: any), producer ids
    /// (empty: any), and those running longer than `min_duration_ms` (negative: any).
    pub fn list(
        &self,
        states: &[TxnState],
        producer_ids: &[i64],
        min_duration_ms: i64,
    ) -> Vec<TxnListing> {
        let now = now_ms();
        let txns = self.lock();
        let mut out: Vec<TxnListing> = txns
            .by_id
            .iter()
            .filter(|(_, m)| states.is_empty() || states.contains(&m.state))
            .filter(|(_, m)| producer_ids.is_empty() || producer_ids.contains(&m.producer_id))
            .filter(|(_, m)| {
                min_duration_ms < 0
                    || (m.state == TxnState::Ongoing && now - m.start_ms >= min_duration_ms)
            })
            .map(|(id, m)| TxnListing {
                transactional_id: id.clone(),
                producer_id: m.producer_id,
                state: m.state,
                start_ms: m.start_ms,
            })
            .collect();
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        out
    }

    /// Whether the group's offsets partition is in the producer's ongoing transaction
    /// (TxnOffsetCommit's check).
    pub fn check_offsets_partition(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        offsets_partition: i32,
    ) -> Result<(), ResponseError> {
        if !self.owns(transactional_id) {
            let topic = crate::group::OFFSETS_TOPIC;
            return if self.verified_elsewhere(topic, offsets_partition, producer_id, producer_epoch)
            {
                Ok(())
            } else {
                Err(ResponseError::InvalidTxnState)
            };
        }
        let txns = self.lock();
        let m = self.check_producer(&txns, transactional_id, producer_id, producer_epoch)?;
        let key = (crate::group::OFFSETS_TOPIC.to_string(), offsets_partition);
        if m.state != TxnState::Ongoing || !m.partitions.contains(&key) {
            return Err(ResponseError::InvalidTxnState);
        }
        Ok(())
    }
}
