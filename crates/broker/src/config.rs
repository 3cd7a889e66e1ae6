//! Broker configuration: Kafka's `server.properties` keys, their defaults and validation, and the
//! topic-level configs (with their broker-level synonyms) that resolve into a [`LogConfig`].
//!
//! An invalid value stops startup with an error naming the key and the value, in Kafka's words:
//! `Invalid value X for configuration K: reason`. An unknown key is logged and ignored.

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use strata_storage::tier::{TierDir, TierId, TierSpec, TierType};
use strata_storage::{LogConfig, TimestampType};
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConfigError {
    #[error("Invalid value {value} for configuration {key}: {reason}")]
    InvalidValue {
        key: String,
        value: String,
        reason: String,
    },
    #[error("Missing required configuration {0} which has no default value")]
    Missing(String),
    #[error("cannot read config file {path}: {reason}")]
    File { path: String, reason: String },
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

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
    check: fn(&str, &str) -> Result<(), ConfigError>,
}

fn check_long_min(min: i64) -> impl Fn(&str, &str) -> Result<(), ConfigError> {
    move |k, v| match v.trim().parse::<i64>() {
        Ok(n) if n >= min => Ok(()),
        Ok(_) => Err(invalid(k, v, format!("Value must be at least {min}"))),
        Err(_) => Err(invalid(k, v, "Expected value to be a number")),
    }
}
fn long_min_neg1(k: &str, v: &str) -> Result<(), ConfigError> {
    check_long_min(-1)(k, v)
}
fn long_min0(k: &str, v: &str) -> Result<(), ConfigError> {
    check_long_min(0)(k, v)
}
fn long_min1(k: &str, v: &str) -> Result<(), ConfigError> {
    check_long_min(1)(k, v)
}
fn int_min0(k: &str, v: &str) -> Result<(), ConfigError> {
    match v.trim().parse::<i32>() {
        Ok(n) if n >= 0 => Ok(()),
        Ok(_) => Err(invalid(k, v, "Value must be at least 0")),
        Err(_) => Err(invalid(k, v, "Expected value to be a 32-bit integer")),
    }
}
fn segment_bytes(k: &str, v: &str) -> Result<(), ConfigError> {
    match v.trim().parse::<i32>() {
        Ok(n) if n >= 14 => Ok(()),
        Ok(_) => Err(invalid(k, v, "Value must be at least 14")),
        Err(_) => Err(invalid(k, v, "Expected value to be a 32-bit integer")),
    }
}
fn index_bytes(k: &str, v: &str) -> Result<(), ConfigError> {
    match v.trim().parse::<i32>() {
        Ok(n) if n >= 8 => Ok(()),
        Ok(_) => Err(invalid(k, v, "Value must be at least 8")),
        Err(_) => Err(invalid(k, v, "Expected value to be a 32-bit integer")),
    }
}
fn boolean(k: &str, v: &str) -> Result<(), ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "false" => Ok(()),
        _ => Err(invalid(k, v, "Expected value to be either true or false")),
    }
}
fn timestamp_type(k: &str, v: &str) -> Result<(), ConfigError> {
    match v.trim() {
        "CreateTime" | "LogAppendTime" => Ok(()),
        _ => Err(invalid(
            k,
            v,
            "String must be one of: CreateTime, LogAppendTime",
        )),
    }
}
fn cleanup_policy(k: &str, v: &str) -> Result<(), ConfigError> {
    for p in v.split(',').map(str::trim) {
        match p {
            "delete" => {}
            "compact" => {
                return Err(invalid(
                    k,
                    v,
                    "log compaction is not supported yet; use delete",
                ))
            }
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
fn compression_type(k: &str, v: &str) -> Result<(), ConfigError> {
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
fn channel_type(k: &str, v: &str) -> Result<(), ConfigError> {
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

impl ChannelType {
    /// The `log.channel.type` value.
    pub fn name(self) -> &'static str {
        match self {
            ChannelType::File => "file",
            ChannelType::Pmem => "pmem",
            ChannelType::Tiered => "tiered",
        }
    }
}
fn ratio(k: &str, v: &str) -> Result<(), ConfigError> {
    match v.trim().parse::<f64>() {
        Ok(n) if (0.0..=1.0).contains(&n) => Ok(()),
        _ => Err(invalid(k, v, "Value must be a number between 0 and 1")),
    }
}
fn any(_: &str, _: &str) -> Result<(), ConfigError> {
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

/// A listener: `PLAINTEXT://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

fn parse_listener(key: &str, value: &str) -> Result<Listener, ConfigError> {
    let first = value.split(',').next().unwrap_or("").trim();
    let (name, rest) = first
        .split_once("://")
        .ok_or_else(|| invalid(key, value, "Expected NAME://host:port"))?;
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| invalid(key, value, "Expected NAME://host:port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| invalid(key, value, "Invalid port"))?;
    if name != "PLAINTEXT" {
        return Err(invalid(
            key,
            value,
            "only the PLAINTEXT security protocol is supported",
        ));
    }
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok(Listener {
        name: name.to_string(),
        host,
        port,
    })
}

/// `log.channel.type`: where segments live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelType {
    /// Plain files in `log.dirs`, as Kafka.
    File,
    /// All segments in the first tier's pool of pre-allocated mapped files.
    Pmem,
    /// First tier plus second tier, with migration between them.
    Tiered,
}

/// The tiered-storage settings (Pafka's keys, plus hysteresis and a bandwidth bound).
#[derive(Debug, Clone, PartialEq)]
pub struct TierConfig {
    pub channel: ChannelType,
    pub first: Option<TierSpec>,
    pub second: Option<TierSpec>,
    /// `storage.migrate.threshold`; None for -1 (never migrate).
    pub migrate_threshold: Option<f64>,
    /// `storage.migrate.hysteresis`: half-width of the band around the threshold.
    pub migrate_hysteresis: f64,
    /// `storage.migrate.threads`
    pub migrate_threads: usize,
    /// `storage.migrate.max.bytes.per.sec`; None for -1 (unbounded).
    pub migrate_max_bytes_per_sec: Option<u64>,
    /// `storage.migrate.interval.ms`: how often the policy is applied.
    pub migrate_interval_ms: u64,
    /// `log.pmem.pool.ratio`
    pub pmem_pool_ratio: f64,
    /// `log.preallocate`
    pub preallocate: bool,
}

/// The resolved broker configuration.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Every key as given (after overrides), for DescribeConfigs and topic defaults.
    pub values: BTreeMap<String, String>,
    pub broker_id: i32,
    pub listener: Listener,
    pub advertised: Listener,
    pub log_dirs: Vec<PathBuf>,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics_enable: bool,
    pub delete_topic_enable: bool,
    pub socket_request_max_bytes: usize,
    pub max_inflight_requests_per_connection: usize,
    pub retention_check_interval_ms: u64,
    pub flush_scheduler_interval_ms: u64,
    pub flush_offset_checkpoint_interval_ms: u64,
    pub transactional_id_expiration_ms: i64,
    pub fetch_max_bytes: i32,
    pub tiers: TierConfig,
    /// The group coordinator's settings (`group.*`, `offsets.*`).
    pub groups: crate::group::GroupConfig,
    /// `metrics.prometheus.listener`: where to serve Prometheus metrics (host:port); None: off.
    pub metrics_listener: Option<SocketAddr>,
}

/// Broker keys Strata reads (beyond the topic synonyms) and their defaults.
const BROKER_DEFAULTS: &[(&str, &str)] = &[
    ("broker.id", "0"),
    ("node.id", ""),
    ("listeners", "PLAINTEXT://127.0.0.1:9092"),
    ("advertised.listeners", ""),
    ("log.dirs", ""),
    ("log.dir", "./data"),
    ("num.partitions", "1"),
    ("default.replication.factor", "1"),
    ("auto.create.topics.enable", "true"),
    ("delete.topic.enable", "true"),
    ("socket.request.max.bytes", "104857600"),
    ("max.inflight.requests.per.connection", "64"),
    ("log.retention.check.interval.ms", "300000"),
    ("log.flush.scheduler.interval.ms", "1000"),
    ("log.flush.offset.checkpoint.interval.ms", "60000"),
    ("log.retention.hours", "168"),
    ("log.retention.minutes", ""),
    ("log.roll.hours", "168"),
    ("transactional.id.expiration.ms", "604800000"),
    ("fetch.max.bytes", "57671680"),
    ("num.network.threads", "3"),
    ("num.io.threads", "8"),
    ("offsets.topic.replication.factor", "1"),
    ("transaction.state.log.replication.factor", "1"),
    ("transaction.state.log.min.isr", "1"),
    ("group.initial.rebalance.delay.ms", "3000"),
    ("group.min.session.timeout.ms", "6000"),
    ("group.max.session.timeout.ms", "1800000"),
    ("group.max.size", "2147483647"),
    ("offsets.topic.num.partitions", "50"),
    ("offsets.topic.segment.bytes", "104857600"),
    ("offsets.retention.minutes", "10080"),
    ("offsets.retention.check.interval.ms", "600000"),
    ("offset.metadata.max.bytes", "4096"),
    ("group.consumer.heartbeat.interval.ms", "5000"),
    ("group.consumer.session.timeout.ms", "45000"),
    ("zookeeper.connect", ""),
    ("process.roles", ""),
    ("controller.quorum.voters", ""),
    ("controller.listener.names", ""),
    ("inter.broker.listener.name", ""),
    ("listener.security.protocol.map", ""),
    ("socket.send.buffer.bytes", "102400"),
    ("metrics.prometheus.listener", ""),
    ("storage.tiers.types", "PMEM,HDD"),
    ("storage.tiers.first.paths", ""),
    ("storage.tiers.first.sizes", "-1"),
    ("storage.tiers.second.paths", ""),
    ("storage.tiers.second.sizes", "-1"),
    ("storage.migrate.threshold", "0.5"),
    ("storage.migrate.hysteresis", "0.1"),
    ("storage.migrate.threads", "1"),
    ("storage.migrate.max.bytes.per.sec", "104857600"),
    ("storage.migrate.interval.ms", "1000"),
    ("log.pmem.pool.ratio", "0.8"),
    ("socket.receive.buffer.bytes", "102400"),
];

fn parse_num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|_| invalid(key, value, "Expected value to be a number"))
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    boolean(key, value)?;
    Ok(value.trim().eq_ignore_ascii_case("true"))
}

impl BrokerConfig {
    /// Reads a properties file and applies `key=value` overrides.
    pub fn load(path: Option<&Path>, overrides: &[String]) -> Result<BrokerConfig, ConfigError> {
        let mut values: HashMap<String, String> = HashMap::new();
        if let Some(path) = path {
            let file = std::fs::File::open(path).map_err(|e| ConfigError::File {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            values = java_properties::read(std::io::BufReader::new(file)).map_err(|e| {
                ConfigError::File {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                }
            })?;
        }
        for o in overrides {
            let (k, v) = o
                .split_once('=')
                .ok_or_else(|| invalid("--override", o, "Expected key=value"))?;
            values.insert(k.trim().to_string(), v.trim().to_string());
        }
        BrokerConfig::from_map(values.into_iter().collect())
    }

    pub fn from_map(values: BTreeMap<String, String>) -> Result<BrokerConfig, ConfigError> {
        for key in values.keys() {
            let known = BROKER_DEFAULTS.iter().any(|(k, _)| k == key)
                || TOPIC_CONFIGS
                    .iter()
                    .any(|d| d.broker_synonym == Some(key.as_str()))
                || matches!(
                    key.as_str(),
                    "log.retention.ms" | "log.roll.ms" | "log.flush.interval.ms"
                )
                || key.starts_with("storage.")
                || key.starts_with("metrics.")
                || key.starts_with("log.pmem.")
                || key.starts_with("offsets.")
                || key.starts_with("group.")
                || key.starts_with("transaction.");
            if !known {
                tracing::warn!(key = %key, "unknown configuration key is ignored");
            }
        }
        let get = |k: &str| -> String {
            values
                .get(k)
                .cloned()
                .or_else(|| {
                    BROKER_DEFAULTS
                        .iter()
                        .find(|(d, _)| *d == k)
                        .map(|(_, v)| v.to_string())
                })
                .unwrap_or_default()
        };
        let node_id = get("node.id");
        let broker_id: i32 = if node_id.is_empty() {
            parse_num("broker.id", &get("broker.id"))?
        } else {
            parse_num("node.id", &node_id)?
        };
        if broker_id < 0 {
            return Err(invalid(
                "broker.id",
                &broker_id.to_string(),
                "Value must be at least 0",
            ));
        }
        let listener = parse_listener("listeners", &get("listeners"))?;
        let advertised_raw = get("advertised.listeners");
        let advertised = if advertised_raw.is_empty() {
            let mut l = listener.clone();
            if l.host.is_empty() || l.host == "0.0.0.0" || l.host == "::" {
                l.host = "127.0.0.1".to_string();
            }
            l
        } else {
            parse_listener("advertised.listeners", &advertised_raw)?
        };
        let dirs_raw = if get("log.dirs").is_empty() {
            get("log.dir")
        } else {
            get("log.dirs")
        };
        let log_dirs: Vec<PathBuf> = dirs_raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect();
        if log_dirs.is_empty() {
            return Err(invalid(
                "log.dirs",
                &dirs_raw,
                "At least one log directory is required",
            ));
        }
        let num_partitions: i32 = parse_num("num.partitions", &get("num.partitions"))?;
        if num_partitions < 1 {
            return Err(invalid(
                "num.partitions",
                &get("num.partitions"),
                "Value must be at least 1",
            ));
        }
        let default_replication_factor: i16 = parse_num(
            "default.replication.factor",
            &get("default.replication.factor"),
        )?;
        let socket_request_max_bytes: usize =
            parse_num("socket.request.max.bytes", &get("socket.request.max.bytes"))?;
        if socket_request_max_bytes < 64 {
            return Err(invalid(
                "socket.request.max.bytes",
                &get("socket.request.max.bytes"),
                "Value must be at least 64",
            ));
        }
        let inflight: usize = parse_num(
            "max.inflight.requests.per.connection",
            &get("max.inflight.requests.per.connection"),
        )?;
        if inflight < 1 {
            return Err(invalid(
                "max.inflight.requests.per.connection",
                &inflight.to_string(),
                "Value must be at least 1",
            ));
        }
        let positive_ms = |k: &str| -> Result<u64, ConfigError> {
            let v = get(k);
            match v.trim().parse::<u64>() {
                Ok(n) if n >= 1 => Ok(n),
                _ => Err(invalid(k, &v, "Value must be at least 1")),
            }
        };
        let config = BrokerConfig {
            broker_id,
            listener,
            advertised,
            log_dirs,
            num_partitions,
            default_replication_factor,
            auto_create_topics_enable: parse_bool(
                "auto.create.topics.enable",
                &get("auto.create.topics.enable"),
            )?,
            delete_topic_enable: parse_bool("delete.topic.enable", &get("delete.topic.enable"))?,
            socket_request_max_bytes,
            max_inflight_requests_per_connection: inflight,
            retention_check_interval_ms: positive_ms("log.retention.check.interval.ms")?,
            flush_scheduler_interval_ms: positive_ms("log.flush.scheduler.interval.ms")?,
            flush_offset_checkpoint_interval_ms: positive_ms(
                "log.flush.offset.checkpoint.interval.ms",
            )?,
            transactional_id_expiration_ms: parse_num(
                "transactional.id.expiration.ms",
                &get("transactional.id.expiration.ms"),
            )?,
            fetch_max_bytes: parse_num("fetch.max.bytes", &get("fetch.max.bytes"))?,
            tiers: parse_tiers(&get)?,
            groups: parse_groups(&get)?,
            metrics_listener: {
                let raw = get("metrics.prometheus.listener");
                if raw.trim().is_empty() {
                    None
                } else {
                    Some(
                        raw.trim()
                            .to_socket_addrs()
                            .ok()
                            .and_then(|mut a| a.next())
                            .ok_or_else(|| {
                                invalid("metrics.prometheus.listener", &raw, "Expected host:port")
                            })?,
                    )
                }
            },
            values: values.clone(),
        };
        // Every topic default derived from a broker key must itself be valid.
        for def in TOPIC_CONFIGS {
            if def.name == "channel.type" {
                // The broker-wide channel is checked with the tier settings.
                continue;
            }
            let (key, value) = config.topic_default(def);
            (def.check)(&key, &value)?;
        }
        for (k, v) in [
            ("log.retention.hours", get("log.retention.hours")),
            ("log.roll.hours", get("log.roll.hours")),
        ] {
            parse_num::<i64>(k, &v)?;
        }
        if !get("log.retention.minutes").is_empty() {
            parse_num::<i64>("log.retention.minutes", &get("log.retention.minutes"))?;
        }
        Ok(config)
    }

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
        }
    }

    /// The address to bind.
    pub fn bind_addr(&self) -> Result<SocketAddr, ConfigError> {
        let host = if self.listener.host.is_empty() {
            "0.0.0.0"
        } else {
            &self.listener.host
        };
        (host, self.listener.port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| {
                invalid(
                    "listeners",
                    &format!("{}:{}", self.listener.host, self.listener.port),
                    "cannot resolve host",
                )
            })
    }

    /// The value of a broker key for DescribeConfigs: as set, else its default.
    pub fn broker_value(&self, key: &str) -> Option<String> {
        self.values.get(key).cloned().or_else(|| {
            BROKER_DEFAULTS
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
        })
    }

    pub fn broker_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = BROKER_DEFAULTS.iter().map(|(k, _)| k.to_string()).collect();
        for def in TOPIC_CONFIGS {
            if let Some(s) = def.broker_synonym {
                keys.push(s.to_string());
            }
        }
        keys.extend(self.values.keys().cloned());
        keys.sort();
        keys.dedup();
        keys
    }
}

/// The capacity of the filesystem holding `path` (for a size of -1).
fn device_capacity(path: &Path) -> Option<u64> {
    rustix::fs::statvfs(path)
        .ok()
        .map(|s| s.f_blocks * s.f_frsize)
}

/// Creates (if needed) and checks a tier directory: it must be a writable directory.
fn prepare_tier_dir(key: &str, value: &str, dir: &Path) -> Result<PathBuf, ConfigError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| invalid(key, value, format!("cannot create {}: {e}", dir.display())))?;
    let probe = dir.join(".strata-write-probe");
    std::fs::write(&probe, b"").map_err(|e| {
        invalid(
            key,
            value,
            format!("{} is not writable: {e}", dir.display()),
        )
    })?;
    let _ = std::fs::remove_file(&probe);
    dir.canonicalize()
        .map_err(|e| invalid(key, value, format!("cannot resolve {}: {e}", dir.display())))
}

