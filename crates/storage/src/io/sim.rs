//! A simulated disk for crash tests: files and directory entries each have a live state (what the
//! running process sees) and a durable state (what survives a crash).
//!
//! `sync_data` makes a file's bytes durable; `sync_dir` makes a directory's entries durable
//! (creations, renames and removals within it, subdirectories included: a new directory survives a
//! crash only once its parent was synced). [`SimIo::crash`] throws away everything that was
//! not made durable, as power loss would. [`SimIo::fail_after`] makes every mutating operation
//! after the next `n` fail, so a test can stop a multi-step operation at any step, crash, and run
//! recovery. Files are inodes: a renamed file keeps its content and its durability. A rename
//! between two directories is atomic, as on a journaling filesystem (ext4, xfs): syncing either
//! directory makes the whole move durable, so a file is never in both places after a crash.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Io, IoFile};

#[derive(Debug, Default, Clone)]
struct Inode {
    live: Vec<u8>,
    durable: Vec<u8>,
    /// A sync of this file failed: as Linux may after a writeback error, later syncs report
    /// success but the pages the failed one covered never reach the disk.
    sync_broken: bool,
}

/// An error [`SimIo::inject`] makes one operation fail with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimFault {
    /// EIO: the device failed.
    Io,
    /// ENOSPC: the device is full.
    Full,
}

impl SimFault {
    fn error(self) -> io::Error {
        match self {
            SimFault::Io => io::Error::other("simulated I/O error (EIO)"),
            SimFault::Full => {
                io::Error::new(io::ErrorKind::StorageFull, "simulated full device (ENOSPC)")
            }
        }
    }
}

#[derive(Debug, Default)]
struct State {
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    /// path -> inode, as the process sees it.
    live: BTreeMap<PathBuf, u64>,
    /// path -> inode, as a crash would leave it.
    durable: BTreeMap<PathBuf, u64>,
    live_dirs: BTreeSet<PathBuf>,
    durable_dirs: BTreeSet<PathBuf>,
    /// Locked paths, each with the token of the guard that holds it.
    locks: BTreeMap<PathBuf, u64>,
    next_lock: u64,
    /// Mutating operations still allowed; None: unlimited.
    budget: Option<u64>,
    operations: u64,
    /// The mutating operation that fails next (after this many more succeed), and how.
    injected: Option<(u64, SimFault)>,
    /// Set when the operation being charged is the injected failure (a write then tears).
    tearing: bool,
    /// Failed devices: every mutating operation on a path under one fails, until repaired.
    failed_devices: Vec<(PathBuf, SimFault)>,
}

impl State {
    /// The error of a failed device that holds `path`, if any.
    fn device_fault(&self, path: &Path) -> io::Result<()> {
        match self
            .failed_devices
            .iter()
            .find(|(d, _)| path.starts_with(d))
        {
            Some((_, fault)) => Err(fault.error()),
            None => Ok(()),
        }
    }

