//! A transactional producer's APIs: AddPartitionsToTxn (also the batched v4 form),
//! AddOffsetsToTxn, EndTxn and TxnOffsetCommit. The coordinator's work is in `crate::txn`.

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;

use super::offsets::commit_readable;
use super::{is_internal, Ctx};
use crate::broker::Broker;
use crate::group::{CommitArgs, TxnCommitArgs, OFFSETS_TOPIC};
use crate::security::acl::{AclOperation, ResourceType};
use crate::txn::{TxnResult, VerifyError};

/// PRODUCER_FENCED exists from these versions on (KIP-588); older clients hear
/// INVALID_PRODUCER_EPOCH, as Kafka answers them.
pub fn fenced_for(version: i16, first_with_fenced: i16, e: ResponseError) -> ResponseError {
    if e == ResponseError::ProducerFenced && version < first_with_fenced {
        ResponseError::InvalidProducerEpoch
    } else {
        e
    }
}

fn code(r: Result<(), ResponseError>) -> i16 {
    r.err().map_or(0, |e| e.code())
}

/// One transaction's partitions: every partition gets the transaction's answer, unless some
/// are unknown (those get UNKNOWN_TOPIC_OR_PARTITION, the rest OPERATION_NOT_ATTEMPTED, and
/// nothing is added).
#[allow(clippy::too_many_arguments)]
fn add_one(
    broker: &Broker,
    ctx: &Ctx,
    version: i16,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    verify_only: bool,
    topics: &[(TopicName, Vec<i32>)],
) -> Vec<AddPartitionsToTxnTopicResult> {
    let known = |t: &str, p: i32| {
        broker
            .logs
            .topic(t)
            .is_some_and(|topic| topic.has_partition(p))
    };
    // WRITE on the transactional id, then on each topic: refused topics get
    // TOPIC_AUTHORIZATION_FAILED and the others OPERATION_NOT_ATTEMPTED, as Kafka answers.
    let txn_refused = !ctx.allowed(
        broker,
        AclOperation::Write,
        ResourceType::TransactionalId,
        transactional_id,
    );
    let refused =
        |t: &str| txn_refused || !ctx.allowed(broker, AclOperation::Write, ResourceType::Topic, t);
    let any_refused = topics.iter().any(|(t, _)| refused(t));
    let unknown = topics
        .iter()
        .any(|(t, ps)| ps.iter().any(|p| !known(t, *p)));
    let answer = if unknown || any_refused {
        Err(ResponseError::OperationNotAttempted)
    } else {
        let partitions: Vec<(String, i32)> = topics
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |p| (t.to_string(), *p)))
            .collect();
        broker
            .txns
            .add_partitions(
                transactional_id,
                producer_id,
                producer_epoch,
                &partitions,
                verify_only,
            )
            .map_err(|e| fenced_for(version, 2, e))
    };
    topics
        .iter()
        .map(|(t, ps)| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.clone())
                .with_results_by_partition(
                    ps.iter()
                        .map(|p| {
                            let error = if txn_refused {
                                ResponseError::TransactionalIdAuthorizationFailed.code()
                            } else if refused(t) {
                                ResponseError::TopicAuthorizationFailed.code()
                            } else if unknown && !known(t, *p) {
                                ResponseError::UnknownTopicOrPartition.code()
                            } else {
                                code(answer)
                            };
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(*p)
                                .with_partition_error_code(error)
                        })
                        .collect(),
                )
        })
        .collect()
}

pub fn add_partitions(
    broker: &Broker,
    ctx: &Ctx,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let mut response = AddPartitionsToTxnResponse::default();
    let topics = |ts: Vec<add_partitions_to_txn_request::AddPartitionsToTxnTopic>| {
        ts.into_iter()
            .map(|t| (t.name, t.partitions))
            .collect::<Vec<_>>()
    };
    if ctx.version <= 3 {
        response.results_by_topic_v3_and_below = add_one(
            broker,
            ctx,
            ctx.version,
            &req.v3_and_below_transactional_id,
            req.v3_and_below_producer_id.0,
            req.v3_and_below_producer_epoch,
            false,
            &topics(req.v3_and_below_topics),
        );
        return response;
    }
    for t in req.transactions {
        let results = add_one(
            broker,
            ctx,
            ctx.version,
            &t.transactional_id,
            t.producer_id.0,
            t.producer_epoch,
            t.verify_only,
            &topics(t.topics),
        );
        response.results_by_transaction.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id)
                .with_topic_results(results),
        );
    }
    response
}

