//! The broker's shared state: configuration, the log manager, the coordinators, producer ids,
//! the cluster id and the wake-up signal for long-polling fetches.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use strata_storage::io::Io;
use strata_storage::log_manager::{ConfigResolver, LogManager, LogManagerConfig, PoolConfig};
use strata_storage::LogError;
use thiserror::Error;

use crate::config::{BrokerConfig, ChannelType, ConfigError};
use crate::group::{Coordinator, OffsetStore, OFFSETS_TOPIC};
use crate::internal_log;
use crate::meta_properties::{self, MetaProperties};
use crate::producer_ids::{ProducerIds, PRODUCER_ID_FILE};
use crate::quorum::MetadataQuorum;
use crate::replica::ReplicaManager;
use crate::security::authorizer::Authorizer;
use crate::security::store::{SecurityStore, SECURITY_FILE};
use crate::txn::TxnCoordinator;

mod cluster;
pub mod dynamic;
pub mod lag;

#[derive(Debug, Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Unformatted(String),
}

pub struct Broker {
    pub config: BrokerConfig,
    pub logs: Arc<LogManager>,
    /// The group coordinator (every group; offsets in `__consumer_offsets`).
    pub groups: Arc<Coordinator>,
    pub cluster_id: String,
    /// Produce, fetch, flush and waiting: the layer between the handlers and storage.
    pub replicas: Arc<ReplicaManager>,
    pub producer_ids: Arc<ProducerIds>,
    /// The transaction coordinator (every transactional id; state in `__transaction_state`).
    pub txns: Arc<TxnCoordinator>,
    /// SCRAM credentials, ACLs and client quotas.
    pub security: Arc<SecurityStore>,
    /// ACL checks for every request.
    pub authorizer: Authorizer,
    /// Client quotas' measurements.
    pub quotas: crate::security::quota::QuotaManager,
    /// Connection counts and limits.
    pub connections: Arc<crate::security::connections::ConnectionQuotas>,
    /// The config in force: `config` with the dynamic broker configs on top.
    effective: dynamic::Effective,
    /// The dynamic broker configs that made it.
    dynamic: std::sync::Mutex<crate::config::dynamic::DynamicConfigs>,
    /// Each advertised listener: (name, host, port), the port filled in when it was 0 and the
    /// listener bound a free one.
    advertised: Vec<(String, String, AtomicU16)>,
    /// This node's replica of the metadata quorum, once started (`process.roles` set).
    quorum: std::sync::OnceLock<Arc<MetadataQuorum>>,
    /// Followers' fetchers and leaders' ISR changes (a node of a cluster).
    replication: std::sync::OnceLock<Arc<crate::replica::cluster::Replication>>,
    /// This broker's epoch (its registration's offset); 0 until registered.
    broker_epoch: Arc<std::sync::atomic::AtomicU64>,
    /// This process's incarnation: the same in each of its registrations.
    incarnation_id: String,
    /// Whether the metadata image holds this incarnation's registration, and so everything
    /// decided before this process started (always, for a broker alone).
    caught_up: std::sync::atomic::AtomicBool,
    /// Becomes true when every data directory is offline: the broker then shuts down, as
    /// Kafka does, since it can serve nothing.
    all_dirs_offline: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("broker_id", &self.config.broker_id)
            .finish()
    }
}

