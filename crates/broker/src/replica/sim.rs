//! A seeded simulation of the replication protocol: three replicas of one partition, each a
//! real partition log on its own simulated disk with the real `ReplicaState` (roles, follower
//! progress, high watermark, ISR changes), followers truncating and appending by the fetcher's
//! rules, and a controller deciding with the real image, election and AlterPartition checks.
//! Messages between them are lost, delayed and reordered; a broker crashes (power loss: only
//! what was synced survives) and comes back; produces with acks=all and `min.insync.replicas=2`
//! are acknowledged by the real rule. Checked at every step: each acknowledged record is at its
//! offset in the log of every live in-sync replica; and once the network heals, every replica
//! holds the same log and every acknowledged record is in it.
//!
//! Crashes never take the last live member of the ISR (the guarantee holds while fewer than
//! the ISR fail), and only followers lose power: a leader that lost power right after its own
//! AlterPartition left it alone in the ISR would be the whole ISR failing (what Kafka's eligible
//! leader replicas, KIP-966, address; not modelled). `STRATA_REPLICATION_SEEDS=<n>` runs more seeds, `STRATA_REPLICATION_SEED=<s>`
//! one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_storage::batch::{simple_batch, values_in};
use strata_storage::io::sim::SimIo;
use strata_storage::model::{Choices, Rng};
use strata_storage::{LeaderEpoch, LogConfig, Offset, Partition, PartitionLog};

use super::fetcher::{truncation_offset, whole_batches};
use super::state::{ReplicaState, Role, RoleChange};
use crate::quorum::controller::{check_alter_partition, leader_changes, AlterPartition};
use crate::quorum::{BrokerRegistration, MetadataImage, MetadataRecord, PartitionState};

const TOPIC: &str = "t";
const MIN_ISR: usize = 2;
const LAG: Duration = Duration::from_millis(300);
const STEP: Duration = Duration::from_millis(10);

/// A fetch's answer: the records and the high watermark, or the (log start, log end) of an
/// out-of-range fetch, or None for another refusal.
type FetchAnswer = Result<(Vec<u8>, Offset), Option<(Offset, Offset)>>;

#[derive(Debug, Clone)]
enum Message {
    Fetch {
        from: i32,
        /// The follower's broker epoch when it sent the fetch.
        epoch: u64,
        to: i32,
        leader_epoch: i32,
        offset: Offset,
    },
    Fetched {
        to: i32,
        from: i32,
        leader_epoch: i32,
        offset: Offset,
        data: FetchAnswer,
    },
    EpochEnd {
        from: i32,
        to: i32,
        leader_epoch: i32,
        asked: i32,
    },
    EpochEnded {
        to: i32,
        from: i32,
        leader_epoch: i32,
        asked: i32,
        answer: Option<(i32, i64)>,
    },
    Alter(AlterPartition),
    Altered {
        to: i32,
        change: super::IsrChange,
        accepted: Option<PartitionState>,
    },
}

struct Node {
    id: i32,
    io: SimIo,
    partition: Arc<Partition>,
    state: ReplicaState,
    alive: bool,
    /// (leader, leader epoch, truncated yet)
    following: Option<(i32, i32, bool)>,
    down_since: u64,
}

fn dir(id: i32) -> PathBuf {
    PathBuf::from(format!("/node{id}/{TOPIC}-0"))
}

fn open(io: &SimIo, id: i32, clean: bool) -> Arc<Partition> {
    let config = LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 256,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(
        Arc::new(io.clone()),
        &dir(id),
        TOPIC,
        0,
        config,
        clean,
        Offset(0),
        Offset(0),
    )
    .expect("open");
    Arc::new(Partition::new(TOPIC, 0, dir(id), log))
}

