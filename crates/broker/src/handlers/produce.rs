//! Produce: each partition's batches go to the replica manager, and the response is answered by
//! `acks`.
//!
//! The appends happen here, in the connection's reader, so a connection's produce requests reach
//! the log in the order they were sent. A flush that `flush.messages` asks for completes before
//! the response goes (see `replica`). acks=0 gets no response; if any partition failed, the
//! connection is closed instead, as Kafka does, so the producer learns of the failure.

use std::sync::Arc;

use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::ResponseError;
use strata_storage::now_ms;

use super::{append_error_code, is_internal, str_bytes, Ctx};
use crate::broker::Broker;
use crate::replica::{AcksError, ProduceError, ReplicaManager, ReplicaState};
use crate::security::acl::{AclOperation, ResourceType};
use crate::security::quota::QuotaKind;
use crate::txn::VerifyError;
use crate::wire::{ConnectionError, Slot};

pub fn handle(
    broker: &Arc<Broker>,
    ctx: Ctx,
    req: ProduceRequest,
) -> Result<Slot, ConnectionError> {
    let acks = req.acks;
    let timeout_ms = req.timeout_ms;
    let mut response = ProduceResponse::default();
    // acks=all: the partitions whose high watermark must reach their appends first.
    let mut waits: Vec<AcksWait> = Vec::new();
    let mut flushes = Vec::new();
    let mut any_error = false;
    let now = now_ms();
    // WRITE on the transactional id, then on each topic (Kafka's order and codes).
    let txn_refused = req.transactional_id.as_ref().is_some_and(|id| {
        !ctx.allowed(
            broker,
            AclOperation::Write,
            ResourceType::TransactionalId,
            id,
        )
    });
    for topic_data in req.topic_data {
        let name = topic_data.name.0.as_str().to_string();
        let refused = if txn_refused {
            Some(ResponseError::TransactionalIdAuthorizationFailed)
        } else if !ctx.allowed(broker, AclOperation::Write, ResourceType::Topic, &name) {
            Some(ResponseError::TopicAuthorizationFailed)
        } else {
            None
        };
        let mut topic_response = TopicProduceResponse::default().with_name(topic_data.name.clone());
        let mut appended_any = Vec::new();
        for data in topic_data.partition_data {
            let mut r = PartitionProduceResponse::default()
                .with_index(data.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            // acks=all: (ISR size, min.insync.replicas), looked up once.
            let sync = (acks == -1)
                .then(|| in_sync(broker, &name, data.index))
                .flatten();
            let result = if let Some(code) = refused {
                Err((code, code.to_string()))
            } else if !(acks == 0 || acks == 1 || acks == -1) {
                Err((
                    ResponseError::InvalidRequiredAcks,
                    format!("invalid acks {acks}"),
                ))
            } else if is_internal(&name) {
                // Only the broker writes its internal topics (committed offsets live there).
                Err((
                    ResponseError::InvalidTopicException,
                    format!("Cannot append to internal topic {name}"),
                ))
            } else if let Err(code) = broker.check_leader(&name, data.index) {
                Err((
                    code,
                    format!("this broker does not lead {name}-{}", data.index),
                ))
            } else if let Some((isr, min_isr)) = sync.filter(|(isr, min_isr)| isr < min_isr) {
                Err((
                    ResponseError::NotEnoughReplicas,
                    format!("The size of the current ISR {isr} is insufficient to satisfy the min.isr requirement of {min_isr} for partition {name}-{}", data.index),
                ))
            } else if let Err(e) = verify_txn(
                broker,
                req.transactional_id.as_ref().map(|id| id.0.as_str()),
                &name,
                data.index,
                data.records.as_deref(),
            ) {
                Err(e)
            } else {
                broker
                    .replicas
                    .append(&name, data.index, data.records.as_deref(), now)
                    .map_err(|e| {
                        let code = produce_error_code(&e, &name, data.index);
                        match record_errors(&e) {
                            Some((message, errors)) => {
                                if ctx.version >= 8 {
                                    r.record_errors = errors;
                                }
                                (code, message)
                            }
                            None => (code, e.to_string()),
                        }
                    })
            };
            match result {
                Ok(appended) => {
                    r.base_offset = appended.info.base_offset.get();
                    r.log_append_time_ms = appended.info.log_append_time;
                    r.log_start_offset = appended.info.log_start_offset.get();
                    if !appended.info.duplicate {
                        appended_any.push(data.index);
                    }
                    if let Some((_, min_isr)) = sync {
                        let required = strata_storage::Offset(appended.info.last_offset.get() + 1);
                        waits.extend(AcksWait::needed(
                            broker,
                            &name,
                            data.index,
                            (
                                response.responses.len(),
                                topic_response.partition_responses.len(),
                            ),
                            required,
                            min_isr,
                        ));
                    }
                    flushes.extend(appended.flush);
                }
                Err((code, message)) => {
                    any_error = true;
                    r.error_code = code.code();
                    if ctx.version >= 8 {
                        r.error_message = Some(str_bytes(message));
                    }
                }
            }
            topic_response.partition_responses.push(r);
        }
        for partition in appended_any {
            broker.replicas.appended(&name, partition);
        }
        response.responses.push(topic_response);
    }
    // producer_byte_rate: the request's bytes; a throttled producer is answered at once with
    // the throttle time and its connection muted for it (KIP-219).
    let throttle = ctx.throttle(broker, QuotaKind::Produce, ctx.request_bytes as f64);
    if ctx.version >= 1 {
        response.throttle_time_ms = throttle;
    }
    // Syncs in memory (a PMEM tier) cost less than a hop to another task: run them here.
    let flushes = match ReplicaManager::complete_cheap_flushes(flushes) {
        Ok(true) => Vec::new(),
        Ok(false) => {
            mark_storage_error(&mut response);
            any_error = true;
            Vec::new()
        }
        Err(flushes) => flushes,
    };
    if acks == 0 {
        ReplicaManager::complete_flushes_detached(flushes);
        return Ok(if any_error {
            Slot::Close
        } else {
            Slot::Ready(None)
        });
    }
    if flushes.is_empty() && waits.is_empty() {
        return Ok(Slot::Ready(Some(ctx.encode(&response)?)));
    }
    let waiting = if waits.is_empty() {
        None
    } else {
        crate::metrics::Waiting::Produce.begin()
    };
    Ok(Slot::Pending(tokio::spawn(async move {
        let _waiting = waiting;
        if !ReplicaManager::complete_flushes(flushes).await {
            mark_storage_error(&mut response);
        }
        let deadline = tokio::time::Instant::now()
            + std::time::Duration::from_millis(timeout_ms.max(0) as u64);
        for wait in waits {
            wait.complete(&mut response, deadline).await;
        }
        ctx.encode_later(&response)
    })))
}

/// (ISR size, `min.insync.replicas`) of a partition this broker leads.
fn in_sync(broker: &Broker, topic: &str, partition: i32) -> Option<(usize, usize)> {
    let overrides = broker.logs.topic(topic)?.overrides();
    let min_isr = broker
        .effective_config()
        .topic_value(&overrides, "min.insync.replicas")
        .parse::<usize>()
        .unwrap_or(1);
    let isr = broker
        .replicas
        .states()
        .get(topic, partition)
        .map_or(1, |s| s.isr_size());
    Some((isr, min_isr))
}

/// An acks=all append waiting for its partition's ISR (Kafka's delayed produce).
struct AcksWait {
    state: Arc<ReplicaState>,
    partition: Arc<strata_storage::Partition>,
    required: strata_storage::Offset,
    min_isr: usize,
    /// Where its answer is in the response: (topic, partition) indexes.
    at: (usize, usize),
}

impl AcksWait {
    /// A wait for an append to `partition` that ended before `required`, unless its high
    /// watermark is already there (a leader alone in its ISR).
    fn needed(
        broker: &Broker,
        topic: &str,
        partition: i32,
        at: (usize, usize),
        required: strata_storage::Offset,
        min_isr: usize,
    ) -> Option<AcksWait> {
        let state = broker.replicas.states().get(topic, partition)?;
        let p = broker.logs.topic(topic)?.partition(partition)?;
        if p.log().high_watermark() >= required && state.isr_size() >= min_isr {
            return None;
        }
        Some(AcksWait {
            state,
            partition: p,
            required,
            min_isr,
            at,
        })
    }

    async fn complete(self, response: &mut ProduceResponse, deadline: tokio::time::Instant) {
        let Some(r) = response
            .responses
            .get_mut(self.at.0)
            .and_then(|t| t.partition_responses.get_mut(self.at.1))
        else {
            return;
        };
        if r.error_code != 0 {
            return;
        }
        let outcome = self
            .state
            .wait_for_hw(&self.partition, self.required, self.min_isr, deadline)
            .await;
        let code = match outcome {
            Ok(()) => return,
            Err(AcksError::NotLeader) => ResponseError::NotLeaderOrFollower,
            Err(AcksError::NotEnoughReplicasAfterAppend) => {
                ResponseError::NotEnoughReplicasAfterAppend
            }
            Err(AcksError::TimedOut) => ResponseError::RequestTimedOut,
        };
        r.error_code = code.code();
    }
}

/// A transactional batch of a producer whose coordinator is another broker is verified with
/// that coordinator before its transaction's first write here (KIP-890, as Kafka's brokers do;
/// see `TxnCoordinator::verify_ahead`). A coordinator that cannot answer now is
/// NOT_ENOUGH_REPLICAS, which every client retries.
fn verify_txn(
    broker: &Broker,
    transactional_id: Option<&str>,
    topic: &str,
    partition: i32,
    records: Option<&[u8]>,
) -> Result<(), (ResponseError, String)> {
    // Only a node of a cluster asks other brokers, and only for a transactional producer's
    // request; without its transactional id the append's own check refuses the batch.
    if transactional_id.is_none() || broker.quorum().is_none() {
        return Ok(());
    }
    let Some(h) = records.and_then(|r| strata_storage::batch::BatchHeader::parse(r).ok()) else {
        return Ok(());
    };
    if !h.is_transactional() || h.is_control() {
        return Ok(());
    }
    broker
        .txns
        .verify_ahead(
            transactional_id,
            h.producer_id,
            h.producer_epoch,
            topic,
            partition,
        )
        .map_err(|e| match e {
            VerifyError::InvalidTxnState => (
                ResponseError::InvalidTxnState,
                format!(
                    "producer {} has no transaction open on {topic}-{partition}",
                    h.producer_id
                ),
            ),
            VerifyError::Fenced => (
                ResponseError::InvalidProducerEpoch,
                format!(
                    "producer {} epoch {} is not the current one",
                    h.producer_id, h.producer_epoch
                ),
            ),
            VerifyError::Unavailable => (
                ResponseError::NotEnoughReplicas,
                "the transaction coordinator could not verify the transaction now".to_string(),
            ),
        })
}

fn produce_error_code(e: &ProduceError, topic: &str, partition: i32) -> ResponseError {
    match e {
        ProduceError::UnknownTopicOrPartition { .. } => ResponseError::UnknownTopicOrPartition,
        ProduceError::NullRecords => ResponseError::CorruptMessage,
        ProduceError::InvalidTxnState { .. } => ResponseError::InvalidTxnState,
        ProduceError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        ProduceError::FlushNotStarted(_) => ResponseError::KafkaStorageError,
        ProduceError::Append(e) => {
            // An offline directory was logged once when it failed; a full one is worth a
            // warning for every refusal.
            if let strata_storage::AppendError::Storage(_) = e {
                tracing::warn!(topic, partition, error = %e, "append failed");
            } else {
                tracing::debug!(topic, partition, error = %e, "append refused");
            }
            append_error_code(e)
        }
    }
}

/// The records a refused batch was refused for, as Kafka names them (records without a key on
/// a compacted topic): the response's message and its `record_errors`.
fn record_errors(e: &ProduceError) -> Option<(String, Vec<BatchIndexAndErrorMessage>)> {
    let ProduceError::Append(e @ strata_storage::AppendError::KeylessRecord { batch_indexes, .. }) =
        e
    else {
        return None;
    };
    let each = e.to_string();
    let shown: Vec<String> = batch_indexes
        .iter()
        .take(3)
        .map(|i| format!("RecordError(batchIndex={i}, message='{each}')"))
        .collect();
    let message = format!(
        "One or more records have been rejected due to {} record errors in total, and only \
         showing the first three errors at most: [{}]",
        batch_indexes.len(),
        shown.join(", ")
    );
    let errors = batch_indexes
        .iter()
        .map(|i| {
            BatchIndexAndErrorMessage::default()
                .with_batch_index(*i)
                .with_batch_index_error_message(Some(str_bytes(each.clone())))
        })
        .collect();
    Some((message, errors))
}

/// A failed sync fails every partition that had no error of its own: what was appended is not
/// known to be durable.
fn mark_storage_error(response: &mut ProduceResponse) {
    for t in &mut response.responses {
        for p in &mut t.partition_responses {
            if p.error_code == 0 {
                p.error_code = ResponseError::KafkaStorageError.code();
            }
        }
    }
}
