//! Admin operations through librdkafka's admin client and the `strata topics` command, with
//! Kafka's error codes.

mod common;

use std::time::Duration;

use common::*;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewPartitions, NewTopic,
    ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::TopicPartitionList;

fn admin(addr: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", addr)
        .create()
        .expect("admin")
}

fn create_one(
    rt: &tokio::runtime::Runtime,
    admin: &AdminClient<DefaultClientContext>,
    topic: NewTopic<'_>,
    validate_only: bool,
) -> Result<(), RDKafkaErrorCode> {
    let opts = AdminOptions::new()
        .validate_only(validate_only)
        .operation_timeout(Some(Duration::from_secs(10)));
    let mut results = rt
        .block_on(admin.create_topics(&[topic], &opts))
        .expect("request");
    results.remove(0).map(|_| ()).map_err(|(_, e)| e)
}

#[test]
fn create_topics_and_its_errors() {
    let broker = BrokerProcess::start(&[]);
    let rt = runtime();
    let admin = admin(&broker.addr);

    assert_eq!(
        create_one(
            &rt,
            &admin,
            NewTopic::new("orders", 3, TopicReplication::Fixed(1)).set("retention.ms", "3600000"),
            false
        ),
        Ok(())
    );
    assert_eq!(
        create_one(
            &rt,
            &admin,
            NewTopic::new("orders", 3, TopicReplication::Fixed(1)),
            false
        ),
        Err(RDKafkaErrorCode::TopicAlreadyExists)
    );
    assert_eq!(
        create_one(
            &rt,
            &admin,
            NewTopic::new("bad/name", 1, TopicReplication::Fixed(1)),
            false
        ),
        Err(RDKafkaErrorCode::InvalidTopic)
    );
    assert_eq!(
        create_one(
            &rt,
            &admin,
            NewTopic::new(&"x".repeat(250), 1, TopicReplication::Fixed(1)),
            false
        ),
        Err(RDKafkaErrorCode::InvalidTopic)
    );
    assert_eq!(
        create_one(
            &rt,
            &admin,
            NewTopic::new("zero", 0, TopicReplication::Fixed(1)),
            false
        ),
        Err(RDKafkaErrorCode::InvalidPartitions)
    );
    assert_eq!(
        create_one(
            &rt,
            &admin,
            NewTopic::new("rf3", 1, TopicReplication::Fixed(3)),
            false
        ),
        Err(RDKafkaErrorCode::InvalidReplicationFactor)
    );
    assert_eq!(
        create_one(
            &rt,
            &admin,
            NewTopic::new("badcfg", 1, TopicReplication::Fixed(1)).set("retention.ms", "soon"),
            false
        ),
        Err(RDKafkaErrorCode::InvalidConfig)
    );
    assert_eq!(
        create_one(
            &rt,
            &admin,
            NewTopic::new("badkey", 1, TopicReplication::Fixed(1)).set("no.such.config", "1"),
            false
        ),
        Err(RDKafkaErrorCode::InvalidConfig)
    );
    assert_eq!(
        create_one(
            &rt,
            &admin,
            NewTopic::new("my.topic", 1, TopicReplication::Fixed(1)),
            false
        ),
        Ok(())
    );
    assert_eq!(
        create_one(
            &rt,
            &admin,
            NewTopic::new("my_topic", 1, TopicReplication::Fixed(1)),
            false
        ),
        Err(RDKafkaErrorCode::InvalidTopic),
        "'.' and '_' collide"
    );
    let chan = |value: &'static str| {
        NewTopic::new("chan", 1, TopicReplication::Fixed(1)).set("channel.type", value)
    };
    assert_eq!(
        create_one(&rt, &admin, chan("tiered"), false),
        Err(RDKafkaErrorCode::InvalidConfig),
        "a topic's channel is the broker's"
    );
    assert_eq!(create_one(&rt, &admin, chan("file"), false), Ok(()));
    // Validate-only creates nothing.
    assert_eq!(
        create_one(
            &rt,
            &admin,
            NewTopic::new("dry", 2, TopicReplication::Fixed(1)),
            true
        ),
        Ok(())
    );
    let consumer = consumer(&broker.addr, &[("allow.auto.create.topics", "false")]);
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(5))
        .unwrap();
    let mut names: Vec<&str> = metadata.topics().iter().map(|t| t.name()).collect();
    names.sort();
    // The internal offsets topic is listed too, marked internal, as Kafka lists it.
    assert_eq!(
        names,
        vec!["__consumer_offsets", "chan", "my.topic", "orders"]
    );
    let orders = metadata
        .topics()
        .iter()
        .find(|t| t.name() == "orders")
        .unwrap();
    assert_eq!(orders.partitions().len(), 3);
    assert!(orders
        .partitions()
        .iter()
        .all(|p| p.leader() == 0 && p.replicas() == [0] && p.isr() == [0]));
}

