//! Real files with injected faults, for tests of a running broker: a full disk and a failing
//! device.

use std::fmt::Debug;
use std::io::{self};
use std::os::fd::RawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::RealIo;
use super::{FileLock, Io, IoFile};

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
    fn open_mapped(&self, path: &Path, map_len: u64) -> io::Result<Arc<dyn IoFile>> {
        let inner = self.inner.open_mapped(path, map_len)?;
        Ok(Arc::new(FaultyFile {
            inner,
            faults: self.faults.clone(),
        }))
    }
}
