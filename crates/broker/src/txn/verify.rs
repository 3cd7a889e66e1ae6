//! Transactional writes of producers whose coordinator is another broker (KIP-890's
//! verification, done by a partition's leader): a guard set before the coordinator is asked and
//! removed by the partition's next marker, checked under the partition's lock by the write.

use std::sync::MutexGuard;

use kafka_protocol::ResponseError;

use super::*;

/// Verified transactional writes: topic -> (partition, producer id) -> producer epoch.
pub(super) type Guards = HashMap<String, HashMap<(i32, i64), i16>>;

/// Why a transactional write was not verified with its producer's coordinator elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyError {
    /// The partition is not in the producer's ongoing transaction (or the id is not the
    /// producer's).
    InvalidTxnState,
    /// The producer's epoch is not the id's current one.
    Fenced,
    /// The coordinator could not answer now (moved, loading, unreachable): retriable.
    Unavailable,
}

impl TxnCoordinator {
    fn guards(&self) -> MutexGuard<'_, Guards> {
        self.guards.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn guard(&self, topic: &str, partition: i32, producer_id: i64) -> Option<i16> {
        self.guards()
            .get(topic)
            .and_then(|g| g.get(&(partition, producer_id)))
            .copied()
    }

    /// A marker for the producer was written to the partition: its verification, if any, is
    /// over (a later write needs a new one). Called under the partition's lock, as the write
    /// it checks is.
    pub(super) fn end_guard(&self, topic: &str, partition: i32, producer_id: i64) {
        let mut guards = self.guards();
        if let Some(g) = guards.get_mut(topic) {
            g.remove(&(partition, producer_id));
            if g.is_empty() {
                guards.remove(topic);
            }
        }
    }

    /// Forgets the verifications of `topic`-`partition` (this broker took a new role there: a
    /// marker it did not write may have ended them).
    pub fn forget_guards(&self, topic: &str, partition: i32) {
        let mut guards = self.guards();
        if let Some(g) = guards.get_mut(topic) {
            g.retain(|(p, _), _| *p != partition);
            if g.is_empty() {
                guards.remove(topic);
            }
        }
    }

    /// Before a transactional write to `topic`-`partition` on a node of a cluster (a produce,
    /// or a TxnOffsetCommit's offsets partition): when the producer's coordinator is another
    /// broker and this partition has not verified the producer's transaction yet, asks that
    /// coordinator (AddPartitionsToTxn `verify_only`). A guard is set first and the marker that
    /// ends the transaction here removes it, so the write, checked against the guard under the
    /// partition's lock, cannot land after its transaction ended. Nothing to do for a broker
    /// alone or a local coordinator: the write's own check asks this coordinator.
    pub fn verify_ahead(
        &self,
        transactional_id: Option<&str>,
        producer_id: i64,
        producer_epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), VerifyError> {
        let Some(cluster) = self.cluster.get() else {
            return Ok(());
        };
        let Some(transactional_id) = transactional_id.filter(|id| !id.is_empty()) else {
            // Without its id the coordinator cannot be asked; the write is refused.
            return Ok(());
        };
        if self.owns(transactional_id) {
            return Ok(());
        }
        if self.guard(topic, partition, producer_id) == Some(producer_epoch) {
            return Ok(());
        }
        self.guards()
            .entry(topic.to_string())
            .or_default()
            .insert((partition, producer_id), producer_epoch);
        let coordinator = cluster.leader(
            TRANSACTION_STATE_TOPIC,
            self.partition_for(transactional_id),
        );
        let answer = match coordinator {
            cluster::Leader::Other(id) => cluster::block_on(cluster.verify(
                id,
                transactional_id,
                producer_id,
                producer_epoch,
                topic,
                partition,
            )),
            // This broker leads the id's partition but has not loaded it yet.
            cluster::Leader::Me => Err(ResponseError::CoordinatorLoadInProgress),
            cluster::Leader::NoLeader | cluster::Leader::Gone => {
                Err(ResponseError::CoordinatorNotAvailable)
            }
        };
        let Err(e) = answer else {
            return Ok(());
        };
        {
            let mut guards = self.guards();
            if let Some(g) = guards.get_mut(topic) {
                if g.get(&(partition, producer_id)) == Some(&producer_epoch) {
                    g.remove(&(partition, producer_id));
                }
            }
        }
        tracing::debug!(transactional_id, producer_id, topic, partition, error = ?e, "transactional write not verified");
        Err(match e {
            ResponseError::InvalidTxnState | ResponseError::InvalidProducerIdMapping => {
                VerifyError::InvalidTxnState
            }
            ResponseError::ProducerFenced | ResponseError::InvalidProducerEpoch => {
                VerifyError::Fenced
            }
            _ => VerifyError::Unavailable,
        })
    }

    /// Whether a transactional write of a producer coordinated elsewhere was verified for
    /// `topic`-`partition` with this epoch (checked under the lock its marker takes).
    pub(super) fn verified_elsewhere(
        &self,
        topic: &str,
        partition: i32,
        producer_id: i64,
        epoch: i16,
    ) -> bool {
        self.cluster.get().is_some() && self.guard(topic, partition, producer_id) == Some(epoch)
    }
}

impl TxnVerifier for TxnCoordinator {
    /// A transactional batch may be written only to a partition of its producer's ongoing
    /// transaction, with the producer's current epoch.
    fn verify(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), ProduceError> {
        let txns = self.lock();
        let refused = || ProduceError::InvalidTxnState {
            producer_id,
            topic: topic.to_string(),
            partition,
        };
        let Some(m) = txns
            .by_producer
            .get(&producer_id)
            .and_then(|id| txns.by_id.get(id))
        else {
            // Coordinated by another broker: verified ahead of this write, or refused.
            drop(txns);
            return if self.verified_elsewhere(topic, partition, producer_id, producer_epoch) {
                Ok(())
            } else {
                Err(refused())
            };
        };
        if producer_epoch != m.producer_epoch {
            return Err(ProduceError::InvalidProducerEpoch {
                producer_id,
                current: m.producer_epoch,
                got: producer_epoch,
            });
        }
        if m.state != TxnState::Ongoing || !m.partitions.contains(&(topic.to_string(), partition)) {
            return Err(refused());
        }
        Ok(())
    }
}
