//! Deleting from the head of the log: DeleteRecords and retention by time and size.

use super::*;

impl PartitionLog {
    /// Moves the log start offset to `offset` (DeleteRecords), at most to the high watermark as
    /// Kafka allows, and deletes segments below it.
    pub fn delete_records_before(&mut self, offset: Offset) -> io::Result<Offset> {
        self.check_online()?;
        let dir = self.dir.clone();
        let result = self.delete_records_before_online(offset);
        self.assert_invariants();
        self.fail_stop(&dir, result)
    }

    pub(super) fn delete_records_before_online(&mut self, offset: Offset) -> io::Result<Offset> {
        let end = self.log_end_offset();
        let offset = offset.clamp(self.log_start_offset, self.high_watermark);
        self.move_log_start(offset);
        // Sealed segments go first: on full tiers that frees the room the roll below needs.
        self.delete_segments_below(offset)?;
        if offset == end && !self.active().is_empty() {
            self.roll()?;
            self.delete_segments_below(offset)?;
        }
        Ok(self.log_start_offset)
    }

    /// Moves the log start offset up to `offset` (never down), with the offsets that may not
    /// fall below it, before any file is touched: the invariants hold even if a deletion fails.
    fn move_log_start(&mut self, offset: Offset) {
        self.log_start_offset = self.log_start_offset.max(offset);
        self.recovery_point = self.recovery_point.max(self.log_start_offset);
        self.refresh_last_stable_offset();
    }

    pub(super) fn delete_segments_below(&mut self, offset: Offset) -> io::Result<usize> {
        let mut deleted = 0;
        while self.segments.len() > 1 {
            let (&base, first) = self.segments.iter().next().expect("not empty");
            if first.next_offset() > offset {
                break;
            }
            let segment = self.segments.remove(&base).expect("present");
            if let Some(p) = &self.placer {
                p.release(segment.dir(), segment.size());
            }
            segment.delete(&*self.io)?;
            deleted += 1;
        }
        let first_base = *self.segments.keys().next().expect("not empty");
        self.log_start_offset = self.log_start_offset.max(first_base);
        self.producers.truncate_head(self.log_start_offset);
        if self.recovery_point < self.log_start_offset {
            self.recovery_point = self.log_start_offset;
        }
        self.refresh_last_stable_offset();
        Ok(deleted)
    }

    /// Applies `retention.ms` and `retention.bytes`; returns the number of segments deleted.
    pub fn apply_retention(&mut self, now_ms: i64) -> io::Result<usize> {
        self.check_online()?;
        let dir = self.dir.clone();
        let result = self.apply_retention_online(now_ms);
        self.assert_invariants();
        self.fail_stop(&dir, result)
    }

    pub(super) fn apply_retention_online(&mut self, now_ms: i64) -> io::Result<usize> {
        if !self.config.delete {
            // `cleanup.policy=compact`: the cleaner alone removes records.
            return Ok(0);
        }
        let mut delete_below: Option<Offset> = None;
        if self.config.retention_ms >= 0 {
            for segment in self.segments.values() {
                if now_ms - segment.retention_timestamp() > self.config.retention_ms
                    && !segment.is_empty()
                {
                    delete_below = Some(segment.next_offset());
                } else {
                    break;
                }
            }
        }
        if self.config.retention_bytes >= 0 {
            let mut excess = self.size_bytes() as i64 - self.config.retention_bytes;
            for segment in self.segments.values().take(self.segments.len() - 1) {
                if excess - segment.size() as i64 >= 0 {
                    excess -= segment.size() as i64;
                    delete_below = Some(
                        delete_below
                            .unwrap_or(Offset::ZERO)
                            .max(segment.next_offset()),
                    );
                } else {
                    break;
                }
            }
        }
        let Some(offset) = delete_below else {
            return Ok(0);
        };
        // Only what every replica has may expire (Kafka deletes below the high watermark).
        let offset = offset.min(self.high_watermark);
        self.move_log_start(offset);
        let mut deleted = self.delete_segments_below(offset)?;
        if offset >= self.log_end_offset() && !self.active().is_empty() {
            // The active segment itself expired: roll so it can go, as Kafka does (after the
            // sealed ones went, so that a full tier has room for the new segment).
            self.roll()?;
            deleted += self.delete_segments_below(offset)?;
        }
        Ok(deleted)
    }
}
