//! The metadata log on disk: Raft's log entries and vote, durable before openraft is told so.
//!
//! `<metadata.log.dir>/__cluster_metadata-0/`:
//! - `metadata.log`: frames `length u32 | crc32c u32 | JSON`, each a [`Frame`]: an entry, or
//!   (first, after a purge) the id of the last purged entry. Appended and synced; a frame that
//!   fails its length or CRC ends the log at recovery (an append that never completed), and the
//!   file is cut there.
//! - `quorum-state`: the vote (term, candidate, committed), written atomically.
//!
//! Every entry not yet purged is also kept in memory (the metadata log is small between
//! snapshots): reads never touch the file.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, RaftLogReader, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, LogState};
use serde::{Deserialize, Serialize};
use strata_storage::io::{Io, IoFile};

use super::types::{Entry, LogId, MetadataRaft, NodeId, StorageError, Vote};

pub const LOG_FILE: &str = "metadata.log";
pub const VOTE_FILE: &str = "quorum-state";
/// The newest entry known committed, so that a restarted node applies what was committed
/// before it hears from the leader.
pub const COMMITTED_FILE: &str = "committed";
/// The largest frame recovery accepts: a longer length can only be a torn or corrupt write.
const MAX_FRAME: usize = 64 << 20;

#[derive(Serialize, Deserialize)]
enum Frame {
    Entry(Entry),
    Purged(LogId),
}

struct Inner {
    io: Arc<dyn Io>,
    dir: PathBuf,
    file: Arc<dyn IoFile>,
    /// Where the next frame goes.
    end: u64,
    /// Every entry not purged, with the file position of its frame.
    entries: BTreeMap<u64, (Entry, u64)>,
    last_purged: Option<LogId>,
    vote: Option<Vote>,
    /// Set by a failed write: the file may no longer match memory, so nothing more is written
    /// (fail-stop; openraft shuts the node down on the error).
    failed: bool,
}

/// The metadata log; clones share it (openraft's log reader is a clone).
#[derive(Clone)]
pub struct MetadataLog {
    inner: Arc<Mutex<Inner>>,
}

fn frame(payload: &Frame) -> Vec<u8> {
    let json = serde_json::to_vec(payload).expect("metadata frames serialize");
    let mut out = Vec::with_capacity(8 + json.len());
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&json).to_be_bytes());
    out.extend_from_slice(&json);
    out
}

/// The frames of `bytes` up to the first one that is torn or corrupt, with each one's position;
/// and where the valid ones end.
fn parse_frames(bytes: &[u8]) -> (Vec<(Frame, u64)>, u64) {
    let mut out = Vec::new();
    let mut at = 0usize;
    while bytes.len() - at >= 8 {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let crc = u32::from_be_bytes(bytes[at + 4..at + 8].try_into().unwrap());
        if len > MAX_FRAME || bytes.len() - at - 8 < len {
            break;
        }
        let body = &bytes[at + 8..at + 8 + len];
        if crc32c::crc32c(body) != crc {
            break;
        }
        let Ok(frame) = serde_json::from_slice::<Frame>(body) else {
            break;
        };
        out.push((frame, at as u64));
        at += 8 + len;
    }
    (out, at as u64)
}

fn io_error(subject: ErrorSubject<NodeId>, verb: ErrorVerb, e: std::io::Error) -> StorageError {
    StorageError::from_io_error(subject, verb, e)
}

