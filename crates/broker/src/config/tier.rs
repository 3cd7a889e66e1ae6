//! The tier keys (`log.channel.type`, `storage.tiers.*`, `storage.migrate.*`,
//! `log.pmem.pool.ratio`): parsed, checked against each other and the devices.

use strata_storage::tier::{TierDir, TierId, TierSpec, TierType};

use super::*;

/// What a tier directory of size -1 may hold: the space its device has free (for an
/// unprivileged writer) plus what the directory's files already take, so that a device shared
/// with other data is not counted whole, and a restart does not shrink the tier by its own data.
fn device_capacity(path: &Path) -> Option<u64> {
    let s = rustix::fs::statvfs(path).ok()?;
    Some((s.f_bavail * s.f_frsize).saturating_add(bytes_under(path)))
}

/// Bytes of the files under `dir` (its segments, when it is a tier directory).
fn bytes_under(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => bytes_under(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
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
                    "Each size must be positive, or -1 for the device's free space",
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

pub(super) fn parse_tiers(get: &dyn Fn(&str) -> String) -> Result<TierConfig, ConfigError> {
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
    // The tiered channel has two tiers and needs both types; the pmem channel has one tier, so
    // its single type is enough (a second one, as in the default, is not used).
    let wanted = if channel == ChannelType::Pmem {
        1..=2
    } else {
        2..=2
    };
    if !wanted.contains(&types.len()) {
        let why = if channel == ChannelType::Pmem {
            "expected the first tier's type (the pmem channel has one tier)"
        } else {
            "expected two types: the first tier's and the second's"
        };
        return Err(invalid("storage.tiers.types", &types_raw, why));
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

    #[test]
    fn a_tier_of_size_minus_one_is_the_free_space_plus_its_own_data() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("t-0");
        std::fs::create_dir(&part).unwrap();
        std::fs::write(part.join("00000000000000000000.log"), vec![1u8; 1 << 20]).unwrap();
        let s = rustix::fs::statvfs(dir.path()).unwrap();
        let (free, total) = (s.f_bavail * s.f_frsize, s.f_blocks * s.f_frsize);
        let capacity = device_capacity(dir.path()).unwrap();
        // Free space moves while the test runs (other writers): a generous tolerance.
        let expected = free + (1 << 20);
        assert!(
            capacity.abs_diff(expected) < 256 << 20,
            "{capacity} against {expected}"
        );
        assert!(
            capacity <= total,
            "never more than the device: {capacity} > {total}"
        );
        assert_eq!(bytes_under(dir.path()), 1 << 20);
    }
}
