//! `strata groups`: kafka-consumer-groups.sh's main operations over the Kafka protocol:
//! `--list`, `--describe` (per-partition offsets and lag), `--delete`, `--reset-offsets`.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use clap::Args;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::client::Client;

#[derive(Debug, Args)]
pub struct GroupsArgs {
    /// The broker to connect to (host:port).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap_server: String,
    #[arg(long)]
    pub list: bool,
    #[arg(long)]
    pub describe: bool,
    #[arg(long)]
    pub delete: bool,
    #[arg(long)]
    pub reset_offsets: bool,
    /// The group (repeatable for --describe and --delete).
    #[arg(long)]
    pub group: Vec<String>,
    /// With --list: show each group's state.
    #[arg(long)]
    pub state: bool,
    /// --reset-offsets: the topic (`topic` or `topic:p1,p2`), repeatable.
    #[arg(long)]
    pub topic: Vec<String>,
    /// --reset-offsets: every topic the group has offsets for.
    #[arg(long)]
    pub all_topics: bool,
    #[arg(long)]
    pub to_earliest: bool,
    #[arg(long)]
    pub to_latest: bool,
    #[arg(long)]
    pub to_offset: Option<i64>,
    /// --reset-offsets: the first offset at or after this time (`YYYY-MM-DDTHH:mm:SS.sss`, UTC).
    #[arg(long)]
    pub to_datetime: Option<String>,
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

/// Parses `YYYY-MM-DDTHH:mm:SS[.sss]` (UTC) into milliseconds since the epoch.
pub fn parse_datetime(text: &str) -> Result<i64> {
    let bad =
        || anyhow::anyhow!("cannot parse --to-datetime {text:?}: expected YYYY-MM-DDTHH:mm:SS.sss");
    let (date, time) = text.trim_end_matches('Z').split_once('T').ok_or_else(bad)?;
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse())
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let (hms, millis) = match time.split_once('.') {
        Some((hms, ms)) => (hms, ms.parse::<i64>().map_err(|_| bad())?),
        None => (time, 0),
    };
    let t: Vec<i64> = hms
        .split(':')
        .map(|x| x.parse())
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    if d.len() != 3 || t.len() != 3 {
        return Err(bad());
    }
    // Days since the epoch of a civil date (Howard Hinnant's algorithm).
    let (y, m, day) = (d[0] - i64::from(d[1] <= 2), d[1], d[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(((days * 24 + t[0]) * 60 + t[1]) * 60_000 + t[2] * 1000 + millis)
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

pub async fn run(args: GroupsArgs) -> Result<()> {
    let actions = [args.list, args.describe, args.delete, args.reset_offsets]
        .iter()
        .filter(|a| **a)
        .count();
    if actions != 1 {
        bail!("Command must include exactly one action: --list, --describe, --delete, --reset-offsets");
    }
    let mut client = Client::connect(&args.bootstrap_server).await?;
    if args.list {
        let response = client.send(ListGroupsRequest::default()).await?;
        if response.error_code != 0 {
            bail!("ListGroups failed: {}", error_name(response.error_code));
        }
        let mut groups: Vec<_> = response.groups.iter().collect();
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        if args.state {
            println!("{:<40} STATE", "GROUP");
            for g in groups {
                println!("{:<40} {}", &*g.group_id, &*g.group_state);
            }
        } else {
            for g in groups {
                println!("{}", &*g.group_id);
            }
        }
        return Ok(());
    }
    if args.group.is_empty() {
        bail!("--group is required");
    }
    if args.delete {
        let response = client
            .send(
                DeleteGroupsRequest::default()
                    .with_groups_names(args.group.iter().map(|g| GroupId(s(g))).collect()),
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
    if args.describe {
        for group in &args.group {
            let described = client
                .send(DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]))
                .await?;
            let info = described
                .groups
                .first()
                .context("no group in the response")?;
            let offsets = committed(&mut client, group).await?;
            // Who holds each partition now.
            let mut owners: BTreeMap<(String, i32), (String, String, String)> = BTreeMap::new();
            for m in &info.members {
                for tp in assignment_partitions(&m.member_assignment) {
                    owners.insert(
                        tp,
                        (
                            m.member_id.to_string(),
                            m.client_host.to_string(),
                            m.client_id.to_string(),
                        ),
                    );
                }
            }
            let mut partitions: Vec<(String, i32)> = offsets.keys().cloned().collect();
            for tp in owners.keys() {
                if !partitions.contains(tp) {
                    partitions.push(tp.clone());
                }
            }
            partitions.sort();
            let ends = if partitions.is_empty() {
                BTreeMap::new()
            } else {
                list_offsets(&mut client, &partitions, -1).await?
            };
            if info.group_state.as_str() == "Dead" && offsets.is_empty() {
                bail!("Consumer group '{group}' does not exist.");
            }
            if info.members.is_empty() {
                println!("Consumer group '{group}' has no active members.");
            }
            println!();
            println!(
                "{:<24} {:<24} {:>9} {:>15} {:>15} {:>8} {:<44} {:<16} CLIENT-ID",
                "GROUP",
                "TOPIC",
                "PARTITION",
                "CURRENT-OFFSET",
                "LOG-END-OFFSET",
                "LAG",
                "CONSUMER-ID",
                "HOST",
            );
            for tp in &partitions {
                let current = offsets.get(tp).copied().filter(|o| *o >= 0);
                let end = ends.get(tp).copied();
                let lag = match (current, end) {
                    (Some(c), Some(e)) => (e - c).max(0).to_string(),
                    _ => "-".into(),
                };
                let (member, host, client_id) = owners
                    .get(tp)
                    .cloned()
                    .unwrap_or_else(|| ("-".into(), "-".into(), "-".into()));
                println!(
                    "{:<24} {:<24} {:>9} {:>15} {:>15} {:>8} {:<44} {:<16} {}",
                    group,
                    tp.0,
                    tp.1,
                    current.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
                    end.map(|e| e.to_string()).unwrap_or_else(|| "-".into()),
                    lag,
                    member,
                    host,
                    client_id
                );
            }
        }
        return Ok(());
    }
    // --reset-offsets
    let group = &args.group[0];
    let targets = [
        args.to_earliest,
        args.to_latest,
        args.to_offset.is_some(),
        args.to_datetime.is_some(),
    ]
    .iter()
    .filter(|t| **t)
    .count();
    if targets != 1 {
        bail!("--reset-offsets needs exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime");
    }
    let partitions = if args.all_topics {
        committed(&mut client, group).await?.into_keys().collect()
    } else if !args.topic.is_empty() {
        topic_partitions(&mut client, &args.topic).await?
    } else {
        bail!("--reset-offsets needs --topic or --all-topics");
    };
    let new_offsets: BTreeMap<(String, i32), i64> = if args.to_earliest {
        list_offsets(&mut client, &partitions, -2).await?
    } else if args.to_latest {
        list_offsets(&mut client, &partitions, -1).await?
    } else if let Some(o) = args.to_offset {
        // Clamped to what the partitions hold, as Kafka's tool does.
        let earliest = list_offsets(&mut client, &partitions, -2).await?;
        let latest = list_offsets(&mut client, &partitions, -1).await?;
        partitions
            .iter()
            .map(|tp| (tp.clone(), o.clamp(earliest[tp], latest[tp])))
            .collect()
    } else {
        let at = parse_datetime(args.to_datetime.as_deref().unwrap_or_default())?;
        let found = list_offsets(&mut client, &partitions, at).await?;
        let latest = list_offsets(&mut client, &partitions, -1).await?;
        partitions
            .iter()
            .map(|tp| {
                (
                    tp.clone(),
                    if found[tp] < 0 { latest[tp] } else { found[tp] },
                )
            })
            .collect()
    };
    println!(
        "{:<24} {:<24} {:>9} {:>15}",
        "GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"
    );
    for ((t, p), o) in &new_offsets {
        println!("{:<24} {:<24} {:>9} {:>15}", group, t, p, o);
    }
    if !args.execute {
        return Ok(());
    }
    let mut by_topic: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
    for ((t, p), o) in &new_offsets {
        by_topic.entry(t).or_default().push((*p, *o));
    }
    let response = client
        .send(
            OffsetCommitRequest::default()
                .with_group_id(GroupId(s(group)))
                .with_generation_id_or_member_epoch(-1)
                .with_member_id(s(""))
                .with_topics(
                    by_topic
                        .iter()
                        .map(|(t, ps)| {
                            OffsetCommitRequestTopic::default()
                                .with_name(TopicName(s(t)))
                                .with_partitions(
                                    ps.iter()
                                        .map(|(p, o)| {
                                            OffsetCommitRequestPartition::default()
                                                .with_partition_index(*p)
                                                .with_committed_offset(*o)
                                                .with_committed_metadata(Some(s("")))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                ),
        )
        .await?;
    for t in response.topics {
        for p in t.partitions {
            if p.error_code != 0 {
                bail!(
                    "cannot reset offsets of group {group} (it must have no active members): {}",
                    error_name(p.error_code)
                );
            }
        }
    }
    Ok(())
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
