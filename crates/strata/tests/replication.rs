//! Replication across three real brokers on loopback: followers fetch from leaders, acks=all
//! waits for the ISR, leaders fail over to in-sync replicas without losing an acknowledged
//! record, lagging followers leave the ISR (and `min.insync.replicas` refuses writes then),
//! and a replica that comes back truncates what was never committed and catches up.

mod cluster_support;
mod common;

use std::time::Duration;

use cluster_support::*;
use common::*;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;

/// Creates `name` with one partition on all three brokers, with `configs`.
fn create_replicated(
    rt: &tokio::runtime::Runtime,
    cluster: &Cluster,
    name: &str,
    configs: &[(&str, &str)],
) {
    let admin: AdminClient<_> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap())
        .create()
        .unwrap();
    let mut topic = NewTopic::new(name, 1, TopicReplication::Fixed(3));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let created = rt
        .block_on(admin.create_topics(&[topic], &AdminOptions::new()))
        .unwrap();
    assert!(created[0].is_ok(), "{created:?}");
    wait_for_isr(cluster, name, 3);
}

fn acks_all(bootstrap: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut settings = vec![("acks", "all"), ("message.timeout.ms", "30000")];
    settings.extend_from_slice(extra);
    producer(bootstrap, &settings)
}

/// Sends `values` to partition 0 in windows of 20 in flight; the acknowledged ones with
/// their offsets, after `between` runs once half of them are sent.
fn send_all(
    rt: &tokio::runtime::Runtime,
    producer: &FutureProducer,
    topic: &str,
    values: &[String],
    mut between: impl FnMut(),
) -> Vec<(String, i64)> {
    let mut acknowledged = Vec::new();
    for (window, chunk) in values.chunks(20).enumerate() {
        if window == values.len() / 40 {
            between();
        }
        let sends: Vec<_> = chunk
            .iter()
            .map(|v| {
                producer.send(
                    FutureRecord::<(), _>::to(topic).partition(0).payload(v),
                    Duration::from_secs(30),
                )
            })
            .collect();
        let results = rt.block_on(futures::future::join_all(sends));
        for (v, r) in chunk.iter().zip(results) {
            if let Ok(delivered) = r {
                acknowledged.push((v.clone(), delivered.offset));
            }
        }
    }
    acknowledged
}

/// Every value of partition 0 from offset 0 to its high watermark, read through `bootstrap`.
fn read_all(bootstrap: &str, topic: &str, expected: usize) -> Vec<(i64, String)> {
    let consumer = consumer(bootstrap, &[]);
    consume(&consumer, topic, 0, 0, expected, Duration::from_secs(30))
        .iter()
        .map(|m| {
            (
                rdkafka::Message::offset(m),
                String::from_utf8(payload(m)).unwrap(),
            )
        })
        .collect()
}

#[test]
fn acknowledged_records_survive_leader_kills_and_a_restarted_replica_rejoins_the_isr() {
    let mut cluster = three_brokers(&[
        "broker.session.timeout.ms=3000",
        "broker.heartbeat.interval.ms=300",
        "replica.lag.time.max.ms=3000",
    ]);
    let rt = runtime();
    create_replicated(&rt, &cluster, "replicated", &[("min.insync.replicas", "2")]);
    let (first_leader, replicas, _) = wait_for_isr(&cluster, "replicated", 3);
    assert_eq!(replicas.len(), 3);

    // acks=all through a leader killed (kill -9) half-way: the producer moves to the new
    // leader, and every record it was told is written is there, at the offset it was told.
    let producer = acks_all(&cluster.bootstrap(), &[]);
    let values: Vec<String> = (0..600).map(|i| format!("record-{i:04}")).collect();
    let acknowledged = send_all(&rt, &producer, "replicated", &values, || {
        cluster.node(first_leader).broker.kill();
    });
    assert!(
        acknowledged.len() >= 500,
        "only {} acknowledged:\n{}",
        acknowledged.len(),
        cluster.logs()
    );
    let (second_leader, _, isr) = wait_for_isr_without(&cluster, "replicated", 2, first_leader);
    assert_ne!(second_leader, first_leader);
    assert!(!isr.contains(&first_leader), "{isr:?}");
    let end = acknowledged.iter().map(|(_, o)| o + 1).max().unwrap() as usize;
    let stored = read_all(&cluster.running_bootstrap(), "replicated", end);
    for (value, offset) in &acknowledged {
        assert!(
            stored.contains(&(*offset, value.clone())),
            "acknowledged {value} at {offset} is gone:\n{}",
            cluster.logs()
        );
    }

    // The killed broker comes back: it truncates to the new leader's log, catches up and
    // rejoins the ISR.
    cluster.node(first_leader).broker.restart();
    wait_for_isr(&cluster, "replicated", 3);

    // The second leader killed too: the third replica, or the one that came back, leads with
    // every acknowledged record; more records go on after them.
    cluster.node(second_leader).broker.kill();
    wait_for_isr_without(&cluster, "replicated", 2, second_leader);
    let more: Vec<String> = (0..40).map(|i| format!("after-{i:02}")).collect();
    let later = send_all(&rt, &producer, "replicated", &more, || {});
    assert_eq!(later.len(), 40, "{}", cluster.logs());
    let end = later.iter().map(|(_, o)| o + 1).max().unwrap() as usize;
    let stored = read_all(&cluster.running_bootstrap(), "replicated", end);
    for (value, offset) in acknowledged.iter().chain(&later) {
        assert!(
            stored.contains(&(*offset, value.clone())),
            "acknowledged {value} at {offset} is gone after the second failover:\n{}",
            cluster.logs()
        );
    }
    // Offsets are dense: the log holds each offset once.
    let offsets: Vec<i64> = stored.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, (0..end as i64).collect::<Vec<_>>());
}

