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

/// Whether one record to partition 0 of `topic` gets through with these settings.
fn can_produce(config: &rdkafka::ClientConfig, topic: &str) -> bool {
    let mut config = config.clone();
    config.set("message.timeout.ms", "4000");
    let producer: rdkafka::producer::FutureProducer = config.create().unwrap();
    runtime()
        .block_on(producer.send(
            FutureRecord::<(), _>::to(topic).partition(0).payload("x"),
            Duration::from_secs(5),
        ))
        .is_ok()
}

/// Each node's CLIENT listener.
fn client_addrs(cluster: &Cluster) -> Vec<String> {
    cluster
        .nodes
        .iter()
        .map(|node| {
            let config = std::fs::read_to_string(&node.config).unwrap();
            let listeners = config
                .lines()
                .rfind(|l| l.starts_with("listeners="))
                .unwrap()
                .to_string();
            let client = listeners
                .split(',')
                .find(|l| l.starts_with("CLIENT://"))
                .unwrap();
            format!("127.0.0.1:{}", client.rsplit(':').next().unwrap())
        })
        .collect()
}

/// `storage format --add-scram`: a SCRAM user the cluster starts with authenticates on every
/// broker without being created; the metadata log takes it once, so a user deleted later
/// stays deleted when another controller takes over; no password is stored.
#[test]
fn scram_users_given_at_format_authenticate_on_every_broker_once() {
    let mut cluster = Cluster::start_each_formatted(
        3,
        |_, _| {
            vec![
                "listeners=PLAINTEXT://127.0.0.1:{port},CLIENT://127.0.0.1:{internal_port},CONTROLLER://127.0.0.1:{controller_port}".to_string(),
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CLIENT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT".to_string(),
                "inter.broker.listener.name=PLAINTEXT".to_string(),
                "listener.name.client.sasl.enabled.mechanisms=SCRAM-SHA-256".to_string(),
                "connection.failed.authentication.delay.ms=50".to_string(),
            ]
        },
        &[
            "--add-scram",
            "SCRAM-SHA-256=[name=alice,password=alice-secret]",
        ],
    );
    all_registered(&cluster);
    let client_addrs = client_addrs(&cluster);
    create(&cluster, "boot", "1:2:3");
    wait_for_isr(&cluster, "boot", 3);
    let as_alice = |id: i32, password: &str| {
        let mut c = security_support::sasl_client(
            &client_addrs[id as usize - 1],
            "SASL_PLAINTEXT",
            "alice",
            password,
        );
        c.set("sasl.mechanism", "SCRAM-SHA-256");
        c
    };
    for id in 1..=3 {
        assert!(
            eventually(Duration::from_secs(10), || can_produce(
                &as_alice(id, "alice-secret"),
                "boot"
            )),
            "node {id}:\n{}",
            cluster.logs()
        );
        assert!(!can_produce(&as_alice(id, "wrong"), "boot"), "node {id}");
    }
    let (ok, out, err) = strata_tool(
        "configs",
        &cluster.addr(2),
        &[
            "--describe",
            "--entity-type",
            "users",
            "--entity-name",
            "alice",
        ],
    );
    assert!(
        ok && out.contains("SCRAM-SHA-256=iterations=4096"),
        "{out}{err}"
    );
    for node in &cluster.nodes {
        // (A node's log dir is also its metadata log dir here.)
        let file = std::fs::read_to_string(node.data.join("bootstrap-security.json"))
            .expect("the bootstrap records");
        assert!(!file.contains("alice-secret"), "node {}", node.id);
    }

    // Deleted, then the active controller killed: the next one does not bring her back.
    let (ok, out, err) = strata_tool(
        "configs",
        &cluster.addr(1),
        &[
            "--alter",
            "--entity-type",
            "users",
            "--entity-name",
            "alice",
            "--delete-config",
            "SCRAM-SHA-256",
        ],
    );
    assert!(ok, "{out}{err}");
    assert!(eventually(Duration::from_secs(10), || !can_produce(
        &as_alice(3, "alice-secret"),
        "boot"
    )));
    let leader = cluster
        .wait_for_quorum(1, Duration::from_secs(10), |q| q.leader > 0)
        .leader;
    cluster.node(leader).broker.kill();
    let survivor = if leader == 1 { 2 } else { 1 };
    cluster.wait_for_quorum(survivor, Duration::from_secs(20), |q| {
        q.leader > 0 && q.leader != leader
    });
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !can_produce(&as_alice(survivor, "alice-secret"), "boot"),
        "{}",
        cluster.logs()
    );
}

