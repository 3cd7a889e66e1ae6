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
//! partition chosen by the group id's hash, as Kafka does. The topic is compacted by the log
//! cleaner; when a partition's active segment holds more than twice as many records as the
//! partition has live keys (and at least [`ROLL_MIN_RECORDS`]), the coordinator rolls it for the
//! cleaner (see [`crate::internal_log`]), so that the startup reload reads about the live keys
//! plus one active segment of bounded length, however many commits were ever made.

mod admin;
mod classic;
mod classic_group;
pub mod consumer;
mod kip848;
mod offsets;
pub mod store;
mod txn_offsets;

pub use txn_offsets::TxnCommitArgs;

use classic::Group;

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

/// Records below which an active segment of `__consumer_offsets` is never rolled early.
pub use crate::internal_log::ROLL_MIN_RECORDS;

/// The `group.*` and `offsets.*` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupConfig {
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub initial_rebalance_delay_ms: i32,
    pub max_size: usize,
    pub offsets_partitions: i32,
    /// `offsets.topic.replication.factor` (a node of a cluster; a broker alone has one copy).
    pub offsets_replication_factor: i16,
    /// `offsets.commit.timeout.ms`: how long a commit waits for the offsets partition's ISR.
    pub offsets_commit_timeout_ms: u64,
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
            offsets_replication_factor: 3,
            offsets_commit_timeout_ms: 5000,
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

pub fn now_ms() -> i64 {
    strata_storage::now_ms()
}

/// Everything the coordinator knows, behind one lock.
pub struct Coordinator {
    config: GroupConfig,
    groups: Mutex<HashMap<String, Group>>,
    store: OffsetStore,
    /// The partitions of `__consumer_offsets` whose groups this broker coordinates; None: all of
    /// them (a broker alone). On a node of a cluster, those this broker leads.
    owned: Mutex<Option<std::collections::BTreeSet<i32>>>,
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
    /// Where the coordinator keeps offsets and groups.
    pub fn store(&self) -> &OffsetStore {
        &self.store
    }

    /// Opens the coordinator, reloading committed offsets from `__consumer_offsets`.
    pub fn open(config: GroupConfig, store: OffsetStore) -> std::io::Result<Arc<Coordinator>> {
        let mut groups: HashMap<String, Group> = HashMap::new();
        insert_loaded(&mut groups, store.load()?);
        Ok(Arc::new(Coordinator {
            config,
            groups: Mutex::new(groups),
            store,
            owned: Mutex::new(None),
        }))
    }

    fn owned(&self) -> MutexGuard<'_, Option<std::collections::BTreeSet<i32>>> {
        self.owned.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether this broker coordinates `group_id` (it leads the group's partition).
    pub fn owns(&self, group_id: &str) -> bool {
        match &*self.owned() {
            None => true,
            Some(owned) => owned.contains(&self.partition_for(group_id)),
        }
    }

    /// NOT_COORDINATOR unless this broker coordinates `group_id`.
    fn not_coordinator(&self, group_id: &str) -> Option<ResponseError> {
        (!self.owns(group_id)).then_some(ResponseError::NotCoordinator)
    }

    /// A node of a cluster coordinates only the groups of the partitions it leads: it forgets
    /// what it loaded at its start and takes partitions over as it is made their leader.
    pub fn coordinate_led_partitions_only(&self) {
        *self.owned() = Some(Default::default());
        self.lock().clear();
    }

    /// Becomes the coordinator of the groups of `partition` (this broker now leads it): their
    /// offsets and memberships are loaded from its log (Kafka's loading on election).
    pub fn take_over(&self, partition: i32) -> std::io::Result<()> {
        let loaded = self.store.load_partition(partition)?;
        let mut groups = self.lock();
        groups.retain(|g, _| self.partition_for(g) != partition);
        let before = groups.len();
        insert_loaded(&mut groups, loaded);
        let count = groups.len() - before;
        drop(groups);
        if let Some(owned) = &mut *self.owned() {
            owned.insert(partition);
        }
        tracing::info!(
            partition,
            groups = count,
            "coordinating the groups of the offsets partition"
        );
        Ok(())
    }

    /// Stops coordinating the groups of `partition` (another broker leads it now): they are
    /// forgotten, and their members, answered NOT_COORDINATOR, find the new coordinator.
    pub fn resign(&self, partition: i32) {
        let was = match &mut *self.owned() {
            Some(owned) => owned.remove(&partition),
            None => false,
        };
        if was {
            self.lock()
                .retain(|g, _| self.partition_for(g) != partition);
            tracing::info!(
                partition,
                "no longer coordinating the groups of the offsets partition"
            );
        }
    }
}

/// Adds what a replay of `__consumer_offsets` found to `groups`.
fn insert_loaded(groups: &mut HashMap<String, Group>, loaded: store::Loaded) {
    {
        for ((group, topic, partition), committed) in loaded.offsets {
            groups
                .entry(group.clone())
                .or_insert_with(|| Group::new(&group))
                .offsets
                .insert((topic, partition), committed);
        }
        for (pid, (group, topic, partition), committed) in loaded.pending_txn {
            groups
                .entry(group.clone())
                .or_insert_with(|| Group::new(&group))
                .txn_offsets
                .entry(pid)
                .or_default()
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
    }
}

impl Coordinator {
    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// The partition of `__consumer_offsets` that holds the group's records.
    pub fn partition_for(&self, group_id: &str) -> i32 {
        self.store.partition_for(group_id)
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

    /// Runs the offsets topic's staged flushes, never under the coordinator's lock; on the async
    /// runtime, the thread says it blocks so that other tasks move elsewhere meanwhile.
    fn complete_staged(&self) -> std::io::Result<()> {
        if !self.store.has_staged() {
            return Ok(());
        }
        if crate::replica::may_block_in_place() {
            tokio::task::block_in_place(|| self.store.complete_staged())
        } else {
            self.store.complete_staged()
        }
    }

    /// Expires members whose session lapsed, completes rebalances whose time is up, and
    /// expires offsets of groups that stayed empty. Called by the coordinator's timer.
    pub fn tick(&self) {
        self.tick_locked();
        // Flushes staged by the writes of this tick or of requests that did not wait for them
        // (membership records); a failure was logged and took the directory offline.
        let _ = self.complete_staged();
    }

    fn tick_locked(&self) {
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
    use classic::subscription_topics;
    use std::collections::BTreeMap as Map;

    fn coordinator(dir: &std::path::Path, retention_ms: i64) -> Arc<Coordinator> {
        let logs = crate::internal_log::tests::manager(dir);
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

    /// The active segment of the offsets topic is rolled for the cleaner when mostly dead
    /// records; a reload sees the latest.
    #[test]
    fn many_commits_roll_and_reload_to_the_latest() {
        let dir = tempfile::tempdir().unwrap();
        let c = coordinator(dir.path(), i64::MAX / 2);
        let n = ROLL_MIN_RECORDS as i64 * 3;
        for i in 0..n {
            commit(&c, "g", i);
        }
        let partition = c.store().log().partition(c.partition_for("g")).unwrap();
        // One live key: rolled every ROLL_MIN_RECORDS records.
        assert_eq!(partition.log().segment_count(), 4);
        drop(partition);
        drop(c);
        let c = coordinator(dir.path(), i64::MAX / 2);
        assert_eq!(committed(&c, "g"), Some(n - 1));
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
