//! All partition logs of a broker: opening them at startup, creating and deleting topics,
//! checkpoints, the clean-shutdown marker, and the background flush and retention schedules.
//!
//! ```text
//! <log dir>/
//!     .kafka_cleanshutdown                 present only after a clean shutdown
//!     recovery-point-offset-checkpoint     per partition: offset below which all is synced
//!     log-start-offset-checkpoint          per partition: first offset still readable
//!     <topic>-<partition>/                 a partition log (see log::partition)
//! <first log dir>/__strata_metadata/<topic>.topic   topic id, partition count, config overrides
//! ```
//! Checkpoint files use Kafka's text format: a version line (`0`), a count line, then one
//! `<topic> <partition> <offset>` line per partition. They are rewritten atomically.
//!
//! Topic creation writes the partitions' directories first and the `.topic` file last; deletion
//! removes the `.topic` file first. So the `.topic` file is the commit point: a crash in between
//! leaves only directories without a topic, which startup deletes.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::LogConfig;
use crate::error::LogError;
use crate::failure::LogDirFailures;
use crate::io::{FileLock, Io};
pub use crate::log::partition::Partition;
use crate::log::partition::{partition_dir_name, PartitionLog, SegmentPlacer};
use crate::log::segment::now_ms;
use crate::tier::migrator::{MigrationStats, Migrator, MigratorConfig};
use crate::tier::pool::{PoolRecovery, SegmentPool};
use crate::tier::usage::{PartitionPlacer, TierDirStats, TierUsage};
use crate::tier::TierDir;
use crate::units::{LeaderEpoch, Offset};

pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";
pub const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
pub const LOG_START_CHECKPOINT: &str = "log-start-offset-checkpoint";
pub const HIGH_WATERMARK_CHECKPOINT: &str = "replication-offset-checkpoint";
pub const METADATA_DIR: &str = "__strata_metadata";
/// The metadata quorum's log (Kafka's name): in a log dir, but not a partition of this
/// manager's, so never taken for a leftover.
pub const CLUSTER_METADATA_DIR: &str = "__cluster_metadata-0";

/// Turns a topic's config overrides into its effective log settings (the broker knows the keys
/// and the server-wide defaults).
pub type ConfigResolver = Arc<dyn Fn(&BTreeMap<String, String>) -> LogConfig + Send + Sync>;

#[derive(Debug, Clone)]
pub struct LogManagerConfig {
    pub log_dirs: Vec<PathBuf>,
    pub retention_check_interval_ms: u64,
    pub flush_scheduler_interval_ms: u64,
    pub flush_offset_checkpoint_interval_ms: u64,
    /// Tier directories (first, second) when segments live in tiers; None: in `log_dirs`.
    pub tiers: Option<(Vec<TierDir>, Vec<TierDir>)>,
    /// Migration between the tiers; None: segments stay where they were placed.
    pub migration: Option<MigratorConfig>,
    /// Whether each tier's segments are written through mappings (PMEM): [first, second].
    pub mapped_tiers: [bool; 2],
    /// A pool of pre-allocated segment files in every first-tier directory (the `pmem` channel).
    pub pool: Option<PoolConfig>,
}

/// The `pmem` channel's pools (`log.pmem.pool.ratio`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolConfig {
    /// Fraction of each directory's capacity allocated as pool files at first start.
    pub ratio: f64,
    /// Size of each pool file: the broker's `log.segment.bytes`.
    pub file_bytes: u64,
    /// `log.segment.delete.delay.ms`: how long a given-back file waits before it is reused.
    pub reuse_delay_ms: u64,
}

#[derive(Debug)]
pub struct Topic {
    pub name: String,
    pub id: [u8; 16],
    /// The channel the topic was created on.
    pub channel: Channel,
    /// The partitions this broker hosts, by index: all of them for a broker alone, its
    /// replicas for a node of a cluster.
    partitions: RwLock<BTreeMap<i32, Arc<Partition>>>,
    /// How many partitions the topic has, hosted here or not.
    count: std::sync::atomic::AtomicI32,
    overrides: RwLock<BTreeMap<String, String>>,
    /// Traffic counters, for metrics.
    pub stats: TopicStats,
}

