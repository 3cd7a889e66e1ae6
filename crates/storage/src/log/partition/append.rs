//! Appending produced batches: validation, sequence checks, offset assignment, one write per
//! request, and rolling to a new segment.

use super::*;

/// What validating a produce request found.
enum Validated {
    /// Batches to append: each one's position in the request and its header.
    Batches(Vec<(usize, BatchHeader)>),
    /// A retry of the one batch already written: its original outcome.
    Duplicate(AppendInfo),
}

impl PartitionLog {
    /// Validates and appends the batches of one produce request with a single write, at the
    /// log end offset and the current leader epoch: validate, assign offsets, write.
    pub fn append(&mut self, records: &[u8], now_ms: i64) -> Result<AppendInfo, AppendError> {
        if let Some(dir) = self.offline() {
            return Err(AppendError::Offline { dir });
        }
        if self.follower {
            return Err(AppendError::NotLeader);
        }
        let batches = match self.validate_produced(records)? {
            Validated::Batches(batches) => batches,
            Validated::Duplicate(info) => return Ok(info),
        };
        let log_append_time = self.config.timestamp_type == TimestampType::LogAppendTime;
        let epoch = self.leader_epoch();
        let base_offset = self.log_end_offset();
        if self.leader_epochs.latest_epoch() != Some(epoch) {
            // The epoch is recorded before any batch of it is written (see leader_epoch.rs).
            let assigned = self.leader_epochs.assign(epoch, base_offset);
            self.fail_stop(&self.dir, assigned)?;
        }
        // Assign offsets: the first 16 bytes of each batch (base offset, length, leader epoch)
        // are replaced, outside the CRC; LogAppendTime batches are restamped (new CRC).
        let mut next = base_offset.get();
        let mut prefixes: Vec<[u8; 16]> = Vec::with_capacity(batches.len());
        let mut stamped: Vec<Vec<u8>> = Vec::new();
        let mut appended = Vec::with_capacity(batches.len());
        for (at, h) in &batches {
            let bytes = &records[*at..*at + h.total_size()];
            let mut prefix = [0u8; 16];
            prefix.copy_from_slice(&bytes[..16]);
            prefix[0..8].copy_from_slice(&next.to_be_bytes());
            prefix[12..16].copy_from_slice(&epoch.get().to_be_bytes());
            prefixes.push(prefix);
            if log_append_time {
                let mut copy = bytes.to_vec();
                batch::stamp_log_append_time(&mut copy, now_ms);
                stamped.push(copy);
            }
            let max_timestamp = if log_append_time {
                now_ms
            } else {
                h.max_timestamp
            };
            appended.push(AppendedBatch {
                base_offset: next,
                last_offset: next + h.last_offset_delta as i64,
                max_timestamp,
                size: h.total_size() as u32,
            });
            next += h.last_offset_delta as i64 + 1;
        }
        let mut bufs: Vec<&[u8]> = Vec::with_capacity(batches.len() * 2);
        for (i, (at, h)) in batches.iter().enumerate() {
            bufs.push(&prefixes[i]);
            if log_append_time {
                bufs.push(&stamped[i][16..]);
            } else {
                bufs.push(&records[*at + 16..*at + h.total_size()]);
            }
        }
        let headers: Vec<BatchHeader> = batches.iter().map(|(_, h)| *h).collect();
        let needs_flush = self.write_batches(&bufs, &headers, &appended, now_ms)?;
        Ok(AppendInfo {
            base_offset,
            last_offset: Offset(next - 1),
            log_append_time: if log_append_time { now_ms } else { -1 },
            log_start_offset: self.log_start_offset,
            duplicate: false,
            needs_flush,
        })
    }

