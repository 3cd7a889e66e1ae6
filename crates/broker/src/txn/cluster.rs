//! The transaction coordinator on a node of a cluster: where the metadata image says each
//! partition's leader is, and the requests it sends other brokers — WriteTxnMarkers to the
//! leaders of a transaction's partitions, and (as a partition's leader) AddPartitionsToTxn with
//! `verify_only` to a producer's coordinator before its transaction's first write there
//! (KIP-890's verification, as Kafka's brokers do it).

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, ProducerId, TopicName, TransactionalId, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_protocol::ResponseError;

use super::{TxnCoordinator, Txns, TRANSACTION_STATE_TOPIC};
use crate::quorum::MetadataImage;
use crate::replica::client::BrokerClient;
use crate::replica::client::Connector;

/// The image this node holds now.
pub type ImageSource = Arc<dyn Fn() -> Arc<MetadataImage> + Send + Sync>;

/// Who leads a partition, as the image says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leader {
    /// This broker.
    Me,
    Other(i32),
    /// The partition has no leader now (its replicas are all fenced).
    NoLeader,
    /// The image holds no such partition (its topic was deleted).
    Gone,
}

/// What the coordinator reaches the rest of the cluster through.
pub struct TxnCluster {
    broker_id: i32,
    image: ImageSource,
    connector: Connector,
    timeout: Duration,
    /// One idle connection per broker, reused by the next request to it.
    clients: tokio::sync::Mutex<HashMap<i32, BrokerClient>>,
}

impl std::fmt::Debug for TxnCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxnCluster")
            .field("broker_id", &self.broker_id)
            .finish_non_exhaustive()
    }
}

/// Runs `f` to its end from synchronous coordinator code: on a runtime worker the runtime moves
/// its other tasks elsewhere meanwhile; on the blocking pool it simply waits.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let handle = tokio::runtime::Handle::current();
    if crate::replica::may_block_in_place() {
        tokio::task::block_in_place(|| handle.block_on(f))
    } else {
        handle.block_on(f)
    }
}

impl TxnCluster {
    pub fn new(
        broker_id: i32,
        image: ImageSource,
        connector: Connector,
        timeout: Duration,
    ) -> Self {
        TxnCluster {
            broker_id,
            image,
            connector,
            timeout,
            clients: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    pub fn broker_id(&self) -> i32 {
        self.broker_id
    }

    /// The leader of `topic`-`partition` in this node's image.
    pub fn leader(&self, topic: &str, partition: i32) -> Leader {
        let image = (self.image)();
        let Some(p) = image
            .topics
            .get(topic)
            .and_then(|t| t.partitions.get(usize::try_from(partition).ok()?))
        else {
            return Leader::Gone;
        };
        match p.leader {
            l if l < 0 => Leader::NoLeader,
            l if l == self.broker_id => Leader::Me,
            l => Leader::Other(l),
        }
    }

    /// Sends `request` to `broker`'s inter-broker listener and reads its answer.
    pub async fn send<R: Request>(
        &self,
        broker: i32,
        request: &R,
        version: i16,
    ) -> io::Result<R::Response> {
        let idle = self.clients.lock().await.remove(&broker);
        let mut client = match idle {
            Some(c) => c,
            None => {
                self.connector
                    .connect(broker, "txn-coordinator", self.timeout)
                    .await?
            }
        };
        let answer = client.send(request, version).await;
        if answer.is_ok() {
            self.clients.lock().await.insert(broker, client);
        }
        answer
    }

    /// Asks `coordinator` whether `topic`-`partition` is in the producer's ongoing transaction
    /// (AddPartitionsToTxn v4, `verify_only`).
    pub async fn verify(
        &self,
        coordinator: i32,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), ResponseError> {
        let request = AddPartitionsToTxnRequest::default().with_transactions(vec![
            AddPartitionsToTxnTransaction::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(
                    transactional_id.to_string(),
                )))
                .with_producer_id(ProducerId(producer_id))
                .with_producer_epoch(producer_epoch)
                .with_verify_only(true)
                .with_topics(vec![AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(vec![partition])]),
        ]);
        let response = self.send(coordinator, &request, 4).await.map_err(|e| {
            tracing::debug!(coordinator, error = %e, "transaction verification not answered");
            ResponseError::CoordinatorNotAvailable
        })?;
        let code = if response.error_code != 0 {
            response.error_code
        } else {
            response
                .results_by_transaction
                .first()
                .and_then(|t| t.topic_results.first())
                .and_then(|t| t.results_by_partition.first())
                .map_or(ResponseError::UnknownServerError.code(), |p| {
                    p.partition_error_code
                })
        };
        match ResponseError::try_from_code(code) {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// Sends one broker the markers of a transaction for `partitions` (WriteTxnMarkers v1);
    /// returns each partition's error code.
    pub async fn write_markers(
        &self,
        broker: i32,
        marker: MarkerRequest<'_>,
        partitions: &[(String, i32)],
    ) -> io::Result<Vec<((String, i32), i16)>> {
        let mut topics: Vec<WritableTxnMarkerTopic> = Vec::new();
        for (topic, partition) in partitions {
            match topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
                Some(t) => t.partition_indexes.push(*partition),
                None => topics.push(
                    WritableTxnMarkerTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic.clone())))
                        .with_partition_indexes(vec![*partition]),
                ),
            }
        }
        let request =
            WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
                .with_producer_id(ProducerId(marker.producer_id))
                .with_producer_epoch(marker.producer_epoch)
                .with_transaction_result(marker.commit)
                .with_coordinator_epoch(marker.coordinator_epoch)
                .with_topics(topics)]);
        let response = self.send(broker, &request, 1).await?;
        let mut out = Vec::new();
        for m in response.markers {
            for t in m.topics {
                for p in t.partitions {
                    out.push(((t.name.0.to_string(), p.partition_index), p.error_code));
                }
            }
        }
        Ok(out)
    }
}

