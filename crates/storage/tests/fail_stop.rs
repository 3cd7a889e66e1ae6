//! An I/O error at every single I/O call of a fixed sequence of appends (with rolls), flushes,
//! retention, a migration and DeleteRecords on the simulated disk, once as EIO and once as
//! ENOSPC. After EIO the log must be offline and refuse everything, and after a crash hold every
//! flushed record; after ENOSPC it must hold exactly what was acknowledged and keep working.

use std::path::{Path, PathBuf};

use strata_storage::batch::simple_batch;
use strata_storage::clock::Clock;
use strata_storage::io::sim::{SimFault, SimIo};
use strata_storage::io::Io;
use strata_storage::model::{clock, new_usage, open, read_values};
use strata_storage::tier::migration::{copy_segment, delete_segment_files};
use strata_storage::{AppendError, Offset, PartitionLog};

/// What a run acknowledged, and how much of it a successful flush covered.
#[derive(Default)]
struct Outcome {
    acknowledged: Vec<Vec<u8>>,
    durable: usize,
    start: i64,
    /// The first error, and whether the log was offline after it.
    error: Option<(String, bool)>,
}

fn value(i: usize) -> Vec<u8> {
    format!("record {i} {}", "v".repeat(40)).into_bytes()
}

/// The sequence; stops at the first error (the log is then offline, or refused one append).
fn scenario(io: &SimIo, log: &mut PartitionLog, out: &mut Outcome) {
    let step = |log: &mut PartitionLog, out: &mut Outcome, i: usize| -> Result<(), String> {
        let now = clock().now_ms();
        match log.append(&simple_batch(&[&value(i)], now), now) {
            Ok(info) => {
                assert_eq!(info.base_offset.get() as usize, out.acknowledged.len());
                out.acknowledged.push(value(i));
            }
            Err(e) => return Err(e.to_string()),
        }
        if i % 4 == 3 {
            log.flush().map_err(|e| e.to_string())?;
            out.durable = out.acknowledged.len();
        }
        if i == 12 {
            // Retention: the oldest segments' records are now old.
            clock().advance(200_000);
            log.apply_retention(clock().now_ms())
                .map_err(|e| e.to_string())?;
            out.start = log.log_start_offset().get();
        }
        if i == 16 {
            // A migration of the oldest sealed segment to the other tier.
            if let Some((base, from, _, _)) = log.sealed_segments().first().cloned() {
                let to: PathBuf = if from.starts_with("/fast") {
                    "/slow/m-0".into()
                } else {
                    "/fast/m-0".into()
                };
                copy_segment(io, &from, &to, base.get(), 64)
                    .and_then(|_| log.switch_segment(base, &from, &to))
                    .and_then(|switched| {
                        if switched {
                            delete_segment_files(io, &from, base.get())
                        } else {
                            Ok(())
                        }
                    })
                    .map_err(|e| e.to_string())?;
            }
        }
        if i == 20 {
            let to = out.start + 2;
            out.start = log
                .delete_records_before(Offset(to))
                .map_err(|e| e.to_string())?
                .get();
        }
        Ok(())
    };
    for i in 0..24 {
        if let Err(e) = step(log, out, i) {
            // A deletion that failed half-way may have moved the log start already: what is
            // below it was asked to go.
            out.start = out.start.max(log.log_start_offset().get());
            out.error = Some((e, log.offline().is_some()));
            return;
        }
    }
}

fn fresh() -> (SimIo, PartitionLog) {
    let io = SimIo::new();
    for d in ["/fast", "/slow", "/home"] {
        io.create_dir_durable(Path::new(d)).unwrap();
    }
    let log = open(&io, &new_usage(), true, 0);
    (io, log)
}

#[test]
fn an_error_at_any_io_call_stops_or_refuses_and_loses_nothing_flushed() {
    let (io, mut log) = fresh();
    let before = io.operations();
    let mut clean = Outcome::default();
    scenario(&io, &mut log, &mut clean);
    assert!(clean.error.is_none(), "{:?}", clean.error);
    let calls = io.operations() - before;
    assert!(calls > 100, "the sequence makes {calls} I/O calls");
    let mut stopped = 0;
    for fault in [SimFault::Io, SimFault::Full] {
        for n in 0..calls {
            let (io, mut log) = fresh();
            io.inject(n, fault);
            let mut out = Outcome::default();
            scenario(&io, &mut log, &mut out);
            let context = format!("{fault:?} at call {n}");
            let Some((error, offline)) = &out.error else {
                // The fault hit a call whose failure the sequence does not see (none should).
                assert!(io.injection_pending(), "{context}: an error went unnoticed");
                continue;
            };
            if fault == SimFault::Full && !offline {
                // A refused append: the log holds exactly what was acknowledged, and goes on.
                assert!(error.contains("ENOSPC"), "{context}: {error}");
                let values = read_values(&log, log.log_start_offset().get());
                let skip = (log.log_start_offset().get() - out.start).max(0) as usize;
                assert_eq!(
                    values,
                    out.acknowledged[out.start as usize + skip..],
                    "{context}: nothing partial is kept"
                );
                let next = log
                    .append(&simple_batch(&[b"after"], 0), 0)
                    .unwrap_or_else(|e| panic!("{context}: writing resumes: {e}"));
                assert_eq!(next.base_offset.get() as usize, out.acknowledged.len());
            } else {
                // Fail-stop: offline, refusing appends, reads and flushes.
                assert!(offline, "{context}: the log kept serving after {error}");
                stopped += 1;
                assert!(matches!(
                    log.append(&simple_batch(&[b"x"], 0), 0),
                    Err(AppendError::Offline { .. })
                ));
                assert!(log.read(log.log_start_offset(), 100, true).is_err());
                assert!(log.flush().is_err(), "{context}");
            }
            // Power loss and restart: every flushed record is there, nothing else is invented.
            drop(log);
            io.crash();
            let log = open(&io, &new_usage(), false, out.start);
            let from = log.log_start_offset().get();
            assert!(from >= out.start, "{context}: the log start went back");
            let values = read_values(&log, from);
            assert!(
                from as usize + values.len() >= out.durable,
                "{context}: lost flushed records ({from} + {} < {})",
                values.len(),
                out.durable
            );
            assert!(
                values
                    .iter()
                    .zip(&out.acknowledged[from as usize..])
                    .all(|(a, b)| a == b),
                "{context}: recovered records differ"
            );
        }
    }
    assert!(stopped > calls as usize / 2, "most faults stop the log");
}
