//! The controller listener (`controller.listener.names`): how the quorum's nodes talk.
//!
//! Each message is a frame, `length u32 | JSON`, a [`ControllerRequest`] answered by one
//! [`ControllerResponse`] on the same connection, in order. Raft's own RPCs (Vote,
//! AppendEntries, InstallSnapshot) go from openraft on one node to openraft on another; a node
//! that is not the leader forwards what only the leader may do (a record to append, a
//! DescribeQuorum) the same way.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::controller::{AlterPartition, CreatedTopic, NewTopic, Refusal};
use super::election::{Elected, ElectionType};
use super::types::{MetadataRaft, MetadataRecord, NodeId, PartitionState};
use super::{MetadataQuorum, QuorumInfo};

/// The largest frame either side accepts (a snapshot chunk is at most 3 MiB).
const MAX_FRAME: usize = 64 << 20;
/// How long a forwarded request may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Serialize, Deserialize)]
pub enum ControllerRequest {
    Vote(VoteRequest<NodeId>),
    AppendEntries(AppendEntriesRequest<MetadataRaft>),
    InstallSnapshot(InstallSnapshotRequest<MetadataRaft>),
    /// A record for the leader to append.
    Propose(MetadataRecord),
    /// The quorum's state, as the leader sees it.
    DescribeQuorum,
    /// An observer (a broker-only node) fetches the metadata log.
    FetchMetadata(super::observer::MetadataFetch),
    /// A broker is alive (and whether it wants to be fenced: a controlled shutdown).
    BrokerHeartbeat {
        broker_id: i32,
        epoch: u64,
        want_fence: bool,
    },
    CreateTopics {
        topics: Vec<NewTopic>,
        validate_only: bool,
    },
    DeleteTopics(Vec<String>),
    /// (topic, new partition count, replicas of the new partitions when given)
    CreatePartitions {
        topics: Vec<(String, i32, Vec<Vec<i32>>)>,
        validate_only: bool,
    },
    /// A block of producer ids for a broker.
    AllocateProducerIds {
        broker_id: i32,
    },
    /// A partition leader changes its ISR (Kafka's AlterPartition).
    AlterPartition(AlterPartition),
    /// Reassignments to start (new replicas) or cancel (None): (topic, partition, replicas).
    AlterReassignments(Vec<(String, i32, Option<Vec<i32>>)>),
    /// Leader elections asked for (None: every partition).
    ElectLeaders {
        election: ElectionType,
        partitions: Option<Vec<(String, i32)>>,
    },
}

#[derive(Serialize, Deserialize)]
pub enum ControllerResponse {
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    /// The record's offset, or why it was not appended (no leader, not the leader).
    Propose(Result<u64, String>),
    DescribeQuorum(Result<QuorumInfo, String>),
    FetchMetadata(Result<super::observer::Fetched, super::observer::FetchRefused>),
    /// Whether the broker is fenced now.
    BrokerHeartbeat(Result<bool, String>),
    CreateTopics(Result<Vec<Result<CreatedTopic, Refusal>>, String>),
    DeleteTopics(Result<Vec<Result<[u8; 16], Refusal>>, String>),
    CreatePartitions(Result<Vec<Result<(), Refusal>>, String>),
    /// The block: its first id and the first id past it.
    AllocateProducerIds(Result<(i64, i64), String>),
    /// The partition as it is now, or why the change was refused.
    AlterPartition(Result<Result<PartitionState, Refusal>, String>),
    ElectLeaders(Result<Vec<Elected>, String>),
    AlterReassignments(Result<Vec<super::reassignment::Reassigned>, String>),
}

impl ControllerResponse {
    /// Whether the answer is that the node asked is not (or no longer) the leader.
    pub fn not_controller(&self) -> bool {
        let err = match self {
            ControllerResponse::Propose(Err(e))
            | ControllerResponse::DescribeQuorum(Err(e))
            | ControllerResponse::BrokerHeartbeat(Err(e))
            | ControllerResponse::CreateTopics(Err(e))
            | ControllerResponse::DeleteTopics(Err(e))
            | ControllerResponse::CreatePartitions(Err(e))
            | ControllerResponse::AllocateProducerIds(Err(e))
            | ControllerResponse::AlterPartition(Err(e))
            | ControllerResponse::ElectLeaders(Err(e))
            | ControllerResponse::AlterReassignments(Err(e)) => e,
            _ => return false,
        };
        err.starts_with(super::NOT_CONTROLLER)
    }
}

