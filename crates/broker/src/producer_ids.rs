//! Producer ids: handed out from blocks reserved durably before any of their ids is used, so an
//! id is never reused across restarts, clean or not. A broker alone reserves its blocks in a
//! file; a node of a cluster asks the controller, which records each block in the metadata log,
//! so that no two brokers hand out the same id.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use strata_storage::io::Io;

/// How many producer ids are reserved on disk at a time.
const PRODUCER_ID_BLOCK: i64 = 1000;
/// The file (in the first log directory) holding the end of the reserved block.
pub const PRODUCER_ID_FILE: &str = "producer-id-block";

#[derive(Debug)]
struct Block {
    next: i64,
    reserved_until: i64,
}

/// Where a node of a cluster gets its blocks: (first id, first id past the block).
pub type BlockSource = Box<dyn Fn() -> std::io::Result<(i64, i64)> + Send + Sync>;

pub struct ProducerIds {
    io: Arc<dyn Io>,
    path: PathBuf,
    block: Mutex<Block>,
    /// Set on a node of a cluster: blocks come from the controller, not the file.
    cluster: std::sync::OnceLock<BlockSource>,
}

impl std::fmt::Debug for ProducerIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerIds").finish_non_exhaustive()
    }
}

impl ProducerIds {
    /// Starts after the block reserved last, reserving the next one before handing out any.
    pub fn open(io: Arc<dyn Io>, path: PathBuf) -> std::io::Result<ProducerIds> {
        let next = io
            .read_all(&path)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.trim().parse::<i64>().ok())
            .unwrap_or(0);
        io.write_atomic(&path, (next + PRODUCER_ID_BLOCK).to_string().as_bytes())?;
        Ok(ProducerIds {
            io,
            path,
            block: Mutex::new(Block {
                next,
                reserved_until: next + PRODUCER_ID_BLOCK,
            }),
            cluster: std::sync::OnceLock::new(),
        })
    }

    /// From now on blocks come from `source` (the controller); the file's block is dropped.
    pub fn use_cluster_blocks(&self, source: BlockSource) {
        let mut ids = self.block.lock().unwrap_or_else(|e| e.into_inner());
        if self.cluster.set(source).is_ok() {
            *ids = Block {
                next: 0,
                reserved_until: 0,
            };
        }
    }

    /// A fresh producer id.
    pub fn next(&self) -> std::io::Result<i64> {
        let mut ids = self.block.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(source) = self.cluster.get() {
            if ids.next >= ids.reserved_until {
                let (first, end) = source()?;
                *ids = Block {
                    next: first,
                    reserved_until: end,
                };
            }
        } else if ids.next >= ids.reserved_until {
            let until = ids.reserved_until + PRODUCER_ID_BLOCK;
            self.io
                .write_atomic(&self.path, until.to_string().as_bytes())?;
            ids.reserved_until = until;
        }
        let id = ids.next;
        ids.next += 1;
        Ok(id)
    }
}
