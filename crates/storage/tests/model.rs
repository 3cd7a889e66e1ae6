//! The storage model over seeds (see `strata_storage::model` for what it checks). A failure prints
//! its seed; rerun one seed with `STRATA_MODEL_SEED=<seed> cargo test -p strata-storage --test
//! model`; try more seeds with `STRATA_MODEL_SEEDS=<count>`; trace a run with
//! `STRATA_MODEL_TRACE=1`.

use std::path::{Path, PathBuf};

use strata_storage::batch::simple_batch;
use strata_storage::io::sim::SimIo;
use strata_storage::io::Io;
use strata_storage::model::{new_usage, open, read_values, run, Channel, Rng};
use strata_storage::tier::migration::{copy_segment, delete_segment_files};

fn seeds() -> Vec<u64> {
    match std::env::var("STRATA_MODEL_SEED") {
        Ok(s) => vec![s.parse().expect("a seed")],
        Err(_) => (1..=std::env::var("STRATA_MODEL_SEEDS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(40))
            .collect(),
    }
}

#[test]
fn random_operations_with_crashes_match_the_model() {
    for seed in seeds() {
        run(seed, Channel::Tiered, &mut Rng::new(seed), 300);
    }
}

#[test]
fn random_operations_with_crashes_on_the_pmem_channel_match_the_model() {
    for seed in seeds() {
        run(seed, Channel::Pmem, &mut Rng::new(seed), 300);
    }
}

/// Retention (here DeleteRecords) removes a segment while a migration is copying it: the switch
/// finds it gone, the copy is discarded, and nothing of the segment is left in either tier.
#[test]
fn deletion_during_a_migration_cancels_it_cleanly() {
    let io = SimIo::new();
    for d in ["/fast", "/slow", "/home"] {
        io.create_dir_durable(Path::new(d)).unwrap();
    }
    let usage = new_usage();
    let mut log = open(&io, &usage, true, 0);
    for i in 0..40i64 {
        log.append(
            &simple_batch(&[format!("value {i} {}", "x".repeat(40)).as_bytes()], i),
            i,
        )
        .unwrap();
    }
    let (base, from, _, _) = log.sealed_segments()[0].clone();
    let to = PathBuf::from(if from.starts_with("/fast") {
        "/slow/m-0"
    } else {
        "/fast/m-0"
    });
    copy_segment(&io, &from, &to, base.get(), 64).unwrap();
    // The copy is committed; now the segment is deleted before the switch.
    let next = log.sealed_segments()[1].0;
    log.delete_records_before(next).unwrap();
    assert!(
        !log.switch_segment(base, &from, &to).unwrap(),
        "the switch finds the segment gone"
    );
    delete_segment_files(&io, &to, base.get()).unwrap();
    for dir in [&from, &to] {
        assert!(
            !io.list_dir(dir)
                .unwrap()
                .iter()
                .any(|n| n.starts_with(&format!("{base:020}."))),
            "{} still has segment {base}",
            dir.display()
        );
    }
    assert_eq!(
        read_values(&log, next.get()).len(),
        40 - next.get() as usize
    );
    // Usage went back to what the remaining segments take.
    let used: u64 = usage.snapshot().iter().map(|d| d.used_bytes).sum();
    let expected: u64 = log.sealed_segments().iter().map(|s| s.2).sum::<u64>() + 600;
    assert_eq!(used, expected);
}
