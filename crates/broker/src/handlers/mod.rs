//! One module per Kafka API. Each handler decodes nothing itself: `dispatch` decodes the request
//! with the kafka-protocol crate, the handler validates, calls storage, and builds the response.

use std::sync::Arc;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use kafka_protocol::ResponseError;

use crate::broker::Broker;
use crate::security::acl::{AclOperation, ResourceType};
use crate::security::quota::QuotaKind;
use crate::wire::{encode_response, Response};
use crate::wire::{ConnectionError, Slot};
pub use response_errors::ResponseErrors;

pub mod acls;
pub mod admin_configs;
pub mod api_versions;
pub mod client_quotas;
pub mod consumer_group;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_log_dirs;
pub mod describe_quorum;
pub mod elect_leaders;
pub mod fetch;
pub mod find_coordinator;
pub mod group_admin;
pub mod groups;
pub mod init_producer_id;
pub mod list_offsets;
pub mod metadata;
pub mod offset_for_leader_epoch;
pub mod offsets;
pub mod produce;
pub mod reassignments;
mod response_errors;
pub mod scram_admin;
pub mod txn;
pub mod txn_admin;

/// The versions Strata implements, per API: what ApiVersions advertises.
///
/// Produce is advertised from version 0 although only message format v2 (Produce v3+) is
/// accepted: older librdkafka releases disable compression when Produce v0 is not advertised.
/// Produce stops at 11, InitProducerId at 4, AddOffsetsToTxn, EndTxn and TxnOffsetCommit at 3:
/// later versions carry KIP-890's second transaction protocol (partitions added implicitly by
/// Produce), so clients use the first one, which every client speaks. AddPartitionsToTxn's
/// batched v4 (from other brokers, with `verify_only`) is served.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 11),
    (ApiKey::Fetch, 4, 16),
    (ApiKey::ListOffsets, 1, 8),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::AddPartitionsToTxn, 0, 4),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::EndTxn, 0, 3),
    (ApiKey::TxnOffsetCommit, 0, 3),
    (ApiKey::WriteTxnMarkers, 1, 1),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 2),
    // v0 of SaslHandshake is followed by unframed tokens; clients use v1 when it is offered.
    (ApiKey::SaslHandshake, 1, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::DescribeAcls, 0, 3),
    (ApiKey::CreateAcls, 0, 3),
    (ApiKey::DeleteAcls, 0, 3),
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
];

/// The version range advertised for `key`, if the API is implemented.
pub fn supported_versions(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, min, max)| (*min, *max))
}

/// Whether a request of this version can be decoded and answered.
fn accepts(key: ApiKey, version: i16) -> bool {
    match supported_versions(key) {
        Some((min, max)) => version >= min.max(key.valid_versions().min) && version <= max,
        None => false,
    }
}

/// The request's identity, needed to build its response.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub api_key: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    /// The client's address as Kafka shows it (`/127.0.0.1`); empty when unknown.
    pub client_host: String,
    /// The listener the request came in on (Metadata answers with its endpoints).
    pub listener: Arc<str>,
    /// Who sent it, as Kafka names principals (`User:ANONYMOUS`, `User:CN=alice,O=corp`).
    pub principal: Arc<str>,
    /// The request's size in bytes (what a produce quota counts).
    pub request_bytes: usize,
    /// The connection's mute, for throttling (None outside a connection).
    pub mute: Option<Arc<Mute>>,
}

/// The other end of a connection: its address, the listener it came in on, who it is.
#[derive(Debug, Clone)]
pub struct Peer {
    pub client_host: String,
    pub listener: Arc<str>,
    pub principal: Arc<str>,
    /// Until when the connection reads nothing (a throttled client, KIP-219).
    pub mute: Arc<Mute>,
}

/// A connection muted for a throttled client: the time (ms since the Unix epoch) until which
/// its next request is not read.
#[derive(Debug, Default)]
pub struct Mute(std::sync::atomic::AtomicU64);