    /// Appends batches copied from the leader, at the offsets and leader epochs they carry (a
    /// follower's append): each must pass the CRC check and continue the log exactly, and their
    /// epochs may only grow. The high watermark is the leader's to move.
    pub fn append_as_follower(
        &mut self,
        records: &[u8],
        now_ms: i64,
    ) -> Result<AppendInfo, AppendError> {
        if let Some(dir) = self.offline() {
            return Err(AppendError::Offline { dir });
        }
        let mut headers = Vec::new();
        let mut appended = Vec::new();
        // Each batch's position, and the transaction markers among them.
        let mut positions = Vec::new();
        let mut markers = Vec::new();
        let mut next = self.log_end_offset().get();
        let mut epoch = self
            .leader_epochs
            .latest_epoch()
            .map_or(0, LeaderEpoch::get);
        let mut at = 0;
        while at < records.len() {
            let h = batch::check_batch(&records[at..])?;
            if h.base_offset != next || h.last_offset_delta < 0 {
                return Err(AppendError::InvalidBatch(batch::BatchError::OffsetGap {
                    expected: next,
                    got: h.base_offset,
                }));
            }
            if h.partition_leader_epoch < epoch {
                return Err(AppendError::InvalidBatch(
                    batch::BatchError::InvalidLeaderEpoch(h.partition_leader_epoch),
                ));
            }
            if h.total_size() > self.config.max_message_bytes {
                return Err(AppendError::MessageTooLarge {
                    size: h.total_size(),
                    max: self.config.max_message_bytes,
                });
            }
            epoch = h.partition_leader_epoch;
            let marker = if h.is_control() && h.has_producer_id() {
                crate::control::parse_end_txn_marker(&records[at..at + h.total_size()])
            } else {
                None
            };
            positions.push(at);
            markers.push(marker);
            appended.push(AppendedBatch {
                base_offset: h.base_offset,
                last_offset: h.last_offset(),
                max_timestamp: h.max_timestamp,
                size: h.total_size() as u32,
            });
            headers.push(h);
            next = h.last_offset() + 1;
            at += h.total_size();
        }
        let Some(first) = headers.first() else {
            return Err(AppendError::InvalidBatch(batch::BatchError::Truncated {
                available: 0,
                needed: batch::HEADER_SIZE,
            }));
        };
        let base_offset = Offset(first.base_offset);
        for h in &headers {
            let assigned = self
                .leader_epochs
                .assign(LeaderEpoch(h.partition_leader_epoch), Offset(h.base_offset));
            self.fail_stop(&self.dir, assigned)?;
        }
        // Runs of data batches are written at once; a marker completes its transaction (and an
        // abort is indexed) as on the leader.
        let mut needs_flush = false;
        let mut run = 0;
        for i in 0..=headers.len() {
            let marker = markers.get(i).copied().flatten();
            if i < headers.len() && marker.is_none() {
                continue;
            }
            if run < i {
                let (from, to) = (positions[run], positions.get(i).copied().unwrap_or(at));
                needs_flush |= self.write_batches(
                    &[&records[from..to]],
                    &headers[run..i],
                    &appended[run..i],
                    now_ms,
                )?;
            }
            if let Some(marker) = marker {
                let from = positions[i];
                let bytes = &records[from..from + headers[i].total_size()];
                needs_flush |= self
                    .write_marker_batch(bytes, headers[i], marker, now_ms)?
                    .0;
            }
            run = i + 1;
        }
        Ok(AppendInfo {
            base_offset,
            last_offset: Offset(next - 1),
            log_append_time: -1,
            log_start_offset: self.log_start_offset,
            duplicate: false,
            needs_flush,
        })
    }

    /// Checks a produce request's batches: headers (sizes, CRC, base offset 0), sizes against
    /// `max.message.bytes` and a segment, and idempotent producers' sequences.
    fn validate_produced(&self, records: &[u8]) -> Result<Validated, AppendError> {
        let batches = batch::split_produced(records)?;
        for (at, h) in &batches {
            if h.total_size() > self.config.max_message_bytes {
                return Err(AppendError::MessageTooLarge {
                    size: h.total_size(),
                    max: self.config.max_message_bytes,
                });
            }
            // A compacted log keeps records by key: one without a key is refused, and nothing
            // of the request is stored (the only per-record work of a produce, as in Kafka).
            if self.config.compact && !h.is_control() {
                let bytes = &records[*at..*at + h.total_size()];
                match crate::records::keyless_records(bytes, h) {
                    Ok(keyless) if keyless.is_empty() => {}
                    Ok(keyless) => {
                        return Err(AppendError::KeylessRecord {
                            topic: self.topic.clone(),
                            partition: self.partition,
                            batch_indexes: keyless,
                        })
                    }
                    Err(e) => return Err(AppendError::CorruptRecords(e.to_string())),
                }
            }
        }
        // Sequence checks for idempotent producers, in order, against the state as it will be.
        let mut staged: Option<ProducerStates> = None;
        for (_, h) in &batches {
            if !h.has_producer_id() || h.base_sequence < 0 {
                continue;
            }
            let states = staged.as_ref().unwrap_or(&self.producers);
            match states.check(h) {
                SequenceCheck::New => {
                    if batches.len() > 1 {
                        staged.get_or_insert_with(|| self.producers.clone()).update(
                            h,
                            Offset::ZERO,
                            Offset::ZERO,
                        );
                    }
                }
                SequenceCheck::Duplicate {
                    first_offset,
                    last_offset,
                } if batches.len() == 1 => {
                    return Ok(Validated::Duplicate(AppendInfo {
                        base_offset: first_offset,
                        last_offset,
                        log_append_time: -1,
                        log_start_offset: self.log_start_offset,
                        duplicate: true,
                        needs_flush: false,
                    }));
                }
                SequenceCheck::Duplicate { .. } => {
                    return Err(AppendError::OutOfOrderSequence {
                        producer_id: ProducerId(h.producer_id),
                        expected: -1,
                        got: h.base_sequence,
                    })
                }
                SequenceCheck::OutOfOrder { expected, got } => {
                    return Err(AppendError::OutOfOrderSequence {
                        producer_id: ProducerId(h.producer_id),
                        expected,
                        got,
                    })
                }
                SequenceCheck::FencedEpoch { current, got } => {
                    return Err(AppendError::InvalidProducerEpoch {
                        producer_id: ProducerId(h.producer_id),
                        current,
                        got,
                    })
                }
            }
        }
        let total: u64 = batches.iter().map(|(_, h)| h.total_size() as u64).sum();
        if total > self.max_append_bytes() {
            return Err(AppendError::RecordListTooLarge {
                size: total,
                max: self.max_append_bytes(),
            });
        }
        Ok(Validated::Batches(batches))
    }

