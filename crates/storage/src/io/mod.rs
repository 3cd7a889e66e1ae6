//! The one I/O seam of the storage engine.
//!
//! Every file operation of the log goes through [`Io`] and [`IoFile`], so the same code runs on
//! real files ([`RealIo`]) and on a fault-injecting layer ([`FaultyIo`]) that tests use to
//! simulate a full disk or failing writes. Files are written positionally (`pwritev`), never through
//! a shared cursor, so readers and the single appender of a segment never disturb each other.

pub mod sim;

use crate::failure::sync_error;

use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// An open file.
pub trait IoFile: Send + Sync + Debug {
    /// Reads up to `buf.len()` bytes at `pos`; returns how many were read (0 at the end).
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize>;
    /// Writes all of `bufs`, in order, starting at `pos`.
    fn write_vectored_at(&self, bufs: &[&[u8]], pos: u64) -> io::Result<()>;
    fn sync_data(&self) -> io::Result<()>;
    fn len(&self) -> io::Result<u64>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// The descriptor, for `sendfile`, when the file is a real one.
    fn raw_fd(&self) -> Option<RawFd>;

    /// Grows the file to `len` bytes with its storage reserved (`fallocate`), so that writes
    /// below `len` never find the device full. Never shrinks it.
    fn allocate(&self, len: u64) -> io::Result<()> {
        if self.len()? < len {
            self.set_len(len)?;
        }
        Ok(())
    }
    /// Whether writes go through a memory mapping (a PMEM tier's segment; `sync_data` is msync).
    fn is_mapped(&self) -> bool {
        false
    }
    /// Whether `sync_data` costs no more than a memory operation: the file lives in memory
    /// (tmpfs, ramfs) or is mapped with MAP_SYNC (a sync flushes CPU cache lines). Such a sync
    /// runs where it is asked for; handing it to a blocking thread would cost more than the sync.
    fn sync_is_cheap(&self) -> bool {
        false
    }
    /// The largest position a write may reach, when the file cannot grow by writing (a
    /// mapping); None: unbounded.
    fn write_limit(&self) -> Option<u64> {
        None
    }
    /// Makes `[from, to)` read as zeros, keeping the file's length; chunks that already read as
    /// zeros are not written (so an untouched, pre-allocated tail costs only reads).
    fn zero_range(&self, from: u64, to: u64) -> io::Result<()> {
        const CHUNK: u64 = 1 << 20;
        let to = to.min(self.len()?);
        let zeros = vec![0u8; CHUNK as usize];
        let mut buf = vec![0u8; CHUNK as usize];
        let mut at = from;
        while at < to {
            let n = CHUNK.min(to - at) as usize;
            self.read_exact_at(&mut buf[..n], at)?;
            if buf[..n].iter().any(|b| *b != 0) {
                self.write_vectored_at(&[&zeros[..n]], at)?;
            }
            at += n as u64;
        }
        Ok(())
    }

    /// Writes zeros over `[from, to)`, whatever is there: afterwards every block of the range
    /// is written, so later writes into it neither fault in fresh zeroed pages (tmpfs, DAX) nor
    /// convert unwritten extents at their sync.
    fn write_zeros(&self, from: u64, to: u64) -> io::Result<()> {
        const CHUNK: u64 = 1 << 20;
        let zeros = vec![0u8; CHUNK as usize];
        let mut at = from;
        while at < to {
            let n = CHUNK.min(to - at) as usize;
            self.write_vectored_at(&[&zeros[..n]], at)?;
            at += n as u64;
        }
        Ok(())
    }

    /// Reads exactly `buf.len()` bytes at `pos`.
    fn read_exact_at(&self, mut buf: &mut [u8], mut pos: u64) -> io::Result<()> {
        while !buf.is_empty() {
            let n = self.read_at(buf, pos)?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "short read"));
            }
            buf = &mut buf[n..];
            pos += n as u64;
        }
        Ok(())
    }
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// An exclusive advisory lock on a file, held until the guard is dropped or the process ends.
pub type FileLock = Box<dyn std::any::Any + Send + Sync>;

