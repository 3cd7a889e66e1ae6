//! The consumer group protocol of KIP-848 (`group.protocol=consumer`): members heartbeat their
//! subscription, the coordinator computes the assignment (server-side assignors `uniform` and
//! `range`), and each member reconciles towards its target one heartbeat at a time.
//!
//! ```text
//! group epoch        bumped when members or subscriptions (or the subscribed topics' partition
//!                    counts) change; the target assignment is recomputed for it
//! assignment epoch   the group epoch the target assignment was computed for
//! member epoch       the assignment epoch a member has caught up with
//! ```
//! A member whose target lost partitions is first told to keep only `assigned ∩ target` (its
//! epoch unchanged); once it reports owning none of the revoked partitions it moves to the new
//! epoch and is given its new partitions, except those another member has not released yet,
//! which follow on a later heartbeat. So no partition is ever owned by two members.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::store::{ConsumerGroupRecord, ConsumerMemberRecord};

pub type TopicPartition = (String, i32);

/// The assignors this coordinator runs (`group.consumer.assignors`; the first is the default).
pub const ASSIGNORS: [&str; 2] = ["uniform", "range"];

#[derive(Debug, Clone)]
pub struct ConsumerMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub epoch: i32,
    pub previous_epoch: i32,
    pub rebalance_timeout_ms: i32,
    pub subscribed: Vec<String>,
    /// `SubscribedTopicRegex` (KIP-848 v1): topics whose names match it are subscribed too.
    pub regex: Option<String>,
    /// The topics the regex matched when the target was last computed.
    pub regex_topics: Vec<String>,
    pub assignor: Option<String>,
    /// What the member was told it owns.
    pub assigned: BTreeSet<TopicPartition>,
    /// What the member last reported owning (None: not reported yet).
    pub owned: Option<BTreeSet<TopicPartition>>,
    /// The last assignment sent, to send only changes.
    pub last_sent: Option<BTreeSet<TopicPartition>>,
    pub last_seen: Instant,
    /// Since when the member has been asked to give up partitions it still reports owning.
    pub revoking_since: Option<Instant>,
    /// A static member that left for a while (epoch -2): its place and partitions wait for it
    /// until its session times out.
    pub away: bool,
}

impl ConsumerMember {
    /// Every topic the member subscribes to: by name and by its regex.
    pub fn topics(&self) -> Vec<String> {
        let mut out = self.subscribed.clone();
        out.extend(self.regex_topics.iter().cloned());
        out.sort();
        out.dedup();
        out
    }
}

/// A consumer group's protocol state.
#[derive(Debug, Default)]
pub struct ConsumerGroupState {
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    pub target: BTreeMap<String, BTreeSet<TopicPartition>>,
    /// Partition counts of the subscribed topics when the target was computed.
    pub topic_partitions: BTreeMap<String, i32>,
    /// The state last written to the offsets topic.
    pub stored: Option<ConsumerGroupRecord>,
}

impl ConsumerGroupState {
    /// The state to keep across a restart; None when there are no members.
    pub fn record(&self) -> Option<ConsumerGroupRecord> {
        if self.members.is_empty() {
            return None;
        }
        Some(ConsumerGroupRecord {
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            topic_partitions: self
                .topic_partitions
                .iter()
                .map(|(t, n)| (t.clone(), *n))
                .collect(),
            members: self
                .members
                .values()
                .map(|m| ConsumerMemberRecord {
                    id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    epoch: m.epoch,
                    previous_epoch: m.previous_epoch,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    subscribed: m.subscribed.clone(),
                    regex: m.regex.clone(),
                    assignor: m.assignor.clone(),
                    assigned: m.assigned.iter().cloned().collect(),
                    target: self
                        .target
                        .get(&m.id)
                        .map(|t| t.iter().cloned().collect())
                        .unwrap_or_default(),
                })
                .collect(),
        })
    }

    /// The group as a restarted coordinator finds it: its members' sessions start now.
    pub fn restore(record: ConsumerGroupRecord) -> ConsumerGroupState {
        let now = Instant::now();
        let mut state = ConsumerGroupState {
            group_epoch: record.group_epoch,
            assignment_epoch: record.assignment_epoch,
            topic_partitions: record.topic_partitions.iter().cloned().collect(),
            stored: Some(record.clone()),
            ..Default::default()
        };
        for m in record.members {
            state
                .target
                .insert(m.id.clone(), m.target.into_iter().collect());
            state.members.insert(
                m.id.clone(),
                ConsumerMember {
                    id: m.id,
                    instance_id: m.instance_id,
                    rack_id: m.rack_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    epoch: m.epoch,
                    previous_epoch: m.previous_epoch,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    subscribed: m.subscribed,
                    regex: m.regex,
                    regex_topics: Vec::new(),
                    assignor: m.assignor,
                    assigned: m.assigned.into_iter().collect(),
                    owned: None,
                    last_sent: None,
                    last_seen: now,
                    revoking_since: None,
                    away: false,
                },
            );
        }
        state
    }

