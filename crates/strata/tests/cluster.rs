//! A cluster of three real brokers on loopback, each a voter of the metadata quorum (openraft):
//! formatting, election, registration seen by clients, a killed leader replaced, a restarted
//! voter catching up from its own durable log.

mod cluster_support;
mod common;

use std::time::Duration;

use cluster_support::{listed, partitions_of, signal, Cluster};
use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// The brokers a librdkafka client sees through `addr`, and the quorum's leader there.
fn client_view(addr: &str) -> (Vec<(i32, u16)>, i32) {
    try_client_view(addr).unwrap_or_else(|e| panic!("{e}"))
}

fn try_client_view(addr: &str) -> Result<(Vec<(i32, u16)>, i32), String> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", addr)
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    let mut brokers: Vec<(i32, u16)> = metadata
        .brokers()
        .iter()
        .map(|b| (b.id(), b.port() as u16))
        .collect();
    brokers.sort();
    let (ok, out, err) = strata_tool("metadata-quorum", addr, &["describe", "--status"]);
    if !ok {
        return Err(format!("{addr}: {err}"));
    }
    let leader = out
        .lines()
        .find_map(|l| l.strip_prefix("LeaderId:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    Ok((brokers, leader))
}

#[test]
fn three_voters_elect_register_fail_over_and_rejoin() {
    let mut cluster = Cluster::start(3, &[]);
    let first = cluster.wait_for_quorum(1, Duration::from_secs(20), |q| q.leader > 0);
    assert_eq!(first.voters, "[1,2,3]");
    assert!(first.epoch >= 1);

    // Every broker registered itself through the quorum; each node serves the same view.
    let expected: Vec<(i32, u16)> = cluster.nodes.iter().map(|n| (n.id, n.port)).collect();
    for id in 1..=3 {
        let addr = cluster.addr(id);
        let mut last = Err(String::new());
        assert!(
            eventually(Duration::from_secs(15), || {
                last = try_client_view(&addr);
                last.as_ref().is_ok_and(|v| v.0 == expected)
            }),
            "node {id}: {last:?}, expected {expected:?}:\n{}",
            cluster.logs()
        );
    }
    let (_, leader) = client_view(&cluster.addr(1));
    // Every version of DescribeQuorum is answered (v0 and v1 carry no error messages or
    // voter endpoints; a field they cannot carry must not be set).
    runtime().block_on(async {
        use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
        use kafka_protocol::messages::{DescribeQuorumRequest, DescribeQuorumResponse, TopicName};
        let mut client = strata::client::Client::connect(&cluster.addr(3))
            .await
            .unwrap();
        for version in 0..=2 {
            let request = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
                .with_topic_name(TopicName("__cluster_metadata".into()))
                .with_partitions(vec![PartitionData::default()])]);
            let response: DescribeQuorumResponse =
                client.send_versioned(request, version).await.unwrap();
            let p = &response.topics[0].partitions[0];
            assert_eq!((response.error_code, p.error_code), (0, 0), "v{version}");
            assert_eq!(p.leader_id.0, leader, "v{version}");
            assert_eq!(p.current_voters.len(), 3, "v{version}");
            assert_eq!(response.nodes.len(), if version >= 2 { 3 } else { 0 });
        }
    });
    // The cluster at a glance: brokers with their racks, the controller, the voters.
    let (ok, out, err) = strata_tool("cluster", &cluster.addr(2), &["--describe"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("ClusterId:  {}", cluster.cluster_id)),
        "{out}"
    );
    assert!(
        out.contains(&format!("Controller: {leader} (epoch")),
        "{out}"
    );
    for n in &cluster.nodes {
        let rack = if n.id % 2 == 1 { "rack-a" } else { "rack-b" };
        let row = format!("{:<8}{:<24}{:<8}{rack}", n.id, "127.0.0.1", n.port);
        assert!(out.contains(&row), "no {row:?} in\n{out}");
    }
    assert_eq!(out.matches("Leader").count(), 1, "{out}");
    assert_eq!(out.matches("Follower").count(), 2, "{out}");
    let before = cluster.wait_for_quorum(leader, Duration::from_secs(10), |q| q.leader == leader);

    // The leader's process dies: the other two elect one of themselves, in a later epoch.
    cluster.node(leader).broker.kill();
    let survivor = (1..=3).find(|id| *id != leader).unwrap();
    let after = cluster.wait_for_quorum(survivor, Duration::from_secs(20), |q| {
        q.leader != leader && q.leader > 0
    });
    assert!(after.epoch > before.epoch, "{before:?} then {after:?}");
    assert!(after.high_watermark >= before.high_watermark);

    // The killed node restarts from its own log and vote (not formatted or initialized again),
    // and catches up: it reports the leader's high watermark as its own log end.
    let metadata_log = cluster
        .node(leader)
        .data
        .join("__cluster_metadata-0/metadata.log");
    let kept = std::fs::metadata(&metadata_log).unwrap().len();
    assert!(kept > 0);
    cluster.node(leader).broker.restart();
    let rejoined = cluster.wait_for_quorum(leader, Duration::from_secs(20), |q| q.leader > 0);
    assert_eq!(rejoined.voters, "[1,2,3]");
    let addr = cluster.addr(rejoined.leader);
    let caught_up = eventually(Duration::from_secs(20), || {
        let (ok, out, _) = strata_tool("metadata-quorum", &addr, &["describe", "--replication"]);
        ok && out.lines().skip(1).all(|row| {
            let cols: Vec<&str> = row.split_whitespace().collect();
            cols.len() == 6 && cols[2] == "0"
        })
    });
    assert!(
        caught_up,
        "the restarted voter did not catch up:\n{}",
        cluster.logs()
    );
    let log = cluster.node(leader).broker.log();
    assert_eq!(
        log.matches("metadata quorum initialized").count(),
        1,
        "a voter with a log must not initialize again:\n{log}"
    );
    assert!(!log.contains("removing partition directory"), "{log}");
    assert!(std::fs::metadata(&metadata_log).unwrap().len() >= kept);
}

