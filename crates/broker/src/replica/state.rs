//! Each partition's part in replication (Kafka's `Partition`): whether this broker leads it or
//! follows it, and as leader, what each follower has fetched, the ISR, and the high watermark
//! that follows from them.
//!
//! - **High watermark.** The leader's high watermark is the smallest log end offset among the
//!   ISR, counting the ISR an AlterPartition in flight may grow it to (Kafka's maximal ISR): a
//!   shrink is not trusted before the controller accepted it. A follower whose log end is not
//!   known yet (none fetched since this broker became leader) holds it where it is. A leader
//!   alone in its ISR lets the log move it at every append.
//! - **ISR.** A follower that fetched at the leader's log end at some time is caught up then;
//!   one not caught up for `replica.lag.time.max.ms` leaves the ISR, and one fetching at or past
//!   the high watermark (and the start of the leader's epoch) joins it. Both go to the
//!   controller as AlterPartition, one at a time per partition.
//! - **Locks.** A state's lock is taken before its partition's log lock, never after.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use strata_storage::{Offset, Partition};
use tokio::sync::watch;

use crate::quorum::PartitionState;

/// An ISR change for the controller (AlterPartition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    pub topic: String,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<i32>,
    /// The broker epochs the joining replicas fetched with.
    pub member_epochs: Vec<(i32, u64)>,
}

/// What one follower has fetched, as its leader sees it.
#[derive(Debug, Clone)]
struct Progress {
    /// Its log end (the offset it fetched at); None until it fetches from this leader.
    log_end: Option<Offset>,
    /// When it was last known to have everything the leader had.
    last_caught_up: Instant,
    /// When it last fetched, and the leader's log end then.
    last_fetch: Instant,
    leader_end_at_last_fetch: Offset,
    /// The broker epoch it last fetched with (-1: not told).
    broker_epoch: i64,
}

impl Progress {
    /// A follower that has not fetched from this leader yet.
    fn new(now: Instant) -> Progress {
        Progress {
            log_end: None,
            last_caught_up: now,
            last_fetch: now,
            leader_end_at_last_fetch: Offset(0),
            broker_epoch: -1,
        }
    }
}

/// This broker as a partition's leader.
#[derive(Debug, Clone)]
pub struct Leading {
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    /// The ISR the controller last accepted.
    pub isr: Vec<i32>,
    /// The ISR of an AlterPartition in flight.
    pub pending: Option<Vec<i32>>,
    /// After a refused change, none is asked for before this.
    hold_until: Option<Instant>,
    /// The log end offset when this broker became leader: a follower joins the ISR only once it
    /// has reached it.
    epoch_start: Offset,
    followers: HashMap<i32, Progress>,
}

impl Leading {
    /// The ISR the high watermark waits for: the accepted one and any member a change in
    /// flight would add.
    fn maximal_isr(&self) -> Vec<i32> {
        let mut all = self.isr.clone();
        for r in self.pending.iter().flatten() {
            if !all.contains(r) {
                all.push(*r);
            }
        }
        all
    }
}

/// A partition's role on this broker.
#[derive(Debug, Clone)]
pub enum Role {
    /// Neither leader nor follower: alone (no cluster), or no replica here, or no leader.
    None,
    Leader(Leading),
    Follower {
        leader: i32,
        leader_epoch: i32,
    },
}

/// What happened when a role was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleChange {
    Unchanged,
    /// This broker leads now (a new leader epoch): stop fetching, take over what it serves.
    Lead,
    /// Fetch from `leader` (a new leader or epoch: truncate first).
    Follow {
        leader: i32,
        leader_epoch: i32,
    },
    /// Neither leader nor follower any more (no replica here, or no leader).
    Resign,
}

/// This broker does not lead the partition (for that replica).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotLeading;

/// Why an acks=all produce did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcksError {
    NotLeader,
    NotEnoughReplicasAfterAppend,
    TimedOut,
}

/// One partition's replication state.
#[derive(Debug)]
pub struct ReplicaState {
    role: Mutex<Role>,
    /// Bumped when the high watermark or the role changes (acks=all produces wait on it).
    changed: watch::Sender<u64>,
}

impl Default for ReplicaState {
    fn default() -> Self {
        ReplicaState::new()
    }
}

