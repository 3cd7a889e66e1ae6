//! DescribeLogDirs: each log directory, its capacity and free space, and the size of every
//! partition in it.

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse};

use super::{str_bytes, topic_name};
use crate::broker::Broker;

pub fn handle(broker: &Broker, req: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    let mut response = DescribeLogDirsResponse::default();
    let wanted = |topic: &str, partition: i32| match &req.topics {
        None => true,
        Some(list) => list
            .iter()
            .any(|t| t.topic.0.as_str() == topic && t.partitions.contains(&partition)),
    };
    for dir in broker.logs.log_dirs() {
        let mut result =
            DescribeLogDirsResult::default().with_log_dir(str_bytes(dir.display().to_string()));
        if let Ok(stat) = rustix::fs::statvfs(dir) {
            result.total_bytes = (stat.f_blocks * stat.f_frsize) as i64;
            result.usable_bytes = (stat.f_bavail * stat.f_frsize) as i64;
        } else {
            result.total_bytes = -1;
            result.usable_bytes = -1;
        }
        for topic in broker.logs.topics() {
            let mut out = DescribeLogDirsTopic::default().with_name(topic_name(&topic.name));
            for p in topic.partitions() {
                if &p.log_dir != dir || !wanted(&topic.name, p.index) {
                    continue;
                }
                let size = p.log().size_bytes() as i64;
                out.partitions.push(
                    DescribeLogDirsPartition::default()
                        .with_partition_index(p.index)
                        .with_partition_size(size),
                );
            }
            if !out.partitions.is_empty() {
                result.topics.push(out);
            }
        }
        response.results.push(result);
    }
    response
}
