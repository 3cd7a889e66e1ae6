//! Broker configuration: Kafka's `server.properties` keys, their defaults and validation, and the
//! topic-level configs (with their broker-level synonyms) that resolve into a [`LogConfig`].
//!
//! An invalid value stops startup with an error naming the key and the value, in Kafka's words:
//! `Invalid value X for configuration K: reason`. An unknown key is logged and ignored.

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use strata_storage::tier::TierSpec;
use thiserror::Error;

mod cleaner;
pub mod dynamic;
mod group;
pub mod inter_broker;
pub mod listeners;
pub mod quorum;
pub mod sasl;
pub mod security;
mod tier;
mod topic;
mod txn;

use cleaner::parse_cleaner;
use group::parse_groups;
use tier::parse_tiers;
use topic::boolean;
pub use topic::{
    topic_config_def, validate_topic_config, ConfigType, TopicConfigDef, TOPIC_CONFIGS,
};
use txn::parse_txns;

pub use listeners::{Listener, ListenerConfig, SecurityProtocol};

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
    /// Every listener (`listeners`), in the order given.
    pub listeners: Vec<ListenerConfig>,
    /// `inter.broker.listener.name`
    pub inter_broker_listener: String,
    /// How this broker connects to the others' inter-broker listener (a broker of a cluster).
    pub inter_broker_client: Option<inter_broker::InterBrokerClient>,
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
    pub fetch_max_bytes: i32,
    pub tiers: TierConfig,
    /// The group coordinator's settings (`group.*`, `offsets.*`).
    pub groups: crate::group::GroupConfig,
    /// The transaction coordinator's settings (`transaction.*`, `transactional.id.*`).
    pub txns: crate::txn::TxnConfig,
    /// `metrics.prometheus.listener`: where to serve Prometheus metrics (host:port); None: off.
    pub metrics_listener: Option<SocketAddr>,
    /// `http.console.listener`: where to serve the web console (host:port); None: off.
    pub console_listener: Option<SocketAddr>,
    /// `log.format`: the broker's log lines as text (the default) or as JSON objects, one a
    /// line, for log collectors.
    pub log_json: bool,
    /// The log cleaner (`log.cleaner.*`); None when `log.cleaner.enable=false`.
    pub cleaner: Option<strata_storage::log_manager::CleanerConfig>,
    /// ACL checks (`authorizer.class.name`, `super.users`, ...).
    pub authorizer: security::AuthorizerConfig,
    /// How client quotas measure rates (`quota.window.*`).
    pub quota_window: crate::security::quota::QuotaWindow,
    /// `max.connections`, `max.connections.per.ip`, ...
    pub connection_limits: security::ConnectionLimits,
    /// The node's part in a cluster (`process.roles`, `controller.quorum.voters`, ...); None:
    /// a broker alone.
    pub quorum: Option<quorum::QuorumConfig>,
}

