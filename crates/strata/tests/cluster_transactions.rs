//! Transactions across three real brokers: the transaction coordinator is the leader of the
//! transactional id's partition of `__transaction_state` and moves with it, markers go to each
//! partition's leader, and a leader that is not the producer's coordinator verifies the
//! producer's transaction with it before the transaction's first write there.

mod cluster_support;
mod common;

use std::time::Duration;

use cluster_support::*;
use common::txn::*;
use common::*;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const NOT_COORDINATOR: i16 = 16;
const INVALID_TXN_STATE: i16 = 48;

/// Creates `name` with `partitions` partitions on all three brokers and waits until each has
/// all three in its ISR; returns each partition's leader.
fn create_replicated(
    rt: &tokio::runtime::Runtime,
    cluster: &Cluster,
    name: &str,
    partitions: i32,
) -> Vec<i32> {
    let admin: AdminClient<_> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap())
        .create()
        .unwrap();
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(3));
    let created = rt
        .block_on(admin.create_topics(&[topic], &AdminOptions::new()))
        .unwrap();
    assert!(created[0].is_ok(), "{created:?}");
    let mut last = Vec::new();
    let ready = eventually(Duration::from_secs(30), || {
        last = partitions_of(&cluster.running_bootstrap(), name);
        last.len() == partitions as usize
            && last
                .iter()
                .all(|(leader, _, isr)| *leader > 0 && isr.len() == 3)
    });
    assert!(ready, "{name}: {last:?}\n{}", cluster.logs());
    last.iter().map(|(leader, _, _)| *leader).collect()
}

/// The coordinator of `transactional_id`, once there is one (the first lookup has the
/// controller create `__transaction_state`).
fn txn_coordinator(rt: &tokio::runtime::Runtime, cluster: &Cluster, transactional_id: &str) -> i32 {
    let mut found = None;
    let ok = eventually(Duration::from_secs(30), || {
        found = coordinator_of(rt, &cluster.running_bootstrap(), transactional_id, 1);
        found.is_some()
    });
    assert!(
        ok,
        "no coordinator for {transactional_id}\n{}",
        cluster.logs()
    );
    found.unwrap()
}

fn transactional(bootstrap: &str, id: &str) -> FutureProducer {
    producer(
        bootstrap,
        &[
            ("transactional.id", id),
            ("message.timeout.ms", "30000"),
            ("transaction.timeout.ms", "60000"),
        ],
    )
}

/// Sends `values` to each of `partitions` partitions (value `"{prefix}-{p}-{i}"`) and waits for
/// every delivery.
fn send_to_each(
    rt: &tokio::runtime::Runtime,
    producer: &FutureProducer,
    topic: &str,
    partitions: i32,
    prefix: &str,
    count: usize,
) {
    let values: Vec<(i32, String)> = (0..partitions)
        .flat_map(|p| (0..count).map(move |i| (p, format!("{prefix}-{p}-{i}"))))
        .collect();
    let sends: Vec<_> = values
        .iter()
        .map(|(p, v)| {
            producer.send(
                FutureRecord::<(), _>::to(topic).partition(*p).payload(v),
                Duration::from_secs(30),
            )
        })
        .collect();
    for r in rt.block_on(futures::future::join_all(sends)) {
        r.expect("delivered");
    }
}

fn expected(prefixes: &[&str], partition: i32, count: usize) -> Vec<String> {
    prefixes
        .iter()
        .flat_map(|prefix| (0..count).map(move |i| format!("{prefix}-{partition}-{i}")))
        .collect()
}

#[test]
fn a_transactional_producer_completes_across_a_coordinator_failover() {
    let mut cluster = three_brokers(&[
        "broker.session.timeout.ms=3000",
        "broker.heartbeat.interval.ms=300",
    ]);
    let rt = runtime();
    create_replicated(&rt, &cluster, "orders", 3);
    let coordinator = txn_coordinator(&rt, &cluster, "tx-orders");
    let p = transactional(&cluster.bootstrap(), "tx-orders");
    p.init_transactions(Duration::from_secs(60)).unwrap();

    // One transaction over partitions led by all three brokers.
    p.begin_transaction().unwrap();
    send_to_each(&rt, &p, "orders", 3, "first", 10);
    p.commit_transaction(Duration::from_secs(60)).unwrap();

    // The next one is open (its partitions added, its records on their ISRs) when its
    // coordinator's broker dies: the leader of the id's partition moves to an in-sync replica,
    // which loads the transaction and completes the commit the producer then asks for.
    p.begin_transaction().unwrap();
    send_to_each(&rt, &p, "orders", 3, "second", 10);
    cluster.node(coordinator).broker.kill();
    p.commit_transaction(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("commit across the failover: {e}\n{}", cluster.logs()));
    let now = txn_coordinator(&rt, &cluster, "tx-orders");
    assert_ne!(now, coordinator);

    // The new coordinator aborts and commits as the old one did.
    p.begin_transaction().unwrap();
    send_to_each(&rt, &p, "orders", 3, "aborted", 10);
    p.abort_transaction(Duration::from_secs(60)).unwrap();
    p.begin_transaction().unwrap();
    send_to_each(&rt, &p, "orders", 3, "fourth", 10);
    p.commit_transaction(Duration::from_secs(60)).unwrap();

    // A read_committed consumer sees exactly the committed transactions, in order, on every
    // partition, whichever broker leads it now.
    let live = cluster.running_bootstrap();
    for partition in 0..3 {
        let seen = consume_partition(&live, "orders", partition, "read_committed", 30);
        assert_eq!(
            seen,
            expected(&["first", "second", "fourth"], partition, 10),
            "partition {partition}\n{}",
            cluster.logs()
        );
    }
}

