//! The migration workers: keep the first tier's usage at `storage.migrate.threshold` by moving
//! the oldest inactive segments down and the newest back up ([`super::policy`]), each move a
//! crash-safe sequence of steps ([`super::migration`]).
//!
//! A planner wakes every second, decides, and queues moves that are not already under way;
//! `storage.migrate.threads` workers carry them out. Copies run without the partition lock, so
//! producers and consumers never wait on a copy; only the switch to the new files takes the
//! lock, for a moment. A segment that retention or a topic deletion removes during its copy is
//! simply not switched, and the copy is discarded. Copying is paced to at most
//! `storage.migrate.max.bytes.per.sec` in all.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::migration::{copy_segment_paced, delete_segment_files};
use super::policy::{select_demotions, select_promotions, Candidate, Decision, MigrationPolicy};
use super::usage::TierDirStats;
use super::TierId;
use crate::failure::LogDirFailures;
use crate::io::Io;
use crate::log::partition::{Partition, SegmentUse};
use crate::units::Offset;

/// What the migrator works on: the broker's partitions and tiers (the log manager).
pub trait MigrationHost: Send + Sync {
    fn io(&self) -> &Arc<dyn Io>;
    fn failures(&self) -> &Arc<LogDirFailures>;
    /// Every tier directory's capacity and use.
    fn tier_usage(&self) -> Vec<TierDirStats>;
    /// Every partition whose segments may move.
    fn partitions(&self) -> Vec<Arc<Partition>>;
    /// Counts `bytes` of a segment copied from partition directory `from` to `to`.
    fn count_copy(&self, from: &Path, to: &Path, bytes: u64);
}

/// Counters of migrations, for metrics and tools.
#[derive(Debug, Default)]
pub struct MigrationStats {
    pub demotions: AtomicU64,
    pub promotions: AtomicU64,
    pub bytes_moved: AtomicU64,
    pub cancelled: AtomicU64,
    pub failed: AtomicU64,
    pub in_flight: AtomicU64,
    pub micros_spent: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
pub struct MigratorConfig {
    pub policy: MigrationPolicy,
    pub threads: usize,
    pub max_bytes_per_sec: Option<u64>,
    pub interval: Duration,
}

struct Task {
    partition: Arc<Partition>,
    base_offset: i64,
    from_dir: PathBuf,
    to_dir: PathBuf,
    down: bool,
}

impl Task {
    /// The segment moved: its key in [`InFlight`].
    fn key(&self) -> SegmentKey {
        (
            self.partition.topic.clone(),
            self.partition.index,
            self.base_offset,
        )
    }
}

pub struct Migrator {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    pub stats: Arc<MigrationStats>,
    /// What the planner follows, changed at run time by [`Migrator::reconfigure`].
    settings: Arc<Mutex<Settings>>,
    pacer: Arc<Pacer>,
}

/// The settings that change at run time: the policy and how often the planner looks.
#[derive(Debug, Clone, Copy)]
struct Settings {
    policy: MigrationPolicy,
    interval: Duration,
}

impl std::fmt::Debug for Migrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Migrator")
            .field("stats", &self.stats)
            .finish()
    }
}

/// Moves queued or under way: (topic, partition, base offset) -> (bytes, moving down).
type InFlight = HashMap<SegmentKey, (u64, bool)>;
/// (topic, partition, base offset).
type SegmentKey = (String, i32, i64);

/// The bound on migration bandwidth, shared by every worker: each copied chunk books its time at
/// `rate` on one clock and the worker sleeps until then. Idle time earns no credit, so a migration
/// after a quiet spell is paced like any other.
#[derive(Debug)]
pub struct Pacer {
    /// Bytes per second; 0: unbounded.
    rate: AtomicU64,
    booked_until: Mutex<Option<Instant>>,
}

impl Pacer {
    /// `rate` in bytes per second; None: unbounded.
    pub fn new(rate: Option<u64>) -> Pacer {
        Pacer {
            rate: AtomicU64::new(rate.unwrap_or(0)),
            booked_until: Mutex::new(None),
        }
    }

    /// A new bound (a dynamic config's change), from the next chunk on.
    pub fn set_rate(&self, rate: Option<u64>) {
        self.rate.store(rate.unwrap_or(0), Ordering::Relaxed);
    }

    /// Books `bytes` just moved and sleeps until the bound allows more.
    pub fn wait(&self, bytes: u64) {
        let rate = self.rate.load(Ordering::Relaxed);
        if rate == 0 {
            return;
        }
        let now = Instant::now();
        let until = {
            let mut booked = self.booked_until.lock().unwrap_or_else(|e| e.into_inner());
            let from = booked.map_or(now, |b| b.max(now));
            let until = from + Duration::from_secs_f64(bytes as f64 / rate as f64);
            *booked = Some(until);
            until
        };
        if until > now {
            std::thread::sleep(until - now);
        }
    }
}