impl MetadataLog {
    /// Opens (or creates) the log in `dir`, recovering what was written completely.
    pub fn open(io: Arc<dyn Io>, dir: &Path) -> std::io::Result<MetadataLog> {
        io.create_dir_durable(dir)?;
        let path = dir.join(LOG_FILE);
        let file = io.open(&path, true)?;
        let mut bytes = vec![0; file.len()? as usize];
        file.read_exact_at(&mut bytes, 0)?;
        let (frames, end) = parse_frames(&bytes);
        if end < bytes.len() as u64 {
            tracing::warn!(
                path = %path.display(),
                valid = end,
                length = bytes.len(),
                "metadata log ends in an incomplete frame; cutting it off"
            );
            file.set_len(end)?;
            file.sync_data()?;
        }
        let mut entries = BTreeMap::new();
        let mut last_purged = None;
        for (frame, position) in frames {
            match frame {
                Frame::Entry(e) => {
                    entries.insert(e.log_id.index, (e, position));
                }
                Frame::Purged(id) => last_purged = Some(id),
            }
        }
        let vote = match io.read_all(&dir.join(VOTE_FILE)) {
            Ok(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", dir.join(VOTE_FILE).display()),
                )
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        Ok(MetadataLog {
            inner: Arc::new(Mutex::new(Inner {
                io,
                dir: dir.to_path_buf(),
                file,
                end,
                entries,
                last_purged,
                vote,
                failed: false,
            })),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the log under its lock on the blocking pool (it writes and syncs files).
    async fn blocking<R: Send + 'static>(
        &self,
        subject: ErrorSubject<NodeId>,
        f: impl FnOnce(&mut Inner) -> std::io::Result<R> + Send + 'static,
    ) -> Result<R, StorageError> {
        let inner = self.inner.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut guard = inner.lock().unwrap_or_else(|p| p.into_inner());
            if guard.failed {
                return Err(std::io::Error::other("the metadata log failed earlier"));
            }
            let result = f(&mut guard);
            if result.is_err() {
                guard.failed = true;
            }
            result
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        result.map_err(|e| io_error(subject, ErrorVerb::Write, e))
    }

    /// The last entry's id (or the last purged one's when none is left).
    pub fn last_log_id(&self) -> Option<LogId> {
        let inner = self.lock();
        inner
            .entries
            .values()
            .next_back()
            .map(|(e, _)| e.log_id)
            .or(inner.last_purged)
    }
}

impl Inner {
    /// Rewrites the file with only the entries left (after a purge), atomically.
    fn rewrite(&mut self) -> std::io::Result<()> {
        let mut bytes = Vec::new();
        if let Some(id) = self.last_purged {
            bytes.extend(frame(&Frame::Purged(id)));
        }
        let mut positions = Vec::with_capacity(self.entries.len());
        for (entry, _) in self.entries.values() {
            positions.push(bytes.len() as u64);
            bytes.extend(frame(&Frame::Entry(entry.clone())));
        }
        let path = self.dir.join(LOG_FILE);
        self.io.write_atomic(&path, &bytes)?;
        self.file = self.io.open(&path, false)?;
        self.end = bytes.len() as u64;
        for ((_, (_, position)), at) in self.entries.iter_mut().zip(positions) {
            *position = at;
        }
        Ok(())
    }
}

impl RaftLogReader<MetadataRaft> for MetadataLog {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let inner = self.lock();
        Ok(inner
            .entries
            .range(range)
            .map(|(_, (e, _))| e.clone())
            .collect())
    }
}

impl RaftLogStorage<MetadataRaft> for MetadataLog {
    type LogReader = MetadataLog;

    async fn get_log_state(&mut self) -> Result<LogState<MetadataRaft>, StorageError> {
        let inner = self.lock();
        let last_purged_log_id = inner.last_purged;
        let last_log_id = inner
            .entries
            .values()
            .next_back()
            .map(|(e, _)| e.log_id)
            .or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let vote = *vote;
        self.blocking(ErrorSubject::Vote, move |inner| {
            let bytes = serde_json::to_vec(&vote).expect("votes serialize");
            inner.io.write_atomic(&inner.dir.join(VOTE_FILE), &bytes)?;
            inner.vote = Some(vote);
            Ok(())
        })
        .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.blocking(ErrorSubject::Store, move |inner| {
            let bytes = serde_json::to_vec(&committed).expect("log ids serialize");
            inner
                .io
                .write_atomic(&inner.dir.join(COMMITTED_FILE), &bytes)
        })
        .await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let inner = self.lock();
        match inner.io.read_all(&inner.dir.join(COMMITTED_FILE)) {
            // A committed id past the log's end (its entries lost with an unsynced tail cannot
            // be: entries are synced before they count) or unreadable is not used.
            Ok(bytes) => Ok(serde_json::from_slice::<Option<LogId>>(&bytes)
                .ok()
                .flatten()
                .filter(|c| {
                    inner.entries.contains_key(&c.index)
                        || inner.last_purged.is_some_and(|p| p.index >= c.index)
                })),
            Err(_) => Ok(None),
        }
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<MetadataRaft>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let result = self
            .blocking(ErrorSubject::Logs, move |inner| {
                let frames: Vec<Vec<u8>> = entries
                    .iter()
                    .map(|e| frame(&Frame::Entry(e.clone())))
                    .collect();
                let slices: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
                inner.file.write_vectored_at(&slices, inner.end)?;
                inner.file.sync_data()?;
                for (entry, bytes) in entries.into_iter().zip(&frames) {
                    let at = inner.end;
                    inner.end += bytes.len() as u64;
                    inner.entries.insert(entry.log_id.index, (entry, at));
                }
                Ok(())
            })
            .await;
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(e)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.blocking(ErrorSubject::Log(log_id), move |inner| {
            let Some(cut) = inner
                .entries
                .range(log_id.index..)
                .next()
                .map(|(_, (_, at))| *at)
            else {
                return Ok(());
            };
            inner.file.set_len(cut)?;
            inner.file.sync_data()?;
            inner.end = cut;
            inner.entries.split_off(&log_id.index);
            Ok(())
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.blocking(ErrorSubject::Log(log_id), move |inner| {
            assert!(
                inner.last_purged.is_none_or(|p| p.index <= log_id.index),
                "purging below what was purged"
            );
            let kept = inner.entries.split_off(&(log_id.index + 1));
            inner.entries = kept;
            inner.last_purged = Some(log_id);
            inner.rewrite()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::state_machine::MetadataStateMachine;
    use openraft::testing::{StoreBuilder, Suite};
    use openraft::{CommittedLeaderId, EntryPayload};
    use strata_storage::io::RealIo;

    struct OnDisk;

    impl StoreBuilder<MetadataRaft, MetadataLog, MetadataStateMachine, tempfile::TempDir> for OnDisk {
        async fn build(
            &self,
        ) -> Result<(tempfile::TempDir, MetadataLog, MetadataStateMachine), StorageError> {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("__cluster_metadata-0");
            let log = MetadataLog::open(Arc::new(RealIo), &dir).unwrap();
            let machine = MetadataStateMachine::open(Arc::new(RealIo), &dir, 1 << 20).unwrap();
            Ok((tmp, log, machine))
        }
    }

    /// openraft's own suite for storage implementations, on real files.
    #[test]
    fn passes_openraft_storage_suite() {
        Suite::test_all(OnDisk).unwrap();
    }

    fn blank(term: u64, index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    /// Appends through the storage API, with the flush callback openraft would pass.
    fn append_now(log: &MetadataLog, entries: Vec<Entry>) {
        let mut inner = log.lock();
        let frames: Vec<Vec<u8>> = entries
            .iter()
            .map(|e| frame(&Frame::Entry(e.clone())))
            .collect();
        let slices: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        let end = inner.end;
        inner.file.write_vectored_at(&slices, end).unwrap();
        inner.file.sync_data().unwrap();
        for (e, f) in entries.into_iter().zip(&frames) {
            let at = inner.end;
            inner.end += f.len() as u64;
            inner.entries.insert(e.log_id.index, (e, at));
        }
    }

    #[test]
    fn reopen_keeps_entries_and_cuts_a_torn_tail() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("m");
        let log = MetadataLog::open(Arc::new(RealIo), &dir).unwrap();
        append_now(&log, (1..=5).map(|i| blank(1, i)).collect());
        drop(log);
        // A torn append: half a frame at the end.
        let path = dir.join(LOG_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let whole = bytes.len();
        let extra = frame(&Frame::Entry(blank(1, 6)));
        bytes.extend_from_slice(&extra[..extra.len() / 2]);
        std::fs::write(&path, &bytes).unwrap();
        let log = MetadataLog::open(Arc::new(RealIo), &dir).unwrap();
        assert_eq!(log.last_log_id().unwrap().index, 5);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), whole as u64);
        // A corrupt byte in the third frame ends the log after the second.
        let mut bytes = std::fs::read(&path).unwrap();
        let third = log.lock().entries[&3].1 as usize;
        drop(log);
        bytes[third + 12] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let log = MetadataLog::open(Arc::new(RealIo), &dir).unwrap();
        assert_eq!(log.last_log_id().unwrap().index, 2);
    }

    #[test]
    fn truncate_and_purge_survive_reopening() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("m");
        rt.block_on(async {
            let mut log = MetadataLog::open(Arc::new(RealIo), &dir).unwrap();
            append_now(&log, (1..=10).map(|i| blank(1, i)).collect());
            log.truncate(blank(1, 8).log_id).await.unwrap();
            log.purge(blank(1, 3).log_id).await.unwrap();
            let vote = Vote::new(4, 2);
            log.save_vote(&vote).await.unwrap();
        });
        let mut log = MetadataLog::open(Arc::new(RealIo), &dir).unwrap();
        rt.block_on(async {
            let state = log.get_log_state().await.unwrap();
            assert_eq!(state.last_purged_log_id.unwrap().index, 3);
            assert_eq!(state.last_log_id.unwrap().index, 7);
            let entries = log.try_get_log_entries(0..100).await.unwrap();
            let indexes: Vec<u64> = entries.iter().map(|e| e.log_id.index).collect();
            assert_eq!(indexes, vec![4, 5, 6, 7]);
            assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(4, 2)));
        });
    }
}
