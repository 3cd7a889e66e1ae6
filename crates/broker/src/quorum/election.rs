//! Leader elections asked for (Kafka's ElectLeaders) and the controller's own preferred-leader
//! balancing (`auto.leader.rebalance.enable`).
//!
//! - **Preferred**: the first replica leads again if it is in the ISR and its broker may serve
//!   (else PREFERRED_LEADER_NOT_AVAILABLE); a partition it already leads answers
//!   ELECTION_NOT_NEEDED.
//! - **Unclean**: only a partition without a leader; the first replica whose broker may serve
//!   leads, alone in the ISR, whatever it holds (records the old ISR had may be lost: the
//!   operator's explicit choice). ELIGIBLE_LEADERS_NOT_AVAILABLE when none may serve.
//!
//! Asked for every partition (a null list), only the partitions an election moved or could not
//! move are answered, as Kafka's controller does.

use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};

use super::controller::Refusal;
use super::network::{ControllerRequest, ControllerResponse};
use super::types::{MetadataImage, MetadataRecord};
use super::MetadataQuorum;

/// ElectLeaders' `election_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionType {
    Preferred,
    Unclean,
}

impl ElectionType {
    pub fn from_code(code: i8) -> Option<ElectionType> {
        match code {
            0 => Some(ElectionType::Preferred),
            1 => Some(ElectionType::Unclean),
            _ => None,
        }
    }
}

/// One partition's outcome: Ok when its leader changed.
pub type Elected = (String, i32, Result<(), Refusal>);

fn refuse(error: ResponseError, message: impl Into<String>) -> Refusal {
    (error.code(), message.into())
}

/// The records an election makes, and each partition's outcome. `partitions`: None for all.
pub fn plan(
    image: &MetadataImage,
    election: ElectionType,
    partitions: Option<&[(String, i32)]>,
) -> (Vec<MetadataRecord>, Vec<Elected>) {
    let all: Vec<(String, i32)>;
    let asked = match partitions {
        Some(p) => p,
        None => {
            all = image
                .topics
                .iter()
                .flat_map(|(name, t)| {
                    (0..t.partitions.len() as i32).map(move |i| (name.clone(), i))
                })
                .collect();
            &all
        }
    };
    let serving = |b: i32| image.brokers.get(&b).is_some_and(|r| !r.fenced);
    let mut records = Vec::new();
    let mut outcomes = Vec::new();
    for (name, index) in asked {
        let Some(p) = image
            .topics
            .get(name)
            .and_then(|t| t.partitions.get((*index).max(0) as usize))
            .filter(|_| *index >= 0)
        else {
            outcomes.push((
                name.clone(),
                *index,
                Err(refuse(
                    ResponseError::UnknownTopicOrPartition,
                    "The partition does not exist.",
                )),
            ));
            continue;
        };
        let decided = match election {
            ElectionType::Preferred => {
                let preferred = p.replicas.first().copied().unwrap_or(-1);
                if p.leader == preferred {
                    Err(refuse(
                        ResponseError::ElectionNotNeeded,
                        "Leader election not needed for topic partition.",
                    ))
                } else if !p.isr.contains(&preferred) || !serving(preferred) {
                    Err(refuse(
                        ResponseError::PreferredLeaderNotAvailable,
                        format!("Failed to elect leader for partition {name}-{index} under strategy PreferredReplicaPartitionLeaderElectionStrategy"),
                    ))
                } else {
                    Ok((preferred, p.isr.clone()))
                }
            }
            ElectionType::Unclean => {
                if p.leader >= 0 {
                    Err(refuse(
                        ResponseError::ElectionNotNeeded,
                        "Leader election not needed for topic partition.",
                    ))
                } else {
                    match p.replicas.iter().copied().find(|r| serving(*r)) {
                        Some(r) => Ok((r, vec![r])),
                        None => Err(refuse(
                            ResponseError::EligibleLeadersNotAvailable,
                            format!("Failed to elect leader for partition {name}-{index} under strategy UncleanLeaderElectionStrategy"),
                        )),
                    }
                }
            }
        };
        match decided {
            Ok((leader, isr)) => {
                records.push(MetadataRecord::ChangePartition {
                    name: name.clone(),
                    partition: *index,
                    leader,
                    isr,
                });
                outcomes.push((name.clone(), *index, Ok(())));
            }
            Err(e) => {
                let quiet = partitions.is_none() && e.0 == ResponseError::ElectionNotNeeded.code();
                if !quiet {
                    outcomes.push((name.clone(), *index, Err(e)));
                }
            }
        }
    }
    (records, outcomes)
}

impl MetadataQuorum {
    /// ElectLeaders through the controller.
    pub async fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Result<Vec<Elected>, String> {
        match self
            .to_leader(ControllerRequest::ElectLeaders {
                election,
                partitions,
            })
            .await?
        {
            ControllerResponse::ElectLeaders(r) => r,
            _ => Err("unexpected controller response".to_string()),
        }
    }