impl Mute {
    /// Mutes the connection for `ms` from now (or longer, if it already is).
    pub fn mute_for(&self, ms: u64) {
        let until = strata_storage::now_ms().max(0) as u64 + ms;
        self.0
            .fetch_max(until, std::sync::atomic::Ordering::Relaxed);
    }

    /// How long the connection stays muted.
    pub fn remaining(&self) -> Option<std::time::Duration> {
        let until = self.0.load(std::sync::atomic::Ordering::Relaxed);
        let now = strata_storage::now_ms().max(0) as u64;
        (until > now).then(|| std::time::Duration::from_millis(until - now))
    }
}

/// Kafka's principal of a client that did not authenticate.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

impl Ctx {
    /// The client's IP address, as ACL hosts name it.
    pub fn host(&self) -> &str {
        self.client_host.trim_start_matches('/')
    }

    /// Records the client's use of a quota (Kafka's user / client-id quotas); when it went
    /// over, the connection is muted for the throttle time, which is returned for the
    /// response's `throttle_time_ms`.
    pub fn throttle(&self, broker: &Broker, kind: QuotaKind, value: f64) -> i32 {
        let ms = self.record_usage(broker, kind, value);
        crate::metrics::throttled(kind.key(), ms);
        if ms > 0 {
            if let Some(mute) = &self.mute {
                mute.mute_for(ms);
            }
        }
        ms.min(i32::MAX as u64) as i32
    }

    /// Records the client's use of a quota (negative: taking back a use not given); the
    /// throttle time in ms it comes to.
    pub fn record_usage(&self, broker: &Broker, kind: QuotaKind, value: f64) -> u64 {
        let image = broker.security.image();
        broker.quotas.record(
            &image.quotas,
            kind,
            &self.principal,
            self.client_id.as_deref().unwrap_or(""),
            value,
            strata_storage::now_ms().max(0) as u64,
        )
    }

    /// The client's `controller_mutation_rate` for this request (strict from `strict_from`,
    /// the first version with THROTTLING_QUOTA_EXCEEDED), run over `work`; the connection is
    /// muted for the throttle time `work`'s mutations leave, which is returned.
    pub fn with_mutation_quota<R>(
        &self,
        broker: &Broker,
        strict_from: i16,
        work: impl FnOnce(&dyn Fn(f64) -> bool) -> R,
    ) -> (R, i32) {
        let image = broker.security.image();
        let quota = broker.quotas.mutations(
            &image.quotas,
            &self.principal,
            self.client_id.as_deref().unwrap_or(""),
            self.version >= strict_from,
        );
        let now = || strata_storage::now_ms().max(0) as u64;
        let take = |partitions: f64| quota.as_ref().is_none_or(|q| q.take(partitions, now()));
        let result = work(&take);
        let throttle = quota.as_ref().map_or(0, |q| q.throttle_ms(now()));
        if throttle > 0 {
            if let Some(mute) = &self.mute {
                mute.mute_for(throttle);
            }
        }
        (result, throttle.min(i32::MAX as u64) as i32)
    }

    /// Whether the client may do `op` on the resource (the configured authorizer decides).
    pub fn allowed(
        &self,
        broker: &Broker,
        op: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        broker
            .authorizer
            .authorize(&self.principal, self.host(), op, resource_type, name)
    }

    /// Kafka's bit field of the operations the client may do on a resource (bit n: operation
    /// code n), over the operations that apply to the resource type.
    pub fn authorized_operations(
        &self,
        broker: &Broker,
        resource_type: ResourceType,
        name: &str,
    ) -> i32 {
        use AclOperation::*;
        let applicable: &[AclOperation] = match resource_type {
            ResourceType::Topic => &[
                Read,
                Write,
                Create,
                Delete,
                Alter,
                Describe,
                DescribeConfigs,
                AlterConfigs,
            ],
            ResourceType::Group => &[Read, Describe, Delete],
            ResourceType::Cluster => &[
                Create,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
                Alter,
                Describe,
            ],
            ResourceType::TransactionalId => &[Describe, Write],
            _ => &[],
        };
        applicable
            .iter()
            .filter(|op| self.allowed(broker, **op, resource_type, name))
            .fold(0, |bits, op| bits | (1 << op.code()))
    }