/// `strata storage format -t <id> -c <config>`.
fn format_storage(id: &str, config: &std::path::Path) -> (bool, String, String) {
    strata_cli(&[
        "storage",
        "format",
        "-t",
        id,
        "-c",
        config.to_str().unwrap(),
    ])
}

#[test]
fn a_node_of_a_cluster_starts_only_from_formatted_storage() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let settings = [
        "process.roles=broker,controller".to_string(),
        "node.id=1".to_string(),
        format!("controller.quorum.voters=1@127.0.0.1:{port}"),
        "controller.listener.names=CONTROLLER".to_string(),
        format!("listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{port}"),
    ];
    let refs: Vec<&str> = settings.iter().map(String::as_str).collect();
    let mut broker = BrokerProcess::on_data_dir(&data, &refs);
    let refused = broker.start_refused();
    assert!(
        refused.contains("No `meta.properties` found") && refused.contains("strata storage format"),
        "{refused}"
    );

    // Formatted for another node id: refused too.
    let config = tmp.path().join("server.properties");
    let mut other = settings.to_vec();
    other.push(format!("log.dirs={}", data.display()));
    other.push("node.id=2".to_string());
    other.push(format!("controller.quorum.voters=2@127.0.0.1:{port}"));
    std::fs::write(&config, other.join("\n")).unwrap();
    let (ok, _, err) = strata_cli(&[
        "storage",
        "format",
        "-t",
        "not-a-uuid",
        "-c",
        config.to_str().unwrap(),
    ]);
    assert!(
        !ok && err.contains("does not appear to be a valid UUID"),
        "{err}"
    );
    let (_, id, _) = strata_cli(&["storage", "random-uuid"]);
    let (ok, out, err) = format_storage(id.trim(), &config);
    assert!(ok, "{out}{err}");
    let refused = broker.start_refused();
    assert!(
        refused.contains("doesn't match the configured node.id 1"),
        "{refused}"
    );
    let (ok, _, err) = format_storage(id.trim(), &config);
    assert!(!ok && err.contains("already formatted"), "{err}");

    // A single voter formatted for itself leads its own quorum.
    let data1 = tmp.path().join("data1");
    let mut own = settings.to_vec();
    own.push(format!("log.dirs={}", data1.display()));
    std::fs::write(&config, own.join("\n")).unwrap();
    let (ok, out, err) = format_storage(id.trim(), &config);
    assert!(ok, "{out}{err}");
    let mut broker = BrokerProcess::on_data_dir(&data1, &refs);
    broker.restart();
    let led = eventually(Duration::from_secs(15), || {
        let (ok, out, _) = strata_tool("metadata-quorum", &broker.addr, &["describe", "--status"]);
        ok && out.contains("LeaderId:               1")
            && out.contains(&format!("ClusterId:              {}", id.trim()))
    });
    assert!(led, "{}", broker.log());
}

