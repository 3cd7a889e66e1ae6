//! The metadata quorum (KRaft's): a replicated log of metadata records, kept by openraft among
//! the controllers of `controller.quorum.voters`, and the image every node builds from it.
//!
//! - `types`: openraft's type configuration, the records and the image;
//! - `log_store`: the log and the vote on disk (`__cluster_metadata-0/`);
//! - `state_machine`: the image, its snapshots, and the watch channel that publishes it;
//! - `network`: the controller listener, carrying Raft's RPCs and what a node forwards to the
//!   leader.
//!
//! The leader of the Raft quorum is Kafka's active controller; its term is the leader epoch.

pub mod bootstrap;
pub mod controller;
pub mod election;
pub mod log_store;
pub mod network;
pub mod observer;
pub mod placement;
pub mod reassignment;
pub mod state_machine;
pub mod types;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ServerState, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use strata_storage::io::Io;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::quorum::QuorumConfig;
use log_store::MetadataLog;
use network::{Contacts, ControllerRequest, ControllerResponse, Peers};
use observer::{Observer, ObserverProgress};
use state_machine::{Applied, MetadataStateMachine};
pub use types::{
    BrokerRegistration, Endpoint, MetadataImage, MetadataRecord, NodeId, PartitionState, Raft,
    TopicImage,
};

/// Kafka's name for the metadata log's directory.
pub use strata_storage::log_manager::CLUSTER_METADATA_DIR as METADATA_DIR;

/// Kafka's error for a request only the active controller may answer, when this node is not it
/// (and could not forward it).
pub const NOT_CONTROLLER: &str = "NOT_CONTROLLER";
/// How long a voter's controller listener must refuse every connection for its broker to be
/// fenced as gone (a few of Raft's heartbeats, which the leader sends every fifth of the
/// election timeout).
const GONE_AFTER_REFUSED: Duration = Duration::from_millis(500);

/// Kafka's error for a heartbeat from a registration the controller no longer holds.
pub const STALE_BROKER_EPOCH: &str = "STALE_BROKER_EPOCH";

/// One replica of the metadata log, as DescribeQuorum reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaInfo {
    pub replica_id: i32,
    pub log_end_offset: i64,
    /// Milliseconds since the epoch of the leader's last answer from it; -1: unknown.
    pub last_fetch_timestamp: i64,
    pub last_caught_up_timestamp: i64,
}

/// The quorum as the leader sees it (DescribeQuorum).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumInfo {
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub high_watermark: i64,
    pub voters: Vec<ReplicaInfo>,
    pub observers: Vec<ReplicaInfo>,
}

/// How a node holds the metadata log: a controller as a voter of the Raft quorum, a
/// broker-only node as an observer fetching from the active controller.
enum Replica {
    Voter(Raft),
    Observer {
        observer: Arc<Observer>,
        stop: watch::Sender<bool>,
    },
}

