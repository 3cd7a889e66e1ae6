//! Clients not built on librdkafka: kafka-python (installed by .ci/run) drives consumer groups,
//! commits and group admin against the broker.

mod common;

use common::*;

#[test]
fn kafka_python_groups_commits_and_admin() {
    let broker = BrokerProcess::start(&["group.initial.rebalance.delay.ms=0"]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/groups.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(&broker.addr)
        .output()
        .expect("python3 runs (.ci/run installs kafka-python)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.trim_end().ends_with("OK"),
        "kafka-python script failed:\n{stdout}\n{stderr}\nbroker log:\n{}",
        broker.log()
    );
}