#[test]
fn a_lagging_follower_leaves_the_isr_and_min_insync_replicas_refuses_acks_all() {
    let mut cluster = three_brokers(&[
        "broker.session.timeout.ms=30000",
        "broker.heartbeat.interval.ms=300",
        "replica.lag.time.max.ms=1500",
    ]);
    let rt = runtime();
    create_replicated(&rt, &cluster, "guarded", &[("min.insync.replicas", "3")]);
    let (leader, _, _) = wait_for_isr(&cluster, "guarded", 3);
    let bootstrap = cluster.addr(leader);
    let strict = acks_all(
        &bootstrap,
        &[("message.timeout.ms", "3000"), ("retries", "0")],
    );
    let one: Vec<String> = vec!["all-three".to_string()];
    assert_eq!(send_all(&rt, &strict, "guarded", &one, || {}).len(), 1);

    // A follower paused (SIGSTOP) stops fetching: after replica.lag.time.max.ms the leader
    // drops it from the ISR (it is not fenced: the session timeout is long).
    let paused = (1..=3).find(|id| *id != leader).unwrap();
    signal(cluster.node(paused).broker.pid(), "STOP");
    let (_, _, isr) = wait_for_isr(&cluster, "guarded", 2);
    assert!(!isr.contains(&paused), "{isr:?}");
    // Two in sync, three required: acks=all is refused with NOT_ENOUGH_REPLICAS and nothing
    // is appended; acks=1 still writes.
    let refused = rt.block_on(
        strict.send(
            FutureRecord::<(), _>::to("guarded")
                .partition(0)
                .payload("refused"),
            Duration::from_secs(5),
        ),
    );
    match refused {
        Err((e, _)) => assert_eq!(
            e.rdkafka_error_code(),
            Some(RDKafkaErrorCode::NotEnoughReplicas),
            "{e}"
        ),
        Ok(d) => panic!("acks=all was acknowledged with an ISR of two: {d:?}"),
    }
    let leader_only = producer(&bootstrap, &[("acks", "1")]);
    let written = send_all(
        &rt,
        &leader_only,
        "guarded",
        &["one-ack".to_string()],
        || {},
    );
    assert_eq!(written, vec![("one-ack".to_string(), 1)]);

    // Resumed, it catches up and rejoins; acks=all is accepted again (by a producer that
    // retries: the leader may take the ISR's answer a moment after a client sees it).
    signal(cluster.node(paused).broker.pid(), "CONT");
    wait_for_isr(&cluster, "guarded", 3);
    let retrying = acks_all(&bootstrap, &[]);
    let again = send_all(&rt, &retrying, "guarded", &["all-again".to_string()], || {});
    assert_eq!(again, vec![("all-again".to_string(), 2)]);
    let stored = read_all(&bootstrap, "guarded", 3);
    let values: Vec<&str> = stored.iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(values, ["all-three", "one-ack", "all-again"]);
}

