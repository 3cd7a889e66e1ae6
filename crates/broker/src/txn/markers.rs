//! Transaction markers (Kafka's WriteTxnMarkers, done in place on a single broker), and the
//! coordinator's timer: markers that could not be written, transactions past their timeout, and
//! transactional ids unused for `transactional.id.expiration.ms`.

use std::time::Duration;

use strata_storage::control::{ControlType, EndTxnMarker};
use strata_storage::{AppendError, ProducerId};

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

impl TxnCoordinator {
    /// Writes `result`'s marker for the producer to one partition: under the group coordinator's
    /// lock for `__consumer_offsets` (its pending transactional offsets are decided with it).
    /// Returns the flush the partition's policy asks for.
    pub fn write_marker(
        &self,
        topic: &str,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        result: TxnResult,
        coordinator_epoch: i32,
    ) -> Result<Option<PendingFlush>, MarkerError> {
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
        let write = || -> Result<Option<PendingFlush>, MarkerError> {
            let mut log = p.log();
            let (info, _) =
                log.append_txn_marker(ProducerId(producer_id), producer_epoch, marker, now_ms())?;
            if !info.needs_flush {
                return Ok(None);
            }
            let job = log
                .begin_flush()
                .map_err(|e| MarkerError::Append(AppendError::Storage(e)))?;
            drop(log);
            Ok(Some(PendingFlush::new(p.clone(), job)))
        };
        let flush = if topic == OFFSETS_TOPIC {
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
        Ok(flush)
    }

    /// Writes the markers of `transactional_id`'s decided transaction and completes it. A
    /// partition whose marker cannot be written now (its directory offline) keeps the
    /// transaction decided but incomplete: the timer tries again.
    pub(super) fn send_markers(&self, transactional_id: &str) {
        let Some(m) = self
            .lock()
            .by_id
            .get(transactional_id)
            .filter(|m| m.state.is_prepared())
            .cloned()
        else {
            return;
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
        let mut flushes = Vec::new();
        let mut failed = Vec::new();
        for (topic, partition) in &m.partitions {
            match self.write_marker(
                topic,
                *partition,
                m.producer_id,
                m.producer_epoch,
                result,
                coordinator_epoch,
            ) {
                Ok(flush) => flushes.extend(flush),
                // A deleted partition needs no marker (as Kafka).
                Err(MarkerError::UnknownTopicOrPartition(..)) => {}
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
                    failed.push((topic.clone(), *partition));
                }
            }
        }
        if !flushes.is_empty() && !ReplicaManager::complete_flushes_blocking(flushes) {
            tracing::warn!(
                transactional_id,
                "transaction markers not flushed; will retry"
            );
            return;
        }
        if !failed.is_empty() {
            return;
        }
        let mut txns = self.lock();
        let Some(current) = txns.by_id.get(transactional_id) else {
            return;
        };
        if current.producer_id != m.producer_id
            || current.producer_epoch != m.producer_epoch
            || current.state != m.state
        {
            return;
        }
        let mut done = current.clone();
        done.state = if result == TxnResult::Commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        done.partitions.clear();
        done.last_update_ms = now_ms();
        if self.store(&mut txns, transactional_id, done).is_ok() {
            drop(txns);
            let _ = self.durable();
        }
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
            self.send_markers(&id);
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
        if timed_out.is_empty() || self.durable().is_err() {
            return 0;
        }
        for id in &timed_out {
            tracing::info!(transactional_id = %id, "aborting a transaction past its timeout");
            self.send_markers(id);
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
        let mut removed = 0;
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
            removed += 1;
        }
        drop(txns);
        let _ = self.durable();
        removed
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
