//! `strata tiers`: where every segment lives, read from the tier directories.
//!
//! It lists each tier directory with its capacity, the bytes of data its segments hold, its use
//! against the migration threshold, the migrations under way (copies not yet committed), and
//! every partition's segments with their tier, data size and age. The directories come from the
//! running broker's own configuration (DescribeConfigs at `--bootstrap-server`) or, with
//! `--config`/`--override` or when no broker answers, from a config file as `strata server`
//! reads it. The segments themselves are read from the files, so it works with the broker up or
//! down (on the broker's machine).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};
use clap::Args;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{DescribeConfigsRequest, MetadataRequest};
use kafka_protocol::protocol::StrBytes;
use strata_broker::config::ChannelType;
use strata_broker::BrokerConfig;
use strata_storage::batch::{BatchHeader, HEADER_SIZE};

use crate::client::Client;

#[derive(Debug, Args)]
pub struct TiersArgs {
    /// Ask the broker at host:port for its configuration (the default when neither --config
    /// nor --override is given and a broker answers there).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap_server: String,
    /// Read the tier settings from this config file instead of asking a broker.
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Override a config key, as for `strata server` (reads the config file, not the broker).
    #[arg(long = "override")]
    pub overrides: Vec<String>,
}

/// One segment as found on disk.
struct SegmentRow {
    topic: String,
    partition: i32,
    base_offset: i64,
    tier: &'static str,
    /// Bytes of record batches (a pre-allocated or pooled file is longer than its data).
    data_bytes: u64,
    /// The largest record timestamp in the segment (what retention counts from), if any.
    max_timestamp: Option<i64>,
}

/// A copy under way: the segment and the directory it is being copied into.
struct Move {
    partition_dir: String,
    base_offset: i64,
    to: PathBuf,
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn human_age(s: u64) -> String {
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{}m", s / 3600, s / 60 % 60),
        _ => format!("{}d{}h", s / 86_400, s / 3600 % 24),
    }
}

/// `<topic>-<partition>` split at its last dash; None for other directories.
fn partition_of(dir_name: &str) -> Option<(String, i32)> {
    let (topic, index) = dir_name.rsplit_once('-')?;
    Some((topic.to_string(), index.parse().ok()?))
}

/// The last entry of an index file (its entries are fixed-size, the file exactly its entries).
fn last_entry(path: &Path, size: usize) -> Option<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len() as usize;
    if len < size {
        return None;
    }
    let mut buf = vec![0u8; size];
    file.read_exact_at(&mut buf, (len / size * size - size) as u64)
        .ok()?;
    Some(buf)
}

/// The data size and largest timestamp of the segment `<base>.log` in `dir`: the batches are
/// walked from the last offset-index entry (the whole file when it has none) to the first bytes
/// that are not a batch header, and the timestamp is the largest of the time index's last entry
/// and the walked batches'.
fn measure(dir: &Path, base: i64, file_len: u64) -> (u64, Option<i64>) {
    use std::os::unix::fs::FileExt;
    let name = |ext: &str| dir.join(format!("{base:020}.{ext}"));
    let mut position = last_entry(&name("index"), 8)
        .map(|e| u32::from_be_bytes(e[4..8].try_into().expect("4 bytes")) as u64)
        .unwrap_or(0);
    let mut max_timestamp = last_entry(&name("timeindex"), 12)
        .map(|e| i64::from_be_bytes(e[0..8].try_into().expect("8 bytes")))
        .filter(|ts| *ts >= 0);
    let Ok(file) = std::fs::File::open(name("log")) else {
        return (0, max_timestamp);
    };
    let mut header = [0u8; HEADER_SIZE];
    while position + HEADER_SIZE as u64 <= file_len {
        if file.read_exact_at(&mut header, position).is_err() {
            break;
        }
        let Ok(h) = BatchHeader::parse(&header) else {
            break;
        };
        // Zeros (a pre-allocated tail) or other bytes that are no v2 batch end the data.
        if h.magic != 2 || h.total_size() < HEADER_SIZE {
            break;
        }
        let end = position.saturating_add(h.total_size() as u64);
        if h.base_offset < base || end > file_len {
            break;
        }
        if h.max_timestamp >= 0 {
            max_timestamp = Some(max_timestamp.map_or(h.max_timestamp, |t| t.max(h.max_timestamp)));
        }
        position = end;
    }
    (position, max_timestamp)
}