/// A file system.
pub trait Io: Send + Sync + Debug {
    /// Locks `path` (created when missing) exclusively for as long as the returned guard lives,
    /// as Kafka locks `<log dir>/.lock`: while one holder has it, another gets
    /// [`io::ErrorKind::WouldBlock`]. The lock is the kernel's, so a crash releases it.
    fn lock_file(&self, path: &Path) -> io::Result<FileLock>;
    /// Opens `path` for reading and writing, creating it when `create` is set.
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn IoFile>>;
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Names of the entries of a directory.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    fn exists(&self, path: &Path) -> bool;
    /// Makes a directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;

    /// Opens an existing file for writing through a shared memory mapping of its current length
    /// (a segment on a PMEM tier): writes are stores, `sync_data` is msync, and writes past the
    /// mapping fail. Layers without mappings open it as a plain file, with the same durability
    /// contract: nothing written is durable before `sync_data`.
    fn open_mapped(&self, path: &Path) -> io::Result<Arc<dyn IoFile>> {
        self.open(path, false)
    }

    /// Writes `bytes` to `path` atomically: temporary file, sync, rename, sync the directory.
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(".tmp");
        let tmp = path.with_file_name(tmp_name);
        let _ = self.remove_file(&tmp);
        let file = self.open(&tmp, true)?;
        file.set_len(0)?;
        file.write_vectored_at(&[bytes], 0)?;
        file.sync_data()?;
        drop(file);
        self.rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            self.sync_dir(dir)?;
        }
        Ok(())
    }
    /// Reads a whole (small) file.
    fn read_all(&self, path: &Path) -> io::Result<Vec<u8>> {
        let file = self.open(path, false)?;
        let mut buf = vec![0; file.len()? as usize];
        file.read_exact_at(&mut buf, 0)?;
        Ok(buf)
    }
}

/// Real files.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealIo;

#[derive(Debug)]
struct RealFile {
    file: File,
    in_memory: bool,
}

/// Whether the file lives on a filesystem with no device behind it (tmpfs, ramfs), where a sync
/// has nothing to write.
fn in_memory_fs(file: &File) -> bool {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    const RAMFS_MAGIC: i64 = 0x8584_58f6;
    rustix::fs::fstatfs(file.as_fd())
        // f_type's integer type differs between architectures.
        .map(|s| {
            #[allow(clippy::unnecessary_cast)]
            let kind = s.f_type as i64;
            matches!(kind, TMPFS_MAGIC | RAMFS_MAGIC)
        })
        .unwrap_or(false)
}

impl IoFile for RealFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.file.read_at(buf, pos)
    }
    fn write_vectored_at(&self, bufs: &[&[u8]], mut pos: u64) -> io::Result<()> {
        // pwritev may write less than asked; continue from where it stopped.
        let mut slices: Vec<IoSlice<'_>> = bufs.iter().map(|b| IoSlice::new(b)).collect();
        let mut first = 0;
        let mut skip = 0usize;
        loop {
            while first < bufs.len() && bufs[first].len() == skip {
                first += 1;
                skip = 0;
            }
            if first == bufs.len() {
                break;
            }
            if skip > 0 {
                slices[first] = IoSlice::new(&bufs[first][skip..]);
            }
            let mut n = rustix::io::pwritev(self.file.as_fd(), &slices[first..], pos)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "pwritev wrote nothing",
                ));
            }
            pos += n as u64;
            while first < bufs.len() && n > 0 {
                let left = bufs[first].len() - skip;
                if n >= left {
                    n -= left;
                    first += 1;
                    skip = 0;
                } else {
                    skip += n;
                    n = 0;
                }
            }
        }
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        rustix::fs::fdatasync(self.file.as_fd()).map_err(|e| sync_error(e.into()))
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.file.as_raw_fd())
    }
    fn allocate(&self, len: u64) -> io::Result<()> {
        allocate(&self.file, len)
    }
    fn zero_range(&self, from: u64, to: u64) -> io::Result<()> {
        punch_and_reserve(&self.file, from, to)
    }
    fn sync_is_cheap(&self) -> bool {
        self.in_memory
    }
}