#[test]
fn a_returning_leader_truncates_what_was_never_committed() {
    let mut cluster = three_brokers(&[
        "broker.session.timeout.ms=6000",
        "broker.heartbeat.interval.ms=300",
    ]);
    let rt = runtime();
    create_replicated(&rt, &cluster, "diverged", &[]);
    let (leader, replicas, _) = wait_for_isr(&cluster, "diverged", 3);
    let committed: Vec<String> = (0..10).map(|i| format!("committed-{i}")).collect();
    let strict = acks_all(&cluster.bootstrap(), &[]);
    assert_eq!(
        send_all(&rt, &strict, "diverged", &committed, || {}).len(),
        10
    );

    // The followers paused, and past their fetches' wait, so that none is in flight: what
    // the leader takes with acks=1 now is on the leader alone, and never committed.
    let followers: Vec<i32> = replicas.iter().copied().filter(|r| *r != leader).collect();
    for f in &followers {
        signal(cluster.node(*f).broker.pid(), "STOP");
    }
    std::thread::sleep(Duration::from_millis(1500));
    let loose = producer(&cluster.addr(leader), &[("acks", "1")]);
    let uncommitted: Vec<String> = (0..5).map(|i| format!("uncommitted-{i}")).collect();
    let taken = send_all(&rt, &loose, "diverged", &uncommitted, || {});
    assert_eq!(taken.len(), 5, "{}", cluster.logs());
    assert_eq!(taken[0].1, 10);
    // The leader dies with them; the followers resume and one of them leads, without them.
    cluster.node(leader).broker.kill();
    for f in &followers {
        signal(cluster.node(*f).broker.pid(), "CONT");
    }
    let (new_leader, _, _) = wait_for_isr_without(&cluster, "diverged", 2, leader);
    assert!(followers.contains(&new_leader));
    let after: Vec<String> = (0..3).map(|i| format!("after-{i}")).collect();
    let written = send_all(&rt, &strict, "diverged", &after, || {});
    assert_eq!(
        written.iter().map(|(_, o)| *o).collect::<Vec<_>>(),
        vec![10, 11, 12],
        "{}",
        cluster.logs()
    );

    // The old leader returns: it cuts its log back to offset 10 (where its epoch ended on the
    // new leader), fetches the new records, and rejoins the ISR.
    cluster.node(leader).broker.restart();
    wait_for_isr(&cluster, "diverged", 3);
    assert!(
        eventually(Duration::from_secs(10), || cluster
            .node(leader)
            .broker
            .log()
            .contains("truncating to the leader's log")),
        "{}",
        cluster.node(leader).broker.log()
    );
    // It leads again once the new leader is gone (the first replica is preferred), and
    // serves exactly the committed log.
    cluster.node(new_leader).broker.kill();
    let (last_leader, _, _) = wait_for_isr_without(&cluster, "diverged", 2, new_leader);
    let expected: Vec<String> = committed.iter().chain(&after).cloned().collect();
    let stored = read_all(&cluster.addr(last_leader), "diverged", 13);
    let values: Vec<String> = stored.into_iter().map(|(_, v)| v).collect();
    assert_eq!(values, expected, "{}", cluster.logs());
    if last_leader != leader {
        // The other follower leads: the returning replica's log is checked by leading it.
        let third = followers
            .iter()
            .copied()
            .find(|f| *f != new_leader)
            .unwrap();
        assert_eq!(last_leader, third);
    }
}