/// A topic's traffic since the broker started (Kafka's BytesInPerSec, MessagesInPerSec and
/// BytesOutPerSec, as counters).
#[derive(Debug, Default)]
pub struct TopicStats {
    /// Bytes of record batches produced (retries of batches already written not counted).
    pub bytes_in: std::sync::atomic::AtomicU64,
    pub records_in: std::sync::atomic::AtomicU64,
    /// Record bytes sent to consumers.
    pub bytes_out: std::sync::atomic::AtomicU64,
    /// Record bytes sent to followers.
    pub replication_bytes_out: std::sync::atomic::AtomicU64,
}

impl Topic {
    /// The partitions hosted here, in index order.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
    /// Partition `index`, if this broker hosts it.
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&index)
            .cloned()
    }
    /// How many partitions the topic has (hosted here or not).
    pub fn partition_count(&self) -> i32 {
        self.count.load(std::sync::atomic::Ordering::SeqCst)
    }
    /// Whether the topic has partition `index` (hosted here or not).
    pub fn has_partition(&self, index: i32) -> bool {
        (0..self.partition_count()).contains(&index)
    }
    /// The indexes of the partitions hosted here.
    pub fn hosted(&self) -> std::collections::BTreeSet<i32> {
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect()
    }
    pub fn overrides(&self) -> BTreeMap<String, String> {
        self.overrides
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The name of the lock file in every data and tier directory, as Kafka's.
pub const LOCK_FILE: &str = ".lock";

pub struct LogManager {
    io: Arc<dyn Io>,
    tier_usage: Option<Arc<TierUsage>>,
    config: LogManagerConfig,
    resolver: ConfigResolver,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serialises topic creation, deletion and alteration (metadata file writes).
    admin: Mutex<()>,
    stop: Arc<AtomicBool>,
    background: Mutex<Option<JoinHandle<()>>>,
    migrator: Mutex<Option<Migrator>>,
    was_clean: bool,
    /// The `.lock` of every data and tier directory, held for the manager's lifetime.
    _locks: Vec<FileLock>,
    /// Directories taken offline by I/O errors, shared with every log.
    failures: Arc<LogDirFailures>,
    /// The log cleaner's threads, when started.
    cleaner: cleaner::Cleaner,
}

impl std::fmt::Debug for LogManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogManager")
            .field("config", &self.config)
            .finish()
    }
}

mod background;
mod cleaner;
mod topic_meta;
mod topics;

pub use cleaner::{CleanerConfig, CleanerStats, CLEANER_CHECKPOINT};

use background::read_checkpoint;
pub use topic_meta::Channel;

/// What recovery did to all logs at a start, for one summary line.
#[derive(Debug, Default)]
struct RecoveryTotals {
    logs: usize,
    segments_recovered: usize,
    bytes_truncated: u64,
    segments_dropped: usize,
}

impl RecoveryTotals {
    fn add(&mut self, report: &crate::log::partition::RecoveryReport) {
        if report.segments_recovered > 0 || report.segments_dropped > 0 {
            self.logs += 1;
        }
        self.segments_recovered += report.segments_recovered;
        self.bytes_truncated += report.bytes_truncated;
        self.segments_dropped += report.segments_dropped;
    }
}

