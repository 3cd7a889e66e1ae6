//! Topic-level configs: Kafka's names, defaults and checks, their broker-level synonyms, and
//! how a topic's overrides resolve into a [`LogConfig`].

use std::collections::BTreeMap;

use strata_storage::{LogConfig, TimestampType};

use super::*;

/// The type of a config value, as DescribeConfigs reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// A topic-level config: its name, the broker key whose value is its default, the default
/// when neither is set, and how values are checked.
#[derive(Debug)]
pub struct TopicConfigDef {
    pub name: &'static str,
    pub broker_synonym: Option<&'static str>,
    pub default: &'static str,
    pub kind: ConfigType,
    pub doc: &'static str,
    pub(super) check: fn(&str, &str) -> Result<(), ConfigError>,
}

pub(super) fn check_long_min(min: i64) -> impl Fn(&str, &str) -> Result<(), ConfigError> {
    move |k, v| match v.trim().parse::<i64>() {
        Ok(n) if n >= min => Ok(()),
        Ok(_) => Err(invalid(k, v, format!("Value must be at least {min}"))),
        Err(_) => Err(invalid(k, v, "Expected value to be a number")),
    }
}
pub(super) fn long_min_neg1(k: &str, v: &str) -> Result<(), ConfigError> {
    check_long_min(-1)(k, v)
}
pub(super) fn long_min0(k: &str, v: &str) -> Result<(), ConfigError> {
    check_long_min(0)(k, v)
}
pub(super) fn long_min1(k: &str, v: &str) -> Result<(), ConfigError> {
    check_long_min(1)(k, v)
}
pub(super) fn int_min0(k: &str, v: &str) -> Result<(), ConfigError> {
    match v.trim().parse::<i32>() {
        Ok(n) if n >= 0 => Ok(()),
        Ok(_) => Err(invalid(k, v, "Value must be at least 0")),
        Err(_) => Err(invalid(k, v, "Expected value to be a 32-bit integer")),
    }
}
pub(super) fn throttled_replicas(k: &str, v: &str) -> Result<(), ConfigError> {
    if crate::replica::throttle::valid_list(v) {
        Ok(())
    } else {
        Err(invalid(
            k,
            v,
            "Expected a comma separated list of partition:brokerId, or *",
        ))
    }
}
pub(super) fn segment_bytes(k: &str, v: &str) -> Result<(), ConfigError> {
    match v.trim().parse::<i32>() {
        Ok(n) if n >= 14 => Ok(()),
        Ok(_) => Err(invalid(k, v, "Value must be at least 14")),
        Err(_) => Err(invalid(k, v, "Expected value to be a 32-bit integer")),
    }
}
pub(super) fn index_bytes(k: &str, v: &str) -> Result<(), ConfigError> {
    match v.trim().parse::<i32>() {
        Ok(n) if n >= 8 => Ok(()),
        Ok(_) => Err(invalid(k, v, "Value must be at least 8")),
        Err(_) => Err(invalid(k, v, "Expected value to be a 32-bit integer")),
    }
}
pub(super) fn boolean(k: &str, v: &str) -> Result<(), ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "false" => Ok(()),
        _ => Err(invalid(k, v, "Expected value to be either true or false")),
    }
}
pub(super) fn timestamp_type(k: &str, v: &str) -> Result<(), ConfigError> {
    match v.trim() {
        "CreateTime" | "LogAppendTime" => Ok(()),
        _ => Err(invalid(
            k,
            v,
            "String must be one of: CreateTime, LogAppendTime",
        )),
    }
}
pub(super) fn cleanup_policy(k: &str, v: &str) -> Result<(), ConfigError> {
    for p in v.split(',').map(str::trim) {
        match p {
            "delete" | "compact" => {}
            _ => {
                return Err(invalid(
                    k,
                    v,
                    "Invalid value; allowed values are [compact, delete]",
                ))
            }
        }
    }
    Ok(())
}
/// (has `delete`, has `compact`) of a `cleanup.policy` value.
pub fn cleanup_policies(v: &str) -> (bool, bool) {
    let mut out = (false, false);
    for p in v.split(',').map(str::trim) {
        match p {
            "delete" => out.0 = true,
            "compact" => out.1 = true,
            _ => {}
        }
    }
    out
}
pub(super) fn compression_type(k: &str, v: &str) -> Result<(), ConfigError> {
    match v.trim() {
        "producer" => Ok(()),
        "uncompressed" | "gzip" | "snappy" | "lz4" | "zstd" => Err(invalid(
            k,
            v,
            "batches are stored as the producer compressed them; only producer is supported",
        )),
        _ => Err(invalid(
            k,
            v,
            "String must be one of: uncompressed, zstd, lz4, snappy, gzip, producer",
        )),
    }
}
pub(super) fn channel_type(k: &str, v: &str) -> Result<(), ConfigError> {
    match v.trim() {
        "file" | "pmem" | "tiered" => Ok(()),
        _ => Err(invalid(k, v, "String must be one of: file, pmem, tiered")),
    }
}