fn allocate(file: &File, len: u64) -> io::Result<()> {
    let have = file.metadata()?.len();
    if have >= len {
        return Ok(());
    }
    match rustix::fs::fallocate(file.as_fd(), rustix::fs::FallocateFlags::empty(), 0, len) {
        Ok(()) => Ok(()),
        // Filesystems without fallocate: a plain extension (sparse, but the right length).
        Err(rustix::io::Errno::OPNOTSUPP) => file.set_len(len),
        Err(e) => Err(e.into()),
    }
}

/// Zeros `[from, to)` of a real file by punching a hole (the filesystem drops the blocks, which
/// then read as zeros) and reserving the range again, so later writes cannot meet a full device.
fn punch_and_reserve(file: &File, from: u64, to: u64) -> io::Result<()> {
    use rustix::fs::{fallocate, FallocateFlags};
    let to = to.min(file.metadata()?.len());
    if to <= from {
        return Ok(());
    }
    let len = to - from;
    match fallocate(
        file.as_fd(),
        FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
        from,
        len,
    ) {
        Ok(()) => match fallocate(file.as_fd(), FallocateFlags::KEEP_SIZE, from, len) {
            Ok(()) | Err(rustix::io::Errno::OPNOTSUPP) => Ok(()),
            Err(e) => Err(e.into()),
        },
        Err(rustix::io::Errno::OPNOTSUPP) => {
            // No hole punching here: write the zeros.
            let zeros = vec![0u8; 1 << 20];
            let mut at = from;
            while at < to {
                let n = (zeros.len() as u64).min(to - at) as usize;
                file.write_all_at(&zeros[..n], at)?;
                at += n as u64;
            }
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// A file written through a shared mapping: PMEM's access path. With MAP_SYNC (a DAX
/// filesystem) stores reach persistent memory through the CPU cache and msync flushes the cache
/// lines; elsewhere (tmpfs, an ordinary filesystem) it is a shared mapping of the page cache that
/// msync writes back. Reads and `sendfile` use the descriptor, which sees the same pages.
struct MappedFile {
    file: File,
    ptr: *mut u8,
    map_len: usize,
    /// Writes stay below min(mapping, file length): a store past the end of the file would
    /// raise SIGBUS.
    limit: AtomicU64,
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
const POPULATE_AHEAD: u64 = 4 << 20;

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
    fn open(path: &Path) -> io::Result<MappedFile> {
        use rustix::mm::{mmap, MapFlags, ProtFlags};
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = file.metadata()?.len() as usize;
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
            map_sync,
            unsynced: std::sync::Mutex::new(None),
            zeroed: AtomicBool::new(false),
            populated: AtomicU64::new(0),
        })
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
        self.populate_through(pos + total, limit);
        let mut at = pos as usize;
        for b in bufs {
            // SAFETY: [at, at + len) lies within the mapping and the file (checked above).
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
        self.limit
            .store(len.min(self.map_len as u64), Ordering::SeqCst);
        self.file.set_len(len)
    }
    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.file.as_raw_fd())
    }
    fn allocate(&self, len: u64) -> io::Result<()> {
        allocate(&self.file, len)?;
        self.limit.store(
            len.max(self.len()?).min(self.map_len as u64),
            Ordering::SeqCst,
        );
        Ok(())
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

impl Io for RealIo {
    fn lock_file(&self, path: &Path) -> io::Result<FileLock> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        match rustix::fs::flock(
            file.as_fd(),
            rustix::fs::FlockOperation::NonBlockingLockExclusive,
        ) {
            Ok(()) => Ok(Box::new(file)),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "held by another process",
            )),
            Err(e) => Err(e.into()),
        }
    }
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn IoFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .open(path)?;
        Ok(Arc::new(RealFile {
            in_memory: in_memory_fs(&file),
            file,
        }))
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all().map_err(sync_error)
    }
    fn open_mapped(&self, path: &Path) -> io::Result<Arc<dyn IoFile>> {
        Ok(Arc::new(MappedFile::open(path)?))
    }
}

/// Real files with injected faults: a write budget after which writes fail with `ENOSPC`
/// (a full disk), and a switch that fails every write and sync with `EIO`.
#[derive(Debug, Clone)]
pub struct FaultyIo {
    inner: RealIo,
    faults: Arc<Faults>,
}

