//! A cluster of real broker processes on loopback: each node `process.roles=broker,controller`
//! (a voter of the metadata quorum) unless started with other roles, its storage formatted with
//! `strata storage format`; odd node ids in rack `rack-a`, even ones in `rack-b`.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::common::{eventually, strata_cli, strata_tool, BrokerProcess};

/// A free port below the kernel's ephemeral range (32768 and up here): a node keeps its ports
/// across restarts, and a port from the ephemeral range may meanwhile be taken by some
/// connection's local end (the brokers' own fetchers connect out all the time), so that the
/// restarted node cannot bind it.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(2_654_435_761).wrapping_add(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos()),
    );
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20_000 + (seed.wrapping_add(n.wrapping_mul(7_919)) % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// One node: its process and its two ports.
pub struct Node {
    pub id: i32,
    /// Its `process.roles`.
    pub roles: String,
    pub broker: BrokerProcess,
    pub port: u16,
    pub controller_port: u16,
    pub config: PathBuf,
    /// Its log dir (also its metadata log dir).
    pub data: PathBuf,
}

pub struct Cluster {
    pub cluster_id: String,
    pub nodes: Vec<Node>,
    /// Kept for the config files.
    _dir: tempfile::TempDir,
}

/// The metadata quorum as `strata metadata-quorum describe --status` prints it.
#[derive(Debug, Clone, PartialEq)]
pub struct QuorumStatus {
    pub leader: i32,
    pub epoch: i32,
    pub high_watermark: i64,
    pub voters: String,
}

impl Cluster {
    /// Formats and starts `n` nodes (ids 1..=n), each with `extra` settings.
    pub fn start(n: usize, extra: &[&str]) -> Cluster {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        Cluster::start_each(n, |_, _| extra.clone())
    }

    /// As [`Cluster::start`], with `env` set for every node's process.
    pub fn start_with_env(n: usize, extra: &[&str], env: &[(&str, &str)]) -> Cluster {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        Cluster::launch(n, |_, _| extra.clone(), env)
    }

    /// As [`Cluster::start`], with settings per node: `extra(id, its data directory)`. In
    /// them, `{port}`, `{controller_port}` and `{internal_port}` (a third free port, for a
    /// listener of the test's own) stand for the node's ports.
    pub fn start_each(n: usize, extra: impl Fn(i32, &std::path::Path) -> Vec<String>) -> Cluster {
        Cluster::launch(n, extra, &[])
    }

    /// As [`Cluster::start_each`], each node's storage formatted with `format_args` too
    /// (`--add-scram ...`).
    #[allow(dead_code)]
    pub fn start_each_formatted(
        n: usize,
        extra: impl Fn(i32, &std::path::Path) -> Vec<String>,
        format_args: &[&str],
    ) -> Cluster {
        Cluster::launch_roles_formatted(&vec!["broker,controller"; n], extra, &[], format_args)
    }

    /// Starts a node per entry of `roles` (its `process.roles`; ids 1..), the controllers
    /// the voters; a controller-only node has only its controller listener.
    pub fn start_roles(roles: &[&str]) -> Cluster {
        Cluster::launch_roles(roles, |_, _| Vec::new(), &[])
    }

    fn launch(
        n: usize,
        extra: impl Fn(i32, &std::path::Path) -> Vec<String>,
        env: &[(&str, &str)],
    ) -> Cluster {
        Cluster::launch_roles(&vec!["broker,controller"; n], extra, env)
    }

    fn launch_roles(
        roles: &[&str],
        extra: impl Fn(i32, &std::path::Path) -> Vec<String>,
        env: &[(&str, &str)],
    ) -> Cluster {
        Cluster::launch_roles_formatted(roles, extra, env, &[])
    }

    fn launch_roles_formatted(
        roles: &[&str],
        extra: impl Fn(i32, &std::path::Path) -> Vec<String>,
        env: &[(&str, &str)],
        format_args: &[&str],
    ) -> Cluster {
        let n = roles.len();
        let dir = tempfile::tempdir().unwrap();
        let (ok, out, err) = strata_cli(&["storage", "random-uuid"]);
        assert!(ok, "{err}");
        let cluster_id = out.trim().to_string();
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let internal_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let voters = ports
            .iter()
            .enumerate()
            .filter(|(i, _)| roles[*i].contains("controller"))
            .map(|(i, (_, c))| format!("{}@127.0.0.1:{c}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = Vec::new();
        for (i, (port, controller_port)) in ports.into_iter().enumerate() {
            let id = i as i32 + 1;
            let data = dir.path().join(format!("data{id}"));
            let config = dir.path().join(format!("node{id}.properties"));
            let listeners = match roles[i] {
                "controller" => format!("CONTROLLER://127.0.0.1:{controller_port}"),
                "broker" => format!("PLAINTEXT://127.0.0.1:{port}"),
                _ => {
                    format!("PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}")
                }
            };
            let mut settings = vec![
                format!("process.roles={}", roles[i]),
                format!("node.id={id}"),
                format!("controller.quorum.voters={voters}"),
                "controller.listener.names=CONTROLLER".to_string(),
                format!("listeners={listeners}"),
                format!("log.dirs={}", data.display()),
                // Two racks: odd ids in rack-a, even in rack-b.
                format!("broker.rack=rack-{}", if id % 2 == 1 { "a" } else { "b" }),
            ];
            settings.extend(extra(id, &data).into_iter().map(|s| {
                s.replace("{port}", &port.to_string())
                    .replace("{controller_port}", &controller_port.to_string())
                    .replace("{internal_port}", &internal_ports[i].to_string())
            }));
            std::fs::write(&config, settings.join("\n") + "\n").unwrap();
            let mut format = vec![
                "storage",
                "format",
                "--cluster-id",
                &cluster_id,
                "--config",
                config.to_str().unwrap(),
            ];
            format.extend_from_slice(format_args);
            let (ok, out, err) = strata_cli(&format);
            assert!(ok && out.contains("Formatting"), "{out}{err}");
            let refs: Vec<&str> = settings.iter().map(String::as_str).collect();
            let broker = BrokerProcess::on_data_dir(&data, &refs);
            nodes.push(Node {
                id,
                roles: roles[i].to_string(),
                broker,
                port,
                controller_port,
                config,
                data,
            });
        }
        for node in &mut nodes {
            for (k, v) in env {
                node.broker.set_env(k, Some(v));
            }
            node.broker.restart();
        }
        Cluster {
            cluster_id,
            nodes,
            _dir: dir,
        }
    }

    /// The process id of node `id`.
    pub fn node_pid(&self, id: i32) -> u32 {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .expect("node")
            .broker
            .pid()
    }

    pub fn node(&mut self, id: i32) -> &mut Node {
        self.nodes.iter_mut().find(|n| n.id == id).expect("node")
    }

    pub fn addr(&self, id: i32) -> String {
        let node = self.nodes.iter().find(|n| n.id == id).expect("node");
        format!("127.0.0.1:{}", node.port)
    }

    /// Every broker's client address, comma-separated (a bootstrap list).
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .filter(|n| n.roles.contains("broker"))
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The client addresses of the nodes running now, comma-separated.
    pub fn running_bootstrap(&self) -> String {
        self.nodes
            .iter()
            .filter(|n| n.broker.running() && n.roles.contains("broker"))
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The quorum's status asked of node `via`; None when it cannot say (no leader known).
    pub fn quorum_status(&self, via: i32) -> Option<QuorumStatus> {
        let (ok, out, _) = strata_tool(
            "metadata-quorum",
            &self.addr(via),
            &["describe", "--status"],
        );
        if !ok {
            return None;
        }
        let field = |name: &str| -> Option<String> {
            out.lines()
                .find(|l| l.starts_with(&format!("{name}:")))
                .map(|l| l.split_once(':').unwrap().1.trim().to_string())
        };
        Some(QuorumStatus {
            leader: field("LeaderId")?.parse().ok()?,
            epoch: field("LeaderEpoch")?.parse().ok()?,
            high_watermark: field("HighWatermark")?.parse().ok()?,
            voters: field("CurrentVoters")?,
        })
    }

    /// Waits until node `via` reports a leader accepted by `accept`; panics after `timeout`.
    pub fn wait_for_quorum(
        &self,
        via: i32,
        timeout: Duration,
        accept: impl Fn(&QuorumStatus) -> bool,
    ) -> QuorumStatus {
        let mut last = None;
        let found = eventually(timeout, || {
            last = self.quorum_status(via);
            last.as_ref().is_some_and(&accept)
        });
        assert!(
            found,
            "no acceptable quorum via node {via}: last {last:?}; logs:\n{}",
            self.logs()
        );
        last.unwrap()
    }

    /// Every node's log, for failure messages.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("--- node {} ---\n{}", n.id, n.broker.log()))
            .collect()
    }
}

pub fn signal(pid: u32, name: &str) {
    let ok = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{name} {pid}");
}

/// The broker ids clients are told of through `addr` (empty when it cannot answer).
pub fn listed(addr: &str) -> Vec<i32> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", addr)
        .create()
        .unwrap();
    let mut ids: Vec<i32> = consumer
        .fetch_metadata(None, Duration::from_secs(5))
        .map(|m| m.brokers().iter().map(|b| b.id()).collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

/// Each partition's (leader, replicas, isr) as a client sees it through `addr`.
pub fn partitions_of(addr: &str, topic: &str) -> Vec<(i32, Vec<i32>, Vec<i32>)> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", addr)
        .create()
        .unwrap();
    let Ok(metadata) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) else {
        return Vec::new();
    };
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Vec::new();
    };
    let mut out: Vec<(i32, i32, Vec<i32>, Vec<i32>)> = t
        .partitions()
        .iter()
        .map(|p| (p.id(), p.leader(), p.replicas().to_vec(), p.isr().to_vec()))
        .collect();
    out.sort();
    out.into_iter().map(|(_, l, r, i)| (l, r, i)).collect()
}

/// Starts three nodes with `extra`, waits until every node lists all three brokers.
pub fn three_brokers(extra: &[&str]) -> Cluster {
    let cluster = Cluster::start(3, extra);
    all_registered(&cluster);
    cluster
}

/// Waits until every node lists all three brokers.
pub fn all_registered(cluster: &Cluster) {
    cluster.wait_for_quorum(1, Duration::from_secs(20), |q| q.leader > 0);
    for id in 1..=3 {
        let addr = cluster.addr(id);
        assert!(
            eventually(Duration::from_secs(15), || listed(&addr) == vec![1, 2, 3]),
            "node {id} does not list every broker:\n{}",
            cluster.logs()
        );
    }
}

/// Waits until partition 0 of `topic` has a leader and `size` replicas in its ISR; returns
/// (leader, replicas, isr).
pub fn wait_for_isr(cluster: &Cluster, topic: &str, size: usize) -> (i32, Vec<i32>, Vec<i32>) {
    wait_for_isr_without(cluster, topic, size, -1)
}

/// As [`wait_for_isr`], with broker `gone` (killed) neither leading nor in the ISR.
pub fn wait_for_isr_without(
    cluster: &Cluster,
    topic: &str,
    size: usize,
    gone: i32,
) -> (i32, Vec<i32>, Vec<i32>) {
    let mut last = Vec::new();
    let found = eventually(Duration::from_secs(30), || {
        last = cluster
            .nodes
            .iter()
            .filter(|n| n.broker.running() && n.roles.contains("broker"))
            .map(|n| partitions_of(&format!("127.0.0.1:{}", n.port), topic))
            .find(|p| !p.is_empty())
            .unwrap_or_default();
        last.first().is_some_and(|(leader, _, isr)| {
            *leader >= 0 && *leader != gone && !isr.contains(&gone) && isr.len() == size
        })
    });
    assert!(
        found,
        "{topic}-0 did not reach an ISR of {size}: {last:?}\n{}",
        cluster.logs()
    );
    last[0].clone()
}

/// The coordinator of `key` (`key_type` 0: a group, 1: a transactional id) as `addr` answers
/// FindCoordinator; None while there is none.
pub fn coordinator_of(
    rt: &tokio::runtime::Runtime,
    addr: &str,
    key: &str,
    key_type: i8,
) -> Option<i32> {
    use kafka_protocol::messages::FindCoordinatorRequest;
    rt.block_on(async {
        let mut client = strata::client::Client::connect(addr).await.ok()?;
        let request = FindCoordinatorRequest::default()
            .with_key(key.to_string().into())
            .with_key_type(key_type);
        let response = client.send_versioned(request, 3).await.ok()?;
        (response.error_code == 0).then_some(response.node_id.0)
    })
}
