//! What operators ask about transactions (kafka-transactions.sh): DescribeTransactions,
//! ListTransactions, DescribeProducers, and WriteTxnMarkers, which its `abort` uses to end a
//! hanging transaction on a partition.

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::describe_transactions_response::{self, TopicData};
use kafka_protocol::messages::list_transactions_response;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;

use super::{str_bytes, topic_name, Ctx};
use crate::broker::Broker;
use crate::replica::{AcksError, ReplicaManager};
use crate::security::acl::{AclOperation, ResourceType, CLUSTER_NAME};
use crate::txn::markers::MarkerError;
use crate::txn::{TxnResult, TxnState};

pub fn describe(
    broker: &Broker,
    ctx: &Ctx,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let mut response = DescribeTransactionsResponse::default();
    for id in req.transactional_ids {
        let mut state = describe_transactions_response::TransactionState::default()
            .with_transactional_id(id.clone())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
            .with_transaction_start_time_ms(-1);
        match broker.txns.describe(&id) {
            _ if id.is_empty() => state.error_code = ResponseError::InvalidRequest.code(),
            _ if !ctx.allowed(
                broker,
                AclOperation::Describe,
                ResourceType::TransactionalId,
                &id,
            ) =>
            {
                state.error_code = ResponseError::TransactionalIdAuthorizationFailed.code()
            }
            _ if !broker.txns.owns(&id) => state.error_code = ResponseError::NotCoordinator.code(),
            None => state.error_code = ResponseError::TransactionalIdNotFound.code(),
            Some(m) => {
                state.transaction_state = str_bytes(m.state.name());
                state.transaction_timeout_ms = m.timeout_ms;
                state.transaction_start_time_ms = m.start_ms;
                state.producer_id = ProducerId(m.producer_id);
                state.producer_epoch = m.producer_epoch;
                // Only the topics the client may describe are shown.
                for (t, p) in &m.partitions {
                    if !ctx.allowed(broker, AclOperation::Describe, ResourceType::Topic, t) {
                        continue;
                    }
                    match state.topics.iter_mut().find(|d| d.topic.0.as_str() == t) {
                        Some(d) => d.partitions.push(*p),
                        None => state.topics.push(
                            TopicData::default()
                                .with_topic(topic_name(t))
                                .with_partitions(vec![*p]),
                        ),
                    }
                }
            }
        }
        response.transaction_states.push(state);
    }
    response
}

pub fn list(broker: &Broker, ctx: &Ctx, req: ListTransactionsRequest) -> ListTransactionsResponse {
    let mut response = ListTransactionsResponse::default();
    let mut states = Vec::new();
    for name in &req.state_filters {
        match TxnState::from_name(name) {
            Some(s) => states.push(s),
            None => response.unknown_state_filters.push(name.clone()),
        }
    }
    // Filters of only unknown states match nothing (as Kafka).
    if states.is_empty() && !req.state_filters.is_empty() {
        return response;
    }
    let pattern = match req
        .transactional_id_pattern
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        Some(p) => match regex::Regex::new(&format!("^(?:{p})$")) {
            Ok(r) => Some(r),
            Err(_) => {
                response.error_code = ResponseError::InvalidRegularExpression.code();
                return response;
            }
        },
        None => None,
    };
    let pids: Vec<i64> = req.producer_id_filters.iter().map(|p| p.0).collect();
    for t in broker.txns.list(&states, &pids, req.duration_filter) {
        if pattern
            .as_ref()
            .is_some_and(|r| !r.is_match(&t.transactional_id))
        {
            continue;
        }
        if !ctx.allowed(
            broker,
            AclOperation::Describe,
            ResourceType::TransactionalId,
            &t.transactional_id,
        ) {
            continue;
        }
        response.transaction_states.push(
            list_transactions_response::TransactionState::default()
                .with_transactional_id(str_bytes(t.transactional_id).into())
                .with_producer_id(ProducerId(t.producer_id))
                .with_transaction_state(str_bytes(t.state.name())),
        );
    }
    response
}

