//! OffsetForLeaderEpoch: where a leader epoch ends in a partition's log, from its leader-epoch
//! cache: the largest epoch at or below the one asked for, and the start offset of the next one
//! (the log end offset for the latest). A follower truncates to it; a consumer checks with it
//! that the records it read were not truncated away.

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use kafka_protocol::ResponseError;

use super::Ctx;
use crate::broker::Broker;
use crate::security::acl::{AclOperation, ResourceType, CLUSTER_NAME};
use strata_storage::LeaderEpoch;

pub fn handle(
    broker: &Broker,
    ctx: &Ctx,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let mut response = OffsetForLeaderEpochResponse::default();
    for t in req.topics {
        let topic = broker.logs.topic(t.topic.0.as_str());
        let mut out = OffsetForLeaderTopicResult::default().with_topic(t.topic.clone());
        // A consumer needs DESCRIBE on the topic; a follower (replica id >= 0) CLUSTER_ACTION.
        let refused = if req.replica_id.0 >= 0 {
            !ctx.allowed(
                broker,
                AclOperation::ClusterAction,
                ResourceType::Cluster,
                CLUSTER_NAME,
            )
        } else {
            !ctx.allowed(
                broker,
                AclOperation::Describe,
                ResourceType::Topic,
                t.topic.0.as_str(),
            )
        };
        for p in t.partitions {
            let mut r = EpochEndOffset::default()
                .with_partition(p.partition)
                .with_leader_epoch(-1)
                .with_end_offset(-1);
            if refused {
                r.error_code = if req.replica_id.0 >= 0 {
                    ResponseError::ClusterAuthorizationFailed.code()
                } else {
                    ResponseError::TopicAuthorizationFailed.code()
                };
                out.partitions.push(r);
                continue;
            }
            match topic.as_ref().and_then(|t| t.partition(p.partition)) {
                None => {
                    r.error_code = super::absent_partition(topic.as_deref(), p.partition).code()
                }
                Some(partition) => {
                    let log = partition.log();
                    let current = log.leader_epoch();
                    if log.offline().is_some() {
                        r.error_code = ResponseError::KafkaStorageError.code();
                    } else if p.current_leader_epoch > current.get() {
                        r.error_code = ResponseError::UnknownLeaderEpoch.code();
                    } else if p.current_leader_epoch >= 0 && p.current_leader_epoch < current.get()
                    {
                        r.error_code = ResponseError::FencedLeaderEpoch.code();
                    } else {
                        let (epoch, end) = log.end_offset_for_epoch(LeaderEpoch(p.leader_epoch));
                        (r.leader_epoch, r.end_offset) = (epoch.get(), end.get());
                    }
                }
            }
            out.partitions.push(r);
        }
        response.topics.push(out);
    }
    response
}