async fn write_frame<T: Serialize>(stream: &mut TcpStream, message: &T) -> io::Result<()> {
    let body = serde_json::to_vec(message).map_err(io::Error::other)?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    stream.write_all(&frame).await
}

async fn read_frame<T: for<'de> Deserialize<'de>>(stream: &mut TcpStream) -> io::Result<T> {
    let len = stream.read_u32().await? as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("controller frame of {len} bytes"),
        ));
    }
    let mut body = vec![0; len];
    stream.read_exact(&mut body).await?;
    serde_json::from_slice(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// What this node knows of another voter's process from talking to it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reach {
    /// When it was last heard from (an answer to this node's request, or a request of its
    /// own): its process was alive then.
    pub heard: Option<Instant>,
    /// Since when every connection to its controller listener was refused (nothing listens on
    /// its port: its process is gone), if they are now.
    pub refused_since: Option<Instant>,
}

/// Every other voter's [`Reach`], by node id.
pub type Contacts = Arc<Mutex<BTreeMap<NodeId, Reach>>>;

/// Notes that `node` was heard from now.
pub fn heard_from(contacts: &Contacts, node: NodeId) {
    let mut contacts = contacts.lock().unwrap_or_else(|p| p.into_inner());
    let reach = contacts.entry(node).or_default();
    reach.heard = Some(Instant::now());
    reach.refused_since = None;
}

/// Notes that a connection to `node` was refused now.
fn refused_by(contacts: &Contacts, node: NodeId) {
    let mut contacts = contacts.lock().unwrap_or_else(|p| p.into_inner());
    let reach = contacts.entry(node).or_default();
    reach.refused_since.get_or_insert_with(Instant::now);
}

/// A connection to one node's controller listener, opened when first needed and again after
/// any failure.
pub struct Peer {
    target: NodeId,
    addr: String,
    stream: Option<TcpStream>,
    /// The nodes last found unreachable, shared by every peer of the node, so that a node
    /// going away is logged once (and its return once), not at every retry.
    unreachable: Arc<Mutex<BTreeSet<NodeId>>>,
    contacts: Contacts,
}

impl Peer {
    pub fn new(target: NodeId, addr: &str) -> Peer {
        Peer::with_state(target, addr, Default::default(), Default::default())
    }

    fn with_state(
        target: NodeId,
        addr: &str,
        unreachable: Arc<Mutex<BTreeSet<NodeId>>>,
        contacts: Contacts,
    ) -> Peer {
        Peer {
            target,
            addr: addr.to_string(),
            stream: None,
            unreachable,
            contacts,
        }
    }

    fn reachable(&self, now: bool) {
        let mut set = self.unreachable.lock().unwrap_or_else(|p| p.into_inner());
        if now && set.remove(&self.target) {
            tracing::info!(node = self.target, addr = %self.addr, "controller reachable again");
        }
    }

    /// Sends `request` and waits (at most `ttl`) for its answer.
    pub async fn call(
        &mut self,
        request: &ControllerRequest,
        ttl: Duration,
    ) -> io::Result<ControllerResponse> {
        let attempt = async {
            if self.stream.is_none() {
                let stream = TcpStream::connect(&self.addr).await?;
                stream.set_nodelay(true)?;
                self.stream = Some(stream);
            }
            let stream = self.stream.as_mut().expect("connected above");
            write_frame(stream, request).await?;
            read_frame(stream).await
        };
        let result = match tokio::time::timeout(ttl, attempt).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "controller request timed out",
            )),
        };
        match &result {
            Ok(_) => {
                self.reachable(true);
                heard_from(&self.contacts, self.target);
            }
            Err(e) => {
                if e.kind() == io::ErrorKind::ConnectionRefused {
                    refused_by(&self.contacts, self.target);
                }
                self.stream = None
            }
        }
        result
    }

    fn unreachable<E: std::error::Error>(&self, e: io::Error) -> RPCError<NodeId, BasicNode, E> {
        let mut set = self.unreachable.lock().unwrap_or_else(|p| p.into_inner());
        if set.insert(self.target) {
            tracing::warn!(node = self.target, addr = %self.addr, error = %e, "controller unreachable");
        }
        RPCError::Unreachable(Unreachable::new(&e))
    }
}

