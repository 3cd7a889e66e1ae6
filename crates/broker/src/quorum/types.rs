//! The metadata quorum's types: openraft's type configuration, the records of the metadata log
//! and the image they build (Kafka's `MetadataImage`).

use std::collections::BTreeMap;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

/// A node's id (`node.id`); Raft's node id is the same number.
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// The metadata log's Raft types: entries carry [`MetadataRecord`]s, a node is known by its
    /// controller listener's `host:port`, snapshots are whole images in memory.
    pub MetadataRaft:
        D = MetadataRecord,
        R = (),
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<MetadataRaft>,
        SnapshotData = Cursor<Vec<u8>>,
);

pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type Entry = openraft::Entry<MetadataRaft>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, openraft::BasicNode>;
pub type Raft = openraft::Raft<MetadataRaft>;

/// One endpoint a broker registers: a listener's name, advertised host and port, and protocol
/// (Kafka's `BrokerEndpoint`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub security_protocol: String,
}

/// A broker's registration (Kafka's `RegisterBrokerRecord`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub broker_id: i32,
    /// A new one at every start of the broker process, so that a restarted broker's
    /// registration replaces its previous one.
    pub incarnation_id: String,
    pub rack: Option<String>,
    pub endpoints: Vec<Endpoint>,
}

/// A record of the metadata log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// A broker (re)registers: a new epoch, fenced until it heartbeats.
    RegisterBroker(BrokerRegistration),
    /// The broker of that epoch may not lead or serve (no heartbeat within the session
    /// timeout, or a controlled shutdown).
    FenceBroker {
        broker_id: i32,
        epoch: u64,
    },
    /// The broker of that epoch heartbeats: it may serve.
    UnfenceBroker {
        broker_id: i32,
        epoch: u64,
    },
    /// A topic and all its partitions (Kafka's TopicRecord and PartitionRecords, as one).
    CreateTopic {
        name: String,
        id: [u8; 16],
        configs: BTreeMap<String, String>,
        partitions: Vec<PartitionState>,
    },
    /// Partitions added to a topic, numbered after its last.
    CreatePartitions {
        name: String,
        partitions: Vec<PartitionState>,
    },
    DeleteTopic {
        name: String,
    },
    /// A partition's new leader and in-sync replicas (Kafka's PartitionChangeRecord): its
    /// partition epoch goes up, and its leader epoch when the leader changes.
    ChangePartition {
        name: String,
        partition: i32,
        leader: i32,
        isr: Vec<i32>,
    },
    /// A partition's replicas change (a reassignment starts, completes or is cancelled; Kafka's
    /// PartitionChangeRecord with replicas): its partition epoch goes up, and its leader epoch
    /// when the leader changes or a replica leaves (fencing the one that left).
    ReassignPartition {
        name: String,
        partition: i32,
        replicas: Vec<i32>,
        adding: Vec<i32>,
        removing: Vec<i32>,
        leader: i32,
        isr: Vec<i32>,
    },
    /// A topic's config overrides, all of them (Kafka's ConfigRecords for a topic resource);
    /// with `expected`, only if the topic's configs are still those (an incremental change
    /// computed from them: one that lost a race with another is not applied, and its broker
    /// computes it again).
    AlterTopicConfigs {
        name: String,
        configs: BTreeMap<String, String>,
        #[serde(default)]
        expected: Option<BTreeMap<String, String>>,
    },
    /// A broker's dynamic configs, all of them (`broker` "" for the cluster-wide default;
    /// Kafka's ConfigRecords for a broker resource); `expected` as for a topic.
    AlterBrokerConfigs {
        broker: String,
        configs: BTreeMap<String, String>,
        #[serde(default)]
        expected: Option<BTreeMap<String, String>>,
    },
    /// A block of producer ids handed to a broker (Kafka's ProducerIdsRecord): every id below
    /// `next_producer_id` is taken.
    AllocateProducerIds {
        broker_id: i32,
        next_producer_id: i64,
    },
    /// A change of the ACLs, SCRAM credentials or client quotas (Kafka's AccessControlEntry,
    /// UserScramCredential and ClientQuota records and their removals), as the difference it
    /// makes.
    AlterSecurity(crate::security::store::SecurityDelta),
    /// The SCRAM credentials a controller was formatted with (`storage format --add-scram`):
    /// applied as AlterSecurity if no bootstrap records were applied before, else ignored.
    BootstrapSecurity(crate::security::store::SecurityDelta),
}

