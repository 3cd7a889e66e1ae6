//! Space accounting of the tier directories, shared by every partition of a broker, and the
//! per-partition [`SegmentPlacer`] built on it.
//!
//! A tier directory's usage is the size of its sealed segments plus a full `segment.bytes` for
//! each active segment (what it may still grow to). Placement decisions and reservations happen
//! under one lock, so two partitions rolling at once cannot both take the last room.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::placement::{place, Placement};
use super::pool::SegmentPool;
use super::{DirUsage, TierDir, TierId};
use crate::log::partition::SegmentPlacer;
use crate::log::segment::FileMode;

#[derive(Debug)]
struct DirState {
    path: PathBuf,
    /// Segments here are written through mappings (a PMEM tier).
    mapped: bool,
    pool: Option<Arc<SegmentPool>>,
    capacity_bytes: u64,
    used_bytes: AtomicU64,
    bytes_written: AtomicU64,
    bytes_read: AtomicU64,
}

/// One tier directory's numbers, for metrics, DescribeLogDirs and the migration planner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierDirStats {
    pub tier: TierId,
    pub path: PathBuf,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    /// Bytes appended to segments in this directory since startup.
    pub bytes_written: u64,
    /// Bytes located for fetches from segments in this directory since startup (a long-poll
    /// that looks again before answering counts each look).
    pub bytes_read: u64,
}

/// Usage of every tier directory.
#[derive(Debug)]
pub struct TierUsage {
    first: Vec<DirState>,
    second: Vec<DirState>,
    placing: Mutex<()>,
}

fn states(dirs: &[TierDir], mapped: bool, pools: &[Arc<SegmentPool>]) -> Vec<DirState> {
    dirs.iter()
        .map(|d| DirState {
            path: d.path.clone(),
            mapped,
            pool: pools
                .iter()
                .find(|p| p.dir().parent() == Some(&d.path))
                .cloned(),
            capacity_bytes: d.capacity_bytes,
            used_bytes: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
        })
        .collect()
}

impl TierUsage {
    /// Tiers of plain files.
    pub fn new(first: &[TierDir], second: &[TierDir]) -> Arc<TierUsage> {
        Self::with_layout(first, second, [false, false], &[])
    }

    /// Tiers whose segments are mapped (`mapped[0]` for the first tier, `[1]` the second) and
    /// whose directories may have pools of segment files.
    pub fn with_layout(
        first: &[TierDir],
        second: &[TierDir],
        mapped: [bool; 2],
        pools: &[Arc<SegmentPool>],
    ) -> Arc<TierUsage> {
        Arc::new(TierUsage {
            first: states(first, mapped[0], pools),
            second: states(second, mapped[1], pools),
            placing: Mutex::new(()),
        })
    }

    /// The pool of the tier directory holding `partition_dir`, if it has one.
    pub fn pool_of(&self, partition_dir: &Path) -> Option<Arc<SegmentPool>> {
        self.find(partition_dir).and_then(|d| d.pool.clone())
    }

    /// Every pool, first tier first.
    pub fn pools(&self) -> Vec<Arc<SegmentPool>> {
        self.all().filter_map(|(_, d)| d.pool.clone()).collect()
    }

    fn all(&self) -> impl Iterator<Item = (TierId, &DirState)> {
        self.first
            .iter()
            .map(|d| (TierId::First, d))
            .chain(self.second.iter().map(|d| (TierId::Second, d)))
    }

    /// Every tier directory, first tier first.
    pub fn dirs(&self) -> Vec<(TierId, PathBuf)> {
        self.all().map(|(t, d)| (t, d.path.clone())).collect()
    }

