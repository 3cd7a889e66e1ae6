//! Fail-stop on I/O errors, Kafka's way: a write or sync error takes its directory offline.
//!
//! After a failed write or `fsync` nothing about the files is known any more: the kernel may have
//! dropped the dirty pages of a failed sync and report the next one as a success. So the first
//! error in a data or tier directory marks the directory offline, once, logged with the path and
//! the cause; every partition with files in it then refuses appends, flushes and reads
//! (KAFKA_STORAGE_ERROR) until the broker restarts and recovers it. The other directories keep
//! serving. A full device (`ENOSPC`) is not a failure of the directory: the append that met it is
//! refused and cut off, and writing resumes when space returns.
//!
//! The offline set only grows. Checks on the hot path read one atomic flag while nothing has
//! failed.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};

/// Called with each directory that goes offline (the broker shuts down when none is left).
pub type FailureListener = Box<dyn Fn(&Path) + Send + Sync>;

/// The directories taken offline by I/O errors, shared by every log of a broker.
#[derive(Default)]
pub struct LogDirFailures {
    offline: RwLock<Vec<PathBuf>>,
    any: AtomicBool,
    listener: Mutex<Option<FailureListener>>,
}

impl std::fmt::Debug for LogDirFailures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogDirFailures")
            .field("offline", &self.offline_dirs())
            .finish()
    }
}

/// Whether an error means the device is full rather than failing.
pub fn is_full(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull
}

/// The error of a failed sync, never taken for a full device: an ENOSPC from `fsync` means
/// write-back failed and pages may be lost, which stops the directory like any other failed
/// sync, whereas a write refused for ENOSPC changed nothing that cannot be cut off.
pub fn sync_error(e: io::Error) -> io::Error {
    if is_full(&e) {
        io::Error::other(format!("sync failed: {e}"))
    } else {
        e
    }
}

/// The data or tier directory of a file or partition directory: what goes offline.
fn dir_of(path: &Path) -> &Path {
    path.parent().unwrap_or(path)
}

impl LogDirFailures {
    /// Takes the directory holding `partition_dir` (a partition's directory in a data or tier
    /// directory) offline for `cause`. Only the first error of a directory is logged.
    pub fn fail(&self, partition_dir: &Path, cause: &io::Error) {
        let dir = dir_of(partition_dir);
        {
            let mut offline = self.offline.write().unwrap_or_else(|e| e.into_inner());
            if offline.iter().any(|d| d == dir) {
                return;
            }
            offline.push(dir.to_path_buf());
            self.any.store(true, Ordering::SeqCst);
        }
        tracing::error!(
            dir = %dir.display(),
            error = %cause,
            "I/O error: taking the directory offline; its partitions answer KAFKA_STORAGE_ERROR until the broker restarts"
        );
        if let Some(listener) = &*self.listener.lock().unwrap_or_else(|e| e.into_inner()) {
            listener(dir);
        }
    }

    /// Whether any directory has gone offline: the cheap check before a lookup.
    pub fn offline_dirs_known(&self) -> bool {
        self.any.load(Ordering::Relaxed)
    }

    /// The first offline directory among those holding `partition_dirs`.
    pub fn offline_among<'a>(
        &self,
        partition_dirs: impl IntoIterator<Item = &'a Path>,
    ) -> Option<PathBuf> {
        if !self.any.load(Ordering::Relaxed) {
            return None;
        }
        let offline = self.offline.read().unwrap_or_else(|e| e.into_inner());
        partition_dirs
            .into_iter()
            .map(dir_of)
            .find(|d| offline.iter().any(|o| o == d))
            .map(Path::to_path_buf)
    }

    /// Whether `dir` (a data or tier directory) is offline.
    pub fn is_offline(&self, dir: &Path) -> bool {
        self.any.load(Ordering::Relaxed)
            && self
                .offline
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .any(|d| d == dir)
    }

    pub fn offline_dirs(&self) -> Vec<PathBuf> {
        self.offline
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Calls `listener` with every directory that goes offline from now on.
    pub fn set_listener(&self, listener: FailureListener) {
        *self.listener.lock().unwrap_or_else(|e| e.into_inner()) = Some(listener);
    }
}
