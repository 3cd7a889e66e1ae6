//! Moving one inactive segment between tiers, as a sequence of durable steps, and the startup
//! recovery that resolves a crash at any of them.
//!
//! ```text
//! 1 copy      each file to <target>/<base>.<suffix>.migrating, then fdatasync it
//! 2 rename    .migrating -> final name, the .log last; then sync the target directory
//!             -- from here the target holds a complete copy (the commit point) --
//! 3 switch    readers move to the new files (in memory; the caller's part)
//! 4 delete    the source files, then sync the source directory
//! ```
//! Recovery ([`recover_segments`], in `log/segment_dirs.rs`, since opening a log runs it) removes every `.migrating` file (a copy that never
//! committed) and, for a segment whose `.log` is in more than one directory, keeps one copy: the
//! first directory's, in the order given (first tier first), when its `.log` is as long as the
//! others; otherwise the longest. So after a crash at any step each segment is readable from
//! exactly one tier with all its bytes, and no temporary file is left.

use std::io;
use std::path::Path;

use crate::io::{offset_file, Io};
use crate::log::segment_dirs::migrating;
pub use crate::log::segment_dirs::{
    delete_segment_files, recover_segments, MigrationRecovery, MIGRATING_SUFFIX, SEGMENT_SUFFIXES,
};

/// Copies a segment into `target_dir` and commits the copy (steps 1 and 2). Files other than
/// the `.log` may be missing (indexes are rebuilt when absent). `chunk_bytes` bounds each read.
pub fn copy_segment(
    io: &dyn Io,
    source_dir: &Path,
    target_dir: &Path,
    base_offset: i64,
    chunk_bytes: usize,
) -> io::Result<u64> {
    copy_segment_paced(
        io,
        source_dir,
        target_dir,
        base_offset,
        chunk_bytes,
        &|_| {},
    )
}

