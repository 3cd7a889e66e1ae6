//! Replication on a node of a cluster: each partition's role taken from the metadata image,
//! followers' fetchers started and stopped with it, and the leaders' ISR changes sent to the
//! controller (AlterPartition), one at a time per partition.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_storage::{Offset, Partition};
use tokio::sync::mpsc;

use super::client::Connector;
use super::fetcher::{BrokerEpoch, ReplicaFetchers};
use super::state::{IsrChange, NotLeading, RoleChange};
use super::ReplicaManager;
use crate::config::quorum::ReplicationConfig;
use crate::quorum::controller::AlterPartition;
use crate::quorum::{MetadataImage, MetadataQuorum};

pub struct Replication {
    me: i32,
    config: ReplicationConfig,
    replicas: Arc<ReplicaManager>,
    fetchers: ReplicaFetchers,
    changes: mpsc::UnboundedSender<IsrChange>,
    pending: Mutex<Option<mpsc::UnboundedReceiver<IsrChange>>>,
    /// Told (topic, partition, whether this broker leads it now) at each change of role: the
    /// coordinators take over or resign the partitions of their internal topics.
    leadership: std::sync::OnceLock<LeadershipListener>,
}

/// See [`Replication::on_leadership`].
pub type LeadershipListener = Box<dyn Fn(&str, i32, bool) + Send + Sync>;

impl std::fmt::Debug for Replication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replication")
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

impl Replication {
    pub fn new(
        me: i32,
        config: ReplicationConfig,
        replicas: Arc<ReplicaManager>,
        connector: Connector,
        broker_epoch: BrokerEpoch,
    ) -> Replication {
        let (changes, pending) = mpsc::unbounded_channel();
        Replication {
            me,
            fetchers: ReplicaFetchers::new(
                me,
                config.clone(),
                replicas.clone(),
                connector,
                broker_epoch,
            ),
            config,
            replicas,
            changes,
            pending: Mutex::new(Some(pending)),
            leadership: std::sync::OnceLock::new(),
        }
    }

    /// Installs (once) what learns of each change of a partition's leadership on this broker.
    pub fn on_leadership(&self, listener: LeadershipListener) {
        let _ = self.leadership.set(listener);
    }

    pub fn config(&self) -> &ReplicationConfig {
        &self.config
    }

    /// Takes each local partition's role from the image: leads, follows (its fetcher started,
    /// truncating first), or neither.
    pub fn apply_image(&self, image: &MetadataImage) {
        let logs = self.replicas.logs();
        let now = Instant::now();
        for topic in image.topics.values() {
            let Some(local) = logs.topic(&topic.name).filter(|t| t.id == topic.id) else {
                continue;
            };
            for (i, p) in topic.partitions.iter().enumerate() {
                let index = i as i32;
                let Some(partition) = local.partition(index) else {
                    continue;
                };
                let state = self.replicas.states().get_or_create(&topic.name, index);
                let leads = match state.apply(&partition, p, self.me, now) {
                    Ok(RoleChange::Unchanged) => None,
                    Ok(RoleChange::Lead) => {
                        self.fetchers.stop(&topic.name, index);
                        Some(true)
                    }
                    Ok(RoleChange::Follow {
                        leader,
                        leader_epoch,
                    }) => {
                        tracing::info!(topic = %topic.name, partition = index, leader, leader_epoch, "following the partition's leader");
                        self.fetchers
                            .follow(&topic.name, index, leader, leader_epoch);
                        Some(false)
                    }
                    Ok(RoleChange::Resign) => {
                        self.fetchers.stop(&topic.name, index);
                        Some(false)
                    }
                    Err(e) => {
                        tracing::error!(topic = %topic.name, partition = index, error = %e, "cannot take the partition's role");
                        None
                    }
                };
                if let (Some(leads), Some(listener)) = (leads, self.leadership.get()) {
                    listener(&topic.name, index, leads);
                }
                // A waiting acks=all produce or consumer fetch learns of the change.
                self.replicas.appended(&topic.name, index);
            }
        }
        self.replicas.states().retain(|t, p| {
            image
                .topics
                .get(t)
                .is_some_and(|topic| (p as usize) < topic.partitions.len())
        });
        for (t, p, _) in self.fetchers.following() {
            if !image.topics.contains_key(&t) {
                self.fetchers.stop(&t, p);
            }
        }
    }

