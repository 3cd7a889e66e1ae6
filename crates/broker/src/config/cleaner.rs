//! The log cleaner's keys (`log.cleaner.*`), with Kafka's names and defaults. The per-topic
//! ones (`log.cleaner.min.cleanable.ratio`, `.delete.retention.ms`, `.min/max.compaction.lag.ms`)
//! are topic-config synonyms (`topic.rs`).

use super::*;
use strata_storage::log_manager::CleanerConfig;

/// The cleaner's settings; None when `log.cleaner.enable=false` (compacted topics then grow).
pub(super) fn parse_cleaner(
    get: &dyn Fn(&str) -> String,
) -> Result<Option<CleanerConfig>, ConfigError> {
    if !parse_bool("log.cleaner.enable", &get("log.cleaner.enable"))? {
        return Ok(None);
    }
    let long = |key: &str, min: i64| long_at_least(get, key, min);
    let double = |key: &str| -> Result<f64, ConfigError> {
        let raw = get(key);
        match raw.trim().parse::<f64>() {
            Ok(n) if n > 0.0 => Ok(n),
            _ => Err(invalid(key, &raw, "Expected a positive number")),
        }
    };
    let load_factor = double("log.cleaner.io.buffer.load.factor")?;
    if load_factor > 1.0 {
        return Err(invalid(
            "log.cleaner.io.buffer.load.factor",
            &get("log.cleaner.io.buffer.load.factor"),
            "Value must be no more than 1.0",
        ));
    }
    let rate = double("log.cleaner.io.max.bytes.per.second")?;
    Ok(Some(CleanerConfig {
        threads: int_at_least(get, "log.cleaner.threads", 1)? as usize,
        dedupe_buffer_bytes: long("log.cleaner.dedupe.buffer.size", 1)? as u64,
        io_buffer_bytes: int_at_least(get, "log.cleaner.io.buffer.size", 1)? as usize,
        load_factor,
        backoff_ms: long("log.cleaner.backoff.ms", 0)? as u64,
        max_io_bytes_per_second: (rate < u64::MAX as f64).then_some(rate as u64),
    }))
}