/// One partition as the image holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// In preference order: the first is the preferred leader.
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// -1: no leader (offline).
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// Replicas a reassignment is adding (in `replicas`, not yet in sync; KIP-455).
    #[serde(default)]
    pub adding: Vec<i32>,
    /// Replicas a reassignment will remove once the adding ones are in sync.
    #[serde(default)]
    pub removing: Vec<i32>,
}

impl PartitionState {
    /// A new partition on `replicas`, led by the first.
    pub fn new(replicas: Vec<i32>) -> PartitionState {
        PartitionState {
            leader: replicas.first().copied().unwrap_or(-1),
            isr: replicas.clone(),
            replicas,
            leader_epoch: 0,
            partition_epoch: 0,
            adding: Vec::new(),
            removing: Vec::new(),
        }
    }
}

/// A topic as the image holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    pub name: String,
    pub id: [u8; 16],
    pub configs: BTreeMap<String, String>,
    pub partitions: Vec<PartitionState>,
}

/// A registered broker as the image holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredBroker {
    pub registration: BrokerRegistration,
    /// The offset (log index) of its registration record: Kafka's broker epoch.
    pub epoch: u64,
    /// Fenced brokers are left out of what clients are told.
    pub fenced: bool,
}

/// Everything the metadata log has decided, as of `applied` (Kafka's `MetadataImage`). Every
/// node builds the same image from the same log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    pub brokers: BTreeMap<i32, RegisteredBroker>,
    pub topics: BTreeMap<String, TopicImage>,
    /// The first producer id no broker has been given.
    #[serde(default)]
    pub next_producer_id: i64,
    /// Dynamic broker configs, by broker id ("" for the cluster-wide default).
    #[serde(default)]
    pub broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// The ACLs, SCRAM credentials (salted keys) and client quotas, as records of the security
    /// store's format (`security::store`).
    #[serde(default)]
    pub security: Vec<u8>,
    /// Whether bootstrap records (BootstrapSecurity) were applied: later ones are ignored.
    #[serde(default)]
    pub security_bootstrapped: bool,
}

impl MetadataImage {
    fn partition_mut(&mut self, topic: &str, partition: i32) -> Option<&mut PartitionState> {
        self.topics
            .get_mut(topic)
            .and_then(|t| t.partitions.get_mut(usize::try_from(partition).ok()?))
    }

    /// A dynamic broker config of `broker`: its own value, else the cluster-wide default.
    pub fn broker_config(&self, broker: i32, key: &str) -> Option<&str> {
        self.broker_configs
            .get(&broker.to_string())
            .and_then(|c| c.get(key))
            .or_else(|| self.broker_configs.get("").and_then(|c| c.get(key)))
            .map(String::as_str)
    }
}

impl MetadataImage {
    /// Applies a change of the ACLs, SCRAM credentials and quotas; a delta that does not read
    /// changes nothing (every node alike).
    fn apply_security(&mut self, delta: &crate::security::store::SecurityDelta) {
        use crate::security::store::{encode_records, SecurityImage};
        let mut security = SecurityImage::from_records(&self.security).unwrap_or_default();
        if security.apply(delta).is_some() {
            self.security = encode_records(&security);
        }
    }