    pub(super) async fn elect_leaders_as_leader(
        &self,
        election: ElectionType,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Result<Vec<Elected>, String> {
        self.check_leader()?;
        let _one = self.deciding.lock().await;
        let (records, mut outcomes) = plan(&self.image(), election, partitions.as_deref());
        let why = match election {
            ElectionType::Preferred => "preferred leader elected on request",
            ElectionType::Unclean => "leader elected uncleanly on request",
        };
        let moved: Vec<(String, i32)> = records
            .iter()
            .filter_map(|r| match r {
                MetadataRecord::ChangePartition {
                    name, partition, ..
                } => Some((name.clone(), *partition)),
                _ => None,
            })
            .collect();
        if let Err((failed, e)) = self.append_partition_changes(records, why).await {
            // That change and the ones after it were not made.
            super::controller::refuse_unmade(&mut outcomes, &moved[failed..], &e);
        }
        Ok(outcomes)
    }

    /// As the leader: moves leadership back to each partition's preferred replica where it is
    /// in sync and may serve (KRaft's periodic balancing, `auto.leader.rebalance.enable`).
    pub(super) async fn balance_leaders(&self) {
        let _one = self.deciding.lock().await;
        let (records, _) = plan(&self.image(), ElectionType::Preferred, None);
        let done = self
            .append_partition_changes(records, "preferred leader elected (balancing)")
            .await;
        if let Err((_, e)) = done {
            tracing::debug!(error = %e, "balancing leaders failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::types::PartitionState;
    use std::collections::BTreeMap;

    fn image(leader: i32, isr: Vec<i32>, fenced: &[i32]) -> MetadataImage {
        let mut image = MetadataImage::with_brokers(&[1, 2, 3], fenced);
        image.apply(
            &MetadataRecord::CreateTopic {
                name: "t".into(),
                id: [1; 16],
                configs: BTreeMap::new(),
                partitions: vec![PartitionState {
                    replicas: vec![1, 2, 3],
                    isr,
                    leader,
                    leader_epoch: 4,
                    partition_epoch: 7,
                    adding: Vec::new(),
                    removing: Vec::new(),
                }],
            },
            20,
        );
        image
    }

    fn codes(outcomes: &[Elected]) -> Vec<i16> {
        outcomes
            .iter()
            .map(|(_, _, r)| r.as_ref().err().map_or(0, |e| e.0))
            .collect()
    }

    #[test]
    fn a_preferred_election_moves_leadership_to_the_first_replica_when_it_may_lead() {
        let asked = [("t".to_string(), 0), ("t".to_string(), 5)];
        let (records, out) = plan(
            &image(2, vec![1, 2, 3], &[]),
            ElectionType::Preferred,
            Some(&asked),
        );
        assert_eq!(records.len(), 1);
        assert!(matches!(
            &records[0],
            MetadataRecord::ChangePartition { leader: 1, .. }
        ));
        assert_eq!(
            codes(&out),
            vec![0, ResponseError::UnknownTopicOrPartition.code()]
        );
        // Already leading, out of the ISR, fenced: nothing moves.
        let one = [("t".to_string(), 0)];
        for (img, code) in [
            (image(1, vec![1, 2], &[]), ResponseError::ElectionNotNeeded),
            (
                image(2, vec![2, 3], &[]),
                ResponseError::PreferredLeaderNotAvailable,
            ),
            (
                image(2, vec![1, 2], &[1]),
                ResponseError::PreferredLeaderNotAvailable,
            ),
        ] {
            let (records, out) = plan(&img, ElectionType::Preferred, Some(&one));
            assert!(records.is_empty());
            assert_eq!(codes(&out), vec![code.code()]);
        }
        // Asked for everything, a partition that needs nothing is not answered.
        let (_, out) = plan(&image(1, vec![1, 2], &[]), ElectionType::Preferred, None);
        assert!(out.is_empty());
    }

    #[test]
    fn an_unclean_election_leads_an_offline_partition_from_any_live_replica() {
        let one = [("t".to_string(), 0)];
        let (records, out) = plan(&image(-1, vec![3], &[3]), ElectionType::Unclean, Some(&one));
        assert_eq!(codes(&out), vec![0]);
        match &records[0] {
            MetadataRecord::ChangePartition { leader, isr, .. } => {
                assert_eq!((*leader, isr.clone()), (1, vec![1]))
            }
            other => panic!("{other:?}"),
        }
        let (records, out) = plan(&image(2, vec![2], &[]), ElectionType::Unclean, Some(&one));
        assert!(records.is_empty());
        assert_eq!(codes(&out), vec![ResponseError::ElectionNotNeeded.code()]);
        let (_, out) = plan(
            &image(-1, vec![1], &[1, 2, 3]),
            ElectionType::Unclean,
            Some(&one),
        );
        assert_eq!(
            codes(&out),
            vec![ResponseError::EligibleLeadersNotAvailable.code()]
        );
    }
}