    pub fn encode<R: Encodable + HeaderVersion + ResponseErrors>(
        &self,
        body: &R,
    ) -> Result<Response, ConnectionError> {
        if crate::metrics::enabled() {
            body.error_codes(&mut |code| crate::metrics::request_error(self.api_key, code));
        }
        encode_response(
            self.api_key,
            self.version,
            self.correlation_id,
            body,
            Vec::new(),
        )
        .map_err(|e| ConnectionError::InvalidRequest(e.to_string()))
    }

    /// The response of a handler that answers later (its task's result): an encoding failure,
    /// a field the version cannot carry, is Strata's bug; it is logged, and the request goes
    /// unanswered rather than the task failing.
    pub fn encode_later<R: Encodable + HeaderVersion + ResponseErrors>(
        &self,
        body: &R,
    ) -> Option<Response> {
        match self.encode(body) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::error!(api = ?self.api_key, version = self.version, error = %e, "cannot encode a response");
                None
            }
        }
    }
}

pub fn ready<R: Encodable + HeaderVersion + ResponseErrors>(
    ctx: &Ctx,
    body: &R,
) -> Result<Slot, ConnectionError> {
    Ok(Slot::Ready(Some(ctx.encode(body)?)))
}

/// A frame, decoded.
#[derive(Debug)]
pub enum Decoded {
    /// An ApiVersions request of a version this broker does not know: answered with v0.
    UnknownApiVersions {
        correlation_id: i32,
    },
    Request {
        ctx: Ctx,
        request: Box<RequestKind>,
    },
}

/// Decodes one request frame (without its size prefix). Unknown API keys, unsupported versions
/// and malformed bytes are errors: the connection is closed, as Kafka does.
pub fn decode_request(frame: Bytes) -> Result<Decoded, ConnectionError> {
    if frame.len() < 8 {
        return Err(ConnectionError::InvalidRequest(format!(
            "request of {} bytes has no header",
            frame.len()
        )));
    }
    let mut peek = &frame[..8];
    let raw_key = peek.get_i16();
    let version = peek.get_i16();
    let correlation_id = peek.get_i32();
    let api_key = ApiKey::try_from(raw_key)
        .map_err(|_| ConnectionError::InvalidRequest(format!("unknown API key {raw_key}")))?;
    if api_key == ApiKey::ApiVersions && !accepts(api_key, version) {
        return Ok(Decoded::UnknownApiVersions { correlation_id });
    }
    if !accepts(api_key, version) {
        return Err(ConnectionError::InvalidRequest(format!(
            "unsupported version {version} of {api_key:?}"
        )));
    }
    let body_len = frame.len();
    let mut body = frame;
    let header = RequestHeader::decode(&mut body, api_key.request_header_version(version))
        .map_err(|e| ConnectionError::InvalidRequest(format!("bad request header: {e}")))?;
    let request = RequestKind::decode(api_key, &mut body, version).map_err(|e| {
        ConnectionError::InvalidRequest(format!("cannot decode {api_key:?} v{version}: {e:#}"))
    })?;
    let ctx = Ctx {
        api_key,
        version,
        correlation_id,
        client_id: header.client_id.as_ref().map(|c| c.to_string()),
        client_host: String::new(),
        listener: Arc::from(""),
        principal: Arc::from(ANONYMOUS),
        request_bytes: body_len,
        mute: None,
    };
    Ok(Decoded::Request {
        ctx,
        request: Box::new(request),
    })
}

