//! Python clients (installed by .ci/run): kafka-python and aiokafka, not built on librdkafka,
//! drive consumer groups, commits, group admin and transactions; confluent-kafka (librdkafka's
//! Python client) drives transactions: commit and abort, fencing, consume-transform-produce;
//! both read a compacted topic to its end.

mod common;

use common::*;

/// Runs a Python script from tests/python against a fresh broker; it prints OK when all is well.
fn run_script(name: &str) {
    run_script_with(name, &[]);
}

/// As [`run_script`], with broker settings.
fn run_script_with(name: &str, overrides: &[&str]) {
    let mut settings = vec!["group.initial.rebalance.delay.ms=0"];
    settings.extend_from_slice(overrides);
    let broker = BrokerProcess::start(&settings);
    let script = format!("{}/tests/python/{name}", env!("CARGO_MANIFEST_DIR"));
    let mut command = std::process::Command::new("python3");
    command.arg(script).arg(&broker.addr);
    // .ci/run installs kafka-python, aiokafka and confluent-kafka.
    assert_script_ok(command, name, &broker);
}

#[test]
fn kafka_python_groups_commits_and_admin() {
    run_script("groups.py");
}

#[test]
fn aiokafka_groups_and_commits() {
    run_script("aio_groups.py");
}

#[test]
fn confluent_kafka_transactions_fencing_and_consume_transform_produce() {
    run_script("txn_confluent.py");
}

#[test]
fn kafka_python_transactional_producer() {
    run_script("txn_kafka_python.py");
}

#[test]
fn aiokafka_transactions_and_offsets() {
    run_script("txn_aiokafka.py");
}

#[test]
fn confluent_kafka_and_kafka_python_read_a_compacted_topic() {
    run_script_with("compaction.py", &["log.cleaner.backoff.ms=100"]);
}