    /// The record to write when the state changed since it was last written (Some(None): the
    /// group emptied).
    pub fn changed_record(&self) -> Option<Option<ConsumerGroupRecord>> {
        let now = self.record();
        (now != self.stored).then_some(now)
    }

    /// The assignor the members ask for (the first member's choice), or the default.
    pub fn assignor(&self) -> String {
        self.members
            .values()
            .find_map(|m| m.assignor.clone())
            .unwrap_or_else(|| ASSIGNORS[0].to_string())
    }

    /// Kafka's state of a consumer group.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.assignment_epoch != self.group_epoch {
            "Assigning"
        } else if self.members.values().any(|m| {
            m.epoch != self.assignment_epoch || Some(&m.assigned) != self.target.get(&m.id)
        }) {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// Recomputes the target assignment when the group epoch moved past it.
    pub fn refresh_target(&mut self) {
        if self.assignment_epoch == self.group_epoch {
            return;
        }
        let subscriptions: BTreeMap<String, Vec<String>> = self
            .members
            .values()
            .map(|m| (m.id.clone(), m.topics()))
            .collect();
        self.target = match self.assignor().as_str() {
            "range" => range_assign(&subscriptions, &self.topic_partitions),
            _ => uniform_assign(&subscriptions, &self.topic_partitions, &self.target),
        };
        self.assignment_epoch = self.group_epoch;
    }

    /// Moves `member_id` towards its target; returns the assignment to send (None: unchanged).
    pub fn reconcile(&mut self, member_id: &str) -> Option<BTreeSet<TopicPartition>> {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        // A partition is free only when no other member holds it or still reports owning it.
        let held_elsewhere: BTreeSet<TopicPartition> = self
            .members
            .values()
            .filter(|m| m.id != member_id)
            .flat_map(|m| {
                m.assigned
                    .iter()
                    .chain(m.owned.iter().flatten())
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect();
        let epoch = self.assignment_epoch;
        let m = self.members.get_mut(member_id)?;
        let revoking: BTreeSet<TopicPartition> = m.assigned.difference(&target).cloned().collect();
        if !revoking.is_empty() {
            // First the member gives up what moves away; its epoch waits.
            m.assigned = m.assigned.intersection(&target).cloned().collect();
        }
        let still_owns_revoked = m
            .owned
            .as_ref()
            .is_some_and(|owned| !owned.is_subset(&m.assigned));
        if still_owns_revoked || !revoking.is_empty() {
            m.revoking_since.get_or_insert_with(Instant::now);
        } else {
            m.revoking_since = None;
        }
        if revoking.is_empty() && !still_owns_revoked {
            let free: Vec<TopicPartition> = target
                .difference(&m.assigned)
                .filter(|tp| !held_elsewhere.contains(*tp))
                .cloned()
                .collect();
            m.assigned.extend(free);
            if m.epoch != epoch {
                m.previous_epoch = m.epoch;
                m.epoch = epoch;
            }
        }
        if m.last_sent.as_ref() != Some(&m.assigned) {
            m.last_sent = Some(m.assigned.clone());
            Some(m.assigned.clone())
        } else {
            None
        }
    }

    /// Removes members that stopped heartbeating, or that have not given up revoked partitions
    /// within their rebalance timeout (so that the partitions can move on); returns their ids.
    pub fn expire(&mut self, now: Instant, session_timeout: Duration) -> Vec<String> {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                now >= m.last_seen + session_timeout
                    || m.revoking_since.is_some_and(|since| {
                        now >= since + Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64)
                    })
            })
            .map(|m| m.id.clone())
            .collect();
        for id in &gone {
            self.members.remove(id);
            self.target.remove(id);
        }
        if !gone.is_empty() {
            self.group_epoch += 1;
        }
        gone
    }
}

/// Every (topic, partition) the given topics have.
fn all_partitions(topics: &BTreeMap<String, i32>) -> Vec<TopicPartition> {
    topics
        .iter()
        .flat_map(|(t, n)| (0..*n).map(move |p| (t.clone(), p)))
        .collect()
}

