//! ACLs as Kafka's StandardAuthorizer applies them: `strata acls` (kafka-acls.sh's flags) adds,
//! lists and removes them; librdkafka clients of two principals (SASL PLAIN) are allowed and
//! refused produce, consume, group and admin operations with Kafka's error codes; Metadata
//! shows each principal only the topics it may describe; DENY wins; ACLs survive a restart;
//! without an authorizer the ACL APIs answer SECURITY_DISABLED.

mod common;
mod security_support;

use std::time::Duration;

use common::*;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use security_support::*;

const USERS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
     user_alice=\"alice-secret\" user_bob=\"bob-secret\";";

fn acls(broker: &BrokerProcess, args: &[&str]) -> String {
    let (ok, out, err) = strata_tool("acls", &broker.addr, args);
    assert!(ok, "strata acls {args:?}: {out}{err}");
    out
}

/// What a produce of one record comes to: Ok, or librdkafka's error code.
fn produce(config: &ClientConfig, topic: &str) -> Result<(), RDKafkaErrorCode> {
    let producer: FutureProducer = config.create().unwrap();
    runtime().block_on(async {
        producer
            .send(
                FutureRecord::<(), _>::to(topic).partition(0).payload("x"),
                Duration::from_secs(10),
            )
            .await
            .map(|_| ())
            .map_err(|(e, _)| e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Unknown))
    })
}

/// What consuming `topic` in `group` comes to: the records read, or the first error.
fn consume(
    config: &ClientConfig,
    topic: &str,
    group: &str,
    want: usize,
) -> Result<usize, RDKafkaErrorCode> {
    let mut config = config.clone();
    config
        .set("group.id", group)
        .set("auto.offset.reset", "earliest");
    let consumer: BaseConsumer = config.create().unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut got = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while got < want && std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                assert_eq!(m.topic(), topic);
                got += 1;
            }
            Some(Err(KafkaError::MessageConsumption(code)))
            | Some(Err(KafkaError::Global(code))) => return Err(code),
            Some(Err(e)) => {
                return Err(e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Unknown))
            }
            None => {}
        }
    }
    Ok(got)
}

