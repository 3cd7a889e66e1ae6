//! The transaction coordinator's keys (`transaction.*`, `transactional.id.expiration.ms`), with
//! Kafka's names, defaults and lower bounds.

use super::*;

pub(super) fn parse_txns(
    get: &dyn Fn(&str) -> String,
) -> Result<crate::txn::TxnConfig, ConfigError> {
    let int = |key: &str, min: i64| int_at_least(get, key, min);
    Ok(crate::txn::TxnConfig {
        partitions: int("transaction.state.log.num.partitions", 1)? as i32,
        segment_bytes: int("transaction.state.log.segment.bytes", 1)? as u64,
        replication_factor: int("transaction.state.log.replication.factor", 1)?.min(i16::MAX as i64)
            as i16,
        min_isr: int("transaction.state.log.min.isr", 1)? as usize,
        write_timeout_ms: int("request.timeout.ms", 1)? as u64,
        max_timeout_ms: int("transaction.max.timeout.ms", 1)? as i32,
        id_expiration_ms: int("transactional.id.expiration.ms", 1)?,
        abort_timed_out_interval_ms: int(
            "transaction.abort.timed.out.transaction.cleanup.interval.ms",
            1,
        )? as u64,
        remove_expired_interval_ms: int(
            "transaction.remove.expired.transaction.cleanup.interval.ms",
            1,
        )? as u64,
    })
}
