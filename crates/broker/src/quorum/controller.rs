//! The active controller's decisions on topics (Kafka's QuorumController): creating topics and
//! partitions with their replicas placed, deleting topics, and keeping every partition led by
//! a broker that may serve. Each runs on the Raft leader and ends in records of the metadata
//! log; other nodes forward them here (`MetadataQuorum::to_leader`).

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};

use super::network::{ControllerRequest, ControllerResponse};
use super::placement::{assign, elect};
use super::types::{MetadataImage, MetadataRecord, PartitionState};
use super::MetadataQuorum;

/// Producer ids per block, as Kafka's controller hands them out.
pub const PRODUCER_ID_BLOCK: i64 = 1000;

/// A Kafka error: its code and message.
pub type Refusal = (i16, String);

fn refuse(error: ResponseError, message: impl Into<String>) -> Refusal {
    (error.code(), message.into())
}

/// A topic to create, as CreateTopics asks (checked by the broker that received it: name,
/// ACLs, configs).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewTopic {
    pub name: String,
    /// -1: `num.partitions` (already resolved by the broker when it is).
    pub partitions: i32,
    pub replication_factor: i16,
    /// Replicas per partition, when the request gives them.
    pub assignments: Vec<Vec<i32>>,
    pub configs: BTreeMap<String, String>,
    /// The id to give it (an internal topic's, the same on every node); None: a new one.
    #[serde(default)]
    pub id: Option<[u8; 16]>,
}

/// A topic created: its id, partition count and replication factor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedTopic {
    pub id: [u8; 16],
    pub partitions: i32,
    pub replication_factor: i16,
}

/// Brokers new replicas may go to: the unfenced ones, with their racks.
fn placeable(image: &MetadataImage) -> BTreeMap<i32, Option<String>> {
    image
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .map(|b| (b.registration.broker_id, b.registration.rack.clone()))
        .collect()
}

/// A partition leader's change of its ISR (Kafka's AlterPartition request), made against the
/// partition state it knows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlterPartition {
    pub broker_id: i32,
    pub broker_epoch: u64,
    pub topic: String,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<i32>,
    /// The broker epochs of the replicas joining, as their fetches told the leader (KIP-903):
    /// a fetch of a broker's previous incarnation does not bring it back into the ISR.
    #[serde(default)]
    pub member_epochs: Vec<(i32, u64)>,
}

fn random_below(n: usize) -> usize {
    (uuid::Uuid::new_v4().as_u128() % n.max(1) as u128) as usize
}

/// Replicas for `count` partitions numbered from `first`: the given assignments, checked, or
/// placed over the unfenced brokers.
fn replicas_for(
    image: &MetadataImage,
    count: i32,
    first: i32,
    replication_factor: i16,
    assignments: &[Vec<i32>],
) -> Result<Vec<Vec<i32>>, Refusal> {
    if !assignments.is_empty() {
        for (i, replicas) in assignments.iter().enumerate() {
            let partition = first + i as i32;
            let mut distinct = replicas.clone();
            distinct.sort_unstable();
            distinct.dedup();
            if replicas.is_empty() || distinct.len() != replicas.len() {
                return Err(refuse(
                    ResponseError::InvalidReplicaAssignment,
                    format!("Partition {partition} has an empty or duplicated replica list."),
                ));
            }
            if let Some(b) = replicas.iter().find(|b| !image.brokers.contains_key(b)) {
                return Err(refuse(
                    ResponseError::InvalidReplicaAssignment,
                    format!(
                        "Partition {partition} is assigned to broker {b}, which is not registered."
                    ),
                ));
            }
        }
        return Ok(assignments.to_vec());
    }
    let brokers = placeable(image);
    assign(
        &brokers,
        count,
        replication_factor,
        first,
        random_below(brokers.len()),
        random_below(brokers.len()),
    )
    .map_err(|e| refuse(ResponseError::InvalidReplicationFactor, e.to_string()))
}

