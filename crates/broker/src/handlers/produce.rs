//! Produce: validate each partition's batches, append them with one write per partition, and
//! answer by `acks`.
//!
//! The append happens here, in the connection's reader, so a connection's produce requests reach
//! the log in the order they were sent. A flush that `flush.messages` asks for runs afterwards,
//! outside the partition lock: on the blocking pool, or right here when its syncs are memory
//! operations (a PMEM tier); the response waits for it (group commit: one sync covers
//! everything appended before it). acks=0 gets no response; if any partition failed,
//! the connection is closed instead, as Kafka does, so the producer learns of the failure.

use std::sync::Arc;

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::ResponseError;
use strata_storage::log::partition::FlushJob;
use strata_storage::now_ms;

use super::{append_error_code, is_internal, str_bytes, Ctx};
use crate::broker::Broker;
use crate::server::{ConnectionError, Slot};

pub fn handle(
    broker: &Arc<Broker>,
    ctx: Ctx,
    req: ProduceRequest,
) -> Result<Slot, ConnectionError> {
    let acks = req.acks;
    let mut response = ProduceResponse::default();
    let mut flushes: Vec<(Arc<strata_storage::Partition>, FlushJob)> = Vec::new();
    let mut any_error = false;
    let mut appended = false;
    let now = now_ms();
    for topic_data in req.topic_data {
        let name = topic_data.name.0.as_str().to_string();
        let topic = broker.logs.topic(&name);
        let mut topic_response = TopicProduceResponse::default().with_name(topic_data.name.clone());
        for data in topic_data.partition_data {
            let mut r = PartitionProduceResponse::default()
                .with_index(data.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            let error = if !(acks == 0 || acks == 1 || acks == -1) {
                Some((
                    ResponseError::InvalidRequiredAcks,
                    format!("invalid acks {acks}"),
                ))
            } else if is_internal(&name) {
                // Only the broker writes its internal topics (committed offsets live there).
                Some((
                    ResponseError::InvalidTopicException,
                    format!("Cannot append to internal topic {name}"),
                ))
            } else {
                match topic.as_ref().and_then(|t| t.partition(data.index)) {
                    None => Some((
                        ResponseError::UnknownTopicOrPartition,
                        format!(
                            "This server does not host this topic-partition: {name}-{}",
                            data.index
                        ),
                    )),
                    Some(partition) => match &data.records {
                        None => Some((
                            ResponseError::CorruptMessage,
                            "records are null".to_string(),
                        )),
                        Some(records) => {
                            let mut log = partition.log();
                            match log.append(records, now) {
                                Ok(info) => {
                                    r.base_offset = info.base_offset;
                                    r.log_append_time_ms = info.log_append_time;
                                    r.log_start_offset = info.log_start_offset;
                                    appended |= !info.duplicate;
                                    if !info.needs_flush {
                                        None
                                    } else {
                                        match log.begin_flush() {
                                            Ok(job) => {
                                                drop(log);
                                                flushes.push((partition.clone(), job));
                                                None
                                            }
                                            // The append is not acknowledged: the flush that
                                            // `flush.messages` asks for could not even start.
                                            Err(e) => Some((
                                                ResponseError::KafkaStorageError,
                                                format!("flush failed: {e}"),
                                            )),
                                        }
                                    }
                                }
                                Err(e) => {
                                    let code = append_error_code(&e);
                                    if code == ResponseError::KafkaStorageError {
                                        tracing::error!(topic = %name, partition = data.index, error = %e, "append failed");
                                    } else {
                                        tracing::debug!(topic = %name, partition = data.index, error = %e, "append refused");
                                    }
                                    Some((code, e.to_string()))
                                }
                            }
                        }
                    },
                }
            };
            if let Some((code, message)) = error {
                any_error = true;
                r.error_code = code.code();
                if ctx.version >= 8 {
                    r.error_message = Some(str_bytes(message));
                }
            }
            topic_response.partition_responses.push(r);
        }
        response.responses.push(topic_response);
    }
    if appended {
        broker.appended.notify_waiters();
    }
    // Syncs in memory (a PMEM tier) cost less than a hop to a blocking thread: run them here.
    let synced_here = flushes.iter().all(|(_, job)| job.is_cheap());
    if synced_here && !run_flushes(std::mem::take(&mut flushes)) {
        mark_storage_error(&mut response);
        any_error = true;
    }
    if acks == 0 {
        if !flushes.is_empty() {
            tokio::task::spawn_blocking(move || run_flushes(flushes));
        }
        return Ok(if any_error {
            Slot::Close
        } else {
            Slot::Ready(None)
        });
    }
    if flushes.is_empty() {
        return Ok(Slot::Ready(Some(ctx.encode(&response)?)));
    }
    Ok(Slot::Pending(tokio::spawn(async move {
        let ok = tokio::task::spawn_blocking(move || run_flushes(flushes))
            .await
            .unwrap_or(false);
        if !ok {
            mark_storage_error(&mut response);
        }
        ctx.encode(&response).ok()
    })))
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

fn run_flushes(flushes: Vec<(Arc<strata_storage::Partition>, FlushJob)>) -> bool {
    let mut ok = true;
    for (partition, job) in flushes {
        // A sync that failed took its directory offline, and then no flush of that log can
        // complete (complete_flush refuses), even one whose own syncs succeeded.
        let done = job
            .run()
            .and_then(|()| partition.log().complete_flush(job.target_offset));
        if let Err(e) = done {
            tracing::debug!(topic = %partition.topic, partition = partition.index, error = %e, "flush failed");
            ok = false;
        }
    }
    ok
}