    /// Counts one mutating operation on `path`, failing it when its turn or its device says so.
    fn charge(&mut self, path: &Path) -> io::Result<()> {
        self.operations += 1;
        self.tearing = false;
        self.device_fault(path)?;
        if let Some((n, fault)) = &mut self.injected {
            if *n == 0 {
                if std::env::var_os("STRATA_SIM_BACKTRACE").is_some() {
                    // Where an injected fault lands, for debugging a test that missed it.
                    eprintln!("{}", std::backtrace::Backtrace::force_capture());
                }
                let error = fault.error();
                self.injected = None;
                self.tearing = true;
                return Err(error);
            }
            *n -= 1;
        }
        match &mut self.budget {
            Some(0) => Err(io::Error::other("simulated crash point reached")),
            Some(n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }
}

/// The simulated disk. Clones share it.
#[derive(Debug, Clone, Default)]
pub struct SimIo {
    state: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct SimFile {
    state: Arc<Mutex<State>>,
    inode: u64,
    /// The path it was opened at (a device fault finds the file by it).
    path: PathBuf,
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

impl SimIo {
    pub fn new() -> SimIo {
        SimIo::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// After `n` more mutating operations, every mutating operation fails.
    pub fn fail_after(&self, n: u64) {
        self.lock().budget = Some(n);
    }

    /// Makes the mutating operation after the next `n` fail once with `fault`, as a device
    /// error or a full device would; later operations work again. A failing write tears: the
    /// first half of its bytes land. A failing sync breaks the file's syncs for good.
    pub fn inject(&self, n: u64, fault: SimFault) {
        self.lock().injected = Some((n, fault));
    }

    /// Makes the device holding `dir` fail every mutating operation under it with `fault`
    /// (a dead disk, or a full one), until [`SimIo::repair_device`]; reads still work.
    pub fn fail_device(&self, dir: &Path, fault: SimFault) {
        self.lock().failed_devices.push((dir.to_path_buf(), fault));
    }

    /// The device holding `dir` works again (a full one was given space).
    pub fn repair_device(&self, dir: &Path) {
        self.lock().failed_devices.retain(|(d, _)| d != dir);
    }

    /// Whether an injected fault is still waiting for its operation.
    pub fn injection_pending(&self) -> bool {
        self.lock().injected.is_some()
    }

    /// Mutating operations performed so far.
    pub fn operations(&self) -> u64 {
        self.lock().operations
    }

    /// Power loss: only durable entries and bytes remain, and operations work again.
    pub fn crash(&self) {
        let mut s = self.lock();
        // Only what hangs from the root by durable directories survives.
        let dirs = s.durable_dirs.clone();
        let reachable = |p: &Path| p.ancestors().skip(1).all(|a| dirs.contains(a));
        s.durable_dirs = dirs.iter().filter(|d| reachable(d)).cloned().collect();
        let durable = std::mem::take(&mut s.durable);
        s.durable = durable.into_iter().filter(|(p, _)| reachable(p)).collect();
        s.live = s.durable.clone();
        s.live_dirs = s.durable_dirs.clone();
        for inode in s.inodes.values_mut() {
            inode.live = inode.durable.clone();
        }
        // The processes holding locks died with the machine.
        s.locks.clear();
        s.budget = None;
        s.injected = None;
        for inode in s.inodes.values_mut() {
            inode.sync_broken = false;
        }
    }

    /// The live bytes of a file, for assertions.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.lock();
        s.live.get(path).map(|i| s.inodes[i].live.clone())
    }
}

impl IoFile for SimFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let data = &s.inodes[&self.inode].live;
        let start = (pos as usize).min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }
    fn write_vectored_at(&self, bufs: &[&[u8]], pos: u64) -> io::Result<()> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let charged = s.charge(&self.path);
        let mut budget = match &charged {
            // A torn write: the first half of its bytes land before the error.
            Err(_) if s.tearing => bufs.iter().map(|b| b.len()).sum::<usize>() / 2,
            Err(_) => return charged,
            Ok(()) => usize::MAX,
        };
        let data = &mut s.inodes.get_mut(&self.inode).expect("inode").live;
        let mut at = pos as usize;
        for b in bufs {
            let b = &b[..b.len().min(budget)];
            if data.len() < at + b.len() {
                data.resize(at + b.len(), 0);
            }
            data[at..at + b.len()].copy_from_slice(b);
            at += b.len();
            budget -= b.len();
        }
        charged
    }
    fn sync_data(&self) -> io::Result<()> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let charged = s.charge(&self.path);
        let tearing = s.tearing;
        let inode = s.inodes.get_mut(&self.inode).expect("inode");
        if let Err(e) = charged {
            inode.sync_broken |= tearing;
            return Err(crate::failure::sync_error(e));
        }
        if !inode.sync_broken {
            inode.durable = inode.live.clone();
        }
        Ok(())
    }
    fn len(&self) -> io::Result<u64> {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        Ok(s.inodes[&self.inode].live.len() as u64)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.charge(&self.path)?;
        s.inodes
            .get_mut(&self.inode)
            .expect("inode")
            .live
            .resize(len as usize, 0);
        Ok(())
    }
    fn raw_fd(&self) -> Option<RawFd> {
        None
    }
}

/// A lock on a simulated file; dropping it releases the lock unless a crash already did.
struct SimLock {
    state: Arc<Mutex<State>>,
    path: PathBuf,
    token: u64,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.locks.get(&self.path) == Some(&self.token) {
            s.locks.remove(&self.path);
        }
    }
}

