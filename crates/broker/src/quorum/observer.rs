//! A broker-only node (`process.roles=broker`) and the metadata log: it is no voter of the
//! quorum. As Kafka's brokers do (observers of the KRaft quorum), it fetches the committed
//! entries from the active controller over the controller listener, long-polling, and applies
//! them to its own state machine, which snapshots as a voter's does (a restart begins at its
//! newest snapshot). An observer too far behind the controller's recent entries is sent the
//! whole image. The controller notes how far each observer is: DescribeQuorum's observers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::network::{ControllerRequest, ControllerResponse, Peer};
use super::state_machine::MetadataStateMachine;
use super::types::{Entry, LogId, NodeId, SnapshotMeta};
use super::{now_ms, MetadataQuorum, ReplicaInfo};
use crate::config::quorum::Voter;

/// The most entries one fetch is answered with.
const MAX_ENTRIES: usize = 1000;
/// How long a fetch waits at the controller for entries newer than the observer's (Kafka's
/// observers' fetches wait up to `replica.fetch.wait.max.ms` likewise).
const FETCH_WAIT: Duration = Duration::from_millis(500);
/// The pause before asking another voter after one failed to answer.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// An observer's fetch: the entry its image stands at.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetadataFetch {
    pub node_id: NodeId,
    pub after: Option<LogId>,
    pub max_wait_ms: u64,
}

/// The controller's answer: the image as a snapshot (JSON of the state machine's snapshot
/// format) when the observer is too far behind, then the entries after it.
#[derive(Serialize, Deserialize)]
pub struct Fetched {
    pub leader: NodeId,
    pub snapshot: Option<(SnapshotMeta, String)>,
    pub entries: Vec<Entry>,
}

/// A voter that is not the leader refuses, naming the leader it knows.
#[derive(Debug, Serialize, Deserialize)]
pub struct FetchRefused {
    pub leader: Option<NodeId>,
    pub message: String,
}

/// How far an observer is, as the leader saw at its last fetch.
#[derive(Debug, Clone, Copy)]
pub struct ObserverProgress {
    log_end: i64,
    last_fetch: i64,
    last_caught_up: i64,
}

/// A broker-only node's copy of the metadata log.
pub struct Observer {
    machine: MetadataStateMachine,
    /// The active controller, as the last answer named it.
    leader: watch::Sender<Option<NodeId>>,
}

impl Observer {
    pub fn new(machine: MetadataStateMachine) -> Arc<Observer> {
        Arc::new(Observer {
            machine,
            leader: watch::channel(None).0,
        })
    }

    /// The active controller, if known.
    pub fn leader(&self) -> Option<NodeId> {
        *self.leader.borrow()
    }

    pub fn watch_leader(&self) -> watch::Receiver<Option<NodeId>> {
        self.leader.subscribe()
    }