/// SIGSTOPs node `paused` until node `observer` no longer lists it (fenced after the session
/// timeout), then SIGCONTs it until it is listed again.
fn pause_until_fenced_then_resume(cluster: &mut Cluster, paused: i32, observer: i32) {
    let all = vec![1, 2, 3];
    signal(cluster.node(paused).broker.pid(), "STOP");
    let rest: Vec<i32> = all.iter().copied().filter(|id| *id != paused).collect();
    let observer_addr = cluster.addr(observer);
    assert!(
        eventually(Duration::from_secs(20), || listed(&observer_addr) == rest),
        "the paused broker {paused} was not fenced:\n{}",
        cluster.logs()
    );
    signal(cluster.node(paused).broker.pid(), "CONT");
    assert!(
        eventually(Duration::from_secs(20), || listed(&observer_addr) == all),
        "the resumed broker {paused} did not come back:\n{}",
        cluster.logs()
    );
}

#[test]
fn a_paused_broker_is_fenced_and_rejoins_and_a_stopped_one_leaves_at_once() {
    let mut cluster = Cluster::start(
        3,
        &[
            "broker.session.timeout.ms=3000",
            "broker.heartbeat.interval.ms=300",
        ],
    );
    let quorum = cluster.wait_for_quorum(1, Duration::from_secs(20), |q| q.leader > 0);
    let all = vec![1, 2, 3];
    for id in 1..=3 {
        let addr = cluster.addr(id);
        assert!(eventually(Duration::from_secs(15), || listed(&addr) == all));
    }

    // A follower paused (SIGSTOP): its heartbeats stop, the controller fences it after the
    // session timeout, clients are no longer sent to it; resumed, it heartbeats and is back.
    let paused = (1..=3).find(|id| *id != quorum.leader).unwrap();
    pause_until_fenced_then_resume(&mut cluster, paused, quorum.leader);

    // The leader paused: the other two elect a leader, which fences the paused one.
    let old_leader = quorum.leader;
    let other = (1..=3).find(|id| *id != old_leader).unwrap();
    pause_until_fenced_then_resume(&mut cluster, old_leader, other);

    // A clean stop fences the broker at once (a controlled shutdown), well before the session
    // timeout would.
    let stopped = other;
    let watcher = (1..=3).find(|id| *id != stopped).unwrap();
    cluster.node(stopped).broker.stop();
    let rest: Vec<i32> = all.iter().copied().filter(|id| *id != stopped).collect();
    let watcher_addr = cluster.addr(watcher);
    assert!(
        eventually(Duration::from_millis(1500), || listed(&watcher_addr)
            == rest),
        "a stopped broker stayed listed:\n{}",
        cluster.logs()
    );
    assert!(cluster
        .node(stopped)
        .broker
        .log()
        .contains("fenced for a controlled shutdown"));
}

/// A broker whose process died (its controller listener refuses connections) is fenced without
/// waiting out its session; one that is silent but alive (paused) is not, until its session
/// times out. The session here is a minute: every wait below is far shorter.
#[test]
fn a_killed_voter_is_fenced_at_once_and_a_paused_one_only_after_its_session() {
    let mut cluster = Cluster::start(
        3,
        &[
            "broker.session.timeout.ms=60000",
            "broker.heartbeat.interval.ms=500",
        ],
    );
    let quorum = cluster.wait_for_quorum(1, Duration::from_secs(20), |q| q.leader > 0);
    let all = vec![1, 2, 3];
    for id in 1..=3 {
        let addr = cluster.addr(id);
        assert!(eventually(Duration::from_secs(15), || listed(&addr) == all));
    }
    let leader_addr = cluster.addr(quorum.leader);
    let follower = (1..=3).find(|id| *id != quorum.leader).unwrap();

    // Paused: silent, but its port still accepts connections; it stays registered.
    signal(cluster.node(follower).broker.pid(), "STOP");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(listed(&leader_addr), all, "{}", cluster.logs());
    signal(cluster.node(follower).broker.pid(), "CONT");

    // Killed: fenced within seconds, not a minute.
    cluster.node(follower).broker.kill();
    let rest: Vec<i32> = all.iter().copied().filter(|id| *id != follower).collect();
    assert!(
        eventually(Duration::from_secs(10), || listed(&leader_addr) == rest),
        "{}",
        cluster.logs()
    );
    assert!(cluster.logs().contains("its process is gone"));
    cluster.node(follower).broker.restart();
    assert!(eventually(Duration::from_secs(15), || listed(&leader_addr) == all));

    // The active controller killed with its broker: the next controller fences it the same way.
    cluster.node(quorum.leader).broker.kill();
    let rest: Vec<i32> = all
        .iter()
        .copied()
        .filter(|id| *id != quorum.leader)
        .collect();
    let follower_addr = cluster.addr(follower);
    assert!(
        eventually(Duration::from_secs(15), || listed(&follower_addr) == rest),
        "{}",
        cluster.logs()
    );
}

