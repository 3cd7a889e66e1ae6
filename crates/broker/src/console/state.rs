//! What the web console shows, as one JSON document (`/api/state`): the brokers, the tiers
//! with the migration policy, the migrations under way, every partition's segments with their
//! tier, size and age, and the consumer groups with their lag.

use std::sync::atomic::Ordering;

use serde::Serialize;
use strata_storage::log::partition::SegmentUse;
use strata_storage::tier::TierId;

use crate::broker::lag::GroupLag;
use crate::broker::Broker;

#[derive(Debug, Serialize)]
pub struct State {
    pub cluster_id: String,
    pub broker_id: i32,
    pub now_ms: i64,
    pub channel: &'static str,
    pub brokers: Vec<BrokerView>,
    pub tiers: Vec<TierView>,
    pub policy: PolicyView,
    pub migrations: MigrationView,
    pub topics: Vec<TopicView>,
    pub groups: Vec<GroupLag>,
}

#[derive(Debug, Serialize)]
pub struct BrokerView {
    pub id: i32,
    pub endpoints: Vec<String>,
    pub fenced: bool,
    /// The active controller (a broker alone is its own).
    pub controller: bool,
}

#[derive(Debug, Serialize)]
pub struct TierView {
    pub tier: &'static str,
    pub dir: String,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    pub segments: u64,
}

#[derive(Debug, Serialize)]
pub struct PolicyView {
    /// None: migration off.
    pub threshold: Option<f64>,
    pub hysteresis: f64,
    pub max_bytes_per_sec: Option<u64>,
}

#[derive(Debug, Serialize, Default)]
pub struct MigrationView {
    pub down: u64,
    pub up: u64,
    pub bytes_moved: u64,
    pub failed: u64,
    pub in_flight: u64,
    /// The segments being moved now.
    pub moving: Vec<Moving>,
}

#[derive(Debug, Serialize)]
pub struct Moving {
    pub topic: String,
    pub partition: i32,
    pub base_offset: i64,
    pub bytes: u64,
    /// From the first tier to the second.
    pub down: bool,
}

#[derive(Debug, Serialize)]
pub struct TopicView {
    pub name: String,
    pub partitions: Vec<PartitionView>,
}

#[derive(Debug, Serialize)]
pub struct PartitionView {
    pub partition: i32,
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub segments: Vec<SegmentView>,
}

#[derive(Debug, Serialize)]
pub struct SegmentView {
    pub base_offset: i64,
    /// "first", "second", or "log" (a log directory: the file channel).
    pub tier: &'static str,
    pub bytes: u64,
    /// Since the segment's newest record (its retention timestamp).
    pub age_ms: i64,
    pub active: bool,
    pub moving: bool,
}

/// The state now.
pub fn snapshot(broker: &Broker) -> State {
    let now_ms = strata_storage::now_ms();
    let me = broker.config.broker_id;
    let usage = broker.logs.tier_usage();
    let tier_of = |dir: &std::path::Path| -> &'static str {
        let parent = dir.parent();
        match usage.iter().find(|u| Some(u.path.as_path()) == parent) {
            Some(u) if u.tier == TierId::First => "first",
            Some(_) => "second",
            None => "log",
        }
    };
    let image = broker.quorum().map(|q| q.image());
    let mut migrations = MigrationView::default();
    let mut topics = Vec::new();
    let mut segment_counts: Vec<u64> = vec![0; usage.len()];
    for topic in broker.logs.topics() {
        let placed = image.as_ref().and_then(|i| i.topics.get(&topic.name));
        let mut partitions = Vec::new();
        for p in topic.partitions() {
            let log = p.log();
            let active = log.active_base_offset();
            let segments: Vec<SegmentView> = log
                .segments()
                .map(|s| {
                    let tier = tier_of(s.dir());
                    if let Some(i) = usage
                        .iter()
                        .position(|u| Some(u.path.as_path()) == s.dir().parent())
                    {
                        segment_counts[i] += 1;
                    }
                    let moving = log.segment_in_use(s.base_offset()) == Some(SegmentUse::Migrating);
                    if moving {
                        migrations.moving.push(Moving {
                            topic: topic.name.clone(),
                            partition: p.index,
                            base_offset: s.base_offset().get(),
                            bytes: s.size(),
                            down: tier == "first",
                        });
                    }
                    SegmentView {
                        base_offset: s.base_offset().get(),
                        tier,
                        bytes: s.size(),
                        age_ms: (now_ms - s.retention_timestamp()).max(0),
                        active: s.base_offset() == active,
                        moving,
                    }
                })
                .collect();
            let state = placed.and_then(|t| t.partitions.get(p.index.max(0) as usize));
            partitions.push(PartitionView {
                partition: p.index,
                leader: state.map_or(me, |s| s.leader),
                replicas: state.map_or(vec![me], |s| s.replicas.clone()),
                isr: state.map_or(vec![me], |s| s.isr.clone()),
                log_start_offset: log.log_start_offset().get(),
                high_watermark: log.high_watermark().get(),
                segments,
            });
        }
        topics.push(TopicView {
            name: topic.name.clone(),
            partitions,
        });
    }
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(m) = broker.logs.migration_stats() {
        migrations.down = m.demotions.load(Ordering::Relaxed);
        migrations.up = m.promotions.load(Ordering::Relaxed);
        migrations.bytes_moved = m.bytes_moved.load(Ordering::Relaxed);
        migrations.failed = m.failed.load(Ordering::Relaxed);
        migrations.in_flight = m.in_flight.load(Ordering::Relaxed);
    }
    let tiers = usage
        .iter()
        .zip(segment_counts)
        .map(|(u, segments)| TierView {
            tier: if u.tier == TierId::First {
                "first"
            } else {
                "second"
            },
            dir: u.path.display().to_string(),
            capacity_bytes: u.capacity_bytes,
            used_bytes: u.used_bytes,
            segments,
        })
        .collect();
    let config = broker.effective_config();
    let brokers = match (&image, broker.quorum()) {
        (Some(image), Some(quorum)) => {
            let controller = quorum.leader();
            image
                .brokers
                .values()
                .map(|b| BrokerView {
                    id: b.registration.broker_id,
                    endpoints: b
                        .registration
                        .endpoints
                        .iter()
                        .map(|e| format!("{}://{}:{}", e.name, e.host, e.port))
                        .collect(),
                    fenced: b.fenced,
                    controller: controller
                        .is_some_and(|c| c as i64 == b.registration.broker_id as i64),
                })
                .collect()
        }
        _ => vec![BrokerView {
            id: me,
            endpoints: broker
                .config
                .listeners
                .iter()
                .map(|l| {
                    let (host, port) = broker.advertised_for(&l.name);
                    format!("{}://{host}:{port}", l.name)
                })
                .collect(),
            fenced: false,
            controller: true,
        }],
    };
    State {
        cluster_id: broker.cluster_id.clone(),
        broker_id: me,
        now_ms,
        channel: config.tiers.channel.name(),
        brokers,
        tiers,
        policy: PolicyView {
            threshold: config.tiers.migrate_threshold,
            hysteresis: config.tiers.migrate_hysteresis,
            max_bytes_per_sec: config.tiers.migrate_max_bytes_per_sec,
        },
        migrations,
        topics,
        groups: broker.group_lags(),
    }
}
