//! Committed offsets: OffsetCommit, OffsetFetch, OffsetDelete, their expiry, and the rewrite of
//! an offsets partition that keeps its reload short.

use super::*;

impl Coordinator {
    /// Drops the offsets of groups empty for longer than `offsets.retention.minutes` (as Kafka
    /// since 2.1: counted from when the group became empty, or from the last commit).
    pub fn expire_offsets(&self) -> std::io::Result<usize> {
        let now = now_ms();
        let retention = self.config.offsets_retention_ms;
        let mut groups = self.lock();
        let mut expired = 0;
        let mut gone = Vec::new();
        for group in groups.values_mut() {
            if !group.is_empty() || group.offsets.is_empty() {
                continue;
            }
            let last_commit = group
                .offsets
                .values()
                .map(|c| c.commit_timestamp)
                .max()
                .unwrap_or(0);
            if now - group.empty_since_ms.max(last_commit) > retention {
                let keys: Vec<(String, i32)> = group.offsets.keys().cloned().collect();
                self.store.delete(&group.id, &keys)?;
                expired += keys.len();
                group.offsets.clear();
                gone.push(group.id.clone());
            }
        }
        for g in gone {
            groups.remove(&g);
        }
        Ok(expired)
    }

    /// Commits offsets; an error per partition, or one for the whole request.
    #[allow(clippy::too_many_arguments)]
    pub fn commit(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        offsets: Vec<CommitArgs>,
        partition_exists: &dyn Fn(&str, i32) -> bool,
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        if let Some(e) = self.not_coordinator(group_id) {
            return Err(e);
        }
        let results = self.commit_locked(
            group_id,
            generation,
            member_id,
            instance_id,
            offsets,
            partition_exists,
        );
        // A flush the commit asked for runs now, outside the lock, before the answer; if it
        // failed, the offsets partition's directory is offline (Kafka answers NOT_COORDINATOR).
        if self.complete_staged().is_err() {
            return Err(ResponseError::NotCoordinator);
        }
        results
    }

    fn commit_locked(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        offsets: Vec<CommitArgs>,
        partition_exists: &dyn Fn(&str, i32) -> bool,
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let mut groups = self.lock();
        match groups.get(group_id) {
            None if generation >= 0 => return Err(ResponseError::IllegalGeneration),
            None => {}
            Some(group) if generation < 0 && member_id.is_empty() && group.is_empty() => {}
            Some(Group {
                consumer: Some(c), ..
            }) => {
                // A KIP-848 group: the member and its current epoch.
                let m = c
                    .members
                    .get(member_id)
                    .ok_or(ResponseError::UnknownMemberId)?;
                if generation != m.epoch {
                    return Err(ResponseError::StaleMemberEpoch);
                }
            }
            Some(group) if generation < 0 && group.state == GroupState::Empty => {}
            Some(group) => {
                group.check_member(member_id, instance_id)?;
                if generation != group.generation {
                    return Err(ResponseError::IllegalGeneration);
                }
                if group.state == GroupState::CompletingRebalance {
                    return Err(ResponseError::RebalanceInProgress);
                }
            }
        }
        let group = groups
            .entry(group_id.to_string())
            .or_insert_with(|| Group::new(group_id));
        let (results, accepted) = self.accept_offsets(offsets, partition_exists);
        if !accepted.is_empty() {
            if let Err(e) = self.store.append(group_id, &accepted) {
                tracing::error!(group = group_id, error = %e, "offset commit not stored");
                return Err(ResponseError::CoordinatorNotAvailable);
            }
            for (key, committed) in accepted {
                group.offsets.insert(key, committed);
            }
        }
        self.maybe_roll(&groups, group_id);
        Ok(results)
    }

    /// Each commit's error (an unknown partition, metadata too large), and the commits accepted.
    pub(super) fn accept_offsets(
        &self,
        offsets: Vec<CommitArgs>,
        partition_exists: &dyn Fn(&str, i32) -> bool,
    ) -> (Vec<Option<ResponseError>>, GroupOffsets) {
        let now = now_ms();
        let mut results = Vec::with_capacity(offsets.len());
        let mut accepted = Vec::new();
        for o in offsets {
            let metadata = o.metadata.unwrap_or_default();
            if !partition_exists(&o.topic, o.partition) {
                results.push(Some(ResponseError::UnknownTopicOrPartition));
            } else if metadata.len() > self.config.offset_metadata_max_bytes {
                results.push(Some(ResponseError::OffsetMetadataTooLarge));
            } else {
                results.push(None);
                accepted.push((
                    (o.topic, o.partition),
                    Committed {
                        offset: o.offset,
                        leader_epoch: o.leader_epoch,
                        metadata,
                        commit_timestamp: now,
                    },
                ));
            }
        }
        (results, accepted)
    }

    /// Rolls a `__consumer_offsets` partition for the cleaner when its active segment holds far
    /// more records than the partition has live keys (see the module docs).
    pub(super) fn maybe_roll(&self, groups: &HashMap<String, Group>, group_id: &str) {
        let partition = self.store.partition_for(group_id);
        // Each group's offsets, classic membership and KIP-848 state are one key each.
        let live = || -> u64 {
            groups
                .values()
                .filter(|g| self.store.partition_for(&g.id) == partition)
                .map(|g| {
                    g.offsets.len() as u64
                        + u64::from(g.record().is_some())
                        + u64::from(g.consumer.as_ref().and_then(|c| c.record()).is_some())
                })
                .sum()
        };
        if let Err(e) = self.store.maybe_roll(partition, live) {
            tracing::warn!(partition, error = %e, "rolling the offsets partition failed");
        }
    }

    /// Committed offsets of a group: all of them, or those of the given partitions (-1 for none).
    pub fn fetch(
        &self,
        group_id: &str,
        partitions: Option<&[(String, i32)]>,
    ) -> Vec<((String, i32), Option<Committed>)> {
        let groups = self.lock();
        let offsets = groups.get(group_id).map(|g| &g.offsets);
        match partitions {
            Some(wanted) => wanted
                .iter()
                .map(|k| (k.clone(), offsets.and_then(|o| o.get(k)).cloned()))
                .collect(),
            None => offsets
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| (k.clone(), Some(v.clone())))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Deletes committed offsets of a group (OffsetDelete): refused for partitions of topics the
    /// group's members subscribe to.
    pub fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        if let Some(e) = self.not_coordinator(group_id) {
            return Err(e);
        }
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return Err(ResponseError::GroupIdNotFound);
        };
        if group.state != GroupState::Empty && group.protocol_type.as_deref() != Some("consumer") {
            return Err(ResponseError::NonEmptyGroup);
        }
        let subscribed = group.subscribed_topics();
        let mut results = Vec::new();
        let mut doomed = Vec::new();
        for (topic, partition) in partitions {
            if group.state != GroupState::Empty && subscribed.contains(topic) {
                results.push(Some(ResponseError::GroupSubscribedToTopic));
            } else {
                results.push(None);
                if group.offsets.contains_key(&(topic.clone(), *partition)) {
                    doomed.push((topic.clone(), *partition));
                }
            }
        }
        if !doomed.is_empty() {
            self.store
                .delete(group_id, &doomed)
                .map_err(|_| ResponseError::CoordinatorNotAvailable)?;
            for k in &doomed {
                group.offsets.remove(k);
            }
        }
        Ok(results)
    }
}