/// As [`copy_segment`], calling `pace` with the size of every chunk after copying it (the
/// migrator's bandwidth bound sleeps there).
pub fn copy_segment_paced(
    io: &dyn Io,
    source_dir: &Path,
    target_dir: &Path,
    base_offset: i64,
    chunk_bytes: usize,
    pace: &dyn Fn(u64),
) -> io::Result<u64> {
    io.create_dir_durable(target_dir)?;
    let mut copied = 0u64;
    let mut present = Vec::new();
    for suffix in SEGMENT_SUFFIXES {
        let source = offset_file(source_dir, base_offset, suffix);
        if !io.exists(&source) {
            if suffix == "log" {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} not found", source.display()),
                ));
            }
            continue;
        }
        let temp = migrating(&offset_file(target_dir, base_offset, suffix));
        let input = io.open(&source, false)?;
        let output = io.open(&temp, true)?;
        output.set_len(0)?;
        let len = input.len()?;
        let mut buf = vec![0u8; chunk_bytes.max(1).min(len.max(1) as usize)];
        let mut at = 0u64;
        while at < len {
            let n = buf.len().min((len - at) as usize);
            input.read_exact_at(&mut buf[..n], at)?;
            output.write_vectored_at(&[&buf[..n]], at)?;
            at += n as u64;
            pace(n as u64);
        }
        output.sync_data()?;
        copied += len;
        present.push(suffix);
    }
    for suffix in present {
        let final_path = offset_file(target_dir, base_offset, suffix);
        io.rename(&migrating(&final_path), &final_path)?;
    }
    io.sync_dir(target_dir)?;
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::simple_batch;
    use crate::io::sim::SimIo;
    use crate::log::segment::{AppendedBatch, FileMode, Segment, SegmentLimits};
    use crate::log::txn_index::{AbortedTxn, TransactionIndex};
    use crate::units::{LeaderEpoch, Offset, ProducerId};

    const LIMITS: SegmentLimits = SegmentLimits {
        index_interval_bytes: 64,
        max_index_bytes: 1 << 16,
        max_leader_epoch: LeaderEpoch::INITIAL,
    };

    /// A durable, sealed segment at base offset 100 in `dir`; returns its files' contents.
    fn make_segment(io: &SimIo, dir: &Path) -> Vec<(&'static str, Vec<u8>)> {
        io.create_dir_durable(dir).unwrap();
        let mut segment =
            Segment::create(io, dir, Offset(100), LIMITS, &FileMode::plain()).unwrap();
        for i in 0..20i64 {
            let mut b = simple_batch(&[format!("record {i}").as_bytes()], 1000 + i);
            b[0..8].copy_from_slice(&(100 + i).to_be_bytes());
            let appended = AppendedBatch {
                base_offset: 100 + i,
                last_offset: 100 + i,
                max_timestamp: 1000 + i,
                size: b.len() as u32,
            };
            segment.append(&[&b], &[appended]).unwrap();
        }
        segment.seal().unwrap();
        segment.flush().unwrap();
        // An aborted transaction in the segment: its .txnindex moves with it.
        let mut aborted = TransactionIndex::open(io, &offset_file(dir, 100, "txnindex")).unwrap();
        aborted
            .append(AbortedTxn {
                producer_id: ProducerId(7),
                first_offset: Offset(103),
                last_offset: Offset(108),
                last_stable_offset: Offset(103),
            })
            .unwrap();
        aborted.sync().unwrap();
        io.sync_dir(dir).unwrap();
        SEGMENT_SUFFIXES
            .iter()
            .map(|s| (*s, io.contents(&offset_file(dir, 100, s)).unwrap()))
            .collect()
    }

    fn migrate(io: &SimIo, source: &Path, target: &Path) -> io::Result<()> {
        copy_segment(io, source, target, 100, 100)?;
        delete_segment_files(io, source, 100)
    }

    /// For a crash after every possible number of operations of a migration from `source` to
    /// `target`, recovery leaves the segment in exactly one directory with all its bytes and
    /// no temporary file.
    fn crash_at_every_step(first: &Path, second: &Path, source: &Path, target: &Path) {
        let total = {
            let io = SimIo::new();
            make_segment(&io, source);
            let before = io.operations();
            migrate(&io, source, target).unwrap();
            io.operations() - before
        };
        assert!(total > 10, "a migration takes many steps ({total})");
        for crash_after in 0..=total {
            let io = SimIo::new();
            let files = make_segment(&io, source);
            io.fail_after(crash_after);
            let finished = migrate(&io, source, target).is_ok();
            assert_eq!(finished, crash_after == total, "crash point {crash_after}");
            io.crash();
            let dirs = vec![first.to_path_buf(), second.to_path_buf()];
            let outcome = recover_segments(&io, &dirs).unwrap();
            let home = outcome
                .segments
                .get(&100)
                .unwrap_or_else(|| panic!("segment lost at crash point {crash_after}"));
            for (suffix, bytes) in &files {
                assert_eq!(
                    io.contents(&offset_file(home, 100, suffix)).as_ref(),
                    Some(bytes),
                    "{suffix} at crash point {crash_after}"
                );
            }
            for dir in &dirs {
                for name in io.list_dir(dir).unwrap_or_default() {
                    assert!(
                        !name.ends_with(".migrating"),
                        "temporary {name} left at crash point {crash_after}"
                    );
                    if dir != home {
                        assert!(
                            !name.starts_with("00000000000000000100."),
                            "second copy {name} at crash point {crash_after}"
                        );
                    }
                }
            }
            // The segment opens and reads back from where it was kept.
            let segment =
                Segment::open(&io, home, Offset(100), false, LIMITS, &FileMode::plain()).unwrap();
            assert_eq!(
                segment.next_offset(),
                Offset(120),
                "crash point {crash_after}"
            );
            // Recovery is idempotent.
            assert_eq!(
                recover_segments(&io, &dirs).unwrap().segments,
                outcome.segments
            );
        }
    }

    #[test]
    fn crash_at_every_step_of_a_demotion() {
        let (first, second) = (Path::new("/pmem/t-0"), Path::new("/hdd/t-0"));
        crash_at_every_step(first, second, first, second);
    }

    #[test]
    fn crash_at_every_step_of_a_promotion() {
        let (first, second) = (Path::new("/pmem/t-0"), Path::new("/hdd/t-0"));
        crash_at_every_step(first, second, second, first);
    }

    #[test]
    fn a_completed_migration_moves_all_files() {
        let io = SimIo::new();
        let (first, second) = (Path::new("/pmem/t-0"), Path::new("/hdd/t-0"));
        let files = make_segment(&io, first);
        migrate(&io, first, second).unwrap();
        io.crash();
        for (suffix, bytes) in &files {
            assert_eq!(
                io.contents(&offset_file(second, 100, suffix)).as_ref(),
                Some(bytes)
            );
            assert!(!io.exists(&offset_file(first, 100, suffix)));
        }
    }
}