/// The marker a coordinator sends for one transaction.
#[derive(Debug, Clone, Copy)]
pub struct MarkerRequest<'a> {
    pub transactional_id: &'a str,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub coordinator_epoch: i32,
}

/// The coordinator's part in a cluster: the partitions of `__transaction_state` it leads.
impl TxnCoordinator {
    /// A node of a cluster coordinates only the ids of the partitions of `__transaction_state`
    /// it leads: it forgets what it loaded at its start and takes partitions over as it is
    /// made their leader.
    pub fn join_cluster(&self, cluster: Arc<TxnCluster>) {
        let _ = self.cluster.set(cluster);
        *self.owned() = Some(BTreeSet::new());
        let mut txns = self.lock();
        txns.by_id.clear();
        txns.by_producer.clear();
    }

    fn owned(&self) -> MutexGuard<'_, Option<BTreeSet<i32>>> {
        self.owned.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether this broker coordinates `transactional_id` (alone: every id; in a cluster: it
    /// leads the id's partition of `__transaction_state` and has loaded it).
    pub fn owns(&self, transactional_id: &str) -> bool {
        match &*self.owned() {
            None => true,
            Some(owned) => owned.contains(&self.partition_for(transactional_id)),
        }
    }

    /// NOT_COORDINATOR unless this broker coordinates `transactional_id`
    /// (COORDINATOR_LOAD_IN_PROGRESS while it is made the leader of the id's partition but has
    /// not loaded it yet).
    pub(super) fn check_owned(&self, transactional_id: &str) -> Result<(), ResponseError> {
        if self.owns(transactional_id) {
            return Ok(());
        }
        let partition = self.partition_for(transactional_id);
        match self
            .cluster
            .get()
            .map(|c| c.leader(TRANSACTION_STATE_TOPIC, partition))
        {
            Some(Leader::Me) => Err(ResponseError::CoordinatorLoadInProgress),
            _ => Err(ResponseError::NotCoordinator),
        }
    }

    /// Becomes the coordinator of the ids of `partition` (this broker now leads it): their
    /// state is loaded from its log (Kafka's loading on election), and transactions found
    /// decided get their markers in the background.
    pub fn take_over(&self, partition: i32) -> io::Result<()> {
        let log = self
            .log()
            .map_err(|e| io::Error::other(format!("{TRANSACTION_STATE_TOPIC}: {e}")))?;
        let mut loaded = Txns::default();
        Self::load_partition(log, partition, &mut loaded)?;
        let count = loaded.by_id.len();
        {
            let mut txns = self.lock();
            self.forget_partition(&mut txns, partition);
            for (id, m) in loaded.by_id {
                txns.by_producer.insert(m.producer_id, id.clone());
                txns.by_id.insert(id, m);
            }
        }
        if let Some(owned) = &mut *self.owned() {
            owned.insert(partition);
        }
        tracing::info!(
            partition,
            transactional_ids = count,
            "coordinating the transactional ids of the transaction state partition"
        );
        if let Some(this) = self.this.get().and_then(std::sync::Weak::upgrade) {
            if tokio::runtime::Handle::try_current().is_ok() {
                tokio::task::spawn_blocking(move || this.complete_prepared());
            }
        }
        Ok(())
    }

    /// Drops the ids of `partition` of `__transaction_state` from `txns`.
    fn forget_partition(&self, txns: &mut Txns, partition: i32) {
        let mine: Vec<String> = txns
            .by_id
            .keys()
            .filter(|id| self.partition_for(id) == partition)
            .cloned()
            .collect();
        for id in mine {
            if let Some(m) = txns.by_id.remove(&id) {
                txns.by_producer.remove(&m.producer_id);
            }
        }
    }

    /// Stops coordinating the ids of `partition` (another broker leads it now): they are
    /// forgotten, and their producers, answered NOT_COORDINATOR, find the new coordinator.
    pub fn resign(&self, partition: i32) {
        let was = match &mut *self.owned() {
            Some(owned) => owned.remove(&partition),
            None => false,
        };
        if !was {
            return;
        }
        self.forget_partition(&mut self.lock(), partition);
        tracing::info!(
            partition,
            "no longer coordinating the transactional ids of the transaction state partition"
        );
    }
}
