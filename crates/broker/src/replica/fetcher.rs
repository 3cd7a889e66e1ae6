//! Followers' fetchers (Kafka's ReplicaFetcherThread): one task per leader broker fetches every
//! partition this broker follows from it, over the leader's inter-broker listener, with Kafka's
//! follower Fetch (a replica id; the leader answers up to its log end and with its high
//! watermark).
//!
//! A partition that starts following a leader (a new leader or leader epoch) first truncates:
//! it asks the leader, with OffsetForLeaderEpoch, where its own latest epoch ends in the
//! leader's log, and cuts its log there, so that records a previous leader never committed go
//! before the new leader's are appended. Then it fetches from its log end, appends what comes
//! as the leader stored it, and takes the leader's high watermark up to its own log end. A
//! fetch out of range restarts the log at the leader's log start (or cuts it at the leader's
//! end); any other error pauses the partition for `replica.fetch.backoff.ms` until the
//! metadata changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, OffsetForLeaderEpochRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use strata_storage::{LeaderEpoch, Offset, Partition, PartitionLog};
use tokio::sync::Notify;
use uuid::Uuid;

use super::client::{BrokerClient, Connector};
use super::throttle::FOLLOWER_REPLICAS;
use super::{may_block_in_place, ReplicaManager};
use crate::config::quorum::ReplicationConfig;

/// The Fetch version followers send (topics by id, sessionless, the replica's broker epoch in
/// its replica state: KIP-903).
const FETCH_VERSION: i16 = 15;
const OFFSET_FOR_LEADER_EPOCH_VERSION: i16 = 4;

/// This broker's epoch (its current registration's), which its fetches carry.
pub type BrokerEpoch = Arc<dyn Fn() -> u64 + Send + Sync>;

type Key = (String, i32);

/// One partition a fetcher fetches.
#[derive(Debug, Clone)]
struct Target {
    leader_epoch: i32,
    /// Whether the log was truncated for this leader epoch yet.
    truncated: bool,
    paused_until: Option<Instant>,
}

impl Target {
    fn ready(&self, now: Instant) -> bool {
        self.paused_until.is_none_or(|t| now >= t)
    }
}

struct Fetcher {
    targets: Arc<Mutex<HashMap<Key, Target>>>,
    wake: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every fetcher of this broker, by leader.
pub struct ReplicaFetchers {
    shared: Arc<Shared>,
    fetchers: Mutex<HashMap<i32, Fetcher>>,
}

struct Shared {
    me: i32,
    config: ReplicationConfig,
    replicas: Arc<ReplicaManager>,
    connector: Connector,
    broker_epoch: BrokerEpoch,
}

impl ReplicaFetchers {
    pub fn new(
        me: i32,
        config: ReplicationConfig,
        replicas: Arc<ReplicaManager>,
        connector: Connector,
        broker_epoch: BrokerEpoch,
    ) -> ReplicaFetchers {
        ReplicaFetchers {
            shared: Arc::new(Shared {
                me,
                config,
                replicas,
                connector,
                broker_epoch,
            }),
            fetchers: Mutex::new(HashMap::new()),
        }
    }

    /// Fetches `partition` of `topic` from `leader` from now on (truncating first).
    pub fn follow(&self, topic: &str, partition: i32, leader: i32, leader_epoch: i32) {
        let key = (topic.to_string(), partition);
        let mut fetchers = lock(&self.fetchers);
        for (id, f) in fetchers.iter() {
            if *id != leader {
                lock(&f.targets).remove(&key);
            }
        }
        let f = fetchers.entry(leader).or_insert_with(|| {
            let targets = Arc::new(Mutex::new(HashMap::new()));
            let wake = Arc::new(Notify::new());
            let task = tokio::spawn(run(
                self.shared.clone(),
                leader,
                targets.clone(),
                wake.clone(),
            ));
            Fetcher {
                targets,
                wake,
                task,
            }
        });
        lock(&f.targets).insert(
            key,
            Target {
                leader_epoch,
                truncated: false,
                paused_until: None,
            },
        );
        f.wake.notify_one();
    }