fn topics_seen(config: &ClientConfig) -> Vec<String> {
    let consumer: BaseConsumer = config.create().unwrap();
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    let mut names: Vec<String> = metadata
        .topics()
        .iter()
        .map(|t| t.name().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn acls_allow_and_deny_two_principals() {
    let port = free_port();
    let mut broker = start_with(&[
        format!("listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:{port}"),
        format!("listener.name.sasl_plaintext.plain.sasl.jaas.config={USERS}"),
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer".into(),
        // The tests' tools use the plaintext listener: its principal is the super user here.
        "super.users=User:ANONYMOUS".into(),
        "auto.create.topics.enable=false".into(),
    ]);
    let rt = runtime();
    for t in ["orders", "payments", "secret"] {
        create_topic(&rt, &broker.addr, t, 1, &[]);
    }
    let addr = format!("127.0.0.1:{port}");
    let alice = sasl_client(&addr, "sasl_plaintext", "alice", "alice-secret");
    let bob = sasl_client(&addr, "sasl_plaintext", "bob", "bob-secret");

    // Nothing is allowed before any ACL (allow.everyone.if.no.acl.found=false).
    assert_eq!(
        produce(&alice, "orders"),
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    assert!(topics_seen(&alice).is_empty());

    let out = acls(
        &broker,
        &[
            "--add",
            "--allow-principal",
            "User:alice",
            "--producer",
            "--topic",
            "orders",
        ],
    );
    assert!(out.contains("Adding ACLs for resource `ResourcePattern(resourceType=TOPIC, name=orders, patternType=LITERAL)`"), "{out}");
    assert!(
        out.contains("(principal=User:alice, host=*, operation=WRITE, permissionType=ALLOW)"),
        "{out}"
    );
    acls(
        &broker,
        &[
            "--add",
            "--allow-principal",
            "User:alice",
            "--consumer",
            "--topic",
            "orders",
            "--group",
            "alice-group",
        ],
    );
    acls(
        &broker,
        &[
            "--add",
            "--allow-principal",
            "User:bob",
            "--operation",
            "Read",
            "--operation",
            "Describe",
            "--topic",
            "pay",
            "--resource-pattern-type",
            "prefixed",
        ],
    );
    acls(
        &broker,
        &[
            "--add",
            "--allow-principal",
            "User:bob",
            "--operation",
            "Read",
            "--group",
            "bob-group",
        ],
    );

    // alice writes and reads orders in her group; payments is not hers.
    for _ in 0..3 {
        produce(&alice, "orders").unwrap();
    }
    assert_eq!(consume(&alice, "orders", "alice-group", 3), Ok(3));
    assert_eq!(
        produce(&alice, "payments"),
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    assert_eq!(
        consume(&alice, "orders", "another-group", 1),
        Err(RDKafkaErrorCode::GroupAuthorizationFailed)
    );
    // bob reads what the prefix gives him, in his group, and writes nothing.
    produce(&broker_client(&broker), "payments").unwrap();
    assert_eq!(consume(&bob, "payments", "bob-group", 1), Ok(1));
    assert_eq!(
        produce(&bob, "payments"),
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    assert_eq!(
        produce(&bob, "orders"),
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    // Metadata shows each only what it may describe.
    assert_eq!(topics_seen(&alice), ["orders"]);
    assert_eq!(topics_seen(&bob), ["payments"]);

    // Admin operations: creating a topic needs CREATE.
    let admin: AdminClient<DefaultClientContext> = alice.create().unwrap();
    let created = rt.block_on(admin.create_topics(
        &[NewTopic::new("alices-own", 1, TopicReplication::Fixed(1))],
        &AdminOptions::new(),
    ));
    assert_eq!(
        created.unwrap()[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::TopicAuthorizationFailed
    );
    acls(
        &broker,
        &[
            "--add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Create",
            "--cluster",
        ],
    );
    let created = rt.block_on(admin.create_topics(
        &[NewTopic::new("alices-own", 1, TopicReplication::Fixed(1))],
        &AdminOptions::new(),
    ));
    assert!(created.unwrap()[0].is_ok());

    // DENY wins over ALLOW.
    acls(
        &broker,
        &[
            "--add",
            "--deny-principal",
            "User:alice",
            "--operation",
            "Read",
            "--topic",
            "orders",
        ],
    );
    assert_eq!(
        consume(&alice, "orders", "alice-group", 1),
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );

    let listed = acls(&broker, &["--list", "--topic", "orders"]);
    assert!(listed.contains("Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=orders, patternType=LITERAL)`"), "{listed}");
    assert!(
        listed.contains("(principal=User:alice, host=*, operation=READ, permissionType=DENY)"),
        "{listed}"
    );
    let all = acls(&broker, &["--list"]);
    assert!(all.contains("name=pay, patternType=PREFIXED"), "{all}");
    assert!(
        all.contains("resourceType=CLUSTER, name=kafka-cluster"),
        "{all}"
    );

    // ACLs are durable.
    broker.stop();
    broker.restart();
    assert_eq!(all, acls(&broker, &["--list"]));
    assert_eq!(
        consume(&alice, "orders", "alice-group", 1),
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    let removed = acls(
        &broker,
        &[
            "--remove",
            "--deny-principal",
            "User:alice",
            "--operation",
            "Read",
            "--topic",
            "orders",
            "--force",
        ],
    );
    assert!(
        removed.contains("operation=READ, permissionType=DENY"),
        "{removed}"
    );
    produce(&alice, "orders").unwrap();
    assert_eq!(consume(&alice, "orders", "alice-group", 1), Ok(1));
    acls(
        &broker,
        &[
            "--remove",
            "--topic",
            "pay",
            "--resource-pattern-type",
            "prefixed",
            "--force",
        ],
    );
    assert!(topics_seen(&bob).is_empty());
}

/// A plaintext client of the broker's first listener.
fn broker_client(broker: &BrokerProcess) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &broker.addr)
        .set("message.timeout.ms", "10000");
    c
}

#[test]
fn acl_apis_without_an_authorizer_are_security_disabled() {
    let broker = BrokerProcess::start(&[]);
    let (ok, out, err) = strata_tool("acls", &broker.addr, &["--list"]);
    assert!(!ok && err.contains("SecurityDisabled"), "{out}{err}");
    let (ok, out, err) = strata_tool(
        "acls",
        &broker.addr,
        &["--add", "--allow-principal", "User:a", "--topic", "t"],
    );
    assert!(!ok && err.contains("SecurityDisabled"), "{out}{err}");
}

/// A fetch that claims a replica id is a follower's: it needs CLUSTER_ACTION on the cluster
/// (and is then not a consumer's for quotas); refused, every partition answers
/// TOPIC_AUTHORIZATION_FAILED while the same principal's consumer fetch is served.
#[test]
fn a_follower_fetch_needs_cluster_action() {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::Decodable;
    let broker = BrokerProcess::start(&[
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found=true",
    ]);
    create_topic(&runtime(), &broker.addr, "t", 1, &[]);
    // (Once the cluster has ACLs, the tools' own ALTER and DESCRIBE need one.)
    acls(
        &broker,
        &[
            "--add",
            "--allow-principal",
            "User:ANONYMOUS",
            "--operation",
            "Alter",
            "--operation",
            "Describe",
            "--cluster",
        ],
    );
    acls(
        &broker,
        &[
            "--add",
            "--deny-principal",
            "User:ANONYMOUS",
            "--operation",
            "ClusterAction",
            "--cluster",
        ],
    );
    let fetch = |replica: i32| {
        let mut s = std::net::TcpStream::connect(&broker.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(replica))
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName("t".into()))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20)])]);
        let mut r = security_support::call(&mut s, &req, 12).unwrap();
        kafka_protocol::messages::ResponseHeader::decode(&mut r, 1).unwrap();
        FetchResponse::decode(&mut r, 12).unwrap().responses[0].partitions[0].error_code
    };
    assert_eq!(fetch(-1), 0, "a consumer fetch");
    assert_eq!(fetch(1), 29, "a follower fetch without CLUSTER_ACTION");
}
