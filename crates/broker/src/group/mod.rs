//! The group coordinator: Kafka's classic group protocol (JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup) with its state machine, and committed offsets kept in `__consumer_offsets`.
//!
//! ```text
//!            join (first member)             all members joined, or the rebalance timeout
//!   Empty ----------------------> Preparing ------------------------------> Completing
//!     ^                           Rebalance <---- join / leave / expiry ---- Rebalance
//!     |  last member gone             ^                                         | leader's
//!     +-------------------------------+---- join / leave / expiry ---- Stable <-+ SyncGroup
//! ```
//! One broker coordinates every group. State lives under one mutex, held only for bookkeeping;
//! JoinGroup and SyncGroup answers that must wait are oneshot channels completed by whoever
//! moves the group on (another member's request, or the coordinator's timer).
//!
//! Offsets are records in `__consumer_offsets` (Kafka's key and value layouts), appended to the
//! partition chosen by the group id's hash, as Kafka does. Instead of log compaction, when a
//! partition holds more than twice as many records as live offsets (and at least
//! [`SNAPSHOT_MIN_RECORDS`]), the live offsets of its groups are written again and everything
//! before them is deleted (DeleteRecords): the startup reload reads at most about
//! 2 x live + that minimum, however many commits were ever made.

pub mod consumer;
pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;

use consumer::{ConsumerGroupState, ConsumerMember, TopicPartition, ASSIGNORS};
pub use store::{GroupRecord, MemberRecord, OffsetStore, OFFSETS_TOPIC};

/// (topic, partition).
pub type OffsetKey = (String, i32);
/// A group's committed offsets.
pub type GroupOffsets = Vec<(OffsetKey, Committed)>;

/// The most protocol metadata a member may bring to JoinGroup: what one record of the offsets
/// topic may hold (its `max.message.bytes`), where Kafka keeps group metadata.
pub const MAX_MEMBER_METADATA_BYTES: usize = 1_048_588;

/// Records below which a partition of `__consumer_offsets` is never rewritten.
pub const SNAPSHOT_MIN_RECORDS: u64 = 10_000;

/// The `group.*` and `offsets.*` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupConfig {
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub initial_rebalance_delay_ms: i32,
    pub max_size: usize,
    pub offsets_partitions: i32,
    pub offsets_segment_bytes: u64,
    pub offsets_retention_ms: i64,
    pub offsets_retention_check_interval_ms: u64,
    pub offset_metadata_max_bytes: usize,
    /// `group.consumer.heartbeat.interval.ms` (KIP-848 groups).
    pub consumer_heartbeat_interval_ms: i32,
    /// `group.consumer.session.timeout.ms` (KIP-848 groups).
    pub consumer_session_timeout_ms: i32,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3000,
            max_size: i32::MAX as usize,
            offsets_partitions: 50,
            offsets_segment_bytes: 100 << 20,
            offsets_retention_ms: 7 * 24 * 3600 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
            consumer_heartbeat_interval_ms: 5000,
            consumer_session_timeout_ms: 45_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka reports (ListGroups, DescribeGroups).
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

/// What a JoinGroup answers.
#[derive(Debug, Clone, Default)]
pub struct JoinOutcome {
    pub error: Option<ResponseError>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    pub skip_assignment: bool,
    /// (member id, group instance id, metadata): for the leader only.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinOutcome {
    fn error(error: ResponseError, member_id: &str) -> JoinOutcome {
        JoinOutcome {
            error: Some(error),
            generation: -1,
            member_id: member_id.to_string(),
            ..Default::default()
        }
    }
}

