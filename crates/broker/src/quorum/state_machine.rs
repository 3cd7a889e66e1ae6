//! The metadata log applied: the [`MetadataImage`] every node builds, published to the broker
//! through a watch channel, and its snapshots.
//!
//! A snapshot is the whole image as of an entry, with the membership then, in
//! `<metadata.log.dir>/__cluster_metadata-0/snapshot.checkpoint` (JSON, written atomically). At
//! start the image is the snapshot's; openraft then applies the committed entries after it.

use std::collections::VecDeque;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb};
use serde::{Deserialize, Serialize};
use strata_storage::io::Io;
use tokio::sync::watch;

use super::types::{
    Entry, LogId, MetadataImage, MetadataRaft, SnapshotMeta, StorageError, StoredMembership,
};

pub const SNAPSHOT_FILE: &str = "snapshot.checkpoint";

/// How many of the newest applied entries are kept for observers to fetch; one further behind
/// is sent the whole image.
pub(crate) const RECENT_ENTRIES: usize = 4096;

/// A snapshot as stored and as sent to a lagging node.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    image: MetadataImage,
}

/// What the image stands at.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    pub image: Arc<MetadataImage>,
    pub last_applied: Option<LogId>,
}

struct Inner {
    io: Arc<dyn Io>,
    dir: PathBuf,
    image: MetadataImage,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    /// The newest snapshot, serialized.
    snapshot: Option<(SnapshotMeta, Vec<u8>)>,
    published: watch::Sender<Applied>,
    /// Bytes of records applied since the newest snapshot, and how many call for the next.
    since_snapshot: u64,
    snapshot_bytes: u64,
    /// Told when `since_snapshot` passes `snapshot_bytes`.
    snapshot_due: Arc<tokio::sync::Notify>,
    /// The newest applied entries (at most [`RECENT_ENTRIES`]), in order.
    recent: VecDeque<Entry>,
}

/// What an observer at some entry is sent: the image as a snapshot when it is too far behind,
/// then the entries after it.
pub struct Since {
    pub snapshot: Option<(SnapshotMeta, Vec<u8>)>,
    pub entries: Vec<Entry>,
}

/// The state machine; clones share it (the snapshot builder is a clone).
#[derive(Clone)]
pub struct MetadataStateMachine {
    inner: Arc<Mutex<Inner>>,
}

fn snapshot_error(e: impl std::fmt::Display) -> StorageError {
    StorageError::from_io_error(
        ErrorSubject::Snapshot(None),
        ErrorVerb::Write,
        std::io::Error::other(e.to_string()),
    )
}

impl MetadataStateMachine {
    /// Opens the state machine at its snapshot in `dir`, if any.
    pub fn open(
        io: Arc<dyn Io>,
        dir: &Path,
        snapshot_bytes: u64,
    ) -> std::io::Result<MetadataStateMachine> {
        let path = dir.join(SNAPSHOT_FILE);
        let stored = match io.read_all(&path) {
            Ok(bytes) => Some(
                serde_json::from_slice::<StoredSnapshot>(&bytes)
                    .map(|s| (s, bytes))
                    .map_err(|e| {
                        std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!("{}: {e}", path.display()),
                        )
                    })?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let (image, last_applied, membership, snapshot) = match stored {
            Some((s, bytes)) => (
                s.image,
                s.meta.last_log_id,
                s.meta.last_membership.clone(),
                Some((s.meta, bytes)),
            ),
            None => (
                MetadataImage::default(),
                None,
                StoredMembership::default(),
                None,
            ),
        };
        let (published, _) = watch::channel(Applied {
            image: Arc::new(image.clone()),
            last_applied,
        });
        Ok(MetadataStateMachine {
            inner: Arc::new(Mutex::new(Inner {
                io,
                dir: dir.to_path_buf(),
                image,
                last_applied,
                membership,
                snapshot,
                published,
                since_snapshot: 0,
                snapshot_bytes,
                snapshot_due: Default::default(),
                recent: VecDeque::new(),
            })),
        })
    }

    /// Told when enough records were applied since the newest snapshot to take another
    /// (`metadata.log.max.record.bytes.between.snapshots`).
    pub fn snapshot_due(&self) -> Arc<tokio::sync::Notify> {
        self.lock().snapshot_due.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The image as it changes.
    pub fn subscribe(&self) -> watch::Receiver<Applied> {
        self.lock().published.subscribe()
    }

    /// What applied entry this machine stands at.
    pub fn last_applied(&self) -> Option<LogId> {
        self.lock().last_applied
    }

    /// What follows `after` (an applied entry of this log, None: nothing), at most `max`
    /// entries: the entries themselves while they are among the recent ones, else the whole
    /// image as of the newest entry.
    pub fn since(&self, after: Option<LogId>, max: usize) -> Since {
        let inner = self.lock();
        let next = after.map_or(0, |id| id.index + 1);
        let end = inner.last_applied.map_or(0, |id| id.index + 1);
        if next >= end {
            return Since {
                snapshot: None,
                entries: Vec::new(),
            };
        }
        match inner.recent.front() {
            Some(first) if first.log_id.index <= next => Since {
                snapshot: None,
                entries: inner
                    .recent
                    .iter()
                    .skip((next - first.log_id.index) as usize)
                    .take(max)
                    .cloned()
                    .collect(),
            },
            _ => {
                let meta = inner.snapshot_meta();
                let bytes = serde_json::to_vec(&StoredSnapshot {
                    meta: meta.clone(),
                    image: inner.image.clone(),
                })
                .unwrap_or_default();
                Since {
                    snapshot: Some((meta, bytes)),
                    entries: Vec::new(),
                }
            }
        }
    }

    /// Stores a snapshot durably and makes it the current one.
    fn store(inner: &mut Inner, meta: SnapshotMeta, image: &MetadataImage) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(&StoredSnapshot {
            meta: meta.clone(),
            image: image.clone(),
        })
        .map_err(std::io::Error::other)?;
        inner
            .io
            .write_atomic(&inner.dir.join(SNAPSHOT_FILE), &bytes)?;
        inner.snapshot = Some((meta, bytes));
        Ok(())
    }
}

impl Inner {
    /// A snapshot's description of the image as it stands.
    fn snapshot_meta(&self) -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id: match self.last_applied {
                Some(id) => format!("{}-{}", id.index, id.leader_id.term),
                None => "0-0".to_string(),
            },
        }
    }

    fn publish(&self) {
        self.published.send_replace(Applied {
            image: Arc::new(self.image.clone()),
            last_applied: self.last_applied,
        });
    }
}