impl Io for SimIo {
    fn lock_file(&self, path: &Path) -> io::Result<super::FileLock> {
        let mut s = self.lock();
        if s.locks.contains_key(path) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "held by another process",
            ));
        }
        s.next_lock += 1;
        let token = s.next_lock;
        s.locks.insert(path.to_path_buf(), token);
        Ok(Box::new(SimLock {
            state: self.state.clone(),
            path: path.to_path_buf(),
            token,
        }))
    }
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn IoFile>> {
        let mut s = self.lock();
        if let Some(&inode) = s.live.get(path) {
            return Ok(Arc::new(SimFile {
                state: self.state.clone(),
                inode,
                path: path.to_path_buf(),
            }));
        }
        if !create {
            return Err(not_found(path));
        }
        let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
        if !s.live_dirs.contains(&parent) {
            return Err(not_found(&parent));
        }
        s.charge(path)?;
        let inode = s.next_inode;
        s.next_inode += 1;
        s.inodes.insert(inode, Inode::default());
        s.live.insert(path.to_path_buf(), inode);
        Ok(Arc::new(SimFile {
            state: self.state.clone(),
            inode,
            path: path.to_path_buf(),
        }))
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        let mut missing: Vec<PathBuf> = path
            .ancestors()
            .filter(|p| !s.live_dirs.contains(*p))
            .map(Path::to_path_buf)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        s.charge(path)?;
        missing.reverse();
        for d in missing {
            // A new directory is durable once its parent is synced; the root always is.
            if d.parent().is_none() {
                s.durable_dirs.insert(d.clone());
            }
            s.live_dirs.insert(d);
        }
        Ok(())
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        if !s.live.contains_key(path) {
            return Err(not_found(path));
        }
        s.charge(path)?;
        s.live.remove(path);
        Ok(())
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.charge(path)?;
        s.live.retain(|p, _| !p.starts_with(path));
        s.durable.retain(|p, _| !p.starts_with(path));
        s.live_dirs.retain(|d| !d.starts_with(path));
        s.durable_dirs.retain(|d| !d.starts_with(path));
        Ok(())
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.lock();
        let Some(&inode) = s.live.get(from) else {
            return Err(not_found(from));
        };
        s.device_fault(to)?;
        s.charge(from)?;
        s.live.remove(from);
        s.live.insert(to.to_path_buf(), inode);
        Ok(())
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let s = self.lock();
        if !s.live_dirs.contains(path) {
            return Err(not_found(path));
        }
        let mut names: BTreeSet<String> = BTreeSet::new();
        for p in s.live.keys().chain(s.live_dirs.iter()) {
            if p.parent() == Some(path) {
                if let Some(n) = p.file_name() {
                    names.insert(n.to_string_lossy().into_owned());
                }
            }
        }
        Ok(names.into_iter().collect())
    }
    fn exists(&self, path: &Path) -> bool {
        let s = self.lock();
        s.live.contains_key(path) || s.live_dirs.contains(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.charge(path).map_err(crate::failure::sync_error)?;
        let in_dir = |p: &Path| p.parent() == Some(path);
        let live: Vec<(PathBuf, u64)> = s
            .live
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        let removed: Vec<u64> = s
            .durable
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(_, i)| *i)
            .collect();
        s.durable.retain(|p, _| !in_dir(p));
        // A rename between directories is one step, as on a journaling filesystem: making
        // either side durable makes both. Files renamed into this directory leave their old
        // durable place; files renamed out of it arrive at their new one.
        let arrived: BTreeSet<u64> = live.iter().map(|(_, i)| *i).collect();
        let live_map = s.live.clone();
        s.durable
            .retain(|p, i| !arrived.contains(i) || live_map.get(p) == Some(i));
        for inode in removed {
            if arrived.contains(&inode) {
                continue;
            }
            if let Some((p, _)) = live_map.iter().find(|(_, i)| **i == inode) {
                s.durable.insert(p.clone(), inode);
            }
        }
        s.durable.extend(live);
        // Subdirectories created or removed in it.
        let live_dirs: Vec<PathBuf> = s.live_dirs.iter().filter(|d| in_dir(d)).cloned().collect();
        s.durable_dirs.retain(|d| !in_dir(d));
        s.durable_dirs.extend(live_dirs);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_keeps_only_synced_bytes_and_entries() {
        let io = SimIo::new();
        let dir = Path::new("/d");
        io.create_dir_durable(dir).unwrap();
        let f = io.open(&dir.join("a"), true).unwrap();
        f.write_vectored_at(&[b"hello"], 0).unwrap();
        f.sync_data().unwrap();
        f.write_vectored_at(&[b" world"], 5).unwrap();
        // The entry itself is not durable until the directory is synced.
        io.crash();
        assert!(!io.exists(&dir.join("a")));

        let f = io.open(&dir.join("a"), true).unwrap();
        f.write_vectored_at(&[b"hello"], 0).unwrap();
        f.sync_data().unwrap();
        io.sync_dir(dir).unwrap();
        f.write_vectored_at(&[b" world"], 5).unwrap();
        io.rename(&dir.join("a"), &dir.join("b")).unwrap();
        io.crash();
        assert_eq!(
            io.contents(&dir.join("a")).unwrap(),
            b"hello",
            "unsynced bytes and rename are lost"
        );
        assert!(!io.exists(&dir.join("b")));
    }

    #[test]
    fn a_rename_between_directories_is_atomic() {
        let io = SimIo::new();
        let (a, b) = (Path::new("/a"), Path::new("/b"));
        io.create_dir_durable(a).unwrap();
        io.create_dir_durable(b).unwrap();
        let f = io.open(&a.join("x"), true).unwrap();
        f.write_vectored_at(&[b"data"], 0).unwrap();
        f.sync_data().unwrap();
        io.sync_dir(a).unwrap();
        // Syncing the target directory makes the move durable on both sides.
        io.rename(&a.join("x"), &b.join("y")).unwrap();
        io.sync_dir(b).unwrap();
        io.crash();
        assert!(!io.exists(&a.join("x")));
        assert_eq!(io.contents(&b.join("y")).unwrap(), b"data");
        // And syncing the source directory does too.
        io.rename(&b.join("y"), &a.join("z")).unwrap();
        io.sync_dir(b).unwrap();
        io.crash();
        assert!(!io.exists(&b.join("y")));
        assert_eq!(io.contents(&a.join("z")).unwrap(), b"data");
        // Unsynced, it is undone whole.
        io.rename(&a.join("z"), &b.join("w")).unwrap();
        io.crash();
        assert!(io.exists(&a.join("z")) && !io.exists(&b.join("w")));
    }

    #[test]
    fn fail_after_stops_operations() {
        let io = SimIo::new();
        io.create_dir_durable(Path::new("/d")).unwrap();
        io.fail_after(1);
        let f = io.open(Path::new("/d/x"), true).unwrap();
        assert!(f.write_vectored_at(&[b"x"], 0).is_err());
        io.crash();
        let f = io.open(Path::new("/d/x"), true).unwrap();
        f.write_vectored_at(&[b"x"], 0).unwrap();
    }

    #[test]
    fn a_failed_device_fails_writes_under_it_until_repaired() {
        let io = SimIo::new();
        for d in ["/a", "/b"] {
            io.create_dir_durable(Path::new(d)).unwrap();
        }
        let kept = io.open(Path::new("/b/x"), true).unwrap();
        kept.write_vectored_at(&[b"kept"], 0).unwrap();
        io.fail_device(Path::new("/b"), SimFault::Full);
        assert!(
            io.open(Path::new("/a/y"), true).is_ok(),
            "another device works"
        );
        let e = kept.write_vectored_at(&[b"more"], 4).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        assert!(io.open(Path::new("/b/z"), true).is_err());
        assert!(io.rename(Path::new("/a/y"), Path::new("/b/y")).is_err());
        assert!(kept.sync_data().is_err());
        let mut buf = [0u8; 4];
        kept.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"kept", "reads still work");
        io.repair_device(Path::new("/b"));
        kept.write_vectored_at(&[b"more"], 4).unwrap();
        kept.sync_data().unwrap();
    }
}
