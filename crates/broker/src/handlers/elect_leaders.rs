//! ElectLeaders (kafka-leader-election.sh): preferred or unclean leader elections, decided by
//! the controller (see `quorum/election.rs`). Needs ALTER on the cluster. A broker alone leads
//! every partition it has: ELECTION_NOT_NEEDED.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};
use kafka_protocol::ResponseError;

use super::{str_bytes, topic_name, Ctx};
use crate::broker::Broker;
use crate::quorum::election::{Elected, ElectionType};
use crate::security::acl::{AclOperation, ResourceType, CLUSTER_NAME};

pub fn handle(broker: &Broker, ctx: &Ctx, req: ElectLeadersRequest) -> ElectLeadersResponse {
    let mut response = ElectLeadersResponse::default();
    let asked: Option<Vec<(String, i32)>> = req.topic_partitions.as_ref().map(|ts| {
        ts.iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), *p)))
            .collect()
    });
    let refuse_all = |code: ResponseError, message: &str| -> Vec<Elected> {
        asked
            .iter()
            .flatten()
            .map(|(t, p)| (t.clone(), *p, Err((code.code(), message.to_string()))))
            .collect()
    };
    let election = if ctx.version >= 1 {
        ElectionType::from_code(req.election_type)
    } else {
        Some(ElectionType::Preferred)
    };
    let outcomes = if !ctx.allowed(
        broker,
        AclOperation::Alter,
        ResourceType::Cluster,
        CLUSTER_NAME,
    ) {
        if ctx.version >= 1 {
            response.error_code = ResponseError::ClusterAuthorizationFailed.code();
        }
        refuse_all(
            ResponseError::ClusterAuthorizationFailed,
            "Cluster authorization failed.",
        )
    } else if let Some(election) = election {
        match broker.quorum() {
            Some(quorum) => {
                let timeout = Duration::from_millis(req.timeout_ms.max(0) as u64);
                let decided = broker.wait_on(async {
                    tokio::time::timeout(
                        timeout.max(Duration::from_millis(100)),
                        quorum.elect_leaders(election, asked.clone()),
                    )
                    .await
                });
                match decided {
                    Ok(Ok(outcomes)) => outcomes,
                    Ok(Err(e)) => refuse_all(ResponseError::NotController, &e),
                    Err(_) => refuse_all(
                        ResponseError::RequestTimedOut,
                        "The controller did not answer in time.",
                    ),
                }
            }
            None => alone(broker, asked.as_deref()),
        }
    } else {
        refuse_all(
            ResponseError::InvalidRequest,
            &format!("Unknown election type {}", req.election_type),
        )
    };
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    for (topic, partition, outcome) in outcomes {
        let mut r = PartitionResult::default().with_partition_id(partition);
        if let Err((code, message)) = outcome {
            r.error_code = code;
            r.error_message = Some(str_bytes(message));
        }
        by_topic.entry(topic).or_default().push(r);
    }
    response.replica_election_results = by_topic
        .into_iter()
        .map(|(t, partitions)| {
            ReplicaElectionResult::default()
                .with_topic(topic_name(&t))
                .with_partition_result(partitions)
        })
        .collect();
    response
}

/// A broker alone leads every partition it has.
fn alone(broker: &Broker, asked: Option<&[(String, i32)]>) -> Vec<Elected> {
    let Some(asked) = asked else {
        return Vec::new();
    };
    asked
        .iter()
        .map(|(t, p)| {
            let exists = broker
                .logs
                .topic(t)
                .is_some_and(|topic| topic.has_partition(*p));
            let refusal = if exists {
                (
                    ResponseError::ElectionNotNeeded.code(),
                    "Leader election not needed for topic partition.".to_string(),
                )
            } else {
                (
                    ResponseError::UnknownTopicOrPartition.code(),
                    "The partition does not exist.".to_string(),
                )
            };
            (t.clone(), *p, Err(refusal))
        })
        .collect()
}
