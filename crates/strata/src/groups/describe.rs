//! `--describe`: kafka-consumer-groups.sh's three views of a group: its offsets and lag (the
//! default, `--offsets`), its members (`--members`, with `--verbose` their assignments) and its
//! state (`--state`).

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::*;

use super::{assignment_partitions, committed, error_name, list_offsets, s, GroupsArgs};
use crate::client::Client;

pub(super) async fn describe(
    client: &mut Client,
    args: &GroupsArgs,
    groups: &[String],
) -> Result<()> {
    if [args.members, args.state, args.offsets]
        .iter()
        .filter(|v| **v)
        .count()
        > 1
    {
        bail!("Option --describe takes at most one of --members, --state and --offsets");
    }
    for group in groups {
        let described = client
            .send(DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]))
            .await?;
        let info = described
            .groups
            .into_iter()
            .next()
            .context("no group in the response")?;
        if info.error_code != 0 {
            bail!(
                "cannot describe group {group}: {}",
                error_name(info.error_code)
            );
        }
        if args.state {
            state_view(client, group, &info).await?;
        } else if args.members {
            members_view(args, group, &info)?;
        } else {
            offsets_view(client, group, &info).await?;
        }
    }
    Ok(())
}

/// GROUP, COORDINATOR (ID), ASSIGNMENT-STRATEGY, STATE, #MEMBERS.
async fn state_view(client: &mut Client, group: &str, info: &DescribedGroup) -> Result<()> {
    if info.group_state.as_str() == "Dead" {
        bail!("Consumer group '{group}' does not exist.");
    }
    // Version 4 asks for a batch of keys; older versions for one.
    let request = if client.version_for::<FindCoordinatorRequest>()? >= 4 {
        FindCoordinatorRequest::default().with_coordinator_keys(vec![s(group)])
    } else {
        FindCoordinatorRequest::default().with_key(s(group))
    };
    let coordinator = client.send(request).await?;
    let (host, port, id) = match coordinator.coordinators.first() {
        Some(c) => (c.host.to_string(), c.port, c.node_id.0),
        None => (
            coordinator.host.to_string(),
            coordinator.port,
            coordinator.node_id.0,
        ),
    };
    println!();
    println!(
        "{:<24} {:<32} {:<20} {:<16} #MEMBERS",
        "GROUP", "COORDINATOR (ID)", "ASSIGNMENT-STRATEGY", "STATE"
    );
    println!(
        "{:<24} {:<32} {:<20} {:<16} {}",
        group,
        format!("{host}:{port} ({id})"),
        info.protocol_data.as_str(),
        info.group_state.as_str(),
        info.members.len()
    );
    Ok(())
}

/// GROUP, CONSUMER-ID, HOST, CLIENT-ID, #PARTITIONS (and ASSIGNMENT with --verbose).
fn members_view(args: &GroupsArgs, group: &str, info: &DescribedGroup) -> Result<()> {
    if info.group_state.as_str() == "Dead" {
        bail!("Consumer group '{group}' does not exist.");
    }
    if info.members.is_empty() {
        println!("Consumer group '{group}' has no active members.");
        return Ok(());
    }
    println!();
    print!(
        "{:<24} {:<44} {:<16} {:<24} {:>11}",
        "GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS"
    );
    println!("{}", if args.verbose { " ASSIGNMENT" } else { "" });
    for m in &info.members {
        let assigned = assignment_partitions(&m.member_assignment);
        print!(
            "{:<24} {:<44} {:<16} {:<24} {:>11}",
            group,
            m.member_id.as_str(),
            m.client_host.as_str(),
            m.client_id.as_str(),
            assigned.len()
        );
        if args.verbose {
            // Kafka's form: topic(p1,p2) per topic, or "-" when nothing is assigned.
            let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for (t, p) in &assigned {
                by_topic.entry(t).or_default().push(*p);
            }
            let text: Vec<String> = by_topic
                .iter()
                .map(|(t, ps)| {
                    let ps: Vec<String> = ps.iter().map(i32::to_string).collect();
                    format!("{t}({})", ps.join(","))
                })
                .collect();
            let text = if text.is_empty() {
                "-".to_string()
            } else {
                text.join(",")
            };
            print!(" {text}");
        }
        println!();
    }
    Ok(())
}

/// GROUP, TOPIC, PARTITION, CURRENT-OFFSET, LOG-END-OFFSET, LAG, CONSUMER-ID, HOST, CLIENT-ID.
async fn offsets_view(client: &mut Client, group: &str, info: &DescribedGroup) -> Result<()> {
    let offsets = committed(client, group).await?;
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
        list_offsets(client, &partitions, -1).await?
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
    Ok(())
}
