//! A cluster whose nodes have one role each, as Kafka's isolated mode: controller-only nodes
//! keep the metadata quorum and serve no clients, broker-only nodes are no voters but observe
//! the metadata log (fetching it from the active controller) and hold replicas.

mod cluster_support;
mod common;

use std::time::Duration;

use cluster_support::*;
use common::*;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::producer::FutureRecord;

fn create(rt: &tokio::runtime::Runtime, via: &str, name: &str, partitions: i32, rf: i32) {
    let admin: AdminClient<_> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", via)
        .create()
        .unwrap();
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(rf));
    let created = rt
        .block_on(admin.create_topics(&[topic], &AdminOptions::new()))
        .unwrap();
    assert!(created[0].is_ok(), "{name}: {created:?}");
}

/// `strata metadata-quorum describe --replication` through `addr`: (node id, role) per row.
fn replication_roles(addr: &str) -> Vec<(i32, String)> {
    let (ok, out, _) = strata_tool("metadata-quorum", addr, &["describe", "--replication"]);
    if !ok {
        return Vec::new();
    }
    let mut rows: Vec<(i32, String)> = out
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            let id = fields.next()?.parse().ok()?;
            Some((id, fields.last()?.to_string()))
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn broker_only_and_controller_only_nodes_form_one_cluster() {
    // Nodes 1 and 2 are brokers and voters, 3 a controller only, 4 a broker only.
    let mut cluster = Cluster::start_roles(&[
        "broker,controller",
        "broker,controller",
        "controller",
        "broker",
    ]);
    let rt = runtime();
    // The broker-only node knows the quorum (its DescribeQuorum goes to the controller).
    let status = cluster.wait_for_quorum(4, Duration::from_secs(20), |q| q.leader > 0);
    assert_eq!(status.voters, "[1,2,3]");
    // Clients are told of the three brokers, whichever broker they ask; not of the
    // controller-only node.
    for id in [1, 2, 4] {
        let addr = cluster.addr(id);
        assert!(
            eventually(Duration::from_secs(15), || listed(&addr) == vec![1, 2, 4]),
            "node {id} lists {:?}:\n{}",
            listed(&addr),
            cluster.logs()
        );
    }
    // The observer shows in DescribeQuorum, next to the three voters.
    let mut roles = Vec::new();
    assert!(
        eventually(Duration::from_secs(10), || {
            roles = replication_roles(&cluster.addr(4));
            roles.len() == 4 && roles[3] == (4, "Observer".to_string())
        }),
        "{roles:?}"
    );
    for (id, role) in &roles[..3] {
        assert!(role == "Leader" || role == "Follower", "{id}: {role}");
    }

    // A topic created through the broker-only node is placed on the brokers alone.
    create(&rt, &cluster.addr(4), "spread", 3, 3);
    let mut partitions = Vec::new();
    assert!(eventually(Duration::from_secs(15), || {
        partitions = partitions_of(&cluster.addr(4), "spread");
        partitions.len() == 3 && partitions.iter().all(|(leader, _, _)| *leader > 0)
    }));
    for (leader, replicas, _) in &partitions {
        let mut sorted = replicas.clone();
        sorted.sort();
        assert_eq!(sorted, vec![1, 2, 4], "leader {leader}: {partitions:?}");
    }
    wait_for_isr(&cluster, "spread", 3);

    // acks=all through the brokers; read back in full through the broker-only node.
    let producer = producer(&cluster.bootstrap(), &[("acks", "all")]);
    let values: Vec<String> = (0..200).map(|i| format!("value-{i:03}")).collect();
    let sends: Vec<_> = values
        .iter()
        .map(|v| {
            producer.send(
                FutureRecord::<(), _>::to("spread").partition(0).payload(v),
                Duration::from_secs(30),
            )
        })
        .collect();
    for r in rt.block_on(futures::future::join_all(sends)) {
        assert!(r.is_ok(), "{r:?}");
    }
    let read = |addr: &str| -> Vec<String> {
        let consumer = consumer(addr, &[]);
        consume(&consumer, "spread", 0, 0, 200, Duration::from_secs(30))
            .iter()
            .map(|m| String::from_utf8(payload(m)).unwrap())
            .collect()
    };
    assert_eq!(read(&cluster.addr(4)), values);

    // The broker-only node killed: what is decided meanwhile (a new topic, leaders elsewhere)
    // reaches it from the controller when it comes back; it rejoins the ISR.
    cluster.node(4).broker.kill();
    wait_for_isr_without(&cluster, "spread", 2, 4);
    // (Two brokers are left: Kafka refuses a replication factor of three now.)
    create(&rt, &cluster.addr(1), "while-away", 1, 2);
    cluster.node(4).broker.restart();
    assert!(
        eventually(Duration::from_secs(20), || partitions_of(
            &cluster.addr(4),
            "while-away"
        )
        .first()
        .is_some_and(|(leader, _, _)| *leader > 0)),
        "the returning observer does not know the new topic:\n{}",
        cluster.logs()
    );
    wait_for_isr(&cluster, "spread", 3);

    // The controller-only voter killed: the two other voters keep the cluster deciding.
    cluster.node(3).broker.kill();
    create(&rt, &cluster.addr(4), "after-controller", 1, 3);
    assert!(
        eventually(Duration::from_secs(20), || partitions_of(
            &cluster.addr(4),
            "after-controller"
        )
        .first()
        .is_some_and(|(leader, _, _)| *leader > 0)),
        "{}",
        cluster.logs()
    );
    assert_eq!(read(&cluster.addr(2)), values);
}