/// The broker that coordinates `group`, asked through `addr` (FindCoordinator); None while
/// there is none.
#[test]
fn a_group_keeps_its_committed_offsets_when_its_coordinator_dies() {
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    use rdkafka::{Offset, TopicPartitionList};
    let mut cluster = three_brokers(&[
        "broker.session.timeout.ms=3000",
        "broker.heartbeat.interval.ms=300",
    ]);
    let rt = runtime();
    create_replicated(&rt, &cluster, "work", &[]);
    let values: Vec<String> = (0..30).map(|i| format!("w{i}")).collect();
    let strict = acks_all(&cluster.bootstrap(), &[]);
    assert_eq!(send_all(&rt, &strict, "work", &values, || {}).len(), 30);

    let member = |bootstrap: &str| -> BaseConsumer {
        rdkafka::ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "g")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap()
    };
    let at = |offset: i64| {
        let mut list = TopicPartitionList::new();
        list.add_partition_offset("work", 0, Offset::Offset(offset))
            .unwrap();
        list
    };
    let committed = |c: &BaseConsumer| -> Option<i64> {
        let mut list = TopicPartitionList::new();
        list.add_partition("work", 0);
        c.committed_offsets(list, Duration::from_secs(5))
            .ok()?
            .elements()
            .first()?
            .offset()
            .to_raw()
    };
    // The offsets topic is made at the first FindCoordinator; its partitions are replicated.
    let mut coordinator = None;
    assert!(eventually(Duration::from_secs(30), || {
        coordinator = coordinator_of(&rt, &cluster.addr(1), "g", 0);
        coordinator.is_some()
    }));
    let coordinator = coordinator.unwrap();
    let first = member(&cluster.bootstrap());
    assert!(
        eventually(Duration::from_secs(20), || first
            .commit(&at(20), CommitMode::Sync)
            .is_ok()),
        "{}",
        cluster.logs()
    );
    assert_eq!(committed(&first), Some(20));
    drop(first);

    // The coordinator's broker dies (kill -9): the leader of the group's offsets partition
    // moves to an in-sync replica, which loads the group and answers with its offsets.
    cluster.node(coordinator).broker.kill();
    let live = cluster.running_bootstrap();
    let mut now = None;
    assert!(
        eventually(Duration::from_secs(30), || {
            now = coordinator_of(&rt, &live, "g", 0);
            now.is_some_and(|c| c != coordinator)
        }),
        "no new coordinator: {now:?}\n{}",
        cluster.logs()
    );
    let second = member(&live);
    let mut seen = None;
    assert!(
        eventually(Duration::from_secs(30), || {
            seen = committed(&second);
            seen == Some(20)
        }),
        "the new coordinator {now:?} lost the commit: {seen:?}\n{}",
        cluster.logs()
    );
    // It takes commits too, and so does the old one's broker once back, as a follower that
    // learned them: killing the new coordinator hands the group back with both.
    second.commit(&at(25), CommitMode::Sync).unwrap();
    assert_eq!(committed(&second), Some(25));
    drop(second);
    cluster.node(coordinator).broker.restart();
    let new_coordinator = now.unwrap();
    let (_, _, _) = wait_for_isr(&cluster, "work", 3);
    let offsets_synced = eventually(Duration::from_secs(30), || {
        partitions_of(&cluster.addr(coordinator), "__consumer_offsets")
            .iter()
            .all(|(_, replicas, isr)| isr.len() == replicas.len())
    });
    assert!(offsets_synced, "{}", cluster.logs());
    cluster.node(new_coordinator).broker.kill();
    let live = cluster.running_bootstrap();
    let third = member(&live);
    let mut seen = None;
    assert!(
        eventually(Duration::from_secs(30), || {
            seen = committed(&third);
            seen == Some(25)
        }),
        "after the second failover the group has {seen:?}\n{}",
        cluster.logs()
    );
}