    /// Fetches from the voters of `voters` (the leader when known, else each in turn) and
    /// applies what they answer, until `stop` turns true.
    pub async fn run(
        self: Arc<Self>,
        node_id: NodeId,
        voters: BTreeMap<i32, Voter>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut peers: BTreeMap<NodeId, Peer> = voters
            .iter()
            .map(|(id, v)| (*id as NodeId, Peer::new(*id as NodeId, &v.addr())))
            .collect();
        let ids: Vec<NodeId> = peers.keys().copied().collect();
        if ids.is_empty() {
            return;
        }
        tokio::spawn(snapshots(self.machine.clone(), stop.clone()));
        let mut turn = 0usize;
        let mut lost = false;
        loop {
            if *stop.borrow() {
                return;
            }
            let target = match self.leader() {
                Some(l) if peers.contains_key(&l) => l,
                _ => ids[turn % ids.len()],
            };
            let request = ControllerRequest::FetchMetadata(MetadataFetch {
                node_id,
                after: self.machine.last_applied(),
                max_wait_ms: FETCH_WAIT.as_millis() as u64,
            });
            let peer = peers.get_mut(&target).expect("targets are voters");
            // The answer may wait FETCH_WAIT at the controller, then carry a whole image.
            let answer = tokio::select! {
                a = peer.call(&request, FETCH_WAIT + Duration::from_secs(10)) => a,
                _ = stop.changed() => return,
            };
            let refused = match answer {
                Ok(ControllerResponse::FetchMetadata(Ok(fetched))) => {
                    self.leader.send_if_modified(|l| {
                        let changed = *l != Some(fetched.leader);
                        *l = Some(fetched.leader);
                        changed
                    });
                    if lost {
                        tracing::info!(controller = fetched.leader, "fetching metadata again");
                        lost = false;
                    }
                    if let Err(e) = self.apply(fetched).await {
                        tracing::error!(error = %e, "cannot apply the metadata fetched from the controller");
                        tokio::time::sleep(RETRY_BACKOFF).await;
                    }
                    continue;
                }
                Ok(ControllerResponse::FetchMetadata(Err(refused))) => refused,
                Ok(_) => FetchRefused {
                    leader: None,
                    message: "unexpected controller response".to_string(),
                },
                Err(e) => FetchRefused {
                    leader: None,
                    message: e.to_string(),
                },
            };
            if !lost {
                tracing::debug!(controller = target, error = %refused.message, "metadata fetch failed");
            }
            match refused.leader {
                Some(l) if l != target && peers.contains_key(&l) => {
                    self.leader.send_replace(Some(l));
                }
                _ => {
                    self.leader.send_replace(None);
                    turn += 1;
                    lost = true;
                    tokio::time::sleep(RETRY_BACKOFF).await;
                }
            }
        }
    }

