//! Partition reassignment across three real brokers, through `strata reassign`
//! (kafka-reassign-partitions.sh): replicas move to other brokers and copy the log there before
//! the old ones leave; a reassignment that cannot finish shows in `--list` and `--verify` and
//! can be cancelled.

mod cluster_support;
mod common;

use std::time::Duration;

use cluster_support::*;
use common::*;

/// `strata reassign` against `addr` with `args`: (success, stdout, stderr).
fn reassign(addr: &str, args: &[&str]) -> (bool, String, String) {
    strata_tool("reassign", addr, args)
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// Produces `count` records `"{prefix}{i}"` to partition 0 with acks=all.
fn produce_values(
    rt: &tokio::runtime::Runtime,
    addr: &str,
    topic: &str,
    prefix: &str,
    count: usize,
) {
    let values: Vec<String> = (0..count).map(|i| format!("{prefix}{i}")).collect();
    produce_all(rt, addr, topic, &values);
}

/// Produces `values` to partition 0 with acks=all.
fn produce_all(rt: &tokio::runtime::Runtime, addr: &str, topic: &str, values: &[String]) {
    use rdkafka::producer::FutureRecord;
    let p = producer(addr, &[("acks", "all"), ("message.timeout.ms", "30000")]);
    let sends: Vec<_> = values
        .iter()
        .map(|v| {
            p.send(
                FutureRecord::<(), _>::to(topic).partition(0).payload(v),
                Duration::from_secs(30),
            )
        })
        .collect();
    for r in rt.block_on(futures::future::join_all(sends)) {
        r.expect("delivered");
    }
}

fn read_values(addr: &str, topic: &str, expected: usize) -> Vec<String> {
    let c = consumer(addr, &[]);
    consume(&c, topic, 0, 0, expected, Duration::from_secs(30))
        .iter()
        .map(|m| String::from_utf8(payload(m)).unwrap())
        .collect()
}

#[test]
fn replicas_move_to_other_brokers_with_the_log_and_a_stuck_move_can_be_cancelled() {
    let cluster = three_brokers(&[]);
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let addr = cluster.addr(1);
    // One replica, on broker 1.
    let (ok, out, err) = strata_tool(
        "topics",
        &addr,
        &["--create", "--topic", "moving", "--replica-assignment", "1"],
    );
    assert!(ok, "{out}{err}");
    assert!(eventually(Duration::from_secs(20), || partitions_of(
        &addr, "moving"
    ) == vec![(
        1,
        vec![1],
        vec![1]
    )]));
    produce_values(&rt, &addr, "moving", "a", 300);
    // Each broker hosts its replicas only (as Kafka's): the partition's log is on broker 1.
    let hosts = |cluster: &Cluster| -> Vec<i32> {
        cluster
            .nodes
            .iter()
            .filter(|n| n.data.join("moving-0").exists())
            .map(|n| n.id)
            .collect()
    };
    assert_eq!(hosts(&cluster), vec![1]);

    // --generate proposes the topic over brokers 2 and 3, keeping one replica.
    let topics = write(
        dir.path(),
        "topics.json",
        r#"{"topics":[{"topic":"moving"}],"version":1}"#,
    );
    let (ok, out, err) = reassign(
        &addr,
        &[
            "--generate",
            "--topics-to-move-json-file",
            &topics,
            "--broker-list",
            "2,3",
        ],
    );
    assert!(ok, "{out}{err}");
    assert!(
        out.starts_with("Current partition replica assignment\n"),
        "{out}"
    );
    assert!(
        out.contains(r#"{"version":1,"partitions":[{"topic":"moving","partition":0,"replicas":[1],"log_dirs":["any"]}]}"#),
        "{out}"
    );
    assert!(
        out.contains("Proposed partition reassignment configuration"),
        "{out}"
    );

    // One of brokers 2 and 3 stops (SIGSTOP; not the active controller, which would take an
    // election to replace): a move to both copies to the other but cannot finish.
    let controller = cluster.quorum_status(1).expect("a quorum").leader;
    let stuck = if controller == 3 { 2 } else { 3 };
    let first = 5 - stuck;
    let plan = write(
        dir.path(),
        "plan.json",
        &format!(
            r#"{{"version":1,"partitions":[{{"topic":"moving","partition":0,"replicas":[{first},{stuck}]}}]}}"#
        ),
    );
    let stopped = cluster.node_pid(stuck);
    signal(stopped, "STOP");
    let (ok, out, err) = reassign(&addr, &["--execute", "--reassignment-json-file", &plan]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("Save this to use as the --reassignment-json-file option during rollback")
            && out.contains(r#""replicas":[1]"#)
            && out.ends_with("Successfully started partition reassignment for moving-0\n"),
        "{out}"
    );
    let (ok, out, _) = reassign(&addr, &["--list"]);
    assert!(ok);
    assert_eq!(
        out,
        format!(
            "Current partition reassignments:\nmoving-0: replicas: {first},{stuck},1. adding: {first},{stuck}. removing: 1.\n"
        )
    );
    // kafka-topics.sh's describe shows it too, counting the target's replicas.
    let (ok, out, err) = strata_tool("topics", &addr, &["--describe", "--topic", "moving"]);
    assert!(ok, "{err}");
    assert!(out.contains("\tReplicationFactor: 2\t"), "{out}");
    assert!(
        out.contains(&format!("\tReplicas: {first},{stuck},1\t"))
            && out.contains(&format!(
                "\tAdding Replicas: {first},{stuck}\tRemoving Replicas: 1\n"
            )),
        "{out}"
    );
    let (ok, out, _) = reassign(&addr, &["--verify", "--reassignment-json-file", &plan]);
    assert!(!ok, "--verify fails while a reassignment is in progress");
    assert!(
        out.contains("Reassignment of partition moving-0 is still in progress."),
        "{out}"
    );
    // Cancelled: back to broker 1 alone, with every record.
    let (ok, out, err) = reassign(&addr, &["--cancel", "--reassignment-json-file", &plan]);
    assert!(ok, "{out}{err}");
    assert_eq!(
        out,
        "Successfully cancelled partition reassignments for: moving-0\n"
    );
    assert!(
        eventually(Duration::from_secs(20), || partitions_of(&addr, "moving")
            == vec![(1, vec![1], vec![1])]),
        "{:?}\n{}",
        partitions_of(&addr, "moving"),
        cluster.logs()
    );
    let (_, out, _) = reassign(&addr, &["--list"]);
    assert_eq!(out, "No partition reassignments found.\n");
    signal(stopped, "CONT");

    // Now it finishes: both copy the log, 1 leaves, and the first target replica leads.
    let (ok, out, err) = reassign(&addr, &["--execute", "--reassignment-json-file", &plan]);
    assert!(ok, "{out}{err}");
    let mut last = String::new();
    let done = eventually(Duration::from_secs(60), || {
        let (ok, out, _) = reassign(&addr, &["--verify", "--reassignment-json-file", &plan]);
        last = out;
        ok
    });
    assert!(done, "{last}\n{}", cluster.logs());
    assert_eq!(
        last,
        "Status of partition reassignment:\nReassignment of partition moving-0 is completed.\n\n\
         Clearing broker-level throttles on brokers 1,2,3\n\
         Clearing topic-level throttles on topic moving\n"
    );
    assert!(
        eventually(Duration::from_secs(20), || {
            let p = partitions_of(&addr, "moving");
            p.len() == 1 && p[0].0 == first && p[0].1 == vec![first, stuck] && p[0].2.len() == 2
        }),
        "{:?}",
        partitions_of(&addr, "moving")
    );
    // The new replicas hold every record: with broker 1 gone, consumers read them all from
    // the new leader, and producers go on there.
    let expected: Vec<String> = (0..300).map(|i| format!("a{i}")).collect();
    assert_eq!(read_values(&cluster.addr(first), "moving", 300), expected);
    // Broker 1 removed its copy once it was no longer a replica.
    let mut moved_to = vec![first, stuck];
    moved_to.sort();
    assert!(
        eventually(Duration::from_secs(10), || hosts(&cluster) == moved_to),
        "{:?}",
        hosts(&cluster)
    );
    // Asked for it, broker 1 answers as Kafka does for a partition it does not host.
    let code = rt.block_on(async {
        use kafka_protocol::messages::list_offsets_request::{
            ListOffsetsPartition, ListOffsetsTopic,
        };
        use kafka_protocol::messages::ListOffsetsRequest;
        let mut client = strata::client::Client::connect(&addr).await.unwrap();
        let request = ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
            .with_name(kafka_protocol::messages::TopicName(
                kafka_protocol::protocol::StrBytes::from_static_str("moving"),
            ))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)])]);
        let response = client.send_versioned(request, 7).await.unwrap();
        response.topics[0].partitions[0].error_code
    });
    assert_eq!(code, 6, "NOT_LEADER_OR_FOLLOWER");
    produce_values(&rt, &cluster.addr(first), "moving", "b", 10);
    assert_eq!(read_values(&cluster.addr(stuck), "moving", 310).len(), 310);

    // A throttled move: back to broker 1 alone, which must fetch the 500 KiB written since it
    // left at 100 KB/s (leader and follower side), so it takes seconds; the throttles are on
    // the topic and the brokers meanwhile, and --verify removes them once it is complete.
    produce_all(
        &rt,
        &cluster.addr(first),
        "moving",
        &vec!["x".repeat(1000); 500],
    );
    let back = write(
        dir.path(),
        "back.json",
        r#"{"version":1,"partitions":[{"topic":"moving","partition":0,"replicas":[1]}]}"#,
    );
    let started = std::time::Instant::now();
    let (ok, out, err) = reassign(
        &addr,
        &[
            "--execute",
            "--reassignment-json-file",
            &back,
            "--throttle",
            "100000",
        ],
    );
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("The inter-broker throttle limit was set to 100000 B/s\n"),
        "{out}"
    );
    let (_, brokers, _) = strata_tool(
        "configs",
        &addr,
        &[
            "--describe",
            "--entity-type",
            "brokers",
            "--entity-name",
            "1",
            "--all",
        ],
    );
    assert!(
        brokers
            .lines()
            .any(|l| l.contains("leader.replication.throttled.rate=100000")
                && l.contains("DYNAMIC_BROKER_CONFIG")),
        "{brokers}"
    );
    let (_, described, _) = strata_tool("configs", &addr, &["--describe", "--topic", "moving"]);
    assert!(
        described.contains("follower.replication.throttled.replicas=0:1")
            && described.contains(&format!(
                "leader.replication.throttled.replicas=0:{first},0:{stuck}"
            )),
        "{described}"
    );
    let mut last = String::new();
    let done = eventually(Duration::from_secs(60), || {
        let (ok, out, _) = reassign(&addr, &["--verify", "--reassignment-json-file", &back]);
        last = out;
        ok
    });
    let took = started.elapsed();
    assert!(done, "{last}\n{}", cluster.logs());
    assert!(
        took >= Duration::from_secs(3),
        "500 KiB at 100 KB/s took only {took:?}"
    );
    assert!(
        last.contains("Clearing topic-level throttles on topic moving"),
        "{last}"
    );
    let (_, described, _) = strata_tool("configs", &addr, &["--describe", "--topic", "moving"]);
    assert!(!described.contains("throttled"), "{described}");
    assert_eq!(read_values(&cluster.addr(1), "moving", 810).len(), 810);

    // Kafka's refusals: an unknown broker.
    let bad = write(
        dir.path(),
        "bad.json",
        r#"{"version":1,"partitions":[{"topic":"moving","partition":0,"replicas":[7]}]}"#,
    );
    let (ok, out, err) = reassign(&addr, &["--execute", "--reassignment-json-file", &bad]);
    assert!(!ok);
    assert!(err.contains("InvalidReplicaAssignment"), "{out}{err}");
}
