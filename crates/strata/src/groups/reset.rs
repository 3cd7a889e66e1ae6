//! `--reset-offsets` and `--delete-offsets`, as kafka-consumer-groups.sh does them.
//!
//! A reset plans new offsets for the chosen partitions (scope: `--topic` or `--all-topics`, or
//! the partitions of `--from-file`) from one target (`--to-earliest`, `--to-latest`,
//! `--to-current`, `--to-offset`, `--shift-by`, `--to-datetime`, `--by-duration`,
//! `--from-file`), keeps each within the partition's earliest and latest offsets (saying so, as
//! Kafka's tool warns), shows the plan (or prints it as CSV with `--export`) and, with
//! `--execute`, commits it. Offsets of a group with members cannot be reset: the members would
//! overwrite them; the tool says so before it plans anything.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::*;

use super::{committed, error_name, list_offsets, s, topic_partitions, GroupsArgs};
use crate::client::Client;

type Offsets = BTreeMap<(String, i32), i64>;

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

/// Parses an ISO-8601 duration as Java's `Duration.parse` does (`PnDTnHnMn.nS`, e.g. `PT1H30M`,
/// `P1DT12H`) into milliseconds.
pub fn parse_duration(text: &str) -> Result<i64> {
    let bad = || {
        anyhow::anyhow!("cannot parse --by-duration {text:?}: expected PnDTnHnMnS, e.g. PT1H30M")
    };
    let upper = text.to_ascii_uppercase();
    let rest = upper.strip_prefix('P').ok_or_else(bad)?;
    let (days, time) = match rest.split_once('T') {
        Some((d, t)) => (d, t),
        None => (rest, ""),
    };
    let mut millis = 0f64;
    if !days.is_empty() {
        let n: f64 = days
            .strip_suffix('D')
            .ok_or_else(bad)?
            .parse()
            .map_err(|_| bad())?;
        millis += n * 86_400_000.0;
    }
    let mut number = String::new();
    let mut any = !days.is_empty();
    for c in time.chars() {
        let unit = match c {
            'H' => 3_600_000.0,
            'M' => 60_000.0,
            'S' => 1_000.0,
            _ => {
                number.push(c);
                continue;
            }
        };
        let n: f64 = number.parse().map_err(|_| bad())?;
        millis += n * unit;
        number.clear();
        any = true;
    }
    if !number.is_empty() || !any || millis < 0.0 {
        return Err(bad());
    }
    Ok(millis as i64)
}

/// The rows of an `--export` CSV: `topic,partition,offset`, or with a group column first.
fn read_plan_file(text: &str, groups: &[String]) -> Result<BTreeMap<String, Offsets>> {
    let mut plans: BTreeMap<String, Offsets> = BTreeMap::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let (group, topic, partition, offset) = match fields[..] {
            [t, p, o] => match groups {
                [g] => (g.clone(), t, p, o),
                _ => bail!(
                    "line {}: a file without a group column needs exactly one --group",
                    n + 1
                ),
            },
            [g, t, p, o] => (g.to_string(), t, p, o),
            _ => bail!(
                "line {}: expected topic,partition,offset or group,topic,partition,offset",
                n + 1
            ),
        };
        let partition: i32 = partition
            .parse()
            .with_context(|| format!("line {}: partition {partition:?}", n + 1))?;
        let offset: i64 = offset
            .parse()
            .with_context(|| format!("line {}: offset {offset:?}", n + 1))?;
        plans
            .entry(group)
            .or_default()
            .insert((topic.to_string(), partition), offset);
    }
    Ok(plans)
}

/// Exactly one target must be given.
fn check_target(args: &GroupsArgs) -> Result<()> {
    let targets = [
        args.to_earliest,
        args.to_latest,
        args.to_current,
        args.to_offset.is_some(),
        args.shift_by.is_some(),
        args.to_datetime.is_some(),
        args.by_duration.is_some(),
        args.from_file.is_some(),
    ]
    .iter()
    .filter(|t| **t)
    .count();
    if targets != 1 {
        bail!(
            "--reset-offsets needs exactly one of --to-earliest, --to-latest, --to-current, \
             --to-offset, --shift-by, --to-datetime, --by-duration, --from-file"
        );
    }
    if args.execute && args.dry_run {
        bail!("Option --execute cannot be used with --dry-run");
    }
    Ok(())
}