#[test]
fn topics_are_placed_by_the_controller_and_served_by_their_leaders() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
    let mut cluster = Cluster::start(
        3,
        &[
            "broker.session.timeout.ms=3000",
            "broker.heartbeat.interval.ms=300",
        ],
    );
    cluster.wait_for_quorum(1, Duration::from_secs(20), |q| q.leader > 0);
    for id in 1..=3 {
        let addr = cluster.addr(id);
        assert!(eventually(Duration::from_secs(15), || listed(&addr) == vec![1, 2, 3]));
    }
    let rt = runtime();
    let bootstrap = cluster.bootstrap();
    create_topic(&rt, &cluster.addr(1), "spread", 6, &[]);

    // Placed by the controller: one replica each (the default replication factor), leaders
    // spread two per broker; every node tells the same.
    let placed = partitions_of(&cluster.addr(3), "spread");
    assert_eq!(placed.len(), 6, "{placed:?}");
    let mut leads = [0; 4];
    for (leader, replicas, isr) in &placed {
        assert_eq!(replicas, &vec![*leader]);
        assert_eq!(isr, &vec![*leader]);
        leads[*leader as usize] += 1;
    }
    assert_eq!(&leads[1..], &[2, 2, 2], "{placed:?}");
    assert_eq!(partitions_of(&cluster.addr(2), "spread"), placed);

    // More replicas than brokers is refused, with Kafka's error.
    let admin: AdminClient<_> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let refused = rt
        .block_on(admin.create_topics(
            &[NewTopic::new("replicated", 1, TopicReplication::Fixed(4))],
            &AdminOptions::new(),
        ))
        .unwrap();
    match &refused[0] {
        Err((_, e)) => assert_eq!(
            *e,
            rdkafka::types::RDKafkaErrorCode::InvalidReplicationFactor
        ),
        Ok(t) => panic!("{t} was created"),
    }

    // Produced through any broker, each record lands on its partition's leader and reads back.
    let producer = producer(&bootstrap, &[]);
    let consumer = consumer(&bootstrap, &[]);
    let mut sent = Vec::new();
    for p in 0..6 {
        let records: Vec<KeyValue> = (0..50)
            .map(|i| (None, Some(format!("p{p}-{i}").into_bytes())))
            .collect();
        let offsets = produce(&rt, &producer, "spread", p, &records);
        assert_eq!(offsets, (0..50).collect::<Vec<i64>>());
        sent.push(records);
    }
    for (p, records) in sent.iter().enumerate() {
        let got = consume(
            &consumer,
            "spread",
            p as i32,
            0,
            50,
            Duration::from_secs(15),
        );
        let values: Vec<Vec<u8>> = got.iter().map(payload).collect();
        let want: Vec<Vec<u8>> = records.iter().map(|(_, v)| v.clone().unwrap()).collect();
        assert_eq!(values, want, "partition {p}");
    }

    // Partitions added through a broker: placed too, and there on every node.
    let grown = rt
        .block_on(admin.create_partitions(&[NewPartitions::new("spread", 9)], &AdminOptions::new()))
        .unwrap();
    assert!(grown[0].is_ok(), "{grown:?}");
    assert!(eventually(Duration::from_secs(10), || partitions_of(
        &cluster.addr(2),
        "spread"
    )
    .len()
        == 9));

    // A broker that dies takes its partitions offline (one replica: no one else may lead);
    // they come back with their records when it returns.
    let (gone, _, _) = placed[0].clone();
    cluster.node(gone).broker.kill();
    let other = (1..=3).find(|id| *id != gone).unwrap();
    let other_addr = cluster.addr(other);
    assert!(
        eventually(Duration::from_secs(20), || {
            let now = partitions_of(&other_addr, "spread");
            now.len() == 9 && now[0].0 == -1
        }),
        "partition 0 of the dead broker {gone} is still led: {:?}\n{}",
        partitions_of(&other_addr, "spread"),
        cluster.logs()
    );
    cluster.node(gone).broker.restart();
    assert!(eventually(Duration::from_secs(20), || partitions_of(
        &other_addr,
        "spread"
    )
    .first()
    .is_some_and(|p| p.0 == gone)));
    let again = common::consumer(&bootstrap, &[]);
    let got = consume(&again, "spread", 0, 0, 50, Duration::from_secs(20));
    assert_eq!(got.len(), 50);

    // Deleted through a broker: gone from every node's metadata and logs.
    let deleted = rt
        .block_on(admin.delete_topics(&["spread"], &AdminOptions::new()))
        .unwrap();
    assert!(deleted[0].is_ok(), "{deleted:?}");
    for n in &cluster.nodes {
        let addr = format!("127.0.0.1:{}", n.port);
        assert!(eventually(Duration::from_secs(10), || partitions_of(
            &addr, "spread"
        )
        .is_empty()));
        let data = n.data.clone();
        assert!(
            eventually(Duration::from_secs(10), || !data.join("spread-0").exists()),
            "node {}",
            n.id
        );
    }
}