    /// Writes batches whose offsets are assigned (`bufs` holds their bytes, in order) with one
    /// write, rolling first when the active segment is due; records them in the indexes and
    /// the producers' state. Returns whether `flush.messages` or `flush.ms` asks for a flush.
    pub(super) fn write_batches(
        &mut self,
        bufs: &[&[u8]],
        headers: &[BatchHeader],
        appended: &[AppendedBatch],
        now_ms: i64,
    ) -> Result<bool, AppendError> {
        let total: u64 = appended.iter().map(|b| b.size as u64).sum();
        let messages: i64 = headers.iter().map(|h| h.last_offset_delta as i64 + 1).sum();
        let max_timestamp = appended.iter().map(|b| b.max_timestamp).max().unwrap_or(-1);
        // A roll stops the directory it failed in itself (a full device refuses only).
        self.maybe_roll(total, messages, max_timestamp, now_ms)?;
        let active = self.active_mut();
        let size_before = active.size();
        if let Err(e) = active.append(bufs, appended) {
            let dir = self.active().dir().to_path_buf();
            if is_full(&e) {
                // Nothing of a write that met a full device may be served or recovered as
                // data: cut it off, and the log goes on when space returns. If even the cut
                // fails, the file is in an unknown state: stop.
                let cut = self.active_mut().truncate_file_to(size_before);
                self.fail_stop(&dir, cut)?;
            } else {
                self.failures.fail(&dir, &e);
            }
            return Err(AppendError::Storage(e));
        }
        if let Some(p) = &self.placer {
            p.wrote(self.active().dir(), total);
        }
        for (h, b) in headers.iter().zip(appended) {
            if h.has_producer_id() {
                self.producers
                    .update(h, Offset(b.base_offset), Offset(b.last_offset));
            }
        }
        self.unflushed_messages += messages;
        if self.follows_log_end {
            let end = self.log_end_offset();
            self.advance_high_watermark(end);
        } else {
            self.refresh_last_stable_offset();
        }
        self.assert_invariants();
        Ok(self.unflushed_messages >= self.config.flush_messages
            || now_ms - self.last_flush_ms >= self.config.flush_ms)
    }

    /// Whether an append of `bytes` bytes at `now_ms` would roll the segment first (and so sync
    /// files): a cheap look, before taking the slow path, that errs on the side of yes.
    pub fn append_may_roll(&self, bytes: u64, now_ms: i64) -> bool {
        let active = self.active();
        !active.is_empty()
            && (active.size() + bytes > self.config.segment_bytes
                || active.capacity().is_some_and(|c| active.size() + bytes > c)
                || active.index_is_full()
                // (Producers' timestamps are near the broker's clock; one far ahead of it may
                // roll unannounced, which only costs a blocked thread once.)
                || now_ms.saturating_sub(active.first_timestamp().unwrap_or(active.created_ms()))
                    > self.config.segment_ms)
    }

    pub(super) fn maybe_roll(
        &mut self,
        incoming: u64,
        messages: i64,
        incoming_max_timestamp: i64,
        now_ms: i64,
    ) -> io::Result<()> {
        let active = self.active();
        if active.is_empty() {
            return Ok(());
        }
        let too_big = active.size() + incoming > self.config.segment_bytes
            || active
                .capacity()
                .is_some_and(|c| active.size() + incoming > c);
        // As Kafka: `segment.ms` counts from the segment's first timestamp to the incoming
        // batch's, or, for a segment without timestamps, from its creation to now.
        let waited = match active.first_timestamp() {
            Some(first) if self.config.timestamp_type == TimestampType::CreateTime => {
                incoming_max_timestamp - first
            }
            Some(first) => now_ms - first,
            None => now_ms - active.created_ms(),
        };
        let too_old = waited > self.config.segment_ms;
        let offsets_overflow =
            active.next_offset().since(active.base_offset()) as i64 + messages > i32::MAX as i64;
        if too_big || too_old || offsets_overflow || active.index_is_full() {
            self.roll()?;
        }
        Ok(())
    }