impl Broker {
    /// Opens (or initialises) the broker's storage.
    pub fn open(config: BrokerConfig, io: Arc<dyn Io>) -> Result<Arc<Broker>, StartError> {
        for dir in &config.log_dirs {
            // Created when missing; then read, so that a path to a file (or to a directory
            // that cannot be read) is refused here, naming it.
            io.create_dir_durable(dir)
                .and_then(|()| io.list_dir(dir).map(|_| ()))
                .map_err(|e| LogError::dir(dir, e))?;
        }
        let first = &config.log_dirs[0];
        let cluster_id = match &config.quorum {
            // A node of a cluster starts only from directories formatted for it.
            Some(quorum) => {
                let mut dirs = config.log_dirs.clone();
                dirs.push(quorum.metadata_log_dir.clone());
                meta_properties::check_formatted(&*io, &dirs, config.broker_id)
                    .map_err(StartError::Unformatted)?
            }
            // A broker alone formats itself at its first start.
            None => match meta_properties::read(&*io, first).map_err(StartError::Unformatted)? {
                Some(meta) => meta.cluster_id,
                None => {
                    let id = meta_properties::random_uuid();
                    for dir in &config.log_dirs {
                        let meta = MetaProperties {
                            cluster_id: id.clone(),
                            node_id: config.broker_id,
                            directory_id: Some(meta_properties::random_uuid()),
                        };
                        meta_properties::write(&*io, dir, &meta)
                            .map_err(|e| LogError::dir(dir, e))?;
                    }
                    id
                }
            },
        };
        // A broker alone's dynamic configs are in its first directory; a cluster's come with
        // the metadata image.
        let dynamic_configs = if config.quorum.is_none() {
            dynamic::load(&*io, &first.join(dynamic::DYNAMIC_CONFIG_FILE))?
        } else {
            Default::default()
        };
        let effective: dynamic::Effective = Arc::new(std::sync::RwLock::new(Arc::new(
            dynamic::effective_at_start(&config, &dynamic_configs),
        )));
        let resolver_config = effective.clone();
        let resolver: ConfigResolver = Arc::new(move |overrides| {
            resolver_config
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .log_config(overrides)
        });
        let started_with = effective.read().unwrap_or_else(|e| e.into_inner()).clone();
        let logs = LogManager::open(
            io.clone(),
            LogManagerConfig {
                log_dirs: config.log_dirs.clone(),
                retention_check_interval_ms: config.retention_check_interval_ms,
                flush_scheduler_interval_ms: config.flush_scheduler_interval_ms,
                flush_offset_checkpoint_interval_ms: config.flush_offset_checkpoint_interval_ms,
                tiers: match (
                    config.tiers.channel,
                    &config.tiers.first,
                    &config.tiers.second,
                ) {
                    (ChannelType::Tiered, Some(first), Some(second)) => {
                        Some((first.dirs.clone(), second.dirs.clone()))
                    }
                    (ChannelType::Pmem, Some(first), _) => Some((first.dirs.clone(), Vec::new())),
                    _ => None,
                },
                mapped_tiers: [
                    config
                        .tiers
                        .first
                        .as_ref()
                        .is_some_and(|t| t.kind.is_mapped()),
                    config
                        .tiers
                        .second
                        .as_ref()
                        .is_some_and(|t| t.kind.is_mapped()),
                ],
                pool: (config.tiers.channel == ChannelType::Pmem).then(|| {
                    let defaults = config.log_config(&Default::default());
                    PoolConfig {
                        ratio: config.tiers.pmem_pool_ratio,
                        file_bytes: defaults.segment_bytes,
                        reuse_delay_ms: defaults.file_delete_delay_ms.max(0) as u64,
                    }
                }),
                migration: dynamic::migrator_config(&started_with),
            },
            resolver,
        )?;
        let (all_dirs_offline, _) = tokio::sync::watch::channel(false);
        {
            let signal = all_dirs_offline.clone();
            let failures = Arc::downgrade(logs.failures());
            let log_dirs = config.log_dirs.clone();
            logs.failures()
                .set_listener(Box::new(move |_dir: &std::path::Path| {
                    let Some(failures) = failures.upgrade() else {
                        return;
                    };
                    if log_dirs.iter().all(|d| failures.is_offline(d)) {
                        signal.send_replace(true);
                    }
                }));
        }
        logs.start_background();
        // In a cluster the controller records the same topic (the same id on every node).
        internal_log::ensure_topic_with_id(
            &logs,
            OFFSETS_TOPIC,
            config.groups.offsets_partitions,
            config.groups.offsets_segment_bytes,
            if config.quorum.is_some() {
                internal_log::internal_topic_id(&cluster_id, OFFSETS_TOPIC)
            } else {
                *uuid::Uuid::new_v4().as_bytes()
            },
        )?;
        let started = std::time::Instant::now();
        let groups = Coordinator::open(config.groups.clone(), OffsetStore::new(logs.clone())?)?;
        tracing::info!(
            elapsed_us = started.elapsed().as_micros() as u64,
            records = groups.store().log().records_replayed(),
            "committed offsets loaded"
        );
        let producer_ids = Arc::new(ProducerIds::open(io.clone(), first.join(PRODUCER_ID_FILE))?);
        let security = Arc::new(SecurityStore::open(io.clone(), first.join(SECURITY_FILE))?);
        let authorizer = Authorizer::new(config.authorizer.clone(), security.clone());
        let quota_window = config.quota_window;
        let connection_limits = started_with.connection_limits.clone();
        let replicas = Arc::new(ReplicaManager::new(logs.clone()));
        let started = std::time::Instant::now();
        let txns = TxnCoordinator::open(
            config.txns.clone(),
            producer_ids.clone(),
            replicas.clone(),
            groups.clone(),
            config.quorum.is_some(),
        )?;
        tracing::info!(
            elapsed_us = started.elapsed().as_micros() as u64,
            transactional_ids = txns.len(),
            records = txns.records_loaded().unwrap_or(0),
            "transaction state loaded"
        );
        // The cleaner starts once the coordinators have read their topics: its first look
        // over every partition would only slow their loads.
        if let Some(cleaner) = &config.cleaner {
            logs.start_cleaner(cleaner.clone());
        }
        let alone = config.quorum.is_none();
        let advertised = config
            .listeners
            .iter()
            .filter_map(|l| l.advertised.as_ref())
            .map(|a| (a.name.clone(), a.host.clone(), AtomicU16::new(a.port)))
            .collect();
        Ok(Arc::new(Broker {
            config,
            logs,
            groups,
            cluster_id,
            replicas,
            producer_ids,
            txns,
            authorizer,
            quotas: crate::security::quota::QuotaManager::new(quota_window),
            connections: crate::security::connections::ConnectionQuotas::new(connection_limits),
            effective,
            dynamic: std::sync::Mutex::new(dynamic_configs),
            security,
            advertised,
            quorum: std::sync::OnceLock::new(),
            replication: std::sync::OnceLock::new(),
            broker_epoch: Default::default(),
            incarnation_id: crate::meta_properties::random_uuid(),
            caught_up: std::sync::atomic::AtomicBool::new(alone),
            all_dirs_offline,
        }))
    }