/// The uniform assignor: partitions spread as evenly as subscriptions allow, members keeping
/// what they had wherever that stays even (sticky).
pub fn uniform_assign(
    subscriptions: &BTreeMap<String, Vec<String>>,
    topics: &BTreeMap<String, i32>,
    previous: &BTreeMap<String, BTreeSet<TopicPartition>>,
) -> BTreeMap<String, BTreeSet<TopicPartition>> {
    let mut out: BTreeMap<String, BTreeSet<TopicPartition>> = subscriptions
        .keys()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    if subscriptions.is_empty() {
        return out;
    }
    let subscribers = |topic: &str| -> Vec<&String> {
        subscriptions
            .iter()
            .filter(|(_, ts)| ts.iter().any(|t| t == topic))
            .map(|(m, _)| m)
            .collect()
    };
    let partitions: Vec<TopicPartition> = all_partitions(topics)
        .into_iter()
        .filter(|(t, _)| !subscribers(t).is_empty())
        .collect();
    // Each member's fair share of what it can take.
    let quota = partitions.len().div_ceil(subscriptions.len()).max(1);
    let mut unassigned = Vec::new();
    for tp in &partitions {
        let keeper = previous.iter().find(|(m, ps)| {
            ps.contains(tp) && subscriptions.get(*m).is_some_and(|ts| ts.contains(&tp.0))
        });
        match keeper {
            Some((m, _)) if out[m].len() < quota => {
                out.get_mut(m).expect("member").insert(tp.clone());
            }
            _ => unassigned.push(tp.clone()),
        }
    }
    for tp in unassigned {
        let least = subscribers(&tp.0)
            .into_iter()
            .min_by_key(|m| (out[*m].len(), (*m).clone()))
            .expect("a subscriber")
            .clone();
        out.get_mut(&least).expect("member").insert(tp);
    }
    // Even out: move from the fullest to the emptiest while they differ by more than one and
    // the receiver subscribes to the partition's topic.
    loop {
        let (max_m, max_n) = out
            .iter()
            .map(|(m, ps)| (m.clone(), ps.len()))
            .max_by_key(|(m, n)| (*n, std::cmp::Reverse(m.clone())))
            .expect("members");
        let (min_m, min_n) = out
            .iter()
            .map(|(m, ps)| (m.clone(), ps.len()))
            .min_by_key(|(m, n)| (*n, m.clone()))
            .expect("members");
        if max_n <= min_n + 1 {
            break;
        }
        let movable = out[&max_m]
            .iter()
            .rev()
            .find(|tp| subscriptions[&min_m].contains(&tp.0))
            .cloned();
        match movable {
            Some(tp) => {
                out.get_mut(&max_m).expect("member").remove(&tp);
                out.get_mut(&min_m).expect("member").insert(tp);
            }
            None => break,
        }
    }
    out
}