struct Sim {
    seed: u64,
    rng: Rng,
    step: u64,
    start: Instant,
    image: MetadataImage,
    next_record: u64,
    nodes: Vec<Node>,
    network: Vec<Message>,
    /// Produces waiting for acks=all: (leader, leader epoch, value, offset).
    waiting: Vec<(i32, i32, String, Offset)>,
    acknowledged: Vec<(String, Offset)>,
    trace: bool,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut sim = Sim {
            seed,
            rng: Rng::new(seed),
            step: 0,
            start: Instant::now(),
            image: MetadataImage::default(),
            next_record: 1,
            nodes: Vec::new(),
            network: Vec::new(),
            waiting: Vec::new(),
            acknowledged: Vec::new(),
            trace: std::env::var("STRATA_REPLICATION_TRACE").is_ok(),
        };
        for id in 1..=3 {
            let io = SimIo::new();
            let partition = open(&io, id, true);
            sim.nodes.push(Node {
                id,
                io,
                partition,
                state: ReplicaState::new(),
                alive: true,
                following: None,
                down_since: 0,
            });
            sim.register(id);
        }
        sim.record(MetadataRecord::CreateTopic {
            name: TOPIC.to_string(),
            id: [7; 16],
            configs: BTreeMap::new(),
            partitions: vec![PartitionState::new(vec![1, 2, 3])],
        });
        sim.apply_roles();
        sim
    }

    fn now(&self) -> Instant {
        self.start + STEP * self.step as u32
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.rng.below(100) < percent
    }

    fn record(&mut self, record: MetadataRecord) {
        self.next_record += 1;
        self.image.apply(&record, self.next_record);
    }

    fn partition_state(&self) -> PartitionState {
        self.image.topics[TOPIC].partitions[0].clone()
    }

    /// Registers (fenced), leaves the ISRs as the controller does before unfencing, unfences.
    fn register(&mut self, id: i32) {
        self.record(MetadataRecord::RegisterBroker(BrokerRegistration {
            broker_id: id,
            incarnation_id: format!("{id}-{}", self.step),
            rack: None,
            endpoints: Vec::new(),
        }));
        self.reconcile();
        let epoch = self.image.brokers[&id].epoch;
        self.record(MetadataRecord::UnfenceBroker {
            broker_id: id,
            epoch,
        });
        self.reconcile();
    }

    fn reconcile(&mut self) {
        if !self.image.topics.contains_key(TOPIC) {
            return;
        }
        for change in leader_changes(&self.image) {
            self.record(change);
        }
    }

    fn node(&mut self, id: i32) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    /// Every live node takes its role from the image (as `Replication::apply_image`).
    fn apply_roles(&mut self) {
        let p = self.partition_state();
        if self.trace {
            eprintln!("{} image {p:?}", self.step);
        }
        let now = self.now();
        for n in self.nodes.iter_mut().filter(|n| n.alive) {
            match n.state.apply(&n.partition, &p, n.id, now).expect("role") {
                RoleChange::Follow {
                    leader,
                    leader_epoch,
                } => n.following = Some((leader, leader_epoch, false)),
                RoleChange::Lead | RoleChange::Resign => n.following = None,
                RoleChange::Unchanged => {}
            }
        }
    }

    fn send(&mut self, m: Message) {
        self.network.push(m);
    }

    fn run(&mut self, steps: u64, faults: bool) {
        for _ in 0..steps {
            self.step += 1;
            let choice = self.rng.below(100);
            match choice {
                0..=14 => self.produce(),
                15..=44 => self.follower_acts(),
                45..=84 => self.deliver(faults),
                85..=89 => self.check_lag(),
                90..=93 if faults => self.crash(),
                94..=97 => self.restart_or_fence(),
                _ => {}
            }
            self.acknowledge();
            self.check();
        }
    }

    fn leader(&self) -> Option<(i32, i32)> {
        let p = self.partition_state();
        let n = self.nodes.get((p.leader - 1).max(0) as usize)?;
        (p.leader > 0 && n.alive && matches!(n.state.snapshot(), Role::Leader(_)))
            .then_some((p.leader, p.leader_epoch))
    }

    fn produce(&mut self) {
        let Some((leader, epoch)) = self.leader() else {
            return;
        };
        let value = format!("v{}", self.step);
        let n = self.node(leader);
        if n.state.isr_size() < MIN_ISR {
            return; // NOT_ENOUGH_REPLICAS: nothing written
        }
        let appended = n
            .partition
            .log()
            .append(&simple_batch(&[value.as_bytes()], 1), 0);
        if let Ok(info) = appended {
            if self.trace {
                eprintln!(
                    "{} produce {value} at {} on {leader}",
                    self.step, info.base_offset
                );
            }
            self.waiting.push((leader, epoch, value, info.base_offset));
        }
    }

    /// A follower truncates (asks where its epoch ends) or fetches.
    fn follower_acts(&mut self) {
        let id = self.rng.below(3) as i32 + 1;
        let n = self.node(id);
        let (Some((leader, epoch, truncated)), true) = (n.following, n.alive) else {
            return;
        };
        if truncated {
            let offset = n.partition.log().log_end_offset();
            let broker_epoch = self.image.brokers[&id].epoch;
            self.send(Message::Fetch {
                from: id,
                epoch: broker_epoch,
                to: leader,
                leader_epoch: epoch,
                offset,
            });
        } else {
            let log = n.partition.log();
            if log.log_end_offset() == log.log_start_offset() {
                drop(log);
                n.following = Some((leader, epoch, true));
                return;
            }
            let asked = log
                .leader_epochs()
                .latest_epoch()
                .map_or(0, LeaderEpoch::get);
            drop(log);
            self.send(Message::EpochEnd {
                from: id,
                to: leader,
                leader_epoch: epoch,
                asked,
            });
        }
    }

    /// One message delivered (any of those in flight: reordering), or lost.
    fn deliver(&mut self, faults: bool) {
        let (trace, step) = (self.trace, self.step);
        if self.network.is_empty() {
            return;
        }
        let i = self.rng.below(self.network.len() as u64) as usize;
        let m = self.network.swap_remove(i);
        if faults && self.chance(10) {
            return;
        }
        match m {
            Message::Fetch {
                from,
                epoch,
                to,
                leader_epoch,
                offset,
            } => self.on_fetch(from, epoch, to, leader_epoch, offset),
            Message::Fetched {
                to,
                from,
                leader_epoch,
                offset,
                data,
            } => self.on_fetched(to, from, leader_epoch, offset, data),
            Message::EpochEnd {
                from,
                to,
                leader_epoch,
                asked,
            } => {
                let n = self.node(to);
                let leading = n.alive
                    && matches!(n.state.snapshot(), Role::Leader(l) if l.leader_epoch == leader_epoch);
                let answer = leading.then(|| {
                    let (e, end) = n.partition.log().end_offset_for_epoch(LeaderEpoch(asked));
                    (e.get(), end.get())
                });
                self.send(Message::EpochEnded {
                    to: from,
                    from: to,
                    leader_epoch,
                    asked,
                    answer,
                });
            }
            Message::EpochEnded {
                to,
                from,
                leader_epoch,
                asked,
                answer,
            } => {
                let n = self.node(to);
                if !n.alive || n.following != Some((from, leader_epoch, false)) {
                    return;
                }
                let Some((e, end)) = answer else { return };
                let Some(_role) = n.state.following(from, leader_epoch) else {
                    return;
                };
                let mut log = n.partition.log();
                let to_offset = truncation_offset(&log, asked, e, end);
                if trace {
                    eprintln!(
                        "{} node {to} truncates from {} to {to_offset} (asked {asked}, leader {from} says {e}/{end})",
                        step,
                        log.log_end_offset()
                    );
                }
                log.truncate_to(to_offset).expect("truncate");
                drop(log);
                drop(_role);
                n.following = Some((from, leader_epoch, true));
            }
            Message::Alter(change) => {
                let result = check_alter_partition(&self.image, &change);
                if self.trace {
                    eprintln!(
                        "{} alter {:?}: {:?}",
                        self.step,
                        change.new_isr,
                        result.as_ref().map(|_| ())
                    );
                }
                let accepted = match result {
                    Ok(current) => {
                        self.record(MetadataRecord::ChangePartition {
                            name: TOPIC.to_string(),
                            partition: 0,
                            leader: current.leader,
                            isr: change.new_isr.clone(),
                        });
                        self.apply_roles();
                        Some(self.partition_state())
                    }
                    Err(_) => None,
                };
                self.send(Message::Altered {
                    to: change.broker_id,
                    change: super::IsrChange {
                        topic: TOPIC.to_string(),
                        partition: 0,
                        leader_epoch: change.leader_epoch,
                        partition_epoch: change.partition_epoch,
                        new_isr: change.new_isr,
                        member_epochs: change.member_epochs,
                    },
                    accepted,
                });
            }
            Message::Altered {
                to,
                change,
                accepted,
            } => {
                let n = self.node(to);
                if n.alive {
                    n.state
                        .isr_changed(&n.partition, &change, accepted.as_ref(), to);
                }
            }
        }
    }

    fn alter(&mut self, leader: i32, change: super::IsrChange) {
        let broker_epoch = self.image.brokers[&leader].epoch;
        self.send(Message::Alter(AlterPartition {
            broker_id: leader,
            broker_epoch,
            topic: change.topic,
            partition: change.partition,
            leader_epoch: change.leader_epoch,
            partition_epoch: change.partition_epoch,
            new_isr: change.new_isr,
            member_epochs: change.member_epochs,
        }));
    }

    /// The leader's side of a follower's fetch (as the Fetch handler does it).
    fn on_fetch(&mut self, from: i32, epoch: u64, to: i32, leader_epoch: i32, offset: Offset) {
        let now = self.now();
        let n = self.node(to);
        let leading = n.alive
            && matches!(n.state.snapshot(), Role::Leader(l) if l.leader_epoch == leader_epoch);
        let data = if !leading {
            Err(None)
        } else {
            let read = {
                let log = n.partition.log();
                let (start, end) = (log.log_start_offset(), log.log_end_offset());
                match log.read_bounded(offset, 700, true, end) {
                    Ok(info) => Ok(info.slice.map(|s| {
                        let mut bytes = vec![0u8; s.len as usize];
                        s.file
                            .read_exact_at(&mut bytes, s.position.get())
                            .expect("read");
                        bytes
                    })),
                    Err(_) => Err(Some((start, end))),
                }
            };
            match read {
                Err(range) => Err(range),
                Ok(bytes) => {
                    match n.state.follower_fetched(
                        &n.partition,
                        from,
                        epoch as i64,
                        offset,
                        to,
                        now,
                    ) {
                        Err(_) => Err(None),
                        Ok((_, expand)) => {
                            let hw = n.partition.log().high_watermark();
                            if self.trace && expand.is_some() {
                                eprintln!("{} {to} expands for {from} (epoch {epoch}) fetching at {offset}, hw {hw}", self.step);
                            }
                            if let Some(change) = expand {
                                self.alter(to, change);
                            }
                            Ok((bytes.unwrap_or_default(), hw))
                        }
                    }
                }
            }
        };
        self.send(Message::Fetched {
            to: from,
            from: to,
            leader_epoch,
            offset,
            data,
        });
    }

    /// The follower's side of a fetch response (as the fetcher does it).
    fn on_fetched(
        &mut self,
        to: i32,
        from: i32,
        leader_epoch: i32,
        offset: Offset,
        data: FetchAnswer,
    ) {
        let (trace, step) = (self.trace, self.step);
        let n = self.node(to);
        if !n.alive || n.following != Some((from, leader_epoch, true)) {
            return;
        }
        let Some(_role) = n.state.following(from, leader_epoch) else {
            return;
        };
        let mut log = n.partition.log();
        // A response to an older fetch (reordered) is not this log's continuation.
        if log.log_end_offset() != offset {
            return;
        }
        match data {
            Ok((bytes, hw)) => {
                let records = whole_batches(&bytes);
                if trace && !records.is_empty() {
                    eprintln!("{step} node {to} appends at {offset} from {from} (hw {hw})");
                }
                if !records.is_empty() && log.append_as_follower(records, 0).is_err() {
                    drop(log);
                    drop(_role);
                    n.following = Some((from, leader_epoch, false));
                    return;
                }
                let hw = hw.min(log.log_end_offset());
                if hw >= log.log_start_offset() {
                    log.advance_high_watermark(hw);
                }
            }
            Err(Some((start, end))) => {
                let own = log.log_end_offset();
                if trace {
                    eprintln!("{step} node {to} out of range at {own}: leader {start}..{end}");
                }
                if own > end {
                    log.truncate_to(end).expect("truncate");
                } else if own < start {
                    log.truncate_fully_and_start_at(start).expect("start over");
                }
            }
            Err(None) => {}
        }
    }

    fn check_lag(&mut self) {
        let now = self.now();
        let Some((leader, _)) = self.leader() else {
            return;
        };
        let n = self.node(leader);
        if let Some(change) = n.state.lagging(&n.partition, leader, LAG, now) {
            self.alter(leader, change);
        }
    }

    /// A live broker loses power, unless it is the last live member of the ISR.
    fn crash(&mut self) {
        let id = self.rng.below(3) as i32 + 1;
        let isr = self.partition_state().isr;
        let others_alive = isr
            .iter()
            .any(|r| *r != id && self.nodes[(*r - 1) as usize].alive);
        if !self.nodes[(id - 1) as usize].alive || !others_alive {
            return;
        }
        if self.nodes.iter().filter(|n| n.alive).count() < 3 {
            return; // one down at a time
        }
        // A leader dies as a process (kill -9: the page cache survives); a follower may lose
        // power too (only what was synced survives).
        let power_loss = self.partition_state().leader != id && self.chance(50);
        if self.trace {
            eprintln!("{} crash {id} (power loss: {power_loss})", self.step);
        }
        let step = self.step;
        let n = self.node(id);
        n.alive = false;
        n.following = None;
        n.down_since = step;
        if power_loss {
            n.io.crash();
        }
    }

    /// The controller fences a broker that stopped heartbeating; a crashed broker restarts
    /// (recovering its log) and registers again.
    fn restart_or_fence(&mut self) {
        let Some(down) = self.nodes.iter().find(|n| !n.alive).map(|n| n.id) else {
            return;
        };
        let fenced = self.image.brokers[&down].fenced;
        if !fenced {
            let epoch = self.image.brokers[&down].epoch;
            self.record(MetadataRecord::FenceBroker {
                broker_id: down,
                epoch,
            });
            self.reconcile();
            self.apply_roles();
            return;
        }
        if self.step - self.nodes[(down - 1) as usize].down_since < 20 {
            return;
        }
        if self.trace {
            eprintln!("{} restart {down}", self.step);
        }
        let n = self.node(down);
        n.partition = open(&n.io, down, false);
        n.state = ReplicaState::new();
        n.alive = true;
        self.register(down);
        self.apply_roles();
    }

    /// acks=all: a produce is acknowledged once the high watermark passed it with at least
    /// `min.insync.replicas` in the ISR, while its leader still leads.
    fn acknowledge(&mut self) {
        let current = self.leader();
        let mut still = Vec::new();
        for (leader, epoch, value, offset) in std::mem::take(&mut self.waiting) {
            if current != Some((leader, epoch)) {
                continue; // NOT_LEADER_OR_FOLLOWER (or timed out): not acknowledged
            }
            let n = &self.nodes[(leader - 1) as usize];
            if n.partition.log().high_watermark() > offset {
                if n.state.isr_size() >= MIN_ISR {
                    if self.trace {
                        eprintln!("{} acknowledged {value} at {offset}", self.step);
                    }
                    self.acknowledged.push((value, offset));
                }
                continue;
            }
            still.push((leader, epoch, value, offset));
        }
        self.waiting = still;
    }

    fn values(n: &Node) -> BTreeMap<i64, String> {
        let log = n.partition.log();
        let end = log.log_end_offset();
        let mut out = BTreeMap::new();
        let mut at = log.log_start_offset();
        while at < end {
            let Ok(info) = log.read_bounded(at, 1 << 20, true, end) else {
                break;
            };
            let Some(s) = info.slice else { break };
            let mut bytes = vec![0u8; s.len as usize];
            s.file.read_exact_at(&mut bytes, s.position.get()).unwrap();
            let batch = whole_batches(&bytes);
            let found = values_in(batch);
            let Some(last) = found.last().map(|(o, _)| *o) else {
                break;
            };
            for (o, v) in found {
                out.insert(o, String::from_utf8(v.unwrap_or_default()).unwrap());
            }
            at = Offset(last + 1);
        }
        out
    }

    /// Every acknowledged record is at its offset on every live in-sync replica.
    fn check(&self) {
        let isr = self.partition_state().isr;
        for n in self.nodes.iter().filter(|n| n.alive && isr.contains(&n.id)) {
            let values = Self::values(n);
            for (value, offset) in &self.acknowledged {
                assert_eq!(
                    values.get(&offset.get()),
                    Some(value),
                    "seed {} step {}: acknowledged {value} at {offset} is not on in-sync \
                     replica {} (isr {isr:?}, image {:?})",
                    self.seed,
                    self.step,
                    n.id,
                    self.partition_state()
                );
            }
        }
    }
}

