//! The classic group protocol: JoinGroup (with the member-id round trip), SyncGroup, Heartbeat,
//! LeaveGroup, and the group state machine they drive.

pub(super) use super::classic_group::{Group, Member};
use super::*;

/// A ConsumerProtocolAssignment (version 0) of `partitions`: what a classic member of the
/// consumer protocol would have been given, for DescribeGroups of a KIP-848 group.
pub(super) fn encode_assignment(partitions: &std::collections::BTreeSet<TopicPartition>) -> Bytes {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        by_topic.entry(t).or_default().push(*p);
    }
    let mut out = Vec::new();
    out.extend_from_slice(&0i16.to_be_bytes());
    out.extend_from_slice(&(by_topic.len() as i32).to_be_bytes());
    for (t, ps) in by_topic {
        out.extend_from_slice(&(t.len() as i16).to_be_bytes());
        out.extend_from_slice(t.as_bytes());
        out.extend_from_slice(&(ps.len() as i32).to_be_bytes());
        for p in ps {
            out.extend_from_slice(&p.to_be_bytes());
        }
    }
    out.extend_from_slice(&(-1i32).to_be_bytes());
    Bytes::from(out)
}

/// Topics of a ConsumerProtocolSubscription (version, then an array of topic strings).
pub(super) fn subscription_topics(metadata: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    if metadata.len() < 6 {
        return out;
    }
    let count = i32::from_be_bytes(metadata[2..6].try_into().expect("4 bytes"));
    let mut at = 6;
    for _ in 0..count.max(0) {
        let Some(len) = metadata.get(at..at + 2) else {
            break;
        };
        let len = i16::from_be_bytes(len.try_into().expect("2 bytes")).max(0) as usize;
        let Some(name) = metadata.get(at + 2..at + 2 + len) else {
            break;
        };
        out.push(String::from_utf8_lossy(name).into_owned());
        at += 2 + len;
    }
    out
}

impl Coordinator {
    pub fn join(&self, args: JoinArgs) -> Reply<JoinOutcome> {
        let now = Instant::now();
        if let Some(e) = self.not_coordinator(&args.group_id) {
            return Reply::Now(JoinOutcome::error(e, &args.member_id));
        }
        if args.group_id.is_empty() {
            return Reply::Now(JoinOutcome::error(
                ResponseError::InvalidGroupId,
                &args.member_id,
            ));
        }
        let metadata_bytes: usize = args
            .protocols
            .iter()
            .map(|(name, md)| name.len() + md.len())
            .sum();
        if metadata_bytes > MAX_MEMBER_METADATA_BYTES {
            return Reply::Now(JoinOutcome::error(
                ResponseError::MessageTooLarge,
                &args.member_id,
            ));
        }
        if args.session_timeout_ms < self.config.min_session_timeout_ms
            || args.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return Reply::Now(JoinOutcome::error(
                ResponseError::InvalidSessionTimeout,
                &args.member_id,
            ));
        }
        let mut groups = self.lock();
        if !args.member_id.is_empty() && !groups.contains_key(&args.group_id) {
            return Reply::Now(JoinOutcome::error(
                ResponseError::UnknownMemberId,
                &args.member_id,
            ));
        }
        let group = groups
            .entry(args.group_id.clone())
            .or_insert_with(|| Group::new(&args.group_id));
        if group
            .consumer
            .as_ref()
            .is_some_and(|c| !c.members.is_empty())
        {
            // A KIP-848 group with members: classic members cannot join it.
            return Reply::Now(JoinOutcome::error(
                ResponseError::InconsistentGroupProtocol,
                &args.member_id,
            ));
        }
        group.consumer = None;
        if !group.supports(&args.protocol_type, &args.protocols) {
            return Reply::Now(JoinOutcome::error(
                ResponseError::InconsistentGroupProtocol,
                &args.member_id,
            ));
        }
        let session_timeout = Duration::from_millis(args.session_timeout_ms as u64);
        // (JoinGroup v0 has no rebalance timeout: the handler passes the session timeout.)
        let rebalance_timeout = Duration::from_millis(args.rebalance_timeout_ms.max(0) as u64);
        let make_member = |id: String| Member {
            id,
            instance_id: args.instance_id.clone(),
            client_id: args.client_id.clone(),
            client_host: args.client_host.clone(),
            session_timeout,
            rebalance_timeout,
            protocol_type: args.protocol_type.clone(),
            protocols: args.protocols.clone(),
            assignment: Bytes::new(),
            join_waiter: None,
            sync_waiter: None,
            joined: false,
            last_seen: now,
        };
        let fresh_id = |prefix: &str| format!("{prefix}-{}", uuid::Uuid::new_v4());
        let initial_delay = self.initial_delay();

