//! The pool of pre-allocated segment files of the `pmem` channel.
//!
//! At first start `log.pmem.pool.ratio` x capacity / `segment.bytes` files of `segment.bytes`
//! each are allocated in the tier directory and written with zeros (so a producer's writes into
//! them never wait for the filesystem to allocate or zero a page: the pool takes that cost at
//! first start); a new segment takes one as its `.log`, a deleted segment gives it back. A file is
//! zeroed (written with zeros, in the background) before it is handed out again, so recovery,
//! which reads batches until the first one that does not check out, can never take a previous
//! owner's batches for data.
//!
//! ```text
//! <tier dir>/.pool/
//!     pool.meta       file.bytes and count, written (atomically) once the files exist
//!     free-<id>       zeroed and allocated: ready to become a segment's .log
//!     dirty-<id>      a former segment's .log, waiting to be zeroed
//!     new-<id>        being created at first start; removed at the next start
//! take       rename free-<id> -> <partition dir>/<base>.log, then sync both directories
//! give back  rename <partition dir>/<base>.log -> dirty-<id>, then sync both directories
//! clean      zero dirty-<id>, sync it, rename it to free-<id>, sync the pool directory
//! ```
//! A rename moves the one directory entry atomically (a journaling filesystem commits both of
//! its directories together), so after a crash at any step each file is in the pool or is one
//! segment's `.log`: never both, never neither. A `dirty-` file found at startup is zeroed again
//! whole; a `free-` file was renamed only after its zeros were durable.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::io::Io;

pub const POOL_DIR: &str = ".pool";
const META: &str = "pool.meta";

/// What opening a pool found and did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PoolRecovery {
    /// Files created now (first start, or one interrupted).
    pub created: usize,
    /// Files given back before a crash and zeroed now.
    pub cleaned: usize,
    /// Half-created files removed.
    pub temporaries_removed: usize,
}

#[derive(Debug, Default)]
struct PoolState {
    free: Vec<u64>,
    /// Given-back files and when they may be zeroed.
    dirty: VecDeque<(u64, Instant)>,
    next_id: u64,
    stop: bool,
}

/// One tier directory's pool.
#[derive(Debug)]
pub struct SegmentPool {
    io: Arc<dyn Io>,
    dir: PathBuf,
    file_bytes: u64,
    count: usize,
    state: Mutex<PoolState>,
    dirty_ready: Condvar,
    cleaner: Mutex<Option<JoinHandle<()>>>,
    /// How long a given-back file stays untouched before it is zeroed: a fetch that located
    /// bytes in the segment just before its deletion may still be sending them.
    reuse_delay: Mutex<Duration>,
}

fn parse_meta(bytes: &[u8]) -> Option<(u64, usize)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut file_bytes = None;
    let mut count = None;
    for line in text.lines() {
        match line.split_once('=') {
            Some(("file.bytes", v)) => file_bytes = v.trim().parse().ok(),
            Some(("count", v)) => count = v.trim().parse().ok(),
            _ => {}
        }
    }
    Some((file_bytes?, count?))
}

