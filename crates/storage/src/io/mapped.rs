//! Files written through a shared memory mapping: a PMEM tier's access path.

use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::real::{allocate, in_memory_fs, punch_and_reserve};
use super::IoFile;

/// msync writes back. Reads and `sendfile` use the descriptor, which sees the same pages.
///
/// The mapping covers the whole segment (`segment.bytes`), but the file is allocated in steps of
/// [`GROW_STEP`] as the writes reach its end: on a memory tier (tmpfs, DAX) an allocated byte is
/// a byte of memory, and an active segment that reserved its whole size up front would hold a
/// gigabyte of memory per partition before it held any data.
pub(super) struct MappedFile {
    file: File,
    pub(super) ptr: *mut u8,
    map_len: usize,
    /// Writes stay below this: the mapping's end, lowered when the file is cut (a sealed
    /// segment trimmed to its data).
    limit: AtomicU64,
    /// The file's allocated length: a store at or past it would raise SIGBUS, so a write that
    /// reaches it allocates the next step first.
    allocated: AtomicU64,
    map_sync: bool,
    in_memory: bool,
    /// The byte range written since the last sync: msync covers only that, not the whole
    /// mapping (a segment's flush runs once per produce request under `flush.messages=1`).
    unsynced: std::sync::Mutex<Option<(usize, usize)>>,
    /// Bytes were zeroed through the descriptor (hole punching): the next sync is an fdatasync.
    zeroed: AtomicBool,
    /// The mapping's page table is filled up to here (MADV_POPULATE_WRITE, a few MiB ahead of the
    /// writes): one call instead of a page fault per 4 KiB page written.
    populated: AtomicU64,
}

/// How far ahead of the write position the mapping's pages are populated.
pub(super) const POPULATE_AHEAD: u64 = 4 << 20;

/// How much of a mapped file is allocated at a time, ahead of the writes.
pub const GROW_STEP: u64 = 64 << 20;

// SAFETY: the mapping is owned by the MappedFile and unmapped only in Drop; writes go through
// `write_vectored_at`, which the log calls from one appender at a time for disjoint, in-bounds
// ranges, and readers never read through the pointer.
unsafe impl Send for MappedFile {}
unsafe impl Sync for MappedFile {}

impl Debug for MappedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedFile")
            .field("map_len", &self.map_len)
            .field("map_sync", &self.map_sync)
            .finish()
    }
}

impl MappedFile {
    /// Maps `path` over `map_len` bytes (at least its length); the file grows within the
    /// mapping as it is written.
    pub(super) fn open(path: &Path, map_len: u64) -> io::Result<MappedFile> {
        use rustix::mm::{mmap, MapFlags, ProtFlags};
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let file_len = file.metadata()?.len();
        let len = usize::try_from(map_len.max(file_len))
            .map_err(|_| io::Error::other("mapping larger than the address space"))?;
        let mut ptr = std::ptr::null_mut();
        let mut map_sync = false;
        if len > 0 {
            let prot = ProtFlags::READ | ProtFlags::WRITE;
            // SAFETY: a fresh mapping of a file we hold open; nothing else aliases it.
            let synced = unsafe {
                mmap(
                    std::ptr::null_mut(),
                    len,
                    prot,
                    MapFlags::SHARED_VALIDATE | MapFlags::SYNC,
                    &file,
                    0,
                )
            };
            ptr = match synced {
                Ok(p) => {
                    map_sync = true;
                    p
                }
                // Not a DAX filesystem: an ordinary shared mapping, made durable by msync.
                Err(_) => unsafe {
                    mmap(std::ptr::null_mut(), len, prot, MapFlags::SHARED, &file, 0)?
                },
            } as *mut u8;
        }
        Ok(MappedFile {
            in_memory: in_memory_fs(&file),
            file,
            ptr,
            map_len: len,
            limit: AtomicU64::new(len as u64),
            allocated: AtomicU64::new(file_len),
            map_sync,
            unsynced: std::sync::Mutex::new(None),
            zeroed: AtomicBool::new(false),
            populated: AtomicU64::new(0),
        })
    }

    /// Makes the file at least `end` bytes long (within the mapping), allocating a whole step
    /// at a time. A full device refuses the write that needed the room (ENOSPC).
    fn grow_to(&self, end: u64) -> io::Result<u64> {
        let allocated = self.allocated.load(Ordering::SeqCst);
        if end <= allocated {
            return Ok(allocated);
        }
        let page = rustix::param::page_size() as u64;
        let target = end
            .max(allocated.saturating_add(GROW_STEP))
            .div_ceil(page)
            .saturating_mul(page)
            .min(self.map_len as u64);
        allocate(&self.file, target)?;
        self.allocated.store(target, Ordering::SeqCst);
        Ok(target)
    }