/// What a SyncGroup answers.
#[derive(Debug, Clone, Default)]
pub struct SyncOutcome {
    pub error: Option<ResponseError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncOutcome {
    fn error(error: ResponseError) -> SyncOutcome {
        SyncOutcome {
            error: Some(error),
            ..Default::default()
        }
    }
}

/// An answer now, or one that comes when the group moves on.
pub enum Reply<T> {
    Now(T),
    Later(oneshot::Receiver<T>),
}

/// A JoinGroup request, as the coordinator needs it.
#[derive(Debug, Clone)]
pub struct JoinArgs {
    pub group_id: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4 and later: a new member first gets its id (MEMBER_ID_REQUIRED).
    pub require_known_member_id: bool,
}

#[derive(Debug)]
struct Member {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocol_type: String,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    join_waiter: Option<oneshot::Sender<JoinOutcome>>,
    sync_waiter: Option<oneshot::Sender<SyncOutcome>>,
    /// Joined the rebalance under way.
    joined: bool,
    last_seen: Instant,
}

/// One member, as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct MemberView {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// One group, as DescribeGroups and ListGroups show it.
#[derive(Debug, Clone)]
pub struct GroupView {
    pub group_id: String,
    /// Kafka's name of the state (classic: Empty, PreparingRebalance, ...; consumer: Empty,
    /// Assigning, Reconciling, Stable).
    pub state: String,
    /// "classic" or "consumer" (KIP-848).
    pub group_type: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberView>,
}

#[derive(Debug)]
struct Group {
    id: String,
    state: GroupState,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet joined, and when they lapse.
    pending: HashMap<String, Instant>,
    /// group.instance.id -> member id (static members).
    instances: HashMap<String, String>,
    offsets: BTreeMap<(String, i32), Committed>,
    /// When the rebalance under way completes at the latest.
    rebalance_deadline: Option<Instant>,
    /// A first rebalance waits this long for more members (`group.initial.rebalance.delay.ms`).
    initial_delay_until: Option<Instant>,
    /// When the group last became empty (ms since the epoch), for offset expiry.
    empty_since_ms: i64,
    /// A group of the consumer protocol (KIP-848) rather than the classic one.
    consumer: Option<ConsumerGroupState>,
    /// The membership changed since it was last written to the offsets topic.
    membership_dirty: bool,
}

impl Group {
    fn new(id: &str) -> Group {
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
            rebalance_deadline: None,
            initial_delay_until: None,
            empty_since_ms: now_ms(),
            consumer: None,
            membership_dirty: false,
        }
    }

