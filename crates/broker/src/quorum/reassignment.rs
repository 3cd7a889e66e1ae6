//! Partition reassignment (Kafka's AlterPartitionReassignments / ListPartitionReassignments,
//! KIP-455, as KRaft's controller does it).
//!
//! A reassignment to `target` from the partition's current replicas `original` adds the target's
//! new replicas (`adding`) and later removes the ones it leaves out (`removing`): meanwhile the
//! partition's replicas are `target` followed by `removing`, so the new replicas follow the
//! leader like any other and join the ISR as they catch up. It completes in the change that
//! brings the last adding replica into the ISR (or at once when none is missing): the replicas
//! become `target`, the ISR loses the removed ones, and a leader that was removed hands over to
//! the first target replica in the ISR. A cancellation goes back to `original` the same way.

use kafka_protocol::ResponseError;

use super::controller::Refusal;
use super::network::{ControllerRequest, ControllerResponse};
use super::types::{MetadataImage, MetadataRecord, PartitionState};
use super::MetadataQuorum;

fn refuse(error: ResponseError, message: impl Into<String>) -> Refusal {
    (error.code(), message.into())
}

/// One partition's answer: Ok when its reassignment was started, changed or cancelled.
pub type Reassigned = (String, i32, Result<(), Refusal>);

/// A partition being reassigned, as ListPartitionReassignments shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ongoing {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

/// The replicas a partition had before its reassignment began.
fn original(p: &PartitionState) -> Vec<i32> {
    p.replicas
        .iter()
        .copied()
        .filter(|r| !p.adding.contains(r))
        .collect()
}

/// The record that moves `p` (partition `index` of `name`) towards `target` from `from`: the
/// reassignment in progress, or completed when every new replica is in `isr` already.
fn towards(
    image: &MetadataImage,
    name: &str,
    index: i32,
    p: &PartitionState,
    from: &[i32],
    target: &[i32],
    isr: &[i32],
) -> MetadataRecord {
    let adding: Vec<i32> = target
        .iter()
        .copied()
        .filter(|r| !from.contains(r))
        .collect();
    let removing: Vec<i32> = from
        .iter()
        .copied()
        .filter(|r| !target.contains(r))
        .collect();
    if let Some(done) = completed(image, name, index, p.leader, target, &adding, isr) {
        return done;
    }
    let mut replicas = target.to_vec();
    replicas.extend(removing.iter().copied());
    MetadataRecord::ReassignPartition {
        name: name.to_string(),
        partition: index,
        replicas,
        adding,
        removing,
        leader: p.leader,
        isr: isr.to_vec(),
    }
}

/// The record completing a reassignment to `target`, if every replica in `adding` is in `isr`
/// and some target replica is: the replicas become `target`, the ISR keeps only target
/// replicas, and the leader stays if it is one, else the first target replica in the ISR whose
/// broker may serve leads (none: the partition is offline until one returns).
fn completed(
    image: &MetadataImage,
    name: &str,
    index: i32,
    leader: i32,
    target: &[i32],
    adding: &[i32],
    isr: &[i32],
) -> Option<MetadataRecord> {
    if !adding.iter().all(|r| isr.contains(r)) {
        return None;
    }
    let new_isr: Vec<i32> = isr.iter().copied().filter(|r| target.contains(r)).collect();
    if new_isr.is_empty() {
        return None;
    }
    let serving = |b: i32| image.brokers.get(&b).is_some_and(|r| !r.fenced);
    let leader = if new_isr.contains(&leader) {
        leader
    } else {
        target
            .iter()
            .copied()
            .find(|r| new_isr.contains(r) && serving(*r))
            .unwrap_or(-1)
    };
    Some(MetadataRecord::ReassignPartition {
        name: name.to_string(),
        partition: index,
        replicas: target.to_vec(),
        adding: Vec::new(),
        removing: Vec::new(),
        leader,
        isr: new_isr,
    })
}

/// What an ISR change of a partition being reassigned does: the reassignment's completion when
/// the new ISR holds every adding replica, else None (an ordinary ISR change).
pub fn complete_with_isr(
    image: &MetadataImage,
    name: &str,
    index: i32,
    p: &PartitionState,
    new_isr: &[i32],
) -> Option<MetadataRecord> {
    if p.adding.is_empty() && p.removing.is_empty() {
        return None;
    }
    let target: Vec<i32> = p
        .replicas
        .iter()
        .copied()
        .filter(|r| !p.removing.contains(r))
        .collect();
    completed(image, name, index, p.leader, &target, &p.adding, new_isr)
}

