//! Dynamic broker configs on a broker alone (kafka-configs.sh `--entity-type brokers`): set
//! through IncrementalAlterConfigs, in force at once for every topic that inherits them, shown
//! by DescribeConfigs with Kafka's sources, kept across a restart, refused for static keys and
//! bad values.

mod common;

use std::time::Duration;

use common::*;
use rdkafka::producer::FutureRecord;

/// Whether a record of `size` bytes is accepted on `topic`.
fn accepted(rt: &tokio::runtime::Runtime, addr: &str, topic: &str, size: usize) -> bool {
    let producer = no_retry_producer(addr);
    let value = vec![b'x'; size];
    rt.block_on(async {
        producer
            .send(
                FutureRecord::<(), _>::to(topic)
                    .partition(0)
                    .payload(&value),
                Duration::from_secs(10),
            )
            .await
    })
    .is_ok()
}

fn configs(addr: &str, args: &[&str]) -> (bool, String) {
    let (ok, out, err) = strata_tool("configs", addr, args);
    (ok, format!("{out}{err}"))
}

#[test]
fn broker_configs_change_live_are_described_and_survive_a_restart() {
    let mut broker = BrokerProcess::start(&[]);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "inherits", 1, &[]);
    create_topic(
        &rt,
        &broker.addr,
        "overrides",
        1,
        &[("max.message.bytes", "100000")],
    );
    assert!(accepted(&rt, &broker.addr, "inherits", 5000));

    // This broker's own value: the topic without an override takes it at once.
    let (ok, out) = alter_broker_configs(&broker.addr, "0", "message.max.bytes=2000");
    assert!(
        ok && out.contains("Completed updating config for broker 0."),
        "{out}"
    );
    assert!(
        !accepted(&rt, &broker.addr, "inherits", 5000),
        "over the new limit"
    );
    assert!(accepted(&rt, &broker.addr, "inherits", 1000));
    assert!(
        accepted(&rt, &broker.addr, "overrides", 5000),
        "its own override stands"
    );
    let (_, out) = configs(
        &broker.addr,
        &["--describe", "--topic", "inherits", "--all"],
    );
    assert!(
        out.contains("max.message.bytes=2000 sensitive=false synonyms={DYNAMIC_BROKER_CONFIG:message.max.bytes=2000, DEFAULT_CONFIG:message.max.bytes="),
        "{out}"
    );
    let (_, out) = configs(&broker.addr, &["--describe", "--broker", "0"]);
    assert!(
        out.starts_with("Dynamic configs for broker 0 are:"),
        "{out}"
    );
    assert!(
        out.contains("message.max.bytes=2000 sensitive=false synonyms={DYNAMIC_BROKER_CONFIG:message.max.bytes=2000"),
        "{out}"
    );

    // The cluster-wide default, under the broker's own value.
    let (ok, out) = configs(
        &broker.addr,
        &[
            "--alter",
            "--entity-type",
            "brokers",
            "--entity-default",
            "--add-config",
            "message.max.bytes=3000,log.retention.ms=3600000",
        ],
    );
    assert!(
        ok && out.contains("Completed updating default config for brokers in the cluster."),
        "{out}"
    );
    let (_, out) = configs(&broker.addr, &["--describe", "--broker-defaults"]);
    assert!(
        out.starts_with("Default configs for brokers in the cluster are:")
            && out.contains("log.retention.ms=3600000")
            && out.contains("message.max.bytes=3000"),
        "{out}"
    );
    let (_, out) = configs(
        &broker.addr,
        &["--describe", "--topic", "inherits", "--all"],
    );
    assert!(
        out.contains("retention.ms=3600000 sensitive=false synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=3600000"),
        "{out}"
    );
    assert!(
        out.contains("synonyms={DYNAMIC_BROKER_CONFIG:message.max.bytes=2000, DYNAMIC_DEFAULT_BROKER_CONFIG:message.max.bytes=3000"),
        "{out}"
    );

    // Static keys and bad values are refused, changing nothing.
    let (ok, out) = alter_broker_configs(&broker.addr, "0", "log.dirs=/elsewhere");
    assert!(
        !ok && out.contains("Cannot update these configs dynamically"),
        "{out}"
    );
    let (ok, out) = alter_broker_configs(&broker.addr, "0", "log.retention.ms=soon");
    assert!(
        !ok && out.contains("log.retention.ms") && out.contains("soon"),
        "{out}"
    );
    let (ok, out) = alter_broker_configs(&broker.addr, "7", "log.retention.ms=1");
    assert!(!ok && out.contains("Unexpected broker id"), "{out}");

    // Kept across a restart.
    broker.stop();
    broker.restart();
    assert!(!accepted(&rt, &broker.addr, "inherits", 5000));
    let (_, out) = configs(&broker.addr, &["--describe", "--broker", "0"]);
    assert!(out.contains("message.max.bytes=2000"), "{out}");

    // Removing the broker's value leaves the default's; removing that, the static one.
    let (ok, out) = configs(
        &broker.addr,
        &[
            "--alter",
            "--broker",
            "0",
            "--delete-config",
            "message.max.bytes",
        ],
    );
    assert!(ok, "{out}");
    assert!(accepted(&rt, &broker.addr, "inherits", 2500));
    assert!(!accepted(&rt, &broker.addr, "inherits", 5000));
    let (ok, out) = configs(
        &broker.addr,
        &[
            "--alter",
            "--broker-defaults",
            "--delete-config",
            "message.max.bytes",
        ],
    );
    assert!(ok, "{out}");
    assert!(accepted(&rt, &broker.addr, "inherits", 5000));
    assert!(broker.log().contains("dynamic broker configs applied"));
}