pub fn describe_producers(
    broker: &Broker,
    ctx: &Ctx,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let mut response = DescribeProducersResponse::default();
    for t in req.topics {
        let topic = broker.logs.topic(&t.name);
        let mut out = TopicResponse::default().with_name(t.name.clone());
        let refused = !ctx.allowed(broker, AclOperation::Read, ResourceType::Topic, &t.name);
        for index in t.partition_indexes {
            let mut r = PartitionResponse::default().with_partition_index(index);
            match topic.as_ref().and_then(|t| t.partition(index)) {
                _ if refused => r.error_code = ResponseError::TopicAuthorizationFailed.code(),
                None => r.error_code = super::absent_partition(topic.as_deref(), index).code(),
                Some(p) => {
                    let log = p.log();
                    let states = log.producer_states();
                    for (pid, e) in states.iter() {
                        r.active_producers.push(
                            ProducerState::default()
                                .with_producer_id(ProducerId(pid.get()))
                                .with_producer_epoch(e.epoch as i32)
                                .with_last_sequence(
                                    e.batches.back().map_or(-1, |b| b.last_sequence),
                                )
                                .with_last_timestamp(e.last_timestamp)
                                .with_coordinator_epoch(-1)
                                .with_current_txn_start_offset(
                                    e.current_txn_first_offset.map_or(-1, |o| o.get()),
                                ),
                        );
                    }
                }
            }
            out.partitions.push(r);
        }
        response.topics.push(out);
    }
    response
}

/// WriteTxnMarkers: markers written as a coordinator would (what a transaction coordinator on
/// another broker sends this partition leader, and kafka-transactions.sh `abort` sends for a
/// hanging transaction). As Kafka's, answered once each marker is on its partition's ISR
/// (acks=-1): the coordinator completes the transaction only then.
pub fn write_markers(
    broker: &Broker,
    ctx: &Ctx,
    req: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    let mut response = WriteTxnMarkersResponse::default();
    let refused = !ctx.allowed(
        broker,
        AclOperation::ClusterAction,
        ResourceType::Cluster,
        CLUSTER_NAME,
    );
    for m in req.markers {
        if refused {
            response.markers.push(
                WritableTxnMarkerResult::default()
                    .with_producer_id(m.producer_id)
                    .with_topics(
                        m.topics
                            .iter()
                            .map(|t| {
                                WritableTxnMarkerTopicResult::default()
                                    .with_name(t.name.clone())
                                    .with_partitions(
                                        t.partition_indexes
                                            .iter()
                                            .map(|i| {
                                                WritableTxnMarkerPartitionResult::default()
                                                    .with_partition_index(*i)
                                                    .with_error_code(
                                                        ResponseError::ClusterAuthorizationFailed
                                                            .code(),
                                                    )
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    ),
            );
            continue;
        }
        let result = if m.transaction_result {
            TxnResult::Commit
        } else {
            TxnResult::Abort
        };
        let mut out = WritableTxnMarkerResult::default().with_producer_id(m.producer_id);
        let mut flushes = Vec::new();
        let mut markers_written: Vec<(String, i32, strata_storage::Offset)> = Vec::new();
        for t in &m.topics {
            let mut topic = WritableTxnMarkerTopicResult::default().with_name(t.name.clone());
            for &index in &t.partition_indexes {
                let written = broker.txns.write_marker(
                    &t.name,
                    index,
                    m.producer_id.0,
                    m.producer_epoch,
                    result,
                    m.coordinator_epoch,
                );
                let code = match written {
                    Ok(w) => {
                        flushes.extend(w.flush);
                        markers_written.push((t.name.to_string(), index, w.offset));
                        0
                    }
                    Err(MarkerError::UnknownTopicOrPartition(..)) => {
                        super::absent_partition(broker.logs.topic(&t.name).as_deref(), index).code()
                    }
                    Err(MarkerError::Append(e)) => super::append_error_code(&e).code(),
                };
                topic.partitions.push(
                    WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(index)
                        .with_error_code(code),
                );
            }
            out.topics.push(topic);
        }
        if !ReplicaManager::complete_flushes_blocking(flushes) {
            for t in &mut out.topics {
                for p in &mut t.partitions {
                    if p.error_code == 0 {
                        p.error_code = ResponseError::KafkaStorageError.code();
                    }
                }
            }
        }
        for (topic, index, offset) in markers_written {
            let Err(e) = broker.txns.wait_replicated(&topic, index, offset.next(), 1) else {
                continue;
            };
            let code = match e {
                AcksError::NotLeader => ResponseError::NotLeaderOrFollower,
                AcksError::NotEnoughReplicasAfterAppend => {
                    ResponseError::NotEnoughReplicasAfterAppend
                }
                AcksError::TimedOut => ResponseError::RequestTimedOut,
            };
            let partition = out
                .topics
                .iter_mut()
                .filter(|t| t.name.0.as_str() == topic.as_str())
                .flat_map(|t| t.partitions.iter_mut())
                .find(|p| p.partition_index == index && p.error_code == 0);
            if let Some(p) = partition {
                p.error_code = code.code();
            }
        }
        response.markers.push(out);
    }
    response
}