fn unexpected<E: std::error::Error>() -> RPCError<NodeId, BasicNode, E> {
    RPCError::Network(NetworkError::new(&io::Error::new(
        io::ErrorKind::InvalidData,
        "unexpected controller response",
    )))
}

impl RaftNetwork<MetadataRaft> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<MetadataRaft>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        match self
            .call(&ControllerRequest::AppendEntries(rpc), option.hard_ttl())
            .await
        {
            Ok(ControllerResponse::AppendEntries(r)) => {
                r.map_err(|e| RemoteError::new(self.target, e).into())
            }
            Ok(_) => Err(unexpected()),
            Err(e) => Err(self.unreachable(e)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<MetadataRaft>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        match self
            .call(&ControllerRequest::InstallSnapshot(rpc), option.hard_ttl())
            .await
        {
            Ok(ControllerResponse::InstallSnapshot(r)) => {
                r.map_err(|e| RemoteError::new(self.target, e).into())
            }
            Ok(_) => Err(unexpected()),
            Err(e) => Err(self.unreachable(e)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        match self
            .call(&ControllerRequest::Vote(rpc), option.hard_ttl())
            .await
        {
            Ok(ControllerResponse::Vote(r)) => {
                r.map_err(|e| RemoteError::new(self.target, e).into())
            }
            Ok(_) => Err(unexpected()),
            Err(e) => Err(self.unreachable(e)),
        }
    }

    fn backoff(&self) -> openraft::network::Backoff {
        openraft::network::Backoff::new(std::iter::repeat(Duration::from_millis(200)))
    }
}

/// Makes a [`Peer`] per node openraft talks to.
#[derive(Default)]
pub struct Peers {
    unreachable: Arc<Mutex<BTreeSet<NodeId>>>,
    contacts: Contacts,
}

impl Peers {
    pub fn new(contacts: Contacts) -> Peers {
        Peers {
            unreachable: Default::default(),
            contacts,
        }
    }
}

impl RaftNetworkFactory<MetadataRaft> for Peers {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Peer {
        Peer::with_state(
            target,
            &node.addr,
            self.unreachable.clone(),
            self.contacts.clone(),
        )
    }
}

/// Forwards `request` to `addr` (the leader's controller listener).
pub async fn forward(
    target: NodeId,
    addr: &str,
    request: &ControllerRequest,
) -> io::Result<ControllerResponse> {
    Peer::new(target, addr).call(request, FORWARD_TIMEOUT).await
}

/// Serves the controller listener until the quorum is dropped.
pub async fn serve(listener: TcpListener, quorum: Weak<MetadataQuorum>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "controller listener accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if quorum.strong_count() == 0 {
            return;
        }
        let quorum = quorum.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, quorum).await {
                if e.kind() != io::ErrorKind::UnexpectedEof {
                    tracing::debug!(peer = %peer, error = %e, "controller connection closed");
                }
            }
        });
    }
}

async fn connection(mut stream: TcpStream, quorum: Weak<MetadataQuorum>) -> io::Result<()> {
    stream.set_nodelay(true)?;
    loop {
        let request: ControllerRequest = read_frame(&mut stream).await?;
        let Some(quorum) = quorum.upgrade() else {
            return Ok(());
        };
        // Only a voter binds the controller listener.
        let Some(raft) = quorum.raft() else {
            return Ok(());
        };
        // Raft's requests name their sender: the candidate, or the leader.
        let sender = match &request {
            ControllerRequest::Vote(rpc) => rpc.vote.leader_id().voted_for(),
            ControllerRequest::AppendEntries(rpc) => rpc.vote.leader_id().voted_for(),
            ControllerRequest::InstallSnapshot(rpc) => rpc.vote.leader_id().voted_for(),
            _ => None,
        };
        if let Some(sender) = sender {
            heard_from(&quorum.contacts, sender);
        }
        let response = match request {
            ControllerRequest::Vote(rpc) => ControllerResponse::Vote(raft.vote(rpc).await),
            ControllerRequest::AppendEntries(rpc) => {
                ControllerResponse::AppendEntries(raft.append_entries(rpc).await)
            }
            ControllerRequest::InstallSnapshot(rpc) => {
                ControllerResponse::InstallSnapshot(raft.install_snapshot(rpc).await)
            }
            request => quorum.answer(request).await,
        };
        drop(quorum);
        write_frame(&mut stream, &response).await?;
    }
}