/// The README's cluster configs (config/cluster/) describe one quorum of three nodes that can run
/// side by side on one machine.
#[test]
fn the_shipped_cluster_configs_form_one_quorum_on_one_machine() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/cluster");
    let mut ports = std::collections::BTreeSet::new();
    let mut voters = None;
    for n in 1..=3 {
        let config =
            strata_broker::BrokerConfig::load(Some(&root.join(format!("node{n}.properties"))), &[])
                .unwrap_or_else(|e| panic!("node{n}: {e}"));
        assert_eq!(config.broker_id, n);
        let quorum = config.quorum.as_ref().expect("a node of a cluster");
        assert!(quorum.roles.broker && quorum.roles.controller);
        let listener = quorum.listener.as_ref().unwrap();
        assert_eq!(
            quorum.voters[&n].port, listener.port,
            "node{n} binds its own voter address"
        );
        assert!(ports.insert(listener.port));
        for l in &config.listeners {
            assert!(ports.insert(l.bind.port), "port {} used twice", l.bind.port);
        }
        match &voters {
            None => voters = Some(quorum.voters.clone()),
            Some(v) => assert_eq!(v, &quorum.voters),
        }
    }
    // The broker-only node joins them: their voters, none of their ports, no controller
    // listener of its own.
    let config = strata_broker::BrokerConfig::load(Some(&root.join("broker4.properties")), &[])
        .unwrap_or_else(|e| panic!("broker4: {e}"));
    let quorum = config.quorum.as_ref().expect("a node of a cluster");
    assert!(quorum.roles.broker && !quorum.roles.controller && quorum.listener.is_none());
    assert_eq!(Some(&quorum.voters), voters.as_ref());
    for l in &config.listeners {
        assert!(ports.insert(l.bind.port), "port {} used twice", l.bind.port);
    }
    // The README's commands use these files.
    let readme = include_str!("../../../README.md");
    for n in 1..=3 {
        assert!(readme.contains(&format!("-c config/cluster/node{n}.properties")));
    }
    assert!(readme.contains("--config config/cluster/broker4.properties"));
    assert!(readme.contains("-c config/cluster/broker4.properties"));
    assert!(readme
        .contains("storage format --cluster-id $ID --config config/cluster/node$n.properties"));
}