#[test]
fn delete_topics_and_partitions_growth() {
    let broker = BrokerProcess::start(&[]);
    let rt = runtime();
    let admin = admin(&broker.addr);
    create_topic(&rt, &broker.addr, "doomed", 2, &[]);
    let producer = producer(&broker.addr, &[]);
    produce(&rt, &producer, "doomed", 1, &[(None, Some(b"x".to_vec()))]);
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let r = rt
        .block_on(admin.delete_topics(&["doomed", "never-was"], &opts))
        .unwrap();
    assert_eq!(r[0], Ok("doomed".to_string()));
    assert_eq!(
        r[1],
        Err((
            "never-was".to_string(),
            RDKafkaErrorCode::UnknownTopicOrPartition
        ))
    );
    assert!(
        !broker.data_dir().join("doomed-0").exists()
            && !broker.data_dir().join("doomed-1").exists()
    );

    create_topic(&rt, &broker.addr, "grow", 2, &[]);
    let r = rt
        .block_on(admin.create_partitions(&[NewPartitions::new("grow", 5)], &opts))
        .unwrap();
    assert_eq!(r[0], Ok("grow".to_string()));
    let r = rt
        .block_on(admin.create_partitions(&[NewPartitions::new("grow", 3)], &opts))
        .unwrap();
    assert_eq!(
        r[0],
        Err(("grow".to_string(), RDKafkaErrorCode::InvalidPartitions))
    );
    let r = rt
        .block_on(admin.create_partitions(&[NewPartitions::new("nope", 3)], &opts))
        .unwrap();
    assert_eq!(
        r[0],
        Err((
            "nope".to_string(),
            RDKafkaErrorCode::UnknownTopicOrPartition
        ))
    );
    produce(
        &rt,
        &producer,
        "grow",
        4,
        &[(None, Some(b"new partition".to_vec()))],
    );
    let consumer = consumer(&broker.addr, &[]);
    assert_eq!(
        consumer
            .fetch_watermarks("grow", 4, Duration::from_secs(5))
            .unwrap(),
        (0, 1)
    );
}

