//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3), earliest local (-4), latest
//! tiered (-5) and the first offset at or after a timestamp. Latest is the last stable offset
//! for read_committed.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError;

use super::Ctx;
use crate::broker::Broker;
use crate::security::acl::{AclOperation, ResourceType};
use strata_storage::Offset;

pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL: i64 = -4;
pub const LATEST_TIERED: i64 = -5;

pub fn handle(broker: &Broker, ctx: &Ctx, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let mut response = ListOffsetsResponse::default();
    for topic in req.topics {
        let found = broker.logs.topic(topic.name.0.as_str());
        let mut out = ListOffsetsTopicResponse::default().with_name(topic.name.clone());
        let refused = !ctx.allowed(
            broker,
            AclOperation::Describe,
            ResourceType::Topic,
            topic.name.0.as_str(),
        );
        for p in topic.partitions {
            let mut r = ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_timestamp(-1)
                .with_offset(-1)
                .with_leader_epoch(-1);
            if refused {
                r.error_code = ResponseError::TopicAuthorizationFailed.code();
                out.partitions.push(r);
                continue;
            }
            let Some(partition) = found.as_ref().and_then(|t| t.partition(p.partition_index))
            else {
                r.error_code = super::absent_partition(found.as_deref(), p.partition_index).code();
                out.partitions.push(r);
                continue;
            };
            if let Err(code) = broker.check_leader(&partition.topic, p.partition_index) {
                r.error_code = code.code();
                out.partitions.push(r);
                continue;
            }
            let log = partition.log();
            // As Fetch: a newer epoch than the log's is unknown, an older one fenced (-1: the
            // client does not say).
            let current = log.leader_epoch().get();
            if p.current_leader_epoch > current {
                r.error_code = ResponseError::UnknownLeaderEpoch.code();
                out.partitions.push(r);
                continue;
            }
            if p.current_leader_epoch >= 0 && p.current_leader_epoch < current {
                r.error_code = ResponseError::FencedLeaderEpoch.code();
                out.partitions.push(r);
                continue;
            }
            let answer: Result<Option<(Offset, i64)>, std::io::Error> = match p.timestamp {
                // read_committed consumers start from the last stable offset.
                LATEST if req.isolation_level == 1 => Ok(Some((log.last_stable_offset(), -1))),
                LATEST => Ok(Some((log.high_watermark(), -1))),
                EARLIEST | EARLIEST_LOCAL => Ok(Some((log.log_start_offset(), -1))),
                LATEST_TIERED => Ok(None),
                MAX_TIMESTAMP => Ok(log.max_timestamp()),
                ts if ts >= 0 => log.offset_for_timestamp(ts),
                _ => Ok(None),
            };
            match answer {
                Ok(Some((offset, timestamp))) => {
                    r.offset = offset.get();
                    r.timestamp = timestamp;
                    if ctx.version >= 4 {
                        r.leader_epoch = log.epoch_for_offset(offset).get();
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %e, "list offsets failed");
                    r.error_code = ResponseError::KafkaStorageError.code();
                }
            }
            out.partitions.push(r);
        }
        response.topics.push(out);
    }
    response
}