/// Keeps `wanted` within `[earliest, latest]`, warning as Kafka's tool does when it moves it.
fn clamp(tp: &(String, i32), wanted: i64, earliest: i64, latest: i64) -> i64 {
    if wanted > latest {
        eprintln!(
            "WARN: New offset ({wanted}) is higher than latest offset for topic partition \
             {}-{}. Value will be set to {latest}",
            tp.0, tp.1
        );
        latest
    } else if wanted < earliest {
        eprintln!(
            "WARN: New offset ({wanted}) is lower than earliest offset for topic partition \
             {}-{}. Value will be set to {earliest}",
            tp.0, tp.1
        );
        earliest
    } else {
        wanted
    }
}

/// The new offsets of `group` for the target the arguments name.
async fn plan(
    client: &mut Client,
    args: &GroupsArgs,
    group: &str,
    from_file: Option<&Offsets>,
) -> Result<Offsets> {
    let current = committed(client, group).await?;
    let partitions: Vec<(String, i32)> = if let Some(file) = from_file {
        file.keys().cloned().collect()
    } else if args.all_topics {
        current.keys().cloned().collect()
    } else if !args.topic.is_empty() {
        topic_partitions(client, &args.topic).await?
    } else {
        bail!("--reset-offsets needs --topic or --all-topics (or --from-file)");
    };
    if partitions.is_empty() {
        return Ok(Offsets::new());
    }
    let earliest = list_offsets(client, &partitions, -2).await?;
    let latest = list_offsets(client, &partitions, -1).await?;
    let bounded = |tp: &(String, i32), wanted: i64| clamp(tp, wanted, earliest[tp], latest[tp]);
    let mut out = Offsets::new();
    if args.to_earliest {
        out = earliest.clone();
    } else if args.to_latest {
        out = latest.clone();
    } else if args.to_current {
        for tp in earliest.keys() {
            // A partition without a committed offset goes to the latest, as Kafka's tool does.
            let c = current.get(tp).copied().filter(|o| *o >= 0);
            out.insert(tp.clone(), c.unwrap_or(latest[tp]));
        }
    } else if let Some(o) = args.to_offset {
        for tp in earliest.keys() {
            out.insert(tp.clone(), bounded(tp, o));
        }
    } else if let Some(by) = args.shift_by {
        for tp in earliest.keys() {
            let from = current
                .get(tp)
                .copied()
                .filter(|o| *o >= 0)
                .with_context(|| {
                    format!(
                        "group {group} has no committed offset for {}-{} to shift",
                        tp.0, tp.1
                    )
                })?;
            out.insert(tp.clone(), bounded(tp, from.saturating_add(by)));
        }
    } else if let Some(file) = from_file {
        for (tp, o) in file {
            out.insert(tp.clone(), bounded(tp, *o));
        }
    } else {
        let at = match (&args.to_datetime, &args.by_duration) {
            (Some(t), _) => parse_datetime(t)?,
            (None, Some(d)) => strata_storage::now_ms() - parse_duration(d)?,
            (None, None) => unreachable!("check_target allows one target"),
        };
        let found = list_offsets(client, &partitions, at).await?;
        for tp in earliest.keys() {
            // No record at or after the time: the latest offset.
            let o = found[tp];
            out.insert(tp.clone(), if o < 0 { latest[tp] } else { o });
        }
    }
    Ok(out)
}

/// Refuses a group with members: they would overwrite the reset offsets.
async fn check_inactive(client: &mut Client, group: &str) -> Result<()> {
    let described = client
        .send(DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]))
        .await?;
    let state = described
        .groups
        .first()
        .map(|g| g.group_state.to_string())
        .unwrap_or_default();
    if !matches!(state.as_str(), "Empty" | "Dead" | "") {
        bail!(
            "Assignments can only be reset if the group '{group}' is inactive, but the current \
             state is {state}."
        );
    }
    Ok(())
}

async fn commit(client: &mut Client, group: &str, offsets: &Offsets) -> Result<()> {
    let mut by_topic: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
    for ((t, p), o) in offsets {
        by_topic.entry(t).or_default().push((*p, *o));
    }
    let topics = by_topic
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
        .collect();
    let response = client
        .send(
            OffsetCommitRequest::default()
                .with_group_id(GroupId(s(group)))
                .with_generation_id_or_member_epoch(-1)
                .with_member_id(s(""))
                .with_topics(topics),
        )
        .await?;
    for t in response.topics {
        for p in t.partitions {
            if p.error_code != 0 {
                bail!(
                    "cannot reset offsets of group {group}: {}",
                    error_name(p.error_code)
                );
            }
        }
    }
    Ok(())
}

