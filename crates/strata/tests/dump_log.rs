//! `strata dump-log` on segments the broker wrote.

mod common;

use common::*;

fn strata(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn dump_log_decodes_batches_records_and_indexes() {
    let mut broker = BrokerProcess::start(&[]);
    let rt = runtime();
    create_topic(
        &rt,
        &broker.addr,
        "dump",
        1,
        &[("index.interval.bytes", "100")],
    );
    let producer = producer(
        &broker.addr,
        &[("linger.ms", "0"), ("compression.codec", "lz4")],
    );
    for i in 0..20 {
        produce(
            &rt,
            &producer,
            "dump",
            0,
            &[(
                Some(format!("key{i}").into_bytes()),
                Some(format!("value-{i}-{}", "x".repeat(500)).into_bytes()),
            )],
        );
    }
    drop(producer);
    broker.stop();
    let log = segment_files(&broker.data_dir(), "dump", 0).remove(0);
    let (ok, out) = strata(&["dump-log", "--print-data-log", log.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains("Log starting offset: 0"), "{out}");
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("baseOffset: "))
            .count(),
        20,
        "{out}"
    );
    assert!(out
        .lines()
        .filter(|l| l.starts_with("baseOffset: "))
        .all(|l| l.contains("isvalid: true") && l.contains("compresscodec: lz4")));
    assert!(out.contains("| offset: 19 CreateTime: "), "{out}");
    assert!(
        out.contains(&format!("key: key7 payload: value-7-{}\n", "x".repeat(500))),
        "{out}"
    );

    let index = log.with_extension("index");
    let (ok, out) = strata(&[
        "dump-log",
        "--verify-index",
        index.to_str().unwrap(),
        log.with_extension("timeindex").to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    assert!(
        out.lines().filter(|l| l.starts_with("offset: ")).count() > 5,
        "{out}"
    );
    assert_eq!(
        out.matches("All index entries match the log.").count(),
        2,
        "{out}"
    );

    // Damage: a flipped byte shows as an invalid batch, a bad index entry fails verification.
    let mut bytes = std::fs::read(&log).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 0xff;
    std::fs::write(&log, &bytes).unwrap();
    let (_, out) = strata(&["dump-log", log.to_str().unwrap()]);
    assert_eq!(out.matches("isvalid: false").count(), 1, "{out}");
    let mut entries = std::fs::read(&index).unwrap();
    entries[4..8].copy_from_slice(&7u32.to_be_bytes());
    std::fs::write(&index, &entries).unwrap();
    let (ok, out) = strata(&["dump-log", "--verify-index", index.to_str().unwrap()]);
    assert!(!ok && out.contains("mismatch"), "{out}");
}

#[test]
fn records_of_batches_without_sequences_print_sequence_minus_one() {
    use strata_storage::batch::{build_batch, encode_simple_records};
    let dir = tempfile::tempdir().unwrap();
    let values: Vec<&[u8]> = vec![b"a", b"b", b"c"];
    let records = encode_simple_records(&values, &[0, 0, 0]);
    let mut log = build_batch(0, 0, 2, 1000, 1000, -1, -1, -1, 3, &records);
    // An idempotent producer's batch: its records carry sequences 5, 6, 7.
    log.extend(build_batch(3, 0, 2, 1000, 1000, 42, 0, 5, 3, &records));
    let path = dir.path().join("00000000000000000000.log");
    std::fs::write(&path, &log).unwrap();
    let (ok, out) = strata(&["dump-log", "--print-data-log", path.to_str().unwrap()]);
    assert!(ok, "{out}");
    let sequences: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("| offset: "))
        .map(|l| {
            l.split(" sequence: ")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(sequences, ["-1", "-1", "-1", "5", "6", "7"], "{out}");
}
