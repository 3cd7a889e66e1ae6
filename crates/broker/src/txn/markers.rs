//! Transaction markers (Kafka's WriteTxnMarkers, done in place on a single broker), and the
//! coordinator's timer: markers that could not be written, transactions past their timeout, and
//! transactional ids unused for `transactional.id.expiration.ms`.

use std::time::Duration;

use strata_storage::control::{ControlType, EndTxnMarker};
use strata_storage::{AppendError, ProducerId};

use std::collections::BTreeMap;

use super::cluster::{Leader, MarkerRequest};
use super::*;
use crate::group::OFFSETS_TOPIC;
use crate::replica::PendingFlush;

/// Why a marker was not written to a partition.
#[derive(Debug, thiserror::Error)]
pub enum MarkerError {
    #[error("This server does not host this topic-partition: {0}-{1}")]
    UnknownTopicOrPartition(String, i32),
    #[error(transparent)]
    Append(#[from] AppendError),
}

/// A marker written to a partition's log.
#[derive(Debug)]
pub struct MarkerWritten {
    /// The marker's offset.
    pub offset: strata_storage::Offset,
    /// The flush the partition's policy asks for.
    pub flush: Option<PendingFlush>,
}

impl TxnCoordinator {
    /// Writes `result`'s marker for the producer to one partition (this broker leads it):
    /// under the group coordinator's lock for `__consumer_offsets` (its pending transactional
    /// offsets are decided with it). A verification of the producer's transaction there ends
    /// with it.
    pub fn write_marker(
        &self,
        topic: &str,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        result: TxnResult,
        coordinator_epoch: i32,
    ) -> Result<MarkerWritten, MarkerError> {
        let p = self
            .replicas
            .logs()
            .topic(topic)
            .and_then(|t| t.partition(partition))
            .ok_or_else(|| MarkerError::UnknownTopicOrPartition(topic.to_string(), partition))?;
        let marker = EndTxnMarker {
            control: match result {
                TxnResult::Commit => ControlType::Commit,
                TxnResult::Abort => ControlType::Abort,
            },
            coordinator_epoch,
        };
        let write = || -> Result<MarkerWritten, MarkerError> {
            let mut log = p.log();
            let (info, _) =
                log.append_txn_marker(ProducerId(producer_id), producer_epoch, marker, now_ms())?;
            self.end_guard(topic, partition, producer_id);
            let offset = info.base_offset;
            if !info.needs_flush {
                return Ok(MarkerWritten {
                    offset,
                    flush: None,
                });
            }
            let job = log
                .begin_flush()
                .map_err(|e| MarkerError::Append(AppendError::Storage(e)))?;
            drop(log);
            Ok(MarkerWritten {
                offset,
                flush: Some(PendingFlush::new(p.clone(), job)),
            })
        };
        let written = if topic == OFFSETS_TOPIC {
            self.groups.with_txn_marker(
                partition,
                producer_id,
                result == TxnResult::Commit,
                write,
            )?
        } else {
            write()?
        };
        self.replicas.appended(topic, partition);
        Ok(written)
    }

