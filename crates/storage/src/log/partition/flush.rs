//! Flushing: which files a flush syncs, and moving the recovery point once they are synced.

use super::*;

impl PartitionLog {
    /// Collects what a flush must sync; the caller runs it outside the lock and then calls
    /// [`PartitionLog::complete_flush`].
    pub fn begin_flush(&mut self) -> io::Result<FlushJob> {
        self.check_online()?;
        let target = self.log_end_offset();
        let recovery_point = self.recovery_point;
        let mut files = Vec::new();
        let from = self
            .segments
            .range(..=recovery_point)
            .next_back()
            .map(|(b, _)| *b)
            .unwrap_or(Offset::ZERO);
        let mut failed = None;
        for (_, segment) in self.segments.range_mut(from..) {
            if let Err(e) = segment.persist_indexes() {
                failed = Some((segment.dir().to_path_buf(), e));
                break;
            }
            let dir = segment.dir().to_path_buf();
            files.extend(segment.files().into_iter().map(|f| (dir.clone(), f)));
        }
        if let Some((dir, e)) = failed {
            self.failures.fail(&dir, &e);
            return Err(e);
        }
        self.unflushed_messages = 0;
        self.last_flush_ms = self.clock.now_ms();
        Ok(FlushJob {
            files,
            target_offset: target,
            failures: self.failures.clone(),
        })
    }

    /// Moves the recovery point after a flush's syncs succeeded. Refused when the log went
    /// offline meanwhile: another sync of the same files may have failed, and after a failed
    /// sync a later successful one proves nothing about the pages the failed one covered.
    pub fn complete_flush(&mut self, target_offset: Offset) -> io::Result<()> {
        self.check_online()?;
        self.recovery_point = self
            .recovery_point
            .max(target_offset)
            .min(self.log_end_offset());
        self.assert_invariants();
        Ok(())
    }

    /// Flushes under the lock (background flusher, shutdown, tests).
    pub fn flush(&mut self) -> io::Result<()> {
        let job = self.begin_flush()?;
        job.run()?;
        self.complete_flush(job.target_offset)
    }

    pub fn unflushed_messages(&self) -> i64 {
        self.unflushed_messages
    }
    pub fn ms_since_flush(&self, now_ms: i64) -> i64 {
        now_ms - self.last_flush_ms
    }
}