    /// Populates the mapping's pages from where it was populated to past `end`.
    fn populate_through(&self, end: u64, limit: u64) {
        let from = self.populated.load(Ordering::Relaxed);
        if end <= from {
            return;
        }
        let page = rustix::param::page_size() as u64;
        let start = from / page * page;
        let to = (end + POPULATE_AHEAD).min(limit);
        // SAFETY: [start, to) lies within the mapping and the file (to <= limit).
        let advised = unsafe {
            rustix::mm::madvise(
                self.ptr.add(start as usize).cast(),
                (to - start) as usize,
                rustix::mm::Advice::LinuxPopulateWrite,
            )
        };
        // A kernel without MADV_POPULATE_WRITE: the writes fault their pages in.
        let to = if advised.is_ok() { to } else { limit };
        self.populated.store(to, Ordering::Relaxed);
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: the mapping made in `open`, unmapped once.
            let _ = unsafe { rustix::mm::munmap(self.ptr.cast(), self.map_len) };
        }
    }
}

impl IoFile for MappedFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.file.read_at(buf, pos)
    }
    fn write_vectored_at(&self, bufs: &[&[u8]], pos: u64) -> io::Result<()> {
        let total: u64 = bufs.iter().map(|b| b.len() as u64).sum();
        let limit = self.limit.load(Ordering::SeqCst);
        if pos.checked_add(total).is_none_or(|end| end > limit) {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!("write of {total} bytes at {pos} passes the end ({limit}) of a mapped segment file"),
            ));
        }
        let allocated = self.grow_to(pos + total)?;
        self.populate_through(pos + total, allocated);
        let mut at = pos as usize;
        for b in bufs {
            // SAFETY: [at, at + len) lies within the mapping (checked above) and the file (grown
            // to cover it).
            unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), self.ptr.add(at), b.len()) };
            at += b.len();
        }
        let mut unsynced = self.unsynced.lock().unwrap_or_else(|e| e.into_inner());
        *unsynced = Some(match *unsynced {
            Some((from, to)) => (from.min(pos as usize), to.max(at)),
            None => (pos as usize, at),
        });
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        if self.zeroed.swap(false, Ordering::SeqCst) {
            if let Err(e) = self.file.sync_data() {
                self.zeroed.store(true, Ordering::SeqCst);
                return Err(e);
            }
        }
        let range = self
            .unsynced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some((from, to)) = range else {
            return Ok(());
        };
        // msync wants a page-aligned start.
        let page = rustix::param::page_size();
        let start = from / page * page;
        let len = to.min(self.map_len) - start;
        // SAFETY: [start, start + len) lies within the mapping made in `open`.
        let synced = unsafe {
            rustix::mm::msync(
                self.ptr.add(start).cast(),
                len,
                rustix::mm::MsyncFlags::SYNC,
            )
        };
        if let Err(e) = synced {
            // Not synced: the range stays due.
            let mut unsynced = self.unsynced.lock().unwrap_or_else(|e| e.into_inner());
            *unsynced = Some(match *unsynced {
                Some((f, t)) => (f.min(from), t.max(to)),
                None => (from, to),
            });
            return Err(e.into());
        }
        Ok(())
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        // Lower the limit before shrinking, so no store can land past the new end.
        let len_in_map = len.min(self.map_len as u64);
        self.limit.store(len_in_map, Ordering::SeqCst);
        self.allocated.fetch_min(len_in_map, Ordering::SeqCst);
        self.file.set_len(len)?;
        self.allocated.store(len_in_map, Ordering::SeqCst);
        Ok(())
    }
    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.file.as_raw_fd())
    }
    fn allocate(&self, len: u64) -> io::Result<()> {
        self.grow_to(len.min(self.map_len as u64)).map(|_| ())
    }
    fn is_mapped(&self) -> bool {
        true
    }
    fn sync_is_cheap(&self) -> bool {
        // Under MAP_SYNC, a hole punched since the last sync makes that sync an fdatasync.
        self.in_memory || (self.map_sync && !self.zeroed.load(Ordering::SeqCst))
    }
    fn write_limit(&self) -> Option<u64> {
        Some(self.limit.load(Ordering::SeqCst))
    }
    fn zero_range(&self, from: u64, to: u64) -> io::Result<()> {
        punch_and_reserve(&self.file, from, to)?;
        self.zeroed.store(true, Ordering::SeqCst);
        Ok(())
    }
}