/// This node's replica of the metadata log.
pub struct MetadataQuorum {
    replica: Replica,
    /// The state machine (shared with openraft on a voter).
    machine: MetadataStateMachine,
    config: QuorumConfig,
    node_id: NodeId,
    applied: watch::Receiver<Applied>,
    /// How far each observer is (leader only).
    observers: std::sync::Mutex<BTreeMap<NodeId, ObserverProgress>>,
    /// When each voter's replication last reached the leader's log end (leader only).
    caught_up: std::sync::Mutex<BTreeMap<NodeId, i64>>,
    /// When each broker last heartbeated (leader only; a new leader starts counting afresh).
    heartbeats: std::sync::Mutex<BTreeMap<i32, Instant>>,
    /// When this node last heard from each other voter over the controller listener.
    contacts: Contacts,
    /// Held while a block of producer ids is decided, so that two are never the same.
    allocating: tokio::sync::Mutex<()>,
    /// Held while a partition change (an ISR, a leader) is decided and appended.
    deciding: tokio::sync::Mutex<()>,
    /// The SCRAM credentials this node was formatted with, for the log (a voter's).
    bootstrap: std::sync::Mutex<Option<crate::security::store::SecurityDelta>>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl MetadataQuorum {
    /// Starts this node's replica of the metadata log: a voter's (a controller's) or an
    /// observer's (a broker-only node's, see `observer`).
    pub async fn start(
        config: QuorumConfig,
        node_id: i32,
        cluster_id: &str,
        io: Arc<dyn Io>,
    ) -> std::io::Result<Arc<MetadataQuorum>> {
        let dir = config.metadata_log_dir.join(METADATA_DIR);
        // An observer keeps its snapshots there too.
        io.create_dir_durable(&dir)?;
        let machine = MetadataStateMachine::open(io.clone(), &dir, config.snapshot_bytes)?;
        let applied = machine.subscribe();
        if config.roles.controller {
            return Self::start_voter(config, node_id, cluster_id, io, machine).await;
        }
        let observer = Observer::new(machine.clone());
        let (stop, stopped) = watch::channel(false);
        let voters = config.voters.clone();
        let quorum = Arc::new(MetadataQuorum {
            replica: Replica::Observer {
                observer: observer.clone(),
                stop,
            },
            machine,
            node_id: node_id as NodeId,
            applied,
            observers: Default::default(),
            caught_up: Default::default(),
            heartbeats: Default::default(),
            contacts: Default::default(),
            allocating: Default::default(),
            deciding: Default::default(),
            bootstrap: Default::default(),
            config,
        });
        tokio::spawn(observer.run(node_id as NodeId, voters, stopped));
        Ok(quorum)
    }

    /// Opens the metadata log under `metadata.log.dir`, binds the controller listener and starts
    /// this node's Raft replica; a node whose log is empty proposes the voters of
    /// `controller.quorum.voters` as the first membership (every voter may: openraft takes the
    /// same proposal from several nodes as one).
    async fn start_voter(
        config: QuorumConfig,
        node_id: i32,
        cluster_id: &str,
        io: Arc<dyn Io>,
        machine: MetadataStateMachine,
    ) -> std::io::Result<Arc<MetadataQuorum>> {
        let dir = config.metadata_log_dir.join(METADATA_DIR);
        let pending = bootstrap::read(&*io, &config.metadata_log_dir)?;
        let log = MetadataLog::open(io, &dir)?;
        let snapshot_due = machine.snapshot_due();
        let applied = machine.subscribe();
        let pristine = log.last_log_id().is_none() && applied.borrow().last_applied.is_none();
        let listener =
            match &config.listener {
                Some(l) => Some(TcpListener::bind((l.host.as_str(), l.port)).await.map_err(
                    |e| {
                        std::io::Error::new(
                            e.kind(),
                            format!(
                                "cannot bind the controller listener {}:{}: {e}",
                                l.host, l.port
                            ),
                        )
                    },
                )?),
                None => None,
            };
        let election = config.election_timeout_ms;
        let raft_config = openraft::Config {
            cluster_name: cluster_id.to_string(),
            election_timeout_min: election,
            election_timeout_max: election * 2,
            heartbeat_interval: (election / 5).max(1),
            // Snapshots are taken by bytes of records, as Kafka's
            // metadata.log.max.record.bytes.between.snapshots (`snapshots` below).
            snapshot_policy: SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: 100,
            ..Default::default()
        }
        .validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        let node = node_id as NodeId;
        let contacts = Contacts::default();
        let raft = Raft::new(
            node,
            Arc::new(raft_config),
            Peers::new(contacts.clone()),
            log,
            machine.clone(),
        )
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
        let quorum = Arc::new(MetadataQuorum {
            replica: Replica::Voter(raft.clone()),
            machine,
            node_id: node,
            applied,
            observers: Default::default(),
            caught_up: Default::default(),
            heartbeats: Default::default(),
            contacts,
            allocating: Default::default(),
            deciding: Default::default(),
            bootstrap: std::sync::Mutex::new(pending),
            config,
        });
        if let Some(listener) = listener {
            tokio::spawn(network::serve(listener, Arc::downgrade(&quorum)));
        }
        tokio::spawn(watch_leadership(raft.metrics()));
        tokio::spawn(fencing(Arc::downgrade(&quorum)));
        tokio::spawn(snapshots(raft.clone(), snapshot_due));
        if pristine {
            let members: BTreeMap<NodeId, BasicNode> = quorum
                .config
                .voters
                .iter()
                .map(|(id, v)| (*id as NodeId, BasicNode::new(v.addr())))
                .collect();
            match raft.initialize(members).await {
                Ok(()) => {
                    tracing::info!(voters = ?quorum.config.voters.keys().collect::<Vec<_>>(), "metadata quorum initialized")
                }
                Err(RaftError::APIError(e)) => {
                    tracing::debug!(error = %e, "metadata quorum already initialized")
                }
                Err(e) => return Err(std::io::Error::other(e.to_string())),
            }
        }
        Ok(quorum)
    }

    /// The Raft replica of a voter; None for an observer.
    pub fn raft(&self) -> Option<&Raft> {
        match &self.replica {
            Replica::Voter(raft) => Some(raft),
            Replica::Observer { .. } => None,
        }
    }

    /// The state of this node's Raft replica; None for an observer.
    fn metrics(&self) -> Option<openraft::RaftMetrics<NodeId, BasicNode>> {
        self.raft().map(|r| r.metrics().borrow().clone())
    }

    pub fn config(&self) -> &QuorumConfig {
        &self.config
    }

    /// The newest image this node has applied.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.applied.borrow().image.clone()
    }

