//! Dynamic broker configs in force (see `config::dynamic`): where a broker alone keeps them,
//! the effective config they make, and applying a change live to what reads it: topic
//! defaults (every partition's settings resolved again), the migrator's policy and bandwidth,
//! the connection limits and the replication throttles.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use kafka_protocol::ResponseError;
use strata_storage::io::Io;
use strata_storage::tier::migrator::MigratorConfig;
use strata_storage::tier::policy::MigrationPolicy;

use super::Broker;
use crate::config::dynamic::{self, DynamicConfigs, Refused};
use crate::config::{BrokerConfig, ChannelType, TOPIC_CONFIGS};

/// A broker alone keeps its dynamic configs here, in its first log directory (a cluster's are
/// in the metadata log).
pub const DYNAMIC_CONFIG_FILE: &str = "dynamic-broker-configs.json";

/// The effective config, shared with the log manager's resolver of topic settings.
pub type Effective = Arc<RwLock<Arc<BrokerConfig>>>;

/// A broker alone's dynamic configs (none when the file is absent).
pub fn load(io: &dyn Io, path: &Path) -> std::io::Result<DynamicConfigs> {
    if !io.exists(path) {
        return Ok(DynamicConfigs::default());
    }
    let bytes = io.read_all(path)?;
    serde_json::from_slice(&bytes).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

/// The migrator's settings from a config (tiered channel only; a threshold of -1 keeps it
/// idle, so that a dynamic threshold can start it moving).
pub fn migrator_config(config: &BrokerConfig) -> Option<MigratorConfig> {
    (config.tiers.channel == ChannelType::Tiered).then(|| MigratorConfig {
        policy: MigrationPolicy {
            threshold: config.tiers.migrate_threshold,
            hysteresis: config.tiers.migrate_hysteresis,
        },
        threads: config.tiers.migrate_threads,
        max_bytes_per_sec: config.tiers.migrate_max_bytes_per_sec,
        interval: std::time::Duration::from_millis(config.tiers.migrate_interval_ms),
    })
}

impl Broker {
    /// The config in force: server.properties with the dynamic broker configs on top.
    pub fn effective_config(&self) -> Arc<BrokerConfig> {
        self.effective
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The dynamic configs in force (the default's and this broker's).
    pub fn dynamic_configs(&self) -> DynamicConfigs {
        self.dynamic
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Changes the dynamic configs of `entity` ("" for the cluster-wide default, else a broker
    /// id) to `configs` (its whole set), after checking them: through the metadata log in a
    /// cluster (each broker applies what concerns it), else kept in this broker's file and
    /// applied here. With `expected` (the set an incremental change was computed from), a
    /// cluster applies it only if the entity's set is still that: Ok(false) otherwise.
    pub fn alter_dynamic_configs(
        &self,
        entity: &str,
        configs: BTreeMap<String, String>,
        expected: Option<BTreeMap<String, String>>,
        validate_only: bool,
    ) -> Result<bool, (ResponseError, String)> {
        let me = self.config.broker_id.to_string();
        let own = entity == me;
        if !own && !entity.is_empty() && self.quorum().is_none() {
            return Err((
                ResponseError::InvalidRequest,
                format!("Unexpected broker id, expected {me} but received {entity}"),
            ));
        }
        let current = self.dynamic_configs();
        dynamic::check_change(&self.config, &current, &configs, own).map_err(|e| match e {
            Refused::NotDynamic(_) => (ResponseError::InvalidRequest, e.to_string()),
            Refused::Invalid(_) => (ResponseError::InvalidConfig, e.to_string()),
        })?;
        if validate_only {
            return Ok(true);
        }
        if self.quorum().is_some() {
            return self.alter_broker_configs_in_cluster(entity, configs, expected);
        }
        let mut next = current;
        if own {
            next.own = configs;
        } else {
            next.default = configs;
        }
        let bytes = serde_json::to_vec_pretty(&next).expect("string maps serialize");
        let path = self.config.log_dirs[0].join(DYNAMIC_CONFIG_FILE);
        self.logs.io().write_atomic(&path, &bytes).map_err(|e| {
            (
                ResponseError::KafkaStorageError,
                format!("{}: {e}", path.display()),
            )
        })?;
        self.apply_dynamic_configs(next);
        Ok(true)
    }

    /// Puts `next` in force, when it differs from what is: the effective config, then each
    /// part that reads it.
    pub fn apply_dynamic_configs(&self, next: DynamicConfigs) {
        let mut applied = self.dynamic.lock().unwrap_or_else(|e| e.into_inner());
        if *applied == next {
            return;
        }
        let effective = match next.effective(&self.config) {
            Ok(c) => Arc::new(c),
            Err(e) => {
                // Checked when altered; a value this broker's static config cannot take (another
                // broker accepted it) leaves the configs in force as they were.
                tracing::error!(error = %e, "dynamic broker configs not applied");
                return;
            }
        };
        let old = std::mem::replace(
            &mut *self.effective.write().unwrap_or_else(|e| e.into_inner()),
            effective.clone(),
        );
        let changed: Vec<String> = changed_keys(&applied, &next);
        *applied = next;
        drop(applied);
        if TOPIC_CONFIGS
            .iter()
            .any(|d| old.topic_default(d) != effective.topic_default(d))
        {
            self.logs.reconfigure_topics();
        }
        if let Some(m) = migrator_config(&effective) {
            self.logs.reconfigure_migration(&m);
        }
        self.connections
            .set_limits(effective.connection_limits.clone());
        let rate = |key: &str| {
            effective
                .values
                .get(key)
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let throttles = self.replicas.throttles();
        throttles
            .leader
            .set_rate(rate(crate::replica::throttle::LEADER_RATE));
        throttles
            .follower
            .set_rate(rate(crate::replica::throttle::FOLLOWER_RATE));
        tracing::info!(keys = ?changed, "dynamic broker configs applied");
    }
}

/// The keys whose value differs between two sets (for the log).
fn changed_keys(a: &DynamicConfigs, b: &DynamicConfigs) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for (x, y) in [(&a.default, &b.default), (&a.own, &b.own)] {
        for k in x.keys().chain(y.keys()) {
            if x.get(k) != y.get(k) && !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    keys
}

/// The effective config at start: the static one with a broker alone's dynamic configs.
pub fn effective_at_start(config: &BrokerConfig, dynamic: &DynamicConfigs) -> BrokerConfig {
    match dynamic.effective(config) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "dynamic broker configs not applied");
            config.clone()
        }
    }
}
