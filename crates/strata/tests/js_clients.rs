//! A pure JavaScript client: kafkajs (installed by .ci/run under ~/.cache/strata-node, or where
//! STRATA_NODE_PATH points) drives consumer groups, commits, group admin and transactions against
//! the broker.

mod common;

use common::*;

/// Runs a script from tests/js against a fresh broker; it prints OK when all is well.
fn run_script(name: &str) {
    run_script_with(name, &[]);
}

/// As [`run_script`], with broker settings.
fn run_script_with(name: &str, overrides: &[&str]) {
    let node_path = node_modules();
    let mut settings = vec!["group.initial.rebalance.delay.ms=0"];
    settings.extend_from_slice(overrides);
    let broker = BrokerProcess::start(&settings);
    let script = format!("{}/tests/js/{name}", env!("CARGO_MANIFEST_DIR"));
    let mut command = std::process::Command::new("node");
    command
        .arg(script)
        .arg(&broker.addr)
        .env("NODE_PATH", &node_path)
        .env("KAFKAJS_NO_PARTITIONER_WARNING", "1");
    assert_script_ok(command, &format!("kafkajs script {name}"), &broker);
}

#[test]
fn kafkajs_groups_commits_and_admin() {
    run_script("groups.js");
}

#[test]
fn kafkajs_transactions_and_send_offsets() {
    run_script("transactions.js");
}

#[test]
fn kafkajs_reads_a_compacted_topic() {
    run_script_with("compaction.js", &["log.cleaner.backoff.ms=100"]);
}
