//! What operators run the broker with: `strata server --check-config` validates a configuration
//! and exits without touching anything; `log.format=json` makes every log line a JSON object.

mod common;

use common::*;
use rdkafka::consumer::Consumer;

#[test]
fn check_config_validates_and_exits_without_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("never-created");
    let data_setting = format!("log.dirs={}", data.display());
    let check = |extra: &[&str]| {
        let mut args = vec!["server", "--check-config", "--override", &data_setting];
        for e in extra {
            args.extend(["--override", e]);
        }
        strata_cli(&args)
    };

    let (ok, out, err) = check(&[]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(": valid (a broker alone, 1 listener)"),
        "{out}"
    );

    // A bad value, a misspelt key's value, an unreadable TLS key: exit 1 with the reason.
    let (ok, _, err) = check(&["log.format=xml"]);
    assert!(
        !ok && err.contains("log.format") && err.contains("Expected text or json"),
        "{err}"
    );
    let (ok, _, err) = check(&["num.partitions=0"]);
    assert!(!ok && err.contains("num.partitions"), "{err}");
    let missing = dir.path().join("missing.pem");
    let keystore = format!("ssl.keystore.location={}", missing.display());
    let (ok, _, err) = check(&["listeners=SSL://127.0.0.1:9093", &keystore]);
    assert!(
        !ok && err.contains("listener SSL") && err.contains("missing.pem"),
        "{err}"
    );
    // A node of a cluster is checked as one: a broker-only node binding a controller listener.
    let (ok, _, err) = check(&[
        "process.roles=broker",
        "node.id=4",
        "controller.quorum.voters=1@127.0.0.1:9093",
        "controller.listener.names=CONTROLLER",
        "listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
    ]);
    assert!(!ok && err.contains("process.roles=broker"), "{err}");

    // Nothing was created: no data directory, no lock, no formatting.
    assert!(!data.exists());
}

#[test]
fn json_logs_are_one_object_a_line() {
    let broker = BrokerProcess::start(&["log.format=json", "no.such.key=1"]);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "logged", 1, &[]);
    let log = broker.log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 3, "{log}");
    let (mut started, mut warned) = (false, false);
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["timestamp"].is_string() && v["level"].is_string(),
            "{line}"
        );
        assert!(v["fields"]["message"].is_string(), "{line}");
        started |= v["fields"]["message"] == "Strata broker started";
        // What reading the config warns of is logged as JSON too.
        warned |= v["level"] == "WARN"
            && v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("unknown configuration key no.such.key"));
    }
    assert!(started && warned, "{log}");
}

