//! Offsets committed inside transactions (TxnOffsetCommit, KIP-98/KIP-447).
//!
//! A transaction's commits are written to the group's `__consumer_offsets` partition as a
//! transactional batch of the producer and held aside, per producer, until the transaction's
//! marker reaches that partition: a COMMIT makes them the group's offsets, an ABORT drops them.
//! Meanwhile OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT for them, so that a
//! consumer never starts from an offset that may still be undone. The marker is written under the
//! coordinator's lock ([`Coordinator::with_txn_marker`]), and a TxnOffsetCommit checks its
//! transaction and writes under the same lock, so a commit can never land after its marker.

use super::*;

/// What a TxnOffsetCommit asks.
#[derive(Debug, Clone)]
pub struct TxnCommitArgs {
    pub group_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub generation: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub offsets: Vec<CommitArgs>,
}

impl Coordinator {
    /// Writes a transaction's offsets for a group. `in_txn` says whether the group's offsets
    /// partition is in the producer's ongoing transaction (checked under the lock the marker is
    /// written under); its error is the whole request's.
    pub fn txn_commit(
        &self,
        args: TxnCommitArgs,
        partition_exists: &dyn Fn(&str, i32) -> bool,
        in_txn: &dyn Fn(i32) -> Result<(), ResponseError>,
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        if let Some(e) = self.not_coordinator(&args.group_id) {
            return Err(e);
        }
        let results = self.txn_commit_locked(args, partition_exists, in_txn);
        if self.complete_staged().is_err() {
            return Err(ResponseError::NotCoordinator);
        }
        results
    }

    fn txn_commit_locked(
        &self,
        args: TxnCommitArgs,
        partition_exists: &dyn Fn(&str, i32) -> bool,
        in_txn: &dyn Fn(i32) -> Result<(), ResponseError>,
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        if args.group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let mut groups = self.lock();
        if let Some(group) = groups.get(&args.group_id) {
            // As Kafka: a producer that does not say its member (KIP-447's old form) may
            // commit to any group; one that does must be a member of the current generation.
            if let Some(c) = &group.consumer {
                if !args.member_id.is_empty() {
                    let m = c
                        .members
                        .get(&args.member_id)
                        .ok_or(ResponseError::UnknownMemberId)?;
                    if args.generation >= 0 && args.generation != m.epoch {
                        return Err(ResponseError::IllegalGeneration);
                    }
                }
            } else {
                if let Some(instance) = &args.instance_id {
                    if group
                        .instances
                        .get(instance)
                        .is_some_and(|m| *m != args.member_id)
                    {
                        return Err(ResponseError::FencedInstanceId);
                    }
                }
                if !args.member_id.is_empty() && !group.members.contains_key(&args.member_id) {
                    return Err(ResponseError::UnknownMemberId);
                }
                if args.generation >= 0 && args.generation != group.generation {
                    return Err(ResponseError::IllegalGeneration);
                }
            }
        }
        in_txn(self.store.partition_for(&args.group_id))?;
        let (results, accepted) = self.accept_offsets(args.offsets, partition_exists);
        if accepted.is_empty() {
            return Ok(results);
        }
        if let Err(e) = self.store.append_txn(
            &args.group_id,
            args.producer_id,
            args.producer_epoch,
            &accepted,
        ) {
            tracing::error!(group = %args.group_id, error = %e, "transactional offset commit not stored");
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let group = groups
            .entry(args.group_id.clone())
            .or_insert_with(|| Group::new(&args.group_id));
        group
            .txn_offsets
            .entry(args.producer_id)
            .or_default()
            .extend(accepted);
        Ok(results)
    }

    /// Writes a transaction marker to `__consumer_offsets` partition `partition` with `write`,
    /// under the coordinator's lock; when it is written, the producer's pending commits of the
    /// partition's groups become their offsets (`commit`) or are dropped.
    pub fn with_txn_marker<T, E>(
        &self,
        partition: i32,
        producer_id: i64,
        commit: bool,
        write: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        let mut groups = self.lock();
        let written = write()?;
        for group in groups.values_mut() {
            if self.store.partition_for(&group.id) != partition {
                continue;
            }
            let Some(pending) = group.txn_offsets.remove(&producer_id) else {
                continue;
            };
            if commit {
                group.offsets.extend(pending);
            }
        }
        Ok(written)
    }

    /// Which of a group's partitions have offsets committed in a transaction not decided yet
    /// (OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT for those).
    pub fn unstable(&self, group_id: &str, partitions: &[(String, i32)]) -> Vec<bool> {
        let groups = self.lock();
        let group = groups.get(group_id);
        partitions
            .iter()
            .map(|k| group.is_some_and(|g| g.txn_offsets.values().any(|o| o.contains_key(k))))
            .collect()
    }
}