/// Decodes one request frame and starts its work.
pub fn dispatch(broker: &Arc<Broker>, frame: Bytes, peer: &Peer) -> Result<Slot, ConnectionError> {
    let (mut ctx, request) = match decode_request(frame)? {
        Decoded::UnknownApiVersions { correlation_id } => {
            // Kafka answers an ApiVersions it does not know with a v0 response carrying
            // UNSUPPORTED_VERSION and its versions, so that the client can retry with one of them.
            let ctx = Ctx {
                api_key: ApiKey::ApiVersions,
                version: 0,
                correlation_id,
                client_id: None,
                client_host: String::new(),
                listener: peer.listener.clone(),
                principal: peer.principal.clone(),
                request_bytes: 0,
                mute: None,
            };
            let mut response = api_versions::response();
            response.error_code = ResponseError::UnsupportedVersion.code();
            return ready(&ctx, &response);
        }
        Decoded::Request { ctx, request } => (ctx, request),
    };
    ctx.client_host = peer.client_host.clone();
    ctx.listener = peer.listener.clone();
    ctx.principal = peer.principal.clone();
    ctx.mute = Some(peer.mute.clone());
    // A node of a cluster serves clients only once its metadata has caught up with the
    // quorum's (Kafka's brokers open their listeners only then): before, what it knows of
    // leaders may be stale.
    if !broker.caught_up() && !matches!(request.as_ref(), RequestKind::ApiVersions(_)) {
        return Ok(Slot::Close);
    }
    // request_percentage: the time the request takes here, in percent of one thread, measured
    // only when some quota is configured.
    let timed = (!broker.security.image().quotas.is_empty())
        .then(|| (std::time::Instant::now(), ctx.clone()));
    let slot = route(broker, ctx, *request);
    if let Some((started, ctx)) = timed {
        ctx.throttle(
            broker,
            QuotaKind::Request,
            started.elapsed().as_nanos() as f64 * 100.0 / 1e9,
        );
    }
    slot
}