impl BrokerConfig {
    /// A topic's `channel.type` is the broker's `log.channel.type`, or `file`: plain files in
    /// `log.dirs` on any broker (a topic kept off the tiers). `pmem` and `tiered` need the
    /// broker's tiers, so they must be its channel.
    pub fn check_topic_channel(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<(), ConfigError> {
        let Some(value) = overrides.get("channel.type") else {
            return Ok(());
        };
        let broker = self.tiers.channel.name();
        let value = value.trim();
        if value != broker && value != "file" {
            return Err(invalid(
                "channel.type",
                value,
                format!(
                    "a topic's channel must be file or the broker's log.channel.type ({broker})"
                ),
            ));
        }
        Ok(())
    }

    /// Whether a topic with these overrides keeps its segments in plain files in `log.dirs`.
    pub fn topic_uses_plain_files(&self, overrides: &BTreeMap<String, String>) -> bool {
        self.topic_value(overrides, "channel.type").trim() == "file"
    }
}
pub(super) fn ratio(k: &str, v: &str) -> Result<(), ConfigError> {
    match v.trim().parse::<f64>() {
        Ok(n) if (0.0..=1.0).contains(&n) => Ok(()),
        _ => Err(invalid(k, v, "Value must be a number between 0 and 1")),
    }
}
pub(super) fn any(_: &str, _: &str) -> Result<(), ConfigError> {
    Ok(())
}

macro_rules! def {
    ($name:expr, $syn:expr, $default:expr, $kind:ident, $check:expr, $doc:expr) => {
        TopicConfigDef {
            name: $name,
            broker_synonym: $syn,
            default: $default,
            kind: ConfigType::$kind,
            doc: $doc,
            check: $check,
        }
    };
}

/// Every topic-level config Strata knows, with Kafka's names and defaults.
pub static TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def!(
        "cleanup.policy",
        Some("log.cleanup.policy"),
        "delete",
        List,
        cleanup_policy,
        "The retention policy for old segments."
    ),
    def!(
        "compression.type",
        Some("compression.type"),
        "producer",
        String,
        compression_type,
        "Compression of stored batches; producer keeps them as sent."
    ),
    def!(
        "delete.retention.ms",
        Some("log.cleaner.delete.retention.ms"),
        "86400000",
        Long,
        long_min0,
        "How long delete tombstones are kept."
    ),
    def!(
        "file.delete.delay.ms",
        Some("log.segment.delete.delay.ms"),
        "60000",
        Long,
        long_min0,
        "Delay before a deleted segment's files are removed."
    ),
    def!(
        "flush.messages",
        Some("log.flush.interval.messages"),
        "9223372036854775807",
        Long,
        long_min1,
        "Messages written before the log is synced."
    ),
    def!(
        "flush.ms",
        Some("log.flush.interval.ms"),
        "9223372036854775807",
        Long,
        long_min0,
        "Milliseconds before written messages are synced."
    ),
    def!(
        "index.interval.bytes",
        Some("log.index.interval.bytes"),
        "4096",
        Int,
        int_min0,
        "Bytes of log between offset index entries."
    ),
    def!(
        "max.compaction.lag.ms",
        Some("log.cleaner.max.compaction.lag.ms"),
        "9223372036854775807",
        Long,
        long_min1,
        "Maximum time a message stays uncompacted."
    ),
    def!(
        "max.message.bytes",
        Some("message.max.bytes"),
        "1048588",
        Int,
        int_min0,
        "The largest record batch size allowed."
    ),
    def!(
        "message.timestamp.type",
        Some("log.message.timestamp.type"),
        "CreateTime",
        String,
        timestamp_type,
        "CreateTime or LogAppendTime."
    ),
    def!(
        "min.cleanable.dirty.ratio",
        Some("log.cleaner.min.cleanable.ratio"),
        "0.5",
        Double,
        ratio,
        "Dirty ratio that triggers compaction."
    ),
    def!(
        "min.compaction.lag.ms",
        Some("log.cleaner.min.compaction.lag.ms"),
        "0",
        Long,
        long_min0,
        "Minimum time a message stays uncompacted."
    ),
    def!(
        "min.insync.replicas",
        Some("min.insync.replicas"),
        "1",
        Int,
        int_min0,
        "Replicas that must acknowledge an acks=all write."
    ),
    def!(
        "preallocate",
        Some("log.preallocate"),
        "false",
        Boolean,
        boolean,
        "Pre-allocate segment files."
    ),
    def!(
        "retention.bytes",
        Some("log.retention.bytes"),
        "-1",
        Long,
        long_min_neg1,
        "Maximum partition size before old segments are deleted."
    ),
    def!(
        "retention.ms",
        Some("log.retention.ms"),
        "604800000",
        Long,
        long_min_neg1,
        "Maximum age of a segment before it is deleted."
    ),
    def!(
        "segment.bytes",
        Some("log.segment.bytes"),
        "1073741824",
        Int,
        segment_bytes,
        "Segment file size."
    ),
    def!(
        "segment.index.bytes",
        Some("log.index.size.max.bytes"),
        "10485760",
        Int,
        index_bytes,
        "Maximum size of a segment's offset index."
    ),
    def!(
        "segment.jitter.ms",
        Some("log.roll.jitter.ms"),
        "0",
        Long,
        long_min0,
        "Random jitter subtracted from segment.ms."
    ),
    def!(
        "segment.ms",
        Some("log.roll.ms"),
        "604800000",
        Long,
        long_min1,
        "Time after which a segment is rolled."
    ),
    def!(
        "leader.replication.throttled.replicas",
        None,
        "",
        List,
        throttled_replicas,
        "Replicas whose log is throttled on the leader side (partition:broker, or *)."
    ),
    def!(
        "follower.replication.throttled.replicas",
        None,
        "",
        List,
        throttled_replicas,
        "Replicas whose log is throttled on the follower side (partition:broker, or *)."
    ),
    def!(
        "unclean.leader.election.enable",
        Some("unclean.leader.election.enable"),
        "false",
        Boolean,
        boolean,
        "Allow out-of-sync replicas to become leader."
    ),
    def!(
        "message.downconversion.enable",
        Some("log.message.downconversion.enable"),
        "true",
        Boolean,
        boolean,
        "Down-convert for old consumers."
    ),
    def!(
        "channel.type",
        Some("log.channel.type"),
        "file",
        String,
        channel_type,
        "Storage channel of the topic's segments: file, pmem or tiered."
    ),
    def!(
        "local.retention.ms",
        Some("log.local.retention.ms"),
        "-2",
        Long,
        any,
        "Local retention when tiered to remote storage."
    ),
    def!(
        "local.retention.bytes",
        Some("log.local.retention.bytes"),
        "-2",
        Long,
        any,
        "Local retention size when tiered to remote storage."
    ),
    def!(
        "remote.storage.enable",
        None,
        "false",
        Boolean,
        boolean,
        "Remote storage for the topic."
    ),
];

