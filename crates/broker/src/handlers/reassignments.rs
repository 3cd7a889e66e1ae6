//! AlterPartitionReassignments and ListPartitionReassignments (kafka-reassign-partitions.sh):
//! reassignments decided by the controller (see `quorum/reassignment.rs`). ALTER on the cluster
//! to change them, DESCRIBE to list them. A broker alone has nothing to reassign to.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};
use kafka_protocol::ResponseError;

use super::{str_bytes, topic_name, Ctx};
use crate::broker::Broker;
use crate::quorum::reassignment::{ongoing, Reassigned};
use crate::security::acl::{AclOperation, ResourceType, CLUSTER_NAME};

fn ids(brokers: &[i32]) -> Vec<BrokerId> {
    brokers.iter().map(|b| BrokerId(*b)).collect()
}

pub fn alter(
    broker: &Broker,
    ctx: &Ctx,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let mut response = AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(req.allow_replication_factor_change);
    let asked: Vec<(String, i32, Option<Vec<i32>>)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    p.replicas
                        .as_ref()
                        .map(|r| r.iter().map(|b| b.0).collect::<Vec<i32>>()),
                )
            })
        })
        .collect();
    let refuse_all = |code: ResponseError, message: &str| -> Vec<Reassigned> {
        asked
            .iter()
            .map(|(t, p, _)| (t.clone(), *p, Err((code.code(), message.to_string()))))
            .collect()
    };
    let outcomes = if !ctx.allowed(
        broker,
        AclOperation::Alter,
        ResourceType::Cluster,
        CLUSTER_NAME,
    ) {
        response.error_code = ResponseError::ClusterAuthorizationFailed.code();
        response.error_message = Some(str_bytes("Cluster authorization failed."));
        Vec::new()
    } else if let Some(quorum) = broker.quorum() {
        // KIP-860: a client that does not allow it may not change a partition's replica count.
        let (kept, mut refused): (Vec<_>, Vec<_>) = asked.iter().cloned().partition(|(t, p, r)| {
            req.allow_replication_factor_change
                || r.as_ref().is_none_or(|r| {
                    quorum
                        .image()
                        .topics
                        .get(t)
                        .and_then(|topic| topic.partitions.get((*p).max(0) as usize))
                        .is_none_or(|state| state.replicas.len() - state.adding.len() == r.len())
                })
        });
        let mut refused: Vec<Reassigned> = refused
            .drain(..)
            .map(|(t, p, _)| {
                (
                    t,
                    p,
                    Err((
                        ResponseError::InvalidReplicationFactor.code(),
                        "The replication factor is changed but allow_replication_factor_change is false.".to_string(),
                    )),
                )
            })
            .collect();
        let timeout = Duration::from_millis(req.timeout_ms.max(100) as u64);
        let decided = broker.wait_on(async {
            tokio::time::timeout(timeout, quorum.alter_reassignments(kept.clone())).await
        });
        let mut outcomes = match decided {
            Ok(Ok(outcomes)) => outcomes,
            Ok(Err(e)) => kept
                .iter()
                .map(|(t, p, _)| {
                    (
                        t.clone(),
                        *p,
                        Err((ResponseError::NotController.code(), e.clone())),
                    )
                })
                .collect(),
            Err(_) => kept
                .iter()
                .map(|(t, p, _)| {
                    (
                        t.clone(),
                        *p,
                        Err((
                            ResponseError::RequestTimedOut.code(),
                            "The controller did not answer in time.".to_string(),
                        )),
                    )
                })
                .collect(),
        };
        outcomes.append(&mut refused);
        outcomes
    } else {
        refuse_all(
            ResponseError::InvalidReplicaAssignment,
            "A broker alone has no other broker to reassign partitions to.",
        )
    };
    let mut by_topic: BTreeMap<String, Vec<ReassignablePartitionResponse>> = BTreeMap::new();
    for (topic, partition, outcome) in outcomes {
        let mut r = ReassignablePartitionResponse::default().with_partition_index(partition);
        if let Err((code, message)) = outcome {
            r.error_code = code;
            r.error_message = Some(str_bytes(message));
        }
        by_topic.entry(topic).or_default().push(r);
    }
    response.responses = by_topic
        .into_iter()
        .map(|(t, mut partitions)| {
            partitions.sort_by_key(|p| p.partition_index);
            ReassignableTopicResponse::default()
                .with_name(topic_name(&t))
                .with_partitions(partitions)
        })
        .collect();
    response
}

pub fn list(
    broker: &Broker,
    ctx: &Ctx,
    req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let mut response = ListPartitionReassignmentsResponse::default();
    if !ctx.allowed(
        broker,
        AclOperation::Describe,
        ResourceType::Cluster,
        CLUSTER_NAME,
    ) {
        response.error_code = ResponseError::ClusterAuthorizationFailed.code();
        response.error_message = Some(str_bytes("Cluster authorization failed."));
        return response;
    }
    let Some(quorum) = broker.quorum() else {
        return response;
    };
    let asked: Option<Vec<(String, i32)>> = req.topics.as_ref().map(|ts| {
        ts.iter()
            .flat_map(|t| {
                t.partition_indexes
                    .iter()
                    .map(|p| (t.name.0.to_string(), *p))
            })
            .collect()
    });
    let mut by_topic: BTreeMap<String, Vec<OngoingPartitionReassignment>> = BTreeMap::new();
    for o in ongoing(&quorum.image(), asked.as_deref()) {
        by_topic.entry(o.topic.clone()).or_default().push(
            OngoingPartitionReassignment::default()
                .with_partition_index(o.partition)
                .with_replicas(ids(&o.replicas))
                .with_adding_replicas(ids(&o.adding))
                .with_removing_replicas(ids(&o.removing)),
        );
    }
    response.topics = by_topic
        .into_iter()
        .map(|(t, partitions)| {
            OngoingTopicReassignment::default()
                .with_name(topic_name(&t))
                .with_partitions(partitions)
        })
        .collect();
    response
}
