//! Clients not built on librdkafka: kafka-python and aiokafka (installed by .ci/run) drive
//! consumer groups, commits and group admin against the broker.

mod common;

use common::*;

/// Runs a Python script from tests/python against a fresh broker; it prints OK when all is well.
fn run_script(name: &str) {
    let broker = BrokerProcess::start(&["group.initial.rebalance.delay.ms=0"]);
    let script = format!("{}/tests/python/{name}", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(&broker.addr)
        .output()
        .expect("python3 runs (.ci/run installs kafka-python and aiokafka)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.trim_end().ends_with("OK"),
        "{name} failed:\n{stdout}\n{stderr}\nbroker log:\n{}",
        broker.log()
    );
}

#[test]
fn kafka_python_groups_commits_and_admin() {
    run_script("groups.py");
}

#[test]
fn aiokafka_groups_and_commits() {
    run_script("aio_groups.py");
}
