//! The storage model (appends, follower appends, rolls, flushes, truncations, new epochs,
//! migrations, deletions, injected I/O errors and crashes on the simulated disk) with every
//! choice read from the fuzzer's bytes: coverage guides it to the operation sequences the seeded
//! runs do not reach. The first byte picks the channel; the run ends when the bytes do.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_storage::model::{run, ByteChoices, Channel};

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let channel = if first & 1 == 0 {
        Channel::Tiered
    } else {
        Channel::Pmem
    };
    run(0, channel, &mut ByteChoices::new(rest), 400);
});
