//! The broker as a node of a cluster: its replica of the metadata quorum, its registration and
//! heartbeats, the logs and roles it takes from the metadata image, and what it asks the
//! controller for (topics, partitions, controlled shutdown).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use strata_storage::io::Io;

use super::{Broker, StartError};
use crate::quorum::{BrokerRegistration, Endpoint, MetadataQuorum, MetadataRecord};

impl Broker {
    /// Starts this node's replica of the metadata quorum (when `process.roles` is set): opens
    /// the metadata log and binds the controller listener.
    pub async fn start_quorum(&self, io: Arc<dyn Io>) -> Result<(), StartError> {
        let Some(config) = self.config.quorum.clone() else {
            return Ok(());
        };
        let quorum =
            MetadataQuorum::start(config.clone(), self.config.broker_id, &self.cluster_id, io)
                .await?;
        if !config.roles.broker {
            // A controller-only node keeps the metadata log and decides; it holds no replicas.
            let _ = self.quorum.set(quorum);
            return Ok(());
        }
        // ACLs, SCRAM credentials and quotas live in the metadata log: a change is appended
        // through the controller and answered once this node's store has it.
        let source = Arc::downgrade(&quorum);
        let store = Arc::downgrade(&self.security);
        self.security.replicate_with(Box::new(move |delta| {
            let (Some(quorum), Some(store)) = (source.upgrade(), store.upgrade()) else {
                return Err(std::io::Error::other("the metadata quorum stopped"));
            };
            let timeout = Duration::from_millis(quorum.config().request_timeout_ms);
            crate::txn::cluster::block_on(async {
                let offset = quorum
                    .append(MetadataRecord::AlterSecurity(delta))
                    .await
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::TimedOut, e))?;
                let deadline = tokio::time::Instant::now() + timeout;
                while store.published_at() < offset {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "the security change was not applied here in time",
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Ok(())
            })
        }));
        // Producer ids come from the controller: unique across the cluster.
        let source = Arc::downgrade(&quorum);
        let broker_id = self.config.broker_id;
        self.producer_ids.use_cluster_blocks(Box::new(move || {
            let quorum = source
                .upgrade()
                .ok_or_else(|| std::io::Error::other("the metadata quorum stopped"))?;
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(quorum.allocate_producer_ids(broker_id))
            })
            .map_err(std::io::Error::other)
        }));
        // Followers reach leaders on the inter-broker listener the leaders registered.
        let image_source = Arc::downgrade(&quorum);
        let listener = self.config.inter_broker_listener.clone();
        let resolve: crate::replica::client::Resolve = Arc::new(move |leader: i32| {
            let quorum = image_source.upgrade()?;
            let image = quorum.image();
            let broker = image.brokers.get(&leader)?;
            broker
                .registration
                .endpoints
                .iter()
                .find(|e| e.name == listener)
                .map(|e| (e.host.clone(), e.port))
        });
        // With the inter-broker listener's security (TLS, SASL); what cannot be read (a
        // truststore, a keystore) stops the start.
        let connector = crate::replica::client::Connector::new(
            broker_id,
            resolve,
            self.config.inter_broker_client.as_ref(),
        )
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "inter-broker listener {}: {e}",
                    self.config.inter_broker_listener
                ),
            )
        })?;
        let epoch = self.broker_epoch.clone();
        let replication = crate::replica::cluster::Replication::new(
            broker_id,
            quorum.config().replication.clone(),
            self.replicas.clone(),
            connector.clone(),
            Arc::new(move || epoch.load(Ordering::SeqCst)),
        );
        // The transaction coordinator reaches the other brokers (markers, verification).
        let image_source = Arc::downgrade(&quorum);
        let image: crate::txn::cluster::ImageSource = Arc::new(move || {
            image_source
                .upgrade()
                .map(|q| q.image())
                .unwrap_or_default()
        });
        self.txns
            .join_cluster(Arc::new(crate::txn::cluster::TxnCluster::new(
                broker_id,
                image,
                connector,
                Duration::from_millis(quorum.config().replication.socket_timeout_ms),
            )));
        // The group and transaction coordinators follow the leadership of their topics'
        // partitions.
        self.groups.coordinate_led_partitions_only();
        let groups = Arc::downgrade(&self.groups);
        let txns = Arc::downgrade(&self.txns);
        replication.on_leadership(Box::new(move |topic, partition, leads| {
            let (Some(groups), Some(txns)) = (groups.upgrade(), txns.upgrade()) else {
                return;
            };
            // A new role: verifications of transactions here start over.
            txns.forget_guards(topic, partition);
            match (topic, leads) {
                (crate::group::OFFSETS_TOPIC, true) => {
                    if let Err(e) = groups.take_over(partition) {
                        tracing::error!(partition, error = %e, "cannot load the groups of the offsets partition");
                    }
                }
                (crate::group::OFFSETS_TOPIC, false) => groups.resign(partition),
                (crate::txn::TRANSACTION_STATE_TOPIC, true) => {
                    if let Err(e) = txns.take_over(partition) {
                        tracing::error!(partition, error = %e, "cannot load the transactional ids of the transaction state partition");
                    }
                }
                (crate::txn::TRANSACTION_STATE_TOPIC, false) => txns.resign(partition),
                _ => {}
            }
        }));
        let _ = self.replication.set(Arc::new(replication));
        let _ = self.quorum.set(quorum);
        Ok(())
    }

    /// Whether this broker serves clients: alone, always; in a cluster, once its metadata image
    /// holds its own registration (see `follow_image`).
    pub fn caught_up(&self) -> bool {
        self.caught_up.load(Ordering::SeqCst)
    }

    /// This node's replica of the metadata quorum; None for a broker alone.
    pub fn quorum(&self) -> Option<&Arc<MetadataQuorum>> {
        self.quorum.get()
    }

    /// Replication (a node of a cluster); None for a broker alone.
    pub fn replication(&self) -> Option<&Arc<crate::replica::cluster::Replication>> {
        self.replication.get()
    }

    /// Waits until what this broker just wrote for `group_id` (its offsets partition's log end)
    /// is on the partition's ISR, up to `offsets.commit.timeout.ms`: a commit is acknowledged
    /// only then, as Kafka's are (acks=-1). At once for a broker alone.
    pub fn wait_group_write_replicated(
        &self,
        group_id: &str,
    ) -> Result<(), kafka_protocol::ResponseError> {
        use crate::replica::AcksError;
        use kafka_protocol::ResponseError;
        if self.replication().is_none() {
            return Ok(());
        }
        let index = self.groups.partition_for(group_id);
        let topic = crate::group::OFFSETS_TOPIC;
        let (Some(state), Some(partition)) = (
            self.replicas.states().get(topic, index),
            self.logs.topic(topic).and_then(|t| t.partition(index)),
        ) else {
            return Err(ResponseError::NotCoordinator);
        };
        let end = partition.log().log_end_offset();
        // The coordinator appended without the replica manager: wake the followers' parked
        // fetches, or they would take the write only at their `replica.fetch.wait.max.ms`.
        self.replicas.appended(topic, index);
        let deadline = tokio::time::Instant::now()
            + Duration::from_millis(self.config.groups.offsets_commit_timeout_ms);
        match self.wait_on(state.wait_for_hw(&partition, end, 1, deadline)) {
            Ok(()) => Ok(()),
            Err(AcksError::NotLeader) => Err(ResponseError::NotCoordinator),
            Err(AcksError::NotEnoughReplicasAfterAppend) => {
                Err(ResponseError::CoordinatorNotAvailable)
            }
            Err(AcksError::TimedOut) => Err(ResponseError::RequestTimedOut),
        }
    }

    /// Sends the ISR changes of the partitions this broker leads to the controller. Runs until
    /// aborted.
    pub async fn replicate(&self) {
        let (Some(quorum), Some(replication)) = (self.quorum(), self.replication()) else {
            return;
        };
        let epoch = self.broker_epoch.clone();
        replication
            .clone()
            .run(
                quorum.clone(),
                Arc::new(move || epoch.load(Ordering::SeqCst)),
            )
            .await
    }

    /// This broker's registration: its advertised listeners and rack, a new incarnation.
    fn registration(&self) -> BrokerRegistration {
        BrokerRegistration {
            broker_id: self.config.broker_id,
            incarnation_id: self.incarnation_id.clone(),
            rack: self.config.quorum.as_ref().and_then(|q| q.rack.clone()),
            endpoints: self
                .config
                .listeners
                .iter()
                .filter(|l| l.advertised.is_some())
                .map(|l| {
                    let (host, port) = self.advertised_for(&l.name);
                    Endpoint {
                        name: l.name.clone(),
                        host,
                        port,
                        security_protocol: l.protocol.name().to_string(),
                    }
                })
                .collect(),
        }
    }

    /// Registers this broker with the active controller (after the listeners are bound: the
    /// registration carries their ports), then heartbeats every `broker.heartbeat.interval.ms`
    /// so that the controller keeps it unfenced; registers again when the controller no longer
    /// knows its registration. Runs until aborted.
    pub async fn keep_registered(&self) {
        let Some(quorum) = self.quorum() else {
            return;
        };
        let interval = Duration::from_millis(quorum.config().heartbeat_interval_ms);
        let id = self.config.broker_id;
        loop {
            let record = MetadataRecord::RegisterBroker(self.registration());
            let epoch = loop {
                match quorum.append(record.clone()).await {
                    Ok(epoch) => break epoch,
                    Err(e) => {
                        tracing::debug!(error = %e, "broker registration failed; retrying");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            };
            tracing::info!(broker_id = id, epoch, "registered with the controller");
            self.broker_epoch.store(epoch, Ordering::SeqCst);
            loop {
                match quorum.heartbeat(id, epoch, false).await {
                    Err(e) if e.starts_with(crate::quorum::STALE_BROKER_EPOCH) => break,
                    Err(e) => tracing::debug!(error = %e, "heartbeat failed"),
                    Ok(_) => {}
                }
                tokio::time::sleep(interval).await;
            }
        }
    }

    /// Keeps the local logs in line with the metadata image: a partition log for every
    /// partition of every topic the image holds (created with the controller's topic id and
    /// configs), none for a topic it no longer holds. Runs until aborted.
    pub async fn follow_image(&self) {
        let Some(quorum) = self.quorum() else {
            return;
        };
        let mut applied = quorum.subscribe();
        let mut security: Option<Vec<u8>> = None;
        loop {
            let (image, known, at) = {
                let a = applied.borrow_and_update();
                (
                    a.image.clone(),
                    a.last_applied.is_some(),
                    a.last_applied.map_or(0, |id| id.index),
                )
            };
            // The security store is the metadata log's (once it has applied anything).
            if known {
                if security.as_ref() != Some(&image.security) {
                    match crate::security::store::SecurityImage::from_records(&image.security) {
                        Some(decided) => self.security.replace(decided, at),
                        None => {
                            tracing::error!("the metadata image's security records do not read")
                        }
                    }
                    security = Some(image.security.clone());
                } else {
                    self.security.unchanged_at(at);
                }
            }
            // An image of nothing applied yet is no reason to delete anything; one without
            // this process's registration may be older than what was decided while it was
            // down (a leadership it lost): it is not acted on.
            if !self.caught_up() {
                let mine = image
                    .brokers
                    .get(&self.config.broker_id)
                    .is_some_and(|b| b.registration.incarnation_id == self.incarnation_id);
                if mine {
                    tracing::info!("metadata caught up with the quorum: serving");
                    self.caught_up.store(true, Ordering::SeqCst);
                }
            }
            if known && self.caught_up() {
                tokio::task::block_in_place(|| self.materialize(&image));
            }
            if applied.changed().await.is_err() {
                return;
            }
        }
    }

    fn materialize(&self, image: &crate::quorum::MetadataImage) {
        // This broker hosts its replicas only, as Kafka's: the logs of partitions it becomes a
        // replica of are created first, those it no longer is a replica of removed last (once
        // their roles are given up).
        let me = self.config.broker_id;
        let hosted_here = |topic: &crate::quorum::TopicImage| -> std::collections::BTreeSet<i32> {
            topic
                .partitions
                .iter()
                .enumerate()
                .filter(|(_, p)| p.replicas.contains(&me))
                .map(|(i, _)| i as i32)
                .collect()
        };
        for topic in image.topics.values() {
            let count = topic.partitions.len() as i32;
            let hosted = hosted_here(topic);
            let create = || {
                self.logs
                    .create_topic_hosting(
                        &topic.name,
                        count,
                        topic.configs.clone(),
                        topic.id,
                        &hosted,
                    )
                    .map(|_| ())
            };
            let result = match self.logs.topic(&topic.name) {
                Some(local) if local.id != topic.id => {
                    self.logs.delete_topic(&topic.name).and_then(|()| create())
                }
                Some(local) => {
                    let mut growing = local.hosted();
                    growing.extend(hosted.iter().copied());
                    let grown = if local.partition_count() < count || growing != local.hosted() {
                        self.logs
                            .host_partitions(&topic.name, count, &growing)
                            .map(|_| ())
                    } else {
                        Ok(())
                    };
                    // Config changes reach every node's logs through the image.
                    grown.and_then(|()| {
                        if local.overrides() != topic.configs {
                            self.logs
                                .set_topic_overrides(&topic.name, topic.configs.clone())
                        } else {
                            Ok(())
                        }
                    })
                }
                None => create(),
            };
            if let Err(e) = result {
                tracing::error!(topic = %topic.name, error = %e, "cannot create the topic's logs");
                continue;
            }
        }
        for local in self.logs.topics() {
            if !crate::handlers::is_internal(&local.name) && !image.topics.contains_key(&local.name)
            {
                if let Err(e) = self.logs.delete_topic(&local.name) {
                    tracing::error!(topic = %local.name, error = %e, "cannot delete the topic's logs");
                }
            }
        }
        // The dynamic broker configs: the cluster-wide default's and this broker's.
        let configs = |entity: &str| image.broker_configs.get(entity).cloned();
        self.apply_dynamic_configs(crate::config::dynamic::DynamicConfigs {
            default: configs("").unwrap_or_default(),
            own: configs(&self.config.broker_id.to_string()).unwrap_or_default(),
        });
        // Each partition leads, follows, or neither, as the image says.
        if let Some(replication) = self.replication() {
            replication.apply_image(image);
        }
        // Then the partitions this broker is no longer a replica of go (a reassignment moved
        // them away).
        for topic in image.topics.values() {
            let Some(local) = self.logs.topic(&topic.name).filter(|l| l.id == topic.id) else {
                continue;
            };
            let hosted = hosted_here(topic);
            if local.hosted() != hosted {
                match self
                    .logs
                    .host_partitions(&topic.name, topic.partitions.len() as i32, &hosted)
                {
                    Ok(removed) if !removed.is_empty() => {
                        tracing::info!(topic = %topic.name, partitions = ?removed, "removed the logs of partitions no longer hosted here")
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(topic = %topic.name, error = %e, "cannot remove the logs of partitions no longer hosted here")
                    }
                }
            }
        }
    }

    /// Waits (up to the quorum's request timeout) until this node's image and logs hold each
    /// of `topics` (`present`) or none of them, so that what a client changed through this
    /// broker, its next request here sees.
    pub async fn wait_for_topics(&self, topics: &[String], present: bool) {
        let Some(quorum) = self.quorum() else {
            return;
        };
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(quorum.config().request_timeout_ms);
        loop {
            let image = quorum.image();
            let done = topics.iter().all(|t| {
                let in_image = image.topics.get(t);
                let local = self.logs.topic(t);
                match (present, in_image, local) {
                    (true, Some(i), Some(l)) => {
                        l.id == i.id && l.partition_count() as usize >= i.partitions.len()
                    }
                    (false, None, None) => true,
                    _ => false,
                }
            });
            if done || tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Runs `f` (a request to the controller) to its end from a handler that answers at once:
    /// the runtime moves this worker's other tasks elsewhere meanwhile.
    pub fn wait_on<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
    }

    /// Deletes `name` through the controller (a node of a cluster); returns once this node's
    /// image and logs no longer hold it.
    pub fn delete_topic_in_cluster(
        &self,
        name: &str,
    ) -> Result<(), (kafka_protocol::ResponseError, String)> {
        let Some(quorum) = self.quorum() else {
            return Ok(());
        };
        let outcome = self.wait_on(async {
            let r = quorum.delete_topics(vec![name.to_string()]).await;
            self.wait_for_topics(&[name.to_string()], false).await;
            r
        });
        only_outcome(outcome)
    }

    /// Sets `name`'s config overrides through the controller (a node of a cluster): every
    /// node applies them from its image; returns once this node's logs have them.
    /// Ok(false): `expected` no longer held when the change reached the log (another change
    /// came first); nothing was applied.
    pub fn alter_topic_configs_in_cluster(
        &self,
        name: &str,
        configs: std::collections::BTreeMap<String, String>,
        expected: Option<std::collections::BTreeMap<String, String>>,
    ) -> Result<bool, (kafka_protocol::ResponseError, String)> {
        let record = MetadataRecord::AlterTopicConfigs {
            name: name.to_string(),
            configs: configs.clone(),
            expected,
        };
        self.append_checked(
            record,
            |image| image.topics.get(name).is_none_or(|t| t.configs == configs),
            |_| {
                self.logs
                    .topic(name)
                    .is_none_or(|t| t.overrides() == configs)
            },
        )
    }

    /// Sets a broker's dynamic configs (`broker` "" for the cluster-wide default) through the
    /// controller; returns once this node's image has them.
    pub fn alter_broker_configs_in_cluster(
        &self,
        broker: &str,
        configs: std::collections::BTreeMap<String, String>,
        expected: Option<std::collections::BTreeMap<String, String>>,
    ) -> Result<bool, (kafka_protocol::ResponseError, String)> {
        let record = MetadataRecord::AlterBrokerConfigs {
            broker: broker.to_string(),
            configs: configs.clone(),
            expected,
        };
        let mine = |image: &crate::quorum::MetadataImage| {
            image
                .broker_configs
                .get(broker)
                .cloned()
                .unwrap_or_default()
                == configs
        };
        self.append_checked(record, mine, |quorum| mine(&quorum.image()))
    }

    /// Appends a conditional change, waits until this node has applied the log up to it, and
    /// says whether it took (`took` on the image then); if it did, waits until `applied`
    /// holds on this node.
    fn append_checked(
        &self,
        record: MetadataRecord,
        took: impl Fn(&crate::quorum::MetadataImage) -> bool,
        applied: impl Fn(&MetadataQuorum) -> bool,
    ) -> Result<bool, (kafka_protocol::ResponseError, String)> {
        let Some(quorum) = self.quorum() else {
            return Ok(true);
        };
        self.wait_on(async {
            let offset = quorum
                .append(record)
                .await
                .map_err(|e| (kafka_protocol::ResponseError::NotController, e))?;
            let deadline = tokio::time::Instant::now()
                + Duration::from_millis(quorum.config().request_timeout_ms);
            let mut state = quorum.subscribe();
            loop {
                let reached = state
                    .borrow_and_update()
                    .last_applied
                    .is_some_and(|l| l.index >= offset);
                if reached || tokio::time::Instant::now() >= deadline {
                    break;
                }
                let _ = tokio::time::timeout_at(deadline, state.changed()).await;
            }
            if !took(&quorum.image()) {
                return Ok(false);
            }
            while tokio::time::Instant::now() < deadline && !applied(quorum) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok(true)
        })
    }

    /// Grows `name` to `count` partitions through the controller (a node of a cluster);
    /// returns once this node's logs hold them.
    pub fn add_partitions_in_cluster(
        &self,
        name: &str,
        count: i32,
        assignments: Vec<Vec<i32>>,
        validate_only: bool,
    ) -> Result<(), (kafka_protocol::ResponseError, String)> {
        let Some(quorum) = self.quorum() else {
            return Ok(());
        };
        let outcome = self.wait_on(async {
            let r = quorum
                .create_partitions(vec![(name.to_string(), count, assignments)], validate_only)
                .await;
            if !validate_only {
                self.wait_for_topics(&[name.to_string()], true).await;
            }
            r
        });
        only_outcome(outcome)
    }

    /// Whether this broker may serve `partition` of `topic` as its leader: always when alone;
    /// in a cluster, when the image names it the partition's leader (else
    /// NOT_LEADER_OR_FOLLOWER, or UNKNOWN_TOPIC_OR_PARTITION for a partition the image does not
    /// hold). Internal topics are written by their coordinators, not produced to.
    pub fn check_leader(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<(), kafka_protocol::ResponseError> {
        let Some(quorum) = self.quorum() else {
            return Ok(());
        };
        if crate::handlers::is_internal(topic) {
            return Ok(());
        }
        match quorum
            .image()
            .topics
            .get(topic)
            .and_then(|t| t.partitions.get(partition.max(0) as usize))
        {
            Some(p) if p.leader == self.config.broker_id => Ok(()),
            Some(_) => Err(kafka_protocol::ResponseError::NotLeaderOrFollower),
            None => Err(kafka_protocol::ResponseError::UnknownTopicOrPartition),
        }
    }

    /// A controlled shutdown: asks the controller to fence this broker now, so that clients
    /// stop being sent here before the session timeout would have done it.
    pub async fn controlled_shutdown(&self) {
        let (Some(quorum), epoch) = (self.quorum(), self.broker_epoch.load(Ordering::SeqCst))
        else {
            return;
        };
        if epoch == 0 {
            return;
        }
        let id = self.config.broker_id;
        match tokio::time::timeout(Duration::from_secs(5), quorum.heartbeat(id, epoch, true)).await
        {
            Ok(Ok(_)) => {
                tracing::info!(broker_id = id, "fenced for a controlled shutdown");
                // Leadership moves to the other in-sync replicas; wait for it to have moved.
                let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                while tokio::time::Instant::now() < deadline && self.leads_movable(quorum) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "controlled shutdown: could not be fenced"),
            Err(_) => tracing::warn!("controlled shutdown: the controller did not answer"),
        }
    }

    /// Whether the image still names this broker the leader of a partition that has another
    /// in-sync replica to move to.
    fn leads_movable(&self, quorum: &MetadataQuorum) -> bool {
        let me = self.config.broker_id;
        quorum.image().topics.values().any(|t| {
            t.partitions
                .iter()
                .any(|p| p.leader == me && p.isr.iter().any(|r| *r != me))
        })
    }

    /// The brokers clients are told of on `listener`: (id, host, port, rack). A broker alone
    /// names itself; a node of a cluster, every broker registered in the metadata image with
    /// an endpoint on that listener.
    pub fn brokers_for(&self, listener: &str) -> Vec<(i32, String, u16, Option<String>)> {
        let Some(quorum) = self.quorum() else {
            let (host, port) = self.advertised_for(listener);
            return vec![(self.config.broker_id, host, port, None)];
        };
        let wanted = if self.config.listeners.iter().any(|l| l.name == listener) {
            listener
        } else {
            &self.config.inter_broker_listener
        };
        quorum
            .image()
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .filter_map(|b| {
                let r = &b.registration;
                r.endpoints
                    .iter()
                    .find(|e| e.name == wanted)
                    .map(|e| (r.broker_id, e.host.clone(), e.port, r.rack.clone()))
            })
            .collect()
    }

    /// The controller id clients are told: the active controller when it is an unfenced
    /// broker, else some unfenced broker (as Kafka's KRaft brokers answer, since clients
    /// cannot reach controllers); this broker when alone or when none is known yet.
    pub fn controller_id(&self) -> i32 {
        let Some(quorum) = self.quorum() else {
            return self.config.broker_id;
        };
        let image = quorum.image();
        let serving = |id: i32| image.brokers.get(&id).is_some_and(|b| !b.fenced);
        match quorum.leader() {
            Some(leader) if serving(leader as i32) => leader as i32,
            _ => image
                .brokers
                .keys()
                .copied()
                .find(|id| serving(*id))
                .unwrap_or(self.config.broker_id),
        }
    }
}

/// The controller's answer about one topic, as a Kafka error: NOT_CONTROLLER when it could not
/// be asked, its refusal otherwise.
fn only_outcome<T>(
    outcome: Result<Vec<Result<T, crate::quorum::controller::Refusal>>, String>,
) -> Result<(), (kafka_protocol::ResponseError, String)> {
    use kafka_protocol::ResponseError;
    match outcome {
        Err(e) => Err((ResponseError::NotController, e)),
        Ok(mut results) => match results.pop() {
            Some(Ok(_)) => Ok(()),
            Some(Err((code, message))) => Err((
                ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError),
                message,
            )),
            None => Err((ResponseError::UnknownServerError, "no result".into())),
        },
    }
}
