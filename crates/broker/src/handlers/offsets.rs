//! OffsetCommit, OffsetFetch and OffsetDelete: committed offsets of groups, kept by the group
//! coordinator in `__consumer_offsets`.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;

use super::{str_bytes, topic_name, Ctx};
use crate::broker::Broker;
use crate::group::{CommitArgs, Committed};
use crate::security::acl::{AclOperation, ResourceType};

fn partition_exists(broker: &Broker, topic: &str, partition: i32) -> bool {
    broker
        .logs
        .topic(topic)
        .is_some_and(|t| t.has_partition(partition))
}

pub fn commit(broker: &Broker, ctx: &Ctx, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let mut args = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            args.push(CommitArgs {
                topic: t.name.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if ctx.version >= 6 {
                    p.committed_leader_epoch
                } else {
                    -1
                },
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            });
        }
    }
    let generation = if ctx.version >= 1 {
        req.generation_id_or_member_epoch
    } else {
        -1
    };
    let n = args.len();
    // READ on the group refuses the whole commit; a topic without READ is refused alone.
    let errors = if !ctx.allowed(
        broker,
        AclOperation::Read,
        ResourceType::Group,
        &req.group_id,
    ) {
        vec![Some(ResponseError::GroupAuthorizationFailed); n]
    } else {
        commit_readable(broker, ctx, args, |allowed| {
            if allowed.is_empty() {
                return Ok(Vec::new());
            }
            broker.groups.commit(
                &req.group_id,
                generation,
                &req.member_id,
                req.group_instance_id.as_deref(),
                allowed,
                &|t, p| partition_exists(broker, t, p),
            )
        })
        .unwrap_or_else(|e| vec![Some(e); n])
    };
    // On a node of a cluster, a commit is acknowledged once the offsets partition's ISR has it.
    let errors = match errors.iter().any(Option::is_none) {
        true => match broker.wait_group_write_replicated(&req.group_id) {
            Ok(()) => errors,
            Err(e) => errors.into_iter().map(|r| r.or(Some(e))).collect(),
        },
        false => errors,
    };
    let mut errors = errors.into_iter();
    let mut response = OffsetCommitResponse::default();
    for t in req.topics {
        let partitions = t
            .partitions
            .iter()
            .map(|p| {
                OffsetCommitResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(errors.next().flatten().map(|e| e.code()).unwrap_or(0))
            })
            .collect();
        response.topics.push(
            OffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    response
}

/// Commits (through `commit`) the offsets of the topics the client may READ; each refused
/// one answers TOPIC_AUTHORIZATION_FAILED in its place, the rest what `commit` answered, in
/// the order requested.
pub(super) fn commit_readable(
    broker: &Broker,
    ctx: &Ctx,
    offsets: Vec<CommitArgs>,
    commit: impl FnOnce(Vec<CommitArgs>) -> Result<Vec<Option<ResponseError>>, ResponseError>,
) -> Result<Vec<Option<ResponseError>>, ResponseError> {
    let refused: Vec<bool> = offsets
        .iter()
        .map(|o| !ctx.allowed(broker, AclOperation::Read, ResourceType::Topic, &o.topic))
        .collect();
    let allowed = offsets
        .into_iter()
        .zip(&refused)
        .filter(|(_, r)| !**r)
        .map(|(o, _)| o)
        .collect();
    let mut committed = commit(allowed)?.into_iter();
    Ok(refused
        .iter()
        .map(|r| {
            if *r {
                Some(ResponseError::TopicAuthorizationFailed)
            } else {
                committed.next().flatten()
            }
        })
        .collect())
}

type Fetched = Vec<((String, i32), Result<Option<Committed>, ResponseError>)>;
type ByTopic = Vec<(String, Vec<(i32, Result<Option<Committed>, ResponseError>)>)>;

/// A group's committed offsets; with `require_stable`, those a transaction may still change
/// come back as UNSTABLE_OFFSET_COMMIT errors.
///
/// Topics the client may not describe: named, their partitions get TOPIC_AUTHORIZATION_FAILED;
/// in an all-topics fetch, they are left out.
fn fetch_group(
    broker: &Broker,
    ctx: &Ctx,
    group: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> Fetched {
    let describable = |t: &str| ctx.allowed(broker, AclOperation::Describe, ResourceType::Topic, t);
    let wanted: Option<Vec<(String, i32)>> = topics.map(|ts| {
        ts.into_iter()
            .flat_map(|(t, ps)| ps.into_iter().map(move |p| (t.clone(), p)))
            .collect()
    });
    let named = wanted.is_some();
    let rows = broker.groups.fetch(group, wanted.as_deref());
    let (rows, refused): (Vec<_>, Vec<_>) =
        rows.into_iter().partition(|((t, _), _)| describable(t));
    let refused = refused
        .into_iter()
        .filter(|_| named)
        .map(|(k, _)| (k, Err(ResponseError::TopicAuthorizationFailed)));
    let rows = fetch_stable(broker, group, rows, require_stable);
    rows.into_iter().chain(refused).collect()
}

fn fetch_stable(
    broker: &Broker,
    group: &str,
    rows: Vec<((String, i32), Option<Committed>)>,
    require_stable: bool,
) -> Fetched {
    if !require_stable {
        return rows.into_iter().map(|(k, c)| (k, Ok(c))).collect();
    }
    let keys: Vec<(String, i32)> = rows.iter().map(|(k, _)| k.clone()).collect();
    let unstable = broker.groups.unstable(group, &keys);
    rows.into_iter()
        .zip(unstable)
        .map(|((k, c), unstable)| {
            if unstable {
                (k, Err(ResponseError::UnstableOffsetCommit))
            } else {
                (k, Ok(c))
            }
        })
        .collect()
}

/// Groups (topic, partition) rows by topic, keeping first-seen order.
fn by_topic(rows: Fetched) -> ByTopic {
    let mut out: ByTopic = Vec::new();
    for ((t, p), c) in rows {
        match out.iter_mut().find(|(name, _)| *name == t) {
            Some((_, ps)) => ps.push((p, c)),
            None => out.push((t, vec![(p, c)])),
        }
    }
    out
}

pub fn fetch(broker: &Broker, ctx: &Ctx, req: OffsetFetchRequest) -> OffsetFetchResponse {
    let mut response = OffsetFetchResponse::default();
    let values = |c: &Result<Option<Committed>, ResponseError>| match c {
        Ok(Some(c)) => (c.offset, c.leader_epoch, c.metadata.clone(), 0),
        Ok(None) => (-1, -1, String::new(), 0),
        Err(e) => (-1, -1, String::new(), e.code()),
    };
    let group_refused =
        |g: &str| !ctx.allowed(broker, AclOperation::Describe, ResourceType::Group, g);
    if ctx.version >= 8 {
        for g in req.groups {
            if group_refused(&g.group_id) {
                response.groups.push(
                    OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_error_code(ResponseError::GroupAuthorizationFailed.code()),
                );
                continue;
            }
            if !broker.groups.owns(&g.group_id) {
                response.groups.push(
                    OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_error_code(ResponseError::NotCoordinator.code()),
                );
                continue;
            }
            let topics = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name.to_string(), t.partition_indexes))
                    .collect()
            });
            let rows = fetch_group(broker, ctx, &g.group_id, topics, req.require_stable);
            let topics = by_topic(rows)
                .into_iter()
                .map(|(t, ps)| {
                    OffsetFetchResponseTopics::default()
                        .with_name(topic_name(&t))
                        .with_partitions(
                            ps.iter()
                                .map(|(p, c)| {
                                    let (offset, epoch, metadata, error) = values(c);
                                    OffsetFetchResponsePartitions::default()
                                        .with_partition_index(*p)
                                        .with_error_code(error)
                                        .with_committed_offset(offset)
                                        .with_committed_leader_epoch(epoch)
                                        .with_metadata(Some(str_bytes(metadata)))
                                })
                                .collect(),
                        )
                })
                .collect();
            response.groups.push(
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_topics(topics),
            );
        }
        return response;
    }
    if group_refused(&req.group_id) {
        response.error_code = ResponseError::GroupAuthorizationFailed.code();
        return response;
    }
    if !broker.groups.owns(&req.group_id) && ctx.version >= 2 {
        response.error_code = ResponseError::NotCoordinator.code();
        return response;
    }
    let topics = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes))
            .collect()
    });
    let rows = fetch_group(broker, ctx, &req.group_id, topics, req.require_stable);
    response.topics = by_topic(rows)
        .into_iter()
        .map(|(t, ps)| {
            OffsetFetchResponseTopic::default()
                .with_name(topic_name(&t))
                .with_partitions(
                    ps.iter()
                        .map(|(p, c)| {
                            let (offset, epoch, metadata, error) = values(c);
                            let mut r = OffsetFetchResponsePartition::default()
                                .with_partition_index(*p)
                                .with_error_code(error)
                                .with_committed_offset(offset)
                                .with_metadata(Some(str_bytes(metadata)));
                            if ctx.version >= 5 {
                                r.committed_leader_epoch = epoch;
                            }
                            r
                        })
                        .collect(),
                )
        })
        .collect();
    response
}

