//! Metadata: the brokers (this one alone, or those registered in the cluster), and the topics
//! asked for (all when the list is null). A topic that does not exist is created when both the
//! request and `auto.create.topics.enable` allow it.

use std::sync::Arc;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use kafka_protocol::ResponseError;
use strata_storage::Topic;

use super::{create_topic, is_internal, str_bytes, topic_name, topic_uuid, Ctx};
use crate::broker::Broker;
use crate::quorum::controller::NewTopic;
use crate::quorum::{MetadataImage, MetadataQuorum, TopicImage};
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
    topic_entry(&topic.name, &topic.id, partitions)
}

/// A topic as a cluster's image holds it: each partition's leader (LEADER_NOT_AVAILABLE when it
/// has none), leader epoch, replicas, in-sync replicas and replicas on fenced brokers.
fn image_topic_response(image: &MetadataImage, topic: &TopicImage) -> MetadataResponseTopic {
    let fenced = |b: &i32| image.brokers.get(b).is_none_or(|r| r.fenced);
    let partitions = topic
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
            let offline: Vec<i32> = p.replicas.iter().copied().filter(fenced).collect();
            MetadataResponsePartition::default()
                .with_partition_index(i as i32)
                .with_error_code(if p.leader < 0 {
                    ResponseError::LeaderNotAvailable.code()
                } else {
                    0
                })
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(ids(&p.replicas))
                .with_isr_nodes(ids(&p.isr))
                .with_offline_replicas(ids(&offline))
        })
        .collect();
    topic_entry(&topic.name, &topic.id, partitions)
}

/// Metadata on a node of a cluster: topics from the image. A missing topic that may be created
/// is asked of the controller and answered LEADER_NOT_AVAILABLE meanwhile, as Kafka does.
fn cluster_topics(
    broker: &Arc<Broker>,
    ctx: &Ctx,
    quorum: &MetadataQuorum,
    requested: Option<Vec<MetadataRequestTopic>>,
    auto_create: bool,
) -> Vec<MetadataResponseTopic> {
    let image = quorum.image();
    let describable =
        |name: &str| ctx.allowed(broker, AclOperation::Describe, ResourceType::Topic, name);
    let Some(requested) = requested else {
        return image
            .topics
            .values()
            .filter(|t| describable(&t.name))
            .map(|t| image_topic_response(&image, t))
            .collect();
    };
    let mut out = Vec::new();
    let mut to_create = Vec::new();
    for r in requested {
        let by_id = !r.topic_id.is_nil() && r.name.as_ref().is_none_or(|n| n.0.is_empty());
        if by_id {
            out.push(
                match image
                    .topics
                    .values()
                    .find(|t| uuid::Uuid::from_bytes(t.id) == r.topic_id)
                {
                    Some(t) if !describable(&t.name) => refused(None, r.topic_id),
                    Some(t) => image_topic_response(&image, t),
                    None => error_topic(None, r.topic_id, ResponseError::UnknownTopicId),
                },
            );
            continue;
        }
        let name = r.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
        let may_create = || may_create(broker, ctx, &name);
        out.push(match image.topics.get(&name) {
            _ if !describable(&name) => refused(Some(&name), uuid::Uuid::nil()),
            Some(t) => image_topic_response(&image, t),
            None if is_internal(&name) => match broker.logs.topic(&name) {
                Some(t) => topic_response(broker, &t),
                None => error_topic(
                    Some(&name),
                    uuid::Uuid::nil(),
                    ResponseError::UnknownTopicOrPartition,
                ),
            },
            None if auto_create && super::validate_topic_name(&name).is_ok() && may_create() => {
                to_create.push(name.clone());
                error_topic(
                    Some(&name),
                    uuid::Uuid::nil(),
                    ResponseError::LeaderNotAvailable,
                )
            }
            None if auto_create && super::validate_topic_name(&name).is_ok() => {
                refused(Some(&name), uuid::Uuid::nil())
            }
            None => {
                let code = if super::validate_topic_name(&name).is_err() {
                    ResponseError::InvalidTopicException
                } else {
                    ResponseError::UnknownTopicOrPartition
                };
                error_topic(Some(&name), uuid::Uuid::nil(), code)
            }
        });
    }
    if !to_create.is_empty() {
        let broker = broker.clone();
        tokio::spawn(async move {
            let Some(quorum) = broker.quorum() else {
                return;
            };
            let topics = to_create
                .into_iter()
                .map(|name| NewTopic {
                    name,
                    partitions: broker.config.num_partitions,
                    replication_factor: broker.config.default_replication_factor,
                    assignments: Vec::new(),
                    configs: Default::default(),
                    id: None,
                })
                .collect();
            if let Err(e) = quorum.create_topics(topics, false).await {
                tracing::debug!(error = %e, "auto-creating topics failed");
            }
        });
    }
    out
}

fn topic_entry(
    name: &str,
    id: &[u8; 16],
    partitions: Vec<MetadataResponsePartition>,
) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(name)))
        .with_topic_id(topic_uuid(id))
        .with_is_internal(is_internal(name))
        .with_partitions(partitions)
        .with_topic_authorized_operations(i32::MIN)
}

/// Whether the client may create `name`: CREATE on the cluster or on the topic.
fn may_create(broker: &Broker, ctx: &Ctx, name: &str) -> bool {
    ctx.allowed(
        broker,
        AclOperation::Create,
        ResourceType::Cluster,
        CLUSTER_NAME,
    ) || ctx.allowed(broker, AclOperation::Create, ResourceType::Topic, name)
}

fn error_topic(name: Option<&str>, id: uuid::Uuid, error: ResponseError) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(name.map(topic_name))
        .with_topic_id(id)
        .with_error_code(error.code())
        .with_topic_authorized_operations(i32::MIN)
}

pub fn handle(broker: &Arc<Broker>, ctx: &Ctx, req: MetadataRequest) -> MetadataResponse {
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
    if let Some(quorum) = broker.quorum() {
        let auto_create = broker.config.auto_create_topics_enable
            && (ctx.version < 4 || req.allow_auto_topic_creation);
        let requested = if all { None } else { req.topics.clone() };
        response.topics = cluster_topics(broker, ctx, quorum, requested, auto_create)
            .into_iter()
            .map(with_operations)
            .collect();
        return response;
    }
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
                let may_create = || may_create(broker, ctx, name);
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
