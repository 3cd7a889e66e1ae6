//! Truncation of the log's tail: what a follower does when the leader's epochs show that its
//! last records were never committed (Kafka's `truncateTo`).

use super::*;

impl PartitionLog {
    /// Drops every record at `offset` and after, with the rest of the batch that holds `offset`
    /// (batches are never split, so the log may end before `offset`, as in Kafka). Below the
    /// log start the log starts over, empty, at `offset`. The truncation is durable when this returns: a crash cannot bring the
    /// records back. Producer state, the leader-epoch cache, the high watermark and the
    /// recovery point follow.
    pub fn truncate_to(&mut self, offset: Offset) -> io::Result<()> {
        self.check_online()?;
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        let result = self.truncate_to_online(offset);
        if let Err(e) = &result {
            // A truncation that stopped half-way leaves the log in no state to serve from.
            self.stop(&format!("truncation to {offset} failed: {e}"));
            if !is_full(e) {
                self.failures.fail(&self.dir, e);
            }
        }
        result
    }

    /// Drops the whole log and starts it over, empty, at `offset` (Kafka's
    /// `truncateFullyAndStartAt`): what a follower does when the leader's log starts after the
    /// follower's ends. Durable when this returns.
    pub fn truncate_fully_and_start_at(&mut self, offset: Offset) -> io::Result<()> {
        self.check_online()?;
        let result = self.start_at_online(offset);
        if let Err(e) = &result {
            self.stop(&format!("starting over at {offset} failed: {e}"));
            if !is_full(e) {
                self.failures.fail(&self.dir, e);
            }
        }
        result
    }

    fn start_at_online(&mut self, offset: Offset) -> io::Result<()> {
        let active_base = self.active().base_offset();
        let reserved = self.config.segment_bytes;
        for (base, segment) in std::mem::take(&mut self.segments) {
            if let Some(p) = &self.placer {
                let taken = if base == active_base {
                    reserved.max(segment.size())
                } else {
                    segment.size()
                };
                p.release(segment.dir(), taken);
            }
            segment.delete(&*self.io)?;
        }
        let segment = self.create_segment(offset)?;
        self.segments.insert(offset, segment);
        for name in self.io.list_dir(&self.dir)? {
            if name.ends_with(".snapshot") {
                self.io.remove_if_present(&self.dir.join(name))?;
            }
        }
        self.log_start_offset = offset;
        self.leader_epochs.truncate_from_end(Offset(0))?;
        self.recovery_point = offset;
        self.high_watermark = offset;
        self.last_stable_offset = offset;
        self.cleaner_checkpoint = offset;
        self.producers = ProducerStates::default();
        self.unreplicated_txns.clear();
        self.refresh_last_stable_offset();
        self.assert_invariants();
        self.io.sync_dir(&self.dir)
    }

    fn truncate_to_online(&mut self, offset: Offset) -> io::Result<()> {
        let reserved = self.config.segment_bytes;
        let active_base = self.active().base_offset();
        let taken = |segment: &Segment| {
            if segment.base_offset() == active_base {
                reserved.max(segment.size())
            } else {
                segment.size()
            }
        };
        // Below the log start nothing of the log can stay (Kafka's truncateFullyAndStartAt).
        let full = offset < self.log_start_offset;
        // The segment that stays: the last one starting below `offset`, else the first. The
        // map is never left empty, so the log always has an active segment.
        let keep = self
            .segments
            .range(..offset)
            .next_back()
            .map(|(b, _)| *b)
            .unwrap_or_else(|| *self.segments.keys().next().expect("not empty"));
        while let Some((&base, _)) = self.segments.iter().next_back() {
            if base == keep {
                break;
            }
            let segment = self.segments.remove(&base).expect("present");
            if let Some(p) = &self.placer {
                p.release(segment.dir(), taken(&segment));
            }
            segment.delete(&*self.io)?;
        }
        if full || keep >= offset {
            // Nothing stays: a new, empty segment at `offset` replaces the kept one (made first,
            // so that the log is never without one).
            let old = self.segments.remove(&keep).expect("present");
            if keep == offset {
                let (dir, was) = (old.dir().to_path_buf(), taken(&old));
                drop(old);
                self.reactivate(keep, &dir, was, offset)?;
            } else {
                let segment = self.create_segment(offset)?;
                self.segments.insert(offset, segment);
                if let Some(p) = &self.placer {
                    p.release(old.dir(), taken(&old));
                }
                old.delete(&*self.io)?;
            }
            self.log_start_offset = offset;
        } else {
            let old = self.segments.remove(&keep).expect("present");
            let (dir, was) = (old.dir().to_path_buf(), taken(&old));
            drop(old);
            self.reactivate(keep, &dir, was, offset)?;
        }
        let end = self.log_end_offset();
        assert!(
            end <= offset,
            "truncation to {offset} left the log ending at {end}"
        );
        // The batch holding `offset` may have begun below the log start: then nothing is left.
        self.log_start_offset = self.log_start_offset.min(end);
        self.leader_epochs.truncate_from_end(end)?;
        self.recovery_point = self.recovery_point.min(end);
        self.high_watermark = self.high_watermark.min(end);
        self.last_stable_offset = self.last_stable_offset.min(end);
        // Producer state: from the newest snapshot at or below the new end, replayed forward.
        let snapshots: Vec<Offset> = self
            .io
            .list_dir(&self.dir)?
            .iter()
            .filter_map(|n| n.strip_suffix(".snapshot").and_then(|s| s.parse().ok()))
            .map(Offset)
            .collect();
        self.producers = ProducerStates::default();
        self.load_producer_state(&snapshots, Offset::MAX)?;
        self.unreplicated_txns.retain(|t| t.last_offset < end);
        self.refresh_last_stable_offset();
        self.assert_invariants();
        self.io.sync_dir(&self.dir)
    }

    /// Opens the segment at `base` in `dir` as the active one again, cut at `offset` and synced;
    /// `was` is the space it took before.
    fn reactivate(&mut self, base: Offset, dir: &Path, was: u64, offset: Offset) -> io::Result<()> {
        let mode = file_mode(&self.placer, &self.config, dir);
        let mut segment = Segment::open(&*self.io, dir, base, true, self.limits(), &mode)?;
        segment.set_created_ms(self.clock.now_ms());
        segment.truncate_to(offset)?;
        segment.flush()?;
        if let Some(p) = &self.placer {
            p.release(dir, was);
            p.charge(dir, self.config.segment_bytes.max(segment.size()));
        }
        self.segments.insert(base, segment);
        Ok(())
    }
}
