//! Any frame: decoding either yields a request or an error; it never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = strata_broker::handlers::decode_request(bytes::Bytes::copy_from_slice(data));
});