/// The directories of one tier (`storage.tiers.<tier>.paths`) with their capacities
/// (`storage.tiers.<tier>.sizes`: one value for all paths or one per path; -1 = the device).
fn tier_dirs(get: &dyn Fn(&str) -> String, tier: &str) -> Result<Vec<TierDir>, ConfigError> {
    let paths_key = format!("storage.tiers.{tier}.paths");
    let sizes_key = format!("storage.tiers.{tier}.sizes");
    let paths_raw = get(&paths_key);
    let paths: Vec<&str> = paths_raw
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if paths.is_empty() {
        return Err(ConfigError::Missing(paths_key));
    }
    let sizes_raw = get(&sizes_key);
    let sizes: Vec<i64> = sizes_raw
        .split(',')
        .map(|s| s.trim().parse::<i64>())
        .collect::<Result<_, _>>()
        .map_err(|_| invalid(&sizes_key, &sizes_raw, "Expected comma-separated numbers"))?;
    if sizes.len() != 1 && sizes.len() != paths.len() {
        return Err(invalid(
            &sizes_key,
            &sizes_raw,
            format!(
                "{} sizes for {} paths in {paths_key}",
                sizes.len(),
                paths.len()
            ),
        ));
    }
    let mut dirs = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        let dir = prepare_tier_dir(&paths_key, &paths_raw, Path::new(p))?;
        let capacity_bytes = match sizes[if sizes.len() == 1 { 0 } else { i }] {
            -1 => device_capacity(&dir).ok_or_else(|| {
                invalid(
                    &sizes_key,
                    &sizes_raw,
                    format!("cannot read the size of {}", dir.display()),
                )
            })?,
            n if n > 0 => n as u64,
            _ => {
                return Err(invalid(
                    &sizes_key,
                    &sizes_raw,
                    "Each size must be positive, or -1 for the whole device",
                ))
            }
        };
        dirs.push(TierDir {
            path: dir,
            capacity_bytes,
        });
    }
    Ok(dirs)
}

