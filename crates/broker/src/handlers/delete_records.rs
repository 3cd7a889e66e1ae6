//! DeleteRecords: move a partition's log start offset forward; -1 means the high watermark.

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use kafka_protocol::ResponseError;

use super::Ctx;
use crate::broker::Broker;
use crate::security::acl::{AclOperation, ResourceType};
use strata_storage::Offset;

pub fn handle(broker: &Broker, ctx: &Ctx, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let mut response = DeleteRecordsResponse::default();
    for t in req.topics {
        let topic = broker.logs.topic(t.name.0.as_str());
        let mut out = DeleteRecordsTopicResult::default().with_name(t.name.clone());
        let refused = !ctx.allowed(
            broker,
            AclOperation::Delete,
            ResourceType::Topic,
            t.name.0.as_str(),
        );
        for p in t.partitions {
            let mut r = DeleteRecordsPartitionResult::default()
                .with_partition_index(p.partition_index)
                .with_low_watermark(-1);
            if refused {
                r.error_code = ResponseError::TopicAuthorizationFailed.code();
                out.partitions.push(r);
                continue;
            }
            match topic.as_ref().and_then(|t| t.partition(p.partition_index)) {
                None => {
                    r.error_code =
                        super::absent_partition(topic.as_deref(), p.partition_index).code()
                }
                Some(partition) => {
                    let mut log = partition.log();
                    let target = if p.offset == -1 {
                        log.high_watermark()
                    } else {
                        Offset(p.offset)
                    };
                    if target < Offset::ZERO || target > log.high_watermark() {
                        r.error_code = ResponseError::OffsetOutOfRange.code();
                    } else {
                        match log.delete_records_before(target) {
                            Ok(low) => r.low_watermark = low.get(),
                            Err(e) => {
                                tracing::error!(error = %e, "delete records failed");
                                r.error_code = ResponseError::KafkaStorageError.code();
                            }
                        }
                    }
                }
            }
            out.partitions.push(r);
        }
        response.topics.push(out);
    }
    if let Err(e) = broker.logs.write_checkpoints() {
        tracing::error!(error = %e, "checkpoint write failed");
    }
    response
}
