//! SASL SCRAM-SHA-256 and SCRAM-SHA-512: credentials made with `strata configs --entity-type
//! users` (AlterUserScramCredentials), kept across restarts as salted keys only, used by
//! librdkafka and kafkajs over SASL_SSL; wrong passwords, unknown users and deleted credentials
//! are refused.

mod common;
mod security_support;

use std::time::Duration;

use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use security_support::*;

fn scram_client(
    addr: &str,
    ca: &std::path::Path,
    mechanism: &str,
    user: &str,
    password: &str,
) -> ClientConfig {
    let mut c = sasl_client(addr, "sasl_ssl", user, password);
    c.set("sasl.mechanism", mechanism)
        .set("ssl.ca.location", ca.to_str().unwrap());
    c
}

/// Whether one record gets through with these settings.
fn can_produce(config: &ClientConfig, topic: &str) -> bool {
    let mut config = config.clone();
    config.set("message.timeout.ms", "3000");
    let producer: FutureProducer = config.create().unwrap();
    runtime()
        .block_on(async {
            producer
                .send(
                    FutureRecord::<(), _>::to(topic).partition(0).payload("x"),
                    Duration::from_secs(5),
                )
                .await
        })
        .is_ok()
}

#[test]
fn scram_credentials_from_the_tool_authenticate_librdkafka_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certificates(dir.path());
    let ca = certs.join("ca.pem");
    let (mut broker, addr) = sasl_ssl_broker(
        &certs,
        &[
            "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512",
            "connection.failed.authentication.delay.ms=50",
        ],
    );
    let rt = runtime();
    create_topic(&rt, &broker.addr, "scrammed", 1, &[]);
    let users = ["--entity-type", "users", "--entity-name", "alice"];
    let alter = |broker: &BrokerProcess, config: &[&str]| {
        let mut args = vec!["--alter"];
        args.extend_from_slice(config);
        args.extend_from_slice(&users);
        strata_tool("configs", &broker.addr, &args)
    };
    let (ok, out, err) = alter(
        &broker,
        &[
            "--add-config",
            "SCRAM-SHA-256=[iterations=8192,password=alice-secret],SCRAM-SHA-512=[password=alice-secret]",
        ],
    );
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("Completed updating config for user alice."),
        "{out}"
    );
    let describe = |broker: &BrokerProcess| {
        let mut args = vec!["--describe"];
        args.extend_from_slice(&users);
        let (ok, out, err) = strata_tool("configs", &broker.addr, &args);
        assert!(ok, "{out}{err}");
        out
    };
    assert_eq!(
        describe(&broker).trim(),
        "SCRAM credential configs for user-principal 'alice' are SCRAM-SHA-256=iterations=8192, SCRAM-SHA-512=iterations=4096"
    );
    // Too few iterations: Kafka's UNACCEPTABLE_CREDENTIAL.
    let (ok, out, err) = alter(
        &broker,
        &["--add-config", "SCRAM-SHA-256=[iterations=100,password=x]"],
    );
    assert!(!ok && err.contains("Too few iterations"), "{out}{err}");

    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let got = produce_and_read(
            &scram_client(&addr, &ca, mechanism, "alice", "alice-secret"),
            "scrammed",
            5,
        );
        assert_eq!(got.len(), 5, "{mechanism}");
    }
    assert!(!can_produce(
        &scram_client(&addr, &ca, "SCRAM-SHA-512", "alice", "wrong"),
        "scrammed"
    ));
    assert!(!can_produce(
        &scram_client(&addr, &ca, "SCRAM-SHA-512", "mallory", "alice-secret"),
        "scrammed"
    ));
    // PLAIN is not enabled on this listener.
    let mut plain = scram_client(&addr, &ca, "SCRAM-SHA-512", "alice", "alice-secret");
    plain.set("sasl.mechanism", "PLAIN");
    assert!(!can_produce(&plain, "scrammed"));

    // The store keeps salted keys: no password in it, nor in the log; it survives a restart.
    let store = std::fs::read(broker.data_dir().join("security.metadata")).unwrap();
    assert!(!store.windows(12).any(|w| w == b"alice-secret"));
    broker.stop();
    broker.restart();
    assert!(can_produce(
        &scram_client(&addr, &ca, "SCRAM-SHA-512", "alice", "alice-secret"),
        "scrammed"
    ));

    // A deleted credential no longer authenticates; the other one still does.
    let (ok, out, err) = alter(&broker, &["--delete-config", "SCRAM-SHA-256"]);
    assert!(ok, "{out}{err}");
    assert_eq!(
        describe(&broker).trim(),
        "SCRAM credential configs for user-principal 'alice' are SCRAM-SHA-512=iterations=4096"
    );
    assert!(!can_produce(
        &scram_client(&addr, &ca, "SCRAM-SHA-256", "alice", "alice-secret"),
        "scrammed"
    ));
    assert!(can_produce(
        &scram_client(&addr, &ca, "SCRAM-SHA-512", "alice", "alice-secret"),
        "scrammed"
    ));

    // The tools connect as a SCRAM user over TLS with --command-config (Kafka's client keys).
    let command_config = |password: &str| {
        let path = dir.path().join(format!("client-{password}.properties"));
        std::fs::write(
            &path,
            format!(
                "security.protocol=SASL_SSL\nssl.truststore.location={}\nsasl.mechanism=SCRAM-SHA-512\n\
                 sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"alice\" password=\"{password}\";\n",
                ca.display()
            ),
        )
        .unwrap();
        path
    };
    let good = command_config("alice-secret");
    let (ok, out, err) = strata_tool(
        "topics",
        &addr,
        &["--command-config", good.to_str().unwrap(), "--list"],
    );
    assert!(ok && out.lines().any(|l| l == "scrammed"), "{out}{err}");
    let bad = command_config("not-alices");
    let (ok, out, err) = strata_tool(
        "topics",
        &addr,
        &["--command-config", bad.to_str().unwrap(), "--list"],
    );
    assert!(
        !ok && err.contains("SASL authentication failed"),
        "{out}{err}"
    );

    let log = broker.log();
    assert!(log.contains("SASL authentication failed"), "{log}");
    assert!(!log.contains("alice-secret"), "a password in the log");
}

/// kafkajs (pure JavaScript) with SCRAM-SHA-512 over TLS.
#[test]
fn kafkajs_uses_scram_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certificates(dir.path());
    let (broker, addr) = sasl_ssl_broker(&certs, &["sasl.enabled.mechanisms=SCRAM-SHA-512"]);
    let (ok, out, err) = strata_tool(
        "configs",
        &broker.addr,
        &[
            "--alter",
            "--entity-type",
            "users",
            "--entity-name",
            "bob",
            "--add-config",
            "SCRAM-SHA-512=[iterations=4096,password=bob-secret]",
        ],
    );
    assert!(ok, "{out}{err}");
    let node_path = node_modules();
    let script = format!("{}/tests/js/scram.js", env!("CARGO_MANIFEST_DIR"));
    let mut command = std::process::Command::new("node");
    command
        .arg(script)
        .arg(&addr)
        .arg(certs.join("ca.pem"))
        .env("NODE_PATH", &node_path)
        .env("KAFKAJS_NO_PARTITIONER_WARNING", "1");
    assert_script_ok(command, "scram.js (kafkajs)", &broker);
}
