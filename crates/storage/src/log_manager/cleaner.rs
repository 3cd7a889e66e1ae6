//! The log cleaner's threads (`log.cleaner.threads`), as Kafka's `LogCleaner`: each takes the
//! filthiest compacted log no other thread is cleaning (the highest dirty ratio at or above its
//! `min.cleanable.dirty.ratio`, or any log whose `max.compaction.lag.ms` has passed or whose
//! tombstones' delete horizon has come), runs a pass (`log/cleaner/`), and sleeps
//! `log.cleaner.backoff.ms` when no log is due. Where each log's next pass starts is kept in
//! `cleaner-offset-checkpoint` in its log directory (Kafka's file and format).

use std::collections::HashSet;
use std::sync::atomic::AtomicI64;

use super::*;
use crate::log::cleaner::{clean_log, offset_map::OffsetMap, CleanResult};
use crate::tier::migrator::Pacer;

pub const CLEANER_CHECKPOINT: &str = "cleaner-offset-checkpoint";

/// `log.cleaner.*`
#[derive(Debug, Clone, PartialEq)]
pub struct CleanerConfig {
    /// `log.cleaner.threads`
    pub threads: usize,
    /// `log.cleaner.dedupe.buffer.size`, shared by the threads.
    pub dedupe_buffer_bytes: u64,
    /// `log.cleaner.io.buffer.size`
    pub io_buffer_bytes: usize,
    /// `log.cleaner.io.buffer.load.factor`
    pub load_factor: f64,
    /// `log.cleaner.backoff.ms`
    pub backoff_ms: u64,
    /// `log.cleaner.io.max.bytes.per.second`; None: unbounded.
    pub max_io_bytes_per_second: Option<u64>,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        CleanerConfig {
            threads: 1,
            dedupe_buffer_bytes: 128 << 20,
            io_buffer_bytes: 512 << 10,
            load_factor: 0.9,
            backoff_ms: 15_000,
            max_io_bytes_per_second: None,
        }
    }
}

/// What the cleaner has done since the broker started (metrics).
#[derive(Debug, Default)]
pub struct CleanerStats {
    pub passes: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
    pub records_removed: AtomicU64,
    /// When the last pass ended (ms since the epoch), 0 before the first.
    pub last_run_ms: AtomicI64,
    /// How long the last pass took.
    pub last_duration_ms: AtomicU64,
    /// Passes that failed (an I/O error, which also took its directory offline).
    pub failures: AtomicU64,
}