    /// Applies one record found at log index `offset`.
    pub fn apply(&mut self, record: &MetadataRecord, offset: u64) {
        match record {
            MetadataRecord::RegisterBroker(registration) => {
                self.brokers.insert(
                    registration.broker_id,
                    RegisteredBroker {
                        registration: registration.clone(),
                        epoch: offset,
                        fenced: true,
                    },
                );
            }
            MetadataRecord::FenceBroker { broker_id, epoch }
            | MetadataRecord::UnfenceBroker { broker_id, epoch } => {
                // A record about an older registration changes nothing.
                if let Some(b) = self
                    .brokers
                    .get_mut(broker_id)
                    .filter(|b| b.epoch == *epoch)
                {
                    b.fenced = matches!(record, MetadataRecord::FenceBroker { .. });
                }
            }
            MetadataRecord::CreateTopic {
                name,
                id,
                configs,
                partitions,
            } => {
                self.topics
                    .entry(name.clone())
                    .or_insert_with(|| TopicImage {
                        name: name.clone(),
                        id: *id,
                        configs: configs.clone(),
                        partitions: partitions.clone(),
                    });
            }
            MetadataRecord::CreatePartitions { name, partitions } => {
                if let Some(t) = self.topics.get_mut(name) {
                    t.partitions.extend(partitions.iter().cloned());
                }
            }
            MetadataRecord::DeleteTopic { name } => {
                self.topics.remove(name);
            }
            MetadataRecord::ChangePartition {
                name,
                partition,
                leader,
                isr,
            } => {
                let Some(p) = self.partition_mut(name, *partition) else {
                    return;
                };
                if p.leader != *leader {
                    p.leader_epoch += 1;
                }
                p.leader = *leader;
                p.isr = isr.clone();
                p.partition_epoch += 1;
            }
            MetadataRecord::ReassignPartition {
                name,
                partition,
                replicas,
                adding,
                removing,
                leader,
                isr,
            } => {
                let Some(p) = self.partition_mut(name, *partition) else {
                    return;
                };
                let shrinks = p.replicas.iter().any(|r| !replicas.contains(r));
                if p.leader != *leader || shrinks {
                    p.leader_epoch += 1;
                }
                p.leader = *leader;
                p.isr = isr.clone();
                p.replicas = replicas.clone();
                p.adding = adding.clone();
                p.removing = removing.clone();
                p.partition_epoch += 1;
            }
            MetadataRecord::AlterBrokerConfigs {
                broker,
                configs,
                expected,
            } => {
                let current = self.broker_configs.get(broker);
                let superseded = expected
                    .as_ref()
                    .is_some_and(|e| Some(e) != current && !(e.is_empty() && current.is_none()));
                if superseded {
                    // Computed from configs that have changed since: not applied.
                } else if configs.is_empty() {
                    self.broker_configs.remove(broker);
                } else {
                    self.broker_configs.insert(broker.clone(), configs.clone());
                }
            }
            MetadataRecord::AlterTopicConfigs {
                name,
                configs,
                expected,
            } => {
                if let Some(t) = self.topics.get_mut(name) {
                    if expected.as_ref().is_none_or(|e| *e == t.configs) {
                        t.configs = configs.clone();
                    }
                }
            }
            MetadataRecord::AllocateProducerIds {
                next_producer_id, ..
            } => {
                self.next_producer_id = self.next_producer_id.max(*next_producer_id);
            }
            MetadataRecord::AlterSecurity(delta) => self.apply_security(delta),
            MetadataRecord::BootstrapSecurity(delta) => {
                if !self.security_bootstrapped {
                    self.apply_security(delta);
                    self.security_bootstrapped = true;
                }
            }
        }
    }
}

