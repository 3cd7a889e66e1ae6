//! Fetch: offset index -> byte range -> `sendfile`, with long-poll.
//!
//! Each partition's bytes are located under its lock (by the replica manager, below the high
//! watermark) and sent after it is released, straight from the segment file (see `wire`). A fetch
//! that finds fewer than `min_bytes` waits for an append to one of its partitions (never a timer
//! loop) until `max_wait_ms`. The first partition that has data gets
//! at least one whole batch even when it exceeds the byte limits (KIP-74); later ones stop at
//! `partition_max_bytes` and the response stops at `max_bytes`. A slice may end inside a batch:
//! clients drop a trailing partial batch, as with Kafka.
//!
//! Fetch sessions (KIP-227) are not kept: every response has session id 0, which tells clients to
//! send full fetch requests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, ProducerId};
use kafka_protocol::ResponseError;
use strata_storage::log_manager::TopicStats;
use strata_storage::{LeaderEpoch, Offset, ReadError, Topic};

use super::{absent_partition, topic_name, topic_uuid, Ctx};
use crate::broker::Broker;
use crate::replica::throttle::LEADER_REPLICAS;
use crate::replica::{FetchError, Isolation, Read, Role};
use crate::security::acl::{AclOperation, ResourceType, CLUSTER_NAME};
use crate::security::quota::QuotaKind;
use crate::wire::Slot;
use crate::wire::{encode_response, placeholder_for, FileRange, Response, MAX_SPLICE_BYTES};

/// Starts a fetch; its response is filled when data is there or the wait is over.
pub fn start(broker: Arc<Broker>, ctx: Ctx, req: FetchRequest) -> Slot {
    Slot::Pending(tokio::spawn(
        async move { Some(run(&broker, &ctx, &req).await) },
    ))
}

async fn run(broker: &Broker, ctx: &Ctx, req: &FetchRequest) -> Response {
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    // Registered before the first look, so an append between a look and the wait is not missed.
    let names: Vec<(String, i32)> = req
        .topics
        .iter()
        .flat_map(|t| {
            let name = if ctx.version >= 13 {
                broker
                    .logs
                    .topic_by_id(t.topic_id.as_bytes())
                    .map(|t| t.name.clone())
                    .unwrap_or_default()
            } else {
                t.topic.0.to_string()
            };
            t.partitions
                .iter()
                .map(move |p| (name.clone(), p.partition))
        })
        .collect();
    let waiter = broker
        .replicas
        .waiter(names.iter().map(|(t, p)| (t.as_str(), *p)));
    // A follower's fetch (a replica id, from the request's replica state from v15) needs
    // CLUSTER_ACTION on the cluster, and is not a client's for quotas; a consumer's needs READ
    // on each topic, decided once for the whole wait (by name; an unknown id stays
    // UNKNOWN_TOPIC_ID).
    let from_follower = from_follower(ctx, req);
    let follower_refused = from_follower
        && !ctx.allowed(
            broker,
            AclOperation::ClusterAction,
            ResourceType::Cluster,
            CLUSTER_NAME,
        );
    let refused: Vec<bool> = req
        .topics
        .iter()
        .map(|t| {
            let name = if ctx.version >= 13 {
                match broker.logs.topic_by_id(t.topic_id.as_bytes()) {
                    Some(topic) => topic.name.clone(),
                    None => return false,
                }
            } else {
                t.topic.0.to_string()
            };
            follower_refused
                || (!from_follower
                    && !ctx.allowed(broker, AclOperation::Read, ResourceType::Topic, &name))
        })
        .collect();
    // Counted in the fetch purgatory while it waits (metrics).
    let mut waiting = None;
    loop {
        let Built {
            mut response,
            mut ranges,
            bytes,
            errors,
            sent,
        } = build(broker, ctx, req, &refused);
        let done = bytes >= req.min_bytes.max(0) as u64 || errors || Instant::now() >= deadline;
        if done {
            // consumer_byte_rate (a follower's fetch is not a client's): over the quota, the
            // answer is empty with the throttle time, its bytes not counted, and the connection
            // muted for that time (Kafka's throttled fetch).
            if !from_follower {
                let throttle = ctx.throttle(broker, QuotaKind::Fetch, bytes as f64);
                if throttle > 0 && bytes > 0 {
                    ctx.record_usage(broker, QuotaKind::Fetch, -(bytes as f64));
                    response = FetchResponse::default();
                    ranges = Vec::new();
                } else {
                    count_sent(&sent, |s| &s.bytes_out);
                }
                if ctx.version >= 1 {
                    response.throttle_time_ms = throttle;
                }
            }
            if from_follower {
                count_sent(&sent, |s| &s.replication_bytes_out);
            }
            count_errors(&response);
            return match encode_response(
                ctx.api_key,
                ctx.version,
                ctx.correlation_id,
                &response,
                ranges,
            ) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "cannot encode fetch response");
                    Response::default()
                }
            };
        }
        if waiting.is_none() {
            waiting = crate::metrics::Waiting::Fetch.begin();
        }
        waiter.wait_until(deadline).await;
    }
}