    /// Writes the markers of `transactional_id`'s decided transaction and completes it: to
    /// the partitions this broker leads itself (waiting, in a cluster, for their ISR, as
    /// Kafka's WriteTxnMarkers does), to the others' leaders with WriteTxnMarkers. True when
    /// it is complete (or no longer this coordinator's to complete); false when a marker could
    /// not be written now (a leader moving or unreachable, a directory offline): the
    /// transaction stays decided and is tried again.
    fn send_markers_once(&self, transactional_id: &str) -> bool {
        let Some(m) = self
            .lock()
            .by_id
            .get(transactional_id)
            .filter(|m| m.state.is_prepared())
            .cloned()
        else {
            return true;
        };
        let result = if m.state == TxnState::PrepareCommit {
            TxnResult::Commit
        } else {
            TxnResult::Abort
        };
        let coordinator_epoch = self
            .log
            .get()
            .and_then(|log| log.partition(self.partition_for(transactional_id)).ok())
            .map_or(0, |p| p.log().leader_epoch().get());
        let cluster = self.cluster.get();
        let mut flushes = Vec::new();
        let mut written = Vec::new();
        let mut remote: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
        let mut failed = 0usize;
        for (topic, partition) in &m.partitions {
            match cluster.map(|c| c.leader(topic, *partition)) {
                None | Some(Leader::Me) => {}
                // A deleted partition needs no marker (as Kafka).
                Some(Leader::Gone) => continue,
                Some(Leader::NoLeader) => {
                    failed += 1;
                    continue;
                }
                Some(Leader::Other(id)) => {
                    remote
                        .entry(id)
                        .or_default()
                        .push((topic.clone(), *partition));
                    continue;
                }
            }
            match self.write_marker(
                topic,
                *partition,
                m.producer_id,
                m.producer_epoch,
                result,
                coordinator_epoch,
            ) {
                Ok(w) => {
                    flushes.extend(w.flush);
                    written.push((topic, *partition, w.offset));
                }
                Err(MarkerError::UnknownTopicOrPartition(..)) if cluster.is_none() => {}
                Err(MarkerError::Append(AppendError::InvalidProducerEpoch { current, .. })) => {
                    // The partition saw a newer epoch of the producer: its transaction there
                    // was ended by a newer marker already.
                    tracing::warn!(
                        transactional_id,
                        topic,
                        partition,
                        current,
                        "marker of an older producer epoch not written"
                    );
                }
                Err(e) => {
                    tracing::warn!(transactional_id, topic, partition, error = %e, "transaction marker not written; will retry");
                    failed += 1;
                }
            }
        }
        if !flushes.is_empty() && !ReplicaManager::complete_flushes_blocking(flushes) {
            tracing::warn!(
                transactional_id,
                "transaction markers not flushed; will retry"
            );
            return false;
        }
        for (topic, partition, offset) in written {
            if let Err(e) = self.wait_replicated(topic, partition, offset.next(), 1) {
                tracing::debug!(transactional_id, topic, partition, error = ?e, "transaction marker not replicated; will retry");
                failed += 1;
            }
        }
        if let Some(cluster) = cluster.filter(|_| !remote.is_empty()) {
            let request = MarkerRequest {
                transactional_id,
                producer_id: m.producer_id,
                producer_epoch: m.producer_epoch,
                commit: result == TxnResult::Commit,
                coordinator_epoch,
            };
            failed += cluster::block_on(self.send_remote_markers(cluster, request, &remote));
        }
        if failed > 0 {
            return false;
        }
        let mut txns = self.lock();
        let Some(current) = txns.by_id.get(transactional_id) else {
            return true;
        };
        if current.producer_id != m.producer_id
            || current.producer_epoch != m.producer_epoch
            || current.state != m.state
        {
            return true;
        }
        let mut done = current.clone();
        done.state = if result == TxnResult::Commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        done.partitions.clear();
        done.last_update_ms = now_ms();
        if self.store(&mut txns, transactional_id, done).is_err() {
            return false;
        }
        drop(txns);
        let durable = self.durable(&[transactional_id]).is_ok();
        if durable {
            crate::metrics::transaction_ended(if result == TxnResult::Commit {
                "commit"
            } else {
                "abort"
            });
        }
        durable
    }

    /// Sends the markers to the other leaders, all at once; returns how many partitions did
    /// not take theirs.
    async fn send_remote_markers(
        &self,
        cluster: &cluster::TxnCluster,
        request: MarkerRequest<'_>,
        remote: &BTreeMap<i32, Vec<(String, i32)>>,
    ) -> usize {
        let sends = remote.iter().map(|(broker, partitions)| async move {
            (
                *broker,
                partitions.len(),
                cluster.write_markers(*broker, request, partitions).await,
            )
        });
        let mut failed = 0;
        for (broker, count, answer) in futures::future::join_all(sends).await {
            let results = match answer {
                Ok(results) => results,
                Err(e) => {
                    tracing::debug!(transactional_id = request.transactional_id, broker, error = %e, "transaction markers not sent; will retry");
                    failed += count;
                    continue;
                }
            };
            for ((topic, partition), code) in results {
                let topic = topic.as_str();
                let ok = match ResponseError::try_from_code(code) {
                    None => true,
                    // A newer epoch of the producer ended its transaction there already.
                    Some(ResponseError::InvalidProducerEpoch) => true,
                    // Deleted meanwhile: no marker needed.
                    Some(ResponseError::UnknownTopicOrPartition) => {
                        cluster.leader(topic, partition) == Leader::Gone
                    }
                    Some(_) => false,
                };
                if !ok {
                    tracing::debug!(
                        transactional_id = request.transactional_id,
                        broker,
                        topic,
                        partition,
                        code,
                        "transaction marker refused; will retry"
                    );
                    failed += 1;
                }
            }
        }
        failed
    }

