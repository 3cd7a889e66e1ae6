//! Append and read throughput of a partition log on real files (page cache, no sync).
//!
//! `cargo bench -p strata-storage --bench log`

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use strata_storage::batch::simple_batch;
use strata_storage::io::RealIo;
use strata_storage::units::Offset;
use strata_storage::{LogConfig, PartitionLog};

const RECORD: usize = 1024;
const RECORDS_PER_BATCH: usize = 16;

fn batch() -> Vec<u8> {
    let value = vec![0x42u8; RECORD];
    let values: Vec<&[u8]> = (0..RECORDS_PER_BATCH).map(|_| value.as_slice()).collect();
    simple_batch(&values, 1_700_000_000_000)
}

fn open(dir: &std::path::Path) -> PartitionLog {
    let config = LogConfig {
        segment_bytes: 64 << 20,
        ..LogConfig::default()
    };
    PartitionLog::open(
        Arc::new(RealIo),
        dir,
        "bench",
        0,
        config,
        true,
        Offset(0),
        Offset(0),
    )
    .expect("open log")
}

fn append(c: &mut Criterion) {
    let batch = batch();
    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Bytes(64 * batch.len() as u64));
    group.bench_function("64 batches of 16x1KiB", |b| {
        b.iter_batched_ref(
            || {
                let dir = tempfile::tempdir().expect("tempdir");
                let log = open(dir.path());
                (dir, log)
            },
            |(_, log)| {
                for _ in 0..64 {
                    log.append(&batch, 0).expect("append");
                }
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn read(c: &mut Criterion) {
    let batch = batch();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path());
    let batches = 4096;
    for _ in 0..batches {
        log.append(&batch, 0).expect("append");
    }
    let end = log.log_end_offset().get();
    let mut group = c.benchmark_group("read");
    group.throughput(Throughput::Bytes(1 << 20));
    let mut offset = 0;
    group.bench_function("locate 1 MiB at a random offset", |b| {
        b.iter(|| {
            offset = (offset + 7919) % end;
            log.read(Offset(offset), 1 << 20, true)
                .expect("read")
                .slice
                .expect("data")
        })
    });
    let mut buf = vec![0u8; 1 << 20];
    group.bench_function("locate and copy 1 MiB", |b| {
        b.iter(|| {
            offset = (offset + 7919) % end;
            let slice = log
                .read(Offset(offset), 1 << 20, true)
                .expect("read")
                .slice
                .expect("data");
            slice
                .file
                .read_exact_at(&mut buf[..slice.len as usize], slice.position.get())
                .expect("copy");
        })
    });
    group.finish();
}

criterion_group!(benches, append, read);
criterion_main!(benches);
