//! Where a topic is: its `.topic` file (id, partition count, channel, tier directories, config
//! overrides), the directory locks, and the check that a topic's data is where this broker looks.

use super::*;

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
    pub(super) fn parse(s: &str) -> Option<Channel> {
        match s {
            "file" => Some(Channel::File),
            "tiered" => Some(Channel::Tiered),
            "pmem" => Some(Channel::Pmem),
            _ => None,
        }
    }
}

/// What a `.topic` file holds.
pub(super) struct TopicFile {
    pub(super) id: [u8; 16],
    pub(super) partitions: i32,
    pub(super) overrides: BTreeMap<String, String>,
    /// None in files written before the channel was recorded.
    pub(super) channel: Option<Channel>,
    /// The tier directories the broker had when the topic was created (tiered and pmem topics).
    pub(super) segment_dirs: Vec<PathBuf>,
    /// The partitions this broker hosts (a node of a cluster hosts its replicas only); None:
    /// every one.
    pub(super) hosted: Option<std::collections::BTreeSet<i32>>,
}

pub(super) fn hex(id: &[u8; 16]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn unhex(s: &str) -> Option<[u8; 16]> {
    if s.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
    }
    Some(out)
}

impl LogManager {
    pub(super) fn read_topic_file(io: &dyn Io, path: &Path) -> Result<TopicFile, LogError> {
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
        let mut hosted = None;
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
                "hosted" => {
                    hosted = Some(
                        v.split(',')
                            .filter(|p| !p.is_empty())
                            .map(|p| {
                                p.parse::<i32>()
                                    .map_err(|_| corrupt("bad hosted partition"))
                            })
                            .collect::<Result<_, _>>()?,
                    )
                }
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
                hosted,
            }),
            _ => Err(corrupt("missing topic.id or partitions")),
        }
    }

    pub(super) fn write_topic_file(
        &self,
        name: &str,
        id: &[u8; 16],
        count: i32,
        overrides: &BTreeMap<String, String>,
        channel: Channel,
        hosted: &std::collections::BTreeSet<i32>,
    ) -> io::Result<()> {
        let mut text = format!(
            "topic.id={}\npartitions={count}\nchannel={}\n",
            hex(id),
            channel.as_str()
        );
        // Written only when it is not every partition (files of brokers alone never have it).
        if !hosted.iter().copied().eq(0..count) {
            let list: Vec<String> = hosted.iter().map(i32::to_string).collect();
            text.push_str(&format!("hosted={}\n", list.join(",")));
        }
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
    pub(super) fn lock_dirs(
        io: &dyn Io,
        config: &LogManagerConfig,
    ) -> Result<Vec<FileLock>, LogError> {
        let tier_dirs = config
            .tiers
            .iter()
            .flat_map(|(first, second)| first.iter().chain(second))
            .map(|d| &d.path);
        let mut locks = Vec::new();
        for dir in config.log_dirs.iter().chain(tier_dirs) {
            io.create_dir_durable(dir)
                .map_err(|e| LogError::dir(dir, e))?;
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
    pub(super) fn broker_channel(&self) -> Channel {
        match (&self.config.pool, &self.config.tiers) {
            (Some(_), _) => Channel::Pmem,
            (None, Some(_)) => Channel::Tiered,
            (None, None) => Channel::File,
        }
    }

    /// Every configured tier directory, first tier first.
    pub(super) fn tier_dirs(&self) -> Vec<PathBuf> {
        self.config
            .tiers
            .iter()
            .flat_map(|(first, second)| first.iter().chain(second))
            .map(|d| d.path.clone())
            .collect()
    }

    /// A topic's log settings: its overrides resolved, on the channel it was created on.
    pub(super) fn log_config(
        &self,
        channel: Channel,
        overrides: &BTreeMap<String, String>,
    ) -> LogConfig {
        let mut config = (self.resolver)(overrides);
        config.plain_files = channel == Channel::File;
        config
    }

    /// The channel a topic found at startup is opened on, after checking that its data is all
    /// where that channel looks: a topic whose segments sit in directories this configuration
    /// does not read (another channel's, or tier directories no longer configured) would be
    /// served as empty and given its offsets again, so the start stops instead.
    pub(super) fn check_placement(
        &self,
        name: &str,
        file: &TopicFile,
    ) -> Result<Channel, LogError> {
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
}
