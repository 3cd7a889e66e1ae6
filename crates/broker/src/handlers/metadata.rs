//! Metadata: the brokers (this one alone, or those registered in the cluster), and the topics
//! asked for (all when the list is null). A topic that does not exist is created when both the
//! request and `auto.create.topics.enable` allow it.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use kafka_protocol::ResponseError;
use strata_storage::Topic;

use super::{create_topic, is_internal, str_bytes, topic_name, topic_uuid, Ctx};
use crate::broker::Broker;
use crate::security::acl::{AclOperation, ResourceType, CLUSTER_NAME};

/// A topic the client may not describe: named, it gets TOPIC_AUTHORIZATION_FAILED; in an
/// all-topics request, it is left out.
fn refused(name: Option<&str>, id: uuid::Uuid) -> MetadataResponseTopic {
    error_topic(name, id, ResponseError::TopicAuthorizationFailed)
}

fn topic_response(broker: &Broker, topic: &Topic) -> MetadataResponseTopic {
    let me = BrokerId(broker.config.broker_id);
    let partitions = topic
        .partitions()
        .iter()
        .map(|p| {
            let log = p.log();
            let partition = MetadataResponsePartition::default()
                .with_partition_index(p.index)
                .with_leader_epoch(log.leader_epoch().get())
                .with_replica_nodes(vec![me]);
            if log.offline().is_some() {
                // The only replica's directory failed: no leader, as Kafka reports a
                // partition whose log directory went offline.
                partition
                    .with_error_code(ResponseError::LeaderNotAvailable.code())
                    .with_leader_id(BrokerId(-1))
                    .with_offline_replicas(vec![me])
            } else {
                partition.with_leader_id(me).with_isr_nodes(vec![me])
            }
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(&topic.name)))
        .with_topic_id(topic_uuid(&topic.id))
        .with_is_internal(is_internal(&topic.name))
        .with_partitions(partitions)
        .with_topic_authorized_operations(i32::MIN)
}

fn error_topic(name: Option<&str>, id: uuid::Uuid, error: ResponseError) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(name.map(topic_name))
        .with_topic_id(id)
        .with_error_code(error.code())
        .with_topic_authorized_operations(i32::MIN)
}

pub fn handle(broker: &Broker, ctx: &Ctx, req: MetadataRequest) -> MetadataResponse {
    let brokers = broker
        .brokers_for(&ctx.listener)
        .into_iter()
        .map(|(id, host, port, rack)| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(id))
                .with_host(str_bytes(host))
                .with_port(port as i32)
                .with_rack(rack.map(str_bytes))
        })
        .collect();
    let mut response = MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(str_bytes(&broker.cluster_id)))
        .with_controller_id(BrokerId(broker.controller_id()))
        .with_cluster_authorized_operations(i32::MIN);
    // Version 0 used an empty list for "all topics"; later versions use null.
    let all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && ctx.version == 0,
    };
    if req.include_cluster_authorized_operations {
        response.cluster_authorized_operations =
            ctx.authorized_operations(broker, ResourceType::Cluster, CLUSTER_NAME);
    }
    let describable =
        |name: &str| ctx.allowed(broker, AclOperation::Describe, ResourceType::Topic, name);
    let with_operations = |mut t: MetadataResponseTopic| {
        if req.include_topic_authorized_operations && t.error_code == 0 {
            if let Some(name) = &t.name {
                t.topic_authorized_operations =
                    ctx.authorized_operations(broker, ResourceType::Topic, name.0.as_str());
            }
        }
        t
    };
    if all {
        response.topics = broker
            .logs
            .topics()
            .iter()
            .filter(|t| describable(&t.name))
            .map(|t| with_operations(topic_response(broker, t)))
            .collect();
        return response;
    }
    let auto_create = broker.config.auto_create_topics_enable
        && (ctx.version < 4 || req.allow_auto_topic_creation);
    for requested in req.topics.unwrap_or_default() {
        let by_id =
            !requested.topic_id.is_nil() && requested.name.as_ref().is_none_or(|n| n.0.is_empty());
        let topic = match &requested.name {
            Some(name) if !by_id => {
                let name = name.0.as_str();
                let may_create = || {
                    ctx.allowed(
                        broker,
                        AclOperation::Create,
                        ResourceType::Cluster,
                        CLUSTER_NAME,
                    ) || ctx.allowed(broker, AclOperation::Create, ResourceType::Topic, name)
                };
                match broker.logs.topic(name) {
                    _ if !describable(name) => refused(Some(name), uuid::Uuid::nil()),
                    Some(t) => topic_response(broker, &t),
                    None if auto_create && !is_internal(name) && !may_create() => {
                        refused(Some(name), uuid::Uuid::nil())
                    }
                    None if auto_create && !is_internal(name) => {
                        match create_topic(
                            broker,
                            name,
                            broker.config.num_partitions,
                            Default::default(),
                        ) {
                            Ok(t) => topic_response(broker, &t),
                            Err((ResponseError::TopicAlreadyExists, _)) => {
                                match broker.logs.topic(name) {
                                    Some(t) => topic_response(broker, &t),
                                    None => error_topic(
                                        Some(name),
                                        uuid::Uuid::nil(),
                                        ResponseError::LeaderNotAvailable,
                                    ),
                                }
                            }
                            Err((code, _)) => error_topic(Some(name), uuid::Uuid::nil(), code),
                        }
                    }
                    None => {
                        let code = if super::validate_topic_name(name).is_err() {
                            ResponseError::InvalidTopicException
                        } else {
                            ResponseError::UnknownTopicOrPartition
                        };
                        error_topic(Some(name), uuid::Uuid::nil(), code)
                    }
                }
            }
            _ => match broker.logs.topic_by_id(requested.topic_id.as_bytes()) {
                Some(t) if !describable(&t.name) => refused(None, requested.topic_id),
                Some(t) => topic_response(broker, &t),
                None => error_topic(None, requested.topic_id, ResponseError::UnknownTopicId),
            },
        };
        response.topics.push(with_operations(topic));
    }
    response
}
