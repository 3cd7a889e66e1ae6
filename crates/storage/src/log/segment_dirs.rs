//! A partition's segments across directories (its own, or tier directories): finding each
//! segment in exactly one of them after a crash, and deleting a segment's files. An interrupted
//! migration (see `tier/migration.rs`) leaves `.migrating` copies and segments present twice;
//! opening the log resolves both here, before any segment is read.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::io::{offset_file, parse_offset_file, Io};

/// The files of a segment, in the order they are renamed: the `.log` last, since its presence
/// marks a complete copy. Only the `.log` is always there (indexes are rebuilt when missing; a
/// segment without aborted transactions has no `.txnindex`).
pub const SEGMENT_SUFFIXES: [&str; 4] = ["index", "timeindex", "txnindex", "log"];
pub const MIGRATING_SUFFIX: &str = "migrating";

pub(crate) fn migrating(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(MIGRATING_SUFFIX);
    path.with_file_name(name)
}

/// Deletes a segment's files from `dir` and makes that durable (step 4).
pub fn delete_segment_files(io: &dyn Io, dir: &Path, base_offset: i64) -> io::Result<()> {
    // The .log goes first: without it a leftover index is never taken for a segment.
    for suffix in ["log", "index", "timeindex", "txnindex"] {
        let path = offset_file(dir, base_offset, suffix);
        if io.exists(&path) {
            io.remove_file(&path)?;
        }
    }
    io.sync_dir(dir)
}

/// What recovery found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MigrationRecovery {
    /// Uncommitted copies removed.
    pub temporaries_removed: usize,
    /// Segments found in more than one directory, resolved to one.
    pub duplicates_resolved: usize,
    /// Index files with no `.log` beside them, removed.
    pub orphans_removed: usize,
    /// Where each segment now lives: base offset -> directory.
    pub segments: BTreeMap<i64, PathBuf>,
}

/// Resolves interrupted migrations among the directories of one partition (first tier first).
pub fn recover_segments(io: &dyn Io, dirs: &[PathBuf]) -> io::Result<MigrationRecovery> {
    let mut out = MigrationRecovery::default();
    let mut logs: BTreeMap<i64, Vec<(usize, u64)>> = BTreeMap::new();
    for (d, dir) in dirs.iter().enumerate() {
        if !io.exists(dir) {
            continue;
        }
        for name in io.list_dir(dir)? {
            if name.ends_with(&format!(".{MIGRATING_SUFFIX}")) {
                io.remove_file(&dir.join(&name))?;
                out.temporaries_removed += 1;
                continue;
            }
            if let Some((base, "log")) = parse_offset_file(&name) {
                let len = io.open(&dir.join(&name), false)?.len()?;
                logs.entry(base).or_default().push((d, len));
            }
        }
    }
    for (base, copies) in &logs {
        let longest = copies.iter().map(|(_, len)| *len).max().unwrap_or(0);
        // Copies are listed in directory order, so the first full-length one is the
        // first tier's when it has one.
        let keep = copies
            .iter()
            .find(|(_, len)| *len == longest)
            .map(|(d, _)| *d)
            .expect("at least one copy");
        for (d, _) in copies {
            if *d != keep {
                delete_segment_files(io, &dirs[*d], *base)?;
                out.duplicates_resolved += 1;
            }
        }
        out.segments.insert(*base, dirs[keep].clone());
    }
    // Index files whose .log is gone (a delete interrupted between files).
    for dir in dirs {
        if !io.exists(dir) {
            continue;
        }
        let mut removed = false;
        for name in io.list_dir(dir)? {
            let Some((base, ext)) = parse_offset_file(&name) else {
                continue;
            };
            if matches!(ext, "index" | "timeindex" | "txnindex")
                && out.segments.get(&base) != Some(dir)
            {
                io.remove_file(&dir.join(&name))?;
                out.orphans_removed += 1;
                removed = true;
            }
        }
        if removed {
            io.sync_dir(dir)?;
        }
    }
    Ok(out)
}
