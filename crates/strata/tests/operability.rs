//! What operators run the broker with: `strata server --check-config` validates a configuration
//! and exits without touching anything; `log.format=json` makes every log line a JSON object.

mod common;

use common::*;

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
    let broker = BrokerProcess::start(&["log.format=json"]);
    let rt = runtime();
    create_topic(&rt, &broker.addr, "logged", 1, &[]);
    let log = broker.log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 3, "{log}");
    let mut started = false;
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["timestamp"].is_string() && v["level"].is_string(),
            "{line}"
        );
        assert!(v["fields"]["message"].is_string(), "{line}");
        started |= v["fields"]["message"] == "Strata broker started";
    }
    assert!(started, "{log}");
}
