//! Checkpoints and the background schedules: time-based flushes, retention, checkpoint writes,
//! and the migrator.

use super::*;
use crate::tier::migrator::MigrationHost;

pub(super) fn read_checkpoint(io: &dyn Io, path: &Path) -> HashMap<(String, i32), i64> {
    let mut out = HashMap::new();
    let Ok(bytes) = io.read_all(path) else {
        return out;
    };
    let text = String::from_utf8_lossy(&bytes);
    for line in text.lines().skip(2) {
        let mut parts = line.rsplitn(3, ' ');
        let (Some(offset), Some(partition), Some(topic)) =
            (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if let (Ok(p), Ok(o)) = (partition.parse(), offset.parse()) {
            out.insert((topic.to_string(), p), o);
        }
    }
    out
}

impl LogManager {
    /// Writes the recovery-point and log-start-offset checkpoints of every log dir.
    pub fn write_checkpoints(&self) -> io::Result<()> {
        // An offline directory's files are left as the failure found them.
        for dir in self
            .config
            .log_dirs
            .iter()
            .filter(|d| !self.failures.is_offline(d))
        {
            let (mut recovery, mut starts, mut high_watermarks, mut cleaned) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for p in self.all_partitions().iter().filter(|p| &p.log_dir == dir) {
                let log = p.log();
                let line =
                    |offset: crate::units::Offset| format!("{} {} {offset}", p.topic, p.index);
                recovery.push(line(log.recovery_point()));
                starts.push(line(log.log_start_offset()));
                high_watermarks.push(line(log.high_watermark()));
                if log.config().compact {
                    cleaned.push(line(log.cleaner_checkpoint()));
                }
            }
            for (file, lines) in [
                (RECOVERY_POINT_CHECKPOINT, recovery),
                (LOG_START_CHECKPOINT, starts),
                (HIGH_WATERMARK_CHECKPOINT, high_watermarks),
                (CLEANER_CHECKPOINT, cleaned),
            ] {
                let text = format!(
                    "0\n{}\n{}",
                    lines.len(),
                    lines.iter().map(|l| format!("{l}\n")).collect::<String>()
                );
                let written = self.io.write_atomic(&dir.join(file), text.as_bytes());
                if let Err(e) = written {
                    self.failures.fail(&dir.join(file), &e);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Flushes logs whose `flush.ms` has passed.
    pub fn flush_due(&self, now: i64) {
        for p in self.all_partitions() {
            let mut log = p.log();
            if log.unflushed_messages() > 0
                && log.ms_since_flush(now) >= log.config().flush_ms
                && log.offline().is_none()
            {
                // The syncs run outside the partition's lock, so appends go on meanwhile. A
                // failure takes the directory offline and is logged there.
                let Ok(job) = log.begin_flush() else { continue };
                drop(log);
                if job.run().is_ok() {
                    let _ = p.log().complete_flush(job.target_offset);
                }
            }
        }
    }

    /// Applies retention to every log; returns the number of segments deleted.
    pub fn apply_retention(&self, now: i64) -> usize {
        let mut deleted = 0;
        for p in self.all_partitions() {
            let mut log = p.log();
            if log.offline().is_some() {
                continue;
            }
            match log.apply_retention(now) {
                Ok(n) => deleted += n,
                Err(e) => {
                    tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "retention failed")
                }
            }
        }
        if deleted > 0 {
            tracing::info!(deleted, "retention deleted segments");
            let _ = self.write_checkpoints();
        }
        deleted
    }

    /// Starts the background thread for retention, time-based flushes and checkpoints.
    pub fn start_background(self: &Arc<Self>) {
        let manager = Arc::downgrade(self);
        let stop = self.stop.clone();
        let cfg = self.config.clone();
        let tick = cfg
            .retention_check_interval_ms
            .min(cfg.flush_scheduler_interval_ms)
            .clamp(10, 1000);
        let handle = std::thread::Builder::new()
            .name("log-background".into())
            .spawn(move || {
                let mut last_retention = now_ms();
                let mut last_checkpoint = now_ms();
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(tick));
                    let Some(manager) = manager.upgrade() else {
                        return;
                    };
                    let now = now_ms();
                    manager.flush_due(now);
                    if now - last_retention >= cfg.retention_check_interval_ms as i64 {
                        manager.apply_retention(now);
                        last_retention = now;
                    }
                    if now - last_checkpoint >= cfg.flush_offset_checkpoint_interval_ms as i64 {
                        if let Err(e) = manager.write_checkpoints() {
                            tracing::error!(error = %e, "checkpoint write failed");
                        }
                        last_checkpoint = now;
                    }
                }
            })
            .expect("spawn log background thread");
        *self.background.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        if let (Some(config), true) = (self.config.migration, self.tier_usage.is_some()) {
            *self.migrator.lock().unwrap_or_else(|e| e.into_inner()) = Some(Migrator::start(
                Arc::downgrade(&(self.clone() as Arc<dyn MigrationHost>)),
                config,
            ));
        }
    }

    /// New migration settings (dynamic broker configs), when migration runs.
    pub fn reconfigure_migration(&self, config: &MigratorConfig) {
        if let Some(m) = self
            .migrator
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            m.reconfigure(config);
        }
    }

    /// Migration counters, when migration runs.
    pub fn migration_stats(&self) -> Option<Arc<MigrationStats>> {
        self.migrator
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|m| m.stats.clone())
    }
}

impl MigrationHost for LogManager {
    fn io(&self) -> &Arc<dyn Io> {
        &self.io
    }
    fn failures(&self) -> &Arc<LogDirFailures> {
        &self.failures
    }
    fn tier_usage(&self) -> Vec<TierDirStats> {
        LogManager::tier_usage(self)
    }
    fn partitions(&self) -> Vec<Arc<Partition>> {
        self.all_partitions()
    }
    fn count_copy(&self, from: &Path, to: &Path, bytes: u64) {
        if let Some(usage) = &self.tier_usage {
            usage.count_copy(from, to, bytes);
        }
    }
}