fn parse_groups(get: &dyn Fn(&str) -> String) -> Result<crate::group::GroupConfig, ConfigError> {
    let int = |key: &str, min: i64| -> Result<i64, ConfigError> {
        let raw = get(key);
        match raw.trim().parse::<i64>() {
            Ok(n) if n >= min && n <= i32::MAX as i64 => Ok(n),
            Ok(_) => Err(invalid(key, &raw, format!("Value must be at least {min}"))),
            Err(_) => Err(invalid(key, &raw, "Expected value to be a 32-bit integer")),
        }
    };
    let long = |key: &str, min: i64| -> Result<i64, ConfigError> {
        let raw = get(key);
        match raw.trim().parse::<i64>() {
            Ok(n) if n >= min => Ok(n),
            Ok(_) => Err(invalid(key, &raw, format!("Value must be at least {min}"))),
            Err(_) => Err(invalid(key, &raw, "Expected value to be a 64-bit integer")),
        }
    };
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
        offsets_segment_bytes: int("offsets.topic.segment.bytes", 1)? as u64,
        offsets_retention_ms: long("offsets.retention.minutes", 1)?.saturating_mul(60_000),
        offsets_retention_check_interval_ms: long("offsets.retention.check.interval.ms", 1)? as u64,
        offset_metadata_max_bytes: int("offset.metadata.max.bytes", 0)? as usize,
        consumer_heartbeat_interval_ms: int("group.consumer.heartbeat.interval.ms", 1)? as i32,
        consumer_session_timeout_ms: int("group.consumer.session.timeout.ms", 1)? as i32,
    })
}

