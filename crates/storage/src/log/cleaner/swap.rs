//! Putting a cleaned segment in place of the segments it replaces, as a sequence of durable
//! steps that a crash can interrupt anywhere (Kafka's `.cleaned` / `.swap` protocol):
//!
//! ```text
//! 0 write     <base>.{index,timeindex,txnindex,log}.cleaned, synced       (not committed)
//! 1 commit    each .cleaned -> .swap, the .log last; sync the directory   (committed)
//! 2 delete    the replaced segments' files (a pool file goes back)
//! 3 install   each .swap -> its segment name, the .log last; sync the directory
//! ```
//! At start ([`complete_swaps`]): `.cleaned` files are removed (a cleaning that never
//! committed: the old segments are intact; a `.log.cleaned` taken from the pmem channel's pool
//! goes back to it); an index `.swap` without a `.log.swap` beside it is
//! removed (step 1 did not finish); a `.log.swap` completes the swap: every segment whose base
//! lies in `[base, end of the swap segment)` is deleted (except files already installed in step
//! 3, which the swap files no longer shadow), then step 3 runs. The cleaned segment always has
//! all four files (an empty `.txnindex` when no abort is kept), so a name without a `.swap`
//! twin during step 3 is known to be the new file.

use std::io;
use std::path::{Path, PathBuf};

use crate::batch::{BatchHeader, HEADER_SIZE};
use crate::io::{offset_file, parse_offset_file, Io};
use crate::log::segment::FileMode;
use crate::log::segment_dirs::SEGMENT_SUFFIXES;

pub const CLEANED: &str = ".cleaned";
pub const SWAP: &str = ".swap";

fn named(dir: &Path, base: i64, suffix: &str, extra: &str) -> PathBuf {
    offset_file(dir, base, &format!("{suffix}{extra}"))
}

/// Step 1: the cleaned files become swap files; the `.log` last, then the directory synced.
pub fn commit(io: &dyn Io, dir: &Path, base: i64) -> io::Result<()> {
    for suffix in SEGMENT_SUFFIXES {
        io.rename(
            &named(dir, base, suffix, CLEANED),
            &named(dir, base, suffix, SWAP),
        )?;
    }
    io.sync_dir(dir)
}

/// Step 3: the swap files take the segment's names; the `.log` last.
pub fn install(io: &dyn Io, dir: &Path, base: i64) -> io::Result<()> {
    for suffix in SEGMENT_SUFFIXES {
        let from = named(dir, base, suffix, SWAP);
        if io.exists(&from) {
            io.rename(&from, &offset_file(dir, base, suffix))?;
        }
    }
    io.sync_dir(dir)
}

/// Removes a cleaning's files that never committed; a `.log` from a pool (`mode.pool`) goes
/// back to it.
pub fn discard(io: &dyn Io, dir: &Path, base: i64, mode: &FileMode) -> io::Result<()> {
    for suffix in SEGMENT_SUFFIXES {
        let path = named(dir, base, suffix, CLEANED);
        match &mode.pool {
            Some(pool) if suffix == "log" && io.exists(&path) => pool.give_back(&path)?,
            _ => io.remove_if_present(&path)?,
        }
    }
    io.sync_dir(dir)
}

/// The offset after the last whole batch of the `.log` at `path` (its base when it has none).
fn end_of(io: &dyn Io, path: &Path, base: i64) -> io::Result<i64> {
    let file = io.open(path, false)?;
    let len = file.len()?;
    let (mut at, mut end) = (0u64, base);
    let mut buf = [0u8; HEADER_SIZE];
    while at + HEADER_SIZE as u64 <= len {
        file.read_exact_at(&mut buf, at)?;
        let Ok(h) = BatchHeader::parse(&buf) else {
            break;
        };
        if h.magic != 2 || h.batch_length <= 0 || at + h.total_size() as u64 > len {
            break;
        }
        end = end.max(h.last_offset() + 1);
        at += h.total_size() as u64;
    }
    Ok(end)
}

/// Resolves interrupted cleanings in a partition's segment directories before its segments
/// are opened. `delete_segment(dir, base)` deletes a replaced segment (giving a pool file
/// back); `mode_of(dir)` says how the directory's files are held, so that an uncommitted
/// `.log.cleaned` from a pool goes back to it. Returns how many swaps were completed.
pub fn complete_swaps(
    io: &dyn Io,
    dirs: &[PathBuf],
    mode_of: &dyn Fn(&Path) -> FileMode,
    delete_segment: &mut dyn FnMut(&Path, i64) -> io::Result<()>,
) -> io::Result<usize> {
    let mut swaps = Vec::new();
    for dir in dirs {
        if !io.exists(dir) {
            continue;
        }
        let names = io.list_dir(dir)?;
        let mut changed = false;
        let mode = mode_of(dir);
        for name in &names {
            if name.ends_with(CLEANED) {
                match &mode.pool {
                    Some(pool) if name.ends_with(&format!(".log{CLEANED}")) => {
                        pool.give_back(&dir.join(name))?
                    }
                    _ => io.remove_file(&dir.join(name))?,
                }
                changed = true;
            }
        }
        for name in &names {
            let Some(stem) = name.strip_suffix(SWAP) else {
                continue;
            };
            match parse_offset_file(stem) {
                Some((base, "log")) => swaps.push((dir.clone(), base)),
                Some((base, _)) if !names.contains(&format!("{:020}.log{SWAP}", base)) => {
                    // Step 1 did not reach the `.log`: not committed.
                    io.remove_file(&dir.join(name))?;
                    changed = true;
                }
                _ => {}
            }
        }
        if changed {
            io.sync_dir(dir)?;
        }
    }
    for (dir, base) in &swaps {
        let swap_log = named(dir, *base, "log", SWAP);
        // A cleaned segment that kept nothing ends at its base: the old segment at its base is
        // replaced all the same.
        let end = end_of(io, &swap_log, *base)?.max(*base + 1);
        // The replaced segments, wherever they are. While the `.log.swap` exists, a
        // `<base>.log` is the old one: step 3 installs the new `.log` last.
        for d in dirs {
            if !io.exists(d) {
                continue;
            }
            for name in io.list_dir(d)? {
                if let Some((b, "log")) = parse_offset_file(&name) {
                    if b >= *base && b < end {
                        delete_segment(d, b)?;
                    }
                }
            }
        }
        // Old index files a deletion interrupted in step 2 left behind; a name without a swap
        // twin is already the new file (step 3).
        for suffix in SEGMENT_SUFFIXES {
            if io.exists(&named(dir, *base, suffix, SWAP)) {
                io.remove_if_present(&offset_file(dir, *base, suffix))?;
            }
        }
        io.sync_dir(dir)?;
        install(io, dir, *base)?;
    }
    Ok(swaps.len())
}
