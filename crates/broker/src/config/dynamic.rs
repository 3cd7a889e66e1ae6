//! Dynamic broker configs: the keys AlterConfigs and IncrementalAlterConfigs may set on a broker
//! resource (kafka-configs.sh `--entity-type brokers`), for one broker (`--entity-name ID`) or
//! as the cluster-wide default (`--entity-default`, the resource name ""), and the effective
//! config they make with the static one: this broker's own value over the default over
//! server.properties over Kafka's default, as Kafka ranks DYNAMIC_BROKER_CONFIG,
//! DYNAMIC_DEFAULT_BROKER_CONFIG and STATIC_BROKER_CONFIG.
//!
//! What may change: every topic config's broker default (`log.retention.ms`, `log.segment.bytes`,
//! `log.cleanup.policy`, `message.max.bytes`, `min.insync.replicas`, ...: Kafka's dynamic log
//! configs), the replication throttles, the connection limits and the tier policy
//! (`storage.migrate.*` but its thread count). The rest (listeners, directories, roles,
//! channels, thread counts) is read at start only, and refused here with Kafka's message.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{invalid, BrokerConfig, ChannelType, ConfigError, TOPIC_CONFIGS};

/// Dynamic keys besides the topic configs' broker synonyms.
const OTHER_DYNAMIC_KEYS: &[&str] = &[
    crate::replica::throttle::LEADER_RATE,
    crate::replica::throttle::FOLLOWER_RATE,
    "log.retention.minutes",
    "log.retention.hours",
    "log.roll.hours",
    "max.connections",
    "max.connections.per.ip",
    "max.connections.per.ip.overrides",
    "max.connection.creation.rate",
    "storage.migrate.threshold",
    "storage.migrate.hysteresis",
    "storage.migrate.max.bytes.per.sec",
    "storage.migrate.interval.ms",
];

/// Topic configs whose broker default stays static: a topic's channel is its segments' home.
const STATIC_TOPIC_DEFAULTS: &[&str] = &["log.channel.type"];

/// Whether `key` may change at run time.
pub fn is_dynamic(key: &str) -> bool {
    OTHER_DYNAMIC_KEYS.contains(&key)
        || (!STATIC_TOPIC_DEFAULTS.contains(&key)
            && TOPIC_CONFIGS.iter().any(|d| d.broker_synonym == Some(key)))
}

/// Every dynamic key, in name order.
pub fn dynamic_keys() -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = OTHER_DYNAMIC_KEYS
        .iter()
        .copied()
        .chain(TOPIC_CONFIGS.iter().filter_map(|d| d.broker_synonym))
        .filter(|k| is_dynamic(k))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// The dynamic configs in force on a broker: the cluster-wide default's and its own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DynamicConfigs {
    pub default: BTreeMap<String, String>,
    pub own: BTreeMap<String, String>,
}

impl DynamicConfigs {
    pub fn is_empty(&self) -> bool {
        self.default.is_empty() && self.own.is_empty()
    }

    /// The static config with these on top (own over default), checked as a start checks it.
    pub fn effective(&self, static_config: &BrokerConfig) -> Result<BrokerConfig, ConfigError> {
        let mut values = static_config.values.clone();
        values.extend(self.default.clone());
        values.extend(self.own.clone());
        BrokerConfig::parse(values)
    }
}

/// Why a change of dynamic configs is refused.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// Keys read at start only (Kafka's INVALID_REQUEST).
    #[error("Cannot update these configs dynamically: {0:?}")]
    NotDynamic(Vec<String>),
    /// A value the key does not take (INVALID_CONFIG).
    #[error(transparent)]
    Invalid(#[from] ConfigError),
}

/// Checks a change to one entity's dynamic configs (`configs` is its whole new set): every key
/// dynamic, every value what the key takes. `current` is what the broker has now; `own` says
/// whether the set is this broker's (else the default's).
pub fn check_change(
    static_config: &BrokerConfig,
    current: &DynamicConfigs,
    configs: &BTreeMap<String, String>,
    own: bool,
) -> Result<(), Refused> {
    let refused: Vec<String> = configs.keys().filter(|k| !is_dynamic(k)).cloned().collect();
    if !refused.is_empty() {
        return Err(Refused::NotDynamic(refused));
    }
    for (k, v) in configs {
        let rate = k == crate::replica::throttle::LEADER_RATE
            || k == crate::replica::throttle::FOLLOWER_RATE;
        if rate && v.trim().parse::<u64>().is_err() {
            return Err(invalid(k, v, "Expected value to be a non-negative number").into());
        }
        if k == "log.segment.bytes" && static_config.tiers.channel == ChannelType::Pmem {
            return Err(invalid(
                k,
                v,
                "the pmem channel's pool files are log.segment.bytes long; it is read at start",
            )
            .into());
        }
        if let Some(def) = TOPIC_CONFIGS.iter().find(|d| d.broker_synonym == Some(k)) {
            (def.check)(k, v)?;
        }
    }
    let mut next = current.clone();
    if own {
        next.own = configs.clone();
    } else {
        next.default = configs.clone();
    }
    next.effective(static_config)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BrokerConfig {
        BrokerConfig::from_map(
            [("log.dirs".to_string(), "/tmp/x".to_string())]
                .into_iter()
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn log_defaults_throttles_limits_and_the_tier_policy_are_dynamic() {
        for key in [
            "log.retention.ms",
            "log.segment.bytes",
            "message.max.bytes",
            "leader.replication.throttled.rate",
            "max.connections",
            "storage.migrate.threshold",
            "storage.migrate.max.bytes.per.sec",
        ] {
            assert!(is_dynamic(key), "{key}");
        }
        for key in [
            "listeners",
            "log.dirs",
            "log.channel.type",
            "storage.migrate.threads",
        ] {
            assert!(!is_dynamic(key), "{key}");
        }
    }

    #[test]
    fn own_values_win_over_the_default_and_bad_values_are_refused() {
        let c = config();
        let dynamic = DynamicConfigs {
            default: [("log.retention.ms".into(), "1000".into())].into(),
            own: [("log.retention.ms".into(), "2000".into())].into(),
        };
        let effective = dynamic.effective(&c).unwrap();
        assert_eq!(effective.log_config(&BTreeMap::new()).retention_ms, 2000);
        let bad = [("log.retention.ms".to_string(), "soon".to_string())].into();
        assert!(check_change(&c, &dynamic, &bad, true).is_err());
        let static_key = [("log.dirs".to_string(), "/elsewhere".to_string())].into();
        let e = check_change(&c, &dynamic, &static_key, false).unwrap_err();
        assert!(
            e.to_string()
                .contains("Cannot update these configs dynamically"),
            "{e}"
        );
        let threshold = [("storage.migrate.threshold".to_string(), "7".to_string())].into();
        assert!(check_change(&c, &dynamic, &threshold, true).is_err());
        let ok = [("storage.migrate.threshold".to_string(), "0.5".to_string())].into();
        check_change(&c, &dynamic, &ok, true).unwrap();
    }
}