/// The shared fault switches of a [`FaultyIo`]; tests keep a handle to change them while the
/// broker runs.
#[derive(Debug)]
pub struct Faults {
    /// Bytes that may still be written before the disk is "full".
    space_left: AtomicU64,
    broken: AtomicBool,
    written: AtomicU64,
}

impl Faults {
    pub fn set_space_left(&self, bytes: u64) {
        self.space_left.store(bytes, Ordering::SeqCst);
    }
    pub fn set_broken(&self, broken: bool) {
        self.broken.store(broken, Ordering::SeqCst);
    }
    pub fn bytes_written(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }
    fn charge(&self, bytes: u64) -> io::Result<()> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(
                rustix::io::Errno::IO.raw_os_error(),
            ));
        }
        let mut left = self.space_left.load(Ordering::SeqCst);
        loop {
            if left < bytes {
                return Err(io::Error::from_raw_os_error(
                    rustix::io::Errno::NOSPC.raw_os_error(),
                ));
            }
            match self.space_left.compare_exchange(
                left,
                left - bytes,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => break,
                Err(now) => left = now,
            }
        }
        self.written.fetch_add(bytes, Ordering::SeqCst);
        Ok(())
    }
}

impl FaultyIo {
    pub fn new() -> FaultyIo {
        FaultyIo {
            inner: RealIo,
            faults: Arc::new(Faults {
                space_left: AtomicU64::new(u64::MAX),
                broken: AtomicBool::new(false),
                written: AtomicU64::new(0),
            }),
        }
    }
    pub fn faults(&self) -> Arc<Faults> {
        self.faults.clone()
    }
}

impl Default for FaultyIo {
    fn default() -> Self {
        FaultyIo::new()
    }
}

#[derive(Debug)]
struct FaultyFile {
    inner: Arc<dyn IoFile>,
    faults: Arc<Faults>,
}

impl IoFile for FaultyFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.inner.read_at(buf, pos)
    }
    fn write_vectored_at(&self, bufs: &[&[u8]], pos: u64) -> io::Result<()> {
        // A full disk refuses the whole write: nothing of it reaches the file.
        self.faults
            .charge(bufs.iter().map(|b| b.len() as u64).sum())?;
        self.inner.write_vectored_at(bufs, pos)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.faults.charge(0)?;
        self.inner.sync_data()
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn raw_fd(&self) -> Option<RawFd> {
        self.inner.raw_fd()
    }
    fn allocate(&self, len: u64) -> io::Result<()> {
        self.faults.charge(len.saturating_sub(self.inner.len()?))?;
        self.inner.allocate(len)
    }
    fn is_mapped(&self) -> bool {
        self.inner.is_mapped()
    }
    fn sync_is_cheap(&self) -> bool {
        self.inner.sync_is_cheap()
    }
    fn write_zeros(&self, from: u64, to: u64) -> io::Result<()> {
        // Overwrites blocks the file already has: no space is taken.
        self.faults.charge(0)?;
        self.inner.write_zeros(from, to)
    }
    fn write_limit(&self) -> Option<u64> {
        self.inner.write_limit()
    }
    fn zero_range(&self, from: u64, to: u64) -> io::Result<()> {
        self.faults.charge(0)?;
        self.inner.zero_range(from, to)
    }
}

impl Io for FaultyIo {
    fn lock_file(&self, path: &Path) -> io::Result<FileLock> {
        self.inner.lock_file(path)
    }
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn IoFile>> {
        let inner = self.inner.open(path, create)?;
        Ok(Arc::new(FaultyFile {
            inner,
            faults: self.faults.clone(),
        }))
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }
    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.sync_dir(path)
    }
    fn open_mapped(&self, path: &Path) -> io::Result<Arc<dyn IoFile>> {
        let inner = self.inner.open_mapped(path)?;
        Ok(Arc::new(FaultyFile {
            inner,
            faults: self.faults.clone(),
        }))
    }
}

/// `<dir>/<20-digit offset>.<suffix>`, Kafka's file naming.
pub fn offset_file(dir: &Path, offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{offset:020}.{suffix}"))
}

