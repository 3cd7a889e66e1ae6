//! KRaft's keys: `process.roles`, `controller.quorum.voters`, `controller.listener.names`,
//! `metadata.log.dir` and the quorum's timeouts.
//!
//! Without `process.roles` the broker runs alone, its metadata local (the zero-configuration
//! default). With it, the node takes part in a cluster whose metadata lives in a replicated log.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::listeners::Listener;
use super::{invalid, parse_num, ConfigError};

/// `process.roles`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessRoles {
    pub broker: bool,
    pub controller: bool,
}

/// A voter of `controller.quorum.voters`: `id@host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    pub host: String,
    pub port: u16,
}

impl Voter {
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A node's part in a cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct QuorumConfig {
    pub roles: ProcessRoles,
    /// `controller.quorum.voters`, by node id.
    pub voters: BTreeMap<i32, Voter>,
    /// `controller.listener.names`, upper-cased.
    pub listener_names: Vec<String>,
    /// The controller listener this node binds (a controller's), from `listeners`.
    pub listener: Option<Listener>,
    /// `metadata.log.dir` (the first log dir when unset).
    pub metadata_log_dir: PathBuf,
    /// `controller.quorum.election.timeout.ms`: a follower that hears nothing from the leader
    /// for between this and twice this starts an election.
    pub election_timeout_ms: u64,
    /// `controller.quorum.request.timeout.ms`
    pub request_timeout_ms: u64,
    /// `broker.session.timeout.ms`: a broker not heard from for this long is fenced.
    pub session_timeout_ms: u64,
    /// `broker.heartbeat.interval.ms`
    pub heartbeat_interval_ms: u64,
    /// `broker.rack`
    pub rack: Option<String>,
    /// `metadata.log.max.record.bytes.between.snapshots`: a snapshot of the image is taken once
    /// this many bytes of records were applied since the last one.
    pub snapshot_bytes: u64,
    /// How followers fetch and when leaders drop them from the ISR (`replica.*`).
    pub replication: ReplicationConfig,
    /// `auto.leader.rebalance.enable`: the controller moves leadership back to preferred
    /// replicas every `leader.imbalance.check.interval.seconds`.
    pub auto_leader_rebalance: bool,
    pub leader_imbalance_check_interval_ms: u64,
}

/// Kafka's `replica.*` settings for followers and leaders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationConfig {
    /// `replica.lag.time.max.ms`: a follower that has not caught up with the leader's log end
    /// for this long leaves the ISR.
    pub lag_time_max_ms: u64,
    /// `replica.fetch.wait.max.ms`: how long a follower's fetch waits at the leader for data.
    pub fetch_wait_max_ms: u64,
    /// `replica.fetch.max.bytes`: per partition of a follower's fetch.
    pub fetch_max_bytes: u64,
    /// `replica.fetch.response.max.bytes`
    pub fetch_response_max_bytes: u64,
    /// `replica.fetch.backoff.ms`: the pause after a failed fetch.
    pub fetch_backoff_ms: u64,
    /// `replica.socket.timeout.ms`: an answer from the leader later than this fails the fetch.
    pub socket_timeout_ms: u64,
    /// `replica.selector.class` = Kafka's RackAwareReplicaSelector: a consumer that names its
    /// rack is sent to an in-sync replica in that rack (KIP-392). Off by default, as in Kafka.
    pub rack_aware_selector: bool,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            lag_time_max_ms: 30_000,
            fetch_wait_max_ms: 500,
            fetch_max_bytes: 1_048_576,
            fetch_response_max_bytes: 10_485_760,
            fetch_backoff_ms: 1000,
            socket_timeout_ms: 30_000,
            rack_aware_selector: false,
        }
    }
}

