//! Any bytes as the active segment after a crash: recovery never panics, and what it keeps is a
//! sequence of valid batches with increasing offsets that can be read back.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use strata_storage::io::{Io, RealIo};
use strata_storage::{batch, LogConfig, Offset, PartitionLog};

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = RealIo.open(&dir.path().join("00000000000000000000.log"), true).expect("create");
    file.write_vectored_at(&[data], 0).expect("write");
    drop(file);
    let log = PartitionLog::open(Arc::new(RealIo), dir.path(), "fuzz", 0, LogConfig::default(), false, Offset::ZERO, Offset::ZERO).expect("recover");
    let end = log.log_end_offset().get();
    let size = log.size_bytes();
    assert!(size <= data.len() as u64);
    let mut at = 0usize;
    let mut next = 0i64;
    while at < size as usize {
        let header = batch::check_batch(&data[at..]).expect("kept bytes are valid batches");
        assert!(header.base_offset >= next);
        next = header.last_offset() + 1;
        at += header.total_size();
    }
    assert_eq!(next.max(0), end);
    if end > 0 {
        assert!(log.read(Offset::ZERO, 1 << 20, true).expect("read").slice.is_some());
    }
});
