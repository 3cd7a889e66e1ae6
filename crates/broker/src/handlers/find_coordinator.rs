//! FindCoordinator: a broker alone coordinates every group (key type 0) and every
//! transactional id (key type 1); in a cluster, the leader of the key's partition of
//! `__consumer_offsets` or `__transaction_state` does. Other key types are refused with
//! INVALID_REQUEST.
//!
//! Besides consumer groups, librdkafka needs this API advertised before it will compress with
//! LZ4 (it takes FindCoordinator as the sign of a broker with KIP-57's LZ4 framing).

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{str_bytes, Ctx};
use std::sync::Arc;

use crate::broker::Broker;
use crate::group::OFFSETS_TOPIC;
use crate::internal_log::{internal_overrides, internal_topic_id};
use crate::quorum::controller::NewTopic;
use crate::quorum::MetadataQuorum;
use crate::security::acl::{AclOperation, ResourceType};
use crate::txn::TRANSACTION_STATE_TOPIC;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

fn lookup(
    broker: &Broker,
    ctx: &Ctx,
    key: &str,
    key_type: i8,
) -> Result<(BrokerId, StrBytes, i32), (ResponseError, String)> {
    let listener: &str = &ctx.listener;
    // DESCRIBE on the group or the transactional id.
    let refusal = match key_type {
        KEY_TYPE_GROUP => (!ctx.allowed(broker, AclOperation::Describe, ResourceType::Group, key))
            .then_some(ResponseError::GroupAuthorizationFailed),
        KEY_TYPE_TRANSACTION => (!ctx.allowed(
            broker,
            AclOperation::Describe,
            ResourceType::TransactionalId,
            key,
        ))
        .then_some(ResponseError::TransactionalIdAuthorizationFailed),
        _ => None,
    };
    if let Some(code) = refusal {
        return Err((code, code.to_string()));
    }
    if let Some(quorum) = broker.quorum() {
        if key_type == KEY_TYPE_GROUP {
            let topic = NewTopic {
                name: OFFSETS_TOPIC.to_string(),
                partitions: broker.config.groups.offsets_partitions,
                replication_factor: broker.config.groups.offsets_replication_factor,
                assignments: Vec::new(),
                configs: internal_overrides(broker.config.groups.offsets_segment_bytes),
                id: Some(internal_topic_id(&broker.cluster_id, OFFSETS_TOPIC)),
            };
            let partition = broker.groups.partition_for(key);
            return cluster_coordinator(broker, quorum, listener, topic, partition);
        }
        if key_type == KEY_TYPE_TRANSACTION {
            let txns = broker.txns.config();
            let mut configs = internal_overrides(txns.segment_bytes);
            configs.insert("min.insync.replicas".to_string(), txns.min_isr.to_string());
            let topic = NewTopic {
                name: TRANSACTION_STATE_TOPIC.to_string(),
                partitions: txns.partitions,
                replication_factor: txns.replication_factor,
                assignments: Vec::new(),
                configs,
                id: Some(internal_topic_id(
                    &broker.cluster_id,
                    TRANSACTION_STATE_TOPIC,
                )),
            };
            let partition = broker.txns.partition_for(key);
            return cluster_coordinator(broker, quorum, listener, topic, partition);
        }
    }
    if key_type == KEY_TYPE_TRANSACTION {
        // As Kafka, the transaction state topic is created when first asked for.
        broker
            .txns
            .log()
            .map_err(|e| (e, "The coordinator is not available.".to_string()))?;
    }
    if key_type == KEY_TYPE_GROUP || key_type == KEY_TYPE_TRANSACTION {
        let (host, port) = broker.advertised_for(listener);
        Ok((
            BrokerId(broker.config.broker_id),
            str_bytes(host),
            port as i32,
        ))
    } else {
        Err((
            ResponseError::InvalidRequest,
            format!("Unknown coordinator key type {key_type}"),
        ))
    }
}

/// A coordinator in a cluster: the leader of the key's partition of the coordinator's topic
/// (`__consumer_offsets` for a group, `__transaction_state` for a transactional id) in the
/// image, as Kafka's. The topic is asked of the controller the first time (with the id every
/// node gave its own copy), COORDINATOR_NOT_AVAILABLE meanwhile, and while the partition has no
/// leader.
fn cluster_coordinator(
    broker: &Broker,
    quorum: &Arc<MetadataQuorum>,
    listener: &str,
    topic: NewTopic,
    partition: i32,
) -> Result<(BrokerId, StrBytes, i32), (ResponseError, String)> {
    let unavailable = || {
        (
            ResponseError::CoordinatorNotAvailable,
            "The coordinator is not available.".to_string(),
        )
    };
    let image = quorum.image();
    let Some(existing) = image.topics.get(&topic.name) else {
        let quorum = quorum.clone();
        tokio::spawn(async move {
            let name = topic.name.clone();
            if let Err(e) = quorum.create_topics(vec![topic], false).await {
                tracing::debug!(topic = %name, error = %e, "creating the coordinator's topic failed");
            }
        });
        return Err(unavailable());
    };
    let leader = existing
        .partitions
        .get(partition as usize)
        .map_or(-1, |p| p.leader);
    broker
        .brokers_for(listener)
        .into_iter()
        .find(|(id, _, _, _)| *id == leader)
        .map(|(id, host, port, _)| (BrokerId(id), str_bytes(host), port as i32))
        .ok_or_else(unavailable)
}

pub fn handle(broker: &Broker, ctx: &Ctx, req: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let mut response = FindCoordinatorResponse::default();
    if ctx.version >= 4 {
        for key in req.coordinator_keys {
            let mut c = Coordinator::default()
                .with_key(key)
                .with_node_id(BrokerId(-1))
                .with_port(-1);
            match lookup(broker, ctx, &c.key, req.key_type) {
                Ok((node, host, port)) => {
                    c.node_id = node;
                    c.host = host;
                    c.port = port;
                }
                Err((code, message)) => {
                    c.error_code = code.code();
                    c.error_message = Some(str_bytes(message));
                }
            }
            response.coordinators.push(c);
        }
        return response;
    }
    match lookup(broker, ctx, &req.key, req.key_type) {
        Ok((node, host, port)) => {
            response.node_id = node;
            response.host = host;
            response.port = port;
        }
        Err((code, message)) => {
            response.error_code = code.code();
            response.node_id = BrokerId(-1);
            response.port = -1;
            if ctx.version >= 1 {
                response.error_message = Some(str_bytes(message));
            }
        }
    }
    response
}