impl CleanerStats {
    fn add(&self, r: &CleanResult, started: Instant) {
        self.passes.fetch_add(1, Ordering::Relaxed);
        self.bytes_read.fetch_add(r.bytes_read, Ordering::Relaxed);
        self.bytes_written
            .fetch_add(r.bytes_written, Ordering::Relaxed);
        self.records_removed
            .fetch_add(r.records_removed, Ordering::Relaxed);
        self.last_run_ms.store(now_ms(), Ordering::Relaxed);
        self.last_duration_ms
            .store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

/// The threads and what they share.
#[derive(Debug, Default)]
pub(super) struct Cleaner {
    handles: Mutex<Vec<JoinHandle<()>>>,
    /// Logs a thread is cleaning now: (topic, partition).
    busy: Mutex<HashSet<(String, i32)>>,
    pub(super) stats: Arc<CleanerStats>,
    /// Set to cut a thread's backoff short: a log was made cleanable.
    wake: Arc<AtomicBool>,
}

impl LogManager {
    /// Starts the cleaner's threads (the broker does when `log.cleaner.enable`).
    pub fn start_cleaner(self: &Arc<Self>, config: CleanerConfig) {
        let pacer = Arc::new(Pacer::new(config.max_io_bytes_per_second));
        let threads = config.threads.max(1);
        let map_bytes = (config.dedupe_buffer_bytes / threads as u64) as usize;
        let mut handles = self
            .cleaner
            .handles
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for i in 0..threads {
            let manager = Arc::downgrade(self);
            let stop = self.stop.clone();
            let (config, pacer) = (config.clone(), pacer.clone());
            let wake = self.cleaner.wake.clone();
            let handle = std::thread::Builder::new()
                .name(format!("log-cleaner-{i}"))
                .spawn(move || {
                    crate::tier::migrator::background_priority();
                    while !stop.load(Ordering::SeqCst) {
                        let Some(manager) = manager.upgrade() else {
                            return;
                        };
                        let cleaned = manager.clean_filthiest(map_bytes, &config, &pacer);
                        drop(manager);
                        if !cleaned {
                            // Nothing due: wait, a little at a time so that a stop or a wake
                            // is quick.
                            let until = Instant::now() + Duration::from_millis(config.backoff_ms);
                            while Instant::now() < until
                                && !stop.load(Ordering::SeqCst)
                                && !wake.swap(false, Ordering::SeqCst)
                            {
                                std::thread::sleep(Duration::from_millis(50));
                            }
                        }
                    }
                })
                .expect("spawn log cleaner thread");
            handles.push(handle);
        }
    }

    pub(super) fn stop_cleaner(&self) {
        let handles = std::mem::take(
            &mut *self
                .cleaner
                .handles
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for h in handles {
            let _ = h.join();
        }
    }

    /// Cuts the cleaner's backoff short: a log has just become worth cleaning (an internal
    /// topic rolled its active segment, say).
    pub fn wake_cleaner(&self) {
        self.cleaner.wake.store(true, Ordering::SeqCst);
    }

    /// The cleaner's counters.
    pub fn cleaner_stats(&self) -> Arc<CleanerStats> {
        self.cleaner.stats.clone()
    }

    /// The dirty ratio of every compacted partition: (topic, partition, ratio).
    pub fn dirty_ratios(&self) -> Vec<(String, i32, f64)> {
        let now = now_ms();
        self.all_partitions()
            .iter()
            .filter_map(|p| {
                let stats = p.log().dirty_stats(now)?;
                Some((p.topic.clone(), p.index, stats.ratio()))
            })
            .collect()
    }

    /// The compacted log most in need of cleaning that no thread is cleaning, held for the
    /// caller.
    fn grab_filthiest(&self, now: i64) -> Option<Arc<Partition>> {
        let mut busy = self.cleaner.busy.lock().unwrap_or_else(|e| e.into_inner());
        let mut best: Option<(f64, Arc<Partition>)> = None;
        for p in self.all_partitions() {
            if busy.contains(&(p.topic.clone(), p.index)) {
                continue;
            }
            let (stats, min_ratio) = {
                let log = p.log();
                if log.offline().is_some() {
                    continue;
                }
                let Some(stats) = log.dirty_stats(now) else {
                    continue;
                };
                (stats, log.config().min_cleanable_dirty_ratio)
            };
            let ratio = stats.ratio();
            let due =
                (stats.dirty_bytes > 0 && ratio >= min_ratio) || stats.overdue || stats.horizon_due;
            // Overdue logs first (Kafka cleans them whatever their ratio), then the dirtiest.
            let rank = if stats.overdue || stats.horizon_due {
                2.0 + ratio
            } else {
                ratio
            };
            if due && best.as_ref().is_none_or(|(r, _)| rank > *r) {
                best = Some((rank, p));
            }
        }
        let (_, p) = best?;
        busy.insert((p.topic.clone(), p.index));
        Some(p)
    }

    /// Cleans the filthiest due log once; false when none was due.
    fn clean_filthiest(&self, map_bytes: usize, config: &CleanerConfig, pacer: &Pacer) -> bool {
        let now = now_ms();
        let Some(p) = self.grab_filthiest(now) else {
            return false;
        };
        let started = Instant::now();
        let mut map = OffsetMap::new(map_bytes, config.load_factor);
        let result = clean_log(
            &p,
            &*self.io,
            &mut map,
            now,
            config.io_buffer_bytes,
            &|n| pacer.wait(n),
            &|| self.write_checkpoints(),
        );
        drop(map);
        match result {
            Ok(Some(r)) => {
                self.cleaner.stats.add(&r, started);
                tracing::info!(
                    topic = %p.topic,
                    partition = p.index,
                    read = r.bytes_read,
                    written = r.bytes_written,
                    removed = r.records_removed,
                    up_to = r.cleaned_up_to,
                    millis = started.elapsed().as_millis() as u64,
                    "log cleaned"
                );
                let _ = self.write_checkpoints();
            }
            Ok(None) => {}
            Err(ref e) => {
                self.cleaner.stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "log cleaning failed");
            }
        }
        self.cleaner
            .busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(p.topic.clone(), p.index));
        matches!(result, Ok(Some(_)))
    }
}