#[test]
fn preferred_leaders_come_back_by_election_and_an_offline_partition_refuses_an_unclean_one() {
    let mut cluster = three_brokers(&[
        "broker.session.timeout.ms=3000",
        "broker.heartbeat.interval.ms=300",
        "auto.leader.rebalance.enable=false",
    ]);
    let rt = runtime();
    create_replicated(&rt, &cluster, "balanced", &[]);
    let (preferred, replicas, _) = wait_for_isr(&cluster, "balanced", 3);
    assert_eq!(
        replicas[0], preferred,
        "a new partition is led by its first replica"
    );
    let elect = |via: &str, args: &[&str]| {
        let mut all = vec!["elect-leaders", "--bootstrap-server", via];
        all.extend_from_slice(args);
        strata_cli(&all)
    };
    let (ok, out, err) = elect(
        &cluster.addr(preferred),
        &[
            "--election-type",
            "PREFERRED",
            "--topic",
            "balanced",
            "--partition",
            "0",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(
        out.trim(),
        "Valid replica already elected for partitions balanced-0"
    );

    // The preferred replica dies and comes back: it rejoins the ISR, but leads again only when
    // asked (the controller's balancing is off here).
    cluster.node(preferred).broker.kill();
    let (other, _, _) = wait_for_isr_without(&cluster, "balanced", 2, preferred);
    cluster.node(preferred).broker.restart();
    let (still, _, _) = wait_for_isr(&cluster, "balanced", 3);
    assert_eq!(still, other, "{}", cluster.logs());
    // Restarted, it replays its own metadata log, which ends before it lost the leadership: it
    // neither serves nor takes a role until its image holds its new registration.
    let log = cluster.node(preferred).broker.log();
    let restarted = log.rfind("Strata broker started").unwrap();
    let caught_up = log[restarted..]
        .find("metadata caught up with the quorum")
        .expect("caught up");
    assert!(
        !log[restarted..restarted + caught_up].contains("topic=balanced"),
        "a role taken from a stale image:\n{log}"
    );
    let (ok, out, err) = elect(
        &cluster.bootstrap(),
        &["--election-type", "PREFERRED", "--all-topic-partitions"],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("Successfully completed leader election (PREFERRED) for partitions")
            && out.contains("balanced-0"),
        "{out}"
    );
    let (back, _, _) = wait_for_isr(&cluster, "balanced", 3);
    assert_eq!(back, preferred);

    // A partition whose only replica is gone cannot be led, even uncleanly: the tool says why
    // and fails.
    let lonely_on = (1..=3).find(|id| *id != preferred).unwrap();
    let (ok, _, err) = strata_cli(&[
        "topics",
        "--bootstrap-server",
        &cluster.addr(preferred),
        "--create",
        "--topic",
        "lonely",
        "--replica-assignment",
        &lonely_on.to_string(),
    ]);
    assert!(ok, "{err}");
    cluster.node(lonely_on).broker.kill();
    assert!(eventually(Duration::from_secs(20), || {
        partitions_of(&cluster.addr(preferred), "lonely")
            .first()
            .is_some_and(|p| p.0 == -1)
    }));
    let (ok, out, _) = elect(
        &cluster.addr(preferred),
        &[
            "--election-type",
            "UNCLEAN",
            "--topic",
            "lonely",
            "--partition",
            "0",
        ],
    );
    assert!(!ok);
    assert!(
        out.contains("Error completing leader election (UNCLEAN) for partition: lonely-0: EligibleLeadersNotAvailable"),
        "{out}"
    );
}

#[test]
fn the_controller_moves_leadership_back_to_preferred_replicas() {
    let mut cluster = three_brokers(&[
        "broker.session.timeout.ms=3000",
        "broker.heartbeat.interval.ms=300",
        "leader.imbalance.check.interval.seconds=1",
    ]);
    let rt = runtime();
    create_replicated(&rt, &cluster, "drifting", &[]);
    let (preferred, _, _) = wait_for_isr(&cluster, "drifting", 3);
    cluster.node(preferred).broker.kill();
    wait_for_isr_without(&cluster, "drifting", 2, preferred);
    cluster.node(preferred).broker.restart();
    // Back in the ISR, the preferred replica is made leader again without being asked.
    let mut last = Vec::new();
    assert!(
        eventually(Duration::from_secs(30), || {
            last = partitions_of(&cluster.addr(preferred), "drifting");
            last.first()
                .is_some_and(|(leader, _, isr)| *leader == preferred && isr.len() == 3)
        }),
        "{last:?}\n{}",
        cluster.logs()
    );
}

/// What librdkafka's statistics say of partition 0 of a topic: (fetching from, leader).
struct Stats(std::sync::Mutex<Option<(i32, i32)>>);

impl rdkafka::ClientContext for Stats {
    fn stats(&self, statistics: rdkafka::Statistics) {
        if let Some(p) = statistics
            .topics
            .get("nearby")
            .and_then(|t| t.partitions.get(&0))
        {
            *self.0.lock().unwrap() = Some((p.broker, p.leader));
        }
    }
}

impl rdkafka::consumer::ConsumerContext for Stats {}

#[test]
fn a_consumer_fetches_from_the_in_sync_replica_in_its_rack() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Offset, TopicPartitionList};
    let cluster = three_brokers(&[
        "broker.session.timeout.ms=3000",
        "broker.heartbeat.interval.ms=300",
        "replica.selector.class=org.apache.kafka.common.replica.RackAwareReplicaSelector",
    ]);
    let rt = runtime();
    create_replicated(&rt, &cluster, "nearby", &[]);
    let (leader, replicas, _) = wait_for_isr(&cluster, "nearby", 3);
    // Odd ids are in rack-a, even ones in rack-b: some replica is in the other rack.
    let rack = |id: i32| if id % 2 == 1 { "rack-a" } else { "rack-b" };
    let far_rack = if rack(leader) == "rack-a" {
        "rack-b"
    } else {
        "rack-a"
    };
    let near: Vec<i32> = replicas
        .iter()
        .copied()
        .filter(|r| rack(*r) == far_rack)
        .collect();
    let values: Vec<String> = (0..50).map(|i| format!("n{i}")).collect();
    let strict = acks_all(&cluster.bootstrap(), &[]);
    assert_eq!(send_all(&rt, &strict, "nearby", &values, || {}).len(), 50);

    let read_in = |client_rack: &str| -> (Vec<String>, Option<(i32, i32)>) {
        let consumer: BaseConsumer<Stats> = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap())
            .set("group.id", "nearby-readers")
            .set("client.rack", client_rack)
            .set("statistics.interval.ms", "100")
            .create_with_context(Stats(std::sync::Mutex::new(None)))
            .unwrap();
        let mut list = TopicPartitionList::new();
        list.add_partition_offset("nearby", 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&list).unwrap();
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while got.len() < 50 && std::time::Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                got.push(String::from_utf8(payload(&m.detach())).unwrap());
            }
        }
        // Statistics come every 100 ms: the one after the reads says where they came from.
        let _ = consumer.poll(Duration::from_millis(300));
        let seen = *consumer.context().0.lock().unwrap();
        (got, seen)
    };
    // In the leader's rack: read from the leader.
    let (got, seen) = read_in(rack(leader));
    assert_eq!(got, values);
    assert_eq!(seen, Some((leader, leader)));
    // In the other rack: the leader sends the consumer to the in-sync replica there, which
    // serves the same records up to its high watermark.
    let (got, seen) = read_in(far_rack);
    assert_eq!(got, values, "{}", cluster.logs());
    let (from, said_leader) = seen.expect("statistics");
    assert_eq!(said_leader, leader);
    assert!(near.contains(&from), "read from {from}, not from {near:?}");
}

