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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::config::LogConfig;
use crate::error::LogError;
use crate::failure::LogDirFailures;
use crate::io::{FileLock, Io};
use crate::log::partition::{partition_dir_name, PartitionLog, SegmentPlacer};
use crate::log::segment::now_ms;
use crate::tier::migrator::{MigrationStats, Migrator, MigratorConfig};
use crate::tier::pool::{PoolRecovery, SegmentPool};
use crate::tier::usage::{PartitionPlacer, TierDirStats, TierUsage};
use crate::tier::TierDir;

pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";
pub const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
pub const LOG_START_CHECKPOINT: &str = "log-start-offset-checkpoint";
pub const HIGH_WATERMARK_CHECKPOINT: &str = "replication-offset-checkpoint";
pub const METADATA_DIR: &str = "__strata_metadata";

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

/// One partition: its log under a mutex.
#[derive(Debug)]
pub struct Partition {
    pub topic: String,
    pub index: i32,
    pub log_dir: PathBuf,
    log: Mutex<PartitionLog>,
}

impl Partition {
    /// Locks the log. A panic while it was held (a bug) may have left the log half-changed, so
    /// the log is then stopped: it answers KAFKA_STORAGE_ERROR until a restart recovers it.
    pub fn log(&self) -> MutexGuard<'_, PartitionLog> {
        self.log.lock().unwrap_or_else(|poisoned| {
            let mut log = poisoned.into_inner();
            log.stop("a thread panicked while it held the partition's lock");
            log
        })
    }
}

#[derive(Debug)]
pub struct Topic {
    pub name: String,
    pub id: [u8; 16],
    /// The channel the topic was created on.
    pub channel: Channel,
    partitions: RwLock<Vec<Arc<Partition>>>,
    overrides: RwLock<BTreeMap<String, String>>,
}

impl Topic {
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        let parts = self.partitions.read().unwrap_or_else(|e| e.into_inner());
        usize::try_from(index)
            .ok()
            .and_then(|i| parts.get(i).cloned())
    }
    pub fn partition_count(&self) -> i32 {
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len() as i32
    }
    pub fn overrides(&self) -> BTreeMap<String, String> {
        self.overrides
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Where a topic's segments live, recorded in its `.topic` file when it is created: a topic is
/// always opened on the channel it was created on, whatever the broker's configuration says now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// Segments in the partition's directory under `log.dirs` (Kafka's layout).
    File,
    /// Segments in the first and second tiers' directories, migrating between them.
    Tiered,
    /// Segments in pool files of the first tier's directories.
    Pmem,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::File => "file",
            Channel::Tiered => "tiered",
            Channel::Pmem => "pmem",
        }
    }
    fn parse(s: &str) -> Option<Channel> {
        match s {
            "file" => Some(Channel::File),
            "tiered" => Some(Channel::Tiered),
            "pmem" => Some(Channel::Pmem),
            _ => None,
        }
    }
}

/// What a `.topic` file holds.
struct TopicFile {
    id: [u8; 16],
    partitions: i32,
    overrides: BTreeMap<String, String>,
    /// None in files written before the channel was recorded.
    channel: Option<Channel>,
    /// The tier directories the broker had when the topic was created (tiered and pmem topics).
    segment_dirs: Vec<PathBuf>,
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
}

impl std::fmt::Debug for LogManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogManager")
            .field("config", &self.config)
            .finish()
    }
}

fn hex(id: &[u8; 16]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 16]> {
    if s.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
    }
    Some(out)
}

