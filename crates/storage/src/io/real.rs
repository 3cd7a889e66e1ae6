//! Real files: positional vectored writes, `fdatasync`, `fallocate`, and `flock` for directory
//! locks.

use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use super::mapped::MappedFile;
use super::{FileLock, Io, IoFile};
use crate::failure::sync_error;

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
pub(super) fn in_memory_fs(file: &File) -> bool {
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

pub(super) fn allocate(file: &File, len: u64) -> io::Result<()> {
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
pub(super) fn punch_and_reserve(file: &File, from: u64, to: u64) -> io::Result<()> {
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
    fn open_mapped(&self, path: &Path, map_len: u64) -> io::Result<Arc<dyn IoFile>> {
        Ok(Arc::new(MappedFile::open(path, map_len)?))
    }
}