    /// Every tier directory's numbers, first tier first.
    pub fn snapshot(&self) -> Vec<TierDirStats> {
        self.all()
            .map(|(tier, d)| TierDirStats {
                tier,
                path: d.path.clone(),
                capacity_bytes: d.capacity_bytes,
                used_bytes: d.used_bytes.load(Ordering::SeqCst),
                bytes_written: d.bytes_written.load(Ordering::Relaxed),
                bytes_read: d.bytes_read.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Counts a segment copied from one partition directory to another (a migration): read from
    /// the first's tier, written to the second's, as appends and fetches are counted.
    pub fn count_copy(&self, from: &Path, to: &Path, bytes: u64) {
        if let Some(d) = self.find(from) {
            d.bytes_read.fetch_add(bytes, Ordering::Relaxed);
        }
        if let Some(d) = self.find(to) {
            d.bytes_written.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    fn find(&self, partition_dir: &Path) -> Option<&DirState> {
        let tier_dir = partition_dir.parent()?;
        self.all().map(|(_, d)| d).find(|d| d.path == tier_dir)
    }

    /// Reserves `bytes` for a new segment; returns the tier directory chosen.
    pub fn reserve(&self, bytes: u64) -> io::Result<(TierId, PathBuf)> {
        let _placing = self.placing.lock().unwrap_or_else(|e| e.into_inner());
        let usage = |dirs: &[DirState]| -> Vec<DirUsage> {
            dirs.iter()
                .map(|d| DirUsage {
                    capacity_bytes: d.capacity_bytes,
                    used_bytes: d.used_bytes.load(Ordering::SeqCst),
                })
                .collect()
        };
        match place(&usage(&self.first), &usage(&self.second), bytes) {
            Placement::In(tier, i) => {
                let dir = if tier == TierId::First {
                    &self.first[i]
                } else {
                    &self.second[i]
                };
                dir.used_bytes.fetch_add(bytes, Ordering::SeqCst);
                Ok((tier, dir.path.clone()))
            }
            Placement::Full => Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!("no tier directory has room for a segment of {bytes} bytes"),
            )),
        }
    }
}

/// The placer of one partition: `<tier dir>/<topic>-<partition>/`.
#[derive(Debug)]
pub struct PartitionPlacer {
    pub usage: Arc<TierUsage>,
    pub partition_dir_name: String,
}

impl SegmentPlacer for PartitionPlacer {
    fn segment_dirs(&self) -> Vec<PathBuf> {
        self.usage
            .dirs()
            .into_iter()
            .map(|(_, d)| d.join(&self.partition_dir_name))
            .collect()
    }
    fn place(&self, bytes: u64) -> io::Result<PathBuf> {
        let (_, dir) = self.usage.reserve(bytes)?;
        Ok(dir.join(&self.partition_dir_name))
    }
    fn charge(&self, dir: &Path, bytes: u64) {
        if let Some(d) = self.usage.find(dir) {
            d.used_bytes.fetch_add(bytes, Ordering::SeqCst);
        }
    }
    fn release(&self, dir: &Path, bytes: u64) {
        if let Some(d) = self.usage.find(dir) {
            let _ = d
                .used_bytes
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |u| {
                    Some(u.saturating_sub(bytes))
                });
        }
    }
    fn wrote(&self, dir: &Path, bytes: u64) {
        if let Some(d) = self.usage.find(dir) {
            d.bytes_written.fetch_add(bytes, Ordering::Relaxed);
        }
    }
    fn read(&self, dir: &Path, bytes: u64) {
        if let Some(d) = self.usage.find(dir) {
            d.bytes_read.fetch_add(bytes, Ordering::Relaxed);
        }
    }
    fn file_mode(&self, dir: &Path) -> FileMode {
        match self.usage.find(dir) {
            Some(d) => FileMode {
                mapped: d.mapped,
                preallocate: None,
                pool: d
                    .pool
                    .clone()
                    .map(|p| p as Arc<dyn crate::log::segment::SegmentFileSource>),
            },
            None => FileMode::plain(),
        }
    }
    fn max_segment_bytes(&self) -> Option<u64> {
        self.usage.pools().iter().map(|p| p.file_bytes()).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_fill_the_first_tier_then_the_second() {
        let usage = TierUsage::new(
            &[TierDir {
                path: "/fast".into(),
                capacity_bytes: 250,
            }],
            &[TierDir {
                path: "/slow".into(),
                capacity_bytes: 1000,
            }],
        );
        let placer = PartitionPlacer {
            usage: usage.clone(),
            partition_dir_name: "t-0".into(),
        };
        assert_eq!(placer.place(100).unwrap(), PathBuf::from("/fast/t-0"));
        assert_eq!(placer.place(100).unwrap(), PathBuf::from("/fast/t-0"));
        assert_eq!(
            placer.place(100).unwrap(),
            PathBuf::from("/slow/t-0"),
            "only 50 bytes left on the first tier"
        );
        placer.release(Path::new("/fast/t-0"), 100);
        assert_eq!(
            placer.place(100).unwrap(),
            PathBuf::from("/fast/t-0"),
            "released room is used again"
        );
        // The second tier has 900 bytes left: nine more segments, then nothing.
        for _ in 0..9 {
            placer.place(100).unwrap();
        }
        assert_eq!(
            placer.place(100).unwrap_err().kind(),
            io::ErrorKind::StorageFull
        );
        placer.wrote(Path::new("/slow/t-0"), 7);
        placer.read(Path::new("/fast/t-0"), 5);
        let stats = usage.snapshot();
        assert_eq!((stats[0].bytes_written, stats[0].bytes_read), (0, 5));
        assert_eq!((stats[1].bytes_written, stats[1].bytes_read), (7, 0));
        assert_eq!(stats[1].used_bytes, 1000);
    }
}