/// Broker keys Strata reads (beyond the topic synonyms) and their defaults.
pub(crate) const BROKER_DEFAULTS: &[(&str, &str)] = &[
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
    ("offsets.topic.replication.factor", "3"),
    ("offsets.commit.timeout.ms", "5000"),
    ("transaction.state.log.replication.factor", "3"),
    ("transaction.state.log.min.isr", "2"),
    ("request.timeout.ms", "30000"),
    ("transaction.state.log.num.partitions", "50"),
    ("transaction.state.log.segment.bytes", "104857600"),
    ("transaction.max.timeout.ms", "900000"),
    (
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "10000",
    ),
    (
        "transaction.remove.expired.transaction.cleanup.interval.ms",
        "3600000",
    ),
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
    ("controller.quorum.bootstrap.servers", ""),
    ("controller.quorum.election.timeout.ms", "1000"),
    ("controller.quorum.fetch.timeout.ms", "2000"),
    ("controller.quorum.request.timeout.ms", "2000"),
    ("metadata.log.dir", ""),
    (
        "metadata.log.max.record.bytes.between.snapshots",
        "20971520",
    ),
    ("broker.rack", ""),
    ("broker.session.timeout.ms", "9000"),
    ("broker.heartbeat.interval.ms", "2000"),
    ("replica.lag.time.max.ms", "30000"),
    ("auto.leader.rebalance.enable", "true"),
    ("leader.imbalance.check.interval.seconds", "300"),
    ("leader.imbalance.per.broker.percentage", "10"),
    ("replica.fetch.wait.max.ms", "500"),
    ("replica.fetch.max.bytes", "1048576"),
    ("replica.fetch.response.max.bytes", "10485760"),
    ("replica.fetch.backoff.ms", "1000"),
    ("replica.socket.timeout.ms", "30000"),
    ("replica.selector.class", ""),
    ("inter.broker.listener.name", ""),
    ("security.inter.broker.protocol", "PLAINTEXT"),
    ("sasl.mechanism.inter.broker.protocol", "GSSAPI"),
    ("ssl.endpoint.identification.algorithm", "https"),
    (
        "listener.security.protocol.map",
        listeners::DEFAULT_PROTOCOL_MAP,
    ),
    ("ssl.keystore.type", "PEM"),
    ("ssl.keystore.location", ""),
    ("ssl.keystore.key", ""),
    ("ssl.keystore.certificate.chain", ""),
    ("ssl.key.password", ""),
    ("ssl.truststore.type", "PEM"),
    ("ssl.truststore.location", ""),
    ("ssl.truststore.certificates", ""),
    ("ssl.client.auth", "none"),
    ("ssl.enabled.protocols", "TLSv1.2,TLSv1.3"),
    ("ssl.principal.mapping.rules", "DEFAULT"),
    ("sasl.enabled.mechanisms", "PLAIN"),
    ("sasl.jaas.config", ""),
    ("connection.failed.authentication.delay.ms", "100"),
    ("sasl.server.max.receive.size", "524288"),
    ("sasl.oauthbearer.jwks.endpoint.url", ""),
    ("sasl.oauthbearer.jwks.endpoint.refresh.ms", "3600000"),
    ("sasl.oauthbearer.expected.audience", ""),
    ("sasl.oauthbearer.expected.issuer", ""),
    ("sasl.oauthbearer.sub.claim.name", "sub"),
    ("sasl.oauthbearer.clock.skew.seconds", "30"),
    ("connections.max.reauth.ms", "0"),
    ("authorizer.class.name", ""),
    ("super.users", ""),
    ("allow.everyone.if.no.acl.found", "false"),
    ("quota.window.num", "11"),
    ("quota.window.size.seconds", "1"),
    ("max.connections", "2147483647"),
    ("max.connections.per.ip", "2147483647"),
    ("max.connections.per.ip.overrides", ""),
    ("max.connection.creation.rate", "2147483647"),
    ("socket.send.buffer.bytes", "102400"),
    ("metrics.prometheus.listener", ""),
    ("http.console.listener", ""),
    ("log.format", "text"),
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
    ("log.cleaner.enable", "true"),
    ("log.cleaner.threads", "1"),
    ("log.cleaner.dedupe.buffer.size", "134217728"),
    ("log.cleaner.io.buffer.size", "524288"),
    ("log.cleaner.io.buffer.load.factor", "0.9"),
    ("log.cleaner.backoff.ms", "15000"),
    (
        "log.cleaner.io.max.bytes.per.second",
        "1.7976931348623157E308",
    ),
    ("socket.receive.buffer.bytes", "102400"),
];

fn parse_num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|_| invalid(key, value, "Expected value to be a number"))
}

/// A 32-bit integer key of at least `min`.
fn int_at_least(get: &dyn Fn(&str) -> String, key: &str, min: i64) -> Result<i64, ConfigError> {
    let raw = get(key);
    match raw.trim().parse::<i64>() {
        Ok(n) if n >= min && n <= i32::MAX as i64 => Ok(n),
        Ok(_) => Err(invalid(key, &raw, format!("Value must be at least {min}"))),
        Err(_) => Err(invalid(key, &raw, "Expected value to be a 32-bit integer")),
    }
}