/// Starts a decoded request's work in its handler.
fn route(broker: &Arc<Broker>, ctx: Ctx, request: RequestKind) -> Result<Slot, ConnectionError> {
    match request {
        RequestKind::ApiVersions(_) => ready(&ctx, &api_versions::response()),
        RequestKind::Metadata(req) => ready(&ctx, &metadata::handle(broker, &ctx, req)),
        RequestKind::Produce(req) => produce::handle(broker, ctx, req),
        RequestKind::Fetch(req) => Ok(fetch::start(broker.clone(), ctx, req)),
        RequestKind::ListOffsets(req) => ready(&ctx, &list_offsets::handle(broker, &ctx, req)),
        RequestKind::CreateTopics(req) if broker.quorum().is_some() => {
            create_topics::handle_cluster(broker.clone(), ctx, req)
        }
        RequestKind::CreateTopics(req) => ready(&ctx, &create_topics::handle(broker, &ctx, req)),
        RequestKind::DeleteTopics(req) => ready(&ctx, &delete_topics::handle(broker, &ctx, req)),
        RequestKind::CreatePartitions(req) => {
            ready(&ctx, &create_partitions::handle(broker, &ctx, req))
        }
        RequestKind::DeleteRecords(req) => ready(&ctx, &delete_records::handle(broker, &ctx, req)),
        RequestKind::ElectLeaders(req) => ready(&ctx, &elect_leaders::handle(broker, &ctx, req)),
        RequestKind::AlterPartitionReassignments(req) => {
            ready(&ctx, &reassignments::alter(broker, &ctx, req))
        }
        RequestKind::ListPartitionReassignments(req) => {
            ready(&ctx, &reassignments::list(broker, &ctx, req))
        }
        RequestKind::InitProducerId(req) => {
            ready(&ctx, &init_producer_id::handle(broker, &ctx, req))
        }
        RequestKind::AddPartitionsToTxn(req) => {
            ready(&ctx, &txn::add_partitions(broker, &ctx, req))
        }
        RequestKind::AddOffsetsToTxn(req) => ready(&ctx, &txn::add_offsets(broker, &ctx, req)),
        RequestKind::EndTxn(req) => ready(&ctx, &txn::end_txn(broker, &ctx, req)),
        RequestKind::TxnOffsetCommit(req) => {
            ready(&ctx, &txn::txn_offset_commit(broker, &ctx, req))
        }
        RequestKind::WriteTxnMarkers(req) => {
            ready(&ctx, &txn_admin::write_markers(broker, &ctx, req))
        }
        RequestKind::DescribeProducers(req) => {
            ready(&ctx, &txn_admin::describe_producers(broker, &ctx, req))
        }
        RequestKind::DescribeTransactions(req) => {
            ready(&ctx, &txn_admin::describe(broker, &ctx, req))
        }
        RequestKind::ListTransactions(req) => ready(&ctx, &txn_admin::list(broker, &ctx, req)),
        RequestKind::OffsetForLeaderEpoch(req) => {
            ready(&ctx, &offset_for_leader_epoch::handle(broker, &ctx, req))
        }
        RequestKind::DescribeConfigs(req) => {
            ready(&ctx, &admin_configs::describe(broker, &ctx, req))
        }
        RequestKind::AlterConfigs(req) => ready(&ctx, &admin_configs::alter(broker, &ctx, req)),
        RequestKind::IncrementalAlterConfigs(req) => {
            ready(&ctx, &admin_configs::incremental_alter(broker, &ctx, req))
        }
        RequestKind::DescribeLogDirs(req) => {
            ready(&ctx, &describe_log_dirs::handle(broker, &ctx, req))
        }
        RequestKind::DescribeCluster(req) => {
            ready(&ctx, &describe_cluster::handle(broker, &ctx, req))
        }
        RequestKind::DescribeQuorum(req) => describe_quorum::handle(broker, ctx, req),
        RequestKind::FindCoordinator(req) => {
            ready(&ctx, &find_coordinator::handle(broker, &ctx, req))
        }
        RequestKind::JoinGroup(req) => groups::join(broker, ctx, req),
        RequestKind::SyncGroup(req) => groups::sync(broker, ctx, req),
        RequestKind::Heartbeat(req) => ready(&ctx, &groups::heartbeat(broker, &ctx, req)),
        RequestKind::LeaveGroup(req) => ready(&ctx, &groups::leave(broker, &ctx, req)),
        RequestKind::OffsetCommit(req) => ready(&ctx, &offsets::commit(broker, &ctx, req)),
        RequestKind::OffsetFetch(req) => ready(&ctx, &offsets::fetch(broker, &ctx, req)),
        RequestKind::OffsetDelete(req) => ready(&ctx, &offsets::delete(broker, &ctx, req)),
        // The SASL exchange is the connection's (server.rs) before it authenticates; here it
        // comes on a listener without SASL or a second time, as Kafka answers then.
        RequestKind::SaslHandshake(_) => ready(
            &ctx,
            &SaslHandshakeResponse::default()
                .with_error_code(ResponseError::IllegalSaslState.code()),
        ),
        RequestKind::SaslAuthenticate(_) => ready(
            &ctx,
            &SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::IllegalSaslState.code())
                .with_error_message(Some(str_bytes(
                    "SaslAuthenticate on a connection that is not authenticating",
                ))),
        ),
        RequestKind::DescribeUserScramCredentials(req) => {
            ready(&ctx, &scram_admin::describe(broker, &ctx, req))
        }
        RequestKind::AlterUserScramCredentials(req) => {
            ready(&ctx, &scram_admin::alter(broker, &ctx, req))
        }
        RequestKind::DescribeClientQuotas(req) => {
            ready(&ctx, &client_quotas::describe(broker, &ctx, req))
        }
        RequestKind::AlterClientQuotas(req) => {
            ready(&ctx, &client_quotas::alter(broker, &ctx, req))
        }
        RequestKind::CreateAcls(req) => ready(&ctx, &acls::create(broker, &ctx, req)),
        RequestKind::DescribeAcls(req) => ready(&ctx, &acls::describe(broker, &ctx, req)),
        RequestKind::DeleteAcls(req) => ready(&ctx, &acls::delete(broker, &ctx, req)),
        RequestKind::ListGroups(req) => ready(&ctx, &group_admin::list(broker, &ctx, req)),
        RequestKind::DescribeGroups(req) => ready(&ctx, &group_admin::describe(broker, &ctx, req)),
        RequestKind::DeleteGroups(req) => ready(&ctx, &group_admin::delete(broker, &ctx, req)),
        RequestKind::ConsumerGroupHeartbeat(req) => {
            ready(&ctx, &consumer_group::heartbeat(broker, &ctx, req))
        }
        RequestKind::ConsumerGroupDescribe(req) => {
            ready(&ctx, &consumer_group::describe(broker, &ctx, req))
        }
        _ => Err(ConnectionError::InvalidRequest(format!(
            "API {:?} is not implemented",
            ctx.api_key
        ))),
    }
}