pub fn delete(broker: &Broker, ctx: &Ctx, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let mut response = OffsetDeleteResponse::default();
    if !ctx.allowed(
        broker,
        AclOperation::Delete,
        ResourceType::Group,
        &req.group_id,
    ) {
        response.error_code = ResponseError::GroupAuthorizationFailed.code();
        return response;
    }
    let topic_refused = |t: &str| !ctx.allowed(broker, AclOperation::Read, ResourceType::Topic, t);
    // Partitions of refused topics are not deleted (they answer TOPIC_AUTHORIZATION_FAILED).
    let partitions: Vec<(String, i32)> = req
        .topics
        .iter()
        .filter(|t| !topic_refused(&t.name))
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.to_string(), p.partition_index))
        })
        .collect();
    match broker.groups.delete_offsets(&req.group_id, &partitions) {
        Err(e) => response.error_code = e.code(),
        Ok(errors) => {
            let mut errors = errors.into_iter();
            for t in req.topics {
                let refused = topic_refused(&t.name);
                let rows = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let e = if refused {
                            Some(ResponseError::TopicAuthorizationFailed)
                        } else {
                            errors.next().flatten()
                        };
                        let e = if e.is_none()
                            && !partition_exists(broker, &t.name, p.partition_index)
                        {
                            Some(ResponseError::UnknownTopicOrPartition)
                        } else {
                            e
                        };
                        OffsetDeleteResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(e.map(|e| e.code()).unwrap_or(0))
                    })
                    .collect();
                response.topics.push(
                    OffsetDeleteResponseTopic::default()
                        .with_name(t.name)
                        .with_partitions(rows),
                );
            }
        }
    }
    response
}