fn seeds() -> Vec<u64> {
    match std::env::var("STRATA_REPLICATION_SEED") {
        Ok(s) => vec![s.parse().expect("a seed")],
        Err(_) => (1..=std::env::var("STRATA_REPLICATION_SEEDS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(40))
            .collect(),
    }
}

#[test]
fn acknowledged_means_on_every_in_sync_replica_through_loss_reordering_and_crashes() {
    let mut acknowledged = 0;
    let mut crashes_seen = false;
    for seed in seeds() {
        let mut sim = Sim::new(seed);
        sim.run(1500, true);
        crashes_seen |= sim.nodes.iter().any(|n| n.down_since > 0);
        // Heal: everyone back, no loss; the replicas converge on one log.
        for _ in 0..10 {
            sim.step += 25;
            sim.restart_or_fence();
            sim.restart_or_fence();
        }
        sim.run(3000, false);
        for _ in 0..400 {
            sim.step += 1;
            sim.follower_acts();
            while !sim.network.is_empty() {
                sim.deliver(false);
            }
            sim.acknowledge();
        }
        let logs: Vec<BTreeMap<i64, String>> = sim.nodes.iter().map(Sim::values).collect();
        for (value, offset) in &sim.acknowledged {
            assert_eq!(
                logs[0].get(&offset.get()),
                Some(value),
                "seed {seed}: acknowledged {value} at {offset} lost"
            );
        }
        assert!(
            logs.iter().all(|l| *l == logs[0]),
            "seed {seed}: the replicas did not converge: {:?} / {:?} / {:?}",
            logs[0].len(),
            logs[1].len(),
            logs[2].len()
        );
        acknowledged += sim.acknowledged.len();
    }
    assert!(crashes_seen, "no seed crashed a broker");
    assert!(acknowledged > 0, "nothing was acknowledged");
}