        let member_id = if args.member_id.is_empty() {
            if let Some(instance) = &args.instance_id {
                if let Some(old_id) = group.instances.get(instance).cloned() {
                    // A static member is back: it takes over its old place under a new id, and
                    // the old id is fenced.
                    let new_id = fresh_id(instance);
                    let mut old = group.members.remove(&old_id).expect("static member");
                    if let Some(w) = old.join_waiter.take() {
                        let _ =
                            w.send(JoinOutcome::error(ResponseError::FencedInstanceId, &old_id));
                    }
                    if let Some(w) = old.sync_waiter.take() {
                        let _ = w.send(SyncOutcome::error(ResponseError::FencedInstanceId));
                    }
                    let unchanged = old.protocols == args.protocols;
                    let mut member = make_member(new_id.clone());
                    member.assignment = old.assignment;
                    group.members.insert(new_id.clone(), member);
                    group.instances.insert(instance.clone(), new_id.clone());
                    let was_leader = group.leader.as_deref() == Some(old_id.as_str());
                    if was_leader {
                        group.leader = Some(new_id.clone());
                    }
                    if group.state == GroupState::Stable && unchanged {
                        // No rebalance: it gets its partitions back with SyncGroup. A returning
                        // leader sees the members but is told not to assign (KIP-814); older
                        // clients that assign anyway get the current assignment back.
                        let mut outcome = group.join_outcome(&new_id);
                        outcome.skip_assignment = was_leader;
                        group.membership_dirty = true;
                        self.persist_membership(group);
                        return Reply::Now(outcome);
                    }
                    new_id
                } else {
                    if group.members.len() >= self.config.max_size {
                        return Reply::Now(JoinOutcome::error(
                            ResponseError::GroupMaxSizeReached,
                            "",
                        ));
                    }
                    let id = fresh_id(instance);
                    group.members.insert(id.clone(), make_member(id.clone()));
                    group.instances.insert(instance.clone(), id.clone());
                    id
                }
            } else {
                if group.members.len() + group.pending.len() >= self.config.max_size {
                    return Reply::Now(JoinOutcome::error(ResponseError::GroupMaxSizeReached, ""));
                }
                let id = fresh_id(if args.client_id.is_empty() {
                    "member"
                } else {
                    &args.client_id
                });
                if args.require_known_member_id {
                    group.pending.insert(id.clone(), now + session_timeout);
                    return Reply::Now(JoinOutcome::error(ResponseError::MemberIdRequired, &id));
                }
                group.members.insert(id.clone(), make_member(id.clone()));
                id
            }
        } else if group.pending.remove(&args.member_id).is_some() {
            if group.members.len() >= self.config.max_size {
                return Reply::Now(JoinOutcome::error(
                    ResponseError::GroupMaxSizeReached,
                    &args.member_id,
                ));
            }
            group
                .members
                .insert(args.member_id.clone(), make_member(args.member_id.clone()));
            args.member_id.clone()
        } else {
            if let Err(e) = group.check_member(&args.member_id, args.instance_id.as_deref()) {
                return Reply::Now(JoinOutcome::error(e, &args.member_id));
            }
            let is_leader = group.leader.as_deref() == Some(args.member_id.as_str());
            let member = group.members.get_mut(&args.member_id).expect("member");
            let unchanged = member.protocols == args.protocols;
            member.protocols = args.protocols.clone();
            member.session_timeout = session_timeout;
            member.rebalance_timeout = rebalance_timeout;
            member.last_seen = now;
            match group.state {
                GroupState::CompletingRebalance if unchanged => {
                    return Reply::Now(group.join_outcome(&args.member_id));
                }
                GroupState::Stable if unchanged && !is_leader => {
                    return Reply::Now(group.join_outcome(&args.member_id));
                }
                _ => {}
            }
            args.member_id.clone()
        };

