//! `strata reassign` (kafka-reassign-partitions.sh): moves partitions' replicas between brokers
//! through the controller (AlterPartitionReassignments), with Kafka's flags, JSON and lines:
//! `--generate` proposes an assignment of topics over a broker list, `--execute` starts the
//! reassignment a JSON file describes (printing the current assignment for a rollback; with
//! `--throttle`, replication throttled), `--verify` tells whether each is complete (and then
//! removes the throttles), `--cancel` cancels them, `--list` shows those in progress.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::*;

use crate::client::{error_text, Client};

#[derive(Debug, Args)]
pub struct ReassignArgs {
    /// A broker to connect to (host:port).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap_server: String,
    /// Client settings for the connection (security.protocol, sasl.*, ssl.*).
    #[arg(long = "command-config", alias = "admin.config")]
    pub command_config: Option<std::path::PathBuf>,
    /// The reassignment: {"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1,2]}]}.
    #[arg(long)]
    pub reassignment_json_file: Option<std::path::PathBuf>,
    /// The topics to propose an assignment for: {"topics":[{"topic":"t"}],"version":1}.
    #[arg(long)]
    pub topics_to_move_json_file: Option<std::path::PathBuf>,
    /// The brokers to propose an assignment over: "1,2,3".
    #[arg(long)]
    pub broker_list: Option<String>,
    /// Propose an assignment (with --topics-to-move-json-file and --broker-list).
    #[arg(long)]
    pub generate: bool,
    /// Start the reassignment of --reassignment-json-file.
    #[arg(long)]
    pub execute: bool,
    /// Whether the reassignment of --reassignment-json-file is complete.
    #[arg(long)]
    pub verify: bool,
    /// Cancel the reassignment of --reassignment-json-file.
    #[arg(long)]
    pub cancel: bool,
    /// The reassignments in progress.
    #[arg(long)]
    pub list: bool,
    /// With --execute: throttle the replication of the moving partitions to this many bytes
    /// per second (leader.replication.throttled.rate / follower.replication.throttled.rate on
    /// the brokers involved, and the topics' *.replication.throttled.replicas); --verify
    /// removes the throttles once the reassignment is complete.
    #[arg(long)]
    pub throttle: Option<u64>,
    /// With --verify: leave the throttles in place.
    #[arg(long)]
    pub preserve_throttles: bool,
    /// Kafka's: ignore racks when generating (the proposal ignores them anyway).
    #[arg(long)]
    pub disable_rack_aware: bool,
    /// How long to wait for the controller, in ms.
    #[arg(long, default_value_t = 10_000)]
    pub timeout: i32,
}

type Assignment = BTreeMap<(String, i32), Vec<i32>>;