/// The records AlterPartitionReassignments makes, and each partition's answer. `target`: the
/// new replicas, None to cancel.
pub fn plan(
    image: &MetadataImage,
    asked: &[(String, i32, Option<Vec<i32>>)],
) -> (Vec<MetadataRecord>, Vec<Reassigned>) {
    let mut records = Vec::new();
    let mut outcomes = Vec::new();
    for (name, index, target) in asked {
        let outcome = match image
            .topics
            .get(name)
            .and_then(|t| t.partitions.get(usize::try_from(*index).ok()?))
        {
            None => Err(refuse(
                ResponseError::UnknownTopicOrPartition,
                "The partition does not exist.",
            )),
            Some(p) => {
                let from = original(p);
                let in_progress = !p.adding.is_empty() || !p.removing.is_empty();
                match target {
                    None if !in_progress => Err(refuse(
                        ResponseError::NoReassignmentInProgress,
                        format!("No ongoing reassignment for partition {name}-{index}."),
                    )),
                    // Back to the original replicas: those that were added leave the ISR.
                    None => Ok(towards(image, name, *index, p, &from, &from, &p.isr)),
                    Some(target) => check(image, target)
                        .map(|()| towards(image, name, *index, p, &from, target, &p.isr)),
                }
            }
        };
        match outcome {
            Ok(record) => {
                records.push(record);
                outcomes.push((name.clone(), *index, Ok(())));
            }
            Err(e) => outcomes.push((name.clone(), *index, Err(e))),
        }
    }
    (records, outcomes)
}

