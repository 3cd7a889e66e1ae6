//! CreatePartitions: grow a topic's partition count (never shrink it).

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::ResponseError;

use super::Ctx;
use super::{is_internal, str_bytes};
use crate::broker::Broker;
use crate::security::acl::{AclOperation, ResourceType};

pub fn handle(
    broker: &Broker,
    ctx: &Ctx,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    // controller_mutation_rate: the partitions added (THROTTLING_QUOTA_EXCEEDED from v3).
    let (mut response, throttle) =
        ctx.with_mutation_quota(broker, 3, |take| create(broker, ctx, req, take));
    response.throttle_time_ms = throttle;
    response
}

fn create(
    broker: &Broker,
    ctx: &Ctx,
    req: CreatePartitionsRequest,
    take: &dyn Fn(f64) -> bool,
) -> CreatePartitionsResponse {
    let mut response = CreatePartitionsResponse::default();
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        let outcome = (|| -> Result<(), (ResponseError, String)> {
            if !ctx.allowed(broker, AclOperation::Alter, ResourceType::Topic, &name) {
                return Err((
                    ResponseError::TopicAuthorizationFailed,
                    "Authorization failed.".into(),
                ));
            }
            let topic = broker.logs.topic(&name).ok_or((
                ResponseError::UnknownTopicOrPartition,
                format!("The topic '{name}' does not exist."),
            ))?;
            if is_internal(&name) {
                // A group's offsets partition is its id's hash modulo the partition count:
                // changing the count would send groups elsewhere.
                return Err((
                    ResponseError::InvalidRequest,
                    format!("Cannot change the number of partitions of internal topic {name}."),
                ));
            }
            let current = topic.partition_count();
            if t.count < current {
                return Err((ResponseError::InvalidPartitions, format!("Topic currently has {current} partitions, which is higher than the requested {}.", t.count)));
            }
            if t.count == current {
                return Err((
                    ResponseError::InvalidPartitions,
                    format!("Topic already has {current} partitions."),
                ));
            }
            if broker.quorum().is_some() {
                // The controller places the new replicas (or checks the given ones).
                if !take((t.count - current) as f64) {
                    return Err((
                        ResponseError::ThrottlingQuotaExceeded,
                        "The throttling quota has been exceeded.".into(),
                    ));
                }
                let assignments = t
                    .assignments
                    .iter()
                    .flatten()
                    .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                    .collect();
                return broker.add_partitions_in_cluster(
                    &name,
                    t.count,
                    assignments,
                    req.validate_only,
                );
            }
            if let Some(assignments) = &t.assignments {
                if assignments.len() as i32 != t.count - current {
                    return Err((ResponseError::InvalidReplicaAssignment, format!("Increasing the number of partitions by {} but {} assignments provided.", t.count - current, assignments.len())));
                }
                if assignments.iter().any(|a| {
                    a.broker_ids.iter().any(|b| b.0 != broker.config.broker_id)
                        || a.broker_ids.len() != 1
                }) {
                    return Err((
                        ResponseError::InvalidReplicaAssignment,
                        "Assignment names a broker that does not exist.".into(),
                    ));
                }
            }
            if req.validate_only {
                return Ok(());
            }
            if !take((t.count - current) as f64) {
                return Err((
                    ResponseError::ThrottlingQuotaExceeded,
                    "The throttling quota has been exceeded.".into(),
                ));
            }
            broker
                .logs
                .add_partitions(&name, t.count)
                .map_err(|e| (ResponseError::KafkaStorageError, e.to_string()))
        })();
        if let Err((code, message)) = outcome {
            result.error_code = code.code();
            result.error_message = Some(str_bytes(message));
        }
        response.results.push(result);
    }
    response
}