impl ReplicaState {
    pub fn new() -> ReplicaState {
        ReplicaState {
            role: Mutex::new(Role::None),
            changed: watch::channel(0).0,
        }
    }

    fn role(&self) -> MutexGuard<'_, Role> {
        self.role.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The role, held, while this broker follows `leader` at `leader_epoch`: a fetcher appends
    /// under it, so that no change of role comes in the middle.
    pub fn following(&self, leader: i32, leader_epoch: i32) -> Option<MutexGuard<'_, Role>> {
        let role = self.role();
        match &*role {
            Role::Follower {
                leader: l,
                leader_epoch: e,
            } if *l == leader && *e == leader_epoch => Some(role),
            _ => None,
        }
    }

    pub fn snapshot(&self) -> Role {
        self.role().clone()
    }

    /// The ISR acks=all counts for `min.insync.replicas` (1 when not replicated).
    pub fn isr_size(&self) -> usize {
        match &*self.role() {
            Role::Leader(l) => l.isr.len(),
            _ => 1,
        }
    }

    /// Applies the image's state of the partition to this broker `me`: leads it (taking the
    /// leader epoch in the log), follows it, or neither.
    pub fn apply(
        &self,
        partition: &Partition,
        image: &PartitionState,
        me: i32,
        now: Instant,
    ) -> std::io::Result<RoleChange> {
        let mut role = self.role();
        let hosted = image.replicas.contains(&me);
        let change = if hosted && image.leader == me {
            let same_epoch =
                matches!(&*role, Role::Leader(l) if l.leader_epoch == image.leader_epoch);
            let mut log = partition.log();
            if same_epoch {
                let Role::Leader(l) = &mut *role else {
                    unreachable!()
                };
                // The image may trail an AlterPartition answer already applied.
                if image.partition_epoch > l.partition_epoch {
                    l.partition_epoch = image.partition_epoch;
                    l.isr = image.isr.clone();
                    l.replicas = image.replicas.clone();
                    l.pending = None;
                    // A reassignment's new replicas follow from now on; removed ones are gone.
                    l.followers.retain(|r, _| image.replicas.contains(r));
                    for r in image.replicas.iter().filter(|r| **r != me) {
                        l.followers.entry(*r).or_insert_with(|| Progress::new(now));
                    }
                }
                let alone = l.maximal_isr() == [me];
                log.set_alone_in_isr(alone);
                RoleChange::Unchanged
            } else {
                log.become_leader(strata_storage::LeaderEpoch(image.leader_epoch), false)?;
                let end = log.log_end_offset();
                let followers = image
                    .replicas
                    .iter()
                    .filter(|r| **r != me)
                    .map(|r| (*r, Progress::new(now)))
                    .collect();
                let leading = Leading {
                    leader_epoch: image.leader_epoch,
                    partition_epoch: image.partition_epoch,
                    replicas: image.replicas.clone(),
                    isr: image.isr.clone(),
                    pending: None,
                    hold_until: None,
                    epoch_start: end,
                    followers,
                };
                log.set_alone_in_isr(leading.maximal_isr() == [me]);
                *role = Role::Leader(leading);
                tracing::info!(topic = %partition.topic, partition = partition.index, leader_epoch = image.leader_epoch, "leading the partition");
                RoleChange::Lead
            }
        } else if hosted && image.leader >= 0 {
            match &*role {
                Role::Follower {
                    leader,
                    leader_epoch,
                } if *leader == image.leader && *leader_epoch == image.leader_epoch => {
                    RoleChange::Unchanged
                }
                _ => {
                    partition.log().become_follower();
                    *role = Role::Follower {
                        leader: image.leader,
                        leader_epoch: image.leader_epoch,
                    };
                    RoleChange::Follow {
                        leader: image.leader,
                        leader_epoch: image.leader_epoch,
                    }
                }
            }
        } else {
            let was = std::mem::replace(&mut *role, Role::None);
            match was {
                Role::None => RoleChange::Unchanged,
                Role::Leader(_) => {
                    partition.log().become_follower();
                    RoleChange::Resign
                }
                Role::Follower { .. } => RoleChange::Resign,
            }
        };
        drop(role);
        if change != RoleChange::Unchanged {
            self.bump();
        }
        Ok(change)
    }

    /// A follower fetched at `fetch_offset`: its progress, the high watermark that follows, and
    /// an ISR expansion to ask for when it has caught up. `Err` when this broker does not lead
    /// the partition (or `replica` is not one of its replicas).
    pub fn follower_fetched(
        &self,
        partition: &Partition,
        replica: i32,
        replica_epoch: i64,
        fetch_offset: Offset,
        me: i32,
        now: Instant,
    ) -> Result<(bool, Option<IsrChange>), NotLeading> {
        let mut role = self.role();
        let Role::Leader(l) = &mut *role else {
            return Err(NotLeading);
        };
        let mut log = partition.log();
        let leader_end = log.log_end_offset();
        let Some(p) = l.followers.get_mut(&replica) else {
            return Err(NotLeading);
        };
        // A fetch from an older incarnation of the follower (sent before it restarted) says
        // nothing of its log now.
        if replica_epoch >= 0 && replica_epoch < p.broker_epoch {
            return Ok((false, None));
        }
        p.broker_epoch = replica_epoch;
        let fetched = fetch_offset.min(leader_end);
        if fetched >= leader_end {
            p.last_caught_up = now;
        } else if fetched >= p.leader_end_at_last_fetch {
            p.last_caught_up = p.last_caught_up.max(p.last_fetch);
        }
        p.last_fetch = now;
        p.leader_end_at_last_fetch = leader_end;
        p.log_end = Some(fetched);
        let hw_before = log.high_watermark();
        let hw = Self::advance_hw(l, &mut log, me);
        let expand = (l.pending.is_none()
            && l.hold_until.is_none_or(|t| now >= t)
            && !l.isr.contains(&replica)
            && fetched >= hw
            && fetched >= l.epoch_start)
            .then(|| {
                let mut new_isr = l.isr.clone();
                new_isr.push(replica);
                l.pending = Some(new_isr.clone());
                log.set_alone_in_isr(false);
                IsrChange {
                    topic: partition.topic.clone(),
                    partition: partition.index,
                    leader_epoch: l.leader_epoch,
                    partition_epoch: l.partition_epoch,
                    new_isr,
                    member_epochs: (replica_epoch >= 0)
                        .then_some((replica, replica_epoch as u64))
                        .into_iter()
                        .collect(),
                }
            });
        drop(log);
        drop(role);
        let moved = hw > hw_before;
        if moved {
            self.bump();
        }
        Ok((moved, expand))
    }

    /// Moves the leader's high watermark to the smallest log end among the maximal ISR.
    fn advance_hw(l: &Leading, log: &mut strata_storage::PartitionLog, me: i32) -> Offset {
        let mut hw = log.log_end_offset();
        for r in l.maximal_isr() {
            if r == me {
                continue;
            }
            match l.followers.get(&r).and_then(|p| p.log_end) {
                Some(end) => hw = hw.min(end),
                None => return log.high_watermark(),
            }
        }
        log.advance_high_watermark(hw)
    }

    /// The followers in the ISR that have not caught up for `lag`: the shrink to ask for.
    pub fn lagging(
        &self,
        partition: &Partition,
        me: i32,
        lag: Duration,
        now: Instant,
    ) -> Option<IsrChange> {
        let mut role = self.role();
        let Role::Leader(l) = &mut *role else {
            return None;
        };
        if l.pending.is_some() || l.hold_until.is_some_and(|t| now < t) {
            return None;
        }
        let out: Vec<i32> = l
            .isr
            .iter()
            .copied()
            .filter(|r| *r != me)
            .filter(|r| {
                l.followers
                    .get(r)
                    .is_some_and(|p| now.saturating_duration_since(p.last_caught_up) > lag)
            })
            .collect();
        if out.is_empty() {
            return None;
        }
        let new_isr: Vec<i32> = l.isr.iter().copied().filter(|r| !out.contains(r)).collect();
        tracing::info!(topic = %partition.topic, partition = partition.index, ?out, ?new_isr, "shrinking the ISR: followers lag");
        l.pending = Some(new_isr.clone());
        Some(IsrChange {
            topic: partition.topic.clone(),
            partition: partition.index,
            leader_epoch: l.leader_epoch,
            partition_epoch: l.partition_epoch,
            new_isr,
            member_epochs: Vec::new(),
        })
    }

    /// The controller's answer to an AlterPartition: the partition's new state, or None when
    /// it refused (the image will bring the truth).
    pub fn isr_changed(
        &self,
        partition: &Partition,
        change: &IsrChange,
        accepted: Option<&PartitionState>,
        me: i32,
    ) {
        let mut role = self.role();
        let Role::Leader(l) = &mut *role else {
            return;
        };
        if l.leader_epoch != change.leader_epoch {
            return;
        }
        // The answer to the change in flight ends it; an answer to an earlier one (whose result
        // the image brought first) must not: the change in flight still holds the high
        // watermark for the replicas it adds.
        let in_flight = l.pending.as_ref() == Some(&change.new_isr)
            && l.partition_epoch == change.partition_epoch;
        if in_flight {
            l.pending = None;
            if accepted.is_none() {
                l.hold_until = Some(Instant::now() + Duration::from_millis(500));
            }
        }
        if let Some(s) = accepted {
            if s.leader_epoch == l.leader_epoch && s.partition_epoch > l.partition_epoch {
                l.partition_epoch = s.partition_epoch;
                l.isr = s.isr.clone();
                tracing::info!(topic = %partition.topic, partition = partition.index, isr = ?l.isr, "ISR changed");
            }
        }
        let mut log = partition.log();
        log.set_alone_in_isr(l.maximal_isr() == [me]);
        let before = log.high_watermark();
        let hw = Self::advance_hw(l, &mut log, me);
        drop(log);
        drop(role);
        if hw > before || accepted.is_some() {
            self.bump();
        }
    }

    /// Waits until the high watermark reaches `required` (an acks=all produce), with at least
    /// `min_isr` replicas in the ISR then.
    pub async fn wait_for_hw(
        &self,
        partition: &Partition,
        required: Offset,
        min_isr: usize,
        deadline: tokio::time::Instant,
    ) -> Result<(), AcksError> {
        let mut changed = self.changed.subscribe();
        loop {
            {
                let role = self.role();
                let isr = match &*role {
                    Role::Leader(l) => l.isr.len(),
                    Role::None => 1,
                    Role::Follower { .. } => return Err(AcksError::NotLeader),
                };
                if partition.log().high_watermark() >= required {
                    return if isr < min_isr {
                        Err(AcksError::NotEnoughReplicasAfterAppend)
                    } else {
                        Ok(())
                    };
                }
                if matches!(&*role, Role::None) {
                    return Err(AcksError::NotLeader);
                }
                changed.borrow_and_update();
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return Err(AcksError::TimedOut),
            }
        }
    }
}