/// A voter that was away while the others took snapshots and purged their logs catches up from
/// a snapshot sent to it; every node restarts from its own snapshot and log.
#[test]
fn a_voter_behind_the_purged_log_catches_up_from_a_snapshot() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let mut cluster = Cluster::start(3, &["metadata.log.max.record.bytes.between.snapshots=4096"]);
    let quorum = cluster.wait_for_quorum(1, Duration::from_secs(20), |q| q.leader > 0);
    for id in 1..=3 {
        let addr = cluster.addr(id);
        assert!(eventually(Duration::from_secs(15), || listed(&addr) == vec![1, 2, 3]));
    }
    let away = (1..=3).find(|id| *id != quorum.leader).unwrap();
    cluster.node(away).broker.kill();

    // 150 topics: records well past several snapshots and past the entries kept after them.
    let rt = runtime();
    let addr = cluster.addr(quorum.leader);
    let admin: AdminClient<_> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &addr)
        .create()
        .unwrap();
    let topics: Vec<String> = (0..150).map(|i| format!("t{i:03}")).collect();
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|t| NewTopic::new(t, 1, TopicReplication::Fixed(1)))
        .collect();
    let created = rt
        .block_on(admin.create_topics(&new, &AdminOptions::new()))
        .unwrap();
    assert!(created.iter().all(|r| r.is_ok()), "{created:?}");
    let leader_dir = cluster
        .node(quorum.leader)
        .data
        .join("__cluster_metadata-0");
    assert!(
        leader_dir.join("snapshot.checkpoint").exists(),
        "no snapshot was taken"
    );
    // The leader purged its log behind the snapshot: the returning voter's next entries are
    // gone from it (the log then begins with the last purged id).
    let log = std::fs::read(leader_dir.join("metadata.log")).unwrap();
    assert!(
        log.len() > 8 && log[8..].starts_with(b"{\"Purged\""),
        "the log was not purged"
    );

    // Back: it must take the snapshot (its missing entries were purged) and then the rest.
    cluster.node(away).broker.restart();
    let away_addr = cluster.addr(away);
    let all_there = |addr: &str| {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", addr)
            .create()
            .unwrap();
        consumer
            .fetch_metadata(None, Duration::from_secs(5))
            .is_ok_and(|m| {
                m.topics()
                    .iter()
                    .filter(|t| t.name().starts_with('t'))
                    .count()
                    == 150
            })
    };
    assert!(
        eventually(Duration::from_secs(30), || all_there(&away_addr)),
        "the returning voter does not hold the 150 topics:\n{}",
        cluster.logs()
    );
    // Each broker keeps its replicas' logs only: t149's log is on the broker it was placed on
    // (most likely not the one away, unless placed before that one was fenced) and nowhere
    // else, the returning voter included.
    let placed = partitions_of(&away_addr, "t149")[0].1.clone();
    let dirs: Vec<(i32, std::path::PathBuf)> = (1..=3)
        .map(|id| (id, cluster.node(id).data.join("t149-0")))
        .collect();
    assert!(
        eventually(Duration::from_secs(10), || dirs
            .iter()
            .all(|(id, dir)| dir.exists() == placed.contains(id))),
        "t149 placed on {placed:?}; logs on {:?}",
        dirs.iter()
            .filter(|(_, d)| d.exists())
            .map(|(id, _)| *id)
            .collect::<Vec<_>>()
    );
    let away_dir = cluster.node(away).data.clone();
    assert!(away_dir
        .join("__cluster_metadata-0/snapshot.checkpoint")
        .exists());

    // Every node restarted from its snapshot and log still holds them all.
    for id in 1..=3 {
        cluster.node(id).broker.stop();
    }
    for id in 1..=3 {
        cluster.node(id).broker.restart();
    }
    for id in 1..=3 {
        let addr = cluster.addr(id);
        assert!(
            eventually(Duration::from_secs(30), || all_there(&addr)),
            "node {id} lost topics over a restart:\n{}",
            cluster.logs()
        );
    }
}

/// Producer ids come from blocks the controller records: no two brokers (nor a broker before
/// and after a restart) hand out the same id, or one producer's batches could be taken for
/// another's duplicates.
#[test]
fn producer_ids_are_unique_across_brokers_and_restarts() {
    use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};
    let mut cluster = Cluster::start(3, &[]);
    cluster.wait_for_quorum(1, Duration::from_secs(20), |q| q.leader > 0);
    for id in 1..=3 {
        let addr = cluster.addr(id);
        assert!(eventually(Duration::from_secs(15), || listed(&addr) == vec![1, 2, 3]));
    }
    let rt = runtime();
    let ids_from = |addr: String| -> Vec<i64> {
        rt.block_on(async {
            let mut client = strata::client::Client::connect(&addr).await.unwrap();
            let mut ids = Vec::new();
            for _ in 0..3 {
                let r: InitProducerIdResponse = client
                    .send(
                        InitProducerIdRequest::default()
                            .with_transactional_id(None)
                            .with_transaction_timeout_ms(60_000)
                            .with_producer_id(kafka_protocol::messages::ProducerId(-1))
                            .with_producer_epoch(-1),
                    )
                    .await
                    .unwrap();
                assert_eq!(r.error_code, 0);
                ids.push(r.producer_id.0);
            }
            ids
        })
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut blocks = std::collections::BTreeSet::new();
    for id in 1..=3 {
        for pid in ids_from(cluster.addr(id)) {
            assert!(seen.insert(pid), "producer id {pid} handed out twice");
            blocks.insert((id, pid / 1000));
        }
    }
    // Each broker drew its own block.
    let per_block: std::collections::BTreeSet<i64> = blocks.iter().map(|(_, b)| *b).collect();
    assert_eq!(per_block.len(), 3, "{blocks:?}");
    cluster.node(2).broker.stop();
    cluster.node(2).broker.restart();
    assert!(eventually(Duration::from_secs(15), || listed(
        &cluster.addr(1)
    ) == vec![1, 2, 3]));
    for pid in ids_from(cluster.addr(2)) {
        assert!(
            seen.insert(pid),
            "producer id {pid} handed out again after a restart"
        );
    }
}

