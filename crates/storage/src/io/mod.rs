//! The one I/O seam of the storage engine.
//!
//! Every file operation of the log goes through [`Io`] and [`IoFile`], so the same code runs on
//! real files ([`RealIo`]) and on a fault-injecting layer ([`FaultyIo`]) that tests use to
//! simulate a full disk or failing writes. Files are written positionally (`pwritev`), never through
//! a shared cursor, so readers and the single appender of a segment never disturb each other.

mod faulty;
mod mapped;
mod real;
pub mod sim;

pub use faulty::{Faults, FaultyIo};
pub use mapped::GROW_STEP as MAPPED_GROW_STEP;
pub use real::RealIo;

use std::fmt::Debug;
use std::io;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
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

    /// Opens an existing file for writing through a shared memory mapping of `map_len` bytes (at
    /// least its current length; a segment on a PMEM tier): writes are stores, `sync_data` is
    /// msync, the file is allocated in steps as writes reach its end, and writes past the
    /// mapping fail. Layers without mappings open it as a plain file, with the same durability
    /// contract: nothing written is durable before `sync_data`.
    fn open_mapped(&self, path: &Path, _map_len: u64) -> io::Result<Arc<dyn IoFile>> {
        self.open(path, false)
    }

    /// Removes a file that may already be gone (an index rebuilt on demand, an old snapshot).
    fn remove_if_present(&self, path: &Path) -> io::Result<()> {
        match self.remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Creates `path` and any missing parents, each made durable in its parent (synced), so that
    /// a crash cannot take away a directory whose files were synced.
    fn create_dir_durable(&self, path: &Path) -> io::Result<()> {
        let missing: Vec<&Path> = path.ancestors().take_while(|a| !self.exists(a)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        self.create_dir_all(path)?;
        for dir in missing.iter().rev() {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                self.sync_dir(parent)?;
            }
        }
        Ok(())
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
    use super::mapped::{MappedFile, POPULATE_AHEAD};
    use super::*;
    use std::fs::File;
    use std::os::unix::fs::FileExt;

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
        assert!(RealIo.open_mapped(&f, 0).unwrap().sync_is_cheap());
        let disk = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let f = disk.path().join("f");
        let file = RealIo.open(&f, true).unwrap();
        file.allocate(1 << 16).unwrap();
        assert!(!file.sync_is_cheap());
        assert!(!RealIo.open_mapped(&f, 0).unwrap().sync_is_cheap());
    }

    #[test]
    fn mapped_writes_populate_the_pages_ahead_instead_of_faulting_on_each() {
        const LEN: u64 = 16 << 20;
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        let f = shm.path().join("f");
        let file = RealIo.open(&f, true).unwrap();
        file.allocate(LEN).unwrap();
        file.write_zeros(0, LEN).unwrap();
        let mapped = MappedFile::open(&f, 0).unwrap();
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

    /// Bytes of memory (tmpfs blocks) a file holds.
    fn allocated_bytes(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).unwrap().blocks() * 512
    }

    #[test]
    fn a_mapped_file_takes_memory_a_step_at_a_time_as_it_is_written() {
        use super::mapped::GROW_STEP;
        const SEGMENT: u64 = 4 * GROW_STEP;
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        let f = shm.path().join("f");
        RealIo.open(&f, true).unwrap();
        let mapped = RealIo.open_mapped(&f, SEGMENT).unwrap();
        assert_eq!(
            mapped.write_limit(),
            Some(SEGMENT),
            "the whole segment fits"
        );
        assert_eq!(allocated_bytes(&f), 0, "nothing is taken before a write");
        let chunk = vec![9u8; 1 << 20];
        mapped.write_vectored_at(&[&chunk], 0).unwrap();
        assert_eq!(mapped.len().unwrap(), GROW_STEP);
        assert!(allocated_bytes(&f) <= GROW_STEP);
        // A write across the allocated end grows the file first (no SIGBUS), by a step.
        let at = GROW_STEP - 100;
        mapped.write_vectored_at(&[&chunk], at).unwrap();
        assert_eq!(mapped.len().unwrap(), 2 * GROW_STEP);
        // Up to the mapping's end and no further.
        mapped
            .write_vectored_at(&[&chunk], SEGMENT - chunk.len() as u64)
            .unwrap();
        assert_eq!(mapped.len().unwrap(), SEGMENT);
        let past = mapped.write_vectored_at(&[b"x"], SEGMENT).unwrap_err();
        assert_eq!(past.kind(), io::ErrorKind::StorageFull);
        mapped.sync_data().unwrap();
        let mut back = vec![0u8; chunk.len()];
        RealIo
            .open(&f, false)
            .unwrap()
            .read_exact_at(&mut back, at)
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
