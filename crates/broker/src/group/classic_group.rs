//! A classic group's state: its members, protocol selection and the rebalance state machine.

use super::classic::{encode_assignment, subscription_topics};
use super::*;

#[derive(Debug)]
pub(super) struct Member {
    pub(super) id: String,
    pub(super) instance_id: Option<String>,
    pub(super) client_id: String,
    pub(super) client_host: String,
    pub(super) session_timeout: Duration,
    pub(super) rebalance_timeout: Duration,
    pub(super) protocol_type: String,
    pub(super) protocols: Vec<(String, Bytes)>,
    pub(super) assignment: Bytes,
    pub(super) join_waiter: Option<oneshot::Sender<JoinOutcome>>,
    pub(super) sync_waiter: Option<oneshot::Sender<SyncOutcome>>,
    /// Joined the rebalance under way.
    pub(super) joined: bool,
    pub(super) last_seen: Instant,
}

#[derive(Debug)]
pub(super) struct Group {
    pub(super) id: String,
    pub(super) state: GroupState,
    pub(super) generation: i32,
    pub(super) protocol_type: Option<String>,
    pub(super) protocol: Option<String>,
    pub(super) leader: Option<String>,
    pub(super) members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet joined, and when they lapse.
    pub(super) pending: HashMap<String, Instant>,
    /// group.instance.id -> member id (static members).
    pub(super) instances: HashMap<String, String>,
    pub(super) offsets: BTreeMap<(String, i32), Committed>,
    /// Offsets committed in transactions not decided yet (TxnOffsetCommit), by producer id.
    pub(super) txn_offsets: HashMap<i64, BTreeMap<(String, i32), Committed>>,
    /// When the rebalance under way completes at the latest.
    pub(super) rebalance_deadline: Option<Instant>,
    /// A first rebalance waits this long for more members (`group.initial.rebalance.delay.ms`).
    pub(super) initial_delay_until: Option<Instant>,
    /// When the group last became empty (ms since the epoch), for offset expiry.
    pub(super) empty_since_ms: i64,
    /// A group of the consumer protocol (KIP-848) rather than the classic one.
    pub(super) consumer: Option<ConsumerGroupState>,
    /// The membership changed since it was last written to the offsets topic.
    pub(super) membership_dirty: bool,
}