fn read_checkpoint(io: &dyn Io, path: &Path) -> HashMap<(String, i32), i64> {
    let mut out = HashMap::new();
    let Ok(bytes) = io.read_all(path) else {
        return out;
    };
    let text = String::from_utf8_lossy(&bytes);
    for line in text.lines().skip(2) {
        let mut parts = line.rsplitn(3, ' ');
        let (Some(offset), Some(partition), Some(topic)) =
            (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if let (Ok(p), Ok(o)) = (partition.parse(), offset.parse()) {
            out.insert((topic.to_string(), p), o);
        }
    }
    out
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
        let mut recovery_points = HashMap::new();
        let mut start_offsets = HashMap::new();
        let mut high_watermarks = HashMap::new();
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
            // Finish deletions a crash interrupted.
            for name in io.list_dir(dir)? {
                if name.ends_with("-delete") {
                    io.remove_dir_all(&dir.join(&name))?;
                }
            }
        }
        let meta_dir = config.log_dirs[0].join(METADATA_DIR);
        io.create_dir_all(&meta_dir)?;
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
            if topic_file.channel.is_none() {
                // Written before channels were recorded: record what was found, once.
                manager.write_topic_file(
                    name,
                    &topic_file.id,
                    topic_file.partitions,
                    &topic_file.overrides,
                    channel,
                )?;
            }
            let (id, count, overrides) =
                (topic_file.id, topic_file.partitions, topic_file.overrides);
            let log_config = manager.log_config(channel, &overrides);
            let mut partitions = Vec::new();
            for p in 0..count {
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
                    *recovery_points.get(&key).unwrap_or(&0),
                    *start_offsets.get(&key).unwrap_or(&0),
                    manager.placer(&dir_name, &log_config),
                )?;
                let mut log = log;
                log.set_failures(manager.failures.clone());
                if let Some(hw) = high_watermarks.get(&key) {
                    log.restore_high_watermark(*hw);
                }
                let report = log.recovery_report();
                if report.segments_recovered > 0 {
                    tracing::info!(topic = name, partition = p, ?report, "recovered log");
                }
                partitions.push(Arc::new(Partition {
                    topic: name.to_string(),
                    index: p,
                    log_dir,
                    log: Mutex::new(log),
                }));
            }
            let topic = Topic {
                name: name.to_string(),
                id,
                channel,
                partitions: RwLock::new(partitions),
                overrides: RwLock::new(overrides),
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
                if is_partition_dir && !known_dirs.contains(&name) {
                    tracing::warn!(dir = %dir.join(&name).display(), "removing partition directory of no topic");
                    manager.remove_partition_dir(&dir.join(&name))?;
                }
            }
        }
        let manager = Arc::new(manager);
        manager.write_checkpoints()?;
        Ok(manager)
    }

    fn read_topic_file(io: &dyn Io, path: &Path) -> Result<TopicFile, LogError> {
        let corrupt = |reason: &str| LogError::CorruptMetadata {
            path: path.display().to_string(),
            reason: reason.to_string(),
        };
        let bytes = io.read_all(path)?;
        let text = String::from_utf8(bytes).map_err(|_| corrupt("not UTF-8"))?;
        let mut id = None;
        let mut count = None;
        let mut overrides = BTreeMap::new();
        let mut channel = None;
        let mut segment_dirs = Vec::new();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            match k {
                "topic.id" => id = unhex(v),
                "partitions" => count = v.parse::<i32>().ok(),
                "channel" => {
                    channel = Some(Channel::parse(v).ok_or_else(|| corrupt("unknown channel"))?)
                }
                "segment.dir" => segment_dirs.push(PathBuf::from(v)),
                _ => {
                    if let Some(key) = k.strip_prefix("config.") {
                        overrides.insert(key.to_string(), v.to_string());
                    }
                }
            }
        }
        match (id, count) {
            (Some(id), Some(count)) if count > 0 => Ok(TopicFile {
                id,
                partitions: count,
                overrides,
                channel,
                segment_dirs,
            }),
            _ => Err(corrupt("missing topic.id or partitions")),
        }
    }

    fn write_topic_file(
        &self,
        name: &str,
        id: &[u8; 16],
        count: i32,
        overrides: &BTreeMap<String, String>,
        channel: Channel,
    ) -> io::Result<()> {
        let mut text = format!(
            "topic.id={}\npartitions={count}\nchannel={}\n",
            hex(id),
            channel.as_str()
        );
        if channel != Channel::File {
            for dir in self.tier_dirs() {
                text.push_str(&format!("segment.dir={}\n", dir.display()));
            }
        }
        for (k, v) in overrides {
            text.push_str(&format!("config.{k}={v}\n"));
        }
        let path = self.config.log_dirs[0]
            .join(METADATA_DIR)
            .join(format!("{name}.topic"));
        self.io.write_atomic(&path, text.as_bytes())
    }

    /// Creates and locks every data and tier directory, before anything in them is read or
    /// changed: a second broker on any of them stops here, naming the directory.
    fn lock_dirs(io: &dyn Io, config: &LogManagerConfig) -> Result<Vec<FileLock>, LogError> {
        let tier_dirs = config
            .tiers
            .iter()
            .flat_map(|(first, second)| first.iter().chain(second))
            .map(|d| &d.path);
        let mut locks = Vec::new();
        for dir in config.log_dirs.iter().chain(tier_dirs) {
            io.create_dir_all(dir).map_err(|e| LogError::dir(dir, e))?;
            match io.lock_file(&dir.join(LOCK_FILE)) {
                Ok(lock) => locks.push(lock),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(LogError::DirectoryLocked {
                        dir: dir.display().to_string(),
                    })
                }
                Err(e) => return Err(LogError::dir(dir, e)),
            }
        }
        Ok(locks)
    }

    /// The channel this broker creates topics on.
    fn broker_channel(&self) -> Channel {
        match (&self.config.pool, &self.config.tiers) {
            (Some(_), _) => Channel::Pmem,
            (None, Some(_)) => Channel::Tiered,
            (None, None) => Channel::File,
        }
    }

    /// Every configured tier directory, first tier first.
    fn tier_dirs(&self) -> Vec<PathBuf> {
        self.config
            .tiers
            .iter()
            .flat_map(|(first, second)| first.iter().chain(second))
            .map(|d| d.path.clone())
            .collect()
    }

    /// A topic's log settings: its overrides resolved, on the channel it was created on.
    fn log_config(&self, channel: Channel, overrides: &BTreeMap<String, String>) -> LogConfig {
        let mut config = (self.resolver)(overrides);
        config.plain_files = channel == Channel::File;
        config
    }

    /// The channel a topic found at startup is opened on, after checking that its data is all
    /// where that channel looks: a topic whose segments sit in directories this configuration
    /// does not read (another channel's, or tier directories no longer configured) would be
    /// served as empty and given its offsets again, so the start stops instead.
    fn check_placement(&self, name: &str, file: &TopicFile) -> Result<Channel, LogError> {
        let log_dirs = &self.config.log_dirs;
        let tier_dirs = self.tier_dirs();
        let holds_segments = |dir: &Path, p: i32| {
            let part = dir.join(partition_dir_name(name, p));
            self.io.list_dir(&part).is_ok_and(|names| {
                names
                    .iter()
                    .any(|n| matches!(crate::io::parse_offset_file(n), Some((_, "log"))))
            })
        };
        let mut candidates: Vec<PathBuf> = log_dirs.clone();
        for d in tier_dirs.iter().chain(&file.segment_dirs) {
            if !candidates.contains(d) {
                candidates.push(d.clone());
            }
        }
        let found: Vec<(PathBuf, i32)> = (0..file.partitions)
            .flat_map(|p| {
                candidates
                    .iter()
                    .filter(move |d| holds_segments(d, p))
                    .map(move |d| (d.clone(), p))
            })
            .collect();
        let channel = file.channel.unwrap_or_else(|| {
            // A topic from before channels were recorded: it is a file-channel topic when its
            // segments are in its own directories, else it was made on this broker's channel.
            if found.iter().any(|(d, _)| log_dirs.contains(d))
                || (self.resolver)(&file.overrides).plain_files
            {
                Channel::File
            } else {
                self.broker_channel()
            }
        });
        let served = channel == Channel::File || channel == self.broker_channel();
        let looked_in: &[PathBuf] = if channel == Channel::File {
            log_dirs
        } else {
            &tier_dirs
        };
        let hidden: Vec<String> = found
            .iter()
            .filter(|(d, _)| !served || !looked_in.contains(d))
            .map(|(d, p)| d.join(partition_dir_name(name, *p)).display().to_string())
            .collect();
        if !served || !hidden.is_empty() {
            let advice = match channel {
                _ if served => "add those directories back to storage.tiers.* (or log.dirs) \
                                and restart, or remove the topic's directories there to drop \
                                its data"
                    .to_string(),
                _ => format!(
                    "start the broker with log.channel.type={} and the storage.tiers.* \
                     directories that hold the data, or delete the topic's directories to drop \
                     its data",
                    channel.as_str()
                ),
            };
            let places = if hidden.is_empty() {
                file.segment_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            } else {
                hidden.join(", ")
            };
            return Err(LogError::MisplacedTopic {
                topic: name.to_string(),
                message: format!(
                    "topic {name} was created on the {} channel and its data is in [{places}], \
                     where this broker (log.channel.type={}) does not look; it is not served \
                     as empty: {advice}",
                    channel.as_str(),
                    self.broker_channel().as_str(),
                ),
            });
        }
        Ok(channel)
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
        let mut log =
            PartitionLog::open_placed(self.io.clone(), &dir, name, p, config, true, 0, 0, placer)?;
        log.set_failures(self.failures.clone());
        Ok(Arc::new(Partition {
            topic: name.to_string(),
            index: p,
            log_dir,
            log: Mutex::new(log),
        }))
    }

    /// Creates a topic; `id` is its topic id (random, chosen by the caller).
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        overrides: BTreeMap<String, String>,
        id: [u8; 16],
    ) -> Result<Arc<Topic>, LogError> {
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        if self.topic(name).is_some() {
            return Err(LogError::TopicExists(name.to_string()));
        }
        if partitions < 1 {
            return Err(LogError::InvalidPartitions(partitions));
        }
        let channel = if (self.resolver)(&overrides).plain_files {
            Channel::File
        } else {
            self.broker_channel()
        };
        let config = self.log_config(channel, &overrides);
        let mut parts = Vec::new();
        for p in 0..partitions {
            parts.push(self.open_partition(name, p, config.clone())?);
        }
        self.write_topic_file(name, &id, partitions, &overrides, channel)?;
        let topic = Arc::new(Topic {
            name: name.to_string(),
            id,
            channel,
            partitions: RwLock::new(parts),
            overrides: RwLock::new(overrides),
        });
        self.topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), topic.clone());
        Ok(topic)
    }

    /// Deletes a topic and all its data.
    pub fn delete_topic(&self, name: &str) -> Result<(), LogError> {
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let topic = self
            .topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
            .ok_or_else(|| LogError::UnknownTopic(name.to_string()))?;
        let path = self.config.log_dirs[0]
            .join(METADATA_DIR)
            .join(format!("{name}.topic"));
        self.io.remove_file(&path)?;
        self.io.sync_dir(path.parent().expect("has parent"))?;
        for p in topic.partitions() {
            // Under the partition's lock, so that no append in flight rolls into a pool file
            // of a directory being removed.
            let log = p.log();
            let dir = log.dir().to_path_buf();
            for d in log.segment_dirs().iter().filter(|d| **d != dir) {
                if self.io.exists(d) {
                    self.remove_partition_dir(d)?;
                }
            }
            drop(log);
            let doomed = p.log_dir.join(format!(
                "{}.{}-delete",
                partition_dir_name(name, p.index),
                hex(&topic.id)
            ));
            self.io.rename(&dir, &doomed)?;
            self.io.remove_dir_all(&doomed)?;
        }
        Ok(())
    }

    /// Grows a topic to `count` partitions.
    pub fn add_partitions(&self, name: &str, count: i32) -> Result<(), LogError> {
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let topic = self
            .topic(name)
            .ok_or_else(|| LogError::UnknownTopic(name.to_string()))?;
        let current = topic.partition_count();
        if count <= current {
            return Err(LogError::InvalidPartitions(count));
        }
        let overrides = topic.overrides();
        let config = self.log_config(topic.channel, &overrides);
        let mut added = Vec::new();
        for p in current..count {
            added.push(self.open_partition(name, p, config.clone())?);
        }
        self.write_topic_file(name, &topic.id, count, &overrides, topic.channel)?;
        topic
            .partitions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .extend(added);
        Ok(())
    }

    /// Replaces a topic's config overrides.
    pub fn set_topic_overrides(
        &self,
        name: &str,
        overrides: BTreeMap<String, String>,
    ) -> Result<(), LogError> {
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let topic = self
            .topic(name)
            .ok_or_else(|| LogError::UnknownTopic(name.to_string()))?;
        self.write_topic_file(
            name,
            &topic.id,
            topic.partition_count(),
            &overrides,
            topic.channel,
        )?;
        let config = self.log_config(topic.channel, &overrides);
        for p in topic.partitions() {
            p.log().set_config(config.clone());
        }
        *topic.overrides.write().unwrap_or_else(|e| e.into_inner()) = overrides;
        Ok(())
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

    /// Writes the recovery-point and log-start-offset checkpoints of every log dir.
    pub fn write_checkpoints(&self) -> io::Result<()> {
        // An offline directory's files are left as the failure found them.
        for dir in self
            .config
            .log_dirs
            .iter()
            .filter(|d| !self.failures.is_offline(d))
        {
            let (mut recovery, mut starts, mut high_watermarks) =
                (Vec::new(), Vec::new(), Vec::new());
            for p in self.all_partitions().iter().filter(|p| &p.log_dir == dir) {
                let log = p.log();
                let line = |offset: i64| format!("{} {} {offset}", p.topic, p.index);
                recovery.push(line(log.recovery_point()));
                starts.push(line(log.log_start_offset()));
                high_watermarks.push(line(log.high_watermark()));
            }
            for (file, lines) in [
                (RECOVERY_POINT_CHECKPOINT, recovery),
                (LOG_START_CHECKPOINT, starts),
                (HIGH_WATERMARK_CHECKPOINT, high_watermarks),
            ] {
                let text = format!(
                    "0\n{}\n{}",
                    lines.len(),
                    lines.iter().map(|l| format!("{l}\n")).collect::<String>()
                );
                let written = self.io.write_atomic(&dir.join(file), text.as_bytes());
                if let Err(e) = written {
                    self.failures.fail(&dir.join(file), &e);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Flushes logs whose `flush.ms` has passed.
    pub fn flush_due(&self, now: i64) {
        for p in self.all_partitions() {
            let mut log = p.log();
            if log.unflushed_messages() > 0
                && log.ms_since_flush(now) >= log.config().flush_ms
                && log.offline().is_none()
            {
                // The syncs run outside the partition's lock, so appends go on meanwhile. A
                // failure takes the directory offline and is logged there.
                let Ok(job) = log.begin_flush() else { continue };
                drop(log);
                if job.run().is_ok() {
                    let _ = p.log().complete_flush(job.target_offset);
                }
            }
        }
    }

    /// Applies retention to every log; returns the number of segments deleted.
    pub fn apply_retention(&self, now: i64) -> usize {
        let mut deleted = 0;
        for p in self.all_partitions() {
            let mut log = p.log();
            if log.offline().is_some() {
                continue;
            }
            match log.apply_retention(now) {
                Ok(n) => deleted += n,
                Err(e) => {
                    tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "retention failed")
                }
            }
        }
        if deleted > 0 {
            tracing::info!(deleted, "retention deleted segments");
            let _ = self.write_checkpoints();
        }
        deleted
    }

    /// Starts the background thread for retention, time-based flushes and checkpoints.
    pub fn start_background(self: &Arc<Self>) {
        let manager = Arc::downgrade(self);
        let stop = self.stop.clone();
        let cfg = self.config.clone();
        let tick = cfg
            .retention_check_interval_ms
            .min(cfg.flush_scheduler_interval_ms)
            .clamp(10, 1000);
        let handle = std::thread::Builder::new()
            .name("log-background".into())
            .spawn(move || {
                let mut last_retention = now_ms();
                let mut last_checkpoint = now_ms();
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(tick));
                    let Some(manager) = manager.upgrade() else {
                        return;
                    };
                    let now = now_ms();
                    manager.flush_due(now);
                    if now - last_retention >= cfg.retention_check_interval_ms as i64 {
                        manager.apply_retention(now);
                        last_retention = now;
                    }
                    if now - last_checkpoint >= cfg.flush_offset_checkpoint_interval_ms as i64 {
                        if let Err(e) = manager.write_checkpoints() {
                            tracing::error!(error = %e, "checkpoint write failed");
                        }
                        last_checkpoint = now;
                    }
                }
            })
            .expect("spawn log background thread");
        *self.background.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        if let (Some(config), true) = (self.config.migration, self.tier_usage.is_some()) {
            *self.migrator.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(Migrator::start(Arc::downgrade(self), config));
        }
    }

    /// Closes every log cleanly and leaves the clean-shutdown marker.
    /// Migration counters, when migration runs.
    pub fn migration_stats(&self) -> Option<Arc<MigrationStats>> {
        self.migrator
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|m| m.stats.clone())
    }

    pub fn shutdown(&self) -> io::Result<()> {
        self.stop.store(true, Ordering::SeqCst);
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
