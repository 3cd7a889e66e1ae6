//! OffsetForLeaderEpoch: this broker has led every partition since its creation with epoch 0, so
//! epoch 0 ends at the log end offset and any later epoch is unknown.

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use kafka_protocol::ResponseError;

use crate::broker::Broker;

pub fn handle(broker: &Broker, req: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let mut response = OffsetForLeaderEpochResponse::default();
    for t in req.topics {
        let topic = broker.logs.topic(t.topic.0.as_str());
        let mut out = OffsetForLeaderTopicResult::default().with_topic(t.topic.clone());
        for p in t.partitions {
            let mut r = EpochEndOffset::default()
                .with_partition(p.partition)
                .with_leader_epoch(-1)
                .with_end_offset(-1);
            match topic.as_ref().and_then(|t| t.partition(p.partition)) {
                None => r.error_code = ResponseError::UnknownTopicOrPartition.code(),
                Some(_) if p.current_leader_epoch > 0 => {
                    r.error_code = ResponseError::UnknownLeaderEpoch.code()
                }
                Some(partition) => {
                    if p.leader_epoch == 0 {
                        r.leader_epoch = 0;
                        r.end_offset = partition.log().log_end_offset();
                    }
                }
            }
            out.partitions.push(r);
        }
        response.topics.push(out);
    }
    response
}