/// An assignment as Kafka's tool writes it (its keys in Kafka's order).
fn assignment_json(a: &Assignment) -> String {
    let partitions: Vec<String> = a
        .iter()
        .map(|((t, p), r)| {
            format!(
                r#"{{"topic":{},"partition":{p},"replicas":[{}],"log_dirs":[{}]}}"#,
                serde_json::Value::from(t.as_str()),
                list_of(r),
                vec![r#""any""#; r.len()].join(",")
            )
        })
        .collect();
    format!(r#"{{"version":1,"partitions":[{}]}}"#, partitions.join(","))
}

fn read_json(path: &std::path::Path) -> Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// The reassignment a file describes.
fn read_reassignment(path: &std::path::Path) -> Result<Assignment> {
    let json = read_json(path)?;
    let partitions = json["partitions"]
        .as_array()
        .ok_or_else(|| anyhow!("the file has no \"partitions\" array"))?;
    let mut out = Assignment::new();
    for p in partitions {
        let topic = p["topic"]
            .as_str()
            .ok_or_else(|| anyhow!("a partition without \"topic\""))?;
        let partition = p["partition"]
            .as_i64()
            .ok_or_else(|| anyhow!("a partition without \"partition\""))?
            as i32;
        let replicas = p["replicas"]
            .as_array()
            .ok_or_else(|| anyhow!("{topic}-{partition} has no \"replicas\""))?
            .iter()
            .map(|r| r.as_i64().map(|r| r as i32))
            .collect::<Option<Vec<i32>>>()
            .ok_or_else(|| anyhow!("{topic}-{partition}: replicas must be broker ids"))?;
        if out
            .insert((topic.to_string(), partition), replicas)
            .is_some()
        {
            bail!("{topic}-{partition} appears twice in the reassignment");
        }
    }
    if out.is_empty() {
        bail!("the reassignment names no partition");
    }
    Ok(out)
}

/// The current replicas of every partition of `topics`, as Metadata tells.
async fn current(client: &mut Client, topics: &[String]) -> Result<Assignment> {
    let request = MetadataRequest::default().with_topics(Some(
        topics
            .iter()
            .map(|t| {
                metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(TopicName(t.clone().into())))
            })
            .collect(),
    ));
    let metadata: MetadataResponse = client.send(request).await?;
    let mut out = Assignment::new();
    for t in &metadata.topics {
        let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
        if t.error_code != 0 {
            bail!("{name}: {}", error_text(t.error_code, None));
        }
        for p in &t.partitions {
            out.insert(
                (name.clone(), p.partition_index),
                p.replica_nodes.iter().map(|b| b.0).collect(),
            );
        }
    }
    Ok(out)
}

async fn alter(
    client: &mut Client,
    targets: &BTreeMap<(String, i32), Option<Vec<i32>>>,
    timeout: i32,
) -> Result<Vec<(String, Option<String>)>> {
    let mut topics: Vec<ReassignableTopic> = Vec::new();
    for ((t, p), replicas) in targets {
        let partition = ReassignablePartition::default()
            .with_partition_index(*p)
            .with_replicas(
                replicas
                    .as_ref()
                    .map(|r| r.iter().map(|b| BrokerId(*b)).collect()),
            );
        match topics.iter_mut().find(|x| x.name.0.as_str() == t) {
            Some(x) => x.partitions.push(partition),
            None => topics.push(
                ReassignableTopic::default()
                    .with_name(TopicName(t.clone().into()))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(timeout)
        .with_allow_replication_factor_change(true)
        .with_topics(topics);
    let response: AlterPartitionReassignmentsResponse = client.send(request).await?;
    if response.error_code != 0 {
        bail!(
            "{}",
            error_text(response.error_code, response.error_message.as_ref())
        );
    }
    Ok(response
        .responses
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (
                    format!("{}-{}", t.name.0, p.partition_index),
                    (p.error_code != 0).then(|| error_text(p.error_code, p.error_message.as_ref())),
                )
            })
        })
        .collect())
}

/// The partitions being reassigned: (topic-partition, replicas, adding, removing).
async fn ongoing(client: &mut Client) -> Result<Vec<(String, Vec<i32>, Vec<i32>, Vec<i32>)>> {
    let response: ListPartitionReassignmentsResponse = client
        .send(ListPartitionReassignmentsRequest::default().with_timeout_ms(10_000))
        .await?;
    if response.error_code != 0 {
        bail!(
            "{}",
            error_text(response.error_code, response.error_message.as_ref())
        );
    }
    let ids = |b: &[BrokerId]| b.iter().map(|b| b.0).collect::<Vec<i32>>();
    Ok(response
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (
                    format!("{}-{}", t.name.0, p.partition_index),
                    ids(&p.replicas),
                    ids(&p.adding_replicas),
                    ids(&p.removing_replicas),
                )
            })
        })
        .collect())
}