/// A group's members that bootstrap through different brokers find one coordinator (the
/// leader of the group's `__consumer_offsets` partition), share the partitions, and a member
/// through a third broker resumes from what they committed.
#[test]
fn a_group_has_one_coordinator_whichever_broker_its_members_ask() {
    use rdkafka::consumer::CommitMode;
    use rdkafka::Message;
    let cluster = Cluster::start(3, &[]);
    cluster.wait_for_quorum(1, Duration::from_secs(20), |q| q.leader > 0);
    for id in 1..=3 {
        let addr = cluster.addr(id);
        assert!(eventually(Duration::from_secs(15), || listed(&addr) == vec![1, 2, 3]));
    }
    let rt = runtime();
    create_topic(&rt, &cluster.addr(1), "work", 4, &[]);
    let producer = producer(&cluster.bootstrap(), &[]);
    for p in 0..4 {
        let records: Vec<KeyValue> = (0..40).map(|i| (None, Some(vec![i as u8]))).collect();
        produce(&rt, &producer, "work", p, &records);
    }
    let member = |addr: String| -> BaseConsumer {
        let c: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &addr)
            .set("group.id", "g")
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("session.timeout.ms", "6000")
            .create()
            .unwrap();
        c.subscribe(&["work"]).unwrap();
        c
    };
    let a = member(cluster.addr(1));
    let b = member(cluster.addr(3));
    let mut got = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    let shared = |c: &BaseConsumer| c.assignment().map(|a| a.count()).unwrap_or(0);
    while std::time::Instant::now() < deadline
        && !(got == 160 && shared(&a) == 2 && shared(&b) == 2)
    {
        for c in [&a, &b] {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                assert_eq!(m.topic(), "work");
                got += 1;
            }
        }
    }
    assert_eq!(
        (got, shared(&a), shared(&b)),
        (160, 2, 2),
        "{}",
        cluster.logs()
    );
    a.commit_consumer_state(CommitMode::Sync).unwrap();
    b.commit_consumer_state(CommitMode::Sync).unwrap();
    drop(a);
    drop(b);

    let c = member(cluster.addr(2));
    let mut committed = None;
    assert!(
        eventually(Duration::from_secs(20), || {
            let _ = c.poll(Duration::from_millis(100));
            let mut list = rdkafka::TopicPartitionList::new();
            for p in 0..4 {
                list.add_partition("work", p);
            }
            committed = c
                .committed_offsets(list, Duration::from_secs(5))
                .ok()
                .map(|l| {
                    l.elements()
                        .iter()
                        .map(|e| e.offset().to_raw().unwrap_or(-1))
                        .collect::<Vec<i64>>()
                });
            committed.as_deref() == Some(&[40, 40, 40, 40][..])
        }),
        "committed {committed:?}"
    );
}