/// A 64-bit integer key of at least `min`.
fn long_at_least(get: &dyn Fn(&str) -> String, key: &str, min: i64) -> Result<i64, ConfigError> {
    let raw = get(key);
    match raw.trim().parse::<i64>() {
        Ok(n) if n >= min => Ok(n),
        Ok(_) => Err(invalid(key, &raw, format!("Value must be at least {min}"))),
        Err(_) => Err(invalid(key, &raw, "Expected value to be a 64-bit integer")),
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    boolean(key, value)?;
    Ok(value.trim().eq_ignore_ascii_case("true"))
}

/// An optional `host:port` setting (empty: off).
fn optional_addr(
    key: &str,
    get: &dyn Fn(&str) -> String,
) -> Result<Option<SocketAddr>, ConfigError> {
    let raw = get(key);
    if raw.trim().is_empty() {
        return Ok(None);
    }
    raw.trim()
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .map(Some)
        .ok_or_else(|| invalid(key, &raw, "Expected host:port"))
}

/// Warns of each key no part of the broker reads (with the known key it is closest to).
fn warn_unknown_keys(values: &BTreeMap<String, String>) {
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
            || key.starts_with("listener.name.")
            || key.starts_with("metrics.")
            || key.starts_with("log.pmem.")
            || key.starts_with("offsets.")
            || key.starts_with("group.")
            || key.starts_with("transaction.");
        if !known {
            match did_you_mean(key) {
                Some(close) => tracing::warn!(
                    "unknown configuration key {key} is ignored (did you mean {close}?)"
                ),
                None => tracing::warn!("unknown configuration key {key} is ignored"),
            }
        }
    }
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

    /// Parses `values`, warning of the keys it does not know.
    pub fn from_map(values: BTreeMap<String, String>) -> Result<BrokerConfig, ConfigError> {
        warn_unknown_keys(&values);
        BrokerConfig::parse(values)
    }

    /// Parses `values` (no warnings: a dynamic config's change parses the static keys again).
    pub fn parse(values: BTreeMap<String, String>) -> Result<BrokerConfig, ConfigError> {
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
        let (listeners, inter_broker_listener, controller_binds) =
            listeners::parse_listeners(&get, &|k: &str| values.get(k).cloned())?;
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
        let quorum = quorum::parse_quorum(&get, broker_id, controller_binds, &log_dirs[0])?;
        let inter_broker_client = match &quorum {
            Some(q) if q.roles.broker => {
                let listener = listeners
                    .iter()
                    .find(|l| l.name == inter_broker_listener)
                    .expect("the inter-broker listener is one of the listeners");
                Some(inter_broker::parse_inter_broker(
                    listener,
                    &get,
                    &|k: &str| values.get(k).cloned(),
                )?)
            }
            _ => None,
        };
        let config = BrokerConfig {
            inter_broker_client,
            quorum,
            broker_id,
            listeners,
            inter_broker_listener,
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
            fetch_max_bytes: parse_num("fetch.max.bytes", &get("fetch.max.bytes"))?,
            tiers: parse_tiers(&get)?,
            groups: parse_groups(&get)?,
            txns: parse_txns(&get)?,
            cleaner: parse_cleaner(&get)?,
            authorizer: security::parse_authorizer(&get)?,
            quota_window: security::parse_quota_window(&get)?,
            connection_limits: security::parse_connection_limits(&get)?,
            log_json: match get("log.format").trim().to_ascii_lowercase().as_str() {
                "text" => false,
                "json" => true,
                _ => {
                    return Err(invalid(
                        "log.format",
                        &get("log.format"),
                        "Expected text or json",
                    ))
                }
            },
            metrics_listener: optional_addr("metrics.prometheus.listener", &get)?,
            console_listener: optional_addr("http.console.listener", &get)?,
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

    /// The address a listener binds.
    pub fn bind_addr(listener: &Listener) -> Result<SocketAddr, ConfigError> {
        let host = if listener.host.is_empty() {
            "0.0.0.0"
        } else {
            &listener.host
        };
        (host, listener.port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| {
                invalid(
                    "listeners",
                    &format!("{}:{}", listener.host, listener.port),
                    "cannot resolve host",
                )
            })
    }

    /// Whether a broker key holds a secret (Kafka's PASSWORD type): DescribeConfigs shows no
    /// value for it, and no log line prints it.
    pub fn is_sensitive(key: &str) -> bool {
        let key = key.to_ascii_lowercase();
        key.ends_with(".password")
            || key.ends_with("ssl.keystore.key")
            || key.ends_with("ssl.keystore.certificate.chain")
            || key.ends_with("ssl.truststore.certificates")
            || key.ends_with("sasl.jaas.config")
            || key.ends_with("sasl.oauthbearer.client.secret")
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

/// Edit distance between two keys (insertions, deletions, substitutions).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The known key closest to an unknown one, when it is close enough to be a typo.
fn did_you_mean(key: &str) -> Option<&'static str> {
    let known = BROKER_DEFAULTS
        .iter()
        .map(|(k, _)| *k)
        .chain(TOPIC_CONFIGS.iter().filter_map(|d| d.broker_synonym));
    known
        .map(|k| (edit_distance(key, k), k))
        .filter(|(d, k)| *d <= (k.len() / 5).clamp(1, 3))
        .min()
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests;