fn parse_tiers(get: &dyn Fn(&str) -> String) -> Result<TierConfig, ConfigError> {
    let channel_raw = get("log.channel.type");
    let channel = match channel_raw.trim() {
        "" | "file" => ChannelType::File,
        "pmem" => ChannelType::Pmem,
        "tiered" => ChannelType::Tiered,
        _ => {
            return Err(invalid(
                "log.channel.type",
                &channel_raw,
                "String must be one of: file, pmem, tiered",
            ))
        }
    };
    let types_raw = get("storage.tiers.types");
    let types: Vec<TierType> = types_raw
        .split(',')
        .map(|t| t.parse::<TierType>())
        .collect::<Result<_, _>>()
        .map_err(|e| invalid("storage.tiers.types", &types_raw, e))?;
    if types.len() != 2 {
        return Err(invalid(
            "storage.tiers.types",
            &types_raw,
            "expected two types: the first tier's and the second's",
        ));
    }
    let threshold_raw = get("storage.migrate.threshold");
    let threshold: f64 = threshold_raw.trim().parse().map_err(|_| {
        invalid(
            "storage.migrate.threshold",
            &threshold_raw,
            "Expected a number",
        )
    })?;
    let migrate_threshold = if threshold == -1.0 {
        None
    } else if threshold > 0.0 && threshold <= 1.0 {
        Some(threshold)
    } else {
        return Err(invalid(
            "storage.migrate.threshold",
            &threshold_raw,
            "Value must be in (0, 1], or -1 to never migrate",
        ));
    };
    let hysteresis_raw = get("storage.migrate.hysteresis");
    let migrate_hysteresis: f64 = match hysteresis_raw.trim().parse::<f64>() {
        Ok(h) if (0.0..0.5).contains(&h) => h,
        _ => {
            return Err(invalid(
                "storage.migrate.hysteresis",
                &hysteresis_raw,
                "Value must be in [0, 0.5)",
            ))
        }
    };
    let threads_raw = get("storage.migrate.threads");
    let migrate_threads = match threads_raw.trim().parse::<usize>() {
        Ok(n) if n >= 1 => n,
        _ => {
            return Err(invalid(
                "storage.migrate.threads",
                &threads_raw,
                "Value must be at least 1",
            ))
        }
    };
    let rate_raw = get("storage.migrate.max.bytes.per.sec");
    let migrate_max_bytes_per_sec = match rate_raw.trim().parse::<i64>() {
        Ok(-1) => None,
        Ok(n) if n >= 1 => Some(n as u64),
        _ => {
            return Err(invalid(
                "storage.migrate.max.bytes.per.sec",
                &rate_raw,
                "Value must be at least 1, or -1 for no bound",
            ))
        }
    };
    let interval_raw = get("storage.migrate.interval.ms");
    let migrate_interval_ms = match interval_raw.trim().parse::<u64>() {
        Ok(n) if n >= 1 => n,
        _ => {
            return Err(invalid(
                "storage.migrate.interval.ms",
                &interval_raw,
                "Value must be at least 1",
            ))
        }
    };
    let ratio_raw = get("log.pmem.pool.ratio");
    let pmem_pool_ratio = match ratio_raw.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => r,
        _ => {
            return Err(invalid(
                "log.pmem.pool.ratio",
                &ratio_raw,
                "Value must be between 0 and 1",
            ))
        }
    };
    let preallocate = parse_bool("log.preallocate", &{
        let v = get("log.preallocate");
        if v.is_empty() {
            "false".to_string()
        } else {
            v
        }
    })?;

    let mut first = None;
    let mut second = None;
    if channel != ChannelType::File {
        first = Some(TierSpec {
            id: TierId::First,
            kind: types[0],
            dirs: tier_dirs(get, "first")?,
        });
        if channel == ChannelType::Tiered {
            second = Some(TierSpec {
                id: TierId::Second,
                kind: types[1],
                dirs: tier_dirs(get, "second")?,
            });
        }
        // No directory may serve twice, within a tier or across them.
        let all: Vec<&PathBuf> = first
            .iter()
            .chain(second.iter())
            .flat_map(|t| t.dirs.iter().map(|d| &d.path))
            .collect();
        for (i, a) in all.iter().enumerate() {
            if all[..i].contains(a) {
                let key = if second.is_some() {
                    "storage.tiers.second.paths"
                } else {
                    "storage.tiers.first.paths"
                };
                return Err(invalid(
                    key,
                    &get(key),
                    format!("{} is used more than once", a.display()),
                ));
            }
        }
    }
    Ok(TierConfig {
        channel,
        first,
        second,
        migrate_threshold,
        migrate_hysteresis,
        migrate_threads,
        migrate_max_bytes_per_sec,
        migrate_interval_ms,
        pmem_pool_ratio,
        preallocate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<BrokerConfig, ConfigError> {
        BrokerConfig::from_map(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn defaults_serve_on_localhost_9092_with_data_dir() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.listener.port, 9092);
        assert_eq!(c.listener.host, "127.0.0.1");
        assert_eq!(c.log_dirs, vec![PathBuf::from("./data")]);
        assert_eq!(c.log_config(&BTreeMap::new()).retention_ms, 168 * 3_600_000);
    }

    #[test]
    fn invalid_value_names_key_and_value() {
        let e = cfg(&[("num.partitions", "zero")]).unwrap_err().to_string();
        assert!(e.contains("num.partitions") && e.contains("zero"), "{e}");
        let e = cfg(&[("log.segment.bytes", "10")]).unwrap_err().to_string();
        assert!(e.contains("log.segment.bytes") && e.contains("10"), "{e}");
        let e = cfg(&[("listeners", "garbage")]).unwrap_err().to_string();
        assert!(e.contains("listeners") && e.contains("garbage"), "{e}");
    }

    #[test]
    fn retention_precedence_is_ms_then_minutes_then_hours() {
        let c = cfg(&[("log.retention.hours", "1"), ("log.retention.minutes", "2")]).unwrap();
        assert_eq!(c.log_config(&BTreeMap::new()).retention_ms, 120_000);
        let c = cfg(&[("log.retention.minutes", "2"), ("log.retention.ms", "5")]).unwrap();
        assert_eq!(c.log_config(&BTreeMap::new()).retention_ms, 5);
    }

    #[test]
    fn topic_override_beats_broker_default() {
        let c = cfg(&[("log.segment.bytes", "2048")]).unwrap();
        let mut o = BTreeMap::new();
        assert_eq!(c.log_config(&o).segment_bytes, 2048);
        o.insert("segment.bytes".to_string(), "4096".to_string());
        assert_eq!(c.log_config(&o).segment_bytes, 4096);
    }

    #[test]
    fn topic_config_validation() {
        assert!(validate_topic_config("retention.ms", "-1").is_ok());
        assert!(validate_topic_config("retention.ms", "-2").is_err());
        assert!(validate_topic_config("no.such.key", "1").is_err());
        assert!(validate_topic_config("message.timestamp.type", "LogAppendTime").is_ok());
        assert!(validate_topic_config("message.timestamp.type", "Now").is_err());
    }

    fn tiered(extra: &[(&str, String)]) -> Result<BrokerConfig, ConfigError> {
        let mut pairs: Vec<(String, String)> = vec![("log.channel.type".into(), "tiered".into())];
        pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        BrokerConfig::from_map(pairs.into_iter().collect())
    }

    #[test]
    fn tier_settings_are_parsed_with_pafkas_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            dir.path().join("pmem0"),
            dir.path().join("pmem1"),
            dir.path().join("hdd"),
        );
        let c = tiered(&[
            (
                "storage.tiers.first.paths",
                format!("{},{}", a.display(), b.display()),
            ),
            ("storage.tiers.first.sizes", "1000000,2000000".into()),
            ("storage.tiers.second.paths", c.display().to_string()),
        ])
        .unwrap();
        let t = &c.tiers;
        assert_eq!(t.channel, ChannelType::Tiered);
        let first = t.first.as_ref().unwrap();
        assert_eq!(first.kind, TierType::Pmem);
        assert_eq!(
            first
                .dirs
                .iter()
                .map(|d| d.capacity_bytes)
                .collect::<Vec<_>>(),
            vec![1_000_000, 2_000_000]
        );
        assert!(first.dirs[0].path.exists(), "tier directories are created");
        assert_eq!(t.second.as_ref().unwrap().kind, TierType::Hdd);
        assert_eq!(t.migrate_threshold, Some(0.5));
        assert_eq!(t.migrate_threads, 1);
        assert_eq!(t.pmem_pool_ratio, 0.8);
        assert!(!t.preallocate);
        assert_eq!(cfg(&[]).unwrap().tiers.channel, ChannelType::File);
    }

    #[test]
    fn bad_tier_settings_name_key_and_value() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("fast").display().to_string();
        let second = dir.path().join("slow").display().to_string();
        let base = |extra: &[(&str, &str)]| {
            let mut v: Vec<(&str, String)> = vec![
                ("storage.tiers.first.paths", first.clone()),
                ("storage.tiers.second.paths", second.clone()),
            ];
            v.extend(extra.iter().map(|(k, val)| (*k, val.to_string())));
            tiered(&v)
        };
        let cases: &[(&str, &str)] = &[
            ("storage.migrate.threshold", "1.5"),
            ("storage.migrate.threshold", "0"),
            ("storage.tiers.first.sizes", "10,20"),
            ("storage.tiers.first.sizes", "0"),
            ("storage.tiers.types", "PMEM,TAPE"),
            ("storage.migrate.threads", "0"),
            ("storage.migrate.hysteresis", "0.7"),
            ("log.pmem.pool.ratio", "2"),
            ("log.channel.type", "cloud"),
        ];
        for (key, value) in cases {
            let e = base(&[(key, value)]).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains(value), "{key}={value}: {e}");
        }
        assert!(base(&[("storage.migrate.threshold", "-1")])
            .unwrap()
            .tiers
            .migrate_threshold
            .is_none());
        let e = tiered(&[
            ("storage.tiers.first.paths", first.clone()),
            ("storage.tiers.second.paths", first.clone()),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("more than once"), "{e}");
        let e = tiered(&[("storage.tiers.first.paths", first.clone())])
            .unwrap_err()
            .to_string();
        assert!(e.contains("storage.tiers.second.paths"), "{e}");
        let e = tiered(&[]).unwrap_err().to_string();
        assert!(e.contains("storage.tiers.first.paths"), "{e}");
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let e = tiered(&[
            ("storage.tiers.first.paths", file.display().to_string()),
            ("storage.tiers.second.paths", second.clone()),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("storage.tiers.first.paths") && e.contains("a-file"),
            "{e}"
        );
    }
}