/// The range assignor: for each topic, its subscribers (by member id) take contiguous ranges of
/// its partitions, the first ones one more when they do not divide evenly.
pub fn range_assign(
    subscriptions: &BTreeMap<String, Vec<String>>,
    topics: &BTreeMap<String, i32>,
) -> BTreeMap<String, BTreeSet<TopicPartition>> {
    let mut out: BTreeMap<String, BTreeSet<TopicPartition>> = subscriptions
        .keys()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    for (topic, count) in topics {
        let members: Vec<&String> = subscriptions
            .iter()
            .filter(|(_, ts)| ts.iter().any(|t| t == topic))
            .map(|(m, _)| m)
            .collect();
        if members.is_empty() {
            continue;
        }
        let n = members.len() as i32;
        let (per, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, m) in members.iter().enumerate() {
            let take = per + i32::from((i as i32) < extra);
            for p in next..next + take {
                out.get_mut(*m).expect("member").insert((topic.clone(), p));
            }
            next += take;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(members: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        members
            .iter()
            .map(|(m, ts)| (m.to_string(), ts.iter().map(|t| t.to_string()).collect()))
            .collect()
    }

    fn topics(ts: &[(&str, i32)]) -> BTreeMap<String, i32> {
        ts.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    #[test]
    fn uniform_spreads_evenly_and_sticks() {
        let s = subs(&[("a", &["t"]), ("b", &["t"])]);
        let first = uniform_assign(&s, &topics(&[("t", 6)]), &BTreeMap::new());
        assert_eq!((first["a"].len(), first["b"].len()), (3, 3));
        // A third member takes two, one from each, and the others keep the rest.
        let s3 = subs(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]);
        let second = uniform_assign(&s3, &topics(&["t"].map(|t| (t, 6))), &first);
        assert!(second.values().all(|ps| ps.len() == 2), "{second:?}");
        assert!(second["a"].is_subset(&first["a"]));
        assert!(second["b"].is_subset(&first["b"]));
        let all: BTreeSet<_> = second.values().flatten().cloned().collect();
        assert_eq!(all.len(), 6);
    }

    #[test]
    fn uniform_respects_subscriptions() {
        let s = subs(&[("a", &["x"]), ("b", &["x", "y"])]);
        let out = uniform_assign(&s, &topics(&[("x", 2), ("y", 4)]), &BTreeMap::new());
        assert!(out["a"].iter().all(|(t, _)| t == "x"));
        let all: BTreeSet<_> = out.values().flatten().cloned().collect();
        assert_eq!(all.len(), 6);
    }

    #[test]
    fn range_gives_contiguous_ranges() {
        let s = subs(&[("a", &["t"]), ("b", &["t"])]);
        let out = range_assign(&s, &topics(&[("t", 5)]));
        assert_eq!(
            out["a"],
            (0..3)
                .map(|p| ("t".to_string(), p))
                .collect::<BTreeSet<_>>()
        );
        assert_eq!(
            out["b"],
            (3..5)
                .map(|p| ("t".to_string(), p))
                .collect::<BTreeSet<_>>()
        );
    }

    fn member(id: &str) -> ConsumerMember {
        ConsumerMember {
            id: id.into(),
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            epoch: 0,
            previous_epoch: -1,
            rebalance_timeout_ms: 30_000,
            subscribed: vec!["t".into()],
            regex: None,
            regex_topics: Vec::new(),
            assignor: None,
            assigned: BTreeSet::new(),
            owned: None,
            last_sent: None,
            last_seen: Instant::now(),
            revoking_since: None,
            away: false,
        }
    }

    /// A partition moves only after its owner gave it up: never two owners.
    #[test]
    fn reconciliation_revokes_before_it_assigns() {
        let mut g = ConsumerGroupState {
            topic_partitions: topics(&[("t", 4)]),
            ..Default::default()
        };
        g.members.insert("a".into(), member("a"));
        g.group_epoch = 1;
        g.refresh_target();
        assert_eq!(g.reconcile("a").unwrap().len(), 4);
        assert_eq!(g.members["a"].epoch, 1);
        g.members.insert("b".into(), member("b"));
        g.group_epoch = 2;
        g.refresh_target();
        // b asks first: its partitions are still a's, so it gets none yet.
        assert_eq!(g.reconcile("b").unwrap().len(), 0);
        // a is told to revoke two; its epoch stays.
        g.members.get_mut("a").unwrap().owned = Some(g.members["a"].assigned.clone());
        assert_eq!(g.reconcile("a").unwrap().len(), 2);
        assert_eq!(g.members["a"].epoch, 1);
        assert_eq!(g.state_name(), "Reconciling");
        // Until a reports it no longer owns them, nothing moves.
        assert_eq!(g.reconcile("a"), None);
        assert_eq!(g.members["a"].epoch, 1);
        assert_eq!(g.reconcile("b"), None);
        // a heartbeats with the two it kept: it moves to epoch 2; then b gets its two.
        g.members.get_mut("a").unwrap().owned = Some(g.members["a"].assigned.clone());
        assert_eq!(g.reconcile("a"), None);
        assert_eq!(g.members["a"].epoch, 2);
        assert_eq!(g.reconcile("b").unwrap().len(), 2);
        assert_eq!(g.state_name(), "Stable");
        assert!(g.members.values().all(|m| m.revoking_since.is_none()));
        let a = &g.members["a"].assigned;
        let b = &g.members["b"].assigned;
        assert!(a.is_disjoint(b));
    }

    /// A member that keeps partitions it was asked to give up past its rebalance timeout is
    /// removed, and the partitions go to the others.
    #[test]
    fn a_member_that_does_not_revoke_in_time_is_removed() {
        let mut g = ConsumerGroupState {
            topic_partitions: [("t".to_string(), 2)].into_iter().collect(),
            ..Default::default()
        };
        let member = |id: &str| ConsumerMember {
            rebalance_timeout_ms: 100,
            ..member(id)
        };
        g.members.insert("a".into(), member("a"));
        g.group_epoch = 1;
        g.refresh_target();
        g.reconcile("a");
        g.members.get_mut("a").unwrap().owned = Some(g.members["a"].assigned.clone());
        g.members.insert("b".into(), member("b"));
        g.group_epoch = 2;
        g.refresh_target();
        g.reconcile("a");
        assert!(g.members["a"].revoking_since.is_some());
        let session = Duration::from_secs(60);
        assert!(
            g.expire(Instant::now(), session).is_empty(),
            "still within its time"
        );
        let later = Instant::now() + Duration::from_millis(150);
        assert_eq!(g.expire(later, session), vec!["a".to_string()]);
        g.refresh_target();
        assert_eq!(g.reconcile("b").unwrap().len(), 2);
    }
}
