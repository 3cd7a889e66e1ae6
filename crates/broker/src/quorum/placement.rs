//! Where a new partition's replicas go, and who leads a partition when brokers come and go:
//! the controller's decisions, as pure functions of the image.
//!
//! Placement is Kafka's (`AdminUtils.assignReplicasToBrokers`): the first replica of partition
//! `p` goes to broker `(p + start) mod n`, the others follow at a shift that grows every `n`
//! partitions, so that leaders and followers spread evenly; with racks, brokers are taken in
//! rack-alternating order and each replica prefers a rack (then a broker) with none yet.

use std::collections::{BTreeMap, BTreeSet};

/// Why replicas cannot be placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlacementError {
    /// Fewer brokers than the replication factor (INVALID_REPLICATION_FACTOR).
    NotEnoughBrokers {
        replication_factor: i16,
        brokers: usize,
    },
    /// Some brokers have a rack and others do not (INVALID_REPLICATION_FACTOR in Kafka).
    MixedRacks,
}

impl std::fmt::Display for PlacementError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlacementError::NotEnoughBrokers { replication_factor, brokers } => write!(
                f,
                "Unable to replicate the partition {replication_factor} time(s): The target replication factor of {replication_factor} cannot be reached because only {brokers} broker(s) are registered."
            ),
            PlacementError::MixedRacks => {
                write!(f, "Not all brokers have rack information for replica rack aware assignment.")
            }
        }
    }
}

/// Brokers in rack-alternating order: the first broker of each rack (racks in name order), then
/// the second of each, and so on.
fn rack_alternated(racks: &BTreeMap<i32, String>) -> Vec<i32> {
    let mut by_rack: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (broker, rack) in racks {
        by_rack.entry(rack.as_str()).or_default().push(*broker);
    }
    let longest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    (0..longest)
        .flat_map(|i| by_rack.values().filter_map(move |b| b.get(i).copied()))
        .collect()
}

fn replica_index(first: usize, shift: usize, j: usize, n: usize) -> usize {
    let shift = 1 + (shift + j) % (n - 1);
    (first + shift) % n
}

/// Replicas for `partitions` new partitions numbered from `first_partition`, over `brokers`
/// (id → rack), starting at `start` and shifting followers from `shift` (Kafka draws both at
/// random; callers pass random values, tests fixed ones).
pub fn assign(
    brokers: &BTreeMap<i32, Option<String>>,
    partitions: i32,
    replication_factor: i16,
    first_partition: i32,
    start: usize,
    shift: usize,
) -> Result<Vec<Vec<i32>>, PlacementError> {
    let n = brokers.len();
    let rf = replication_factor.max(0) as usize;
    if rf == 0 || rf > n {
        return Err(PlacementError::NotEnoughBrokers {
            replication_factor,
            brokers: n,
        });
    }
    let with_rack = brokers.values().filter(|r| r.is_some()).count();
    if with_rack != 0 && with_rack != n {
        return Err(PlacementError::MixedRacks);
    }
    let racks: BTreeMap<i32, String> = brokers
        .iter()
        .filter_map(|(b, r)| r.clone().map(|r| (*b, r)))
        .collect();
    let arranged: Vec<i32> = if racks.is_empty() {
        brokers.keys().copied().collect()
    } else {
        rack_alternated(&racks)
    };
    let rack_count = racks.values().collect::<BTreeSet<_>>().len().max(1);
    let start = start % n;
    let mut shift = shift % n;
    let mut out = Vec::with_capacity(partitions.max(0) as usize);
    for i in 0..partitions.max(0) as usize {
        let current = first_partition as usize + i;
        if current > 0 && current.is_multiple_of(n) {
            shift += 1;
        }
        let first = (current + start) % n;
        let mut replicas = vec![arranged[first]];
        if racks.is_empty() {
            for j in 0..rf - 1 {
                replicas.push(arranged[replica_index(first, shift, j, n)]);
            }
        } else {
            let mut racks_used: BTreeSet<&str> = BTreeSet::from([racks[&arranged[first]].as_str()]);
            let mut k = 0;
            while replicas.len() < rf {
                let broker = arranged[replica_index(first, shift * rack_count, k, n)];
                let rack = racks[&broker].as_str();
                if (!racks_used.contains(rack) || racks_used.len() == rack_count)
                    && (!replicas.contains(&broker) || replicas.len() == n)
                {
                    replicas.push(broker);
                    racks_used.insert(rack);
                }
                k += 1;
            }
        }
        out.push(replicas);
    }
    Ok(out)
}

