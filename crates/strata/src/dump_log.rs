//! `strata dump-log`: decode segment files offline, as kafka-dump-log.sh does.
//!
//! A `.log` file is walked batch by batch (header, CRC check, and with `--print-data-log` every
//! record); `.index` and `.timeindex` files are listed entry by entry, and with `--verify-index`
//! each entry is checked against the `.log` beside it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use strata_storage::batch::{self, BatchHeader, HEADER_SIZE, LOG_OVERHEAD};

#[derive(Debug, Args)]
pub struct DumpLogArgs {
    /// Segment files to dump (`.log`, `.index` or `.timeindex`).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Decode and print every record of every batch.
    #[arg(long)]
    pub print_data_log: bool,
    /// Check each index entry against the log file beside it.
    #[arg(long)]
    pub verify_index: bool,
}

fn base_offset_of(path: &Path) -> Result<i64> {
    path.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("{} is not named by a base offset", path.display()))
}

const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

/// Batches of a log file: (position, header, valid) up to the first unreadable one.
fn batches(bytes: &[u8]) -> (Vec<(usize, BatchHeader, bool)>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while at + LOG_OVERHEAD <= bytes.len() {
        let Ok(header) = BatchHeader::parse(&bytes[at..]) else {
            break;
        };
        if header.batch_length < (HEADER_SIZE - LOG_OVERHEAD) as i32
            || at + header.total_size() > bytes.len()
        {
            break;
        }
        let valid = batch::check_batch(&bytes[at..]).is_ok();
        out.push((at, header, valid));
        at += header.total_size();
    }
    (out, at)
}

fn dump_log(path: &Path, args: &DumpLogArgs) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    println!("Log starting offset: {}", base_offset_of(path)?);
    let (found, end) = batches(&bytes);
    for (position, h, valid) in &found {
        let timestamp_type = if h.is_log_append_time() {
            "LogAppendTime"
        } else {
            "CreateTime"
        };
        println!(
            "baseOffset: {} lastOffset: {} count: {} baseSequence: {} lastSequence: {} producerId: {} producerEpoch: {} \
             partitionLeaderEpoch: {} isTransactional: {} isControl: {} position: {} {}: {} size: {} magic: {} \
             compresscodec: {} crc: {} isvalid: {}",
            h.base_offset,
            h.last_offset(),
            h.records_count,
            h.base_sequence,
            h.last_sequence(),
            h.producer_id,
            h.producer_epoch,
            h.partition_leader_epoch,
            h.is_transactional(),
            h.is_control(),
            position,
            timestamp_type,
            h.max_timestamp,
            h.total_size(),
            h.magic,
            CODECS.get(h.compression() as usize).unwrap_or(&"unknown"),
            h.crc,
            valid
        );
        if args.print_data_log && *valid {
            let mut buf =
                bytes::Bytes::copy_from_slice(&bytes[*position..*position + h.total_size()]);
            match kafka_protocol::records::RecordBatchDecoder::decode(&mut buf) {
                Ok(set) => {
                    for r in set.records {
                        let header_keys: Vec<&str> = r.headers.keys().map(|k| k.as_str()).collect();
                        println!(
                            "| offset: {} {}: {} keySize: {} valueSize: {} sequence: {} headerKeys: [{}] key: {} payload: {}",
                            r.offset,
                            timestamp_type,
                            r.timestamp,
                            r.key.as_ref().map(|k| k.len() as i64).unwrap_or(-1),
                            r.value.as_ref().map(|v| v.len() as i64).unwrap_or(-1),
                            // A batch without sequences (not idempotent) has none per
                            // record either: -1, as Kafka prints it.
                            if h.base_sequence < 0 { -1 } else { r.sequence },
                            header_keys.join(","),
                            r.key.as_ref().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default(),
                            r.value.as_ref().map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default(),
                        );
                    }
                }
                Err(e) => println!("| cannot decode records: {e}"),
            }
        }
    }
    if end < bytes.len() {
        println!(
            "Found {} invalid bytes at the end of {} (position {end})",
            bytes.len() - end,
            path.display()
        );
    }
    Ok(())
}

fn dump_index(path: &Path, time: bool, args: &DumpLogArgs) -> Result<()> {
    let base = base_offset_of(path)?;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let log = if args.verify_index {
        Some(std::fs::read(path.with_extension("log")).context("the .log beside the index")?)
    } else {
        None
    };
    let positions = log.as_ref().map(|l| batches(l).0);
    let mut mismatches = 0;
    let size = if time { 12 } else { 8 };
    for entry in bytes.chunks_exact(size) {
        if time {
            let timestamp = i64::from_be_bytes(entry[0..8].try_into().expect("8 bytes"));
            let offset =
                base + u32::from_be_bytes(entry[8..12].try_into().expect("4 bytes")) as i64;
            println!("timestamp: {timestamp} offset: {offset}");
            if let Some(p) = &positions {
                let max_so_far = p
                    .iter()
                    .filter(|(_, h, _)| h.last_offset() <= offset)
                    .map(|(_, h, _)| h.max_timestamp)
                    .max();
                if max_so_far != Some(timestamp) {
                    mismatches += 1;
                    println!(
                        "  mismatch: the largest timestamp up to offset {offset} is {max_so_far:?}"
                    );
                }
            }
        } else {
            let offset = base + u32::from_be_bytes(entry[0..4].try_into().expect("4 bytes")) as i64;
            let position = u32::from_be_bytes(entry[4..8].try_into().expect("4 bytes")) as usize;
            println!("offset: {offset} position: {position}");
            if let Some(p) = &positions {
                match p.iter().find(|(at, _, _)| *at == position) {
                    Some((_, h, _)) if h.last_offset() == offset => {}
                    Some((_, h, _)) => {
                        mismatches += 1;
                        println!(
                            "  mismatch: the batch at {position} ends at offset {}",
                            h.last_offset()
                        );
                    }
                    None => {
                        mismatches += 1;
                        println!("  mismatch: no batch starts at position {position}");
                    }
                }
            }
        }
    }
    if args.verify_index {
        if mismatches > 0 {
            bail!(
                "{mismatches} index entries do not match {}",
                path.with_extension("log").display()
            );
        }
        println!("All index entries match the log.");
    }
    Ok(())
}

pub fn run(args: DumpLogArgs) -> Result<()> {
    for path in &args.files {
        println!("Dumping {}", path.display());
        match path.extension().and_then(|e| e.to_str()) {
            Some("log") => dump_log(path, &args)?,
            Some("index") => dump_index(path, false, &args)?,
            Some("timeindex") => dump_index(path, true, &args)?,
            _ => bail!(
                "{} is not a .log, .index or .timeindex file",
                path.display()
            ),
        }
    }
    Ok(())
}