/// The value of `controller.listener.names`, upper-cased.
pub fn controller_listener_names(get: &dyn Fn(&str) -> String) -> Vec<String> {
    get("controller.listener.names")
        .split(',')
        .map(|s| s.trim().to_ascii_uppercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Whether `process.roles` names the controller role alone: such a node binds no listener
/// besides its controller listener.
pub fn controller_only(get: &dyn Fn(&str) -> String) -> bool {
    matches!(
        parse_roles(&get("process.roles")),
        Ok(Some(ProcessRoles {
            broker: false,
            controller: true
        }))
    )
}

fn parse_roles(raw: &str) -> Result<Option<ProcessRoles>, ConfigError> {
    let key = "process.roles";
    if raw.trim().is_empty() {
        return Ok(None);
    }
    let mut roles = ProcessRoles {
        broker: false,
        controller: false,
    };
    for role in raw.split(',').map(str::trim) {
        match role.to_ascii_lowercase().as_str() {
            "broker" if !roles.broker => roles.broker = true,
            "controller" if !roles.controller => roles.controller = true,
            "broker" | "controller" => {
                return Err(invalid(
                    key,
                    raw,
                    format!("Duplicate role names found in `{key}`"),
                ))
            }
            _ => {
                return Err(invalid(
                    key,
                    raw,
                    format!(
                        "Unknown process role '{role}' (valid values are broker and controller)"
                    ),
                ))
            }
        }
    }
    Ok(Some(roles))
}

/// Parses `controller.quorum.voters`: `1@host:9093,2@host:9093,...`.
pub fn parse_voters(raw: &str) -> Result<BTreeMap<i32, Voter>, ConfigError> {
    let key = "controller.quorum.voters";
    let mut voters = BTreeMap::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = || {
            invalid(
                key,
                raw,
                format!(
                    "Failed to parse voter string: '{entry}' (expected {{id}}@{{host}}:{{port}})"
                ),
            )
        };
        let (id, addr) = entry.split_once('@').ok_or_else(bad)?;
        let id: i32 = id.trim().parse().map_err(|_| bad())?;
        let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if id < 0 || host.is_empty() {
            return Err(bad());
        }
        if voters.insert(id, Voter { host, port }).is_some() {
            return Err(invalid(key, raw, format!("Duplicate voter id {id}")));
        }
    }
    Ok(voters)
}

/// The quorum's part of the configuration; None without `process.roles`. `controller_binds`
/// are the listeners of `listeners` named in `controller.listener.names`.
pub fn parse_quorum(
    get: &dyn Fn(&str) -> String,
    node_id: i32,
    controller_binds: Vec<Listener>,
    first_log_dir: &std::path::Path,
) -> Result<Option<QuorumConfig>, ConfigError> {
    let names = controller_listener_names(get);
    let Some(roles) = parse_roles(&get("process.roles"))? else {
        if !controller_binds.is_empty() {
            return Err(invalid(
                "controller.listener.names",
                &get("controller.listener.names"),
                "controller listeners need process.roles (a node of a cluster)",
            ));
        }
        return Ok(None);
    };
    let voters_raw = get("controller.quorum.voters");
    let voters = parse_voters(&voters_raw)?;
    if voters.is_empty() {
        let bootstrap = get("controller.quorum.bootstrap.servers");
        return Err(invalid(
            "controller.quorum.voters",
            &voters_raw,
            if bootstrap.trim().is_empty() {
                "If using process.roles, controller.quorum.voters must contain a parseable set of voters."
            } else {
                "Strata's quorum is static for now: list the voters in controller.quorum.voters (controller.quorum.bootstrap.servers alone, a dynamic quorum, is not supported yet)"
            },
        ));
    }
    if names.is_empty() {
        return Err(invalid(
            "controller.listener.names",
            "",
            "controller.listener.names must contain at least one value when running KRaft",
        ));
    }
    let listener = if roles.controller {
        if !voters.contains_key(&node_id) {
            return Err(invalid(
                "controller.quorum.voters",
                &voters_raw,
                format!("If process.roles contains just the 'controller' role, the node id {node_id} must be included in the set of voters controller.quorum.voters={voters_raw}"),
            ));
        }
        let bind = controller_binds
            .iter()
            .find(|l| l.name == names[0])
            .cloned()
            .ok_or_else(|| {
                invalid(
                    "listeners",
                    &get("listeners"),
                    format!("The listeners config must contain a listener with the name {} (the first of controller.listener.names)", names[0]),
                )
            })?;
        Some(bind)
    } else {
        if voters.contains_key(&node_id) {
            return Err(invalid(
                "controller.quorum.voters",
                &voters_raw,
                format!("If process.roles contains just the 'broker' role, the node id {node_id} must not be included in the set of voters controller.quorum.voters={voters_raw}"),
            ));
        }
        // An observer of the quorum: it reaches the voters, binds no controller listener.
        if let Some(bind) = controller_binds.first() {
            return Err(invalid(
                "listeners",
                &get("listeners"),
                format!("The listeners config must not contain the controller listener {} when process.roles=broker (a broker-only node reaches the controllers of controller.quorum.voters)", bind.name),
            ));
        }
        None
    };
    let dir = get("metadata.log.dir");
    let metadata_log_dir = if dir.trim().is_empty() {
        first_log_dir.to_path_buf()
    } else {
        PathBuf::from(dir.trim())
    };
    let positive = |k: &str| -> Result<u64, ConfigError> {
        let v: u64 = parse_num(k, &get(k))?;
        if v == 0 {
            return Err(invalid(k, &get(k), "Value must be at least 1"));
        }
        Ok(v)
    };
    let rack = get("broker.rack");
    Ok(Some(QuorumConfig {
        roles,
        voters,
        listener_names: names,
        listener,
        metadata_log_dir,
        election_timeout_ms: positive("controller.quorum.election.timeout.ms")?,
        request_timeout_ms: positive("controller.quorum.request.timeout.ms")?,
        session_timeout_ms: positive("broker.session.timeout.ms")?,
        heartbeat_interval_ms: positive("broker.heartbeat.interval.ms")?,
        rack: (!rack.trim().is_empty()).then(|| rack.trim().to_string()),
        snapshot_bytes: positive("metadata.log.max.record.bytes.between.snapshots")?,
        auto_leader_rebalance: match get("auto.leader.rebalance.enable").trim() {
            "true" => true,
            "false" => false,
            other => {
                return Err(invalid(
                    "auto.leader.rebalance.enable",
                    other,
                    "Expected value to be either true or false",
                ))
            }
        },
        leader_imbalance_check_interval_ms: positive("leader.imbalance.check.interval.seconds")?
            .saturating_mul(1000),
        replication: ReplicationConfig {
            lag_time_max_ms: positive("replica.lag.time.max.ms")?,
            fetch_wait_max_ms: positive("replica.fetch.wait.max.ms")?,
            fetch_max_bytes: positive("replica.fetch.max.bytes")?,
            fetch_response_max_bytes: positive("replica.fetch.response.max.bytes")?,
            fetch_backoff_ms: positive("replica.fetch.backoff.ms")?,
            socket_timeout_ms: positive("replica.socket.timeout.ms")?,
            rack_aware_selector: match get("replica.selector.class").trim() {
                "" => false,
                c if c.ends_with("RackAwareReplicaSelector") => true,
                other => {
                    return Err(invalid(
                        "replica.selector.class",
                        other,
                        "only org.apache.kafka.common.replica.RackAwareReplicaSelector is offered",
                    ))
                }
            },
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voters_parse_as_kafka_writes_them() {
        let v = parse_voters("1@localhost:9093, 2@[::1]:9094,3@10.0.0.3:9095").unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[&1].addr(), "localhost:9093");
        assert_eq!(v[&2].addr(), "[::1]:9094");
        assert_eq!(v[&3].port, 9095);
        for bad in [
            "1localhost:9093",
            "x@h:1",
            "1@h",
            "1@h:99999",
            "1@h:1,1@g:2",
            "-1@h:1",
        ] {
            assert!(parse_voters(bad).is_err(), "{bad}");
        }
    }

    fn node(pairs: &[(&str, &str)]) -> Result<super::super::BrokerConfig, ConfigError> {
        let mut map: BTreeMap<String, String> = [
            ("controller.quorum.voters", "1@127.0.0.1:9093"),
            ("controller.listener.names", "CONTROLLER"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in pairs {
            map.insert(k.to_string(), v.to_string());
        }
        super::super::BrokerConfig::from_map(map)
    }

    #[test]
    fn a_broker_only_node_observes_and_a_controller_only_node_serves_no_clients() {
        let broker = node(&[
            ("process.roles", "broker"),
            ("node.id", "4"),
            ("listeners", "PLAINTEXT://127.0.0.1:9092"),
        ])
        .unwrap();
        let quorum = broker.quorum.unwrap();
        assert!(quorum.roles.broker && !quorum.roles.controller);
        assert_eq!(quorum.listener, None);
        assert_eq!(broker.listeners.len(), 1);
        // A broker-only node is no voter and binds no controller listener.
        for (id, listeners) in [
            ("1", "PLAINTEXT://127.0.0.1:9092"),
            (
                "4",
                "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
            ),
        ] {
            let refused = node(&[
                ("process.roles", "broker"),
                ("node.id", id),
                ("listeners", listeners),
            ])
            .expect_err(listeners)
            .to_string();
            assert!(refused.contains("broker"), "{refused}");
        }
        let controller = node(&[
            ("process.roles", "controller"),
            ("node.id", "1"),
            ("listeners", "CONTROLLER://127.0.0.1:9093"),
        ])
        .unwrap();
        assert!(controller.listeners.is_empty());
        let quorum = controller.quorum.unwrap();
        assert_eq!(quorum.listener.unwrap().port, 9093);
        // Nothing but the controller listener on a controller-only node.
        let refused = node(&[
            ("process.roles", "controller"),
            ("node.id", "1"),
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
            ),
        ])
        .expect_err("a client listener")
        .to_string();
        assert!(
            refused.contains("only contain KRaft controller listeners"),
            "{refused}"
        );
    }

    #[test]
    fn roles_are_broker_and_controller() {
        assert_eq!(parse_roles("").unwrap(), None);
        let both = parse_roles("broker, controller").unwrap().unwrap();
        assert!(both.broker && both.controller);
        assert!(parse_roles("broker,broker").is_err());
        assert!(parse_roles("zookeeper").is_err());
    }
}