/// A partition's leader and in-sync replicas after a change in which brokers may serve:
/// the current leader when it still may, else the first in-sync replica that may (Kafka's
/// clean election: never a replica outside the ISR, `unclean.leader.election.enable=false`),
/// else none (-1, the partition offline). Replicas that may not serve leave the ISR, except the
/// last one: a partition keeps the replica it last knew in sync, to lead again when it returns.
pub fn elect(
    leader: i32,
    isr: &[i32],
    replicas: &[i32],
    serving: impl Fn(i32) -> bool,
) -> (i32, Vec<i32>) {
    let live: Vec<i32> = isr.iter().copied().filter(|r| serving(*r)).collect();
    let new_isr = if live.is_empty() { isr.to_vec() } else { live };
    let new_leader = if leader >= 0 && serving(leader) && new_isr.contains(&leader) {
        leader
    } else {
        // Replica order is the preference order (the first is the preferred leader).
        replicas
            .iter()
            .copied()
            .find(|r| new_isr.contains(r) && serving(*r))
            .unwrap_or(-1)
    };
    (new_leader, new_isr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brokers(list: &[(i32, Option<&str>)]) -> BTreeMap<i32, Option<String>> {
        list.iter()
            .map(|(b, r)| (*b, r.map(str::to_string)))
            .collect()
    }

    #[test]
    fn spreads_leaders_and_followers_as_kafka_does() {
        let b = brokers(&[(0, None), (1, None), (2, None), (3, None), (4, None)]);
        // Kafka's documented example (start 0, shift 0): 5 brokers, 10 partitions, rf 3.
        let got = assign(&b, 10, 3, 0, 0, 0).unwrap();
        let want: Vec<Vec<i32>> = vec![
            vec![0, 1, 2],
            vec![1, 2, 3],
            vec![2, 3, 4],
            vec![3, 4, 0],
            vec![4, 0, 1],
            vec![0, 2, 3],
            vec![1, 3, 4],
            vec![2, 4, 0],
            vec![3, 0, 1],
            vec![4, 1, 2],
        ];
        assert_eq!(got, want);
        for replicas in &got {
            let distinct: BTreeSet<_> = replicas.iter().collect();
            assert_eq!(distinct.len(), 3);
        }
    }

    #[test]
    fn with_racks_every_replica_lands_in_another_rack_while_it_can() {
        let b = brokers(&[
            (1, Some("a")),
            (2, Some("b")),
            (3, Some("a")),
            (4, Some("b")),
            (5, Some("c")),
            (6, Some("c")),
        ]);
        for start in 0..6 {
            for shift in 0..6 {
                let got = assign(&b, 12, 3, 0, start, shift).unwrap();
                for replicas in got {
                    let racks: BTreeSet<&str> =
                        replicas.iter().map(|r| b[r].as_deref().unwrap()).collect();
                    assert_eq!(racks.len(), 3, "{replicas:?}");
                }
            }
        }
        // Leaders spread evenly: each broker leads two of twelve partitions.
        let got = assign(&b, 12, 2, 0, 3, 1).unwrap();
        let mut leads: BTreeMap<i32, usize> = BTreeMap::new();
        for r in &got {
            *leads.entry(r[0]).or_default() += 1;
        }
        assert!(leads.values().all(|n| *n == 2), "{leads:?}");
    }

    #[test]
    fn refuses_what_cannot_be_placed() {
        let b = brokers(&[(1, None), (2, None)]);
        assert_eq!(
            assign(&b, 1, 3, 0, 0, 0),
            Err(PlacementError::NotEnoughBrokers {
                replication_factor: 3,
                brokers: 2
            })
        );
        let mixed = brokers(&[(1, Some("a")), (2, None)]);
        assert_eq!(
            assign(&mixed, 1, 1, 0, 0, 0),
            Err(PlacementError::MixedRacks)
        );
        assert!(PlacementError::NotEnoughBrokers {
            replication_factor: 3,
            brokers: 2
        }
        .to_string()
        .contains("only 2 broker(s) are registered"));
    }

    #[test]
    fn election_keeps_a_serving_leader_and_otherwise_takes_the_first_in_sync_replica() {
        let up = |down: &'static [i32]| move |b: i32| !down.contains(&b);
        assert_eq!(
            elect(1, &[1, 2, 3], &[1, 2, 3], up(&[])),
            (1, vec![1, 2, 3])
        );
        assert_eq!(elect(1, &[1, 2, 3], &[1, 2, 3], up(&[1])), (2, vec![2, 3]));
        assert_eq!(elect(2, &[2, 3], &[1, 2, 3], up(&[2])), (3, vec![3]));
        // The last in-sync replica stays in the ISR; with it down, the partition is offline,
        // never led by a replica that was not in sync (1 is up but out of the ISR).
        assert_eq!(elect(3, &[3], &[1, 2, 3], up(&[3])), (-1, vec![3]));
        // Back: it leads again.
        assert_eq!(elect(-1, &[3], &[1, 2, 3], up(&[])), (3, vec![3]));
    }
}