pub(super) async fn reset_offsets(
    client: &mut Client,
    args: &GroupsArgs,
    groups: &[String],
) -> Result<()> {
    check_target(args)?;
    let file_plans = match &args.from_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Some(read_plan_file(&text, groups)?)
        }
        None => None,
    };
    // Every group is checked before anything is planned, shown or committed.
    for group in groups {
        check_inactive(client, group).await?;
    }
    let mut plans = Vec::new();
    for group in groups {
        let from_file = file_plans
            .as_ref()
            .map(|p| p.get(group).cloned().unwrap_or_default());
        plans.push((group, plan(client, args, group, from_file.as_ref()).await?));
    }
    if args.export {
        for (group, offsets) in &plans {
            for ((t, p), o) in offsets {
                if groups.len() > 1 {
                    println!("{group},{t},{p},{o}");
                } else {
                    println!("{t},{p},{o}");
                }
            }
        }
    } else {
        println!();
        println!(
            "{:<24} {:<24} {:>9} {:>15}",
            "GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"
        );
        for (group, offsets) in &plans {
            for ((t, p), o) in offsets {
                println!("{:<24} {:<24} {:>9} {:>15}", group, t, p, o);
            }
        }
    }
    if args.execute {
        for (group, offsets) in &plans {
            commit(client, group, offsets).await?;
        }
    }
    Ok(())
}

pub(super) async fn delete_offsets(client: &mut Client, args: &GroupsArgs) -> Result<()> {
    let [group] = &args.group[..] else {
        bail!("--delete-offsets takes exactly one --group");
    };
    if args.topic.is_empty() {
        bail!("--delete-offsets needs --topic");
    }
    let partitions = topic_partitions(client, &args.topic).await?;
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in &partitions {
        by_topic.entry(t).or_default().push(*p);
    }
    let response = client
        .send(
            OffsetDeleteRequest::default()
                .with_group_id(GroupId(s(group)))
                .with_topics(
                    by_topic
                        .iter()
                        .map(|(t, ps)| {
                            OffsetDeleteRequestTopic::default()
                                .with_name(TopicName(s(t)))
                                .with_partitions(
                                    ps.iter()
                                        .map(|p| {
                                            OffsetDeleteRequestPartition::default()
                                                .with_partition_index(*p)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                ),
        )
        .await?;
    if response.error_code != 0 {
        bail!(
            "Encountered some unknown error: {}",
            error_name(response.error_code)
        );
    }
    let mut failed = false;
    println!();
    println!("{:<30} {:<15} STATUS", "TOPIC", "PARTITION");
    for t in &response.topics {
        for p in &t.partitions {
            let status = if p.error_code == 0 {
                "Successful".to_string()
            } else {
                failed = true;
                format!("Error: {}", error_name(p.error_code))
            };
            println!("{:<30} {:<15} {status}", t.name.as_str(), p.partition_index);
        }
    }
    if failed {
        bail!("Encountered some partition level error(s)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_java_does() {
        assert_eq!(parse_duration("PT1H30M").unwrap(), 5_400_000);
        assert_eq!(parse_duration("P1DT2H").unwrap(), 93_600_000);
        assert_eq!(parse_duration("PT0.5S").unwrap(), 500);
        assert_eq!(parse_duration("P2D").unwrap(), 172_800_000);
        for bad in ["1h", "P", "PT", "PT5", "PTXM"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn export_files_read_back_with_or_without_groups() {
        let one = read_plan_file("t,0,5\nt,1,7\n", &["g".into()]).unwrap();
        assert_eq!(one["g"][&("t".to_string(), 1)], 7);
        let two = read_plan_file("a,t,0,1\nb,t,0,2\n", &[]).unwrap();
        assert_eq!(two["b"][&("t".to_string(), 0)], 2);
        assert!(read_plan_file("t,0,5\n", &["a".into(), "b".into()]).is_err());
        assert!(read_plan_file("t,x,5\n", &["g".into()]).is_err());
    }
}