/// Segments (with their data size and age) and uncommitted copies in one tier directory.
fn scan(dir: &Path, tier: &'static str, rows: &mut Vec<SegmentRow>, moves: &mut Vec<Move>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for p in entries.filter_map(|e| e.ok()).filter(|e| e.path().is_dir()) {
        let dir_name = p.file_name().to_string_lossy().into_owned();
        let Some((topic, partition)) = partition_of(&dir_name) else {
            continue;
        };
        let Ok(files) = std::fs::read_dir(p.path()) else {
            continue;
        };
        for f in files.filter_map(|e| e.ok()) {
            let name = f.file_name().to_string_lossy().into_owned();
            if let Some(copy) = name.strip_suffix(".migrating") {
                // One move copies a segment's .log, .index and .timeindex: counted once.
                if let Some(base) = copy
                    .strip_suffix(".log")
                    .and_then(|b| b.parse::<i64>().ok())
                {
                    moves.push(Move {
                        partition_dir: dir_name.clone(),
                        base_offset: base,
                        to: p.path(),
                    });
                }
                continue;
            }
            let Some(base) = name
                .strip_suffix(".log")
                .and_then(|b| b.parse::<i64>().ok())
            else {
                continue;
            };
            let file_len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let (data_bytes, max_timestamp) = measure(&p.path(), base, file_len);
            rows.push(SegmentRow {
                topic: topic.clone(),
                partition,
                base_offset: base,
                tier,
                data_bytes,
                max_timestamp,
            });
        }
    }
}

/// Segments by topic, partition number (not text: 2 before 10) and base offset.
fn sort_rows(rows: &mut [SegmentRow]) {
    rows.sort_by(|a, b| {
        (&a.topic, a.partition, a.base_offset).cmp(&(&b.topic, b.partition, b.base_offset))
    });
}

/// The pmem channel's pool in a tier directory: free files, files waiting to be zeroed, file size.
fn pool_line(dir: &Path) -> Option<String> {
    let pool = dir.join(".pool");
    let names: Vec<String> = std::fs::read_dir(&pool)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let count = |prefix: &str| names.iter().filter(|n| n.starts_with(prefix)).count();
    let meta = std::fs::read_to_string(pool.join("pool.meta")).unwrap_or_default();
    let file_bytes = meta
        .lines()
        .find_map(|l| l.strip_prefix("file.bytes="))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(human_bytes)
        .unwrap_or_else(|| "?".into());
    Some(format!(
        "pool {}: {} free, {} waiting to be zeroed, files of {file_bytes}",
        pool.display(),
        count("free-"),
        count("dirty-")
    ))
}

/// The running broker's configuration as `key=value` overrides (DescribeConfigs of the broker
/// resource), or None when no broker answers at `bootstrap`.
fn broker_settings(bootstrap: &str) -> Result<Option<Vec<String>>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let Ok(mut client) = Client::connect(bootstrap).await else {
            return Ok(None);
        };
        let metadata = client
            .send(MetadataRequest::default().with_topics(Some(Vec::new())))
            .await?;
        let id = metadata
            .brokers
            .first()
            .map(|b| b.node_id.0)
            .context("the broker listed no brokers in Metadata")?;
        let described = client
            .send(DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(4)
                    .with_resource_name(StrBytes::from_string(id.to_string())),
            ]))
            .await?;
        let mut settings = Vec::new();
        for result in described.results {
            if result.error_code != 0 {
                anyhow::bail!(
                    "DescribeConfigs of broker {id} failed: {}",
                    crate::client::error_name(result.error_code)
                        .unwrap_or_else(|| result.error_code.to_string())
                );
            }
            for c in result.configs {
                // The tiers need no listener settings, whose secrets are not sent anyway.
                let name = c.name.as_str();
                if name.starts_with("ssl.")
                    || name.starts_with("sasl.")
                    || name.starts_with("listener")
                    || name == "advertised.listeners"
                    || name == "inter.broker.listener.name"
                {
                    continue;
                }
                if let Some(v) = c.value {
                    settings.push(format!("{name}={}", v.as_str()));
                }
            }
        }
        Ok(Some(settings))
    })
}

/// The configuration to read the tiers of, and where it came from.
fn load_config(args: &TiersArgs) -> Result<(BrokerConfig, String)> {
    if args.config.is_none() && args.overrides.is_empty() {
        if let Some(settings) = broker_settings(&args.bootstrap_server)? {
            let config = BrokerConfig::load(None, &settings)
                .context("the broker's configuration could not be read back")?;
            return Ok((config, format!("the broker at {}", args.bootstrap_server)));
        }
    }
    let path = args
        .config
        .clone()
        .or_else(|| Some(PathBuf::from("config/server.properties")).filter(|p| p.exists()));
    let config = BrokerConfig::load(path.as_deref(), &args.overrides)?;
    let source = match &path {
        Some(p) => p.display().to_string(),
        None => "the defaults".to_string(),
    };
    Ok((config, source))
}

