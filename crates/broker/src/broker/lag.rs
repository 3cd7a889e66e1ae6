//! Consumer-group lag as the group coordinator sees it: for the metrics and the web console.

use super::Broker;

/// A group this broker coordinates, with its committed offsets.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GroupLag {
    pub group: String,
    pub state: String,
    pub members: usize,
    pub partitions: Vec<PartitionLag>,
}

/// A group's committed offset on one partition; the lag when this broker hosts the partition
/// (high watermark - committed offset).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    pub committed: i64,
    pub lag: Option<i64>,
}

impl Broker {
    /// Every group this broker coordinates, in name order.
    pub fn group_lags(&self) -> Vec<GroupLag> {
        self.groups
            .list()
            .into_iter()
            .map(|g| {
                let partitions = self
                    .groups
                    .fetch(&g.group_id, None)
                    .into_iter()
                    .filter_map(|((topic, partition), committed)| {
                        let committed = committed?.offset;
                        let lag = self
                            .logs
                            .topic(&topic)
                            .and_then(|t| t.partition(partition))
                            .map(|p| (p.log().high_watermark().get() - committed).max(0));
                        Some(PartitionLag {
                            topic,
                            partition,
                            committed,
                            lag,
                        })
                    })
                    .collect();
                GroupLag {
                    group: g.group_id,
                    state: g.state,
                    members: g.members.len(),
                    partitions,
                }
            })
            .collect()
    }
}
