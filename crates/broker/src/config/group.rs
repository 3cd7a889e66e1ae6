//! The group coordinator's keys (`group.*`, `offsets.*`).

use super::*;

pub(super) fn parse_groups(
    get: &dyn Fn(&str) -> String,
) -> Result<crate::group::GroupConfig, ConfigError> {
    let int = |key: &str, min: i64| int_at_least(get, key, min);
    let long = |key: &str, min: i64| long_at_least(get, key, min);
    let min_session = int("group.min.session.timeout.ms", 0)? as i32;
    let max_session = int("group.max.session.timeout.ms", 0)? as i32;
    if max_session < min_session {
        return Err(invalid(
            "group.max.session.timeout.ms",
            &get("group.max.session.timeout.ms"),
            "Value must be at least group.min.session.timeout.ms",
        ));
    }
    Ok(crate::group::GroupConfig {
        min_session_timeout_ms: min_session,
        max_session_timeout_ms: max_session,
        initial_rebalance_delay_ms: int("group.initial.rebalance.delay.ms", 0)? as i32,
        max_size: int("group.max.size", 1)? as usize,
        offsets_partitions: int("offsets.topic.num.partitions", 1)? as i32,
        offsets_replication_factor: int("offsets.topic.replication.factor", 1)?.min(i16::MAX as i64)
            as i16,
        offsets_commit_timeout_ms: int("offsets.commit.timeout.ms", 1)? as u64,
        offsets_segment_bytes: int("offsets.topic.segment.bytes", 1)? as u64,
        offsets_retention_ms: long("offsets.retention.minutes", 1)?.saturating_mul(60_000),
        offsets_retention_check_interval_ms: long("offsets.retention.check.interval.ms", 1)? as u64,
        offset_metadata_max_bytes: int("offset.metadata.max.bytes", 0)? as usize,
        consumer_heartbeat_interval_ms: int("group.consumer.heartbeat.interval.ms", 1)? as i32,
        consumer_session_timeout_ms: int("group.consumer.session.timeout.ms", 1)? as i32,
    })
}