impl RaftSnapshotBuilder<MetadataRaft> for MetadataStateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<MetadataRaft>, StorageError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut inner = inner.lock().unwrap_or_else(|p| p.into_inner());
            let meta = inner.snapshot_meta();
            let image = inner.image.clone();
            MetadataStateMachine::store(&mut inner, meta.clone(), &image)?;
            inner.since_snapshot = 0;
            let bytes = inner
                .snapshot
                .as_ref()
                .map(|(_, b)| b.clone())
                .unwrap_or_default();
            Ok::<_, std::io::Error>(Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(bytes)),
            })
        })
        .await
        .map_err(snapshot_error)?
        .map_err(snapshot_error)
    }
}

impl RaftStateMachine<MetadataRaft> for MetadataStateMachine {
    type SnapshotBuilder = MetadataStateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let inner = self.lock();
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut inner = self.lock();
        let mut replies = Vec::new();
        for entry in entries {
            match &entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(record) => {
                    inner.image.apply(record, entry.log_id.index);
                    inner.since_snapshot +=
                        serde_json::to_vec(record).map_or(0, |b| b.len() as u64);
                }
                EntryPayload::Membership(m) => {
                    inner.membership = StoredMembership::new(Some(entry.log_id), m.clone())
                }
            }
            inner.last_applied = Some(entry.log_id);
            if inner.recent.len() == RECENT_ENTRIES {
                inner.recent.pop_front();
            }
            inner.recent.push_back(entry);
            replies.push(());
        }
        inner.publish();
        if inner.since_snapshot >= inner.snapshot_bytes {
            inner.snapshot_due.notify_one();
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let stored: StoredSnapshot =
            serde_json::from_slice(snapshot.get_ref()).map_err(snapshot_error)?;
        let inner = self.inner.clone();
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || {
            let mut inner = inner.lock().unwrap_or_else(|p| p.into_inner());
            MetadataStateMachine::store(&mut inner, meta.clone(), &stored.image)?;
            inner.image = stored.image;
            inner.last_applied = meta.last_log_id;
            // What came before the snapshot is not what follows it.
            inner.recent.clear();
            inner.membership = meta.last_membership;
            inner.publish();
            Ok::<_, std::io::Error>(())
        })
        .await
        .map_err(snapshot_error)?
        .map_err(snapshot_error)
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<MetadataRaft>>, StorageError> {
        Ok(self.lock().snapshot.as_ref().map(|(meta, bytes)| Snapshot {
            meta: meta.clone(),
            snapshot: Box::new(Cursor::new(bytes.clone())),
        }))
    }
}