impl Group {
    pub(super) fn new(id: &str) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: HashMap::new(),
            instances: HashMap::new(),
            offsets: BTreeMap::new(),
            txn_offsets: HashMap::new(),
            rebalance_deadline: None,
            initial_delay_until: None,
            empty_since_ms: now_ms(),
            consumer: None,
            membership_dirty: false,
        }
    }

    /// The membership to keep across a restart: a Stable classic group's members and
    /// assignments; None when there is nothing to keep.
    pub(super) fn record(&self) -> Option<GroupRecord> {
        if self.state != GroupState::Stable || self.members.is_empty() {
            return None;
        }
        let protocol = self.protocol.clone().unwrap_or_default();
        Some(GroupRecord {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            members: self
                .members
                .values()
                .map(|m| MemberRecord {
                    id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout.as_millis() as i32,
                    session_timeout_ms: m.session_timeout.as_millis() as i32,
                    subscription: m
                        .protocols
                        .iter()
                        .find(|(p, _)| *p == protocol)
                        .map(|(_, md)| md.to_vec())
                        .unwrap_or_default(),
                    assignment: m.assignment.to_vec(),
                })
                .collect(),
        })
    }

    /// A group as a restarted coordinator finds it: Stable with its last members, whose sessions
    /// start now.
    pub(super) fn restore(&mut self, record: GroupRecord) {
        let now = Instant::now();
        self.state = GroupState::Stable;
        self.generation = record.generation;
        self.protocol_type = Some(record.protocol_type.clone());
        self.protocol = Some(record.protocol.clone());
        self.leader = Some(record.leader);
        for m in record.members {
            if let Some(instance) = &m.instance_id {
                self.instances.insert(instance.clone(), m.id.clone());
            }
            self.members.insert(
                m.id.clone(),
                Member {
                    id: m.id,
                    instance_id: m.instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout: Duration::from_millis(m.session_timeout_ms.max(0) as u64),
                    rebalance_timeout: Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64),
                    protocol_type: record.protocol_type.clone(),
                    protocols: vec![(record.protocol.clone(), Bytes::from(m.subscription))],
                    assignment: Bytes::from(m.assignment),
                    join_waiter: None,
                    sync_waiter: None,
                    joined: false,
                    last_seen: now,
                },
            );
        }
    }

    /// No members (either protocol).
    pub(super) fn is_empty(&self) -> bool {
        self.members.is_empty() && self.consumer.as_ref().is_none_or(|c| c.members.is_empty())
    }

    /// The protocol every member supports with the most votes (each member votes for its first
    /// supported choice), as Kafka selects it.
    pub(super) fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == *n))
            })
            .collect();
        let mut votes: HashMap<&String, usize> = HashMap::new();
        for m in self.members.values() {
            if let Some((choice, _)) = m.protocols.iter().find(|(p, _)| candidates.contains(&p)) {
                *votes.entry(choice).or_default() += 1;
            }
        }
        candidates
            .into_iter()
            .max_by_key(|c| votes.get(c).copied().unwrap_or(0))
            .cloned()
    }

    pub(super) fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        // The members' own protocol type: the group's is only set once a rebalance completes.
        self.members
            .values()
            .all(|m| m.protocol_type == protocol_type)
            && protocols.iter().any(|(p, _)| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(q, _)| q == p))
            })
    }

    pub(super) fn join_outcome(&self, member_id: &str) -> JoinOutcome {
        let is_leader = self.leader.as_deref() == Some(member_id);
        let protocol = self.protocol.clone();
        JoinOutcome {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            skip_assignment: false,
            members: if is_leader {
                self.members
                    .values()
                    .map(|m| {
                        let metadata = m
                            .protocols
                            .iter()
                            .find(|(p, _)| Some(p) == protocol.as_ref())
                            .map(|(_, md)| md.clone())
                            .unwrap_or_default();
                        (m.id.clone(), m.instance_id.clone(), metadata)
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    /// Starts (or restarts) a rebalance: every member must join again.
    pub(super) fn prepare_rebalance(&mut self, now: Instant, initial_delay: Duration) {
        if self.state == GroupState::CompletingRebalance {
            for m in self.members.values_mut() {
                if let Some(w) = m.sync_waiter.take() {
                    let _ = w.send(SyncOutcome::error(ResponseError::RebalanceInProgress));
                }
            }
        }
        if self.state == GroupState::PreparingRebalance {
            return;
        }
        let was_empty = self.state == GroupState::Empty;
        self.state = GroupState::PreparingRebalance;
        for m in self.members.values_mut() {
            m.joined = m.join_waiter.is_some();
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        self.rebalance_deadline = Some(now + timeout);
        self.initial_delay_until = was_empty.then(|| now + initial_delay.min(timeout));
    }

    /// Completes the join phase when every member has joined (after the initial delay) or the
    /// rebalance timeout passed: members that did not join are removed.
    pub(super) fn try_complete_join(&mut self, now: Instant) -> bool {
        if self.state != GroupState::PreparingRebalance {
            return false;
        }
        let all_joined = self.members.values().all(|m| m.joined);
        let delayed = self.initial_delay_until.is_some_and(|t| now < t);
        let timed_out = self.rebalance_deadline.is_some_and(|t| now >= t);
        if (!all_joined || delayed) && !timed_out {
            return false;
        }
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.joined)
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            self.remove_member(&id);
        }
        self.generation += 1;
        self.rebalance_deadline = None;
        self.initial_delay_until = None;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol = None;
            self.protocol_type = None;
            self.leader = None;
            self.empty_since_ms = now_ms();
            return true;
        }
        self.protocol = self.select_protocol();
        self.protocol_type = self
            .members
            .values()
            .next()
            .map(|m| m.protocol_type.clone());
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.state = GroupState::CompletingRebalance;
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let outcome = self.join_outcome(&id);
            let m = self.members.get_mut(&id).expect("member");
            m.joined = false;
            m.last_seen = now;
            m.assignment = Bytes::new();
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(outcome);
            }
        }
        true
    }

    pub(super) fn remove_member(&mut self, id: &str) -> Option<Member> {
        let mut m = self.members.remove(id)?;
        if let Some(instance) = &m.instance_id {
            if self.instances.get(instance).map(String::as_str) == Some(id) {
                self.instances.remove(instance);
            }
        }
        if let Some(w) = m.join_waiter.take() {
            let _ = w.send(JoinOutcome::error(ResponseError::UnknownMemberId, id));
        }
        if let Some(w) = m.sync_waiter.take() {
            let _ = w.send(SyncOutcome::error(ResponseError::UnknownMemberId));
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = None;
        }
        Some(m)
    }

    /// After members left or expired: rebalance the rest, or become empty.
    pub(super) fn members_changed(&mut self, now: Instant, initial_delay: Duration) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                if self.members.is_empty() {
                    self.state = GroupState::Empty;
                    self.generation += 1;
                    self.protocol = None;
                    self.protocol_type = None;
                    self.leader = None;
                    self.empty_since_ms = now_ms();
                } else {
                    self.prepare_rebalance(now, initial_delay);
                }
            }
            GroupState::PreparingRebalance => {
                self.try_complete_join(now);
            }
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// Checks that `member_id` (with `instance_id`) is a current member.
    pub(super) fn check_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        if let Some(instance) = instance_id {
            match self.instances.get(instance) {
                Some(current) if current != member_id => {
                    return Err(ResponseError::FencedInstanceId)
                }
                _ => {}
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        Ok(())
    }

    pub(super) fn view(&self) -> GroupView {
        if let Some(c) = &self.consumer {
            return GroupView {
                group_id: self.id.clone(),
                state: c.state_name().to_string(),
                group_type: "consumer",
                protocol_type: "consumer".into(),
                protocol: c.assignor(),
                members: c
                    .members
                    .values()
                    .map(|m| MemberView {
                        member_id: m.id.clone(),
                        instance_id: m.instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        metadata: Bytes::new(),
                        assignment: encode_assignment(&m.assigned),
                    })
                    .collect(),
            };
        }
        GroupView {
            group_id: self.id.clone(),
            state: self.state.name().to_string(),
            group_type: "classic",
            protocol_type: self.protocol_type.clone().unwrap_or_else(|| {
                if self.offsets.is_empty() {
                    String::new()
                } else {
                    "consumer".into()
                }
            }),
            protocol: if self.state == GroupState::Stable
                || self.state == GroupState::CompletingRebalance
            {
                self.protocol.clone().unwrap_or_default()
            } else {
                String::new()
            },
            members: self
                .members
                .values()
                .map(|m| MemberView {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: m
                        .protocols
                        .iter()
                        .find(|(p, _)| Some(p) == self.protocol.as_ref())
                        .map(|(_, md)| md.clone())
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// The topics members subscribe to (from the consumer protocol's subscription metadata).
    pub(super) fn subscribed_topics(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .consumer
            .iter()
            .flat_map(|c| c.members.values().flat_map(|m| m.topics()))
            .collect();
        for m in self.members.values() {
            for (_, metadata) in &m.protocols {
                out.extend(subscription_topics(metadata));
            }
        }
        out
    }
}