/// Kafka's topic name rules: 1 to 249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return Err("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > 249 {
        return Err(format!(
            "Topic name is illegal, it can't be longer than 249 characters, topic name: {name}"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
    {
        return Err(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// Topics whose names differ only in '.' versus '_' collide in Kafka's metric names.
pub fn collides(a: &str, b: &str) -> bool {
    a != b && a.replace('.', "_") == b.replace('.', "_")
}

/// The error for a partition of `topic` (None: a topic this broker does not know) it has no
/// log of: NOT_LEADER_OR_FOLLOWER when the topic has it (a node of a cluster hosts its replicas
/// only, and Kafka answers so for a partition it does not host), else
/// UNKNOWN_TOPIC_OR_PARTITION.
pub fn absent_partition(
    topic: Option<&strata_storage::log_manager::Topic>,
    partition: i32,
) -> kafka_protocol::ResponseError {
    if topic.is_some_and(|t| t.has_partition(partition)) {
        kafka_protocol::ResponseError::NotLeaderOrFollower
    } else {
        kafka_protocol::ResponseError::UnknownTopicOrPartition
    }
}

pub fn is_internal(name: &str) -> bool {
    name == crate::group::OFFSETS_TOPIC || name == crate::txn::TRANSACTION_STATE_TOPIC
}

pub fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

pub fn topic_name(s: &str) -> TopicName {
    TopicName(str_bytes(s))
}

pub fn topic_uuid(id: &[u8; 16]) -> uuid::Uuid {
    uuid::Uuid::from_bytes(*id)
}

/// Kafka's error code for a failed append.
pub fn append_error_code(e: &strata_storage::AppendError) -> ResponseError {
    use strata_storage::batch::BatchError;
    use strata_storage::AppendError::*;
    match e {
        InvalidBatch(BatchError::CountMismatch { .. } | BatchError::InvalidBaseOffset(_)) => {
            ResponseError::InvalidRecord
        }
        InvalidBatch(_) | CorruptRecords(_) => ResponseError::CorruptMessage,
        KeylessRecord { .. } => ResponseError::InvalidRecord,
        MessageTooLarge { .. } => ResponseError::MessageTooLarge,
        RecordListTooLarge { .. } => ResponseError::RecordListTooLarge,
        OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        Storage(_) | Offline { .. } => ResponseError::KafkaStorageError,
        NotLeader => ResponseError::NotLeaderOrFollower,
    }
}

/// Creates a topic with the broker's defaults and a fresh id (auto-creation and CreateTopics).
pub fn create_topic(
    broker: &Broker,
    name: &str,
    partitions: i32,
    overrides: std::collections::BTreeMap<String, String>,
) -> Result<Arc<strata_storage::Topic>, (ResponseError, String)> {
    validate_topic_name(name).map_err(|m| (ResponseError::InvalidTopicException, m))?;
    if let Some(other) = broker
        .logs
        .topics()
        .iter()
        .find(|t| collides(&t.name, name))
    {
        return Err((
            ResponseError::InvalidTopicException,
            format!(
                "Topic '{name}' collides with existing topic: {}",
                other.name
            ),
        ));
    }
    broker
        .logs
        .create_topic(
            name,
            partitions,
            overrides,
            *uuid::Uuid::new_v4().as_bytes(),
        )
        .map_err(|e| match e {
            strata_storage::LogError::TopicExists(_) => (
                ResponseError::TopicAlreadyExists,
                format!("Topic '{name}' already exists."),
            ),
            strata_storage::LogError::InvalidPartitions(n) => (
                ResponseError::InvalidPartitions,
                format!("Number of partitions must be larger than 0, got {n}."),
            ),
            other => (ResponseError::KafkaStorageError, other.to_string()),
        })
}
