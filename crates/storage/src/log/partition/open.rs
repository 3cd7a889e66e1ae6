//! Opening a partition log: finding its segments (in its own directory or in tier directories),
//! recovering them after an unclean shutdown, and rebuilding the idempotent producers' state.

use super::*;

impl PartitionLog {
    /// Opens the log in `dir` (creating it when new). With `clean == false` every segment from the
    /// one holding `recovery_point` on is scanned and truncated at its first bad batch.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        io: Arc<dyn Io>,
        dir: &Path,
        topic: &str,
        partition: i32,
        config: LogConfig,
        clean: bool,
        recovery_point: Offset,
        log_start_offset: Offset,
    ) -> io::Result<PartitionLog> {
        Self::open_placed(
            io,
            dir,
            topic,
            partition,
            config,
            clean,
            recovery_point,
            log_start_offset,
            None,
        )
    }

    /// As [`PartitionLog::open`], with segments placed in tier directories by `placer`.
    #[allow(clippy::too_many_arguments)]
    pub fn open_placed(
        io: Arc<dyn Io>,
        dir: &Path,
        topic: &str,
        partition: i32,
        config: LogConfig,
        clean: bool,
        recovery_point: Offset,
        log_start_offset: Offset,
        placer: Option<Arc<dyn SegmentPlacer>>,
    ) -> io::Result<PartitionLog> {
        io.create_dir_durable(dir)?;
        let mut snapshots = Vec::new();
        for name in io.list_dir(dir)? {
            let path = dir.join(&name);
            let (stem, ext) = match name.rsplit_once('.') {
                Some(x) => x,
                None => continue,
            };
            if matches!(ext, "tmp" | "deleted") {
                io.remove_file(&path)?;
                continue;
            }
            let Ok(offset) = stem.parse::<i64>() else {
                continue;
            };
            if ext == "snapshot" {
                snapshots.push(Offset(offset));
            }
        }
        // Segments may sit in several directories (tiers); interrupted migrations and deletions
        // are resolved first, so that each segment is in exactly one of them.
        let segment_dirs = match &placer {
            Some(p) => p.segment_dirs(),
            None => vec![dir.to_path_buf()],
        };
        // A cleaning that committed is completed, one that did not is undone.
        let swap_config = config.clone();
        let mode_of = |d: &Path| file_mode(&placer, &swap_config, d);
        crate::log::cleaner::swap::complete_swaps(
            &*io,
            &segment_dirs,
            &mode_of,
            &mut |d, base| {
                let mode = file_mode(&placer, &swap_config, d);
                let limits = limits(&swap_config, LeaderEpoch(i32::MAX));
                Segment::open(&*io, d, Offset(base), false, limits, &mode)?.delete(&*io)
            },
        )?;
        let located = crate::log::segment_dirs::recover_segments(&*io, &segment_dirs)?;
        let bases: Vec<Offset> = located.segments.keys().copied().map(Offset).collect();
        let home = |base: &Offset| {
            located
                .segments
                .get(&base.get())
                .cloned()
                .unwrap_or_else(|| dir.to_path_buf())
        };
        let log_config = config.clone();
        let mode = |base: &Offset| file_mode(&placer, &log_config, &home(base));
        let leader_epochs = LeaderEpochCache::open(io.clone(), dir);
        let mut log = PartitionLog {
            topic: topic.to_string(),
            partition,
            dir: dir.to_path_buf(),
            io: io.clone(),
            config,
            segments: BTreeMap::new(),
            log_start_offset: Offset::ZERO,
            recovery_point,
            unflushed_messages: 0,
            last_flush_ms: SystemClock.now_ms(),
            producers: ProducerStates::default(),
            recovery: RecoveryReport::default(),
            placer: placer.clone(),
            failures: Arc::new(LogDirFailures::default()),
            stopped: None,
            leader_epochs,
            leading_epoch: None,
            high_watermark: Offset::ZERO,
            last_stable_offset: Offset::ZERO,
            unreplicated_txns: Default::default(),
            follows_log_end: true,
            follower: false,
            clock: Arc::new(SystemClock),
            cleaner_checkpoint: Offset::ZERO,
            next_delete_horizon: None,
            in_use: BTreeMap::new(),
        };
        let lim = log.limits();
        let mut truncated_at: Option<Offset> = None;
        // The first segment recovery scans: producer state is replayed from a snapshot at or
        // below it, so that the replay sees every recovered segment's markers.
        let mut first_recovered: Option<Offset> = None;
        // A recovered segment must be continued exactly by the next. A gap there means it lost
        // its tail (or all of it) in a crash while a later one survived: nothing after the gap
        // is kept. Below the recovery point gaps are the cleaner's (a cleaned segment may end
        // before the next begins) and were synced.
        let mut expected: Option<Offset> = None;
        for (i, base) in bases.iter().enumerate() {
            let next_base = bases.get(i + 1).copied().unwrap_or(Offset::MAX);
            if next_base <= log_start_offset && truncated_at.is_none() {
                // Wholly below the log start: deleted before the crash, though the deletion
                // may not have reached the disk.
                Segment::open(&*io, &home(base), *base, false, lim, &mode(base))?.delete(&*io)?;
                log.recovery.segments_dropped += 1;
                continue;
            }
            if truncated_at.is_none() && expected.is_some_and(|e| e != *base) {
                truncated_at = expected;
            }
            if truncated_at.is_some() {
                Segment::open(&*io, &home(base), *base, false, lim, &mode(base))?.delete(&*io)?;
                log.recovery.segments_dropped += 1;
                continue;
            }
            let last = i + 1 == bases.len();
            let needs_recovery = !clean && next_base > recovery_point;
            if needs_recovery {
                first_recovered.get_or_insert(*base);
            }
            let active = last || needs_recovery;
            let mut segment = Segment::open(&*io, &home(base), *base, active, lim, &mode(base))?;
            if needs_recovery {
                let cut = segment.recover()?;
                log.recovery.segments_recovered += 1;
                log.recovery.bytes_truncated += cut;
                if !last {
                    segment.seal()?;
                }
            }
            expected = needs_recovery.then(|| segment.next_offset());
            log.segments.insert(*base, segment);
        }
        if log.segments.is_empty() {
            let start = log_start_offset.max(Offset::ZERO);
            let segment = log.create_segment(start)?;
            log.segments.insert(start, segment);
        } else {
            if truncated_at.is_some() {
                // The last kept segment becomes the active one again.
                let (&base, _) = log.segments.iter().next_back().expect("not empty");
                drop(log.segments.remove(&base));
                log.segments.insert(
                    base,
                    Segment::open(&*io, &home(&base), base, true, lim, &mode(&base))?,
                );
            }
            if let Some(p) = &placer {
                for (dir, bytes) in log.space_taken() {
                    p.charge(&dir, bytes);
                }
            }
        }
        if log_start_offset > log.log_end_offset() {
            // Records were deleted up to an offset the recovered log does not reach (the tail was
            // never synced): as Kafka does, start over, empty, at the log start offset.
            tracing::warn!(
                topic,
                partition,
                log_start_offset = log_start_offset.get(),
                log_end_offset = log.log_end_offset().get(),
                "log ends before its start offset; starting it over empty"
            );
            for (_, segment) in std::mem::take(&mut log.segments) {
                if let Some(p) = &placer {
                    p.release(segment.dir(), segment.size());
                }
                segment.delete(&*io)?;
            }
            let segment = log.create_segment(log_start_offset)?;
            log.segments.insert(log_start_offset, segment);
        }
        let first_base = *log.segments.keys().next().expect("not empty");
        log.log_start_offset = log_start_offset.max(first_base).min(log.log_end_offset());
        log.recovery_point = log
            .recovery_point
            .clamp(log.log_start_offset, log.log_end_offset());
        if !clean {
            log.recovery_point = log.log_end_offset();
        }
        // Epochs that begin past the recovered end were never written (or were cut off).
        let end = log.log_end_offset();
        log.leader_epochs.truncate_from_end(end)?;
        log.leader_epochs
            .truncate_from_start(log.log_start_offset)?;
        // Until told otherwise the log leads alone, as a single broker does.
        log.high_watermark = end;
        log.last_stable_offset = end;
        let replay_from = first_recovered.unwrap_or(Offset::MAX);
        log.load_producer_state(&snapshots, replay_from)?;
        log.refresh_last_stable_offset();
        Ok(log)
    }

    /// Loads the producers' state from the newest snapshot at or below `at_most` (and the log's
    /// end), then replays the batches after it: their sequences, open transactions and markers.
    /// An abort marker whose `.txnindex` entry is missing (not synced before a crash) gets it
    /// again, as Kafka rebuilds the index of the segments it recovers.
    pub(super) fn load_producer_state(
        &mut self,
        snapshots: &[Offset],
        at_most: Offset,
    ) -> io::Result<()> {
        let end = self.log_end_offset();
        let mut from = self.log_start_offset;
        let mut sorted = snapshots.to_vec();
        sorted.sort_unstable();
        for offset in sorted.iter().rev() {
            let path = offset_file(&self.dir, offset.get(), "snapshot");
            if *offset > end {
                // Of records a crash or a truncation removed: new records will take those
                // offsets, so the removal must last (or a later load would read this state).
                self.io.remove_file(&path)?;
                self.io.sync_dir(&self.dir)?;
                continue;
            }
            if *offset > at_most {
                // Newer than the first recovered segment: the replay must start below it.
                continue;
            }
            if self
                .segments
                .keys()
                .next()
                .is_some_and(|first| offset < first)
            {
                // Older than every segment: the batches between it and the first segment are
                // gone, so its state would miss their markers.
                self.io.remove_file(&path)?;
                continue;
            }
            if let Some(state) = self
                .io
                .read_all(&path)
                .ok()
                .and_then(|b| ProducerStates::decode(&b))
            {
                self.producers = state;
                // From the snapshot even when the log start is past it: batches below the log
                // start that are still in a segment may have opened a transaction that is still
                // open (retention keeps such producers; so must recovery).
                from = *offset;
                break;
            }
        }
        // Replay the headers of batches after the snapshot (with each transaction marker, and
        // the segment it is in).
        let mut headers = Vec::new();
        for (base, segment) in &self.segments {
            if segment.next_offset() <= from {
                continue;
            }
            let mut position = match segment.find_batch(from)? {
                Some((p, _)) => p,
                None => continue,
            };
            while position.get() < segment.size() {
                let bytes = segment.read_bytes(position, batch::HEADER_SIZE)?;
                let Ok(h) = BatchHeader::parse(&bytes) else {
                    break;
                };
                if h.has_producer_id() && h.last_offset() >= from.get() {
                    let marker = if h.is_control() {
                        let whole = segment.read_bytes(position, h.total_size())?;
                        crate::control::parse_end_txn_marker(&whole)
                    } else {
                        None
                    };
                    headers.push((*base, h, marker));
                }
                position = FilePosition(position.get() + h.total_size() as u64);
            }
        }
        for (base, h, marker) in headers {
            self.producers
                .update(&h, Offset(h.base_offset), Offset(h.last_offset()));
            let Some(marker) = marker else { continue };
            let (producer_id, at) = (ProducerId(h.producer_id), Offset(h.base_offset));
            let aborted = marker.control == crate::control::ControlType::Abort;
            let Some(txn) = self
                .producers
                .complete_txn(producer_id, h.producer_epoch, at, aborted)
            else {
                continue;
            };
            if !txn.aborted {
                continue;
            }
            let entry = crate::log::txn_index::AbortedTxn {
                producer_id,
                first_offset: txn.first_offset,
                last_offset: at,
                last_stable_offset: self.producers.first_unstable_offset().unwrap_or(at.next()),
            };
            let io = self.io.clone();
            let segment = self.segments.get_mut(&base).expect("replayed from it");
            let known = segment.aborted_between(Offset::ZERO, Offset::MAX);
            match known.aborted.last() {
                Some(last) if last.last_offset >= at => {
                    // Indexed already (or the index is ahead of this marker: left as it is).
                }
                _ => {
                    // Durable now: the recovery point moves past this segment at open.
                    segment.append_aborted(&*io, entry)?;
                    segment.flush()?;
                }
            }
        }
        // As retention left the state: batches below the log start forgotten, open
        // transactions kept.
        self.producers.truncate_head(self.log_start_offset);
        Ok(())
    }
}
