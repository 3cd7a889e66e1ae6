//! `strata groups`: kafka-consumer-groups.sh over the Kafka protocol: `--list`, `--describe`
//! (offsets and lag, `--members`, `--state`), `--delete`, `--delete-offsets` and
//! `--reset-offsets` (every scope and target of Kafka's tool, `--export` and `--from-file`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::client::Client;

mod describe;
mod reset;

pub use reset::{parse_datetime, parse_duration};

#[derive(Debug, Args)]
pub struct GroupsArgs {
    /// The broker to connect to (host:port).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap_server: String,
    /// Client settings for the connection (security.protocol, sasl.*, ssl.*), as Kafka's tools.
    #[arg(long)]
    pub command_config: Option<std::path::PathBuf>,
    /// List all consumer groups.
    #[arg(long)]
    pub list: bool,
    /// Describe the groups: their offsets and lag (the default), --members or --state.
    #[arg(long)]
    pub describe: bool,
    /// Delete the groups (only groups without members).
    #[arg(long)]
    pub delete: bool,
    /// Delete the group's committed offsets of --topic (partitions it no longer consumes).
    #[arg(long)]
    pub delete_offsets: bool,
    /// Reset the groups' offsets (a dry run unless --execute).
    #[arg(long)]
    pub reset_offsets: bool,
    /// The group (repeatable).
    #[arg(long)]
    pub group: Vec<String>,
    /// Every group (for --describe, --delete and --reset-offsets).
    #[arg(long)]
    pub all_groups: bool,
    /// With --list: each group's state. With --describe: the state view (coordinator,
    /// assignment strategy, state, members).
    #[arg(long)]
    pub state: bool,
    /// With --describe: the members view (consumer id, host, client id, partition count).
    #[arg(long)]
    pub members: bool,
    /// With --describe: the offsets view (the default).
    #[arg(long)]
    pub offsets: bool,
    /// With --describe --members: each member's assignment too.
    #[arg(long)]
    pub verbose: bool,
    /// The topic (`topic` or `topic:p1,p2`), repeatable: what --reset-offsets and
    /// --delete-offsets act on.
    #[arg(long)]
    pub topic: Vec<String>,
    /// --reset-offsets: every topic the group has offsets for.
    #[arg(long)]
    pub all_topics: bool,
    /// --reset-offsets to the earliest offset.
    #[arg(long)]
    pub to_earliest: bool,
    /// --reset-offsets to the latest offset.
    #[arg(long)]
    pub to_latest: bool,
    /// --reset-offsets to the committed offset (the latest where none is committed).
    #[arg(long)]
    pub to_current: bool,
    /// --reset-offsets to this offset (kept within the partition's earliest and latest).
    #[arg(long)]
    pub to_offset: Option<i64>,
    /// --reset-offsets by this many from the committed offset (may be negative).
    #[arg(long, allow_negative_numbers = true)]
    pub shift_by: Option<i64>,
    /// --reset-offsets to the first offset at or after this time (`YYYY-MM-DDTHH:mm:SS.sss`,
    /// UTC).
    #[arg(long)]
    pub to_datetime: Option<String>,
    /// --reset-offsets to the first offset at or after now minus this ISO-8601 duration
    /// (`PnDTnHnMnS`, e.g. PT1H30M).
    #[arg(long)]
    pub by_duration: Option<String>,
    /// --reset-offsets to the offsets in this CSV file (`topic,partition,offset`, or
    /// `group,topic,partition,offset` for several groups), as --export writes it.
    #[arg(long)]
    pub from_file: Option<PathBuf>,
    /// --reset-offsets: print the new offsets as CSV, for --from-file.
    #[arg(long)]
    pub export: bool,
    /// --reset-offsets: commit the new offsets (otherwise only show them).
    #[arg(long)]
    pub execute: bool,
    /// --reset-offsets: only show the new offsets (the default).
    #[arg(long)]
    pub dry_run: bool,
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn error_name(code: i16) -> String {
    crate::client::error_name(code).unwrap_or_else(|| format!("error {code}"))
}

async fn committed(client: &mut Client, group: &str) -> Result<BTreeMap<(String, i32), i64>> {
    let response = client
        .send(
            OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s(group)))
                .with_topics(None)]),
        )
        .await?;
    let mut out = BTreeMap::new();
    if let Some(g) = response.groups.first() {
        if g.error_code != 0 {
            bail!(
                "cannot fetch offsets of {group}: {}",
                error_name(g.error_code)
            );
        }
        for t in &g.topics {
            for p in &t.partitions {
                out.insert((t.name.to_string(), p.partition_index), p.committed_offset);
            }
        }
    } else {
        for t in &response.topics {
            for p in &t.partitions {
                out.insert((t.name.to_string(), p.partition_index), p.committed_offset);
            }
        }
    }
    Ok(out)
}