impl SegmentPool {
    /// The pool of `tier_dir`, created at first start with `count` files of `file_bytes`; at later
    /// starts the sizes recorded then are kept and interrupted steps are finished.
    pub fn open(
        io: Arc<dyn Io>,
        tier_dir: &Path,
        file_bytes: u64,
        count: usize,
    ) -> io::Result<(Arc<SegmentPool>, PoolRecovery)> {
        let dir = tier_dir.join(POOL_DIR);
        io.create_dir_durable(&dir)?;
        let mut report = PoolRecovery::default();
        let mut state = PoolState::default();
        let mut dirty = Vec::new();
        for name in io.list_dir(&dir)? {
            let Some((kind, id)) = name.split_once('-') else {
                continue;
            };
            let Ok(id) = id.parse::<u64>() else {
                continue;
            };
            state.next_id = state.next_id.max(id + 1);
            match kind {
                "free" => state.free.push(id),
                "dirty" => dirty.push(id),
                "new" => {
                    io.remove_file(&dir.join(&name))?;
                    report.temporaries_removed += 1;
                }
                _ => {}
            }
        }
        let meta = io
            .read_all(&dir.join(META))
            .ok()
            .and_then(|b| parse_meta(&b));
        let (file_bytes, count) = meta.unwrap_or((file_bytes, count));
        let pool = SegmentPool {
            io: io.clone(),
            dir: dir.clone(),
            file_bytes,
            count,
            state: Mutex::new(PoolState::default()),
            dirty_ready: Condvar::new(),
            cleaner: Mutex::new(None),
            reuse_delay: Mutex::new(Duration::from_secs(60)),
        };
        for id in dirty {
            pool.clean(id)?;
            state.free.push(id);
            report.cleaned += 1;
        }
        if meta.is_none() {
            // First start (or an interrupted one): allocate the files still missing.
            let have = state.free.len();
            let mut reported = Instant::now();
            for made in have..count {
                if reported.elapsed() >= Duration::from_secs(5) {
                    reported = Instant::now();
                    tracing::info!(pool = %dir.display(), made, count, "writing the segment pool's files");
                }
                let id = state.next_id;
                state.next_id += 1;
                let temp = dir.join(format!("new-{id}"));
                let file = io.open(&temp, true)?;
                file.allocate(file_bytes)?;
                file.write_zeros(0, file_bytes)?;
                file.sync_data()?;
                drop(file);
                io.rename(&temp, &dir.join(format!("free-{id}")))?;
                state.free.push(id);
                report.created += 1;
            }
            io.sync_dir(&dir)?;
            io.write_atomic(
                &dir.join(META),
                format!("file.bytes={file_bytes}\ncount={count}\n").as_bytes(),
            )?;
        }
        state.free.sort_unstable();
        *pool.state.lock().unwrap_or_else(|e| e.into_inner()) = state;
        Ok((Arc::new(pool), report))
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The size of every pool file: the largest a segment in this tier can grow to.
    pub fn file_bytes(&self) -> u64 {
        self.file_bytes
    }
    /// How many files the pool was created with.
    pub fn count(&self) -> usize {
        self.count
    }
    /// Files ready to be taken.
    pub fn free_count(&self) -> usize {
        self.lock().free.len()
    }
    /// Files waiting to be zeroed.
    pub fn dirty_count(&self) -> usize {
        self.lock().dirty.len()
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Sets how long a given-back file waits before it is zeroed and reused
    /// (`log.segment.delete.delay.ms`; 60 s by default).
    pub fn set_reuse_delay(&self, delay: Duration) {
        *self.reuse_delay.lock().unwrap_or_else(|e| e.into_inner()) = delay;
    }

    /// Makes a zeroed, allocated file of `file_bytes` the file at `dest` (a new segment's
    /// `.log`): a free pool file when there is one, else a new file outside the pool.
    pub fn take(&self, dest: &Path) -> io::Result<()> {
        let dest_dir = dest.parent().unwrap_or(Path::new("."));
        let id = self.lock().free.pop();
        let Some(id) = id else {
            // The pool is exhausted: the segment gets a file of its own, allocated (not written:
            // this is the producer's path); given back later, it joins the pool.
            let file = self.io.open(dest, true)?;
            file.set_len(0)?;
            file.allocate(self.file_bytes)?;
            file.sync_data()?;
            return self.io.sync_dir(dest_dir);
        };
        let result = (|| {
            let free = self.dir.join(format!("free-{id}"));
            self.io.rename(&free, dest)?;
            self.io.sync_dir(dest_dir)?;
            self.io.sync_dir(&self.dir)
        })();
        if result.is_err() && self.io.exists(&self.dir.join(format!("free-{id}"))) {
            // Not taken: it stays in the pool.
            self.lock().free.push(id);
        }
        result
    }

    /// Takes back the file at `path` (a deleted segment's `.log`); it is zeroed in the
    /// background after the reuse delay.
    pub fn give_back(&self, path: &Path) -> io::Result<()> {
        let id = {
            let mut state = self.lock();
            let id = state.next_id;
            state.next_id += 1;
            id
        };
        self.io
            .rename(path, &self.dir.join(format!("dirty-{id}")))?;
        self.io.sync_dir(&self.dir)?;
        if let Some(dir) = path.parent() {
            self.io.sync_dir(dir)?;
        }
        let due = Instant::now() + *self.reuse_delay.lock().unwrap_or_else(|e| e.into_inner());
        self.lock().dirty.push_back((id, due));
        self.dirty_ready.notify_one();
        Ok(())
    }

    /// Zeroes `dirty-<id>` durably and renames it `free-<id>`.
    fn clean(&self, id: u64) -> io::Result<()> {
        let dirty = self.dir.join(format!("dirty-{id}"));
        let file = self.io.open(&dirty, false)?;
        let len = file.len()?.max(self.file_bytes);
        file.allocate(len)?;
        file.write_zeros(0, len)?;
        file.sync_data()?;
        drop(file);
        self.io
            .rename(&dirty, &self.dir.join(format!("free-{id}")))?;
        self.io.sync_dir(&self.dir)
    }

    /// Zeroes the oldest given-back file now, whatever its delay; returns whether there was one.
    pub fn clean_one(&self) -> io::Result<bool> {
        let Some((id, due)) = self.lock().dirty.pop_front() else {
            return Ok(false);
        };
        match self.clean(id) {
            Ok(()) => {
                self.lock().free.push(id);
                Ok(true)
            }
            Err(e) => {
                self.lock().dirty.push_front((id, due));
                Err(e)
            }
        }
    }

    /// Starts the thread that zeroes given-back files, off the producers' path.
    pub fn start_cleaner(self: &Arc<Self>) {
        let pool = Arc::downgrade(self);
        let handle = std::thread::Builder::new()
            .name("pool-cleaner".into())
            .spawn(move || loop {
                let Some(pool) = pool.upgrade() else {
                    return;
                };
                {
                    let mut state = pool.lock();
                    loop {
                        if state.stop {
                            return;
                        }
                        let now = Instant::now();
                        let wait = match state.dirty.front() {
                            Some((_, due)) if *due <= now => break,
                            Some((_, due)) => *due - now,
                            None => Duration::from_secs(3600),
                        };
                        state = pool
                            .dirty_ready
                            .wait_timeout(state, wait)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    }
                }
                if let Err(e) = pool.clean_one() {
                    tracing::error!(pool = %pool.dir.display(), error = %e, "zeroing a pool file failed");
                    drop(pool);
                    std::thread::sleep(std::time::Duration::from_secs(1));
                }
            })
            .expect("spawn pool cleaner");
        *self.cleaner.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
    }

    /// Stops the cleaner; files still dirty are zeroed at the next start.
    pub fn stop(&self) {
        self.lock().stop = true;
        self.dirty_ready.notify_all();
        if let Some(h) = self
            .cleaner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = h.join();
        }
    }
}

impl crate::log::segment::SegmentFileSource for SegmentPool {
    fn take(&self, dest: &Path) -> io::Result<()> {
        SegmentPool::take(self, dest)
    }
    fn give_back(&self, path: &Path) -> io::Result<()> {
        SegmentPool::give_back(self, path)
    }
    fn file_bytes(&self) -> u64 {
        SegmentPool::file_bytes(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::simple_batch;
    use crate::io::offset_file;
    use crate::io::sim::SimIo;
    use crate::log::segment::{AppendedBatch, FileMode, Segment, SegmentLimits};
    use crate::units::{LeaderEpoch, Offset};

    const LIMITS: SegmentLimits = SegmentLimits {
        index_interval_bytes: 64,
        max_index_bytes: 1 << 12,
        max_leader_epoch: LeaderEpoch::INITIAL,
    };
    const FILE_BYTES: u64 = 4096;
    const COUNT: usize = 3;

    fn tier() -> &'static Path {
        Path::new("/pmem")
    }
    fn part() -> PathBuf {
        tier().join("t-0")
    }
    /// Another partition, whose first segment has the same base offset as `part()`'s.
    fn other_part() -> PathBuf {
        tier().join("u-0")
    }

    fn open(io: &SimIo) -> (Arc<SegmentPool>, PoolRecovery) {
        SegmentPool::open(Arc::new(io.clone()), tier(), FILE_BYTES, COUNT).unwrap()
    }

    fn mode(pool: &Arc<SegmentPool>) -> FileMode {
        FileMode {
            mapped: true,
            preallocate: Some(FILE_BYTES),
            pool: Some(pool.clone()),
        }
    }

    /// Appends `n` one-record batches and syncs them.
    fn fill(segment: &mut Segment, n: i64, tag: &str) -> io::Result<()> {
        for i in 0..n {
            let offset = segment.next_offset().get();
            let mut b = simple_batch(&[format!("{tag} {i}").as_bytes()], 1000 + i);
            b[0..8].copy_from_slice(&offset.to_be_bytes());
            let appended = AppendedBatch {
                base_offset: offset,
                last_offset: offset,
                max_timestamp: 1000 + i,
                size: b.len() as u32,
            };
            segment.append(&[&b], &[appended])?;
        }
        segment.flush()
    }

    /// Every pool file is in exactly one place: the pool or one segment `.log`.
    fn owned_files(io: &SimIo) -> usize {
        let pool_files = io
            .list_dir(&tier().join(POOL_DIR))
            .unwrap()
            .iter()
            .filter(|n| n.starts_with("free-") || n.starts_with("dirty-"))
            .count();
        let segments = [part(), other_part()]
            .iter()
            .flat_map(|d| io.list_dir(d).unwrap_or_default())
            .filter(|n| n.ends_with(".log"))
            .count();
        pool_files + segments
    }

    #[test]
    fn first_start_allocates_the_files_and_later_starts_keep_them() {
        let io = SimIo::new();
        let (pool, report) = open(&io);
        assert_eq!(report.created, COUNT);
        assert_eq!(pool.free_count(), COUNT);
        for name in io.list_dir(&tier().join(POOL_DIR)).unwrap() {
            if name.starts_with("free-") {
                let bytes = io.contents(&tier().join(POOL_DIR).join(&name)).unwrap();
                assert_eq!(bytes.len() as u64, FILE_BYTES);
            }
        }
        io.crash();
        // A different configured size does not change an existing pool.
        let (pool, report) = SegmentPool::open(Arc::new(io.clone()), tier(), 99, 9).unwrap();
        assert_eq!(report, PoolRecovery::default());
        assert_eq!(
            (pool.file_bytes(), pool.count(), pool.free_count()),
            (FILE_BYTES, COUNT, COUNT)
        );
    }

    #[test]
    fn a_crash_during_the_first_start_is_finished_at_the_next() {
        let total = {
            let io = SimIo::new();
            let before = io.operations();
            open(&io);
            io.operations() - before
        };
        for crash_after in 0..total {
            let io = SimIo::new();
            io.fail_after(crash_after);
            assert!(SegmentPool::open(Arc::new(io.clone()), tier(), FILE_BYTES, COUNT).is_err());
            io.crash();
            let (pool, _) = open(&io);
            assert_eq!(pool.free_count(), COUNT, "crash point {crash_after}");
            assert_eq!(owned_files(&io), COUNT, "crash point {crash_after}");
        }
    }

    /// A pool file used by one segment, given back, and taken by the next: after a crash at every
    /// step of that, each file has exactly one owner, none is lost, and the new segment never
    /// shows the old one's batches.
    #[test]
    fn crash_at_every_step_of_returning_and_taking_a_pool_file() {
        // One pool file only, so the second segment must reuse the first one's file.
        let run = |io: &SimIo| -> io::Result<()> {
            let (pool, _) = SegmentPool::open(Arc::new(io.clone()), tier(), FILE_BYTES, 1)?;
            io.create_dir_durable(&part())?;
            let first = Segment::create(io, &part(), Offset(0), LIMITS, &mode(&pool))?;
            let mut first = first;
            fill(&mut first, 10, "old")?;
            first.seal()?;
            first.delete(io)?;
            pool.clean_one()?;
            // Same base offset, same batch sizes: without zeroing, the old batches would read as
            // this segment's from offset 2 on.
            io.create_dir_durable(&other_part())?;
            let mut second = Segment::create(io, &other_part(), Offset(0), LIMITS, &mode(&pool))?;
            fill(&mut second, 2, "new")
        };
        let (start, total) = {
            let io = SimIo::new();
            // Everything up to the first segment's data being durable is setup.
            run(&io).unwrap();
            (0, io.operations())
        };
        for crash_after in start..=total {
            let io = SimIo::new();
            io.fail_after(crash_after);
            let finished = run(&io).is_ok();
            assert_eq!(finished, crash_after >= total, "crash point {crash_after}");
            io.crash();
            let (pool, _) = SegmentPool::open(Arc::new(io.clone()), tier(), FILE_BYTES, 1).unwrap();
            assert_eq!(pool.dirty_count(), 0, "dirty files are zeroed at start");
            let owned = owned_files(&io);
            if pool.count() == 1 {
                assert_eq!(
                    owned, 1,
                    "one file, one owner, at crash point {crash_after}"
                );
            }
            // Whatever segment survived reads back only its own batches.
            for (dir, tag) in [(part(), "old"), (other_part(), "new")] {
                if !io.exists(&offset_file(&dir, 0, "log")) {
                    continue;
                }
                let mut segment =
                    Segment::open(&io, &dir, Offset(0), true, LIMITS, &mode(&pool)).unwrap();
                segment.recover().unwrap();
                let file = io.contents(&offset_file(&dir, 0, "log")).unwrap();
                assert_eq!(file.len() as u64, FILE_BYTES, "a pool file keeps its size");
                let text = String::from_utf8_lossy(&file[..segment.size() as usize]).into_owned();
                let foreign = if tag == "old" { "new" } else { "old" };
                assert!(
                    !text.contains(foreign),
                    "{foreign} batches in {} at {crash_after}",
                    dir.display()
                );
                let expected: &[i64] = if tag == "old" { &[0, 10] } else { &[0, 2] };
                assert!(
                    expected.contains(&segment.next_offset().get()),
                    "{} ends at {} at crash point {crash_after}",
                    dir.display(),
                    segment.next_offset()
                );
                assert!(file[segment.size() as usize..].iter().all(|b| *b == 0));
            }
        }
    }

    #[test]
    fn an_exhausted_pool_hands_out_new_files_that_join_it_when_given_back() {
        let io = SimIo::new();
        let (pool, _) = SegmentPool::open(Arc::new(io.clone()), tier(), FILE_BYTES, 1).unwrap();
        io.create_dir_durable(&part()).unwrap();
        let a = Segment::create(&io, &part(), Offset(0), LIMITS, &mode(&pool)).unwrap();
        let b = Segment::create(&io, &part(), Offset(5), LIMITS, &mode(&pool)).unwrap();
        assert_eq!(pool.free_count(), 0);
        assert_eq!(
            io.contents(&offset_file(&part(), 5, "log")).unwrap().len() as u64,
            FILE_BYTES
        );
        a.delete(&io).unwrap();
        b.delete(&io).unwrap();
        while pool.clean_one().unwrap() {}
        assert_eq!(pool.free_count(), 2);
    }

    /// Where the first hole of `path` starts (tmpfs counts allocated but never written pages as
    /// a hole): the file's length when every block is written.
    fn first_hole(path: &Path) -> u64 {
        let file = std::fs::File::open(path).unwrap();
        rustix::fs::seek(&file, rustix::fs::SeekFrom::Hole(0)).unwrap()
    }

    #[test]
    fn pool_files_are_written_with_zeros_when_made_and_when_cleaned() {
        const BYTES: u64 = 1 << 20;
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        let io: Arc<dyn Io> = Arc::new(crate::io::RealIo);
        let (pool, report) = SegmentPool::open(io.clone(), shm.path(), BYTES, 2).unwrap();
        assert_eq!(report.created, 2);
        let pool_dir = shm.path().join(POOL_DIR);
        for id in 0..2 {
            assert_eq!(first_hole(&pool_dir.join(format!("free-{id}"))), BYTES);
        }
        let part = shm.path().join("t-0");
        io.create_dir_durable(&part).unwrap();
        let mode = FileMode {
            mapped: true,
            preallocate: Some(BYTES),
            pool: Some(pool.clone()),
        };
        let mut segment = Segment::create(&*io, &part, Offset(0), LIMITS, &mode).unwrap();
        fill(&mut segment, 5, "old").unwrap();
        // A hole punched where the segment was written would be zeros too, but unwritten.
        segment.delete(&*io).unwrap();
        assert!(pool.clean_one().unwrap());
        let cleaned = pool_dir.join("free-2");
        assert_eq!(first_hole(&cleaned), BYTES);
        assert!(std::fs::read(&cleaned).unwrap().iter().all(|b| *b == 0));
    }
}