    /// Writes the markers of a decided transaction and completes it; on a node of a cluster,
    /// keeps trying in the background (backing off up to a second) while some cannot be
    /// written, as long as this broker coordinates the id and the transaction is still
    /// decided. One sender per transaction at a time.
    pub(super) fn complete(&self, transactional_id: &str) {
        let busy = || self.completing.lock().unwrap_or_else(|e| e.into_inner());
        if !busy().insert(transactional_id.to_string()) {
            return;
        }
        let this = self.this.get().and_then(std::sync::Weak::upgrade);
        let (Some(this), Some(_)) = (this, self.cluster.get()) else {
            self.send_markers_once(transactional_id);
            busy().remove(transactional_id);
            return;
        };
        if self.send_markers_once(transactional_id) {
            busy().remove(transactional_id);
            return;
        }
        let id = transactional_id.to_string();
        tokio::task::spawn_blocking(move || {
            let mut backoff = Duration::from_millis(50);
            loop {
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(1));
                let pending = this.owns(&id)
                    && this
                        .lock()
                        .by_id
                        .get(&id)
                        .is_some_and(|m| m.state.is_prepared());
                if !pending || this.send_markers_once(&id) {
                    this.completing
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&id);
                    return;
                }
            }
        });
    }

    /// Completes every decided transaction whose markers are not all written (after a restart,
    /// or a partition that was offline).
    pub(super) fn complete_prepared(&self) {
        let prepared: Vec<String> = self
            .lock()
            .by_id
            .iter()
            .filter(|(_, m)| m.state.is_prepared())
            .map(|(id, _)| id.clone())
            .collect();
        for id in prepared {
            tracing::info!(transactional_id = %id, "completing a decided transaction");
            self.complete(&id);
        }
    }

    /// Aborts transactions open longer than their timeout, fencing their producers (the epoch
    /// is bumped, as Kafka does), so that a producer that went away never holds back
    /// read_committed consumers for longer than its `transaction.timeout.ms`.
    pub fn abort_timed_out(&self) -> usize {
        let now = now_ms();
        let timed_out: Vec<String> = {
            let mut txns = self.lock();
            let ids: Vec<String> = txns
                .by_id
                .iter()
                .filter(|(_, m)| {
                    m.state == TxnState::Ongoing && m.start_ms + m.timeout_ms as i64 <= now
                })
                .map(|(id, _)| id.clone())
                .collect();
            let mut aborting = Vec::new();
            for id in ids {
                let mut m = txns.by_id[&id].clone();
                m.producer_epoch = m.producer_epoch.saturating_add(1);
                m.state = TxnState::PrepareAbort;
                m.last_update_ms = now;
                if self.store(&mut txns, &id, m).is_ok() {
                    aborting.push(id);
                }
            }
            aborting
        };
        let ids: Vec<&str> = timed_out.iter().map(String::as_str).collect();
        if timed_out.is_empty() || self.durable(&ids).is_err() {
            return 0;
        }
        for id in &timed_out {
            tracing::info!(transactional_id = %id, "aborting a transaction past its timeout");
            self.complete(id);
        }
        timed_out.len()
    }

    /// Drops transactional ids with no transaction open that were not used for
    /// `transactional.id.expiration.ms` (a tombstone in `__transaction_state`).
    pub fn expire_ids(&self) -> usize {
        let now = now_ms();
        let mut txns = self.lock();
        let expired: Vec<String> = txns
            .by_id
            .iter()
            .filter(|(_, m)| {
                m.state.expirable() && now - m.last_update_ms >= self.config.id_expiration_ms
            })
            .map(|(id, _)| id.clone())
            .collect();
        let mut removed = Vec::new();
        for id in expired {
            let tombstone: KeyValue = (state::encode_key(&id), None);
            let written = self
                .log()
                .map_err(|e| io::Error::other(format!("{e:?}")))
                .and_then(|log| log.write(self.partition_for(&id), &[tombstone]));
            if written.is_err() {
                break;
            }
            if let Some(m) = txns.by_id.remove(&id) {
                txns.by_producer.remove(&m.producer_id);
            }
            removed.push(id);
        }
        drop(txns);
        let ids: Vec<&str> = removed.iter().map(String::as_str).collect();
        let _ = self.durable(&ids);
        removed.len()
    }

    /// Starts the timer on the current tokio runtime: incomplete markers and timed-out
    /// transactions every `transaction.abort.timed.out.transaction.cleanup.interval.ms`, expired
    /// ids every `transaction.remove.expired.transaction.cleanup.interval.ms`. The work is
    /// blocking (appends, flushes), so it runs on the blocking pool.
    pub fn start_timer(self: &Arc<Self>) {
        let coordinator = Arc::downgrade(self);
        let abort_every = Duration::from_millis(self.config.abort_timed_out_interval_ms);
        let expire_every = Duration::from_millis(self.config.remove_expired_interval_ms);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(abort_every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_expiry = std::time::Instant::now();
            loop {
                tick.tick().await;
                let Some(c) = coordinator.upgrade() else {
                    return;
                };
                let expire = last_expiry.elapsed() >= expire_every;
                if expire {
                    last_expiry = std::time::Instant::now();
                }
                let _ = tokio::task::spawn_blocking(move || {
                    c.complete_prepared();
                    c.abort_timed_out();
                    if expire {
                        let n = c.expire_ids();
                        if n > 0 {
                            tracing::info!(transactional_ids = n, "expired transactional ids");
                        }
                    }
                })
                .await;
            }
        });
    }
}