/// Whether `change` may be made to the image's partition (Kafka's AlterPartition checks): the
/// partition as it is, or the refusal.
pub fn check_alter_partition(
    image: &MetadataImage,
    change: &AlterPartition,
) -> Result<PartitionState, Refusal> {
    let registered = image.brokers.get(&change.broker_id);
    if registered.is_none_or(|b| b.epoch != change.broker_epoch) {
        return Err(refuse(
            ResponseError::StaleBrokerEpoch,
            format!(
                "Broker {} epoch {} is not the registered one.",
                change.broker_id, change.broker_epoch
            ),
        ));
    }
    let Some(p) = image
        .topics
        .get(&change.topic)
        .and_then(|t| t.partitions.get(change.partition.max(0) as usize))
    else {
        return Err(refuse(
            ResponseError::UnknownTopicOrPartition,
            "This server does not host this topic-partition.",
        ));
    };
    if p.leader != change.broker_id {
        return Err(refuse(
            ResponseError::NotLeaderOrFollower,
            format!("Broker {} is not the leader.", change.broker_id),
        ));
    }
    if change.leader_epoch < p.leader_epoch {
        return Err(refuse(
            ResponseError::FencedLeaderEpoch,
            format!(
                "Leader epoch {} is older than {}.",
                change.leader_epoch, p.leader_epoch
            ),
        ));
    }
    if change.partition_epoch != p.partition_epoch {
        return Err(refuse(
            ResponseError::InvalidUpdateVersion,
            format!(
                "Partition epoch {} is not the current {}.",
                change.partition_epoch, p.partition_epoch
            ),
        ));
    }
    if !change.new_isr.contains(&p.leader) {
        return Err(refuse(
            ResponseError::InvalidRequest,
            "The new ISR does not contain the leader.",
        ));
    }
    // A replica joins only while its broker may serve (KIP-841), and only on the word of a
    // fetch from its current registration (KIP-903).
    let serving = |b: i32| image.brokers.get(&b).is_some_and(|r| !r.fenced);
    let current_epoch = |b: i32| {
        change
            .member_epochs
            .iter()
            .filter(|(m, _)| *m == b)
            .all(|(_, e)| image.brokers.get(&b).is_some_and(|r| r.epoch == *e))
    };
    if let Some(b) = change.new_isr.iter().find(|b| {
        !p.replicas.contains(b) || (!p.isr.contains(b) && (!serving(**b) || !current_epoch(**b)))
    }) {
        return Err(refuse(
            ResponseError::IneligibleReplica,
            format!("Replica {b} is not eligible to join the ISR."),
        ));
    }
    Ok(p.clone())
}

/// The partition changes that move leadership off brokers that may not serve, onto in-sync
/// replicas that may, and back from offline when one returns (see [`elect`]).
pub fn leader_changes(image: &MetadataImage) -> Vec<MetadataRecord> {
    let serving = |b: i32| image.brokers.get(&b).is_some_and(|r| !r.fenced);
    let mut changes = Vec::new();
    for (name, topic) in &image.topics {
        for (i, p) in topic.partitions.iter().enumerate() {
            let (leader, isr) = elect(p.leader, &p.isr, &p.replicas, serving);
            if leader != p.leader || isr != p.isr {
                changes.push(MetadataRecord::ChangePartition {
                    name: name.clone(),
                    partition: i as i32,
                    leader,
                    isr,
                });
            }
        }
    }
    changes
}

/// Marks the partitions whose changes were not made (`append_partition_changes` stopped at the
/// first of `unmade`) as refused with the error it met.
pub(super) fn refuse_unmade(
    outcomes: &mut [(String, i32, Result<(), Refusal>)],
    unmade: &[(String, i32)],
    error: &str,
) {
    for (name, partition) in unmade {
        for o in outcomes
            .iter_mut()
            .filter(|o| o.0 == *name && o.1 == *partition)
        {
            o.2 = Err(refuse(ResponseError::NotController, error));
        }
    }
}

