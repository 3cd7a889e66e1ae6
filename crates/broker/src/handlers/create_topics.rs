//! CreateTopics, including validate-only. A broker alone takes a replication factor of 1 (or -1
//! for the default) and a manual assignment naming only itself; in a cluster the controller
//! places the replicas.

use std::collections::{BTreeMap, HashMap};

use std::sync::Arc;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, TopicName};
use kafka_protocol::ResponseError;

use super::admin_configs::{describe_topic_entries, ConfigEntry};
use super::{create_topic, str_bytes, topic_uuid, validate_topic_name, Ctx};
use crate::broker::Broker;
use crate::config::validate_topic_config;
use crate::quorum::controller::NewTopic;
use crate::security::acl::{AclOperation, ResourceType, CLUSTER_NAME};
use crate::wire::{ConnectionError, Slot};

pub fn handle(broker: &Broker, ctx: &Ctx, req: CreateTopicsRequest) -> CreateTopicsResponse {
    // controller_mutation_rate: each topic's partitions (THROTTLING_QUOTA_EXCEEDED from v6).
    let (mut response, throttle) =
        ctx.with_mutation_quota(broker, 6, |take| create(broker, ctx, req, take));
    response.throttle_time_ms = throttle;
    response
}

/// What a valid request asks for one topic: partitions (resolved), replication factor
/// (resolved), manual assignments and config overrides.
struct Checked {
    partitions: i32,
    replication_factor: i16,
    assignments: Vec<Vec<i32>>,
    overrides: BTreeMap<String, String>,
}

/// The checks this broker makes of one topic of a request. Alone, it also checks what only it
/// can place (replication factor 1, assignments naming it, the name free); in a cluster the
/// controller does.
fn check(
    broker: &Broker,
    ctx: &Ctx,
    topic: &CreatableTopic,
    duplicated: bool,
    cluster_create: bool,
) -> Result<Checked, (ResponseError, String)> {
    let name = topic.name.0.as_str();
    let alone = broker.quorum().is_none();
    if duplicated {
        return Err((
            ResponseError::InvalidRequest,
            format!("Create topics request from client contains a duplicate topic {name}"),
        ));
    }
    if !cluster_create && !ctx.allowed(broker, AclOperation::Create, ResourceType::Topic, name) {
        return Err((
            ResponseError::TopicAuthorizationFailed,
            "Authorization failed.".into(),
        ));
    }
    validate_topic_name(name).map_err(|m| (ResponseError::InvalidTopicException, m))?;
    let (partitions, replication_factor, assignments) = if !topic.assignments.is_empty() {
        if topic.num_partitions != -1 || topic.replication_factor != -1 {
            return Err((
                ResponseError::InvalidRequest,
                "Both numPartitions or replicationFactor and replicasAssignments were set.".into(),
            ));
        }
        let assignments: Vec<Vec<i32>> = topic
            .assignments
            .iter()
            .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
            .collect();
        if alone {
            for (a, replicas) in topic.assignments.iter().zip(&assignments) {
                if replicas.as_slice() != [broker.config.broker_id] {
                    return Err((
                        ResponseError::InvalidReplicaAssignment,
                        format!(
                            "Partition {} is assigned to brokers that do not exist.",
                            a.partition_index
                        ),
                    ));
                }
            }
        }
        let rf = assignments.first().map_or(1, |r| r.len() as i16);
        (assignments.len() as i32, rf, assignments)
    } else {
        let rf = if topic.replication_factor == -1 {
            broker.config.default_replication_factor
        } else {
            topic.replication_factor
        };
        if rf < 1 {
            return Err((
                ResponseError::InvalidReplicationFactor,
                "Replication factor must be larger than 0.".into(),
            ));
        }
        if rf > 1 && alone {
            return Err((ResponseError::InvalidReplicationFactor, format!("Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only 1 broker(s) are registered.")));
        }
        let partitions = if topic.num_partitions == -1 {
            broker.config.num_partitions
        } else {
            topic.num_partitions
        };
        (partitions, rf, Vec::new())
    };
    if partitions < 1 {
        return Err((
            ResponseError::InvalidPartitions,
            "Number of partitions was set to an invalid non-positive value.".into(),
        ));
    }
    let mut overrides = BTreeMap::new();
    for c in &topic.configs {
        let key = c.name.to_string();
        let Some(value) = &c.value else {
            return Err((
                ResponseError::InvalidConfig,
                format!("Null value not supported for topic configs: {key}"),
            ));
        };
        validate_topic_config(&key, value.as_str())
            .map_err(|e| (ResponseError::InvalidConfig, e.to_string()))?;
        overrides.insert(key, value.to_string());
    }
    broker
        .config
        .check_topic_channel(&overrides)
        .map_err(|e| (ResponseError::InvalidConfig, e.to_string()))?;
    if alone && broker.logs.topic(name).is_some() {
        return Err((
            ResponseError::TopicAlreadyExists,
            format!("Topic '{name}' already exists."),
        ));
    }
    Ok(Checked {
        partitions,
        replication_factor,
        assignments,
        overrides,
    })
}

fn counts(req: &CreateTopicsRequest) -> HashMap<String, usize> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in &req.topics {
        *seen.entry(t.name.0.to_string()).or_default() += 1;
    }
    seen
}