/// A fetch response's contents, before it is encoded.
struct Built {
    response: FetchResponse,
    ranges: Vec<FileRange>,
    /// Record bytes in it.
    bytes: u64,
    /// Whether some partition has an error (the fetch answers at once).
    errors: bool,
    /// Record bytes by topic (for metrics).
    sent: Vec<(Arc<Topic>, u64)>,
}

fn count_sent(sent: &[(Arc<Topic>, u64)], counter: impl Fn(&TopicStats) -> &AtomicU64) {
    for (topic, bytes) in sent {
        counter(&topic.stats).fetch_add(*bytes, Ordering::Relaxed);
    }
}

fn count_errors(response: &FetchResponse) {
    if !crate::metrics::enabled() {
        return;
    }
    crate::metrics::request_error(ApiKey::Fetch, response.error_code);
    for t in &response.responses {
        for p in &t.partitions {
            crate::metrics::request_error(ApiKey::Fetch, p.error_code);
        }
    }
}

/// Whether the fetch is a follower's: it names a replica id (in the replica state from v15).
fn from_follower(ctx: &Ctx, req: &FetchRequest) -> bool {
    replica_id(ctx, req) >= 0
}

fn replica_id(ctx: &Ctx, req: &FetchRequest) -> i32 {
    if ctx.version >= 15 {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    }
}

/// Who serves a fetch of a partition here.
enum Serving {
    Leader,
    /// A follower, serving a consumer (KIP-392) up to its high watermark; the leader epoch it
    /// knows from the metadata.
    Follower(LeaderEpoch),
}

/// The leader serves consumers; from Fetch v11 (which carries the consumer's rack) a follower
/// does too, as Kafka's do.
fn consumer_serving(
    broker: &Broker,
    ctx: &Ctx,
    topic: &str,
    partition: i32,
) -> Result<Serving, ResponseError> {
    match broker.check_leader(topic, partition) {
        Ok(()) => Ok(Serving::Leader),
        Err(ResponseError::NotLeaderOrFollower) if ctx.version >= 11 => {
            match broker
                .replicas
                .states()
                .get(topic, partition)
                .map(|s| s.snapshot())
            {
                Some(Role::Follower { leader_epoch, .. }) => {
                    Ok(Serving::Follower(LeaderEpoch(leader_epoch)))
                }
                _ => Err(ResponseError::NotLeaderOrFollower),
            }
        }
        Err(e) => Err(e),
    }
}

/// With `replica.selector.class` = RackAwareReplicaSelector: the in-sync replica in the
/// consumer's rack (`rack_id`) to send it to, unless the leader is in that rack.
fn preferred_read_replica(
    broker: &Broker,
    req: &FetchRequest,
    topic: &str,
    partition: i32,
) -> Option<i32> {
    let quorum = broker.quorum()?;
    if !quorum.config().replication.rack_aware_selector || req.rack_id.is_empty() {
        return None;
    }
    let image = quorum.image();
    let state = image
        .topics
        .get(topic)?
        .partitions
        .get(partition as usize)?;
    let rack_of = |b: i32| {
        image
            .brokers
            .get(&b)
            .filter(|r| !r.fenced)
            .and_then(|r| r.registration.rack.clone())
    };
    let rack = req.rack_id.as_str();
    if rack_of(state.leader).as_deref() == Some(rack) {
        return None;
    }
    state
        .isr
        .iter()
        .copied()
        .find(|r| *r != state.leader && rack_of(*r).as_deref() == Some(rack))
}