        let (tx, rx) = oneshot::channel();
        let member = group.members.get_mut(&member_id).expect("member");
        if let Some(old) = member.join_waiter.replace(tx) {
            let _ = old.send(JoinOutcome::error(
                ResponseError::UnknownMemberId,
                &member_id,
            ));
        }
        member.joined = true;
        member.last_seen = now;
        if group.state == GroupState::PreparingRebalance {
            // A new member during the initial delay pushes it back (up to the rebalance timeout).
            if let (Some(until), Some(deadline)) =
                (group.initial_delay_until, group.rebalance_deadline)
            {
                group.initial_delay_until = Some((now + initial_delay).min(deadline).max(until));
            }
        } else {
            group.prepare_rebalance(now, initial_delay);
        }
        group.try_complete_join(now);
        Reply::Later(rx)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> Reply<SyncOutcome> {
        if let Some(e) = self.not_coordinator(group_id) {
            return Reply::Now(SyncOutcome::error(e));
        }
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return Reply::Now(SyncOutcome::error(ResponseError::UnknownMemberId));
        };
        if let Err(e) = group.check_member(member_id, instance_id) {
            return Reply::Now(SyncOutcome::error(e));
        }
        if generation != group.generation {
            return Reply::Now(SyncOutcome::error(ResponseError::IllegalGeneration));
        }
        if protocol_type.is_some_and(|t| Some(t) != group.protocol_type.as_deref())
            || protocol_name.is_some_and(|n| Some(n) != group.protocol.as_deref())
        {
            return Reply::Now(SyncOutcome::error(ResponseError::InconsistentGroupProtocol));
        }
        let outcome = |group: &Group, assignment: Bytes| SyncOutcome {
            error: None,
            protocol_type: group.protocol_type.clone(),
            protocol_name: group.protocol.clone(),
            assignment,
        };
        match group.state {
            GroupState::PreparingRebalance => {
                Reply::Now(SyncOutcome::error(ResponseError::RebalanceInProgress))
            }
            GroupState::Stable => {
                let assignment = group.members[member_id].assignment.clone();
                Reply::Now(outcome(group, assignment))
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                group
                    .members
                    .get_mut(member_id)
                    .expect("member")
                    .sync_waiter = Some(tx);
                if group.leader.as_deref() == Some(member_id) {
                    let mut by_member: HashMap<String, Bytes> = assignments.into_iter().collect();
                    let ids: Vec<String> = group.members.keys().cloned().collect();
                    for id in ids {
                        let assignment = by_member.remove(&id).unwrap_or_default();
                        let reply = outcome(group, assignment.clone());
                        let m = group.members.get_mut(&id).expect("member");
                        m.assignment = assignment;
                        if let Some(w) = m.sync_waiter.take() {
                            let _ = w.send(reply);
                        }
                    }
                    group.state = GroupState::Stable;
                    group.membership_dirty = true;
                    self.persist_membership(group);
                }
                Reply::Later(rx)
            }
            GroupState::Empty | GroupState::Dead => {
                Reply::Now(SyncOutcome::error(ResponseError::UnknownMemberId))
            }
        }
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Option<ResponseError> {
        if let Some(e) = self.not_coordinator(group_id) {
            return Some(e);
        }
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return Some(ResponseError::UnknownMemberId);
        };
        if let Err(e) = group.check_member(member_id, instance_id) {
            return Some(e);
        }
        group.members.get_mut(member_id).expect("member").last_seen = Instant::now();
        if generation != group.generation {
            return Some(ResponseError::IllegalGeneration);
        }
        match group.state {
            GroupState::PreparingRebalance => Some(ResponseError::RebalanceInProgress),
            _ => None,
        }
    }

    /// Removes members (by member id, or by instance id when the member id is empty); an error
    /// per member.
    pub fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        if let Some(e) = self.not_coordinator(group_id) {
            return Err(e);
        }
        let now = Instant::now();
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return Err(ResponseError::UnknownMemberId);
        };
        let mut out = Vec::new();
        let mut changed = false;
        for (member_id, instance_id) in members {
            let id = match (member_id.is_empty(), instance_id) {
                (true, Some(instance)) => match group.instances.get(instance) {
                    Some(id) => id.clone(),
                    None => {
                        out.push(Some(ResponseError::UnknownMemberId));
                        continue;
                    }
                },
                _ => member_id.clone(),
            };
            if let Err(e) = group.check_member(&id, instance_id.as_deref()) {
                out.push(Some(e));
                continue;
            }
            group.remove_member(&id);
            changed = true;
            out.push(None);
        }
        if changed {
            group.members_changed(now, self.initial_delay());
            group.membership_dirty = true;
            self.persist_membership(group);
        }
        Ok(out)
    }
}