pub fn topic_config_def(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Checks one topic config override; the error names the key and the value.
pub fn validate_topic_config(key: &str, value: &str) -> Result<(), ConfigError> {
    let def =
        topic_config_def(key).ok_or_else(|| invalid(key, value, "Unknown topic config name"))?;
    (def.check)(key, value)
}

impl BrokerConfig {
    /// The default of a topic config from the broker's settings: (the key it came from, value).
    /// Kafka's precedence applies: `log.retention.ms` over `.minutes` over `.hours`, and
    /// `log.roll.ms` over `log.roll.hours`.
    pub fn topic_default(&self, def: &TopicConfigDef) -> (String, String) {
        let explicit = |k: &str| self.values.get(k).filter(|v| !v.trim().is_empty()).cloned();
        match def.name {
            "retention.ms" => {
                if let Some(v) = explicit("log.retention.ms") {
                    return ("log.retention.ms".into(), v);
                }
                if let Some(v) = explicit("log.retention.minutes") {
                    let ms = v
                        .trim()
                        .parse::<i64>()
                        .map(|m| if m < 0 { -1 } else { m * 60_000 })
                        .unwrap_or(-1);
                    return ("log.retention.minutes".into(), ms.to_string());
                }
                if let Some(v) = explicit("log.retention.hours") {
                    let ms = v
                        .trim()
                        .parse::<i64>()
                        .map(|h| if h < 0 { -1 } else { h * 3_600_000 })
                        .unwrap_or(-1);
                    return ("log.retention.hours".into(), ms.to_string());
                }
            }
            "segment.ms" => {
                if let Some(v) = explicit("log.roll.ms") {
                    return ("log.roll.ms".into(), v);
                }
                if let Some(v) = explicit("log.roll.hours") {
                    let ms = v.trim().parse::<i64>().map(|h| h * 3_600_000).unwrap_or(0);
                    return ("log.roll.hours".into(), ms.to_string());
                }
            }
            _ => {}
        }
        if let Some(syn) = def.broker_synonym {
            if let Some(v) = explicit(syn) {
                return (syn.to_string(), v);
            }
        }
        (
            def.broker_synonym.unwrap_or(def.name).to_string(),
            def.default.to_string(),
        )
    }

    /// Whether a topic config's default was set in the broker's config (not built in).
    pub fn topic_default_is_static(&self, def: &TopicConfigDef) -> bool {
        let (key, _) = self.topic_default(def);
        self.values.contains_key(&key)
    }

    /// The effective value of a topic config given the topic's overrides.
    pub fn topic_value(&self, overrides: &BTreeMap<String, String>, name: &str) -> String {
        if let Some(v) = overrides.get(name) {
            return v.clone();
        }
        topic_config_def(name)
            .map(|d| self.topic_default(d).1)
            .unwrap_or_default()
    }

    /// Resolves a topic's overrides into its log settings.
    pub fn log_config(&self, overrides: &BTreeMap<String, String>) -> LogConfig {
        let v = |name: &str| self.topic_value(overrides, name);
        let long = |name: &str, fallback: i64| v(name).trim().parse::<i64>().unwrap_or(fallback);
        let d = LogConfig::default();
        LogConfig {
            segment_bytes: long("segment.bytes", d.segment_bytes as i64).max(14) as u64,
            segment_ms: long("segment.ms", d.segment_ms),
            segment_index_bytes: long("segment.index.bytes", d.segment_index_bytes as i64).max(8)
                as usize,
            index_interval_bytes: long("index.interval.bytes", d.index_interval_bytes as i64).max(0)
                as u64,
            retention_ms: long("retention.ms", d.retention_ms),
            retention_bytes: long("retention.bytes", d.retention_bytes),
            flush_messages: long("flush.messages", d.flush_messages).max(1),
            flush_ms: long("flush.ms", d.flush_ms),
            max_message_bytes: long("max.message.bytes", d.max_message_bytes as i64).max(0)
                as usize,
            timestamp_type: if v("message.timestamp.type").trim() == "LogAppendTime" {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            },
            file_delete_delay_ms: long("file.delete.delay.ms", d.file_delete_delay_ms),
            preallocate: v("preallocate").trim().eq_ignore_ascii_case("true"),
            plain_files: self.topic_uses_plain_files(overrides),
            delete: cleanup_policies(&v("cleanup.policy")).0,
            compact: cleanup_policies(&v("cleanup.policy")).1,
            min_cleanable_dirty_ratio: v("min.cleanable.dirty.ratio")
                .trim()
                .parse::<f64>()
                .unwrap_or(d.min_cleanable_dirty_ratio),
            min_compaction_lag_ms: long("min.compaction.lag.ms", d.min_compaction_lag_ms).max(0),
            max_compaction_lag_ms: long("max.compaction.lag.ms", d.max_compaction_lag_ms).max(1),
            delete_retention_ms: long("delete.retention.ms", d.delete_retention_ms).max(0),
        }
    }
}