fn empty_partition(index: i32, error: ResponseError) -> PartitionData {
    PartitionData::default()
        .with_partition_index(index)
        .with_error_code(error.code())
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_preferred_read_replica(BrokerId(-1))
        .with_records(Some(bytes::Bytes::new()))
}

/// One pass over the requested partitions: the response, the file ranges it sends, the bytes
/// found, and whether any partition failed.
fn build(broker: &Broker, ctx: &Ctx, req: &FetchRequest, refused: &[bool]) -> Built {
    let mut response = FetchResponse::default();
    let mut sent = Vec::new();
    if req.session_id != 0 || req.session_epoch > 0 {
        response.error_code = ResponseError::FetchSessionIdNotFound.code();
        return Built {
            response,
            ranges: Vec::new(),
            bytes: 0,
            errors: true,
            sent,
        };
    }
    let use_ids = ctx.version >= 13;
    let mut ranges = Vec::new();
    let mut total: u64 = 0;
    let mut errors = false;
    let max_bytes = if req.max_bytes <= 0 {
        i32::MAX as u64
    } else {
        req.max_bytes as u64
    };
    for (index, fetch_topic) in req.topics.iter().enumerate() {
        let topic = if use_ids {
            broker.logs.topic_by_id(fetch_topic.topic_id.as_bytes())
        } else {
            broker.logs.topic(fetch_topic.topic.0.as_str())
        };
        let mut out = FetchableTopicResponse::default();
        if use_ids {
            out.topic_id = fetch_topic.topic_id;
        } else {
            out.topic = fetch_topic.topic.clone();
        }
        if let Some(t) = &topic {
            if use_ids {
                out.topic_id = topic_uuid(&t.id);
            } else {
                out.topic = topic_name(&t.name);
            }
        }
        if refused.get(index).copied().unwrap_or(false) {
            errors = true;
            out.partitions.extend(
                fetch_topic
                    .partitions
                    .iter()
                    .map(|p| empty_partition(p.partition, ResponseError::TopicAuthorizationFailed)),
            );
            response.responses.push(out);
            continue;
        }
        for p in &fetch_topic.partitions {
            let Some(partition) = topic.as_ref().and_then(|t| t.partition(p.partition)) else {
                errors = true;
                let code = match &topic {
                    None if use_ids => ResponseError::UnknownTopicId,
                    t => absent_partition(t.as_deref(), p.partition),
                };
                out.partitions.push(empty_partition(p.partition, code));
                continue;
            };
            let follower = from_follower(ctx, req);
            let serving = if follower {
                broker
                    .check_leader(&partition.topic, p.partition)
                    .map(|()| Serving::Leader)
            } else {
                consumer_serving(broker, ctx, &partition.topic, p.partition)
            };
            let known_epoch = match serving {
                Ok(Serving::Leader) => None,
                Ok(Serving::Follower(epoch)) => Some(epoch),
                Err(code) => {
                    errors = true;
                    out.partitions.push(empty_partition(p.partition, code));
                    continue;
                }
            };
            // KIP-392: a consumer in another replica's rack is sent there, with no records.
            if let (None, Some(replica)) = (
                known_epoch,
                (!follower && ctx.version >= 11)
                    .then(|| preferred_read_replica(broker, req, &partition.topic, p.partition))
                    .flatten(),
            ) {
                let log = partition.log();
                let mut data = empty_partition(p.partition, ResponseError::UnknownServerError);
                data.error_code = 0;
                data.high_watermark = log.high_watermark().get();
                data.last_stable_offset = log.last_stable_offset().get();
                data.log_start_offset = log.log_start_offset().get();
                data.preferred_read_replica = BrokerId(replica);
                out.partitions.push(data);
                continue;
            }
            let budget = max_bytes.saturating_sub(total);
            let partition_max = (p.partition_max_bytes.max(0) as u64)
                .min(budget)
                .min(MAX_SPLICE_BYTES as u64);
            let min_one_batch = total == 0;
            let read = broker.replicas.read(
                &partition,
                Offset(p.fetch_offset),
                partition_max,
                min_one_batch,
                if follower {
                    Isolation::Follower
                } else {
                    Isolation::from_level(req.isolation_level)
                },
                LeaderEpoch(p.current_leader_epoch),
                known_epoch,
            );
            // A follower's fetch offset is its log end: the leader's ISR and high watermark
            // follow from it (once its leader epoch was found current).
            if let (true, Ok(_), Some(replication)) = (follower, &read, broker.replication()) {
                let replica_epoch = if ctx.version >= 15 {
                    req.replica_state.replica_epoch
                } else {
                    -1
                };
                match replication.follower_fetched(
                    &partition,
                    replica_id(ctx, req),
                    replica_epoch,
                    Offset(p.fetch_offset),
                ) {
                    Ok(true) => broker.replicas.appended(&partition.topic, p.partition),
                    Ok(false) => {}
                    Err(_) => {
                        errors = true;
                        out.partitions.push(empty_partition(
                            p.partition,
                            ResponseError::NotLeaderOrFollower,
                        ));
                        continue;
                    }
                }
            }
            let mut data = empty_partition(p.partition, ResponseError::UnknownServerError);
            data.error_code = 0;
            match read {
                Ok(Read { info, aborted }) => {
                    data.high_watermark = info.high_watermark.get();
                    data.last_stable_offset = info.last_stable_offset.get();
                    data.log_start_offset = info.log_start_offset.get();
                    if req.isolation_level == 1 {
                        data.aborted_transactions = Some(
                            aborted
                                .iter()
                                .map(|a| {
                                    AbortedTransaction::default()
                                        .with_producer_id(ProducerId(a.producer_id.get()))
                                        .with_first_offset(a.first_offset.get())
                                })
                                .collect(),
                        );
                    }
                    // A follower's throttled partition over `leader.replication.throttled.rate`
                    // gets no records this time (reassignment's throttle).
                    let quota = &broker.replicas.throttles().leader;
                    let throttled = follower
                        && quota.active()
                        && broker.replicas.throttled(
                            LEADER_REPLICAS,
                            &partition.topic,
                            p.partition,
                            broker.config.broker_id,
                        );
                    let slice = info.slice.filter(|_| !(throttled && quota.exceeded()));
                    if let Some(slice) = slice {
                        let len = slice.len.min(MAX_SPLICE_BYTES as u64);
                        if throttled {
                            quota.record(len);
                        }
                        if len > 0 && (budget > 0 || min_one_batch) {
                            data.records = Some(placeholder_for(len as usize));
                            ranges.push(FileRange {
                                file: slice.file,
                                position: slice.position.get(),
                                len,
                            });
                            total += len;
                            if let Some(t) = &topic {
                                sent.push((t.clone(), len));
                            }
                        }
                    }
                }
                Err(FetchError::UnknownLeaderEpoch) => {
                    errors = true;
                    data.error_code = ResponseError::UnknownLeaderEpoch.code();
                }
                Err(FetchError::FencedLeaderEpoch) => {
                    errors = true;
                    data.error_code = ResponseError::FencedLeaderEpoch.code();
                }
                Err(FetchError::Read(ReadError::OffsetOutOfRange {
                    log_start_offset,
                    log_end_offset,
                    ..
                })) => {
                    errors = true;
                    data.error_code = ResponseError::OffsetOutOfRange.code();
                    data.high_watermark = log_end_offset.get();
                    data.last_stable_offset = log_end_offset.get();
                    data.log_start_offset = log_start_offset.get();
                }
                Err(FetchError::Read(ReadError::Storage(e))) => {
                    errors = true;
                    tracing::error!(topic = %partition.topic, partition = p.partition, error = %e, "read failed");
                    data.error_code = ResponseError::KafkaStorageError.code();
                }
                Err(FetchError::Read(ReadError::Offline { .. })) => {
                    // Logged once, when the directory went offline.
                    errors = true;
                    data.error_code = ResponseError::KafkaStorageError.code();
                }
            }
            out.partitions.push(data);
        }
        response.responses.push(out);
    }
    Built {
        response,
        ranges,
        bytes: total,
        errors,
        sent,
    }
}