    /// The membership to keep across a restart: a Stable classic group's members and
    /// assignments; None when there is nothing to keep.
    fn record(&self) -> Option<GroupRecord> {
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
    fn restore(&mut self, record: GroupRecord) {
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
    fn is_empty(&self) -> bool {
        self.members.is_empty() && self.consumer.as_ref().is_none_or(|c| c.members.is_empty())
    }

    /// The protocol every member supports with the most votes (each member votes for its first
    /// supported choice), as Kafka selects it.
    fn select_protocol(&self) -> Option<String> {
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

    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
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

    fn join_outcome(&self, member_id: &str) -> JoinOutcome {
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
    fn prepare_rebalance(&mut self, now: Instant, initial_delay: Duration) {
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
    fn try_complete_join(&mut self, now: Instant) -> bool {
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

    fn remove_member(&mut self, id: &str) -> Option<Member> {
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
    fn members_changed(&mut self, now: Instant, initial_delay: Duration) {
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
    fn check_member(
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

    fn view(&self) -> GroupView {
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
    fn subscribed_topics(&self) -> Vec<String> {
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

/// A ConsumerProtocolAssignment (version 0) of `partitions`: what a classic member of the
/// consumer protocol would have been given, for DescribeGroups of a KIP-848 group.
fn encode_assignment(partitions: &std::collections::BTreeSet<TopicPartition>) -> Bytes {
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
fn subscription_topics(metadata: &[u8]) -> Vec<String> {
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

pub fn now_ms() -> i64 {
    strata_storage::now_ms()
}

/// Everything the coordinator knows, behind one lock.
pub struct Coordinator {
    config: GroupConfig,
    groups: Mutex<HashMap<String, Group>>,
    store: OffsetStore,
}

/// A ConsumerGroupHeartbeat, as the coordinator needs it (topic ids resolved to names).
#[derive(Debug, Clone)]
pub struct HeartbeatArgs {
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    /// None: unchanged.
    pub subscribed: Option<Vec<String>>,
    /// None: unchanged; empty: no regex.
    pub regex: Option<String>,
    /// None: unchanged.
    pub assignor: Option<String>,
    /// The partitions the member owns; None: unchanged.
    pub owned: Option<Vec<TopicPartition>>,
    pub client_id: String,
    pub client_host: String,
}

/// What a ConsumerGroupHeartbeat answers.
#[derive(Debug, Clone)]
pub struct HeartbeatOutcome {
    pub error: Option<ResponseError>,
    pub message: Option<String>,
    pub member_id: String,
    pub epoch: i32,
    pub interval_ms: i32,
    /// The member's whole assignment when it changed; None: unchanged.
    pub assignment: Option<std::collections::BTreeSet<TopicPartition>>,
}

/// A KIP-848 group for ConsumerGroupDescribe.
#[derive(Debug, Clone)]
pub struct ConsumerGroupView {
    pub state: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: Vec<ConsumerMemberView>,
}

#[derive(Debug, Clone)]
pub struct ConsumerMemberView {
    pub member: ConsumerMember,
    pub target: std::collections::BTreeSet<TopicPartition>,
}

/// What an OffsetCommit asks for one partition.
#[derive(Debug, Clone)]
pub struct CommitArgs {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

impl Coordinator {
    /// Opens the coordinator, reloading committed offsets from `__consumer_offsets`.
    pub fn open(config: GroupConfig, store: OffsetStore) -> std::io::Result<Arc<Coordinator>> {
        let mut groups: HashMap<String, Group> = HashMap::new();
        let loaded = store.load()?;
        for ((group, topic, partition), committed) in loaded.offsets {
            groups
                .entry(group.clone())
                .or_insert_with(|| Group::new(&group))
                .offsets
                .insert((topic, partition), committed);
        }
        for (group, record) in loaded.groups {
            groups
                .entry(group.clone())
                .or_insert_with(|| Group::new(&group))
                .restore(record);
        }
        for (group, record) in loaded.consumer_groups {
            groups
                .entry(group.clone())
                .or_insert_with(|| Group::new(&group))
                .consumer = Some(ConsumerGroupState::restore(record));
        }
        Ok(Arc::new(Coordinator {
            config,
            groups: Mutex::new(groups),
            store,
        }))
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// Writes a KIP-848 group's state when it changed since last written.
    fn persist_consumer_group(&self, group_id: &str, c: &mut ConsumerGroupState) {
        let Some(record) = c.changed_record() else {
            return;
        };
        match self.store.store_consumer_group(group_id, record.as_ref()) {
            Ok(()) => c.stored = record,
            Err(e) => {
                tracing::warn!(group = group_id, error = %e, "consumer group state not stored")
            }
        }
    }

    /// Writes a group's membership when it changed: its members once Stable, none once empty.
    fn persist_membership(&self, group: &mut Group) {
        if !group.membership_dirty {
            return;
        }
        let record = group.record();
        if record.is_none() && !group.is_empty() {
            // Mid-rebalance states are not kept: a restart then brings back the last Stable one.
            return;
        }
        match self.store.store_group(&group.id, record.as_ref()) {
            Ok(()) => group.membership_dirty = false,
            Err(e) => tracing::warn!(group = %group.id, error = %e, "group membership not stored"),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn initial_delay(&self) -> Duration {
        Duration::from_millis(self.config.initial_rebalance_delay_ms.max(0) as u64)
    }

    pub fn join(&self, args: JoinArgs) -> Reply<JoinOutcome> {
        let now = Instant::now();
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

    /// Expires members whose session lapsed, completes rebalances whose time is up, and
    /// expires offsets of groups that stayed empty. Called by the coordinator's timer.
    pub fn tick(&self) {
        let now = Instant::now();
        let initial_delay = self.initial_delay();
        let mut groups = self.lock();
        for group in groups.values_mut() {
            group.pending.retain(|_, until| *until > now);
            let expired: Vec<String> = group
                .members
                .values()
                // A member waiting for its JoinGroup answer is not expected to heartbeat.
                .filter(|m| m.join_waiter.is_none() && now >= m.last_seen + m.session_timeout)
                .map(|m| m.id.clone())
                .collect();
            if !expired.is_empty() {
                for id in &expired {
                    tracing::info!(group = %group.id, member = %id, "member session expired");
                    group.remove_member(id);
                }
                group.members_changed(now, initial_delay);
                group.membership_dirty = true;
            }
            if group.try_complete_join(now) {
                group.membership_dirty = true;
            }
            if group.membership_dirty {
                self.persist_membership(group);
            }
            if let Some(c) = &mut group.consumer {
                let session =
                    Duration::from_millis(self.config.consumer_session_timeout_ms.max(0) as u64);
                let gone = c.expire(now, session);
                for id in &gone {
                    tracing::info!(group = %group.id, member = %id, "member removed (session expired or revocation overdue)");
                }
                if !gone.is_empty() && c.members.is_empty() {
                    // Offsets expire counting from here.
                    group.empty_since_ms = now_ms();
                }
                if !gone.is_empty() {
                    self.persist_consumer_group(&group.id, c);
                }
            }
        }
    }

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
        if !accepted.is_empty() {
            if let Err(e) = self.store.append(group_id, &accepted) {
                tracing::error!(group = group_id, error = %e, "offset commit not stored");
                return Err(ResponseError::CoordinatorNotAvailable);
            }
            for (key, committed) in accepted {
                group.offsets.insert(key, committed);
            }
        }
        self.maybe_snapshot(&groups, group_id);
        Ok(results)
    }

    /// Rewrites the live offsets of a `__consumer_offsets` partition when it holds far more
    /// records than live offsets (see the module docs).
    fn maybe_snapshot(&self, groups: &HashMap<String, Group>, group_id: &str) {
        let partition = self.store.partition_for(group_id);
        let live = || -> Vec<store::LiveGroup> {
            groups
                .values()
                .filter(|g| self.store.partition_for(&g.id) == partition)
                .map(|g| {
                    (
                        g.id.clone(),
                        g.offsets
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                        g.record(),
                        g.consumer.as_ref().and_then(|c| c.record()),
                    )
                })
                .collect()
        };
        if let Err(e) = self.store.maybe_snapshot(partition, live) {
            tracing::warn!(partition, error = %e, "rewriting the offsets partition failed");
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

    /// Deletes empty groups and their offsets (DeleteGroups).
    pub fn delete_group(&self, group_id: &str) -> Option<ResponseError> {
        let mut groups = self.lock();
        let Some(group) = groups.get(group_id) else {
            return Some(ResponseError::GroupIdNotFound);
        };
        if !group.is_empty() {
            return Some(ResponseError::NonEmptyGroup);
        }
        let keys: Vec<(String, i32)> = group.offsets.keys().cloned().collect();
        if self.store.delete(group_id, &keys).is_err() {
            return Some(ResponseError::CoordinatorNotAvailable);
        }
        groups.remove(group_id);
        None
    }

    /// A ConsumerGroupHeartbeat (KIP-848): join (epoch 0), leave (epoch -1, or -2 for a static
    /// member), or a heartbeat that may carry a new subscription and the partitions owned.
    pub fn consumer_heartbeat(
        &self,
        args: HeartbeatArgs,
        partitions_of: &dyn Fn(&str) -> Option<i32>,
        topic_names: &dyn Fn() -> Vec<String>,
    ) -> HeartbeatOutcome {
        let now = Instant::now();
        let fail = |e: ResponseError, message: &str| HeartbeatOutcome {
            error: Some(e),
            message: Some(message.to_string()),
            member_id: args.member_id.clone(),
            epoch: args.member_epoch,
            interval_ms: self.config.consumer_heartbeat_interval_ms,
            assignment: None,
        };
        if args.group_id.is_empty() {
            return fail(ResponseError::InvalidGroupId, "The group id is empty.");
        }
        let regex = match args.regex.as_deref() {
            Some(r) if !r.is_empty() => match regex::Regex::new(&format!("^(?:{r})$")) {
                Ok(re) => Some(re),
                Err(e) => {
                    return fail(
                        ResponseError::InvalidRegularExpression,
                        &format!("Invalid regular expression {r}: {e}"),
                    )
                }
            },
            _ => None,
        };
        if let Some(a) = &args.assignor {
            if !ASSIGNORS.contains(&a.as_str()) {
                return fail(
                    ResponseError::UnsupportedAssignor,
                    &format!("Assignor {a} is not supported; use uniform or range."),
                );
            }
        }
        let mut groups = self.lock();
        let group = groups
            .entry(args.group_id.clone())
            .or_insert_with(|| Group::new(&args.group_id));
        if group.consumer.is_none() {
            if !group.members.is_empty() {
                return fail(
                    ResponseError::GroupIdNotFound,
                    &format!("Group {} is not a consumer group.", args.group_id),
                );
            }
            group.consumer = Some(ConsumerGroupState::default());
        }
        let c = group.consumer.as_mut().expect("consumer group");
        let member_id = match args.member_epoch {
            -2 if c
                .members
                .get(&args.member_id)
                .is_some_and(|m| m.instance_id.is_some()) =>
            {
                // A static member going away for a while (a restart): its place and partitions
                // are kept until its session times out, so its return moves nothing.
                let m = c.members.get_mut(&args.member_id).expect("member");
                m.away = true;
                self.persist_consumer_group(&args.group_id, c);
                return HeartbeatOutcome {
                    error: None,
                    message: None,
                    member_id: args.member_id.clone(),
                    epoch: -2,
                    interval_ms: 0,
                    assignment: None,
                };
            }
            -1 | -2 => {
                if let Some(m) = c.members.remove(&args.member_id) {
                    c.target.remove(&m.id);
                    c.group_epoch += 1;
                    if c.members.is_empty() {
                        group.empty_since_ms = now_ms();
                    }
                }
                self.persist_consumer_group(&args.group_id, c);
                return HeartbeatOutcome {
                    error: None,
                    message: None,
                    member_id: args.member_id.clone(),
                    epoch: args.member_epoch,
                    interval_ms: 0,
                    assignment: None,
                };
            }
            0 => {
                let id = if args.member_id.is_empty() {
                    uuid::Uuid::new_v4().to_string()
                } else {
                    args.member_id.clone()
                };
                // A static member coming back takes over its previous place.
                let previous = args.instance_id.as_ref().and_then(|instance| {
                    c.members
                        .values()
                        .find(|m| m.instance_id.as_ref() == Some(instance) && m.id != id)
                        .map(|m| m.id.clone())
                });
                let mut member = match previous.and_then(|old| c.members.remove(&old)) {
                    Some(mut old) => {
                        if let Some(t) = c.target.remove(&old.id) {
                            c.target.insert(id.clone(), t);
                        }
                        old.id = id.clone();
                        old.last_sent = None;
                        old.away = false;
                        old
                    }
                    None => {
                        if !c.members.contains_key(&id) {
                            if c.members.len() >= self.config.max_size {
                                return fail(
                                    ResponseError::GroupMaxSizeReached,
                                    "The group is full.",
                                );
                            }
                            c.group_epoch += 1;
                        }
                        ConsumerMember {
                            id: id.clone(),
                            instance_id: args.instance_id.clone(),
                            rack_id: args.rack_id.clone(),
                            client_id: args.client_id.clone(),
                            client_host: args.client_host.clone(),
                            epoch: 0,
                            previous_epoch: -1,
                            rebalance_timeout_ms: args.rebalance_timeout_ms,
                            subscribed: Vec::new(),
                            regex: None,
                            regex_topics: Vec::new(),
                            assignor: None,
                            assigned: Default::default(),
                            owned: None,
                            last_sent: None,
                            last_seen: now,
                            revoking_since: None,
                            away: false,
                        }
                    }
                };
                member.last_sent = None;
                member.client_id = args.client_id.clone();
                member.client_host = args.client_host.clone();
                c.members.insert(id.clone(), member);
                id
            }
            epoch => {
                let Some(m) = c.members.get(&args.member_id) else {
                    return fail(
                        ResponseError::UnknownMemberId,
                        &format!(
                            "Member {} is not in group {}.",
                            args.member_id, args.group_id
                        ),
                    );
                };
                if epoch != m.epoch && epoch != m.previous_epoch {
                    return fail(
                        ResponseError::FencedMemberEpoch,
                        &format!("Member epoch {epoch} is not the current {}.", m.epoch),
                    );
                }
                args.member_id.clone()
            }
        };
        let m = c.members.get_mut(&member_id).expect("member");
        m.last_seen = now;
        if args.rebalance_timeout_ms >= 0 {
            m.rebalance_timeout_ms = args.rebalance_timeout_ms;
        }
        if let Some(a) = &args.assignor {
            m.assignor = Some(a.clone());
        }
        if let Some(owned) = &args.owned {
            m.owned = Some(owned.iter().cloned().collect());
        }
        if let Some(subscribed) = &args.subscribed {
            let mut sorted = subscribed.clone();
            sorted.sort();
            sorted.dedup();
            if sorted != m.subscribed {
                m.subscribed = sorted;
                c.group_epoch += 1;
            }
        }
        if let Some(r) = &args.regex {
            m.regex = (!r.is_empty()).then(|| r.clone());
        }
        // Regex subscriptions follow the topics as they come and go (internal topics excluded).
        if c.members.values().any(|m| m.regex.is_some()) {
            let names: Vec<String> = topic_names()
                .into_iter()
                .filter(|t| !t.starts_with("__"))
                .collect();
            for m in c.members.values_mut() {
                let matched: Vec<String> = match (&m.regex, &regex) {
                    (None, _) => Vec::new(),
                    // This member's regex was just compiled; others are compiled again here
                    // (they were valid when they came).
                    (Some(r), Some(re)) if m.id == member_id && Some(r) == args.regex.as_ref() => {
                        names.iter().filter(|t| re.is_match(t)).cloned().collect()
                    }
                    (Some(r), _) => match regex::Regex::new(&format!("^(?:{r})$")) {
                        Ok(re) => names.iter().filter(|t| re.is_match(t)).cloned().collect(),
                        Err(_) => Vec::new(),
                    },
                };
                if matched != m.regex_topics {
                    m.regex_topics = matched;
                    c.group_epoch += 1;
                }
            }
        }
        // The partitions of every subscribed topic, as they are now.
        let mut counts: BTreeMap<String, i32> = BTreeMap::new();
        for t in c.members.values().flat_map(|m| m.topics()) {
            if let Some(n) = partitions_of(&t) {
                counts.insert(t, n);
            }
        }
        if counts != c.topic_partitions {
            c.topic_partitions = counts;
            c.group_epoch += 1;
        }
        c.refresh_target();
        let assignment = c.reconcile(&member_id);
        let epoch = c.members[&member_id].epoch;
        self.persist_consumer_group(&args.group_id, c);
        HeartbeatOutcome {
            error: None,
            message: None,
            member_id: member_id.clone(),
            epoch,
            interval_ms: self.config.consumer_heartbeat_interval_ms,
            assignment,
        }
    }

    /// A KIP-848 group as ConsumerGroupDescribe shows it: Err when missing or classic.
    pub fn describe_consumer(&self, group_id: &str) -> Result<ConsumerGroupView, ResponseError> {
        let groups = self.lock();
        let group = groups.get(group_id).ok_or(ResponseError::GroupIdNotFound)?;
        let c = group
            .consumer
            .as_ref()
            .ok_or(ResponseError::GroupIdNotFound)?;
        Ok(ConsumerGroupView {
            state: c.state_name().to_string(),
            group_epoch: c.group_epoch,
            assignment_epoch: c.assignment_epoch,
            assignor: c.assignor(),
            members: c
                .members
                .values()
                .map(|m| ConsumerMemberView {
                    member: m.clone(),
                    target: c.target.get(&m.id).cloned().unwrap_or_default(),
                })
                .collect(),
        })
    }

    pub fn describe(&self, group_id: &str) -> Option<GroupView> {
        self.lock().get(group_id).map(Group::view)
    }

    pub fn list(&self) -> Vec<GroupView> {
        let mut out: Vec<GroupView> = self.lock().values().map(Group::view).collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// Starts the timer that expires sessions and completes rebalances (and, less often, expires
    /// offsets), on the current tokio runtime.
    pub fn start_timer(self: &Arc<Self>) {
        let coordinator = Arc::downgrade(self);
        let check = Duration::from_millis(self.config.offsets_retention_check_interval_ms.max(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            let mut last_expiry = Instant::now();
            loop {
                tick.tick().await;
                let Some(c) = coordinator.upgrade() else {
                    return;
                };
                c.tick();
                if last_expiry.elapsed() >= check {
                    last_expiry = Instant::now();
                    match c.expire_offsets() {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(offsets = n, "expired offsets of empty groups"),
                        Err(e) => tracing::warn!(error = %e, "offset expiry failed"),
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap as Map;
    use strata_storage::io::RealIo;
    use strata_storage::log_manager::{LogManager, LogManagerConfig};

    fn coordinator(dir: &std::path::Path, retention_ms: i64) -> Arc<Coordinator> {
        let logs = LogManager::open(
            Arc::new(RealIo),
            LogManagerConfig {
                log_dirs: vec![dir.to_path_buf()],
                retention_check_interval_ms: 3_600_000,
                flush_scheduler_interval_ms: 3_600_000,
                flush_offset_checkpoint_interval_ms: 3_600_000,
                tiers: None,
                migration: None,
                mapped_tiers: [false, false],
                pool: None,
            },
            Arc::new(|_| strata_storage::LogConfig::default()),
        )
        .unwrap();
        for (topic, n) in [(OFFSETS_TOPIC, 3), ("t", 1)] {
            if logs.topic(topic).is_none() {
                logs.create_topic(topic, n, Map::new(), [n as u8; 16])
                    .unwrap();
            }
        }
        let config = GroupConfig {
            offsets_retention_ms: retention_ms,
            offsets_partitions: 3,
            ..GroupConfig::default()
        };
        Coordinator::open(config, OffsetStore::new(logs).unwrap()).unwrap()
    }

    fn commit(c: &Coordinator, group: &str, offset: i64) {
        let args = vec![CommitArgs {
            topic: "t".into(),
            partition: 0,
            offset,
            leader_epoch: -1,
            metadata: None,
        }];
        assert_eq!(
            c.commit(group, -1, "", None, args, &|_, _| true),
            Ok(vec![None])
        );
    }

    fn committed(c: &Coordinator, group: &str) -> Option<i64> {
        c.fetch(group, Some(&[("t".to_string(), 0)]))[0]
            .1
            .as_ref()
            .map(|o| o.offset)
    }

    /// `offsets.retention.minutes`: offsets of a group that stays empty expire, durably; a group
    /// with members keeps them.
    #[test]
    fn offsets_of_groups_that_stay_empty_expire() {
        let dir = tempfile::tempdir().unwrap();
        let c = coordinator(dir.path(), 100);
        commit(&c, "idle", 5);
        // A group with a member: never expired while the member is there.
        let join = c.join(JoinArgs {
            group_id: "busy".into(),
            member_id: String::new(),
            instance_id: None,
            client_id: "c".into(),
            client_host: String::new(),
            session_timeout_ms: 60_000,
            rebalance_timeout_ms: 60_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::new())],
            require_known_member_id: false,
        });
        assert!(matches!(join, Reply::Later(_)));
        c.tick();
        c.groups
            .lock()
            .unwrap()
            .get_mut("busy")
            .unwrap()
            .offsets
            .insert(
                ("t".into(), 0),
                Committed {
                    offset: 9,
                    leader_epoch: -1,
                    metadata: String::new(),
                    commit_timestamp: 0,
                },
            );
        assert_eq!(c.expire_offsets().unwrap(), 0, "too early");
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(c.expire_offsets().unwrap(), 1);
        assert_eq!(committed(&c, "idle"), None);
        assert_eq!(committed(&c, "busy"), Some(9));
        assert!(c.list().iter().all(|g| g.group_id != "idle"));
        // The expiry is durable: a coordinator reloading the offsets topic does not see them.
        drop(c);
        let c = coordinator(dir.path(), 100);
        assert_eq!(committed(&c, "idle"), None);
    }

    fn join_args(group: &str, member: &str) -> JoinArgs {
        JoinArgs {
            group_id: group.into(),
            member_id: member.into(),
            instance_id: None,
            client_id: "c".into(),
            client_host: String::new(),
            session_timeout_ms: 60_000,
            rebalance_timeout_ms: 60_000,
            protocol_type: "consumer".into(),
            protocols: vec![
                ("range".into(), Bytes::new()),
                ("roundrobin".into(), Bytes::new()),
            ],
            require_known_member_id: false,
        }
    }

    /// Members joining a new group during its first rebalance (before any protocol type is
    /// settled) are all let in.
    #[test]
    fn members_join_together_during_the_initial_delay() {
        let dir = tempfile::tempdir().unwrap();
        let c = coordinator(dir.path(), i64::MAX / 2);
        for member in ["", ""] {
            match c.join(join_args("together", member)) {
                Reply::Later(_) => {}
                Reply::Now(o) => panic!("refused: {:?}", o.error),
            }
        }
        assert_eq!(c.describe("together").unwrap().members.len(), 2);
    }

    /// The offsets topic is rewritten when mostly dead records, and a reload sees the latest.
    #[test]
    fn many_commits_reload_to_the_latest() {
        let dir = tempfile::tempdir().unwrap();
        let c = coordinator(dir.path(), i64::MAX / 2);
        for i in 0..(SNAPSHOT_MIN_RECORDS as i64 * 3) {
            commit(&c, "g", i);
        }
        drop(c);
        let c = coordinator(dir.path(), i64::MAX / 2);
        assert_eq!(
            committed(&c, "g"),
            Some(SNAPSHOT_MIN_RECORDS as i64 * 3 - 1)
        );
    }

    #[test]
    fn subscription_topics_are_read_from_consumer_metadata() {
        // version 0, topics ["a", "bc"], user data null
        let md = [
            0, 0, 0, 0, 0, 2, 0, 1, b'a', 0, 2, b'b', b'c', 0xff, 0xff, 0xff, 0xff,
        ];
        assert_eq!(subscription_topics(&md), vec!["a", "bc"]);
        assert!(subscription_topics(&[0, 0, 0x7f, 0xff, 0xff, 0xff]).is_empty());
    }
}