impl Migrator {
    pub fn start(manager: Weak<dyn MigrationHost>, config: MigratorConfig) -> Migrator {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(MigrationStats::default());
        let (queue, tasks) = mpsc::sync_channel::<Task>(64);
        let tasks = Arc::new(Mutex::new(tasks));
        let in_flight: Arc<Mutex<InFlight>> = Arc::default();
        let pacer = Arc::new(Pacer::new(config.max_bytes_per_sec));
        let settings = Arc::new(Mutex::new(Settings {
            policy: config.policy,
            interval: config.interval,
        }));
        let mut threads = Vec::new();
        for n in 0..config.threads.max(1) {
            let (tasks, stats, in_flight, pacer, stop, manager) = (
                tasks.clone(),
                stats.clone(),
                in_flight.clone(),
                pacer.clone(),
                stop.clone(),
                manager.clone(),
            );
            threads.push(
                std::thread::Builder::new()
                    .name(format!("migrate-{n}"))
                    .spawn(move || {
                        background_priority();
                        worker_loop(&tasks, &stats, &in_flight, &pacer, &stop, &manager)
                    })
                    .expect("spawn migration worker"),
            );
        }
        fn worker_loop(
            tasks: &Mutex<mpsc::Receiver<Task>>,
            stats: &MigrationStats,
            in_flight: &Mutex<InFlight>,
            pacer: &Pacer,
            stop: &AtomicBool,
            manager: &Weak<dyn MigrationHost>,
        ) {
            loop {
                let task = {
                    let rx = tasks.lock().unwrap_or_else(|e| e.into_inner());
                    rx.recv_timeout(Duration::from_millis(200))
                };
                match task {
                    Ok(task) => {
                        let key = task.key();
                        if let Some(manager) = manager.upgrade() {
                            run_task(&*manager, &task, stats, pacer);
                        }
                        in_flight
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&key);
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
        }
        let planner_stop = stop.clone();
        let planner_settings = settings.clone();
        threads.push(
            std::thread::Builder::new()
                .name("migrate-plan".into())
                .spawn(move || {
                    while !planner_stop.load(Ordering::SeqCst) {
                        let now = *planner_settings.lock().unwrap_or_else(|e| e.into_inner());
                        std::thread::sleep(now.interval);
                        let Some(manager) = manager.upgrade() else {
                            return;
                        };
                        let policy = planner_settings
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .policy;
                        for task in plan(&*manager, &policy, &in_flight) {
                            if let Err(
                                mpsc::TrySendError::Full(task)
                                | mpsc::TrySendError::Disconnected(task),
                            ) = queue.try_send(task)
                            {
                                // Queue full: this move waits for a later tick. It must not
                                // stay counted as under way, or the planner would take it
                                // for done and never plan it (nor the shortfall) again.
                                in_flight
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .remove(&task.key());
                                // Nor stay held in its log, where the planner would skip it.
                                task.partition.log().release_segments(
                                    &[Offset(task.base_offset)],
                                    SegmentUse::Migrating,
                                );
                            }
                        }
                    }
                })
                .expect("spawn migration planner"),
        );
        Migrator {
            stop,
            threads,
            stats,
            settings,
            pacer,
        }
    }

    /// Applies new settings (dynamic broker configs): the policy and interval from the
    /// planner's next tick, the bandwidth bound from the next chunk copied. The worker count
    /// stays as started.
    pub fn reconfigure(&self, config: &MigratorConfig) {
        *self.settings.lock().unwrap_or_else(|e| e.into_inner()) = Settings {
            policy: config.policy,
            interval: config.interval,
        };
        self.pacer.set_rate(config.max_bytes_per_sec);
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Migrator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The moves the policy asks for now, leaving out segments already being moved.
fn plan(
    manager: &dyn MigrationHost,
    policy: &MigrationPolicy,
    in_flight: &Mutex<InFlight>,
) -> Vec<Task> {
    let usage = manager.tier_usage();
    let first: Vec<&TierDirStats> = usage.iter().filter(|u| u.tier == TierId::First).collect();
    let second: Vec<&TierDirStats> = usage.iter().filter(|u| u.tier == TierId::Second).collect();
    let (capacity, used): (u64, u64) = first
        .iter()
        .fold((0, 0), |(c, u), d| (c + d.capacity_bytes, u + d.used_bytes));
    // Moves already queued count as done: otherwise each tick would pick more segments for the
    // same shortfall, and the older ones would overtake the newer ones still being copied.
    let (coming, going) = in_flight
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .fold((0u64, 0u64), |(up, down), (bytes, is_down)| {
            if *is_down {
                (up, down + bytes)
            } else {
                (up + bytes, down)
            }
        });
    let used = (used + coming).saturating_sub(going);
    let decision = policy.decide(used, capacity);
    if decision == Decision::Idle {
        return Vec::new();
    }
    let tier_of = |dir: &Path| -> Option<TierId> {
        let parent = dir.parent()?;
        usage.iter().find(|u| u.path == parent).map(|u| u.tier)
    };
    // Every sealed segment of every partition, with where it is.
    let mut segments: Vec<(Arc<Partition>, i64, PathBuf, u64, i64, TierId)> = Vec::new();
    for p in manager.partitions() {
        let sealed = {
            let log = p.log();
            // Segments the cleaner holds are not moved meanwhile.
            let mut sealed = log.sealed_segments();
            sealed.retain(|s| log.segment_in_use(s.0).is_none());
            sealed
        };
        for (base, dir, size, ts) in sealed {
            if let Some(tier) = tier_of(&dir) {
                segments.push((p.clone(), base.get(), dir, size, ts, tier));
            }
        }
    }
    let busy = in_flight.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let is_busy = |p: &Partition, base: i64| busy.contains_key(&(p.topic.clone(), p.index, base));
    let roomiest = |dirs: &[&TierDirStats]| {
        dirs.iter()
            .max_by_key(|d| d.capacity_bytes.saturating_sub(d.used_bytes))
            .map(|d| d.path.clone())
    };
    let mut tasks = Vec::new();
    // Demotions take the first tier's oldest segments down; promotions the second tier's newest
    // up. Both pick from one tier in an order, let the policy choose, and aim at the roomiest
    // directory of the other tier.
    let (from, down, target_bytes) = match decision {
        Decision::Idle => return tasks,
        Decision::Demote { target_bytes } => (TierId::First, true, target_bytes),
        Decision::Promote { target_bytes } => (TierId::Second, false, target_bytes),
    };
    let mut movable: Vec<_> = segments
        .iter()
        .filter(|s| s.5 == from && !is_busy(&s.0, s.1))
        .collect();
    movable.sort_by_key(|s| (s.4, s.1));
    if !down {
        movable.reverse();
    }
    let candidates: Vec<Candidate> = movable
        .iter()
        .enumerate()
        .map(|(i, s)| Candidate {
            key: i,
            size_bytes: s.3,
            active: false,
        })
        .collect();
    let Some(target) = roomiest(if down { &second } else { &first }) else {
        return tasks;
    };
    let chosen = if down {
        select_demotions(&candidates, used, target_bytes)
    } else {
        select_promotions(&candidates, used, target_bytes)
    };
    let mut sizes = Vec::new();
    for i in chosen {
        let s = movable[i];
        // Held for the move, so that the cleaner leaves it alone until it is done.
        let held =
            s.0.log()
                .reserve_segments(&[Offset(s.1)], SegmentUse::Migrating);
        if !held {
            continue;
        }
        sizes.push(s.3);
        let name =
            s.2.file_name()
                .map(|n| n.to_os_string())
                .unwrap_or_default();
        tasks.push(Task {
            partition: s.0.clone(),
            base_offset: s.1,
            from_dir: s.2.clone(),
            to_dir: target.join(name),
            down,
        });
    }
    let mut busy = in_flight.lock().unwrap_or_else(|e| e.into_inner());
    for (t, bytes) in tasks.iter().zip(sizes) {
        busy.insert(t.key(), (bytes, t.down));
    }
    tasks
}

/// Migration workers (and the log cleaner) run at nice 10: when producers, consumers and a migration compete for the
/// CPU, the clients win, and the migration takes what is left (plus its bandwidth bound).
pub(crate) fn background_priority() {
    // On Linux a nice value belongs to the calling thread (`who` = 0).
    if let Err(e) = rustix::process::setpriority_process(None, 10) {
        tracing::debug!(error = %e, "could not lower the migration worker's priority");
    }
}

fn run_task(manager: &dyn MigrationHost, task: &Task, stats: &MigrationStats, pacer: &Pacer) {
    let io = manager.io().clone();
    let started = Instant::now();
    stats.in_flight.fetch_add(1, Ordering::SeqCst);
    let mut switched = false;
    // An I/O error other than a full device takes the directory it happened in offline; a
    // full target only makes the move wait for a later round.
    let failures = manager.failures().clone();
    let stop_on = |dir: &std::path::Path, e: std::io::Error| {
        if !crate::failure::is_full(&e) {
            failures.fail(dir, &e);
        }
        e
    };
    let outcome = (|| -> std::io::Result<bool> {
        if let Some(dir) = task.partition.log().offline() {
            return Err(std::io::Error::other(format!(
                "directory {} is offline",
                dir.display()
            )));
        }
        let copied = copy_segment_paced(
            &*io,
            &task.from_dir,
            &task.to_dir,
            task.base_offset,
            1 << 20,
            &|n| pacer.wait(n),
        )
        .map_err(|e| stop_on(&task.to_dir, e))?;
        switched = {
            let mut log = task.partition.log();
            log.release_segments(&[Offset(task.base_offset)], SegmentUse::Migrating);
            log.switch_segment(Offset(task.base_offset), &task.from_dir, &task.to_dir)?
        };
        manager.count_copy(&task.from_dir, &task.to_dir, copied);
        if switched {
            delete_segment_files(&*io, &task.from_dir, task.base_offset)
                .map_err(|e| stop_on(&task.from_dir, e))?;
            stats.bytes_moved.fetch_add(copied, Ordering::SeqCst);
        } else {
            // The segment went away meanwhile: discard the copy.
            delete_segment_files(&*io, &task.to_dir, task.base_offset)
                .map_err(|e| stop_on(&task.to_dir, e))?;
        }
        Ok(switched)
    })();
    task.partition
        .log()
        .release_segments(&[Offset(task.base_offset)], SegmentUse::Migrating);
    if outcome.is_err() {
        // Clean up the side that is not in use: the copy before the switch, the source after.
        let unused = if switched {
            &task.from_dir
        } else {
            &task.to_dir
        };
        let _ = delete_segment_files(&*io, unused, task.base_offset);
        if let Ok(names) = io.list_dir(unused) {
            for name in names.iter().filter(|n| n.ends_with(".migrating")) {
                let _ = io.remove_file(&unused.join(name));
            }
        }
    }
    stats.in_flight.fetch_sub(1, Ordering::SeqCst);
    stats
        .micros_spent
        .fetch_add(started.elapsed().as_micros() as u64, Ordering::SeqCst);
    let (topic, partition, base_offset) = (
        &task.partition.topic,
        task.partition.index,
        task.base_offset,
    );
    let millis = started.elapsed().as_millis() as u64;
    match outcome {
        Ok(true) if task.down => {
            stats.demotions.fetch_add(1, Ordering::SeqCst);
            tracing::info!(%topic, partition, base_offset, from = %task.from_dir.display(), to = %task.to_dir.display(), millis, "segment moved down to the second tier");
        }
        Ok(true) => {
            stats.promotions.fetch_add(1, Ordering::SeqCst);
            tracing::info!(%topic, partition, base_offset, from = %task.from_dir.display(), to = %task.to_dir.display(), millis, "segment moved up to the first tier");
        }
        Ok(false) => {
            stats.cancelled.fetch_add(1, Ordering::SeqCst);
            tracing::debug!(topic = %task.partition.topic, partition = task.partition.index, base_offset = task.base_offset, "migration cancelled: the segment is gone or active");
        }
        Err(e) => {
            stats.failed.fetch_add(1, Ordering::SeqCst);
            tracing::warn!(topic = %task.partition.topic, partition = task.partition.index, base_offset = task.base_offset, error = %e, "migration failed; it is retried later");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Moving 30 MB at 100 MB/s cannot take less than 0.3 s, however it is chunked and however
    /// many workers share the bound.
    #[test]
    fn the_pacer_bounds_bandwidth_across_workers() {
        let pacer = Arc::new(Pacer::new(Some(100_000_000)));
        let start = Instant::now();
        let workers: Vec<_> = (0..3)
            .map(|_| {
                let pacer = pacer.clone();
                std::thread::spawn(move || {
                    for _ in 0..10 {
                        pacer.wait(1_000_000);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        assert!(
            start.elapsed() >= Duration::from_millis(299),
            "{:?}",
            start.elapsed()
        );
    }

    /// A quiet spell earns no credit: after idling, 10 MB at 100 MB/s still takes 0.1 s.
    #[test]
    fn idle_time_is_not_banked() {
        let pacer = Pacer::new(Some(100_000_000));
        pacer.wait(1);
        std::thread::sleep(Duration::from_millis(300));
        let start = Instant::now();
        for _ in 0..10 {
            pacer.wait(1_000_000);
        }
        assert!(
            start.elapsed() >= Duration::from_millis(99),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn no_bound_never_sleeps() {
        let pacer = Pacer::new(None);
        let start = Instant::now();
        pacer.wait(u64::MAX / 2);
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