    /// Stops fetching `partition` of `topic`.
    pub fn stop(&self, topic: &str, partition: i32) {
        let key = (topic.to_string(), partition);
        for f in lock(&self.fetchers).values() {
            lock(&f.targets).remove(&key);
        }
    }

    /// The partitions being fetched, with their leader.
    pub fn following(&self) -> Vec<(String, i32, i32)> {
        lock(&self.fetchers)
            .iter()
            .flat_map(|(leader, f)| {
                lock(&f.targets)
                    .keys()
                    .map(|(t, p)| (t.clone(), *p, *leader))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    pub fn shutdown(&self) {
        for (_, f) in lock(&self.fetchers).drain() {
            f.task.abort();
        }
    }
}

impl Drop for ReplicaFetchers {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A fetcher's loop: connects to the leader, truncates what needs it, fetches, appends.
async fn run(
    shared: Arc<Shared>,
    leader: i32,
    targets: Arc<Mutex<HashMap<Key, Target>>>,
    wake: Arc<Notify>,
) {
    let backoff = Duration::from_millis(shared.config.fetch_backoff_ms);
    let mut client: Option<BrokerClient> = None;
    let mut unreachable = false;
    loop {
        let now = Instant::now();
        let snapshot: Vec<(Key, Target)> = lock(&targets)
            .iter()
            .map(|(k, t)| (k.clone(), t.clone()))
            .collect();
        if snapshot.is_empty() {
            client = None;
            wake.notified().await;
            continue;
        }
        if client.is_none() {
            let timeout = Duration::from_millis(shared.config.socket_timeout_ms);
            match shared.connector.connect(leader, "fetcher", timeout).await {
                Ok(c) => {
                    if unreachable {
                        tracing::info!(leader, "reached the leader again");
                        unreachable = false;
                    }
                    client = Some(c)
                }
                Err(e) => {
                    // Once per streak: a refused authentication or certificate does not pass.
                    if unreachable {
                        tracing::debug!(leader, error = %e, "cannot reach the leader");
                    } else {
                        tracing::warn!(leader, error = %e, "cannot reach the leader");
                        unreachable = true;
                    }
                    pause(&wake, backoff).await;
                    continue;
                }
            }
        }
        let Some(c) = client.as_mut() else { continue };
        let to_truncate: Vec<(Key, i32)> = snapshot
            .iter()
            .filter(|(_, t)| !t.truncated && t.ready(now))
            .map(|(k, t)| (k.clone(), t.leader_epoch))
            .collect();
        if !to_truncate.is_empty() {
            if let Err(e) = truncate(&shared, c, leader, &targets, to_truncate).await {
                tracing::debug!(leader, error = %e, "OffsetForLeaderEpoch failed");
                client = None;
                pause(&wake, backoff).await;
            }
            continue;
        }
        let ready: Vec<(Key, i32)> = snapshot
            .iter()
            .filter(|(_, t)| t.truncated && t.ready(now))
            .map(|(k, t)| (k.clone(), t.leader_epoch))
            .collect();
        if ready.is_empty() {
            // Everything is paused: wait for the first to resume, or for a new partition.
            let until = snapshot
                .iter()
                .filter_map(|(_, t)| t.paused_until)
                .min()
                .unwrap_or(now + backoff);
            tokio::select! {
                _ = tokio::time::sleep_until(until.into()) => {}
                _ = wake.notified() => {}
            }
            continue;
        }
        if let Err(e) = fetch(&shared, c, leader, &targets, ready).await {
            tracing::debug!(leader, error = %e, "fetch from the leader failed");
            client = None;
            pause(&wake, backoff).await;
        }
    }
}

/// Sleeps `backoff`, or less when the partitions fetched change.
async fn pause(wake: &Notify, backoff: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(backoff) => {}
        _ = wake.notified() => {}
    }
}

fn local_partition(shared: &Shared, (topic, partition): &Key) -> Option<Arc<Partition>> {
    shared
        .replicas
        .logs()
        .topic(topic)
        .and_then(|t| t.partition(*partition))
}

/// Runs `f` on the partition's log while this broker follows `leader` at `leader_epoch` in it
/// (the role cannot change meanwhile); None when it no longer does. `blocking`: `f` may sync
/// files (a truncation, an append that rolls), so the runtime is told that this thread blocks;
/// a read or an append into the page cache runs right here, as a produce's does.
fn as_follower<T>(
    shared: &Shared,
    key: &Key,
    leader: i32,
    leader_epoch: i32,
    blocking: bool,
    f: impl FnOnce(&mut PartitionLog) -> T,
) -> Option<T> {
    let partition = local_partition(shared, key)?;
    let state = shared.replicas.states().get(&key.0, key.1)?;
    let run = || {
        let _role = state.following(leader, leader_epoch)?;
        let mut log = partition.log();
        Some(f(&mut log))
    };
    if blocking && may_block_in_place() {
        tokio::task::block_in_place(run)
    } else {
        run()
    }
}

fn set_target(
    targets: &Mutex<HashMap<Key, Target>>,
    key: &Key,
    leader_epoch: i32,
    f: impl FnOnce(&mut Target),
) {
    if let Some(t) = lock(targets).get_mut(key) {
        if t.leader_epoch == leader_epoch {
            f(t);
        }
    }
}

/// Asks the leader where each partition's latest local epoch ends, and truncates there.
async fn truncate(
    shared: &Shared,
    client: &mut BrokerClient,
    leader: i32,
    targets: &Mutex<HashMap<Key, Target>>,
    wanted: Vec<(Key, i32)>,
) -> std::io::Result<()> {
    let backoff = Duration::from_millis(shared.config.fetch_backoff_ms);
    let mut asked: HashMap<Key, (i32, i32)> = HashMap::new();
    let mut by_topic: HashMap<String, Vec<OffsetForLeaderPartition>> = HashMap::new();
    for (key, leader_epoch) in wanted {
        // The latest epoch of the log, or None: an empty log has nothing to truncate.
        let latest = as_follower(shared, &key, leader, leader_epoch, false, |log| {
            if log.log_end_offset() == log.log_start_offset() {
                None
            } else {
                Some(
                    log.leader_epochs()
                        .latest_epoch()
                        .map_or(0, LeaderEpoch::get),
                )
            }
        });
        match latest {
            None => {
                // No longer followed (the role changed): the next round drops it.
                lock(targets).remove(&key);
            }
            Some(None) => set_target(targets, &key, leader_epoch, |t| t.truncated = true),
            Some(Some(epoch)) => {
                by_topic.entry(key.0.clone()).or_default().push(
                    OffsetForLeaderPartition::default()
                        .with_partition(key.1)
                        .with_current_leader_epoch(leader_epoch)
                        .with_leader_epoch(epoch),
                );
                asked.insert(key, (leader_epoch, epoch));
            }
        }
    }
    if asked.is_empty() {
        return Ok(());
    }
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(shared.me))
        .with_topics(
            by_topic
                .into_iter()
                .map(|(topic, partitions)| {
                    OffsetForLeaderTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(topic)))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let response = client
        .send(&request, OFFSET_FOR_LEADER_EPOCH_VERSION)
        .await?;
    for t in response.topics {
        for p in t.partitions {
            let key = (t.topic.0.to_string(), p.partition);
            let Some((leader_epoch, local_epoch)) = asked.get(&key).copied() else {
                continue;
            };
            if p.error_code != 0 {
                tracing::debug!(topic = %key.0, partition = key.1, error = p.error_code, "the leader cannot tell where the epoch ends");
                set_target(targets, &key, leader_epoch, |t| {
                    t.paused_until = Some(Instant::now() + backoff)
                });
                continue;
            }
            let done = as_follower(shared, &key, leader, leader_epoch, true, |log| {
                let to = truncation_offset(log, local_epoch, p.leader_epoch, p.end_offset);
                if to < log.log_end_offset() {
                    tracing::info!(topic = %key.0, partition = key.1, from = %log.log_end_offset(), to = %to, "truncating to the leader's log");
                }
                log.truncate_to(to)
            });
            match done {
                Some(Ok(())) => set_target(targets, &key, leader_epoch, |t| t.truncated = true),
                Some(Err(e)) => {
                    // The log stopped (fail-stop): nothing more is fetched into it.
                    tracing::error!(topic = %key.0, partition = key.1, error = %e, "truncation failed");
                    lock(targets).remove(&key);
                }
                None => {
                    lock(targets).remove(&key);
                }
            }
        }
    }
    Ok(())
}

/// Where a follower cuts its log, from the leader's answer for the follower's latest epoch
/// `local_epoch` (Kafka's rules): the leader's end of that epoch when the leader has it; else
/// the earlier of the leader's end of the epoch it answered with and this log's end of it; the
/// high watermark when the leader knows no epoch at or below it.
pub(crate) fn truncation_offset(
    log: &PartitionLog,
    local_epoch: i32,
    leader_epoch: i32,
    leader_end: i64,
) -> Offset {
    let end = log.log_end_offset();
    if leader_epoch < 0 || leader_end < 0 {
        return log.high_watermark();
    }
    if leader_epoch == local_epoch {
        return Offset(leader_end).min(end);
    }
    let (_, ours) = log.end_offset_for_epoch(LeaderEpoch(leader_epoch));
    if ours.get() < 0 {
        Offset(leader_end).min(end)
    } else {
        Offset(leader_end).min(ours).min(end)
    }
}

/// The whole batches at the front of `records` (a fetch may end inside one).
pub(crate) fn whole_batches(records: &[u8]) -> &[u8] {
    let mut at = 0;
    while let Ok(h) = strata_storage::batch::BatchHeader::parse(&records[at..]) {
        let size = h.total_size();
        if size == 0 || at + size > records.len() {
            break;
        }
        at += size;
    }
    &records[..at]
}

/// One fetch from the leader for the partitions that are ready, and what it brought appended.
async fn fetch(
    shared: &Shared,
    client: &mut BrokerClient,
    leader: i32,
    targets: &Mutex<HashMap<Key, Target>>,
    ready: Vec<(Key, i32)>,
) -> std::io::Result<()> {
    let backoff = Duration::from_millis(shared.config.fetch_backoff_ms);
    let mut epochs: HashMap<Key, i32> = HashMap::new();
    let mut by_topic: HashMap<[u8; 16], Vec<FetchPartition>> = HashMap::new();
    let mut names: HashMap<[u8; 16], String> = HashMap::new();
    // Over `follower.replication.throttled.rate`, the throttled partitions sit this fetch out.
    let quota = &shared.replicas.throttles().follower;
    let throttled = |key: &Key| {
        quota.active()
            && shared
                .replicas
                .throttled(FOLLOWER_REPLICAS, &key.0, key.1, shared.me)
    };
    let over_quota = quota.exceeded();
    let mut held_back = false;
    for (key, leader_epoch) in ready {
        if over_quota && throttled(&key) {
            held_back = true;
            continue;
        }
        let Some(id) = shared.replicas.logs().topic(&key.0).map(|t| t.id) else {
            lock(targets).remove(&key);
            continue;
        };
        let Some((end, start)) = as_follower(shared, &key, leader, leader_epoch, false, |log| {
            (log.log_end_offset(), log.log_start_offset())
        }) else {
            lock(targets).remove(&key);
            continue;
        };
        names.insert(id, key.0.clone());
        by_topic.entry(id).or_default().push(
            FetchPartition::default()
                .with_partition(key.1)
                .with_current_leader_epoch(leader_epoch)
                .with_fetch_offset(end.get())
                .with_log_start_offset(start.get())
                .with_partition_max_bytes(shared.config.fetch_max_bytes.min(i32::MAX as u64) as i32),
        );
        epochs.insert(key, leader_epoch);
    }
    if epochs.is_empty() {
        if held_back {
            // Everything is throttled: wait for the allowance rather than spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        return Ok(());
    }
    let request = FetchRequest::default()
        .with_replica_state(
            ReplicaState::default()
                .with_replica_id(BrokerId(shared.me))
                .with_replica_epoch((shared.broker_epoch)() as i64),
        )
        .with_max_wait_ms(shared.config.fetch_wait_max_ms.min(i32::MAX as u64) as i32)
        .with_min_bytes(1)
        .with_max_bytes(shared.config.fetch_response_max_bytes.min(i32::MAX as u64) as i32)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(
            by_topic
                .into_iter()
                .map(|(id, partitions)| {
                    FetchTopic::default()
                        .with_topic_id(Uuid::from_bytes(id))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let response: FetchResponse = client.send(&request, FETCH_VERSION).await?;
    if response.error_code != 0 {
        return Err(std::io::Error::other(format!(
            "fetch failed with error {}",
            response.error_code
        )));
    }
    for t in response.responses {
        let Some(name) = names.get(t.topic_id.as_bytes()) else {
            continue;
        };
        for p in t.partitions {
            let key = (name.clone(), p.partition_index);
            let Some(leader_epoch) = epochs.get(&key).copied() else {
                continue;
            };
            let outcome = if p.error_code == 0 {
                let records = p.records.as_deref().unwrap_or(&[]);
                if !records.is_empty() && throttled(&key) {
                    quota.record(records.len() as u64);
                }
                append(
                    shared,
                    &key,
                    leader,
                    leader_epoch,
                    records,
                    p.high_watermark,
                )
            } else if p.error_code == ResponseError::OffsetOutOfRange.code() {
                out_of_range(shared, &key, leader, leader_epoch, &p)
            } else {
                tracing::debug!(topic = %key.0, partition = key.1, error = p.error_code, "the leader refused the fetch");
                Outcome::Pause
            };
            match outcome {
                Outcome::Fetched => {}
                Outcome::Pause => set_target(targets, &key, leader_epoch, |t| {
                    t.paused_until = Some(Instant::now() + backoff)
                }),
                Outcome::Retruncate => {
                    set_target(targets, &key, leader_epoch, |t| t.truncated = false)
                }
                Outcome::Drop => {
                    lock(targets).remove(&key);
                }
            }
        }
    }
    Ok(())
}

enum Outcome {
    Fetched,
    Pause,
    Retruncate,
    Drop,
}

/// Appends fetched records as the leader stored them, then takes the leader's high watermark
/// (up to this log's end) and completes a flush the log asked for.
fn append(
    shared: &Shared,
    key: &Key,
    leader: i32,
    leader_epoch: i32,
    records: &[u8],
    leader_hw: i64,
) -> Outcome {
    let records = whole_batches(records);
    let now = strata_storage::now_ms();
    let rolls = local_partition(shared, key)
        .is_some_and(|p| p.log().append_may_roll(records.len() as u64, now));
    let done = as_follower(shared, key, leader, leader_epoch, rolls, |log| {
        let mut flush = None;
        if !records.is_empty() {
            let info = log.append_as_follower(records, now)?;
            if info.needs_flush {
                flush = Some(
                    log.begin_flush()
                        .map_err(strata_storage::AppendError::Storage)?,
                );
            }
        }
        let hw = Offset(leader_hw).min(log.log_end_offset());
        if hw >= log.log_start_offset() {
            log.advance_high_watermark(hw);
        }
        Ok::<_, strata_storage::AppendError>(flush)
    });
    match done {
        None => Outcome::Drop,
        Some(Ok(flush)) => {
            // Consumers reading from this follower (KIP-392) may have more to see.
            shared.replicas.appended(&key.0, key.1);
            if let (Some(job), Some(partition)) = (flush, local_partition(shared, key)) {
                let pending = vec![super::PendingFlush::new(partition, job)];
                if !ReplicaManager::complete_flushes_blocking(pending) {
                    return Outcome::Drop;
                }
            }
            Outcome::Fetched
        }
        Some(Err(strata_storage::AppendError::InvalidBatch(e))) => {
            // Not what this log continues with: the leader's log diverged; truncate again.
            tracing::warn!(topic = %key.0, partition = key.1, error = %e, "fetched records do not continue the log");
            Outcome::Retruncate
        }
        Some(Err(e)) => {
            tracing::error!(topic = %key.0, partition = key.1, error = %e, "cannot append fetched records");
            match e {
                strata_storage::AppendError::Offline { .. }
                | strata_storage::AppendError::Storage(_) => Outcome::Drop,
                _ => Outcome::Pause,
            }
        }
    }
}

/// The fetch offset is outside the leader's log: past its end (cut this log there), or before
/// its start (start this log over at the leader's start).
fn out_of_range(
    shared: &Shared,
    key: &Key,
    leader: i32,
    leader_epoch: i32,
    p: &kafka_protocol::messages::fetch_response::PartitionData,
) -> Outcome {
    // A Strata leader answers an out-of-range fetch with its log start and log end.
    let (leader_start, leader_end) = (Offset(p.log_start_offset), Offset(p.high_watermark));
    if leader_start.get() < 0 || leader_end.get() < 0 {
        return Outcome::Pause;
    }
    let done = as_follower(shared, key, leader, leader_epoch, true, |log| {
        let end = log.log_end_offset();
        if end > leader_end {
            tracing::warn!(topic = %key.0, partition = key.1, from = %end, to = %leader_end, "truncating past the leader's log end");
            log.truncate_to(leader_end)
        } else if end < leader_start {
            tracing::info!(topic = %key.0, partition = key.1, at = %leader_start, "the leader's log starts after this one ends: starting over there");
            log.truncate_fully_and_start_at(leader_start)
        } else {
            Ok(())
        }
    });
    match done {
        Some(Ok(())) => Outcome::Fetched,
        Some(Err(e)) => {
            tracing::error!(topic = %key.0, partition = key.1, error = %e, "cannot reset the log to the leader's");
            Outcome::Drop
        }
        None => Outcome::Drop,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::Encodable;

    #[test]
    fn the_followers_requests_encode_at_their_versions() {
        let fetch = FetchRequest::default()
            .with_replica_state(
                ReplicaState::default()
                    .with_replica_id(BrokerId(2))
                    .with_replica_epoch(7),
            )
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_topics(vec![FetchTopic::default()
                .with_topic_id(Uuid::from_bytes([3; 16]))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_current_leader_epoch(3)
                    .with_fetch_offset(10)
                    .with_log_start_offset(0)
                    .with_partition_max_bytes(1 << 20)])]);
        let mut buf = bytes::BytesMut::new();
        fetch.encode(&mut buf, FETCH_VERSION).unwrap();
        let epochs = OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(2))
            .with_topics(vec![OffsetForLeaderTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![OffsetForLeaderPartition::default()
                    .with_partition(0)
                    .with_current_leader_epoch(3)
                    .with_leader_epoch(2)])]);
        epochs
            .encode(&mut buf, OFFSET_FOR_LEADER_EPOCH_VERSION)
            .unwrap();
    }

    #[test]
    fn a_trailing_partial_batch_is_left_for_the_next_fetch() {
        let one = strata_storage::batch::simple_batch(&[b"a"], 1);
        let two = strata_storage::batch::simple_batch(&[b"bb"], 1);
        let mut both = one.clone();
        both.extend_from_slice(&two);
        assert_eq!(whole_batches(&both).len(), both.len());
        assert_eq!(whole_batches(&both[..both.len() - 1]).len(), one.len());
        assert_eq!(whole_batches(&both[..10]).len(), 0);
        assert_eq!(whole_batches(&[]).len(), 0);
    }
}
