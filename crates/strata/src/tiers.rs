//! `strata tiers`: where every segment lives, read from the directories a broker config names.
//!
//! It lists each tier directory with its capacity, the bytes its segments take and their count,
//! the migrations under way (copies not yet committed), and every partition's segments with
//! their tier, size and age. It reads files only, so it works with the broker up or down.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Result;
use clap::Args;
use strata_broker::config::ChannelType;
use strata_broker::BrokerConfig;

#[derive(Debug, Args)]
pub struct TiersArgs {
    /// The broker's config file.
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Override a config key, as for `strata server`.
    #[arg(long = "override")]
    pub overrides: Vec<String>,
}

struct SegmentRow {
    partition: String,
    base_offset: i64,
    tier: &'static str,
    bytes: u64,
    age_s: u64,
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

/// Segments (base offset, .log bytes, age) and uncommitted copies in one tier directory.
fn scan(
    dir: &Path,
    tier: &'static str,
    rows: &mut Vec<SegmentRow>,
    migrating: &mut Vec<PathBuf>,
) -> (u64, usize) {
    let (mut bytes, mut count) = (0u64, 0usize);
    let Ok(partitions) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    let mut partitions: Vec<_> = partitions
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .collect();
    partitions.sort_by_key(|e| e.file_name());
    for p in partitions {
        let partition = p.file_name().to_string_lossy().into_owned();
        let Ok(files) = std::fs::read_dir(p.path()) else {
            continue;
        };
        for f in files.filter_map(|e| e.ok()) {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.ends_with(".migrating") {
                migrating.push(f.path());
                continue;
            }
            let Some(base) = name
                .strip_suffix(".log")
                .and_then(|b| b.parse::<i64>().ok())
            else {
                continue;
            };
            let meta = f.metadata().ok();
            let size = meta.as_ref().map(|m| m.len()).unwrap_or(0);
            let age_s = meta
                .and_then(|m| m.modified().ok())
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .map(|d| d.as_secs())
                .unwrap_or(0);
            bytes += size;
            count += 1;
            rows.push(SegmentRow {
                partition: partition.clone(),
                base_offset: base,
                tier,
                bytes: size,
                age_s,
            });
        }
    }
    (bytes, count)
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

pub fn run(args: TiersArgs) -> Result<()> {
    let path = args
        .config
        .or_else(|| Some(PathBuf::from("config/server.properties")).filter(|p| p.exists()));
    let config = BrokerConfig::load(path.as_deref(), &args.overrides)?;
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
    let mut rows = Vec::new();
    let mut migrating = Vec::new();
    println!(
        "{:<7} {:<5} {:<40} {:>12} {:>12} {:>9}",
        "tier", "type", "directory", "capacity", "used", "segments"
    );
    for (tier, kind, dir, capacity) in &dirs {
        let (bytes, count) = scan(dir, tier, &mut rows, &mut migrating);
        let capacity = capacity.map(human_bytes).unwrap_or_else(|| "-".into());
        println!(
            "{tier:<7} {kind:<5} {:<40} {capacity:>12} {:>12} {count:>9}",
            dir.display(),
            human_bytes(bytes)
        );
    }
    for (_, _, dir, _) in &dirs {
        if let Some(line) = pool_line(dir) {
            println!("{line}");
        }
    }
    println!("migrations in flight: {}", migrating.len());
    for m in &migrating {
        println!("  copying {}", m.display());
    }
    println!();
    println!(
        "{:<40} {:>20} {:<7} {:>12} {:>10}",
        "partition", "base offset", "tier", "size", "age"
    );
    rows.sort_by(|a, b| (&a.partition, a.base_offset).cmp(&(&b.partition, b.base_offset)));
    for r in rows {
        println!(
            "{:<40} {:>20} {:<7} {:>12} {:>10}",
            r.partition,
            r.base_offset,
            r.tier,
            human_bytes(r.bytes),
            human_age(r.age_s)
        );
    }
    Ok(())
}
