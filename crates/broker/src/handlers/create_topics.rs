//! CreateTopics, including validate-only. One broker, so the replication factor must be 1 (or -1
//! for the default) and a manual assignment may only name this broker.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::ResponseError;

use super::admin_configs::{describe_topic_entries, ConfigEntry};
use super::{create_topic, str_bytes, topic_uuid, validate_topic_name, Ctx};
use crate::broker::Broker;
use crate::config::validate_topic_config;
use crate::security::acl::{AclOperation, ResourceType, CLUSTER_NAME};

pub fn handle(broker: &Broker, ctx: &Ctx, req: CreateTopicsRequest) -> CreateTopicsResponse {
    // controller_mutation_rate: each topic's partitions (THROTTLING_QUOTA_EXCEEDED from v6).
    let (mut response, throttle) =
        ctx.with_mutation_quota(broker, 6, |take| create(broker, ctx, req, take));
    response.throttle_time_ms = throttle;
    response
}

fn create(
    broker: &Broker,
    ctx: &Ctx,
    req: CreateTopicsRequest,
    take: &dyn Fn(f64) -> bool,
) -> CreateTopicsResponse {
    let mut response = CreateTopicsResponse::default();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in &req.topics {
        *seen.entry(t.name.0.to_string()).or_default() += 1;
    }
    let cluster_create = ctx.allowed(
        broker,
        AclOperation::Create,
        ResourceType::Cluster,
        CLUSTER_NAME,
    );
    for topic in req.topics {
        let name = topic.name.0.to_string();
        let mut result = CreatableTopicResult::default()
            .with_name(topic.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        let outcome = (|| -> Result<(i32, BTreeMap<String, String>), (ResponseError, String)> {
            if seen.get(&name).copied().unwrap_or(0) > 1 {
                return Err((
                    ResponseError::InvalidRequest,
                    format!("Create topics request from client contains a duplicate topic {name}"),
                ));
            }
            if !cluster_create
                && !ctx.allowed(broker, AclOperation::Create, ResourceType::Topic, &name)
            {
                return Err((
                    ResponseError::TopicAuthorizationFailed,
                    "Authorization failed.".into(),
                ));
            }
            validate_topic_name(&name).map_err(|m| (ResponseError::InvalidTopicException, m))?;
            let partitions = if !topic.assignments.is_empty() {
                if topic.num_partitions != -1 || topic.replication_factor != -1 {
                    return Err((
                        ResponseError::InvalidRequest,
                        "Both numPartitions or replicationFactor and replicasAssignments were set."
                            .into(),
                    ));
                }
                for a in &topic.assignments {
                    if a.broker_ids.len() != 1 || a.broker_ids[0].0 != broker.config.broker_id {
                        return Err((
                            ResponseError::InvalidReplicaAssignment,
                            format!(
                                "Partition {} is assigned to brokers that do not exist.",
                                a.partition_index
                            ),
                        ));
                    }
                }
                topic.assignments.len() as i32
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
                if rf > 1 {
                    return Err((ResponseError::InvalidReplicationFactor, format!("Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only 1 broker(s) are registered.")));
                }
                if topic.num_partitions == -1 {
                    broker.config.num_partitions
                } else {
                    topic.num_partitions
                }
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
            if broker.logs.topic(&name).is_some() {
                return Err((
                    ResponseError::TopicAlreadyExists,
                    format!("Topic '{name}' already exists."),
                ));
            }
            Ok((partitions, overrides))
        })();
        match outcome {
            Err((code, message)) => {
                result.error_code = code.code();
                result.error_message = Some(str_bytes(message));
            }
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
                    Err((code, message)) => {
                        result.error_code = code.code();
                        result.error_message = Some(str_bytes(message));
                    }
                    Ok(created) => {
                        if let Some(t) = &created {
                            result.topic_id = topic_uuid(&t.id);
                        }
                        result.num_partitions = partitions;
                        result.replication_factor = 1;
                        if ctx.version >= 5 {
                            result.configs = Some(
                                describe_topic_entries(broker, &overrides, None, false)
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
                    }
                }
            }
        }
        response.topics.push(result);
    }
    response
}