#[test]
fn a_topic_config_change_reaches_every_replica_through_the_controller() {
    let mut cluster = cluster_support::three_brokers(&["http.console.listener=127.0.0.1:0"]);
    let (ok, out, err) = strata_tool(
        "topics",
        &cluster.addr(1),
        &["--create", "--topic", "cfg", "--replication-factor", "3"],
    );
    assert!(ok, "{out}{err}");
    let (ok, out, err) = strata_tool(
        "configs",
        &cluster.addr(1),
        &[
            "--alter",
            "--topic",
            "cfg",
            "--add-config",
            "retention.ms=12345",
        ],
    );
    assert!(ok, "{out}{err}");
    let addrs: Vec<String> = (1..=3).map(|id| cluster.addr(id)).collect();
    let described = |id: i32| {
        strata_tool(
            "configs",
            &addrs[id as usize - 1],
            &["--describe", "--topic", "cfg"],
        )
        .1
    };
    // Every broker describes it, from its own copy of the topic's configs.
    for id in 1..=3 {
        assert!(
            eventually(Duration::from_secs(10), || described(id)
                .contains("retention.ms=12345")),
            "node {id}: {}",
            described(id)
        );
    }
    // The web console of a node shows the cluster: three brokers, one of them the active
    // controller, and the topic's three replicas in sync.
    let log = cluster.node(2).broker.log();
    let console = regex::Regex::new(r"web console at / addr=(\S+)")
        .unwrap()
        .captures(&log)
        .map(|c| c[1].to_string())
        .expect("the console's address in the log");
    let state = || -> serde_json::Value {
        serde_json::from_str(&http_get(&console, "/api/state").1).unwrap()
    };
    assert!(
        eventually(Duration::from_secs(10), || {
            let s = state();
            let brokers = s["brokers"].as_array().unwrap();
            let cfg = s["topics"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["name"] == "cfg")
                .map(|t| t["partitions"][0].clone());
            brokers.len() == 3
                && brokers.iter().filter(|b| b["controller"] == true).count() == 1
                && brokers.iter().all(|b| b["fenced"] == false)
                && cfg.is_some_and(|p| {
                    p["replicas"].as_array().unwrap().len() == 3
                        && p["isr"].as_array().unwrap().len() == 3
                        && (1..=3).any(|id| p["leader"] == id)
                })
        }),
        "{}",
        state()
    );
    // A node that was down when a config changed takes it from the metadata log.
    cluster.node(3).broker.stop();
    let (ok, out, err) = strata_tool(
        "configs",
        &cluster.addr(1),
        &[
            "--alter",
            "--topic",
            "cfg",
            "--add-config",
            "retention.ms=777",
        ],
    );
    assert!(ok, "{out}{err}");
    cluster.node(3).broker.restart();
    assert!(
        eventually(Duration::from_secs(20), || described(3)
            .contains("retention.ms=777")),
        "{}",
        described(3)
    );
    // Incremental changes of one topic through three brokers at once, back to back over one
    // connection each: none is lost (each is applied to the configs it was computed from, or
    // computed again).
    let keys = ["retention.bytes", "segment.ms", "delete.retention.ms"];
    let writers: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(n, key)| {
            let addr = addrs[n].clone();
            let key = key.to_string();
            std::thread::spawn(move || {
                runtime().block_on(async {
                    let mut client = strata::client::Client::connect(&addr).await.unwrap();
                    for i in 0..20 {
                        let setting = format!("{key}={}", 1_000_000 + i);
                        strata::configs::alter_configs(&mut client, 2, "cfg", &[setting], &[])
                            .await
                            .unwrap();
                    }
                })
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    for id in 1..=3 {
        assert!(
            eventually(Duration::from_secs(10), || {
                let d = described(id);
                keys.iter().all(|k| d.contains(&format!("{k}=1000019")))
            }),
            "node {id}: {}",
            described(id)
        );
    }
    // A cluster-wide dynamic default, set through one broker, is in force on every one (a
    // topic without its own value inherits it); one broker's own value only on that one.
    let (ok, out, err) = strata_tool(
        "configs",
        &cluster.addr(2),
        &[
            "--alter",
            "--broker-defaults",
            "--add-config",
            "log.segment.bytes=2000000",
        ],
    );
    assert!(ok, "{out}{err}");
    let (ok, out, err) = strata_tool(
        "configs",
        &cluster.addr(2),
        &[
            "--alter",
            "--broker",
            "3",
            "--add-config",
            "log.segment.bytes=3000000",
        ],
    );
    assert!(ok, "{out}{err}");
    let all = |id: i32| {
        strata_tool(
            "configs",
            &addrs[id as usize - 1],
            &["--describe", "--topic", "cfg", "--all"],
        )
        .1
    };
    for (id, value, source) in [
        (1, "2000000", "DYNAMIC_DEFAULT_BROKER_CONFIG"),
        (2, "2000000", "DYNAMIC_DEFAULT_BROKER_CONFIG"),
        (3, "3000000", "DYNAMIC_BROKER_CONFIG"),
    ] {
        let expected = format!(
            "segment.bytes={value} sensitive=false synonyms={{{source}:log.segment.bytes={value}"
        );
        assert!(
            eventually(Duration::from_secs(10), || all(id).contains(&expected)),
            "node {id}: {}",
            all(id)
        );
    }
}
