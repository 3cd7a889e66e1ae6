//! A cluster of three real brokers on loopback, each a voter of the metadata quorum (openraft):
//! formatting, election, registration seen by clients, a killed leader replaced, a restarted
//! voter catching up from its own durable log.

mod cluster_support;
mod common;

use std::time::Duration;

use cluster_support::Cluster;
use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// The brokers a librdkafka client sees through `addr`, and the quorum's leader there.
fn client_view(addr: &str) -> (Vec<(i32, u16)>, i32) {
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
    assert!(ok, "{addr}: {err}");
    let leader = out
        .lines()
        .find_map(|l| l.strip_prefix("LeaderId:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (brokers, leader)
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
        assert!(
            eventually(Duration::from_secs(15), || client_view(&addr).0 == expected),
            "node {id} lists {:?}, expected {expected:?}",
            client_view(&addr).0
        );
    }
    let (ok, out, err) = strata_tool(
        "metadata-quorum",
        &cluster.addr(1),
        &["describe", "--status"],
    );
    assert!(ok, "{out} {err} {}", cluster.logs());
    let (_, leader) = client_view(&cluster.addr(1));
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
    let (ok, out, err) = strata_cli(&[
        "storage",
        "format",
        "-t",
        id.trim(),
        "-c",
        config.to_str().unwrap(),
    ]);
    assert!(ok, "{out}{err}");
    let refused = broker.start_refused();
    assert!(
        refused.contains("doesn't match the configured node.id 1"),
        "{refused}"
    );
    let (ok, _, err) = strata_cli(&[
        "storage",
        "format",
        "-t",
        id.trim(),
        "-c",
        config.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("already formatted"), "{err}");

    // A single voter formatted for itself leads its own quorum.
    let data1 = tmp.path().join("data1");
    let mut own = settings.to_vec();
    own.push(format!("log.dirs={}", data1.display()));
    std::fs::write(&config, own.join("\n")).unwrap();
    let (ok, out, err) = strata_cli(&[
        "storage",
        "format",
        "-t",
        id.trim(),
        "-c",
        config.to_str().unwrap(),
    ]);
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
