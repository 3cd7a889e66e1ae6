//! Brokers of a cluster talk to each other over their inter-broker listener with its security,
//! as Kafka's do: here SASL_SSL (TLS checked against the truststore and the advertised host,
//! SASL PLAIN with the broker's own user). A broker with the wrong inter-broker password cannot
//! follow, and says so.

mod cluster_support;
mod common;
mod security_support;

use std::time::Duration;

use cluster_support::*;
use common::*;
use rdkafka::producer::FutureRecord;
use security_support::make_certificates;

fn jaas(password: &str) -> String {
    format!(
        "org.apache.kafka.common.security.plain.PlainLoginModule required \
         username=\"broker\" password=\"{password}\" user_broker=\"broker-secret\";"
    )
}

fn create(cluster: &Cluster, topic: &str, assignment: &str) {
    let (ok, out, err) = strata_tool(
        "topics",
        &cluster.addr(1),
        &[
            "--create",
            "--topic",
            topic,
            "--replica-assignment",
            assignment,
        ],
    );
    assert!(ok, "{out}{err}");
}

#[test]
fn brokers_replicate_over_a_sasl_ssl_inter_broker_listener() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certificates(dir.path());
    let cluster = Cluster::start_each(3, |id, _| {
        vec![
            // Clients (and the tests' tools) on PLAINTEXT; brokers among themselves on INTERNAL.
            "listeners=PLAINTEXT://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal_port},CONTROLLER://127.0.0.1:{controller_port}".to_string(),
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,INTERNAL:SASL_SSL,CONTROLLER:PLAINTEXT".to_string(),
            "inter.broker.listener.name=INTERNAL".to_string(),
            "sasl.mechanism.inter.broker.protocol=PLAIN".to_string(),
            "listener.name.internal.sasl.enabled.mechanisms=PLAIN".to_string(),
            // Node 3 signs in to the others with a wrong password.
            format!(
                "listener.name.internal.plain.sasl.jaas.config={}",
                jaas(if id == 3 { "wrong" } else { "broker-secret" })
            ),
            format!("ssl.keystore.location={}", certs.join("server.pem").display()),
            format!("ssl.truststore.location={}", certs.join("ca.pem").display()),
            "replica.lag.time.max.ms=3000".to_string(),
        ]
    });
    all_registered(&cluster);
    let rt = runtime();

    // Led by node 3: nodes 1 and 2 follow it over TLS with SASL, and an acks=all write with
    // min.insync.replicas=3 is acknowledged only once both have it.
    create(&cluster, "led-by-3", "3:1:2");
    let (leader, _, isr) = wait_for_isr(&cluster, "led-by-3", 3);
    assert_eq!(leader, 3);
    assert_eq!(isr.len(), 3);
    let (ok, out, err) = strata_tool(
        "configs",
        &cluster.addr(1),
        &[
            "--alter",
            "--entity-type",
            "topics",
            "--entity-name",
            "led-by-3",
            "--add-config",
            "min.insync.replicas=3",
        ],
    );
    assert!(ok, "{out}{err}");
    let producer = producer(&cluster.bootstrap(), &[("acks", "all")]);
    let values: Vec<String> = (0..50).map(|i| format!("secure-{i:02}")).collect();
    for v in &values {
        let sent = rt.block_on(
            producer.send(
                FutureRecord::<(), _>::to("led-by-3")
                    .partition(0)
                    .payload(v),
                Duration::from_secs(30),
            ),
        );
        assert!(sent.is_ok(), "{sent:?}\n{}", cluster.logs());
    }

    // Led by node 1: node 2 follows; node 3 is refused and leaves the ISR.
    create(&cluster, "led-by-1", "1:2:3");
    let (leader, _, isr) = wait_for_isr_without(&cluster, "led-by-1", 2, 3);
    assert_eq!(leader, 1);
    assert_eq!(isr, vec![1, 2]);
    let log = cluster.nodes[2].broker.log();
    assert!(
        log.contains("cannot reach the leader") && log.contains("SASL authentication failed"),
        "{log}"
    );
    // The password never reaches a log line.
    assert!(!cluster.logs().contains("broker-secret"));
}
