//! ConsumerGroupHeartbeat and ConsumerGroupDescribe: the consumer group protocol of KIP-848
//! (`group.protocol=consumer`), with the assignment computed by the coordinator.

use std::collections::BTreeMap;

use kafka_protocol::messages::consumer_group_describe_response as describe;
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::*;

use super::{str_bytes, topic_name, topic_uuid, Ctx};
use crate::broker::Broker;
use crate::group::consumer::TopicPartition;
use crate::group::HeartbeatArgs;
use crate::security::acl::{AclOperation, ResourceType};
use kafka_protocol::ResponseError;

fn topic_id(broker: &Broker, name: &str) -> Option<uuid::Uuid> {
    broker.logs.topic(name).map(|t| topic_uuid(&t.id))
}

/// (topic id, partitions) per topic, for the partitions whose topic still exists.
fn by_topic_id(
    broker: &Broker,
    partitions: &std::collections::BTreeSet<TopicPartition>,
) -> Vec<(uuid::Uuid, String, Vec<i32>)> {
    let mut grouped: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        grouped.entry(t).or_default().push(*p);
    }
    grouped
        .into_iter()
        .filter_map(|(t, ps)| Some((topic_id(broker, t)?, t.to_string(), ps)))
        .collect()
}

pub fn heartbeat(
    broker: &Broker,
    ctx: &Ctx,
    req: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    if !ctx.allowed(
        broker,
        AclOperation::Read,
        ResourceType::Group,
        &req.group_id,
    ) {
        return ConsumerGroupHeartbeatResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code())
            .with_member_id(Some(req.member_id.clone()))
            .with_member_epoch(-1);
    }
    let owned = req.topic_partitions.as_ref().map(|tps| {
        tps.iter()
            .filter_map(|tp| {
                let topic = broker.logs.topic_by_id(tp.topic_id.as_bytes())?;
                Some(
                    tp.partitions
                        .iter()
                        .map(|p| (topic.name.clone(), *p))
                        .collect::<Vec<_>>(),
                )
            })
            .flatten()
            .collect()
    });
    let args = HeartbeatArgs {
        group_id: req.group_id.to_string(),
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.as_ref().map(|s| s.to_string()),
        rack_id: req.rack_id.as_ref().map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed: req
            .subscribed_topic_names
            .as_ref()
            .map(|ts| ts.iter().map(|t| t.to_string()).collect()),
        regex: req.subscribed_topic_regex.as_ref().map(|s| s.to_string()),
        assignor: req.server_assignor.as_ref().map(|s| s.to_string()),
        owned,
        client_id: ctx.client_id.clone().unwrap_or_default(),
        client_host: ctx.client_host.clone(),
    };
    let outcome = broker.groups.consumer_heartbeat(
        args,
        &|topic| broker.logs.topic(topic).map(|t| t.partition_count()),
        &|| {
            broker
                .logs
                .topics()
                .iter()
                .map(|t| t.name.clone())
                .collect()
        },
    );
    let mut response = ConsumerGroupHeartbeatResponse::default()
        .with_error_code(outcome.error.map(|e| e.code()).unwrap_or(0))
        .with_error_message(outcome.message.map(str_bytes))
        .with_member_id(Some(str_bytes(outcome.member_id)))
        .with_member_epoch(outcome.epoch)
        .with_heartbeat_interval_ms(outcome.interval_ms);
    if let Some(assigned) = outcome.assignment {
        response.assignment = Some(
            Assignment::default().with_topic_partitions(
                by_topic_id(broker, &assigned)
                    .into_iter()
                    .map(|(id, _, ps)| {
                        TopicPartitions::default()
                            .with_topic_id(id)
                            .with_partitions(ps)
                    })
                    .collect(),
            ),
        );
    }
    response
}

pub fn describe(
    broker: &Broker,
    ctx: &Ctx,
    req: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let assignment = |parts: &std::collections::BTreeSet<TopicPartition>| {
        describe::Assignment::default().with_topic_partitions(
            by_topic_id(broker, parts)
                .into_iter()
                .map(|(id, name, ps)| {
                    describe::TopicPartitions::default()
                        .with_topic_id(id)
                        .with_topic_name(topic_name(&name))
                        .with_partitions(ps)
                })
                .collect(),
        )
    };
    let mut response = ConsumerGroupDescribeResponse::default();
    for id in req.group_ids {
        let mut g = describe::DescribedGroup::default()
            .with_group_id(id.clone())
            .with_authorized_operations(i32::MIN);
        if !ctx.allowed(broker, AclOperation::Describe, ResourceType::Group, &id) {
            g.error_code = ResponseError::GroupAuthorizationFailed.code();
            response.groups.push(g);
            continue;
        }
        if req.include_authorized_operations {
            g.authorized_operations = ctx.authorized_operations(broker, ResourceType::Group, &id);
        }
        match broker.groups.describe_consumer(&id) {
            Ok(view) => {
                g.group_state = str_bytes(view.state);
                g.group_epoch = view.group_epoch;
                g.assignment_epoch = view.assignment_epoch;
                g.assignor_name = str_bytes(view.assignor);
                g.members = view
                    .members
                    .iter()
                    .map(|m| {
                        describe::Member::default()
                            .with_member_id(str_bytes(m.member.id.clone()))
                            .with_instance_id(m.member.instance_id.clone().map(str_bytes))
                            .with_rack_id(m.member.rack_id.clone().map(str_bytes))
                            .with_member_epoch(m.member.epoch)
                            .with_client_id(str_bytes(m.member.client_id.clone()))
                            .with_client_host(str_bytes(m.member.client_host.clone()))
                            .with_subscribed_topic_names(
                                m.member.subscribed.iter().map(|t| topic_name(t)).collect(),
                            )
                            .with_subscribed_topic_regex(m.member.regex.clone().map(str_bytes))
                            .with_assignment(assignment(&m.member.assigned))
                            .with_target_assignment(assignment(&m.target))
                    })
                    .collect();
            }
            Err(e) => {
                g.error_code = e.code();
                g.error_message = Some(str_bytes(format!(
                    "Group {} is not a consumer group.",
                    &*id
                )));
                g.group_state = str_bytes("Dead");
            }
        }
        response.groups.push(g);
    }
    response
}