    async fn apply(&self, fetched: Fetched) -> Result<(), String> {
        let mut machine = self.machine.clone();
        if let Some((meta, image)) = fetched.snapshot {
            tracing::info!(at = ?meta.last_log_id, "installing the controller's metadata image");
            machine
                .install_snapshot(&meta, Box::new(std::io::Cursor::new(image.into_bytes())))
                .await
                .map_err(|e| e.to_string())?;
        }
        // Entries the image already holds (a snapshot raced them) are left out.
        let at = machine.last_applied();
        let entries: Vec<Entry> = fetched
            .entries
            .into_iter()
            .filter(|e| at.is_none_or(|at| e.log_id.index > at.index))
            .collect();
        if !entries.is_empty() {
            machine.apply(entries).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// Snapshots an observer's image whenever enough was applied since the last one.
async fn snapshots(mut machine: MetadataStateMachine, mut stop: watch::Receiver<bool>) {
    let due = machine.snapshot_due();
    loop {
        tokio::select! {
            _ = due.notified() => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = machine.build_snapshot().await {
            tracing::error!(error = %e, "cannot write the metadata snapshot");
        }
    }
}

impl MetadataQuorum {
    /// Answers an observer's fetch, as the leader: once this node has applied more than the
    /// observer has (or `max_wait_ms` passed), what follows its entry.
    pub(crate) async fn fetch_as_leader(
        &self,
        fetch: MetadataFetch,
    ) -> Result<Fetched, FetchRefused> {
        if let Err(message) = self.check_leader() {
            return Err(FetchRefused {
                leader: self.leader(),
                message,
            });
        }
        let wanted = fetch.after.map_or(0, |id| id.index + 1);
        let end = |a: Option<LogId>| a.map_or(0, |id| id.index + 1);
        let deadline = Instant::now() + Duration::from_millis(fetch.max_wait_ms.min(5_000));
        let mut applied = self.subscribe();
        while end(applied.borrow_and_update().last_applied) <= wanted {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            match tokio::time::timeout(left, applied.changed()).await {
                Ok(Ok(())) => {}
                _ => break,
            }
        }
        let since = self.machine.since(fetch.after, MAX_ENTRIES);
        let leader_end = end(self.machine.last_applied()) as i64;
        let now = now_ms();
        let mut observers = self.observers.lock().unwrap_or_else(|p| p.into_inner());
        let progress = observers.entry(fetch.node_id).or_insert(ObserverProgress {
            log_end: -1,
            last_fetch: -1,
            last_caught_up: -1,
        });
        progress.log_end = wanted as i64;
        progress.last_fetch = now;
        if wanted as i64 >= leader_end {
            progress.last_caught_up = now;
        }
        drop(observers);
        Ok(Fetched {
            leader: self.node_id,
            snapshot: since
                .snapshot
                .map(|(meta, bytes)| (meta, String::from_utf8_lossy(&bytes).into_owned())),
            entries: since.entries,
        })
    }

    /// The observers that fetched from this leader, for DescribeQuorum.
    pub(crate) fn observer_infos(&self) -> Vec<ReplicaInfo> {
        self.observers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(id, p)| ReplicaInfo {
                replica_id: *id as i32,
                log_end_offset: p.log_end,
                last_fetch_timestamp: p.last_fetch,
                last_caught_up_timestamp: p.last_caught_up,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::types::{BrokerRegistration, MetadataRecord};
    use openraft::{CommittedLeaderId, EntryPayload};
    use strata_storage::io::RealIo;

    fn machine(dir: &std::path::Path) -> MetadataStateMachine {
        std::fs::create_dir_all(dir).unwrap();
        MetadataStateMachine::open(Arc::new(RealIo), dir, 1 << 30).unwrap()
    }

    fn register(index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(MetadataRecord::RegisterBroker(BrokerRegistration {
                broker_id: (index % 7) as i32,
                incarnation_id: format!("incarnation-{index}"),
                rack: None,
                endpoints: Vec::new(),
            })),
        }
    }

    fn fetched(since: crate::quorum::state_machine::Since) -> Fetched {
        Fetched {
            leader: 1,
            snapshot: since
                .snapshot
                .map(|(m, b)| (m, String::from_utf8(b).unwrap())),
            entries: since.entries,
        }
    }

    /// An observer close behind is sent entries; one behind the recent entries, the image; both
    /// end at the controller's image.
    #[tokio::test]
    async fn an_observer_catches_up_from_entries_or_from_the_image() {
        let tmp = tempfile::tempdir().unwrap();
        let mut controller = machine(&tmp.path().join("controller"));
        let total = super::super::state_machine::RECENT_ENTRIES as u64 + 100;
        for chunk in (0..total).collect::<Vec<_>>().chunks(500) {
            controller
                .apply(chunk.iter().map(|i| register(*i)).collect::<Vec<_>>())
                .await
                .unwrap();
        }
        let last = controller.last_applied();
        assert_eq!(last.unwrap().index, total - 1);

        // Caught up: nothing. Close behind: the entries after it, at most `max`.
        let at_end = controller.since(last, MAX_ENTRIES);
        assert!(at_end.snapshot.is_none() && at_end.entries.is_empty());
        let near = controller.since(Some(register(total - 11).log_id), MAX_ENTRIES);
        assert!(near.snapshot.is_none());
        let indexes: Vec<u64> = near.entries.iter().map(|e| e.log_id.index).collect();
        assert_eq!(indexes, (total - 10..total).collect::<Vec<_>>());
        assert_eq!(
            controller
                .since(Some(register(total - 3000).log_id), 5)
                .entries
                .len(),
            5
        );

        // From nothing (entry 0 left the recent ones): the image, then nothing more to apply.
        let far = controller.since(None, MAX_ENTRIES);
        assert!(far.entries.is_empty());
        assert_eq!(far.snapshot.as_ref().unwrap().0.last_log_id, last);
        let observer = Observer::new(machine(&tmp.path().join("observer")));
        observer.apply(fetched(far)).await.unwrap();
        assert_eq!(observer.machine.last_applied(), last);
        let image = |m: &MetadataStateMachine| m.subscribe().borrow().image.clone();
        assert_eq!(image(&observer.machine), image(&controller));

        // New entries reach it as entries; ones it already has (raced by an image) are skipped.
        controller
            .apply(vec![register(total), register(total + 1)])
            .await
            .unwrap();
        let next = fetched(controller.since(Some(register(total - 2).log_id), MAX_ENTRIES));
        assert_eq!(next.entries.len(), 3);
        observer.apply(next).await.unwrap();
        assert_eq!(observer.machine.last_applied().unwrap().index, total + 1);
        assert_eq!(image(&observer.machine), image(&controller));
    }
}