#[cfg(test)]
impl MetadataImage {
    /// An image of brokers `ids` registered (epochs 1, 2, ... in order), all serving but the
    /// `fenced` ones: the controller's tests start from it.
    pub(crate) fn with_brokers(ids: &[i32], fenced: &[i32]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for (i, id) in ids.iter().copied().enumerate() {
            let epoch = i as u64 + 1;
            image.apply(
                &MetadataRecord::RegisterBroker(BrokerRegistration {
                    broker_id: id,
                    incarnation_id: id.to_string(),
                    rack: None,
                    endpoints: Vec::new(),
                }),
                epoch,
            );
            if !fenced.contains(&id) {
                image.apply(
                    &MetadataRecord::UnfenceBroker {
                        broker_id: id,
                        epoch,
                    },
                    100 + epoch,
                );
            }
        }
        image
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bootstrap security records are applied once: a second (another controller's, a new
    /// leader's) changes nothing, even after the first one's user was deleted.
    #[test]
    fn bootstrap_security_is_applied_once() {
        use crate::security::scram::ScramMechanism;
        use crate::security::store::{diff, SecurityImage};
        let credential = ScramMechanism::Sha256.credential(vec![1; 32], &[2; 32], 4096);
        let delta = super::super::bootstrap::scram_delta(&[(
            "alice".to_string(),
            ScramMechanism::Sha256,
            credential,
        )]);
        let users = |image: &MetadataImage| {
            SecurityImage::from_records(&image.security)
                .unwrap_or_default()
                .scram
                .len()
        };
        let mut image = MetadataImage::default();
        image.apply(&MetadataRecord::BootstrapSecurity(delta.clone()), 1);
        assert!(image.security_bootstrapped);
        assert_eq!(users(&image), 1);
        let before = SecurityImage::from_records(&image.security).unwrap();
        let removal = diff(&before, &SecurityImage::default());
        image.apply(&MetadataRecord::AlterSecurity(removal), 2);
        assert_eq!(users(&image), 0);
        image.apply(&MetadataRecord::BootstrapSecurity(delta), 3);
        assert_eq!(users(&image), 0, "not brought back");
    }

    /// A conditional config change computed from configs that changed since is not applied;
    /// one computed from the configs in force is; an unconditional one always is.
    #[test]
    fn a_config_change_from_stale_configs_is_not_applied() {
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let mut image = MetadataImage::default();
        image.apply(
            &MetadataRecord::CreateTopic {
                name: "t".into(),
                id: [1; 16],
                configs: BTreeMap::new(),
                partitions: vec![],
            },
            1,
        );
        let change = |configs, expected| MetadataRecord::AlterTopicConfigs {
            name: "t".into(),
            configs,
            expected,
        };
        image.apply(&change(map(&[("a", "1")]), Some(map(&[]))), 2);
        // Computed from {} too, but {a=1} is in force now: lost the race, not applied.
        image.apply(&change(map(&[("b", "2")]), Some(map(&[]))), 3);
        assert_eq!(image.topics["t"].configs, map(&[("a", "1")]));
        image.apply(
            &change(map(&[("a", "1"), ("b", "2")]), Some(map(&[("a", "1")]))),
            4,
        );
        assert_eq!(image.topics["t"].configs, map(&[("a", "1"), ("b", "2")]));
        image.apply(&change(map(&[("c", "3")]), None), 5);
        assert_eq!(image.topics["t"].configs, map(&[("c", "3")]));

        let broker = |configs, expected| MetadataRecord::AlterBrokerConfigs {
            broker: "".into(),
            configs,
            expected,
        };
        image.apply(&broker(map(&[("x", "1")]), Some(map(&[]))), 6);
        image.apply(&broker(map(&[("y", "1")]), Some(map(&[]))), 7);
        assert_eq!(image.broker_configs[""], map(&[("x", "1")]));
    }

    #[test]
    fn registration_starts_fenced_and_only_its_epoch_unfences_it() {
        let mut image = MetadataImage::default();
        let reg = BrokerRegistration {
            broker_id: 2,
            incarnation_id: "a".into(),
            rack: None,
            endpoints: vec![],
        };
        image.apply(&MetadataRecord::RegisterBroker(reg.clone()), 5);
        assert!(image.brokers[&2].fenced);
        image.apply(
            &MetadataRecord::UnfenceBroker {
                broker_id: 2,
                epoch: 4,
            },
            6,
        );
        assert!(
            image.brokers[&2].fenced,
            "an older epoch's record is ignored"
        );
        image.apply(
            &MetadataRecord::UnfenceBroker {
                broker_id: 2,
                epoch: 5,
            },
            7,
        );
        assert!(!image.brokers[&2].fenced);
        image.apply(
            &MetadataRecord::FenceBroker {
                broker_id: 2,
                epoch: 5,
            },
            8,
        );
        assert!(image.brokers[&2].fenced);
        image.apply(&MetadataRecord::RegisterBroker(reg), 9);
        assert_eq!(image.brokers[&2].epoch, 9);
    }
}