    /// The image as it changes.
    pub fn subscribe(&self) -> watch::Receiver<Applied> {
        self.applied.clone()
    }

    /// The active controller (the Raft leader), if one is known.
    pub fn leader(&self) -> Option<NodeId> {
        match &self.replica {
            Replica::Voter(raft) => raft.metrics().borrow().current_leader,
            Replica::Observer { observer, .. } => observer.leader(),
        }
    }

    fn leader_addr(&self) -> Option<(NodeId, String)> {
        match &self.replica {
            Replica::Voter(raft) => {
                let metrics = raft.metrics();
                let metrics = metrics.borrow();
                let leader = metrics.current_leader?;
                let node = metrics.membership_config.membership().get_node(&leader)?;
                Some((leader, node.addr.clone()))
            }
            Replica::Observer { observer, .. } => {
                let leader = observer.leader()?;
                let voter = self.config.voters.get(&(leader as i32))?;
                Some((leader, voter.addr()))
            }
        }
    }

    /// Sends `request` to the leader, wherever it is (this node, or over the controller
    /// listener), and returns its answer. While leadership moves (no leader known, or the one
    /// known no longer leads) it is asked again, for up to the request timeout.
    async fn to_leader(&self, request: ControllerRequest) -> Result<ControllerResponse, String> {
        let deadline = Instant::now() + Duration::from_millis(self.config.request_timeout_ms);
        loop {
            let answer = match self.leader_addr() {
                Some((leader, _)) if leader == self.node_id => {
                    Ok(self.answer(request.clone()).await)
                }
                Some((leader, addr)) => network::forward(leader, &addr, &request)
                    .await
                    .map_err(|e| format!("{NOT_CONTROLLER}: controller {leader} unreachable: {e}")),
                None => Err(format!("{NOT_CONTROLLER}: no controller is known")),
            };
            let moving = match &answer {
                Err(e) => e.starts_with(NOT_CONTROLLER),
                Ok(r) => r.not_controller(),
            };
            if !moving || Instant::now() >= deadline {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Answers, as the leader, what other nodes send it (or this node asks itself).
    pub(crate) async fn answer(&self, request: ControllerRequest) -> ControllerResponse {
        match request {
            ControllerRequest::Propose(record) => {
                ControllerResponse::Propose(self.append_as_leader(record).await)
            }
            ControllerRequest::DescribeQuorum => {
                ControllerResponse::DescribeQuorum(self.describe_as_leader().await)
            }
            ControllerRequest::FetchMetadata(fetch) => {
                ControllerResponse::FetchMetadata(self.fetch_as_leader(fetch).await)
            }
            ControllerRequest::BrokerHeartbeat {
                broker_id,
                epoch,
                want_fence,
            } => ControllerResponse::BrokerHeartbeat(
                self.heartbeat_as_leader(broker_id, epoch, want_fence).await,
            ),
            ControllerRequest::CreateTopics {
                topics,
                validate_only,
            } => ControllerResponse::CreateTopics(
                self.create_topics_as_leader(topics, validate_only).await,
            ),
            ControllerRequest::AllocateProducerIds { broker_id } => {
                ControllerResponse::AllocateProducerIds(
                    self.allocate_producer_ids_as_leader(broker_id).await,
                )
            }
            ControllerRequest::ElectLeaders {
                election,
                partitions,
            } => ControllerResponse::ElectLeaders(
                self.elect_leaders_as_leader(election, partitions).await,
            ),
            ControllerRequest::AlterReassignments(asked) => ControllerResponse::AlterReassignments(
                self.alter_reassignments_as_leader(asked).await,
            ),
            ControllerRequest::AlterPartition(change) => {
                ControllerResponse::AlterPartition(self.alter_partition_as_leader(change).await)
            }
            ControllerRequest::DeleteTopics(names) => {
                ControllerResponse::DeleteTopics(self.delete_topics_as_leader(names).await)
            }
            ControllerRequest::CreatePartitions {
                topics,
                validate_only,
            } => ControllerResponse::CreatePartitions(
                self.create_partitions_as_leader(topics, validate_only)
                    .await,
            ),
            // Raft's own RPCs are openraft's (network.rs); they never come here.
            _ => ControllerResponse::Propose(Err("not a request for the leader".to_string())),
        }
    }

    /// Appends `record` to the metadata log through the leader, wherever it is; returns its
    /// offset once it is committed.
    pub async fn append(&self, record: MetadataRecord) -> Result<u64, String> {
        match self.to_leader(ControllerRequest::Propose(record)).await? {
            ControllerResponse::Propose(r) => r,
            _ => Err("unexpected controller response".to_string()),
        }
    }

    /// Appends `record` as the leader, waiting for its commit; returns its offset.
    async fn append_as_leader(&self, record: MetadataRecord) -> Result<u64, String> {
        let Some(raft) = self.raft() else {
            return Err(format!(
                "{NOT_CONTROLLER}: node {} is an observer",
                self.node_id
            ));
        };
        match raft.client_write(record).await {
            Ok(r) => Ok(r.log_id.index),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => Err(format!(
                "{NOT_CONTROLLER}: the controller is {:?}",
                f.leader_id
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The quorum's state from its leader, wherever it is (DescribeQuorum).
    pub async fn describe(&self) -> Result<QuorumInfo, String> {
        match self.to_leader(ControllerRequest::DescribeQuorum).await? {
            ControllerResponse::DescribeQuorum(r) => r,
            _ => Err("unexpected controller response".to_string()),
        }
    }

    /// A broker's heartbeat to the active controller, wherever it is: whether the broker is
    /// fenced now. `want_fence`: the broker is shutting down (a controlled shutdown).
    pub async fn heartbeat(
        &self,
        broker_id: i32,
        epoch: u64,
        want_fence: bool,
    ) -> Result<bool, String> {
        let request = ControllerRequest::BrokerHeartbeat {
            broker_id,
            epoch,
            want_fence,
        };
        match self.to_leader(request).await? {
            ControllerResponse::BrokerHeartbeat(r) => r,
            _ => Err("unexpected controller response".to_string()),
        }
    }

    /// A heartbeat, as the leader: noted for the session timeout; a fenced broker that asks to
    /// serve is unfenced, one shutting down is fenced. Err(STALE_BROKER_EPOCH) for a
    /// registration the image no longer holds (the broker must register again).
    async fn heartbeat_as_leader(
        &self,
        broker_id: i32,
        epoch: u64,
        want_fence: bool,
    ) -> Result<bool, String> {
        self.check_leader()?;
        let fenced = match self.image().brokers.get(&broker_id) {
            Some(b) if b.epoch == epoch => b.fenced,
            _ => {
                return Err(format!(
                    "{STALE_BROKER_EPOCH}: broker {broker_id} epoch {epoch}"
                ))
            }
        };
        self.heartbeats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(broker_id, Instant::now());
        if fenced != want_fence {
            let record = if want_fence {
                tracing::info!(
                    broker_id,
                    epoch,
                    "fencing a broker at its controlled shutdown"
                );
                MetadataRecord::FenceBroker { broker_id, epoch }
            } else {
                // A broker (re)starting leaves the ISRs first: what it had before it stopped
                // may be lost (an unclean shutdown), so it rejoins by catching up (KIP-966).
                self.reconcile_leaders().await;
                tracing::info!(broker_id, epoch, "unfencing a broker");
                MetadataRecord::UnfenceBroker { broker_id, epoch }
            };
            self.append_as_leader(record).await?;
        }
        Ok(want_fence)
    }

    /// Err(NOT_CONTROLLER) unless this node leads the quorum.
    fn check_leader(&self) -> Result<(), String> {
        if self
            .metrics()
            .is_none_or(|m| m.state != ServerState::Leader)
        {
            return Err(format!(
                "{NOT_CONTROLLER}: node {} is not the leader",
                self.node_id
            ));
        }
        Ok(())
    }

    /// As the leader, fences every unfenced broker not heard from for `broker.session.timeout.ms`.
    /// Heard from: its heartbeats since this node leads; for a broker that is also a voter, any
    /// Raft message between its process and this node, also from before (so that a broker
    /// that died with the previous controller is fenced a session after its death, not a
    /// session after this election); otherwise counted from this node's election. Live brokers
    /// get two heartbeat intervals after an election to find the new controller.
    ///
    /// A voter whose controller listener has refused every connection for
    /// [`GONE_AFTER_REFUSED`] (nothing listens there: its process is gone) is fenced then,
    /// without waiting for its session to time out; one that is silent but not refused (paused,
    /// partitioned, its host gone) waits out its session, as in Kafka.
    async fn fence_silent_brokers(&self, leader_since: Instant) {
        let timeout = Duration::from_millis(self.config.session_timeout_ms);
        let grace = Duration::from_millis(self.config.heartbeat_interval_ms * 2);
        let settled = leader_since.elapsed() > grace;
        // (broker, epoch, gone: its process is)
        let silent: Vec<(i32, u64, bool)> = {
            let heartbeats = self.heartbeats.lock().unwrap_or_else(|p| p.into_inner());
            let contacts = self.contacts.lock().unwrap_or_else(|p| p.into_inner());
            self.image()
                .brokers
                .values()
                .filter(|b| !b.fenced)
                .filter_map(|b| {
                    let id = b.registration.broker_id;
                    let heartbeat = heartbeats.get(&id).copied();
                    let reach = contacts.get(&(id as NodeId)).copied().unwrap_or_default();
                    let gone = reach.refused_since.is_some_and(|since| {
                        since.elapsed() >= GONE_AFTER_REFUSED && heartbeat.is_none_or(|h| h < since)
                    });
                    if gone {
                        return Some((id, b.epoch, true));
                    }
                    let contact = reach.heard.filter(|_| settled);
                    let last = match (heartbeat, contact) {
                        (Some(h), Some(c)) => h.max(c),
                        (Some(h), None) => h.max(leader_since),
                        (None, Some(c)) => c,
                        (None, None) => leader_since,
                    };
                    (last.elapsed() > timeout).then_some((id, b.epoch, false))
                })
                .collect()
        };
        for (broker_id, epoch, gone) in silent {
            if gone {
                tracing::warn!(
                    broker_id,
                    epoch,
                    "fencing a broker: its process is gone (its controller listener refuses connections)"
                );
            } else {
                tracing::warn!(
                    broker_id,
                    epoch,
                    session_timeout_ms = self.config.session_timeout_ms,
                    "fencing a broker: no heartbeat within the session timeout"
                );
            }
            if let Err(e) = self
                .append_as_leader(MetadataRecord::FenceBroker { broker_id, epoch })
                .await
            {
                tracing::debug!(error = %e, "fencing failed");
            }
        }
    }

    /// The quorum's state, answered by the leader: each voter's log end as far as the leader
    /// knows it, the high watermark (the end a majority of voters has).
    pub(crate) async fn describe_as_leader(&self) -> Result<QuorumInfo, String> {
        self.check_leader()?;
        let Some(metrics) = self.metrics() else {
            return Err(format!(
                "{NOT_CONTROLLER}: node {} is an observer",
                self.node_id
            ));
        };
        if metrics.state != ServerState::Leader {
            return Err(format!(
                "{NOT_CONTROLLER}: node {} is {:?} in epoch {} (vote {}, leader {:?}), not the leader",
                self.node_id, metrics.state, metrics.current_term, metrics.vote, metrics.current_leader
            ));
        }
        let replication = metrics.replication.clone().unwrap_or_default();
        let end = metrics.last_log_index.map_or(0, |i| i + 1);
        let now = now_ms();
        let membership = metrics.membership_config.membership().clone();
        let voters: Vec<NodeId> = membership.voter_ids().collect();
        let mut caught_up = self.caught_up.lock().unwrap_or_else(|p| p.into_inner());
        let mut replica = |id: NodeId| -> ReplicaInfo {
            // The leader's own end, or how far the leader knows a node's log matches its own
            // (-1: not known since it became leader).
            let log_end: i64 = if id == self.node_id {
                end as i64
            } else {
                replication
                    .get(&id)
                    .and_then(|m| m.as_ref())
                    .map_or(-1, |m| m.index as i64 + 1)
            };
            let at = caught_up.entry(id).or_insert(-1);
            if log_end >= end as i64 {
                *at = now;
            }
            ReplicaInfo {
                replica_id: id as i32,
                log_end_offset: log_end,
                last_fetch_timestamp: if log_end >= 0 { now } else { -1 },
                last_caught_up_timestamp: *at,
            }
        };
        let voter_infos: Vec<ReplicaInfo> = voters.iter().map(|id| replica(*id)).collect();
        let mut observers: Vec<ReplicaInfo> = membership.learner_ids().map(&mut replica).collect();
        observers.extend(self.observer_infos());
        // The end a majority of voters has; at least the end of what this leader applied
        // (applied entries were committed), which a new leader knows before it has heard from
        // its followers.
        let mut ends: Vec<i64> = voter_infos.iter().map(|v| v.log_end_offset).collect();
        ends.sort_unstable_by(|a, b| b.cmp(a));
        let applied_end = metrics.last_applied.map_or(0, |id| id.index as i64 + 1);
        let high_watermark = ends
            .get(ends.len() / 2)
            .copied()
            .unwrap_or(0)
            .max(applied_end);
        Ok(QuorumInfo {
            leader_id: self.node_id as i32,
            leader_epoch: metrics.current_term as i32,
            high_watermark,
            voters: voter_infos,
            observers,
        })
    }

    /// Waits until some node leads the quorum, or `timeout` passes.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Option<NodeId> {
        let deadline = Instant::now() + timeout;
        match &self.replica {
            Replica::Voter(raft) => {
                let mut metrics = raft.metrics();
                loop {
                    if let Some(leader) = metrics.borrow().current_leader {
                        return Some(leader);
                    }
                    let left = deadline.checked_duration_since(Instant::now())?;
                    if tokio::time::timeout(left, metrics.changed()).await.is_err() {
                        return None;
                    }
                }
            }
            Replica::Observer { observer, .. } => {
                let mut leader = observer.watch_leader();
                loop {
                    if let Some(l) = *leader.borrow_and_update() {
                        return Some(l);
                    }
                    let left = deadline.checked_duration_since(Instant::now())?;
                    if tokio::time::timeout(left, leader.changed()).await.is_err() {
                        return None;
                    }
                }
            }
        }
    }

    /// Stops this node's replica.
    pub async fn shutdown(&self) {
        match &self.replica {
            Replica::Voter(raft) => {
                let _ = raft.shutdown().await;
            }
            Replica::Observer { stop, .. } => {
                let _ = stop.send(true);
            }
        }
    }
}

/// Takes a snapshot each time the state machine says enough was applied since the last; the
/// log before it is then purged (but the last entries, which lagging voters may still need).
async fn snapshots(raft: Raft, due: Arc<tokio::sync::Notify>) {
    loop {
        due.notified().await;
        if raft.trigger().snapshot().await.is_err() {
            return;
        }
    }
}

/// The leader's check for silent brokers (and its balancing of leaders), every twentieth of
/// the session timeout (50-250 ms).
async fn fencing(quorum: std::sync::Weak<MetadataQuorum>) {
    let mut leader_since: Option<(u64, Instant)> = None;
    let mut balanced = Instant::now();
    loop {
        let Some(q) = quorum.upgrade() else {
            return;
        };
        // Often enough that a silent broker is fenced within a quarter second of its session
        // timeout (the fencing is one comparison per broker).
        let period = Duration::from_millis((q.config.session_timeout_ms / 20).clamp(50, 250));
        let Some((state, term)) = q.metrics().map(|m| (m.state, m.current_term)) else {
            return;
        };
        if state == ServerState::Leader {
            let since = match leader_since {
                Some((t, at)) if t == term => at,
                _ => {
                    q.heartbeats
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clear();
                    let now = Instant::now();
                    leader_since = Some((term, now));
                    now
                }
            };
            q.fence_silent_brokers(since).await;
            q.reconcile_leaders().await;
            q.bootstrap_security().await;
            let every = Duration::from_millis(q.config.leader_imbalance_check_interval_ms);
            if q.config.auto_leader_rebalance && balanced.elapsed() >= every {
                balanced = Instant::now();
                q.balance_leaders().await;
            }
        } else {
            leader_since = None;
        }
        drop(q);
        tokio::time::sleep(period).await;
    }
}

/// Logs each change of the quorum's leader, and a replica that stopped (a failed write of the
/// metadata log stops it: fail-stop).
async fn watch_leadership(mut metrics: watch::Receiver<openraft::RaftMetrics<NodeId, BasicNode>>) {
    let mut seen = (None, 0);
    loop {
        {
            let m = metrics.borrow_and_update();
            if let Err(e) = &m.running_state {
                tracing::error!(error = %e, "the metadata quorum replica stopped");
                return;
            }
            let now = (m.current_leader, m.current_term);
            if now != seen && m.current_leader.is_some() {
                tracing::info!(
                    leader = m.current_leader,
                    epoch = m.current_term,
                    "metadata quorum leader elected"
                );
                seen = now;
            }
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// Where the metadata log lives under `metadata_log_dir`.
pub fn metadata_dir(metadata_log_dir: &Path) -> std::path::PathBuf {
    metadata_log_dir.join(METADATA_DIR)
}