impl LogManager {
    /// Opens every topic found on disk, recovering logs if the last shutdown was not clean.
    pub fn open(
        io: Arc<dyn Io>,
        config: LogManagerConfig,
        resolver: ConfigResolver,
    ) -> Result<Arc<LogManager>, LogError> {
        let locks = Self::lock_dirs(&*io, &config)?;
        let mut was_clean = true;
        let recovery_started = std::time::Instant::now();
        let mut recovered = RecoveryTotals::default();
        let mut recovery_points = HashMap::new();
        let mut start_offsets = HashMap::new();
        let mut high_watermarks = HashMap::new();
        let mut cleaner_checkpoints = HashMap::new();
        for dir in &config.log_dirs {
            let marker = dir.join(CLEAN_SHUTDOWN_FILE);
            let has_data = io
                .list_dir(dir)?
                .iter()
                .any(|n| n != CLEAN_SHUTDOWN_FILE && n != LOCK_FILE);
            if io.exists(&marker) {
                io.remove_file(&marker)?;
                io.sync_dir(dir)?;
            } else if has_data {
                was_clean = false;
            }
            recovery_points.extend(read_checkpoint(&*io, &dir.join(RECOVERY_POINT_CHECKPOINT)));
            start_offsets.extend(read_checkpoint(&*io, &dir.join(LOG_START_CHECKPOINT)));
            high_watermarks.extend(read_checkpoint(&*io, &dir.join(HIGH_WATERMARK_CHECKPOINT)));
            cleaner_checkpoints.extend(read_checkpoint(&*io, &dir.join(CLEANER_CHECKPOINT)));
            // Finish deletions a crash interrupted.
            for name in io.list_dir(dir)? {
                if name.ends_with("-delete") {
                    io.remove_dir_all(&dir.join(&name))?;
                }
            }
        }
        let meta_dir = config.log_dirs[0].join(METADATA_DIR);
        io.create_dir_durable(&meta_dir)?;
        let mut pools = Vec::new();
        if let (Some(pool), Some((first, _))) = (&config.pool, &config.tiers) {
            for dir in first {
                let count = (pool.ratio * dir.capacity_bytes as f64 / pool.file_bytes as f64)
                    .floor() as usize;
                let (pool_files, report) =
                    SegmentPool::open(io.clone(), &dir.path, pool.file_bytes, count)?;
                if report != PoolRecovery::default() {
                    tracing::info!(dir = %dir.path.display(), ?report, "segment pool opened");
                }
                pool_files.set_reuse_delay(Duration::from_millis(pool.reuse_delay_ms));
                pool_files.start_cleaner();
                pools.push(pool_files);
            }
        }
        let tier_usage = config.tiers.as_ref().map(|(first, second)| {
            TierUsage::with_layout(first, second, config.mapped_tiers, &pools)
        });
        let manager = LogManager {
            io: io.clone(),
            tier_usage,
            config: config.clone(),
            resolver,
            topics: RwLock::new(BTreeMap::new()),
            admin: Mutex::new(()),
            stop: Arc::new(AtomicBool::new(false)),
            background: Mutex::new(None),
            migrator: Mutex::new(None),
            was_clean,
            _locks: locks,
            failures: Arc::new(LogDirFailures::default()),
            cleaner: cleaner::Cleaner::default(),
        };
        let mut known_dirs = std::collections::HashSet::new();
        for file in io.list_dir(&meta_dir)? {
            let Some(name) = file.strip_suffix(".topic") else {
                if file.ends_with(".tmp") {
                    io.remove_file(&meta_dir.join(&file))?;
                }
                continue;
            };
            let path = meta_dir.join(&file);
            let topic_file = Self::read_topic_file(&*io, &path)?;
            let channel = manager.check_placement(name, &topic_file)?;
            let hosted = topic_file
                .hosted
                .clone()
                .unwrap_or_else(|| (0..topic_file.partitions).collect());
            if topic_file.channel.is_none() {
                // Written before channels were recorded: record what was found, once.
                manager.write_topic_file(
                    name,
                    &topic_file.id,
                    topic_file.partitions,
                    &topic_file.overrides,
                    channel,
                    &hosted,
                )?;
            }
            let (id, count, overrides) =
                (topic_file.id, topic_file.partitions, topic_file.overrides);
            let log_config = manager.log_config(channel, &overrides);
            let mut partitions = BTreeMap::new();
            for p in hosted.iter().copied().filter(|p| (0..count).contains(p)) {
                let dir_name = partition_dir_name(name, p);
                known_dirs.insert(dir_name.clone());
                let log_dir = config
                    .log_dirs
                    .iter()
                    .find(|d| io.exists(&d.join(&dir_name)))
                    .cloned()
                    .unwrap_or_else(|| manager.pick_log_dir());
                let key = (name.to_string(), p);
                let log = PartitionLog::open_placed(
                    io.clone(),
                    &log_dir.join(&dir_name),
                    name,
                    p,
                    log_config.clone(),
                    was_clean,
                    Offset(*recovery_points.get(&key).unwrap_or(&0)),
                    Offset(*start_offsets.get(&key).unwrap_or(&0)),
                    manager.placer(&dir_name, &log_config),
                )?;
                let mut log = log;
                log.set_failures(manager.failures.clone());
                if let Some(hw) = high_watermarks.get(&key) {
                    log.restore_high_watermark(Offset(*hw));
                }
                if let Some(c) = cleaner_checkpoints.get(&key) {
                    log.set_cleaner_checkpoint(Offset(*c));
                }
                let report = log.recovery_report();
                recovered.add(&report);
                if report.bytes_truncated > 0 || report.segments_dropped > 0 {
                    // Data past a crash point was cut: worth a line of its own.
                    tracing::warn!(
                        "recovered {name}-{p}: {} bytes of a torn tail truncated, {} segments \
                         dropped, {} segments scanned",
                        report.bytes_truncated,
                        report.segments_dropped,
                        report.segments_recovered
                    );
                } else if report.segments_recovered > 0 {
                    tracing::debug!(
                        "recovered {name}-{p}: {} segments scanned, nothing truncated",
                        report.segments_recovered
                    );
                }
                partitions.insert(p, Arc::new(Partition::new(name, p, log_dir, log)));
            }
            let topic = Topic {
                name: name.to_string(),
                id,
                channel,
                partitions: RwLock::new(partitions),
                count: count.into(),
                overrides: RwLock::new(overrides),
                stats: TopicStats::default(),
            };
            manager
                .topics
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name.to_string(), Arc::new(topic));
        }
        // Partition directories without a topic are leftovers of a creation or a deletion that
        // did not finish.
        let tier_dirs = manager.tier_dirs();
        for dir in config.log_dirs.iter().chain(tier_dirs.iter()) {
            if !io.exists(dir) {
                continue;
            }
            for name in io.list_dir(dir)? {
                let is_partition_dir = name
                    .rsplit_once('-')
                    .is_some_and(|(_, p)| p.parse::<i32>().is_ok());
                if is_partition_dir && !known_dirs.contains(&name) && name != CLUSTER_METADATA_DIR {
                    tracing::warn!(dir = %dir.join(&name).display(), "removing partition directory of no topic");
                    manager.remove_partition_dir(&dir.join(&name))?;
                }
            }
        }
        if recovered.logs > 0 {
            tracing::info!(
                "recovered {} logs after an unclean shutdown in {} ms: {} segments scanned, {} \
                 bytes truncated, {} segments dropped",
                recovered.logs,
                recovery_started.elapsed().as_millis(),
                recovered.segments_recovered,
                recovered.bytes_truncated,
                recovered.segments_dropped
            );
        }
        let manager = Arc::new(manager);
        manager.write_checkpoints()?;
        Ok(manager)
    }

    /// The log dir holding the fewest partitions.
    fn pick_log_dir(&self) -> PathBuf {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        let mut counts: Vec<(usize, &PathBuf)> =
            self.config.log_dirs.iter().map(|d| (0, d)).collect();
        for topic in topics.values() {
            for p in topic.partitions() {
                if let Some(c) = counts.iter_mut().find(|(_, d)| **d == p.log_dir) {
                    c.0 += 1;
                }
            }
        }
        counts
            .iter()
            .min_by_key(|(c, _)| *c)
            .map(|(_, d)| (*d).clone())
            .unwrap_or_else(|| self.config.log_dirs[0].clone())
    }

    /// Directories taken offline by I/O errors.
    pub fn failures(&self) -> &Arc<LogDirFailures> {
        &self.failures
    }

    pub fn was_clean_start(&self) -> bool {
        self.was_clean
    }

    pub fn log_dirs(&self) -> &[PathBuf] {
        &self.config.log_dirs
    }

    pub fn io(&self) -> &Arc<dyn Io> {
        &self.io
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn topic_by_id(&self, id: &[u8; 16]) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .find(|t| &t.id == id)
            .cloned()
    }

    /// The segment placer of a partition when its segments live in tiers.
    fn placer(
        &self,
        partition_dir_name: &str,
        config: &LogConfig,
    ) -> Option<Arc<dyn SegmentPlacer>> {
        if config.plain_files {
            return None;
        }
        self.tier_usage.as_ref().map(|usage| {
            Arc::new(PartitionPlacer {
                usage: usage.clone(),
                partition_dir_name: partition_dir_name.to_string(),
            }) as Arc<dyn SegmentPlacer>
        })
    }

    /// Removes a partition's directory, giving its segment files back to their pool first.
    fn remove_partition_dir(&self, dir: &Path) -> io::Result<()> {
        if let Some(pool) = self.tier_usage.as_ref().and_then(|u| u.pool_of(dir)) {
            for name in self.io.list_dir(dir)? {
                if name.ends_with(".log") {
                    pool.give_back(&dir.join(name))?;
                }
            }
        }
        self.io.remove_dir_all(dir)
    }

    /// The pools of segment files (the `pmem` channel), first tier first.
    pub fn pools(&self) -> Vec<Arc<SegmentPool>> {
        self.tier_usage
            .as_ref()
            .map(|u| u.pools())
            .unwrap_or_default()
    }

    /// Every tier directory's capacity, usage and traffic, when there are tiers.
    pub fn tier_usage(&self) -> Vec<TierDirStats> {
        self.tier_usage
            .as_ref()
            .map(|u| u.snapshot())
            .unwrap_or_default()
    }

    fn open_partition(&self, name: &str, p: i32, config: LogConfig) -> io::Result<Arc<Partition>> {
        let log_dir = self.pick_log_dir();
        let dir = log_dir.join(partition_dir_name(name, p));
        let placer = self.placer(&partition_dir_name(name, p), &config);
        let mut log = PartitionLog::open_placed(
            self.io.clone(),
            &dir,
            name,
            p,
            config,
            true,
            Offset::ZERO,
            Offset::ZERO,
            placer,
        )?;
        log.set_failures(self.failures.clone());
        // The partition's first leader epoch is recorded when it is created, as Kafka records an
        // epoch when a replica becomes leader: not by the first produce, whose request would
        // otherwise wait for the checkpoint's file creation and syncs.
        log.become_leader(LeaderEpoch::INITIAL, true)?;
        Ok(Arc::new(Partition::new(name, p, log_dir, log)))
    }

    /// Re-resolves every topic's settings (after a change of the server-wide defaults).
    pub fn refresh_configs(&self) {
        for topic in self.topics() {
            let config = self.log_config(topic.channel, &topic.overrides());
            for p in topic.partitions() {
                p.log().set_config(config.clone());
            }
        }
    }

    fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.topics().iter().flat_map(|t| t.partitions()).collect()
    }

    pub fn shutdown(&self) -> io::Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        self.stop_cleaner();
        if let Some(mut m) = self
            .migrator
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            m.stop();
        }
        if let Some(h) = self
            .background
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = h.join();
        }
        // Offline logs are left for recovery at the next start: no final flush, no
        // clean-shutdown marker in their directories.
        let mut unclean: Vec<PathBuf> = Vec::new();
        for p in self.all_partitions() {
            let mut log = p.log();
            if log.offline().is_none() && log.close().is_ok() {
                continue;
            }
            unclean.push(p.log_dir.clone());
        }
        self.write_checkpoints()?;
        for dir in &self.config.log_dirs {
            if self.failures.is_offline(dir) || unclean.contains(dir) {
                tracing::warn!(dir = %dir.display(), "not marked clean: its logs are recovered at the next start");
                continue;
            }
            self.io.write_atomic(&dir.join(CLEAN_SHUTDOWN_FILE), b"")?;
        }
        for pool in self.pools() {
            pool.stop();
        }
        Ok(())
    }
}

impl Drop for LogManager {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for pool in self.pools() {
            pool.stop();
        }
    }
}
