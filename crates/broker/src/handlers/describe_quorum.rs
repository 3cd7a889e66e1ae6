//! DescribeQuorum (kafka-metadata-quorum.sh): the metadata log's leader, epoch, high watermark
//! and each voter's progress, as the leader knows them. Any node answers: one that is not the
//! leader asks the leader over the controller listener.

use std::sync::Arc;

use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse};
use kafka_protocol::ResponseError;

use super::{str_bytes, topic_name, Ctx};
use crate::broker::Broker;
use crate::quorum::{QuorumInfo, ReplicaInfo, METADATA_DIR};
use crate::security::acl::{AclOperation, ResourceType, CLUSTER_NAME};
use crate::wire::{ConnectionError, Slot};

/// Kafka's name of the metadata log's topic.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// Error messages and the voters' endpoints are fields of version 2 on.
fn top_level(ctx: &Ctx, error: ResponseError, message: &str) -> DescribeQuorumResponse {
    DescribeQuorumResponse::default()
        .with_error_code(error.code())
        .with_error_message((ctx.version >= 2).then(|| str_bytes(message)))
}

fn replica(r: &ReplicaInfo) -> ReplicaState {
    ReplicaState::default()
        .with_replica_id(BrokerId(r.replica_id))
        .with_log_end_offset(r.log_end_offset)
        .with_last_fetch_timestamp(r.last_fetch_timestamp)
        .with_last_caught_up_timestamp(r.last_caught_up_timestamp)
}

fn partition(ctx: &Ctx, info: Result<QuorumInfo, String>) -> PartitionData {
    match info {
        Ok(q) => PartitionData::default()
            .with_partition_index(0)
            .with_leader_id(BrokerId(q.leader_id))
            .with_leader_epoch(q.leader_epoch)
            .with_high_watermark(q.high_watermark)
            .with_current_voters(q.voters.iter().map(replica).collect())
            .with_observers(q.observers.iter().map(replica).collect()),
        Err(e) => PartitionData::default()
            .with_partition_index(0)
            .with_error_code(ResponseError::NotLeaderOrFollower.code())
            .with_error_message((ctx.version >= 2).then(|| str_bytes(e)))
            .with_leader_id(BrokerId(-1))
            .with_leader_epoch(-1)
            .with_high_watermark(-1),
    }
}

pub fn handle(
    broker: &Arc<Broker>,
    ctx: Ctx,
    req: DescribeQuorumRequest,
) -> Result<Slot, ConnectionError> {
    if !ctx.allowed(
        broker,
        AclOperation::Describe,
        ResourceType::Cluster,
        CLUSTER_NAME,
    ) {
        return super::ready(
            &ctx,
            &top_level(
                &ctx,
                ResponseError::ClusterAuthorizationFailed,
                "DESCRIBE on the cluster is needed",
            ),
        );
    }
    let asks_for_metadata_log = req.topics.len() == 1
        && req.topics[0].topic_name.0.as_str() == METADATA_TOPIC
        && req.topics[0].partitions.len() == 1
        && req.topics[0].partitions[0].partition_index == 0;
    if !asks_for_metadata_log {
        return super::ready(
            &ctx,
            &top_level(
                &ctx,
                ResponseError::UnknownTopicOrPartition,
                &format!("only {METADATA_DIR} has a quorum"),
            ),
        );
    }
    let Some(quorum) = broker.quorum().cloned() else {
        return super::ready(
            &ctx,
            &top_level(
                &ctx,
                ResponseError::InvalidRequest,
                "this broker runs alone (process.roles is not set): it has no metadata quorum",
            ),
        );
    };
    Ok(Slot::Pending(tokio::spawn(async move {
        let info = quorum.describe().await;
        let nodes = if ctx.version < 2 {
            Vec::new()
        } else {
            quorum
                .config()
                .voters
                .iter()
                .map(|(id, v)| {
                    Node::default()
                        .with_node_id(BrokerId(*id))
                        .with_listeners(vec![Listener::default()
                            .with_name(str_bytes(&quorum.config().listener_names[0]))
                            .with_host(str_bytes(&v.host))
                            .with_port(v.port)])
                })
                .collect()
        };
        let response = DescribeQuorumResponse::default()
            .with_topics(vec![TopicData::default()
                .with_topic_name(topic_name(METADATA_TOPIC))
                .with_partitions(vec![partition(&ctx, info)])])
            .with_nodes(nodes);
        ctx.encode_later(&response)
    })))
}