    /// Resolves once every data directory has gone offline after I/O errors.
    pub async fn all_dirs_offline(&self) {
        let mut offline = self.all_dirs_offline.subscribe();
        let _ = offline.wait_for(|gone| *gone).await;
    }

    /// A fresh producer id.
    pub fn next_producer_id(&self) -> std::io::Result<i64> {
        self.producer_ids.next()
    }

    /// Records the port `listener` actually bound, for an advertised port of 0.
    pub fn set_bound_port(&self, listener: &str, port: u16) {
        for (name, _, advertised) in &self.advertised {
            if name == listener && advertised.load(Ordering::SeqCst) == 0 {
                advertised.store(port, Ordering::SeqCst);
            }
        }
    }

    /// The host and port clients that came in on `listener` are told to use (Kafka answers
    /// with the endpoints of the listener the request arrived on); the inter-broker listener's
    /// when `listener` is not advertised.
    pub fn advertised_for(&self, listener: &str) -> (String, u16) {
        let find = |wanted: &str| {
            self.advertised
                .iter()
                .find(|(name, _, _)| name == wanted)
                .map(|(_, host, port)| (host.clone(), port.load(Ordering::SeqCst)))
        };
        find(listener)
            .or_else(|| find(&self.config.inter_broker_listener))
            .unwrap_or_default()
    }

    /// Closes all logs cleanly.
    pub fn shutdown(&self) -> std::io::Result<()> {
        self.logs.shutdown()
    }
}

/// URL-safe base64 without padding: how Kafka prints cluster ids and topic ids.
pub fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}
