//! Creating, growing, re-hosting and deleting topics: the admin side of the log manager
//! (metadata file writes are serialised by its admin lock).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use super::topic_meta::{hex, Channel};
use super::{partition_dir_name, LogManager, Topic, METADATA_DIR};
use crate::error::LogError;
use crate::log::partition::Partition;

impl LogManager {
    /// Creates a topic, hosting every partition; `id` is its topic id (random, chosen by the
    /// caller).
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        overrides: BTreeMap<String, String>,
        id: [u8; 16],
    ) -> Result<Arc<Topic>, LogError> {
        self.create_topic_hosting(name, partitions, overrides, id, &(0..partitions).collect())
    }

    /// Creates a topic of `partitions` partitions of which this broker hosts `hosted`.
    pub fn create_topic_hosting(
        &self,
        name: &str,
        partitions: i32,
        overrides: BTreeMap<String, String>,
        id: [u8; 16],
        hosted: &std::collections::BTreeSet<i32>,
    ) -> Result<Arc<Topic>, LogError> {
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        if self.topic(name).is_some() {
            return Err(LogError::TopicExists(name.to_string()));
        }
        if partitions < 1 {
            return Err(LogError::InvalidPartitions(partitions));
        }
        let channel = if (self.resolver)(&overrides).plain_files {
            Channel::File
        } else {
            self.broker_channel()
        };
        let config = self.log_config(channel, &overrides);
        let mut parts = BTreeMap::new();
        for p in hosted
            .iter()
            .copied()
            .filter(|p| (0..partitions).contains(p))
        {
            parts.insert(p, self.open_partition(name, p, config.clone())?);
        }
        let hosted: std::collections::BTreeSet<i32> = parts.keys().copied().collect();
        self.write_topic_file(name, &id, partitions, &overrides, channel, &hosted)?;
        let topic = Arc::new(Topic {
            name: name.to_string(),
            id,
            channel,
            partitions: RwLock::new(parts),
            count: partitions.into(),
            overrides: RwLock::new(overrides),
            stats: Default::default(),
        });
        self.topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), topic.clone());
        Ok(topic)
    }

    /// Deletes a topic and all its data.
    pub fn delete_topic(&self, name: &str) -> Result<(), LogError> {
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let topic = self
            .topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
            .ok_or_else(|| LogError::UnknownTopic(name.to_string()))?;
        let path = self.config.log_dirs[0]
            .join(METADATA_DIR)
            .join(format!("{name}.topic"));
        self.io.remove_file(&path)?;
        self.io.sync_dir(path.parent().expect("has parent"))?;
        for p in topic.partitions() {
            self.remove_partition_files(&topic, &p)?;
        }
        Ok(())
    }

    /// Removes a partition's files (its topic deleted, or the partition no longer hosted
    /// here), the log closed first so that whoever still holds it is refused.
    fn remove_partition_files(&self, topic: &Topic, p: &Partition) -> Result<(), LogError> {
        // Under the partition's lock, so that no append in flight rolls into a pool file of a
        // directory being removed.
        let mut log = p.log();
        log.close_for_removal();
        let dir = log.dir().to_path_buf();
        for d in log.segment_dirs().iter().filter(|d| **d != dir) {
            if self.io.exists(d) {
                self.remove_partition_dir(d)?;
            }
        }
        drop(log);
        let doomed = p.log_dir.join(format!(
            "{}.{}-delete",
            partition_dir_name(&topic.name, p.index),
            hex(&topic.id)
        ));
        self.io.rename(&dir, &doomed)?;
        self.io.remove_dir_all(&doomed)?;
        Ok(())
    }

    /// Makes the topic `count` partitions long (never shorter) and this broker the host of
    /// `hosted` alone: the logs of newly hosted partitions are created (empty), those of
    /// partitions no longer hosted removed. Returns the partitions removed.
    pub fn host_partitions(
        &self,
        name: &str,
        count: i32,
        hosted: &std::collections::BTreeSet<i32>,
    ) -> Result<Vec<i32>, LogError> {
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let topic = self
            .topic(name)
            .ok_or_else(|| LogError::UnknownTopic(name.to_string()))?;
        let count = count.max(topic.partition_count());
        let wanted: std::collections::BTreeSet<i32> = hosted
            .iter()
            .copied()
            .filter(|p| (0..count).contains(p))
            .collect();
        if count == topic.partition_count() && wanted == topic.hosted() {
            return Ok(Vec::new());
        }
        let overrides = topic.overrides();
        let config = self.log_config(topic.channel, &overrides);
        let mut added = Vec::new();
        for p in wanted.difference(&topic.hosted()) {
            added.push((*p, self.open_partition(name, *p, config.clone())?));
        }
        let removed: Vec<Arc<Partition>> = {
            let mut parts = topic.partitions.write().unwrap_or_else(|e| e.into_inner());
            parts.extend(added);
            let gone: Vec<i32> = parts
                .keys()
                .copied()
                .filter(|p| !wanted.contains(p))
                .collect();
            gone.iter().filter_map(|p| parts.remove(p)).collect()
        };
        topic
            .count
            .store(count, std::sync::atomic::Ordering::SeqCst);
        // The file first: a crash from here on finds the removed partitions' directories
        // without a topic that hosts them, and removes them at the start.
        self.write_topic_file(name, &topic.id, count, &overrides, topic.channel, &wanted)?;
        for p in &removed {
            self.remove_partition_files(&topic, p)?;
        }
        Ok(removed.iter().map(|p| p.index).collect())
    }

    /// Grows a topic to `count` partitions.
    pub fn add_partitions(&self, name: &str, count: i32) -> Result<(), LogError> {
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let topic = self
            .topic(name)
            .ok_or_else(|| LogError::UnknownTopic(name.to_string()))?;
        let current = topic.partition_count();
        if count <= current {
            return Err(LogError::InvalidPartitions(count));
        }
        let overrides = topic.overrides();
        let config = self.log_config(topic.channel, &overrides);
        let mut added = Vec::new();
        for p in current..count {
            added.push((p, self.open_partition(name, p, config.clone())?));
        }
        let mut hosted = topic.hosted();
        hosted.extend(current..count);
        self.write_topic_file(name, &topic.id, count, &overrides, topic.channel, &hosted)?;
        topic
            .partitions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .extend(added);
        topic
            .count
            .store(count, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Resolves every topic's settings again (the defaults they inherit changed: dynamic
    /// broker configs) and gives each partition its new ones.
    pub fn reconfigure_topics(&self) {
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        for topic in self.topics() {
            let config = self.log_config(topic.channel, &topic.overrides());
            for p in topic.partitions() {
                p.log().set_config(config.clone());
            }
        }
    }

    /// Replaces a topic's config overrides.
    pub fn set_topic_overrides(
        &self,
        name: &str,
        overrides: BTreeMap<String, String>,
    ) -> Result<(), LogError> {
        let _admin = self.admin.lock().unwrap_or_else(|e| e.into_inner());
        let topic = self
            .topic(name)
            .ok_or_else(|| LogError::UnknownTopic(name.to_string()))?;
        self.write_topic_file(
            name,
            &topic.id,
            topic.partition_count(),
            &overrides,
            topic.channel,
            &topic.hosted(),
        )?;
        let config = self.log_config(topic.channel, &overrides);
        for p in topic.partitions() {
            p.log().set_config(config.clone());
        }
        *topic.overrides.write().unwrap_or_else(|e| e.into_inner()) = overrides;
        Ok(())
    }
}