#[test]
fn describe_and_alter_configs_report_sources() {
    let broker = BrokerProcess::start(&["log.retention.hours=24"]);
    let rt = runtime();
    let admin = admin(&broker.addr);
    create_topic(&rt, &broker.addr, "cfg", 1, &[("segment.bytes", "1048576")]);
    let opts = AdminOptions::new();
    let describe = |rt: &tokio::runtime::Runtime| {
        let mut r = rt
            .block_on(admin.describe_configs(&[ResourceSpecifier::Topic("cfg")], &opts))
            .unwrap();
        r.remove(0).unwrap()
    };
    let configs = describe(&rt);
    let segment = configs.get("segment.bytes").unwrap();
    assert_eq!(segment.value.as_deref(), Some("1048576"));
    assert_eq!(segment.source, ConfigSource::DynamicTopic);
    let retention = configs.get("retention.ms").unwrap();
    assert_eq!(retention.value.as_deref(), Some("86400000"));
    assert_eq!(retention.source, ConfigSource::StaticBroker);
    let max = configs.get("max.message.bytes").unwrap();
    assert_eq!(max.value.as_deref(), Some("1048588"));
    assert_eq!(max.source, ConfigSource::Default);

    // AlterConfigs replaces the whole set of overrides.
    let r = rt
        .block_on(admin.alter_configs(
            &[AlterConfig::new(ResourceSpecifier::Topic("cfg")).set("retention.ms", "1000")],
            &opts,
        ))
        .unwrap();
    assert!(r[0].is_ok());
    let configs = describe(&rt);
    assert_eq!(
        configs.get("retention.ms").unwrap().value.as_deref(),
        Some("1000")
    );
    assert_eq!(
        configs.get("segment.bytes").unwrap().source,
        ConfigSource::Default
    );
    // librdkafka's Rust binding drops per-resource AlterConfigs errors, so check the error code
    // with the protocol client.
    let response = rt.block_on(async {
        use kafka_protocol::messages::alter_configs_request::{
            AlterConfigsResource, AlterableConfig,
        };
        use kafka_protocol::protocol::StrBytes;
        let mut client = strata::client::Client::connect(&broker.addr).await.unwrap();
        client
            .send(
                kafka_protocol::messages::AlterConfigsRequest::default().with_resources(vec![
                    AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(StrBytes::from_static_str("cfg"))
                        .with_configs(vec![AlterableConfig::default()
                            .with_name(StrBytes::from_static_str("retention.ms"))
                            .with_value(Some(StrBytes::from_static_str("-5")))]),
                ]),
            )
            .await
            .unwrap()
    });
    assert_eq!(response.responses[0].error_code, 40, "INVALID_CONFIG");
    let message = response.responses[0]
        .error_message
        .as_ref()
        .unwrap()
        .to_string();
    assert!(
        message.contains("retention.ms") && message.contains("-5"),
        "{message}"
    );
    assert_eq!(
        describe(&rt).get("retention.ms").unwrap().value.as_deref(),
        Some("1000"),
        "a refused change changes nothing"
    );
    let missing = rt.block_on(async {
        use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
        let mut client = strata::client::Client::connect(&broker.addr).await.unwrap();
        client
            .send(
                kafka_protocol::messages::DescribeConfigsRequest::default().with_resources(vec![
                    DescribeConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(kafka_protocol::protocol::StrBytes::from_static_str(
                            "missing",
                        )),
                ]),
            )
            .await
            .unwrap()
    });
    assert_eq!(
        missing.results[0].error_code, 3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    // The broker's own configs.
    let r = rt
        .block_on(admin.describe_configs(&[ResourceSpecifier::Broker(0)], &opts))
        .unwrap();
    let broker_configs = r[0].as_ref().unwrap();
    assert_eq!(
        broker_configs
            .get("log.retention.hours")
            .unwrap()
            .value
            .as_deref(),
        Some("24")
    );
    assert_eq!(
        broker_configs
            .get("num.partitions")
            .unwrap()
            .value
            .as_deref(),
        Some("1")
    );
}

#[test]
fn delete_records_moves_the_low_watermark() {
    let broker = BrokerProcess::start(&[]);
    let rt = runtime();
    let admin = admin(&broker.addr);
    create_topic(&rt, &broker.addr, "trim", 1, &[("segment.bytes", "1024")]);
    let producer = producer(&broker.addr, &[("linger.ms", "0")]);
    for i in 0..50 {
        produce(
            &rt,
            &producer,
            "trim",
            0,
            &[(None, Some(format!("{i:0100}").into_bytes()))],
        );
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("trim", 0, rdkafka::Offset::Offset(30))
        .unwrap();
    let r = rt
        .block_on(admin.delete_records(&tpl, &AdminOptions::new()))
        .unwrap();
    assert_eq!(
        r.find_partition("trim", 0).unwrap().offset(),
        rdkafka::Offset::Offset(30)
    );
    let consumer = consumer(&broker.addr, &[]);
    assert_eq!(
        consumer
            .fetch_watermarks("trim", 0, Duration::from_secs(5))
            .unwrap(),
        (30, 50)
    );
    let got = consume(&consumer, "trim", 0, 30, 20, Duration::from_secs(10));
    assert_eq!(payload(&got[0]), format!("{:0100}", 30).into_bytes());
    // Segments wholly below the new start are gone from disk.
    assert!(segment_files(&broker.data_dir(), "trim", 0).len() < 50 * 170 / 1024);
}

use common::strata_tool;

#[test]
fn topics_command_creates_lists_describes_alters_and_deletes() {
    let broker = BrokerProcess::start(&[]);
    let b = broker.addr.as_str();
    let (ok, out, err) = strata_tool(
        "topics",
        b,
        &[
            "--create",
            "--topic",
            "events",
            "--partitions",
            "3",
            "--config",
            "retention.ms=60000",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "Created topic events.");
    let (ok, _, err) = strata_tool("topics", b, &["--create", "--topic", "events"]);
    assert!(!ok);
    assert!(err.contains("TopicAlreadyExists"), "{err}");
    let (ok, _, _) = strata_tool(
        "topics",
        b,
        &["--create", "--topic", "events", "--if-not-exists"],
    );
    assert!(ok);
    strata_tool("topics", b, &["--create", "--topic", "audit"]);
    let (_, out, _) = strata_tool("topics", b, &["--list"]);
    assert_eq!(out, "__consumer_offsets\naudit\nevents\n");
    let (_, out, _) = strata_tool("topics", b, &["--list", "--exclude-internal"]);
    assert_eq!(out, "audit\nevents\n");
    let (ok, _, err) = strata_tool(
        "topics",
        b,
        &["--alter", "--topic", "events", "--partitions", "4"],
    );
    assert!(ok, "{err}");
    let (_, out, _) = strata_tool("topics", b, &["--describe", "--topic", "events"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("Topic: events\tTopicId: "), "{out}");
    assert!(
        lines[0].contains("\tPartitionCount: 4\tReplicationFactor: 1\tConfigs: retention.ms=60000"),
        "{out}"
    );
    assert_eq!(
        lines[1],
        "\tTopic: events\tPartition: 0\tLeader: 0\tReplicas: 0\tIsr: 0"
    );
    assert_eq!(lines.len(), 5);
    let (ok, _, err) = strata_tool("topics", b, &["--delete", "--topic", "events"]);
    assert!(ok, "{err}");
    let (_, out, _) = strata_tool("topics", b, &["--list"]);
    assert_eq!(out, "__consumer_offsets\naudit\n");
    let (ok, _, err) = strata_tool(
        "topics",
        b,
        &[
            "--create",
            "--topic",
            "bad",
            "--config",
            "cleanup.policy=nonsense",
        ],
    );
    assert!(!ok);
    assert!(
        err.contains("InvalidConfig") && err.contains("nonsense"),
        "{err}"
    );
}

#[test]
fn auto_creation_follows_the_broker_setting() {
    let broker = BrokerProcess::start(&["num.partitions=4"]);
    let rt = runtime();
    let producer = producer(&broker.addr, &[]);
    produce(
        &rt,
        &producer,
        "auto",
        3,
        &[(None, Some(b"hello".to_vec()))],
    );
    let consumer = consumer(&broker.addr, &[]);
    let metadata = consumer
        .fetch_metadata(Some("auto"), Duration::from_secs(5))
        .unwrap();
    assert_eq!(metadata.topics()[0].partitions().len(), 4);

    let strict = BrokerProcess::start(&["auto.create.topics.enable=false"]);
    let consumer = consumer_for(&strict.addr);
    let metadata = consumer
        .fetch_metadata(Some("absent"), Duration::from_secs(5))
        .unwrap();
    assert_eq!(
        metadata.topics()[0].error(),
        Some(rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
    );
}

fn consumer_for(addr: &str) -> rdkafka::consumer::BaseConsumer {
    consumer(addr, &[])
}

#[test]
fn bad_config_stops_startup_naming_key_and_value_and_unknown_keys_warn() {
    let dir = tempfile::tempdir().unwrap();
    let data = format!("log.dirs={}", dir.path().join("data").display());
    for (key, value) in [
        ("num.partitions", "many"),
        ("log.segment.bytes", "10"),
        ("listeners", "http://x"),
        ("log.retention.ms", "-7"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
            .args([
                "server",
                "--override",
                &data,
                "--override",
                &format!("{key}={value}"),
            ])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{key}={value} must stop startup");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(key) && err.contains(value),
            "{key}={value}: {err}"
        );
    }
    let config = dir.path().join("server.properties");
    std::fs::write(
        &config,
        format!(
            "{data}\nlisteners=PLAINTEXT://127.0.0.1:0\nno.such.key=1\nlog.retension.hours=1\n"
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["server", "--config", config.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.starts_with("listening on 127.0.0.1:"), "{line}");
    let _ = std::process::Command::new("kill")
        .arg(child.id().to_string())
        .status();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown configuration key no.such.key is ignored"),
        "{err}"
    );
    assert!(
        err.contains(
            "unknown configuration key log.retension.hours is ignored (did you mean \
             log.retention.hours?)"
        ),
        "{err}"
    );
}

#[test]
fn topics_take_patterns_and_alter_configs_and_configs_shows_sources() {
    let broker = BrokerProcess::start(&[]);
    let b = broker.addr.as_str();
    for t in ["orders-eu", "orders-us", "audit"] {
        let (ok, _, err) = strata_tool("topics", b, &["--create", "--topic", t]);
        assert!(ok, "{err}");
    }
    // --list and --describe take the --topic pattern (whole names), as kafka-topics.sh.
    let (_, out, _) = strata_tool("topics", b, &["--list", "--topic", "orders-.*"]);
    assert_eq!(out, "orders-eu\norders-us\n");
    let (_, out, _) = strata_tool("topics", b, &["--list", "--topic", "orders"]);
    assert_eq!(out, "", "a pattern matches whole names");
    let (ok, _, err) = strata_tool("topics", b, &["--describe", "--topic", "nothing.*"]);
    assert!(
        !ok && err.contains("Topic 'nothing.*' does not exist as expected"),
        "{err}"
    );
    // --alter --config without --partitions, on every matching topic.
    let (ok, out, err) = strata_tool(
        "topics",
        b,
        &[
            "--alter",
            "--topic",
            "orders-.*",
            "--config",
            "retention.ms=5000",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "Updated config for topic orders-eu.\nUpdated config for topic orders-us.\n"
    );
    let (_, out, _) = strata_tool("topics", b, &["--describe", "--topic", "orders-us"]);
    assert!(
        out.lines()
            .next()
            .unwrap()
            .ends_with("Configs: retention.ms=5000"),
        "{out}"
    );
    let (_, out, _) = strata_tool("topics", b, &["--describe", "--topic", "audit"]);
    assert!(out.lines().next().unwrap().ends_with("Configs: "), "{out}");
    // strata configs: the topic's own configs, then all of them with their sources.
    let (ok, out, err) = strata_tool("configs", b, &["--describe", "--topic", "orders-eu"]);
    assert!(ok, "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "Dynamic configs for topic orders-eu are:",
            "  retention.ms=5000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=5000, \
             DEFAULT_CONFIG:log.retention.ms=604800000}"
        ],
        "{out}"
    );
    let (ok, out, err) = strata_tool(
        "configs",
        b,
        &[
            "--describe",
            "--all",
            "--entity-type",
            "topics",
            "--entity-name",
            "orders-eu",
        ],
    );
    assert!(ok, "{err}");
    assert!(
        out.starts_with("All configs for topic orders-eu are:\n"),
        "{out}"
    );
    assert!(out.contains("  retention.ms=5000 sensitive=false"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("  segment.bytes=1073741824 ") && l.contains("DEFAULT_CONFIG")),
        "defaults are shown with their source: {out}"
    );
    // Removing the config brings the default back.
    let (ok, _, err) = strata_tool(
        "topics",
        b,
        &[
            "--alter",
            "--topic",
            "orders-eu",
            "--delete-config",
            "retention.ms",
        ],
    );
    assert!(ok, "{err}");
    let (ok, out, err) = strata_tool(
        "configs",
        b,
        &[
            "--alter",
            "--topic",
            "orders-us",
            "--add-config",
            "retention.ms=7000,segment.ms=60000",
        ],
    );
    assert!(
        ok && out == "Completed updating config for topic orders-us.\n",
        "{out}{err}"
    );
    let (_, out, _) = strata_tool("configs", b, &["--describe", "--topic", "orders-eu"]);
    assert_eq!(out, "Dynamic configs for topic orders-eu are:\n");
    let (_, out, _) = strata_tool("topics", b, &["--describe", "--topic", "orders-us"]);
    assert!(
        out.lines()
            .next()
            .unwrap()
            .ends_with("Configs: retention.ms=7000,segment.ms=60000"),
        "{out}"
    );
    // A bad value is refused with Kafka's error, and --delete takes the pattern.
    let (ok, _, err) = strata_tool(
        "configs",
        b,
        &[
            "--alter",
            "--topic",
            "audit",
            "--add-config",
            "cleanup.policy=nonsense",
        ],
    );
    assert!(!ok && err.contains("InvalidConfig"), "{err}");
    let (ok, _, err) = strata_tool("topics", b, &["--delete", "--topic", "orders-.*"]);
    assert!(ok, "{err}");
    let (_, out, _) = strata_tool("topics", b, &["--list", "--exclude-internal"]);
    assert_eq!(out, "audit\n");
}