/// Segment files (`.log`) of `topic`-0 under a tier directory.
fn segments_in(tier: &std::path::Path, topic: &str) -> usize {
    std::fs::read_dir(tier.join(format!("{topic}-0")))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn followers_write_to_their_first_tier_and_migrate_like_leaders() {
    // Each broker its own two tiers: a 400 kB first tier kept at half, checked every 50 ms.
    let mut cluster = Cluster::start_each(3, |_, data| {
        vec![
            "broker.session.timeout.ms=3000".to_string(),
            "broker.heartbeat.interval.ms=300".to_string(),
            "log.channel.type=tiered".to_string(),
            format!("storage.tiers.first.paths={}", data.join("fast").display()),
            "storage.tiers.first.sizes=400000".to_string(),
            format!("storage.tiers.second.paths={}", data.join("slow").display()),
            "storage.migrate.threshold=0.5".to_string(),
            "storage.migrate.hysteresis=0.1".to_string(),
            "storage.migrate.interval.ms=50".to_string(),
        ]
    });
    all_registered(&cluster);
    let rt = runtime();
    create_replicated(&rt, &cluster, "tiered", &[("segment.bytes", "40000")]);
    let (leader, _, _) = wait_for_isr(&cluster, "tiered", 3);
    let values: Vec<String> = (0..3000)
        .map(|i| format!("{i:05}-{}", "x".repeat(90)))
        .collect();
    let strict = acks_all(
        &cluster.bootstrap(),
        &[("linger.ms", "0"), ("batch.size", "8192")],
    );
    assert_eq!(send_all(&rt, &strict, "tiered", &values, || {}).len(), 3000);
    // Every replica, followers too, has segments on both tiers: written to the first, moved
    // to the second as the first passed its threshold.
    for n in &cluster.nodes {
        let (fast, slow) = (n.data.join("fast"), n.data.join("slow"));
        assert!(
            eventually(Duration::from_secs(30), || segments_in(&fast, "tiered") > 0
                && segments_in(&slow, "tiered") > 0),
            "node {}: {} segments on the first tier, {} on the second\n{}",
            n.id,
            segments_in(&fast, "tiered"),
            segments_in(&slow, "tiered"),
            cluster.logs()
        );
    }
    // The leader gone, a follower serves every record, from both of its tiers.
    cluster.node(leader).broker.kill();
    wait_for_isr_without(&cluster, "tiered", 2, leader);
    let stored = read_all(&cluster.running_bootstrap(), "tiered", 3000);
    let got: Vec<String> = stored.into_iter().map(|(_, v)| v).collect();
    assert_eq!(got, values);
}