impl MetadataQuorum {
    /// CreateTopics through the controller: one result per topic, in order.
    pub async fn create_topics(
        &self,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Result<Vec<Result<CreatedTopic, Refusal>>, String> {
        match self
            .to_leader(ControllerRequest::CreateTopics {
                topics,
                validate_only,
            })
            .await?
        {
            ControllerResponse::CreateTopics(r) => r,
            _ => Err("unexpected controller response".to_string()),
        }
    }

    /// DeleteTopics through the controller: the deleted topics' ids, in order.
    pub async fn delete_topics(
        &self,
        names: Vec<String>,
    ) -> Result<Vec<Result<[u8; 16], Refusal>>, String> {
        match self
            .to_leader(ControllerRequest::DeleteTopics(names))
            .await?
        {
            ControllerResponse::DeleteTopics(r) => r,
            _ => Err("unexpected controller response".to_string()),
        }
    }

    /// CreatePartitions through the controller: (topic, new total, assignments of the new ones).
    pub async fn create_partitions(
        &self,
        topics: Vec<(String, i32, Vec<Vec<i32>>)>,
        validate_only: bool,
    ) -> Result<Vec<Result<(), Refusal>>, String> {
        match self
            .to_leader(ControllerRequest::CreatePartitions {
                topics,
                validate_only,
            })
            .await?
        {
            ControllerResponse::CreatePartitions(r) => r,
            _ => Err("unexpected controller response".to_string()),
        }
    }

    pub(super) async fn create_topics_as_leader(
        &self,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Result<Vec<Result<CreatedTopic, Refusal>>, String> {
        self.check_leader()?;
        let mut out = Vec::new();
        for topic in topics {
            let image = self.image();
            let planned = (|| {
                if image.topics.contains_key(&topic.name) {
                    return Err(refuse(
                        ResponseError::TopicAlreadyExists,
                        format!("Topic '{}' already exists.", topic.name),
                    ));
                }
                if let Some(other) = image
                    .topics
                    .keys()
                    .find(|t| crate::handlers::collides(t, &topic.name))
                {
                    return Err(refuse(
                        ResponseError::InvalidTopicException,
                        format!(
                            "Topic '{}' collides with existing topic: {other}",
                            topic.name
                        ),
                    ));
                }
                let count = if topic.assignments.is_empty() {
                    topic.partitions
                } else {
                    topic.assignments.len() as i32
                };
                replicas_for(
                    &image,
                    count,
                    0,
                    topic.replication_factor,
                    &topic.assignments,
                )
            })();
            let replicas = match planned {
                Ok(r) => r,
                Err(e) => {
                    out.push(Err(e));
                    continue;
                }
            };
            let created = CreatedTopic {
                id: topic.id.unwrap_or_else(|| *uuid::Uuid::new_v4().as_bytes()),
                partitions: replicas.len() as i32,
                replication_factor: replicas.first().map_or(0, |r| r.len() as i16),
            };
            if !validate_only {
                let record = MetadataRecord::CreateTopic {
                    name: topic.name.clone(),
                    id: created.id,
                    configs: topic.configs.clone(),
                    partitions: replicas.into_iter().map(PartitionState::new).collect(),
                };
                if let Err(e) = self.append_as_leader(record).await {
                    out.push(Err(refuse(ResponseError::NotController, e)));
                    continue;
                }
                tracing::info!(topic = %topic.name, partitions = created.partitions, "topic created");
            }
            out.push(Ok(created));
        }
        Ok(out)
    }

    pub(super) async fn delete_topics_as_leader(
        &self,
        names: Vec<String>,
    ) -> Result<Vec<Result<[u8; 16], Refusal>>, String> {
        self.check_leader()?;
        let mut out = Vec::new();
        for name in names {
            let Some(id) = self.image().topics.get(&name).map(|t| t.id) else {
                out.push(Err(refuse(
                    ResponseError::UnknownTopicOrPartition,
                    "This server does not host this topic-partition.",
                )));
                continue;
            };
            match self
                .append_as_leader(MetadataRecord::DeleteTopic { name: name.clone() })
                .await
            {
                Ok(_) => {
                    tracing::info!(topic = %name, "topic deleted");
                    out.push(Ok(id));
                }
                Err(e) => out.push(Err(refuse(ResponseError::NotController, e))),
            }
        }
        Ok(out)
    }

    pub(super) async fn create_partitions_as_leader(
        &self,
        topics: Vec<(String, i32, Vec<Vec<i32>>)>,
        validate_only: bool,
    ) -> Result<Vec<Result<(), Refusal>>, String> {
        self.check_leader()?;
        let mut out = Vec::new();
        for (name, total, assignments) in topics {
            let image = self.image();
            let planned = (|| {
                let Some(topic) = image.topics.get(&name) else {
                    return Err(refuse(
                        ResponseError::UnknownTopicOrPartition,
                        format!("The topic '{name}' does not exist."),
                    ));
                };
                let current = topic.partitions.len() as i32;
                if total <= current {
                    return Err(refuse(
                        ResponseError::InvalidPartitions,
                        format!("Topic currently has {current} partitions, which is higher than the requested {total}."),
                    ));
                }
                if !assignments.is_empty() && assignments.len() as i32 != total - current {
                    return Err(refuse(
                        ResponseError::InvalidReplicaAssignment,
                        format!("Increasing the number of partitions by {} but {} assignments provided.", total - current, assignments.len()),
                    ));
                }
                let rf = topic
                    .partitions
                    .first()
                    .map_or(1, |p| p.replicas.len() as i16);
                replicas_for(&image, total - current, current, rf, &assignments)
            })();
            match planned {
                Err(e) => out.push(Err(e)),
                Ok(_) if validate_only => out.push(Ok(())),
                Ok(replicas) => {
                    let record = MetadataRecord::CreatePartitions {
                        name: name.clone(),
                        partitions: replicas.into_iter().map(PartitionState::new).collect(),
                    };
                    out.push(
                        self.append_as_leader(record)
                            .await
                            .map(|_| ())
                            .map_err(|e| refuse(ResponseError::NotController, e)),
                    );
                }
            }
        }
        Ok(out)
    }

    /// A block of producer ids for `broker_id` from the controller (Kafka's
    /// AllocateProducerIds): (first, end). Ids are unique across the cluster and its restarts:
    /// the block is recorded in the metadata log before it is handed out.
    pub async fn allocate_producer_ids(&self, broker_id: i32) -> Result<(i64, i64), String> {
        match self
            .to_leader(ControllerRequest::AllocateProducerIds { broker_id })
            .await?
        {
            ControllerResponse::AllocateProducerIds(r) => r,
            _ => Err("unexpected controller response".to_string()),
        }
    }

    pub(super) async fn allocate_producer_ids_as_leader(
        &self,
        broker_id: i32,
    ) -> Result<(i64, i64), String> {
        self.check_leader()?;
        // One at a time: each reads the image its predecessor's record updated (an append
        // returns once the leader has applied it).
        let _one = self.allocating.lock().await;
        let first = self.image().next_producer_id;
        let end = first + PRODUCER_ID_BLOCK;
        self.append_as_leader(MetadataRecord::AllocateProducerIds {
            broker_id,
            next_producer_id: end,
        })
        .await?;
        Ok((first, end))
    }

    /// AlterPartition through the controller: the partition's state once the change is in
    /// the metadata log, or why it was refused.
    pub async fn alter_partition(
        &self,
        change: AlterPartition,
    ) -> Result<Result<PartitionState, Refusal>, String> {
        match self
            .to_leader(ControllerRequest::AlterPartition(change))
            .await?
        {
            ControllerResponse::AlterPartition(r) => r,
            _ => Err("unexpected controller response".to_string()),
        }
    }

    pub(super) async fn alter_partition_as_leader(
        &self,
        change: AlterPartition,
    ) -> Result<Result<PartitionState, Refusal>, String> {
        self.check_leader()?;
        // Partition changes are decided one at a time, each on the image the previous one left.
        let _one = self.deciding.lock().await;
        let image = self.image();
        let checked = check_alter_partition(&image, &change);
        let current = match checked {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        // The ISR change that brings a reassignment's last new replica in sync completes it.
        let record = super::reassignment::complete_with_isr(
            &image,
            &change.topic,
            change.partition,
            &current,
            &change.new_isr,
        )
        .unwrap_or_else(|| MetadataRecord::ChangePartition {
            name: change.topic.clone(),
            partition: change.partition,
            leader: current.leader,
            isr: change.new_isr.clone(),
        });
        if let Err(e) = self.append_as_leader(record).await {
            return Ok(Err(refuse(ResponseError::NotController, e)));
        }
        tracing::info!(topic = %change.topic, partition = change.partition, isr = ?change.new_isr, "ISR changed");
        Ok(self
            .image()
            .topics
            .get(&change.topic)
            .and_then(|t| t.partitions.get(change.partition as usize))
            .cloned()
            .ok_or_else(|| {
                refuse(
                    ResponseError::UnknownTopicOrPartition,
                    "The topic was deleted.",
                )
            }))
    }

    /// As the leader: moves each partition's leadership off brokers that may not serve, onto
    /// in-sync replicas that may, and back from offline when one returns; a broker that may not
    /// serve leaves every ISR it is in (but the last member of one, which stays).
    pub(super) async fn reconcile_leaders(&self) {
        let _one = self.deciding.lock().await;
        let changes = leader_changes(&self.image());
        if let Err((_, e)) = self
            .append_partition_changes(changes, "partition leader changes")
            .await
        {
            tracing::debug!(error = %e, "partition change failed");
        }
    }

    /// Appends partition changes in order (the caller holds `deciding`), logging each as
    /// `why`; stops at the first that fails: Err(its index, why it failed).
    pub(super) async fn append_partition_changes(
        &self,
        changes: Vec<MetadataRecord>,
        why: &'static str,
    ) -> Result<(), (usize, String)> {
        for (i, change) in changes.into_iter().enumerate() {
            match &change {
                MetadataRecord::ChangePartition {
                    name,
                    partition,
                    leader,
                    ..
                } => tracing::info!(topic = %name, partition, leader, "{why}"),
                MetadataRecord::ReassignPartition {
                    name,
                    partition,
                    leader,
                    replicas,
                    adding,
                    removing,
                    ..
                } => {
                    tracing::info!(topic = %name, partition, leader, ?replicas, ?adding, ?removing, "{why}")
                }
                _ => {}
            }
            self.append_as_leader(change).await.map_err(|e| (i, e))?;
        }
        Ok(())
    }
}