    /// Starts a new active segment at the log end offset.
    ///
    /// The new segment is made first and the old one sealed after, so that a roll refused for a
    /// full device changes nothing: the old segment stays active and appends resume on it when
    /// space returns.
    pub fn roll(&mut self) -> io::Result<()> {
        self.check_online()?;
        if self.active().is_empty() {
            return Ok(());
        }
        let next = self.log_end_offset();
        let reserved = self.config.segment_bytes;
        let segment = self.create_segment(next)?;
        if let Err(e) = self.write_producer_snapshot(next) {
            let dir = segment.dir().to_path_buf();
            let removed = self.discard_segment(segment);
            self.fail_stop(&dir, removed)?;
            return self.fail_stop(&self.dir, Err(e));
        }
        let sealed = self.active_mut().seal();
        let dir = self.active().dir().to_path_buf();
        self.fail_stop(&dir, sealed)?;
        if let Some(p) = &self.placer {
            let active = self.active();
            p.release(active.dir(), reserved.saturating_sub(active.size()));
        }
        self.segments.insert(next, segment);
        Ok(())
    }

    /// Removes a segment that never joined the log, with its reservation.
    pub(super) fn discard_segment(&self, segment: Segment) -> io::Result<()> {
        if let Some(p) = &self.placer {
            p.release(segment.dir(), self.config.segment_bytes);
        }
        segment.delete(&*self.io)
    }

    /// A new segment at `base_offset`, in the placer's choice of directory or the log's own.
    pub(super) fn create_segment(&self, base_offset: Offset) -> io::Result<Segment> {
        let dir = match &self.placer {
            Some(p) => {
                let dir = p.place(self.config.segment_bytes)?;
                let made = self.io.create_dir_durable(&dir);
                if made.is_err() {
                    p.release(&dir, self.config.segment_bytes);
                }
                self.fail_stop(&dir, made)?;
                dir
            }
            None => self.dir.clone(),
        };
        let mode = file_mode(&self.placer, &self.config, &dir);
        let created = Segment::create(&*self.io, &dir, base_offset, self.limits(), &mode).map(
            |mut segment| {
                segment.set_created_ms(self.clock.now_ms());
                segment
            },
        );
        if let Err(e) = &created {
            if let Some(p) = &self.placer {
                p.release(&dir, self.config.segment_bytes);
            }
            // What a failed creation left behind must not be taken for a segment later.
            if is_full(e) {
                let log_path = offset_file(&dir, base_offset.get(), "log");
                let leftovers = match &mode.pool {
                    // A pool file taken for the segment goes back to the pool, not away.
                    Some(pool) if self.io.exists(&log_path) => pool
                        .give_back(&log_path)
                        .and_then(|()| self.io.sync_dir(&dir)),
                    _ => Ok(()),
                }
                .and_then(|()| {
                    crate::log::segment_dirs::delete_segment_files(
                        &*self.io,
                        &dir,
                        base_offset.get(),
                    )
                });
                self.fail_stop(&dir, leftovers)?;
            }
        }
        self.fail_stop(&dir, created)
    }

    /// The largest batch set one append may carry: it must fit in one segment, as in Kafka.
    pub(super) fn max_append_bytes(&self) -> u64 {
        let pool = self.placer.as_ref().and_then(|p| p.max_segment_bytes());
        pool.map_or(self.config.segment_bytes, |b| {
            b.min(self.config.segment_bytes)
        })
    }

    pub(super) fn write_producer_snapshot(&self, offset: Offset) -> io::Result<()> {
        let path = offset_file(&self.dir, offset.get(), "snapshot");
        self.io.write_atomic(&path, &self.producers.encode())?;
        // Keep a snapshot for every segment (as Kafka): recovery replays from the one at or
        // below the first segment it recovers, and open transactions that began in segments
        // retention removed live on only in snapshots. Those below the first segment go.
        let first = self.segments.keys().next().map_or(offset, |b| *b);
        for name in self.io.list_dir(&self.dir)? {
            let Some(o) = name
                .strip_suffix(".snapshot")
                .and_then(|s| s.parse::<i64>().ok())
            else {
                continue;
            };
            if o < first.get() {
                self.io
                    .remove_if_present(&offset_file(&self.dir, o, "snapshot"))?;
            }
        }
        Ok(())
    }
}