/// ACLs, SCRAM credentials and client quotas live in the metadata log: a change made through
/// one broker holds on every broker, also on one restarted since.
#[test]
fn acls_scram_users_and_quotas_made_through_one_broker_hold_on_all() {
    let mut cluster = Cluster::start_each(3, |_, _| {
        vec![
            // The tests' tools on PLAINTEXT (a super user there); applications on CLIENT.
            "listeners=PLAINTEXT://127.0.0.1:{port},CLIENT://127.0.0.1:{internal_port},CONTROLLER://127.0.0.1:{controller_port}".to_string(),
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CLIENT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT".to_string(),
            "inter.broker.listener.name=PLAINTEXT".to_string(),
            "listener.name.client.sasl.enabled.mechanisms=SCRAM-SHA-512".to_string(),
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer".to_string(),
            "super.users=User:ANONYMOUS".to_string(),
            "connection.failed.authentication.delay.ms=50".to_string(),
        ]
    });
    all_registered(&cluster);
    let client_addrs = client_addrs(&cluster);
    let tool_addrs: Vec<String> = (1..=3).map(|id| cluster.addr(id)).collect();
    create(&cluster, "orders", "1:2:3");
    create(&cluster, "other", "2:3:1");
    wait_for_isr(&cluster, "orders", 3);

    // alice's credential through node 1, her ACLs through node 2, her quota through node 3.
    let tool = |via: i32, tool: &str, args: &[&str]| {
        let (ok, out, err) = strata_tool(tool, &tool_addrs[via as usize - 1], args);
        assert!(ok, "{tool} {args:?}: {out}{err}");
        out
    };
    let alice = ["--entity-type", "users", "--entity-name", "alice"];
    let scram = "SCRAM-SHA-512=[iterations=4096,password=alice-secret]";
    tool(
        1,
        "configs",
        &[&["--alter"], &alice[..], &["--add-config", scram]].concat(),
    );
    let producer_acl = [
        "--allow-principal",
        "User:alice",
        "--producer",
        "--topic",
        "orders",
    ];
    tool(2, "acls", &[&["--add"], &producer_acl[..]].concat());
    let quota = "producer_byte_rate=1048576";
    tool(
        3,
        "configs",
        &[&["--alter"], &alice[..], &["--add-config", quota]].concat(),
    );

    // Every broker authenticates her and applies her ACLs: orders yes, other no.
    let as_alice = |id: i32, password: &str| {
        let mut c = security_support::sasl_client(
            &client_addrs[id as usize - 1],
            "SASL_PLAINTEXT",
            "alice",
            password,
        );
        c.set("sasl.mechanism", "SCRAM-SHA-512");
        c
    };
    for id in 1..=3 {
        assert!(
            can_produce(&as_alice(id, "alice-secret"), "orders"),
            "node {id}:\n{}",
            cluster.logs()
        );
        assert!(
            !can_produce(&as_alice(id, "alice-secret"), "other"),
            "node {id}"
        );
        assert!(!can_produce(&as_alice(id, "wrong"), "orders"), "node {id}");
        let described = tool(id, "configs", &[&["--describe"], &alice[..]].concat());
        assert!(
            described.contains("producer_byte_rate=1048576"),
            "node {id}: {described}"
        );
        let acls = tool(id, "acls", &["--list", "--topic", "orders"]);
        assert!(acls.contains("User:alice"), "node {id}: {acls}");
    }

    // A broker restarted keeps them (from its metadata log); a removal through another
    // broker reaches it.
    cluster.node(3).broker.kill();
    cluster.node(3).broker.restart();
    all_registered(&cluster);
    assert!(
        can_produce(&as_alice(3, "alice-secret"), "orders"),
        "{}",
        cluster.logs()
    );
    tool(
        1,
        "acls",
        &[&["--remove", "--force"], &producer_acl[..]].concat(),
    );
    assert!(!can_produce(&as_alice(3, "alice-secret"), "orders"));
    // Nothing of it is in the brokers' own security files: the metadata log holds it.
    for node in &cluster.nodes {
        assert!(
            !node.data.join("security.metadata").exists(),
            "node {}",
            node.id
        );
    }
}
