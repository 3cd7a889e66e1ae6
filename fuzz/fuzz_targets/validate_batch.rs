//! Any bytes as a produce request's records: validation accepts only well-formed batches, and
//! whatever it accepts is exactly covered by the batches it reports.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_storage::batch;

fuzz_target!(|data: &[u8]| {
    if let Ok(batches) = batch::split_produced(data) {
        let mut at = 0;
        for (position, header) in batches {
            assert_eq!(position, at);
            assert!(header.total_size() >= batch::HEADER_SIZE);
            assert_eq!(header.records_count, header.last_offset_delta + 1);
            assert!(batch::check_batch(&data[at..]).is_ok());
            at += header.total_size();
        }
        assert_eq!(at, data.len());
    }
    let _ = batch::BatchHeader::parse(data).map(|h| batch::record_timestamps(data, &h));
});