/// A target replica list Kafka accepts: not empty, no broker twice, every broker registered.
fn check(image: &MetadataImage, target: &[i32]) -> Result<(), Refusal> {
    if target.is_empty() {
        return Err(refuse(
            ResponseError::InvalidReplicaAssignment,
            "The replica list is empty.",
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(b) = target.iter().find(|b| !seen.insert(**b)) {
        return Err(refuse(
            ResponseError::InvalidReplicaAssignment,
            format!("The replica list names broker {b} twice."),
        ));
    }
    if let Some(b) = target.iter().find(|b| !image.brokers.contains_key(b)) {
        return Err(refuse(
            ResponseError::InvalidReplicaAssignment,
            format!("Broker {b} is not registered."),
        ));
    }
    Ok(())
}

/// The partitions being reassigned (`asked`: None for all), by topic and partition.
pub fn ongoing(image: &MetadataImage, asked: Option<&[(String, i32)]>) -> Vec<Ongoing> {
    let mut out = Vec::new();
    for (name, topic) in &image.topics {
        for (i, p) in topic.partitions.iter().enumerate() {
            let index = i as i32;
            if p.adding.is_empty() && p.removing.is_empty() {
                continue;
            }
            if asked.is_some_and(|a| !a.iter().any(|(t, q)| t == name && *q == index)) {
                continue;
            }
            out.push(Ongoing {
                topic: name.clone(),
                partition: index,
                replicas: p.replicas.clone(),
                adding: p.adding.clone(),
                removing: p.removing.clone(),
            });
        }
    }
    out
}

impl MetadataQuorum {
    /// AlterPartitionReassignments through the controller.
    pub async fn alter_reassignments(
        &self,
        asked: Vec<(String, i32, Option<Vec<i32>>)>,
    ) -> Result<Vec<Reassigned>, String> {
        match self
            .to_leader(ControllerRequest::AlterReassignments(asked))
            .await?
        {
            ControllerResponse::AlterReassignments(r) => r,
            _ => Err("unexpected controller response".to_string()),
        }
    }

    pub(super) async fn alter_reassignments_as_leader(
        &self,
        asked: Vec<(String, i32, Option<Vec<i32>>)>,
    ) -> Result<Vec<Reassigned>, String> {
        self.check_leader()?;
        let _one = self.deciding.lock().await;
        let (records, mut outcomes) = plan(&self.image(), &asked);
        let changed: Vec<(String, i32)> = outcomes
            .iter()
            .filter(|o| o.2.is_ok())
            .map(|o| (o.0.clone(), o.1))
            .collect();
        if let Err((failed, e)) = self
            .append_partition_changes(records, "partition reassignment")
            .await
        {
            super::controller::refuse_unmade(&mut outcomes, &changed[failed..], &e);
        }
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Brokers 1-4 registered (and serving), topic t with one partition on `replicas`.
    fn image(replicas: Vec<i32>, isr: Vec<i32>, leader: i32) -> MetadataImage {
        let mut image = MetadataImage::with_brokers(&[1, 2, 3, 4], &[]);
        let mut p = PartitionState::new(replicas);
        p.isr = isr;
        p.leader = leader;
        image.apply(
            &MetadataRecord::CreateTopic {
                name: "t".into(),
                id: [1; 16],
                configs: BTreeMap::new(),
                partitions: vec![p],
            },
            20,
        );
        image
    }

    fn state(image: &MetadataImage) -> PartitionState {
        image.topics["t"].partitions[0].clone()
    }

    fn asked(target: Option<Vec<i32>>) -> Vec<(String, i32, Option<Vec<i32>>)> {
        vec![("t".to_string(), 0, target)]
    }

    #[test]
    fn a_reassignment_adds_replicas_then_completes_when_they_are_in_sync() {
        let mut img = image(vec![1, 2], vec![1, 2], 1);
        let (records, out) = plan(&img, &asked(Some(vec![3, 2])));
        assert!(out[0].2.is_ok());
        img.apply(&records[0], 30);
        let p = state(&img);
        // Target first, then the replica leaving; the leader stays until it is done.
        assert_eq!(
            (p.replicas.clone(), p.adding.clone(), p.removing.clone()),
            (vec![3, 2, 1], vec![3], vec![1])
        );
        assert_eq!((p.leader, p.isr.clone()), (1, vec![1, 2]));
        assert_eq!(ongoing(&img, None).len(), 1);
        // The new replica catching up is an ISR change that completes it: 1 leaves the
        // replicas and the ISR, and leadership moves to the first target replica in sync.
        assert!(complete_with_isr(&img, "t", 0, &p, &[1, 2]).is_none());
        let done = complete_with_isr(&img, "t", 0, &p, &[1, 2, 3]).unwrap();
        img.apply(&done, 31);
        let p = state(&img);
        assert_eq!(
            (p.replicas.clone(), p.isr.clone(), p.leader),
            (vec![3, 2], vec![2, 3], 3)
        );
        assert!(p.adding.is_empty() && p.removing.is_empty());
        assert_eq!(p.leader_epoch, 1, "a new leader");
        assert!(ongoing(&img, None).is_empty());
    }

    #[test]
    fn replicas_already_in_sync_complete_at_once_and_a_cancel_goes_back() {
        // A reorder and a removal need nobody to catch up.
        let img = image(vec![1, 2, 3], vec![1, 2, 3], 1);
        let (records, _) = plan(&img, &asked(Some(vec![2, 1])));
        match &records[0] {
            MetadataRecord::ReassignPartition {
                replicas,
                adding,
                removing,
                isr,
                leader,
                ..
            } => {
                assert_eq!((replicas, isr, *leader), (&vec![2, 1], &vec![1, 2], 1));
                assert!(adding.is_empty() && removing.is_empty());
            }
            other => panic!("{other:?}"),
        }
        // Cancelled before the new replica caught up: back to the original replicas.
        let mut img = image(vec![1], vec![1], 1);
        let (records, _) = plan(&img, &asked(Some(vec![2])));
        img.apply(&records[0], 30);
        assert_eq!(state(&img).replicas, vec![2, 1]);
        let (records, out) = plan(&img, &asked(None));
        assert!(out[0].2.is_ok());
        img.apply(&records[0], 31);
        let p = state(&img);
        assert_eq!((p.replicas, p.isr, p.leader), (vec![1], vec![1], 1));
        assert!(p.adding.is_empty());
        // Nothing left to cancel.
        let (records, out) = plan(&img, &asked(None));
        assert!(records.is_empty());
        assert_eq!(
            out[0].2.as_ref().unwrap_err().0,
            ResponseError::NoReassignmentInProgress.code()
        );
    }

    #[test]
    fn bad_targets_are_refused_with_kafkas_errors() {
        let img = image(vec![1], vec![1], 1);
        for (target, code) in [
            (vec![], ResponseError::InvalidReplicaAssignment),
            (vec![2, 2], ResponseError::InvalidReplicaAssignment),
            (vec![9], ResponseError::InvalidReplicaAssignment),
        ] {
            let (records, out) = plan(&img, &asked(Some(target)));
            assert!(records.is_empty());
            assert_eq!(out[0].2.as_ref().unwrap_err().0, code.code());
        }
        let (_, out) = plan(&img, &[("nope".to_string(), 0, Some(vec![1]))]);
        assert_eq!(
            out[0].2.as_ref().unwrap_err().0,
            ResponseError::UnknownTopicOrPartition.code()
        );
    }
}