#[test]
fn a_leader_that_is_not_the_coordinator_verifies_transactional_writes() {
    let cluster = three_brokers(&[]);
    let rt = runtime();
    let leaders = create_replicated(&rt, &cluster, "verified", 3);
    let coordinator = txn_coordinator(&rt, &cluster, "tx-v");
    let (partition, leader) = leaders
        .iter()
        .enumerate()
        .find(|(_, l)| **l != coordinator)
        .map(|(p, l)| (p as i32, *l))
        .expect("three partitions with three leaders have one led elsewhere");
    rt.block_on(async {
        let mut coord = TxnClient::connect(&cluster.addr(coordinator), "tx-v").await;
        // The coordinator may still be loading the id's partition (retriable, as clients do).
        let mut code = coord.init(60_000).await;
        for _ in 0..100 {
            if code != COORDINATOR_LOAD_IN_PROGRESS && code != NOT_COORDINATOR {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            code = coord.init(60_000).await;
        }
        assert_eq!(code, 0);
        let mut writer = TxnClient::connect(&cluster.addr(leader), "tx-v").await;
        writer.pid = coord.pid;
        writer.epoch = coord.epoch;
        // Not in the transaction: the coordinator says so, and nothing is written.
        assert_eq!(
            writer.produce("verified", partition, 2).await,
            INVALID_TXN_STATE
        );
        // Added: written.
        assert_eq!(coord.add(&[("verified", partition)]).await, vec![0]);
        assert_eq!(writer.produce("verified", partition, 2).await, 0);
        assert_eq!(writer.produce("verified", partition, 1).await, 0);
        // Only the coordinator describes the transaction.
        assert_eq!(
            describe(&mut writer.client, "tx-v").await.error_code,
            NOT_COORDINATOR
        );
        assert_eq!(describe(&mut coord.client, "tx-v").await.error_code, 0);
        // The commit's marker (sent by the coordinator to this leader) ends the verification:
        // a write after it, before the partition is added again, is refused.
        assert_eq!(coord.end(true).await, 0);
        assert_eq!(
            writer.produce("verified", partition, 1).await,
            INVALID_TXN_STATE
        );
    });
    let seen = consume_partition(
        &cluster.addr(leader),
        "verified",
        partition,
        "read_committed",
        3,
    );
    assert_eq!(seen, vec!["v0", "v1", "v0"], "{}", cluster.logs());
}

#[test]
fn a_decided_transaction_is_completed_by_the_next_coordinator() {
    // Every node dies right after making a transaction's decision durable, before any marker.
    let cluster = Cluster::start_with_env(
        3,
        &[
            "broker.session.timeout.ms=3000",
            "broker.heartbeat.interval.ms=300",
        ],
        &[("STRATA_CRASH_AT", "txn-after-prepare")],
    );
    all_registered(&cluster);
    let rt = runtime();
    create_replicated(&rt, &cluster, "decided", 3);
    let coordinator = txn_coordinator(&rt, &cluster, "tx-decided");
    let p = transactional(&cluster.bootstrap(), "tx-decided");
    p.init_transactions(Duration::from_secs(60)).unwrap();
    p.begin_transaction().unwrap();
    send_to_each(&rt, &p, "decided", 3, "kept", 5);
    // The coordinator decides (PrepareCommit, on its ISR) and dies. The next leader of the id's
    // partition loads the decision and writes the markers itself; the producer's retried
    // EndTxn is answered once the commit is complete.
    p.commit_transaction(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("commit: {e}\n{}", cluster.logs()));
    assert!(
        cluster.nodes[coordinator as usize - 1]
            .broker
            .log()
            .contains("crash point txn-after-prepare reached"),
        "the coordinator {coordinator} did not crash at its decision\n{}",
        cluster.logs()
    );
    let live = (1..=3)
        .filter(|id| *id != coordinator)
        .map(|id| cluster.addr(id))
        .collect::<Vec<_>>()
        .join(",");
    for partition in 0..3 {
        let seen = consume_partition(&live, "decided", partition, "read_committed", 5);
        assert_eq!(
            seen,
            expected(&["kept"], partition, 5),
            "partition {partition}\n{}",
            cluster.logs()
        );
    }
}