/// The result of a topic created (or validated) with `overrides`: its id when created, counts,
/// and from v5 its configs.
fn created_result(
    broker: &Broker,
    ctx: &Ctx,
    mut result: CreatableTopicResult,
    id: Option<[u8; 16]>,
    partitions: i32,
    replication_factor: i16,
    overrides: &BTreeMap<String, String>,
) -> CreatableTopicResult {
    if let Some(id) = id {
        result.topic_id = topic_uuid(&id);
    }
    result.num_partitions = partitions;
    result.replication_factor = replication_factor;
    if ctx.version >= 5 {
        result.configs = Some(
            describe_topic_entries(broker, overrides, None, false)
                .into_iter()
                .map(|e: ConfigEntry| {
                    CreatableTopicConfigs::default()
                        .with_name(str_bytes(e.name))
                        .with_value(Some(str_bytes(e.value)))
                        .with_read_only(false)
                        .with_config_source(e.source)
                        .with_is_sensitive(false)
                })
                .collect(),
        );
    }
    result
}

fn failed(
    mut result: CreatableTopicResult,
    code: ResponseError,
    message: String,
) -> CreatableTopicResult {
    result.error_code = code.code();
    result.error_message = Some(str_bytes(message));
    result
}

fn empty_result(name: &TopicName) -> CreatableTopicResult {
    CreatableTopicResult::default()
        .with_name(name.clone())
        .with_num_partitions(-1)
        .with_replication_factor(-1)
}

/// CreateTopics on a node of a cluster: checked here, placed and recorded by the controller;
/// answered once this node's image holds the topics created (so that its Metadata shows them).
pub fn handle_cluster(
    broker: Arc<Broker>,
    ctx: Ctx,
    req: CreateTopicsRequest,
) -> Result<Slot, ConnectionError> {
    let seen = counts(&req);
    let cluster_create = ctx.allowed(
        &broker,
        AclOperation::Create,
        ResourceType::Cluster,
        CLUSTER_NAME,
    );
    let mut results: Vec<CreatableTopicResult> = Vec::new();
    let mut asked: Vec<(usize, NewTopic)> = Vec::new();
    for topic in &req.topics {
        let name = topic.name.0.to_string();
        let duplicated = seen.get(&name).copied().unwrap_or(0) > 1;
        match check(&broker, &ctx, topic, duplicated, cluster_create) {
            Err((code, message)) => results.push(failed(empty_result(&topic.name), code, message)),
            Ok(c) => {
                asked.push((
                    results.len(),
                    NewTopic {
                        name,
                        partitions: c.partitions,
                        replication_factor: c.replication_factor,
                        assignments: c.assignments,
                        configs: c.overrides,
                        id: None,
                    },
                ));
                results.push(empty_result(&topic.name));
            }
        }
    }
    let Some(quorum) = broker.quorum().cloned() else {
        return Err(ConnectionError::InvalidRequest("no quorum".into()));
    };
    let validate_only = req.validate_only;
    Ok(Slot::Pending(tokio::spawn(async move {
        if !asked.is_empty() {
            let topics: Vec<NewTopic> = asked.iter().map(|(_, t)| t.clone()).collect();
            match quorum.create_topics(topics, validate_only).await {
                Err(e) => {
                    for (i, _) in &asked {
                        let r = std::mem::take(&mut results[*i]);
                        results[*i] = failed(r, ResponseError::NotController, e.clone());
                    }
                }
                Ok(outcomes) => {
                    let mut created = Vec::new();
                    for ((i, topic), outcome) in asked.iter().zip(outcomes) {
                        let r = std::mem::take(&mut results[*i]);
                        results[*i] = match outcome {
                            Err((code, message)) => {
                                let mut r = r;
                                r.error_code = code;
                                r.error_message = Some(str_bytes(message));
                                r
                            }
                            Ok(c) => {
                                if !validate_only {
                                    created.push(topic.name.clone());
                                }
                                created_result(
                                    &broker,
                                    &ctx,
                                    r,
                                    (!validate_only).then_some(c.id),
                                    c.partitions,
                                    c.replication_factor,
                                    &topic.configs,
                                )
                            }
                        };
                    }
                    broker.wait_for_topics(&created, true).await;
                }
            }
        }
        ctx.encode_later(&CreateTopicsResponse::default().with_topics(results))
    })))
}

fn create(
    broker: &Broker,
    ctx: &Ctx,
    req: CreateTopicsRequest,
    take: &dyn Fn(f64) -> bool,
) -> CreateTopicsResponse {
    let mut response = CreateTopicsResponse::default();
    let seen = counts(&req);
    let cluster_create = ctx.allowed(
        broker,
        AclOperation::Create,
        ResourceType::Cluster,
        CLUSTER_NAME,
    );
    for topic in req.topics {
        let name = topic.name.0.to_string();
        let result = empty_result(&topic.name);
        let duplicated = seen.get(&name).copied().unwrap_or(0) > 1;
        let outcome = check(broker, ctx, &topic, duplicated, cluster_create)
            .map(|c| (c.partitions, c.overrides));
        let result = match outcome {
            Err((code, message)) => failed(result, code, message),
            Ok((partitions, overrides)) => {
                let created = if req.validate_only {
                    Ok(None)
                } else if !take(partitions as f64) {
                    Err((
                        ResponseError::ThrottlingQuotaExceeded,
                        "The throttling quota has been exceeded.".to_string(),
                    ))
                } else {
                    create_topic(broker, &name, partitions, overrides.clone()).map(Some)
                };
                match created {
                    Err((code, message)) => failed(result, code, message),
                    Ok(created) => created_result(
                        broker,
                        ctx,
                        result,
                        created.map(|t| t.id),
                        partitions,
                        1,
                        &overrides,
                    ),
                }
            }
        };
        response.topics.push(result);
    }
    response
}