fn list_of(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

/// Kafka's proposal: each topic's partitions spread round robin over the brokers, keeping
/// their replication factor (replica i of partition p on broker (start + p + i) mod n).
fn propose(current: &Assignment, brokers: &[i32]) -> Result<Assignment> {
    let mut out = Assignment::new();
    let mut start = 0usize;
    let mut last_topic = String::new();
    for ((t, p), replicas) in current {
        if *t != last_topic {
            last_topic = t.clone();
            start = (start + 1) % brokers.len();
        }
        if replicas.len() > brokers.len() {
            bail!(
                "{t}-{p} has {} replicas, more than the {} brokers given",
                replicas.len(),
                brokers.len()
            );
        }
        let proposed = (0..replicas.len())
            .map(|i| brokers[(start + *p as usize + i) % brokers.len()])
            .collect();
        out.insert((t.clone(), *p), proposed);
    }
    Ok(out)
}

pub async fn run(args: ReassignArgs) -> Result<()> {
    let actions = [
        args.generate,
        args.execute,
        args.verify,
        args.cancel,
        args.list,
    ];
    if actions.iter().filter(|a| **a).count() != 1 {
        bail!("give exactly one of --generate, --execute, --verify, --cancel and --list");
    }
    if args.throttle.is_some() && !args.execute {
        bail!("--throttle is given with --execute");
    }
    let mut client =
        Client::connect_with(&args.bootstrap_server, args.command_config.as_deref()).await?;
    if args.list {
        let found = ongoing(&mut client).await?;
        if found.is_empty() {
            println!("No partition reassignments found.");
        } else {
            println!("Current partition reassignments:");
            for (tp, replicas, adding, removing) in found {
                println!(
                    "{tp}: replicas: {}. adding: {}. removing: {}.",
                    list_of(&replicas),
                    list_of(&adding),
                    list_of(&removing)
                );
            }
        }
        return Ok(());
    }
    if args.generate {
        let path = args
            .topics_to_move_json_file
            .as_ref()
            .ok_or_else(|| anyhow!("--generate needs --topics-to-move-json-file"))?;
        let brokers: Vec<i32> = args
            .broker_list
            .as_deref()
            .ok_or_else(|| anyhow!("--generate needs --broker-list"))?
            .split(',')
            .map(|b| b.trim().parse().context("--broker-list: broker ids"))
            .collect::<Result<_>>()?;
        let json = read_json(path)?;
        let topics: Vec<String> = json["topics"]
            .as_array()
            .ok_or_else(|| anyhow!("the file has no \"topics\" array"))?
            .iter()
            .filter_map(|t| t["topic"].as_str().map(str::to_string))
            .collect();
        let now = current(&mut client, &topics).await?;
        println!("Current partition replica assignment");
        println!("{}", assignment_json(&now));
        println!();
        println!("Proposed partition reassignment configuration");
        println!("{}", assignment_json(&propose(&now, &brokers)?));
        return Ok(());
    }
    let path = args
        .reassignment_json_file
        .as_ref()
        .ok_or_else(|| anyhow!("--execute, --verify and --cancel need --reassignment-json-file"))?;
    let wanted = read_reassignment(path)?;
    let topics: Vec<String> = wanted
        .keys()
        .map(|(t, _)| t.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let now = current(&mut client, &topics).await?;
    if let Some((t, p)) = wanted.keys().find(|k| !now.contains_key(*k)) {
        bail!("Topic-partition {t}-{p} does not exist");
    }
    if args.execute {
        let before: Assignment = now
            .into_iter()
            .filter(|(k, _)| wanted.contains_key(k))
            .collect();
        println!("Current partition replica assignment");
        println!();
        println!("{}", assignment_json(&before));
        println!();
        println!("Save this to use as the --reassignment-json-file option during rollback");
        if let Some(rate) = args.throttle {
            throttle(&mut client, &before, &wanted, rate).await?;
            println!("Warning: You must run --verify periodically, until the reassignment completes, to ensure the throttle is removed.");
            println!("The inter-broker throttle limit was set to {rate} B/s");
        }
        let targets = wanted.into_iter().map(|(k, r)| (k, Some(r))).collect();
        let results = alter(&mut client, &targets, args.timeout).await?;
        let failed: Vec<String> = results
            .iter()
            .filter_map(|(tp, e)| e.as_ref().map(|e| format!("{tp}: {e}")))
            .collect();
        if !failed.is_empty() {
            bail!("Error reassigning partition(s):\n{}", failed.join("\n"));
        }
        let started: Vec<&str> = results.iter().map(|(tp, _)| tp.as_str()).collect();
        let noun = if started.len() == 1 {
            "reassignment"
        } else {
            "reassignments"
        };
        println!(
            "Successfully started partition {noun} for {}",
            started.join(",")
        );
        return Ok(());
    }
    if args.cancel {
        let targets = wanted.into_keys().map(|k| (k, None)).collect();
        let results = alter(&mut client, &targets, args.timeout).await?;
        let (done, failed): (Vec<_>, Vec<_>) = results.into_iter().partition(|(_, e)| e.is_none());
        if !done.is_empty() {
            let names: Vec<String> = done.into_iter().map(|(tp, _)| tp).collect();
            println!(
                "Successfully cancelled partition reassignments for: {}",
                names.join(",")
            );
        }
        if !failed.is_empty() {
            let lines: Vec<String> = failed
                .into_iter()
                .map(|(tp, e)| format!("{tp}: {}", e.unwrap_or_default()))
                .collect();
            bail!(
                "Error cancelling partition reassignment for:\n{}",
                lines.join("\n")
            );
        }
        return Ok(());
    }
    // --verify
    let in_progress: Vec<String> = ongoing(&mut client)
        .await?
        .into_iter()
        .map(|(tp, ..)| tp)
        .collect();
    println!("Status of partition reassignment:");
    let mut complete = true;
    for ((t, p), target) in &wanted {
        let tp = format!("{t}-{p}");
        if in_progress.contains(&tp) {
            complete = false;
            println!("Reassignment of partition {tp} is still in progress.");
        } else if now.get(&(t.clone(), *p)) == Some(target) {
            println!("Reassignment of partition {tp} is completed.");
        } else {
            complete = false;
            println!(
                "There is no active reassignment of partition {tp}, but replica set is {} rather than {}.",
                list_of(now.get(&(t.clone(), *p)).map_or(&[][..], Vec::as_slice)),
                list_of(target)
            );
        }
    }
    if !complete {
        std::process::exit(1);
    }
    if !args.preserve_throttles {
        clear_throttles(&mut client, &topics).await?;
    }
    Ok(())
}

/// Throttles the moving partitions' replication (as Kafka's tool): on the leader side for
/// their current replicas, on the follower side for the new ones, at `rate` on every broker
/// involved.
async fn throttle(
    client: &mut Client,
    before: &Assignment,
    wanted: &Assignment,
    rate: u64,
) -> Result<()> {
    let mut per_topic: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    let mut brokers = std::collections::BTreeSet::new();
    for ((t, p), target) in wanted {
        let current = before.get(&(t.clone(), *p)).cloned().unwrap_or_default();
        let (leaders, followers) = per_topic.entry(t.clone()).or_default();
        leaders.extend(current.iter().map(|b| format!("{p}:{b}")));
        followers.extend(
            target
                .iter()
                .filter(|b| !current.contains(b))
                .map(|b| format!("{p}:{b}")),
        );
        brokers.extend(current.iter().chain(target).copied());
    }
    for (topic, (leaders, followers)) in per_topic {
        let set = [
            format!("{}={}", LEADER_REPLICAS, leaders.join(",")),
            format!("{}={}", FOLLOWER_REPLICAS, followers.join(",")),
        ];
        crate::configs::alter_configs(client, TOPIC, &topic, &set, &[]).await?;
    }
    for b in brokers {
        let set = [
            format!("{LEADER_RATE}={rate}"),
            format!("{FOLLOWER_RATE}={rate}"),
        ];
        crate::configs::alter_configs(client, BROKER, &b.to_string(), &set, &[]).await?;
    }
    Ok(())
}

/// Removes the throttles a reassignment set: the rates on every broker, the replica lists on
/// the reassigned topics.
async fn clear_throttles(client: &mut Client, topics: &[String]) -> Result<()> {
    let metadata: MetadataResponse = client
        .send(MetadataRequest::default().with_topics(Some(Vec::new())))
        .await?;
    let mut brokers: Vec<i32> = metadata.brokers.iter().map(|b| b.node_id.0).collect();
    brokers.sort();
    println!();
    println!(
        "Clearing broker-level throttles on brokers {}",
        list_of(&brokers)
    );
    let rates = [LEADER_RATE.to_string(), FOLLOWER_RATE.to_string()];
    for b in &brokers {
        crate::configs::alter_configs(client, BROKER, &b.to_string(), &[], &rates).await?;
    }
    let lists = [LEADER_REPLICAS.to_string(), FOLLOWER_REPLICAS.to_string()];
    for topic in topics {
        println!("Clearing topic-level throttles on topic {topic}");
        crate::configs::alter_configs(client, TOPIC, topic, &[], &lists).await?;
    }
    Ok(())
}

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const LEADER_RATE: &str = "leader.replication.throttled.rate";
const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";
const LEADER_REPLICAS: &str = "leader.replication.throttled.replicas";
const FOLLOWER_REPLICAS: &str = "follower.replication.throttled.replicas";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proposal_spreads_partitions_round_robin_and_keeps_their_replication_factor() {
        let mut now = Assignment::new();
        for p in 0..3 {
            now.insert(("t".to_string(), p), vec![1, 2]);
        }
        let proposed = propose(&now, &[4, 5, 6]).unwrap();
        let all: Vec<Vec<i32>> = proposed.values().cloned().collect();
        assert_eq!(all, vec![vec![5, 6], vec![6, 4], vec![4, 5]]);
        assert!(
            propose(&now, &[4]).is_err(),
            "two replicas need two brokers"
        );
    }

    #[test]
    fn a_reassignment_file_is_read_as_kafka_writes_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        std::fs::write(
            &path,
            r#"{"version":1,"partitions":[{"topic":"t","partition":1,"replicas":[3,1],"log_dirs":["any","any"]}]}"#,
        )
        .unwrap();
        let read = read_reassignment(&path).unwrap();
        assert_eq!(read[&("t".to_string(), 1)], vec![3, 1]);
        assert_eq!(
            assignment_json(&read),
            r#"{"version":1,"partitions":[{"topic":"t","partition":1,"replicas":[3,1],"log_dirs":["any","any"]}]}"#
        );
    }
}
