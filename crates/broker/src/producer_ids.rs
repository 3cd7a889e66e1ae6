//! Producer ids: handed out from blocks reserved durably before any of their ids is used, so an
//! id is never reused across restarts, clean or not.

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

pub struct ProducerIds {
    io: Arc<dyn Io>,
    path: PathBuf,
    block: Mutex<Block>,
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
        })
    }

    /// A fresh producer id.
    pub fn next(&self) -> std::io::Result<i64> {
        let mut ids = self.block.lock().unwrap_or_else(|e| e.into_inner());
        if ids.next >= ids.reserved_until {
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