/// ListOffsets for every partition with the given timestamp (-1 latest, -2 earliest, or a time).
async fn list_offsets(
    client: &mut Client,
    partitions: &[(String, i32)],
    timestamp: i64,
) -> Result<BTreeMap<(String, i32), i64>> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        by_topic.entry(t).or_default().push(*p);
    }
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(
            by_topic
                .iter()
                .map(|(t, ps)| {
                    ListOffsetsTopic::default()
                        .with_name(TopicName(s(t)))
                        .with_partitions(
                            ps.iter()
                                .map(|p| {
                                    ListOffsetsPartition::default()
                                        .with_partition_index(*p)
                                        .with_timestamp(timestamp)
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let response = client.send(request).await?;
    let mut out = BTreeMap::new();
    for t in response.topics {
        for p in t.partitions {
            if p.error_code != 0 {
                bail!(
                    "cannot list offsets of {}-{}: {}",
                    &*t.name,
                    p.partition_index,
                    error_name(p.error_code)
                );
            }
            out.insert((t.name.to_string(), p.partition_index), p.offset);
        }
    }
    Ok(out)
}

/// Partitions of the topics named by `--topic` (`t` or `t:0,1`).
async fn topic_partitions(client: &mut Client, specs: &[String]) -> Result<Vec<(String, i32)>> {
    let mut out = Vec::new();
    for spec in specs {
        let (name, list) = match spec.split_once(':') {
            Some((n, ps)) => (n, Some(ps)),
            None => (spec.as_str(), None),
        };
        if let Some(ps) = list {
            for p in ps.split(',') {
                out.push((
                    name.to_string(),
                    p.trim().parse().context("partition number")?,
                ));
            }
            continue;
        }
        let metadata = client
            .send(MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(TopicName(s(name)))),
            ])))
            .await?;
        let topic = metadata.topics.first().context("no metadata")?;
        if topic.error_code != 0 {
            bail!("topic {name}: {}", error_name(topic.error_code));
        }
        for p in &topic.partitions {
            out.push((name.to_string(), p.partition_index));
        }
    }
    out.sort();
    Ok(out)
}

/// The partitions each member is assigned (ConsumerProtocolAssignment: version, then topics
/// with their partitions).
fn assignment_partitions(bytes: &[u8]) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    let read_i32 = |at: usize| -> Option<i32> {
        Some(i32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    let Some(topics) = read_i32(2) else {
        return out;
    };
    let mut at = 6;
    for _ in 0..topics.max(0) {
        let Some(len) = bytes.get(at..at + 2) else {
            break;
        };
        let len = i16::from_be_bytes([len[0], len[1]]).max(0) as usize;
        let Some(name) = bytes.get(at + 2..at + 2 + len) else {
            break;
        };
        let name = String::from_utf8_lossy(name).into_owned();
        at += 2 + len;
        let Some(n) = read_i32(at) else { break };
        at += 4;
        for _ in 0..n.max(0) {
            let Some(p) = read_i32(at) else { break };
            out.push((name.clone(), p));
            at += 4;
        }
    }
    out
}

/// Every group's id and state (ListGroups).
async fn list_groups(client: &mut Client) -> Result<Vec<(String, String)>> {
    let response = client.send(ListGroupsRequest::default()).await?;
    if response.error_code != 0 {
        bail!("ListGroups failed: {}", error_name(response.error_code));
    }
    let mut groups: Vec<(String, String)> = response
        .groups
        .iter()
        .map(|g| (g.group_id.to_string(), g.group_state.to_string()))
        .collect();
    groups.sort();
    Ok(groups)
}

/// The groups an action is about: `--group`s, or every group with `--all-groups`.
async fn chosen_groups(client: &mut Client, args: &GroupsArgs) -> Result<Vec<String>> {
    match (args.all_groups, args.group.is_empty()) {
        (true, true) => Ok(list_groups(client)
            .await?
            .into_iter()
            .map(|(g, _)| g)
            .collect()),
        (true, false) => bail!("Option --all-groups cannot be used with --group"),
        (false, true) => bail!("Option --group or --all-groups is required"),
        (false, false) => Ok(args.group.clone()),
    }
}

pub async fn run(args: GroupsArgs) -> Result<()> {
    let actions = [
        args.list,
        args.describe,
        args.delete,
        args.delete_offsets,
        args.reset_offsets,
    ]
    .iter()
    .filter(|a| **a)
    .count();
    if actions != 1 {
        bail!(
            "Command must include exactly one action: --list, --describe, --delete, \
             --reset-offsets, --delete-offsets"
        );
    }
    let mut client =
        Client::connect_with(&args.bootstrap_server, args.command_config.as_deref()).await?;
    if args.list {
        let groups = list_groups(&mut client).await?;
        if args.state {
            println!("{:<40} STATE", "GROUP");
            for (g, state) in groups {
                println!("{g:<40} {state}");
            }
        } else {
            for (g, _) in groups {
                println!("{g}");
            }
        }
        return Ok(());
    }
    if args.delete_offsets {
        return reset::delete_offsets(&mut client, &args).await;
    }
    let groups = chosen_groups(&mut client, &args).await?;
    if args.describe {
        return describe::describe(&mut client, &args, &groups).await;
    }
    if args.delete {
        let response = client
            .send(
                DeleteGroupsRequest::default()
                    .with_groups_names(groups.iter().map(|g| GroupId(s(g))).collect()),
            )
            .await?;
        let mut failed = false;
        for r in response.results {
            if r.error_code == 0 {
                println!("Deletion of group '{}' succeeded.", &*r.group_id);
            } else {
                failed = true;
                println!(
                    "Deletion of group '{}' failed: {}",
                    &*r.group_id,
                    error_name(r.error_code)
                );
            }
        }
        if failed {
            bail!("some groups were not deleted");
        }
        return Ok(());
    }
    reset::reset_offsets(&mut client, &args, &groups).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_parse_as_utc() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00.000").unwrap(), 0);
        assert_eq!(
            parse_datetime("2026-11-22T04:20:00").unwrap(),
            1_795_321_200_000
        );
        assert!(parse_datetime("yesterday").is_err());
    }

    #[test]
    fn assignments_decode() {
        // version 0, [("t", [0, 2])], no user data
        let bytes = [
            0, 0, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2, 0xff, 0xff, 0xff,
            0xff,
        ];
        assert_eq!(
            assignment_partitions(&bytes),
            vec![("t".to_string(), 0), ("t".to_string(), 2)]
        );
    }
}