pub fn run(args: TiersArgs) -> Result<()> {
    let (config, source) = load_config(&args)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "configuration: {source}")?;
    let mut dirs: Vec<(&'static str, String, PathBuf, Option<u64>)> = Vec::new();
    if config.tiers.channel == ChannelType::File {
        for d in &config.log_dirs {
            dirs.push(("file", "FILE".into(), d.clone(), None));
        }
    } else {
        for (name, spec) in [
            ("first", &config.tiers.first),
            ("second", &config.tiers.second),
        ] {
            if let Some(spec) = spec {
                for d in &spec.dirs {
                    dirs.push((
                        name,
                        spec.kind.to_string(),
                        d.path.clone(),
                        Some(d.capacity_bytes),
                    ));
                }
            }
        }
    }
    let band = match (config.tiers.channel, config.tiers.migrate_threshold) {
        (ChannelType::Tiered, Some(t)) => {
            let h = config.tiers.migrate_hysteresis;
            Some(format!(
                "{:.0}% ({:.0}-{:.0}%)",
                t * 100.0,
                ((t - h).max(0.0)) * 100.0,
                ((t + h).min(1.0)) * 100.0
            ))
        }
        _ => None,
    };
    let mut rows = Vec::new();
    let mut moves = Vec::new();
    writeln!(
        out,
        "{:<7} {:<5} {:<36} {:>10} {:>10} {:>6} {:>14} {:>8}",
        "tier", "type", "directory", "capacity", "data", "used", "threshold", "segments"
    )?;
    for (tier, kind, dir, capacity) in &dirs {
        let before = rows.len();
        scan(dir, tier, &mut rows, &mut moves);
        let found = &rows[before..];
        let bytes: u64 = found.iter().map(|r| r.data_bytes).sum();
        let used = match capacity {
            Some(c) if *c > 0 => format!("{:.1}%", bytes as f64 * 100.0 / *c as f64),
            _ => "-".into(),
        };
        let threshold = match (*tier, &band) {
            ("first", Some(b)) => b.clone(),
            _ => "-".into(),
        };
        writeln!(
            out,
            "{tier:<7} {kind:<5} {:<36} {:>10} {:>10} {used:>6} {threshold:>14} {:>8}",
            dir.display(),
            capacity.map(human_bytes).unwrap_or_else(|| "-".into()),
            human_bytes(bytes),
            found.len()
        )?;
    }
    for (_, _, dir, _) in &dirs {
        if let Some(line) = pool_line(dir) {
            writeln!(out, "{line}")?;
        }
    }
    if band.is_some() {
        writeln!(
            out,
            "(segments move down when the first tier's use, counting each active segment at its \
             full segment.bytes, passes the top of the band, and up below its bottom)"
        )?;
    }
    writeln!(out, "migrations in flight: {}", moves.len())?;
    moves.sort_by(|a, b| (&a.partition_dir, a.base_offset).cmp(&(&b.partition_dir, b.base_offset)));
    for m in &moves {
        writeln!(
            out,
            "  {} {:020} -> {}",
            m.partition_dir,
            m.base_offset,
            m.to.display()
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "{:<30} {:>9} {:>20} {:<7} {:>10} {:>10}",
        "topic", "partition", "base offset", "tier", "data", "age"
    )?;
    sort_rows(&mut rows);
    let now_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    for r in rows {
        let age = r
            .max_timestamp
            .map(|ts| human_age((now_ms.saturating_sub(ts)).max(0) as u64 / 1000))
            .unwrap_or_else(|| "-".into());
        writeln!(
            out,
            "{:<30} {:>9} {:>20} {:<7} {:>10} {:>10}",
            r.topic,
            r.partition,
            r.base_offset,
            r.tier,
            human_bytes(r.data_bytes),
            age
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_named_by_their_last_dash() {
        assert_eq!(partition_of("my-topic-12"), Some(("my-topic".into(), 12)));
        assert_eq!(partition_of(".pool"), None);
        assert_eq!(partition_of("topic"), None);
    }

    #[test]
    fn a_move_under_way_counts_once_and_partitions_sort_by_number() {
        let tier = tempfile::tempdir().unwrap();
        for p in ["t-10", "t-2"] {
            std::fs::create_dir(tier.path().join(p)).unwrap();
            std::fs::write(tier.path().join(p).join(format!("{:020}.log", 0)), b"").unwrap();
        }
        // One segment's copy: its .log, .index and .timeindex under way.
        for ext in ["log", "index", "timeindex"] {
            let name = format!("{:020}.{ext}.migrating", 40);
            std::fs::write(tier.path().join("t-2").join(name), b"").unwrap();
        }
        let (mut rows, mut moves) = (Vec::new(), Vec::new());
        scan(tier.path(), "second", &mut rows, &mut moves);
        assert_eq!(moves.len(), 1);
        assert_eq!(
            (moves[0].partition_dir.as_str(), moves[0].base_offset),
            ("t-2", 40)
        );
        sort_rows(&mut rows);
        let order: Vec<i32> = rows.iter().map(|r| r.partition).collect();
        assert_eq!(order, [2, 10]);
    }

    #[test]
    fn a_segment_measures_its_batches_not_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = Vec::new();
        for (i, ts) in [(0i64, 5_000i64), (1, 9_000), (2, 7_000)] {
            let mut b = strata_storage::batch::simple_batch(&[b"value"], ts);
            b[0..8].copy_from_slice(&i.to_be_bytes());
            bytes.extend_from_slice(&b);
        }
        let data = bytes.len() as u64;
        // A pre-allocated file: zeros after the data.
        bytes.resize(1 << 16, 0);
        std::fs::write(dir.path().join(format!("{:020}.log", 0)), &bytes).unwrap();
        let (size, max_ts) = measure(dir.path(), 0, bytes.len() as u64);
        assert_eq!(size, data);
        assert_eq!(max_ts, Some(9_000));
    }
}