/// The replication state of every partition this broker holds.
#[derive(Debug, Default)]
pub struct ReplicaStates {
    /// By topic, then partition: a lookup by `&str` allocates nothing (produce and follower
    /// fetches look states up per partition).
    states: RwLock<HashMap<String, HashMap<i32, Arc<ReplicaState>>>>,
}

impl ReplicaStates {
    /// The partition's state, made on first use.
    pub fn get_or_create(&self, topic: &str, partition: i32) -> Arc<ReplicaState> {
        if let Some(s) = self.get(topic, partition) {
            return s;
        }
        let mut states = self.states.write().unwrap_or_else(|e| e.into_inner());
        states
            .entry(topic.to_string())
            .or_default()
            .entry(partition)
            .or_insert_with(|| Arc::new(ReplicaState::new()))
            .clone()
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<ReplicaState>> {
        let states = self.states.read().unwrap_or_else(|e| e.into_inner());
        states.get(topic)?.get(&partition).cloned()
    }

    /// Forgets the partitions `keep` says no to (a deleted topic's).
    pub fn retain(&self, keep: impl Fn(&str, i32) -> bool) {
        let mut states = self.states.write().unwrap_or_else(|e| e.into_inner());
        for (t, partitions) in states.iter_mut() {
            partitions.retain(|p, _| keep(t, *p));
        }
        states.retain(|_, partitions| !partitions.is_empty());
    }

    /// Every partition this broker leads.
    pub fn leading(&self) -> Vec<((String, i32), Arc<ReplicaState>)> {
        let states = self.states.read().unwrap_or_else(|e| e.into_inner());
        states
            .iter()
            .flat_map(|(t, partitions)| partitions.iter().map(move |(p, s)| ((t, *p), s)))
            .filter(|(_, s)| matches!(&*s.role(), Role::Leader(_)))
            .map(|((t, p), s)| ((t.clone(), p), s.clone()))
            .collect()
    }
}