/// The largest base offset a segment file may be named by: a segment's offsets run up to 2^31
/// past its base, and all of them must stay below i64::MAX.
pub const MAX_BASE_OFFSET: i64 = i64::MAX - 2 * (i32::MAX as i64);

/// The offset and suffix of a file named as [`offset_file`] names them; None for any other name,
/// including offsets beyond [`MAX_BASE_OFFSET`] (not a file the broker wrote).
pub fn parse_offset_file(name: &str) -> Option<(i64, &str)> {
    let (stem, suffix) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let offset = stem.parse::<i64>().ok()?;
    (offset <= MAX_BASE_OFFSET).then_some((offset, suffix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectored_write_lands_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let f = RealIo.open(&dir.path().join("f"), true).unwrap();
        f.write_vectored_at(&[b"ab", b"", b"cde"], 3).unwrap();
        f.write_vectored_at(&[b""], 0).unwrap();
        let mut buf = [0u8; 8];
        f.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"\0\0\0abcde");
    }

    /// Whether the page at `addr` is in this process's page table (/proc/self/pagemap, bit 63).
    fn page_present(addr: usize) -> bool {
        let pagemap = File::open("/proc/self/pagemap").unwrap();
        let mut entry = [0u8; 8];
        let page = rustix::param::page_size();
        pagemap
            .read_exact_at(&mut entry, (addr / page * 8) as u64)
            .unwrap();
        u64::from_le_bytes(entry) >> 63 == 1
    }

    #[test]
    fn syncs_of_files_in_memory_are_cheap_and_of_files_on_disk_are_not() {
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        let f = shm.path().join("f");
        let file = RealIo.open(&f, true).unwrap();
        file.allocate(1 << 16).unwrap();
        assert!(file.sync_is_cheap());
        assert!(RealIo.open_mapped(&f).unwrap().sync_is_cheap());
        let disk = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let f = disk.path().join("f");
        let file = RealIo.open(&f, true).unwrap();
        file.allocate(1 << 16).unwrap();
        assert!(!file.sync_is_cheap());
        assert!(!RealIo.open_mapped(&f).unwrap().sync_is_cheap());
    }

    #[test]
    fn mapped_writes_populate_the_pages_ahead_instead_of_faulting_on_each() {
        const LEN: u64 = 16 << 20;
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        let f = shm.path().join("f");
        let file = RealIo.open(&f, true).unwrap();
        file.allocate(LEN).unwrap();
        file.write_zeros(0, LEN).unwrap();
        let mapped = MappedFile::open(&f).unwrap();
        let base = mapped.ptr as usize;
        let ahead = POPULATE_AHEAD as usize;
        assert!(!page_present(base));
        let chunk = vec![7u8; 16 << 10];
        mapped.write_vectored_at(&[&chunk], 0).unwrap();
        // Pages no write has touched yet are already mapped, as far as POPULATE_AHEAD...
        assert!(page_present(base + ahead - 4096));
        // ...and no further.
        assert!(!page_present(base + 2 * ahead));
        for at in (chunk.len() as u64..LEN).step_by(chunk.len()) {
            mapped.write_vectored_at(&[&chunk], at).unwrap();
        }
        assert!(page_present(base + LEN as usize - 4096));
        mapped.sync_data().unwrap();
        let mut back = vec![0u8; chunk.len()];
        file.read_exact_at(&mut back, LEN - chunk.len() as u64)
            .unwrap();
        assert_eq!(back, chunk);
    }

    #[test]
    fn full_disk_refuses_whole_write() {
        let dir = tempfile::tempdir().unwrap();
        let io = FaultyIo::new();
        io.faults().set_space_left(4);
        let f = io.open(&dir.path().join("f"), true).unwrap();
        let err = f.write_vectored_at(&[b"hello"], 0).unwrap_err();
        assert_eq!(
            err.raw_os_error(),
            Some(rustix::io::Errno::NOSPC.raw_os_error())
        );
        assert_eq!(f.len().unwrap(), 0);
        f.write_vectored_at(&[b"hi"], 0).unwrap();
        assert_eq!(f.len().unwrap(), 2);
    }
}
