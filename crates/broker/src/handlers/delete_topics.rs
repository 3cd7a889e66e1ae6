//! DeleteTopics, by name (all versions) or by topic id (version 6).

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};
use kafka_protocol::ResponseError;

use super::{is_internal, str_bytes, topic_name, topic_uuid, Ctx};
use crate::broker::Broker;
use crate::security::acl::{AclOperation, ResourceType};

pub fn handle(broker: &Broker, ctx: &Ctx, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    // controller_mutation_rate: each topic's partitions (THROTTLING_QUOTA_EXCEEDED from v5).
    let (mut response, throttle) =
        ctx.with_mutation_quota(broker, 5, |take| delete(broker, ctx, req, take));
    response.throttle_time_ms = throttle;
    response
}

fn delete(
    broker: &Broker,
    ctx: &Ctx,
    req: DeleteTopicsRequest,
    take: &dyn Fn(f64) -> bool,
) -> DeleteTopicsResponse {
    let mut response = DeleteTopicsResponse::default();
    let requested: Vec<(Option<String>, uuid::Uuid)> = if ctx.version >= 6 {
        req.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    for (name, id) in requested {
        let topic = match &name {
            Some(n) => broker.logs.topic(n),
            None => broker.logs.topic_by_id(id.as_bytes()),
        };
        let mut result = DeletableTopicResult::default()
            .with_name(name.as_deref().map(topic_name))
            .with_topic_id(id);
        let refused = |t: &str| !ctx.allowed(broker, AclOperation::Delete, ResourceType::Topic, t);
        let error = match topic {
            None if name.as_deref().is_some_and(refused) => Some((
                ResponseError::TopicAuthorizationFailed,
                "Authorization failed.".to_string(),
            )),
            Some(t) if refused(&t.name) => Some((
                ResponseError::TopicAuthorizationFailed,
                "Authorization failed.".to_string(),
            )),
            None if name.is_none() => Some((
                ResponseError::UnknownTopicId,
                "This server does not host this topic ID.".to_string(),
            )),
            None => Some((
                ResponseError::UnknownTopicOrPartition,
                "This server does not host this topic-partition.".to_string(),
            )),
            Some(_) if !broker.config.delete_topic_enable => Some((
                ResponseError::TopicDeletionDisabled,
                "Topic deletion is disabled.".to_string(),
            )),
            Some(t) if is_internal(&t.name) => Some((
                ResponseError::TopicAuthorizationFailed,
                "Internal topics cannot be deleted.".to_string(),
            )),
            Some(t) if !take(t.partition_count() as f64) => Some((
                ResponseError::ThrottlingQuotaExceeded,
                "The throttling quota has been exceeded.".to_string(),
            )),
            Some(t) => {
                result.name = Some(topic_name(&t.name));
                result.topic_id = topic_uuid(&t.id);
                if broker.quorum().is_some() {
                    broker.delete_topic_in_cluster(&t.name).err()
                } else {
                    match broker.logs.delete_topic(&t.name) {
                        Ok(()) => None,
                        Err(e) => Some((ResponseError::KafkaStorageError, e.to_string())),
                    }
                }
            }
        };
        if let Some((code, message)) = error {
            result.error_code = code.code();
            if ctx.version >= 5 {
                result.error_message = Some(str_bytes(message));
            }
        }
        response.responses.push(result);
    }
    // Waiting fetches of deleted topics answer now rather than at their deadline.
    broker.replicas.wake_all();
    response
}
