//! The leader-epoch cache: at which offset each leader epoch of a partition began (Kafka's
//! `LeaderEpochFileCache`). A follower asks the leader where its last epoch ends
//! (OffsetForLeaderEpoch) and truncates to that offset, so that a log never keeps records a new
//! leader did not have.
//!
//! ```text
//! <partition dir>/leader-epoch-checkpoint
//!     0                  version
//!     2                  number of entries
//!     0 0                epoch 0 began at offset 0
//!     3 1200             epoch 3 began at offset 1200
//! ```
//! Entries are sorted by epoch and by start offset, both strictly increasing. The file is
//! rewritten atomically at every change (a new epoch, a truncation), which is rare. An epoch is
//! recorded before any batch of it is written, so after a crash the cache knows every epoch found
//! in the log; entries past the recovered log end are dropped when the log opens.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::io::Io;
use crate::units::{LeaderEpoch, Offset};

pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";

/// Where an epoch began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: LeaderEpoch,
    pub start_offset: Offset,
}

#[derive(Debug)]
pub struct LeaderEpochCache {
    io: Arc<dyn Io>,
    path: PathBuf,
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// Reads the checkpoint in `dir`; a missing or unreadable file is an empty cache (a log from
    /// before epochs were kept, which only ever had epoch 0).
    pub fn open(io: Arc<dyn Io>, dir: &Path) -> LeaderEpochCache {
        let path = dir.join(LEADER_EPOCH_CHECKPOINT);
        let mut entries = Vec::new();
        if let Ok(bytes) = io.read_all(&path) {
            let text = String::from_utf8_lossy(&bytes);
            for line in text.lines().skip(2) {
                let mut parts = line.split(' ');
                if let (Some(Ok(epoch)), Some(Ok(start_offset))) = (
                    parts.next().map(str::parse::<i32>),
                    parts.next().map(str::parse::<i64>),
                ) {
                    entries.push(EpochEntry {
                        epoch: LeaderEpoch(epoch),
                        start_offset: Offset(start_offset),
                    });
                }
            }
            let sorted = entries
                .windows(2)
                .all(|w| w[0].epoch < w[1].epoch && w[0].start_offset < w[1].start_offset);
            if !sorted {
                tracing::warn!(path = %path.display(), "leader-epoch checkpoint out of order; ignoring it");
                entries.clear();
            }
        }
        LeaderEpochCache { io, path, entries }
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The newest epoch, if any is recorded.
    pub fn latest_epoch(&self) -> Option<LeaderEpoch> {
        self.entries.last().map(|e| e.epoch)
    }

    /// The epoch `offset` was written in: the newest recorded epoch beginning at or below it.
    pub fn epoch_for(&self, offset: Offset) -> Option<LeaderEpoch> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.start_offset <= offset)
            .map(|e| e.epoch)
    }

    /// Records that `epoch` begins at `start_offset`, when it is newer than every recorded epoch.
    /// An entry for an older or the same epoch changes nothing. Entries at or past
    /// `start_offset` of older epochs (left by a truncation that was not recorded) are dropped.
    pub fn assign(&mut self, epoch: LeaderEpoch, start_offset: Offset) -> io::Result<()> {
        if self.latest_epoch().is_some_and(|latest| epoch <= latest) {
            return Ok(());
        }
        let mut entries = self.entries.clone();
        entries.retain(|e| e.start_offset < start_offset);
        entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        self.replace(entries)
    }

    /// Where `epoch` ends, as OffsetForLeaderEpoch answers (Kafka's `endOffsetFor`): the
    /// latest epoch ends at the log end offset; an older one at the start of the next recorded
    /// epoch, reported with the largest recorded epoch at or below it (or itself, when it is
    /// older than all of them); an epoch newer than every recorded one is unknown: (-1, -1).
    pub fn end_offset_for(
        &self,
        epoch: LeaderEpoch,
        log_end_offset: Offset,
    ) -> (LeaderEpoch, Offset) {
        const UNDEFINED: (LeaderEpoch, Offset) = (LeaderEpoch::UNDEFINED, Offset(-1));
        if epoch.get() < 0 {
            return UNDEFINED;
        }
        if self.latest_epoch() == Some(epoch) {
            return (epoch, log_end_offset);
        }
        let Some(higher) = self.entries.iter().find(|e| e.epoch > epoch) else {
            return UNDEFINED;
        };
        let floor = self.entries.iter().rev().find(|e| e.epoch <= epoch);
        (floor.map_or(epoch, |f| f.epoch), higher.start_offset)
    }

    /// Drops the epochs that begin at or after `end_offset` (the log was truncated there).
    pub fn truncate_from_end(&mut self, end_offset: Offset) -> io::Result<()> {
        let mut entries = self.entries.clone();
        entries.retain(|e| e.start_offset < end_offset);
        if entries.len() == self.entries.len() {
            return Ok(());
        }
        self.replace(entries)
    }

    /// Drops the epochs that end before `start_offset` (the log's head was deleted); the epoch
    /// holding `start_offset` begins there from now on.
    pub fn truncate_from_start(&mut self, start_offset: Offset) -> io::Result<()> {
        let Some(keep) = self
            .entries
            .iter()
            .rposition(|e| e.start_offset <= start_offset)
        else {
            return Ok(());
        };
        if keep == 0 && self.entries[0].start_offset == start_offset {
            return Ok(());
        }
        let mut entries = self.entries[keep..].to_vec();
        entries[0].start_offset = start_offset;
        self.replace(entries)
    }

    /// Writes `entries` to the checkpoint and, once that succeeded, keeps them: the cache in
    /// memory never holds what the file may not (a failed write changes nothing).
    fn replace(&mut self, entries: Vec<EpochEntry>) -> io::Result<()> {
        let mut text = format!("0\n{}\n", entries.len());
        for e in &entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        self.io.write_atomic(&self.path, text.as_bytes())?;
        self.entries = entries;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::sim::SimIo;

    fn cache(io: &SimIo) -> LeaderEpochCache {
        io.create_dir_durable(Path::new("/p")).unwrap();
        LeaderEpochCache::open(Arc::new(io.clone()), Path::new("/p"))
    }

    #[test]
    fn end_offsets_follow_the_next_epochs_start() {
        let io = SimIo::new();
        let mut c = cache(&io);
        c.assign(LeaderEpoch(0), Offset(0)).unwrap();
        c.assign(LeaderEpoch(3), Offset(100)).unwrap();
        c.assign(LeaderEpoch(5), Offset(250)).unwrap();
        assert_eq!(
            c.end_offset_for(LeaderEpoch(0), Offset(400)),
            (LeaderEpoch(0), Offset(100))
        );
        assert_eq!(
            c.end_offset_for(LeaderEpoch(2), Offset(400)),
            (LeaderEpoch(0), Offset(100))
        );
        assert_eq!(
            c.end_offset_for(LeaderEpoch(3), Offset(400)),
            (LeaderEpoch(3), Offset(250))
        );
        assert_eq!(
            c.end_offset_for(LeaderEpoch(5), Offset(400)),
            (LeaderEpoch(5), Offset(400))
        );
        assert_eq!(
            c.end_offset_for(LeaderEpoch(9), Offset(400)),
            (LeaderEpoch(-1), Offset(-1)),
            "newer than any known"
        );
        c.assign(LeaderEpoch(2), Offset(300)).unwrap();
        assert_eq!(
            c.latest_epoch(),
            Some(LeaderEpoch(5)),
            "an older epoch is not recorded"
        );
        assert_eq!(c.epoch_for(Offset(99)), Some(LeaderEpoch(0)));
        assert_eq!(c.epoch_for(Offset(100)), Some(LeaderEpoch(3)));
        assert_eq!(c.epoch_for(Offset(1000)), Some(LeaderEpoch(5)));
    }

    #[test]
    fn the_cache_survives_a_crash_and_truncates_both_ways() {
        let io = SimIo::new();
        let mut c = cache(&io);
        c.assign(LeaderEpoch(1), Offset(10)).unwrap();
        c.assign(LeaderEpoch(2), Offset(20)).unwrap();
        c.assign(LeaderEpoch(4), Offset(40)).unwrap();
        io.crash();
        let mut c = cache(&io);
        assert_eq!(c.entries().len(), 3);
        c.truncate_from_end(Offset(20)).unwrap();
        assert_eq!(c.latest_epoch(), Some(LeaderEpoch(1)));
        c.assign(LeaderEpoch(6), Offset(25)).unwrap();
        c.truncate_from_start(Offset(22)).unwrap();
        assert_eq!(
            cache(&io).entries(),
            &[
                EpochEntry {
                    epoch: LeaderEpoch(1),
                    start_offset: Offset(22)
                },
                EpochEntry {
                    epoch: LeaderEpoch(6),
                    start_offset: Offset(25)
                }
            ]
        );
        assert_eq!(
            c.end_offset_for(LeaderEpoch(0), Offset(30)),
            (LeaderEpoch(0), Offset(22)),
            "older than the first: its start"
        );
    }
}
