//! Crash points for crash tests: with `STRATA_CRASH_AT=<point>` in its environment the broker
//! aborts when it reaches that point, as a kill -9 there would stop it (the crash tests of
//! tests/transactions.rs use them to crash between two steps no signal could aim at). Without the
//! variable a check is one load of a cached value.

use std::sync::OnceLock;

/// Aborts the process if `STRATA_CRASH_AT` names `point`.
pub fn crash_if(point: &str) {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    if AT
        .get_or_init(|| std::env::var("STRATA_CRASH_AT").ok())
        .as_deref()
        == Some(point)
    {
        eprintln!("crash point {point} reached: aborting");
        std::process::abort();
    }
}
