//! DescribeLogDirs: each log directory, its capacity and free space, and the size of every
//! partition in it. A compacted partition also carries its dirty ratio (the share of its
//! cleanable bytes not yet cleaned) in the tagged field [`DIRTY_RATIO_TAG`] (versions 2 and up,
//! where tagged fields exist; clients that do not know the tag skip it, as the protocol says).

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse};

use super::Ctx;
use super::{str_bytes, topic_name};
use crate::broker::Broker;
use crate::security::acl::{AclOperation, ResourceType, CLUSTER_NAME};
use kafka_protocol::ResponseError;

/// Strata's tag on a DescribeLogDirs partition: the dirty ratio of a compacted partition, an
/// IEEE 754 double, big-endian. Far above the tags Kafka numbers from 0, so that none of its
/// future ones collides.
pub const DIRTY_RATIO_TAG: i32 = 1_000_000;

pub fn handle(broker: &Broker, ctx: &Ctx, req: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    let mut response = DescribeLogDirsResponse::default();
    // DESCRIBE on the cluster (Kafka answers an empty list, with the error from v3).
    if !ctx.allowed(
        broker,
        AclOperation::Describe,
        ResourceType::Cluster,
        CLUSTER_NAME,
    ) {
        response.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return response;
    }
    let wanted = |topic: &str, partition: i32| match &req.topics {
        None => true,
        Some(list) => list
            .iter()
            .any(|t| t.topic.0.as_str() == topic && t.partitions.contains(&partition)),
    };
    // Each directory that holds segments: the log dirs, or the tier directories with their
    // configured capacities and reserved usage.
    let tiers = broker.logs.tier_usage();
    let dirs: Vec<(std::path::PathBuf, i64, i64)> = if tiers.is_empty() {
        broker
            .logs
            .log_dirs()
            .iter()
            .map(|dir| match rustix::fs::statvfs(dir) {
                Ok(stat) => (
                    dir.clone(),
                    (stat.f_blocks * stat.f_frsize) as i64,
                    (stat.f_bavail * stat.f_frsize) as i64,
                ),
                Err(_) => (dir.clone(), -1, -1),
            })
            .collect()
    } else {
        tiers
            .iter()
            .map(|t| {
                (
                    t.path.clone(),
                    t.capacity_bytes as i64,
                    t.capacity_bytes.saturating_sub(t.used_bytes) as i64,
                )
            })
            .collect()
    };
    for (dir, total, usable) in dirs {
        let mut result =
            DescribeLogDirsResult::default().with_log_dir(str_bytes(dir.display().to_string()));
        result.total_bytes = total;
        result.usable_bytes = usable;
        for topic in broker.logs.topics() {
            let mut out = DescribeLogDirsTopic::default().with_name(topic_name(&topic.name));
            for p in topic.partitions() {
                if !wanted(&topic.name, p.index) {
                    continue;
                }
                // The bytes of this partition's segments that sit in `dir`.
                let log = p.log();
                let mut size = 0i64;
                let mut present = false;
                for segment in log.segments() {
                    if segment.dir().parent() == Some(dir.as_path()) {
                        size += segment.size() as i64;
                        present = true;
                    }
                }
                if present {
                    let mut partition = DescribeLogDirsPartition::default()
                        .with_partition_index(p.index)
                        .with_partition_size(size);
                    if let Some(stats) = log.dirty_stats(strata_storage::now_ms()) {
                        partition.unknown_tagged_fields.insert(
                            DIRTY_RATIO_TAG,
                            bytes::Bytes::copy_from_slice(&stats.ratio().to_be_bytes()),
                        );
                    }
                    out.partitions.push(partition);
                }
            }
            if !out.partitions.is_empty() {
                result.topics.push(out);
            }
        }
        response.results.push(result);
    }
    response
}