#[test]
fn log_dirs_describes_partitions_and_delete_records_moves_their_start() {
    let broker = BrokerProcess::start(&[]);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "kept", 2, &[]);
    create_topic(&rt, &broker.addr, "other", 1, &[]);
    let producer = producer(&broker.addr, &[]);
    let records: Vec<KeyValue> = (0..100)
        .map(|i| (None, Some(format!("value-{i:03}").into_bytes())))
        .collect();
    produce(&rt, &producer, "kept", 0, &records);

    // kafka-log-dirs.sh's lines and JSON, for the topics asked for.
    let (ok, out, err) = strata_tool(
        "log-dirs",
        &broker.addr,
        &["--describe", "--topic-list", "kept"],
    );
    assert!(ok, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "Querying brokers for log directories information");
    assert_eq!(
        lines[1],
        "Received log directory information from brokers 0"
    );
    let json: serde_json::Value = serde_json::from_str(lines[2]).unwrap();
    assert_eq!(json["version"], 1);
    let dir = &json["brokers"][0]["logDirs"][0];
    assert_eq!(json["brokers"][0]["broker"], 0);
    assert_eq!(dir["error"], serde_json::Value::Null);
    assert_eq!(
        std::fs::canonicalize(dir["logDir"].as_str().unwrap()).unwrap(),
        std::fs::canonicalize(broker.data_dir()).unwrap()
    );
    let partitions = dir["partitions"].as_array().unwrap();
    let names: Vec<&str> = partitions
        .iter()
        .map(|p| p["partition"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["kept-0", "kept-1"], "{out}");
    assert!(partitions[0]["size"].as_i64().unwrap() > 100 * 9);
    assert_eq!(partitions[1]["size"], 0);
    assert_eq!(partitions[0]["isFuture"], false);

    // kafka-delete-records.sh: kept-0's records below 40 go; its log now starts there.
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("offsets.json");
    std::fs::write(
        &plan,
        r#"{"partitions":[{"topic":"kept","partition":0,"offset":40}],"version":1}"#,
    )
    .unwrap();
    let (ok, out, err) = strata_tool(
        "delete-records",
        &broker.addr,
        &["--offset-json-file", plan.to_str().unwrap()],
    );
    assert!(ok, "{out}{err}");
    assert_eq!(
        out,
        "Executing records delete operation\nRecords delete operation completed:\n\
         partition: kept-0\tlow_watermark: 40\n"
    );
    let consumer = consumer(&broker.addr, &[]);
    let (low, high) = consumer
        .fetch_watermarks("kept", 0, std::time::Duration::from_secs(5))
        .unwrap();
    assert_eq!((low, high), (40, 100));

    // Past the high watermark, or a partition that does not exist: the error, and exit 1.
    std::fs::write(
        &plan,
        r#"{"partitions":[{"topic":"kept","partition":0,"offset":500},{"topic":"kept","partition":7,"offset":0}],"version":1}"#,
    )
    .unwrap();
    let (ok, out, _) = strata_tool(
        "delete-records",
        &broker.addr,
        &["--offset-json-file", plan.to_str().unwrap()],
    );
    assert!(!ok);
    assert!(
        out.contains("partition: kept-0\terror: OffsetOutOfRange\n")
            && out.contains("partition: kept-7\terror: UnknownTopicOrPartition\n"),
        "{out}"
    );
}

/// `strata <args>` with `input` on its stdin: (success, stdout, stderr).
fn strata_with_stdin(args: &[&str], input: &str) -> (bool, String, String) {
    let out = output_with_stdin(env!("CARGO_BIN_EXE_strata"), args, input);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn console_producer_and_consumer_carry_keys_headers_and_offsets() {
    let broker = BrokerProcess::start(&[]);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "lines", 1, &[]);
    // Headers, then the key, then the value, as kafka-console-producer.sh parses them.
    let (ok, out, err) = strata_with_stdin(
        &[
            "console-producer",
            "--bootstrap-server",
            &broker.addr,
            "--topic",
            "lines",
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=:",
            "--property",
            "parse.headers=true",
            "--property",
            "headers.delimiter=|",
        ],
        "app:web,trace|k1:first\n|k2:second\nregion:eu|k3:third\n",
    );
    assert!(ok, "{out}{err}");

    let consume = |extra: &[&str]| {
        let mut args = vec![
            "console-consumer",
            "--bootstrap-server",
            &broker.addr,
            "--topic",
            "lines",
        ];
        args.extend_from_slice(extra);
        strata_cli(&args)
    };
    let (ok, out, err) = consume(&[
        "--from-beginning",
        "--max-messages",
        "3",
        "--property",
        "print.key=true",
        "--property",
        "print.headers=true",
        "--property",
        "print.partition=true",
        "--property",
        "print.offset=true",
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "Partition:0\tOffset:0\tapp:web,trace:null\tk1\tfirst\n\
         Partition:0\tOffset:1\tNO_HEADERS\tk2\tsecond\n\
         Partition:0\tOffset:2\tregion:eu\tk3\tthird\n"
    );
    assert!(err.contains("Processed a total of 3 messages"), "{err}");

    // One partition from an offset, values only.
    let (ok, out, _) = consume(&["--partition", "0", "--offset", "1", "--max-messages", "2"]);
    assert!(ok);
    assert_eq!(out, "second\nthird\n");

    // A group commits what it read: the next run of the group reads nothing until more comes.
    let (ok, out, _) = consume(&[
        "--group",
        "readers",
        "--from-beginning",
        "--max-messages",
        "3",
    ]);
    assert!(ok);
    assert_eq!(out.lines().count(), 3);
    let (ok, out, _) = consume(&[
        "--group",
        "readers",
        "--from-beginning",
        "--timeout-ms",
        "3000",
    ]);
    assert!(ok);
    assert_eq!(out, "");
}