    /// A follower `replica` fetched `partition` at `fetch_offset`; true when the high watermark
    /// moved (consumers waiting on the partition may read more). Err: this broker does not
    /// lead the partition for that replica.
    pub fn follower_fetched(
        &self,
        partition: &Partition,
        replica: i32,
        replica_epoch: i64,
        fetch_offset: Offset,
    ) -> Result<bool, NotLeading> {
        let Some(state) = self
            .replicas
            .states()
            .get(&partition.topic, partition.index)
        else {
            return Err(NotLeading);
        };
        let (moved, expand) = state.follower_fetched(
            partition,
            replica,
            replica_epoch,
            fetch_offset,
            self.me,
            Instant::now(),
        )?;
        if let Some(change) = expand {
            tracing::info!(topic = %change.topic, partition = change.partition, replica, isr = ?change.new_isr, "a follower caught up: expanding the ISR");
            let _ = self.changes.send(change);
        }
        Ok(moved)
    }

    /// Sends the leaders' ISR changes to the controller, and every `replica.lag.time.max.ms`/2
    /// looks for followers that lag. Runs until aborted.
    pub async fn run(self: Arc<Self>, quorum: Arc<MetadataQuorum>, broker_epoch: BrokerEpoch) {
        let Some(mut changes) = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        let lag = Duration::from_millis(self.config.lag_time_max_ms);
        let mut tick = tokio::time::interval((lag / 2).max(Duration::from_millis(10)));
        loop {
            let batch: Vec<IsrChange> = tokio::select! {
                _ = tick.tick() => self.lagging(lag),
                Some(c) = changes.recv() => vec![c],
            };
            for change in batch {
                let this = self.clone();
                let quorum = quorum.clone();
                let epoch = broker_epoch();
                tokio::spawn(async move { this.send(&quorum, epoch, change).await });
            }
        }
    }

    fn lagging(&self, lag: Duration) -> Vec<IsrChange> {
        let now = Instant::now();
        let logs = self.replicas.logs();
        self.replicas
            .states()
            .leading()
            .into_iter()
            .filter_map(|((topic, index), state)| {
                let partition = logs.topic(&topic)?.partition(index)?;
                state.lagging(&partition, self.me, lag, now)
            })
            .collect()
    }

    async fn send(&self, quorum: &MetadataQuorum, broker_epoch: u64, change: IsrChange) {
        let request = AlterPartition {
            broker_id: self.me,
            broker_epoch,
            topic: change.topic.clone(),
            partition: change.partition,
            leader_epoch: change.leader_epoch,
            partition_epoch: change.partition_epoch,
            new_isr: change.new_isr.clone(),
            member_epochs: change.member_epochs.clone(),
        };
        let answer = quorum.alter_partition(request).await;
        let accepted = match &answer {
            Ok(Ok(state)) => Some(state),
            Ok(Err((code, message))) => {
                tracing::info!(topic = %change.topic, partition = change.partition, error = code, message, "the controller refused the ISR change");
                None
            }
            Err(e) => {
                tracing::warn!(topic = %change.topic, partition = change.partition, error = %e, "the ISR change did not reach the controller");
                None
            }
        };
        let Some(partition) = self
            .replicas
            .logs()
            .topic(&change.topic)
            .and_then(|t| t.partition(change.partition))
        else {
            return;
        };
        if let Some(state) = self.replicas.states().get(&change.topic, change.partition) {
            state.isr_changed(&partition, &change, accepted, self.me);
            self.replicas.appended(&change.topic, change.partition);
        }
    }

    pub fn shutdown(&self) {
        self.fetchers.shutdown();
    }
}
