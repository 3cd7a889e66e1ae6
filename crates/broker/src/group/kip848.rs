//! The consumer group protocol of KIP-848: ConsumerGroupHeartbeat (see `consumer.rs` for the
//! group's state and the assignors).

use super::*;

impl Coordinator {
    /// A ConsumerGroupHeartbeat (KIP-848): join (epoch 0), leave (epoch -1, or -2 for a static
    /// member), or a heartbeat that may carry a new subscription and the partitions owned.
    pub fn consumer_heartbeat(
        &self,
        args: HeartbeatArgs,
        partitions_of: &dyn Fn(&str) -> Option<i32>,
        topic_names: &dyn Fn() -> Vec<String>,
    ) -> HeartbeatOutcome {
        let now = Instant::now();
        let fail = |e: ResponseError, message: &str| HeartbeatOutcome {
            error: Some(e),
            message: Some(message.to_string()),
            member_id: args.member_id.clone(),
            epoch: args.member_epoch,
            interval_ms: self.config.consumer_heartbeat_interval_ms,
            assignment: None,
        };
        if args.group_id.is_empty() {
            return fail(ResponseError::InvalidGroupId, "The group id is empty.");
        }
        if let Some(e) = self.not_coordinator(&args.group_id) {
            return fail(e, "This broker is not the group's coordinator.");
        }
        let regex = match args.regex.as_deref() {
            Some(r) if !r.is_empty() => match regex::Regex::new(&format!("^(?:{r})$")) {
                Ok(re) => Some(re),
                Err(e) => {
                    return fail(
                        ResponseError::InvalidRegularExpression,
                        &format!("Invalid regular expression {r}: {e}"),
                    )
                }
            },
            _ => None,
        };
        if let Some(a) = &args.assignor {
            if !ASSIGNORS.contains(&a.as_str()) {
                return fail(
                    ResponseError::UnsupportedAssignor,
                    &format!("Assignor {a} is not supported; use uniform or range."),
                );
            }
        }
        let mut groups = self.lock();
        let group = groups
            .entry(args.group_id.clone())
            .or_insert_with(|| Group::new(&args.group_id));
        if group.consumer.is_none() {
            if !group.members.is_empty() {
                return fail(
                    ResponseError::GroupIdNotFound,
                    &format!("Group {} is not a consumer group.", args.group_id),
                );
            }
            group.consumer = Some(ConsumerGroupState::default());
        }
        let c = group.consumer.as_mut().expect("consumer group");
        let member_id = match args.member_epoch {
            -2 if c
                .members
                .get(&args.member_id)
                .is_some_and(|m| m.instance_id.is_some()) =>
            {
                // A static member going away for a while (a restart): its place and partitions
                // are kept until its session times out, so its return moves nothing.
                let m = c.members.get_mut(&args.member_id).expect("member");
                m.away = true;
                self.persist_consumer_group(&args.group_id, c);
                return HeartbeatOutcome {
                    error: None,
                    message: None,
                    member_id: args.member_id.clone(),
                    epoch: -2,
                    interval_ms: 0,
                    assignment: None,
                };
            }
            -1 | -2 => {
                if let Some(m) = c.members.remove(&args.member_id) {
                    c.target.remove(&m.id);
                    c.group_epoch += 1;
                    if c.members.is_empty() {
                        group.empty_since_ms = now_ms();
                    }
                }
                self.persist_consumer_group(&args.group_id, c);
                return HeartbeatOutcome {
                    error: None,
                    message: None,
                    member_id: args.member_id.clone(),
                    epoch: args.member_epoch,
                    interval_ms: 0,
                    assignment: None,
                };
            }
            0 => {
                let id = if args.member_id.is_empty() {
                    uuid::Uuid::new_v4().to_string()
                } else {
                    args.member_id.clone()
                };
                // A static member coming back takes over its previous place.
                let previous = args.instance_id.as_ref().and_then(|instance| {
                    c.members
                        .values()
                        .find(|m| m.instance_id.as_ref() == Some(instance) && m.id != id)
                        .map(|m| m.id.clone())
                });
                let mut member = match previous.and_then(|old| c.members.remove(&old)) {
                    Some(mut old) => {
                        if let Some(t) = c.target.remove(&old.id) {
                            c.target.insert(id.clone(), t);
                        }
                        old.id = id.clone();
                        old.last_sent = None;
                        old.away = false;
                        old
                    }
                    None => {
                        if !c.members.contains_key(&id) {
                            if c.members.len() >= self.config.max_size {
                                return fail(
                                    ResponseError::GroupMaxSizeReached,
                                    "The group is full.",
                                );
                            }
                            c.group_epoch += 1;
                        }
                        ConsumerMember {
                            id: id.clone(),
                            instance_id: args.instance_id.clone(),
                            rack_id: args.rack_id.clone(),
                            client_id: args.client_id.clone(),
                            client_host: args.client_host.clone(),
                            epoch: 0,
                            previous_epoch: -1,
                            rebalance_timeout_ms: args.rebalance_timeout_ms,
                            subscribed: Vec::new(),
                            regex: None,
                            regex_topics: Vec::new(),
                            assignor: None,
                            assigned: Default::default(),
                            owned: None,
                            last_sent: None,
                            last_seen: now,
                            revoking_since: None,
                            away: false,
                        }
                    }
                };
                member.last_sent = None;
                member.client_id = args.client_id.clone();
                member.client_host = args.client_host.clone();
                c.members.insert(id.clone(), member);
                id
            }
            epoch => {
                let Some(m) = c.members.get(&args.member_id) else {
                    return fail(
                        ResponseError::UnknownMemberId,
                        &format!(
                            "Member {} is not in group {}.",
                            args.member_id, args.group_id
                        ),
                    );
                };
                if epoch != m.epoch && epoch != m.previous_epoch {
                    return fail(
                        ResponseError::FencedMemberEpoch,
                        &format!("Member epoch {epoch} is not the current {}.", m.epoch),
                    );
                }
                args.member_id.clone()
            }
        };
        let m = c.members.get_mut(&member_id).expect("member");
        m.last_seen = now;
        if args.rebalance_timeout_ms >= 0 {
            m.rebalance_timeout_ms = args.rebalance_timeout_ms;
        }
        if let Some(a) = &args.assignor {
            m.assignor = Some(a.clone());
        }
        if let Some(owned) = &args.owned {
            m.owned = Some(owned.iter().cloned().collect());
        }
        if let Some(subscribed) = &args.subscribed {
            let mut sorted = subscribed.clone();
            sorted.sort();
            sorted.dedup();
            if sorted != m.subscribed {
                m.subscribed = sorted;
                c.group_epoch += 1;
            }
        }
        if let Some(r) = &args.regex {
            m.regex = (!r.is_empty()).then(|| r.clone());
        }
        // Regex subscriptions follow the topics as they come and go (internal topics excluded).
        if c.members.values().any(|m| m.regex.is_some()) {
            let names: Vec<String> = topic_names()
                .into_iter()
                .filter(|t| !t.starts_with("__"))
                .collect();
            for m in c.members.values_mut() {
                let matched: Vec<String> = match (&m.regex, &regex) {
                    (None, _) => Vec::new(),
                    // This member's regex was just compiled; others are compiled again here
                    // (they were valid when they came).
                    (Some(r), Some(re)) if m.id == member_id && Some(r) == args.regex.as_ref() => {
                        names.iter().filter(|t| re.is_match(t)).cloned().collect()
                    }
                    (Some(r), _) => match regex::Regex::new(&format!("^(?:{r})$")) {
                        Ok(re) => names.iter().filter(|t| re.is_match(t)).cloned().collect(),
                        Err(_) => Vec::new(),
                    },
                };
                if matched != m.regex_topics {
                    m.regex_topics = matched;
                    c.group_epoch += 1;
                }
            }
        }
        // The partitions of every subscribed topic, as they are now.
        let mut counts: BTreeMap<String, i32> = BTreeMap::new();
        for t in c.members.values().flat_map(|m| m.topics()) {
            if let Some(n) = partitions_of(&t) {
                counts.insert(t, n);
            }
        }
        if counts != c.topic_partitions {
            c.topic_partitions = counts;
            c.group_epoch += 1;
        }
        c.refresh_target();
        let assignment = c.reconcile(&member_id);
        let epoch = c.members[&member_id].epoch;
        self.persist_consumer_group(&args.group_id, c);
        HeartbeatOutcome {
            error: None,
            message: None,
            member_id: member_id.clone(),
            epoch,
            interval_ms: self.config.consumer_heartbeat_interval_ms,
            assignment,
        }
    }
}