pub fn add_offsets(
    broker: &Broker,
    ctx: &Ctx,
    req: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let mut response = AddOffsetsToTxnResponse::default();
    if !ctx.allowed(
        broker,
        AclOperation::Write,
        ResourceType::TransactionalId,
        &req.transactional_id,
    ) {
        response.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
        return response;
    }
    if !ctx.allowed(
        broker,
        AclOperation::Read,
        ResourceType::Group,
        &req.group_id,
    ) {
        response.error_code = ResponseError::GroupAuthorizationFailed.code();
        return response;
    }
    if req.group_id.is_empty() {
        response.error_code = ResponseError::InvalidGroupId.code();
        return response;
    }
    let partition = (
        OFFSETS_TOPIC.to_string(),
        broker.groups.partition_for(&req.group_id),
    );
    let added = broker.txns.add_partitions(
        &req.transactional_id,
        req.producer_id.0,
        req.producer_epoch,
        &[partition],
        false,
    );
    response.error_code = code(added.map_err(|e| fenced_for(ctx.version, 2, e)));
    response
}

pub fn end_txn(broker: &Broker, ctx: &Ctx, req: EndTxnRequest) -> EndTxnResponse {
    if !ctx.allowed(
        broker,
        AclOperation::Write,
        ResourceType::TransactionalId,
        &req.transactional_id,
    ) {
        return EndTxnResponse::default()
            .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    let result = if req.committed {
        TxnResult::Commit
    } else {
        TxnResult::Abort
    };
    let ended = broker.txns.end_txn(
        &req.transactional_id,
        req.producer_id.0,
        req.producer_epoch,
        result,
    );
    EndTxnResponse::default()
        .with_error_code(code(ended.map_err(|e| fenced_for(ctx.version, 2, e))))
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

pub fn txn_offset_commit(
    broker: &Broker,
    ctx: &Ctx,
    req: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let offsets: Vec<CommitArgs> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| CommitArgs {
                topic: t.name.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            })
        })
        .collect();
    let args = TxnCommitArgs {
        group_id: req.group_id.to_string(),
        producer_id: req.producer_id.0,
        producer_epoch: req.producer_epoch,
        generation: req.generation_id,
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.as_ref().map(|i| i.to_string()),
        offsets,
    };
    let exists = |t: &str, p: i32| {
        !is_internal(t)
            && broker
                .logs
                .topic(t)
                .is_some_and(|topic| topic.has_partition(p))
    };
    let in_txn = |offsets_partition: i32| {
        broker.txns.check_offsets_partition(
            &req.transactional_id,
            req.producer_id.0,
            req.producer_epoch,
            offsets_partition,
        )
    };
    let n: usize = req.topics.iter().map(|t| t.partitions.len()).sum();
    // WRITE on the transactional id and READ on the group refuse everything; a topic without
    // READ is refused alone (TOPIC_AUTHORIZATION_FAILED) and the rest commit.
    let whole_refusal = if !ctx.allowed(
        broker,
        AclOperation::Write,
        ResourceType::TransactionalId,
        &req.transactional_id,
    ) {
        Some(ResponseError::TransactionalIdAuthorizationFailed)
    } else if !ctx.allowed(
        broker,
        AclOperation::Read,
        ResourceType::Group,
        &req.group_id,
    ) {
        Some(ResponseError::GroupAuthorizationFailed)
    } else {
        None
    };
    // A producer coordinated by another broker: its transaction is verified to hold the
    // group's offsets partition first (the check under the group's lock then sees the guard).
    let whole_refusal = whole_refusal.or_else(|| {
        broker
            .txns
            .verify_ahead(
                Some(&req.transactional_id),
                req.producer_id.0,
                req.producer_epoch,
                OFFSETS_TOPIC,
                broker.groups.partition_for(&req.group_id),
            )
            .err()
            .map(|e| match e {
                VerifyError::InvalidTxnState => ResponseError::InvalidTxnState,
                VerifyError::Fenced => fenced_for(ctx.version, 3, ResponseError::ProducerFenced),
                VerifyError::Unavailable => ResponseError::CoordinatorNotAvailable,
            })
    });
    let mut errors = match whole_refusal {
        Some(e) => vec![Some(e); n].into_iter(),
        None => {
            let mut args = args;
            let offsets = std::mem::take(&mut args.offsets);
            commit_readable(broker, ctx, offsets, |allowed| {
                args.offsets = allowed;
                broker.groups.txn_commit(args, &exists, &in_txn)
            })
            .unwrap_or_else(|e| vec![Some(fenced_for(ctx.version, 3, e)); n])
            .into_iter()
        }
    };
    let mut response = TxnOffsetCommitResponse::default();
    for t in req.topics {
        response.topics.push(
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(errors.next().flatten().map_or(0, |e| e.code()))
                        })
                        .collect(),
                ),
        );
    }
    response
}
