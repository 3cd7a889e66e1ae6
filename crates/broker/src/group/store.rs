//! Committed offsets as records of `__consumer_offsets`, in Kafka's layouts:
//!
//! ```text
//! key   (version 1)  i16 1, group: string, topic: string, partition: i32
//! value (version 3)  i16 3, offset: i64, leader epoch: i32, metadata: string, commit time: i64
//! a null value (tombstone) deletes the key
//!
//! group metadata, a classic group's members and assignment as of its last completed rebalance
//! (so that a restarted coordinator keeps the group Stable and its members need not rejoin):
//! key   (version 2)  i16 2, group: string
//! value (version 3)  i16 3, protocol type: string, generation: i32, protocol: string,
//!                    leader: string, time: i64, then members (i32 count) of
//!                    id, instance id, client id, client host: string (instance id -1 = none),
//!                    rebalance timeout: i32, session timeout: i32,
//!                    subscription: bytes, assignment: bytes (i32 length)
//! a null value: the group has no members
//! ```
//! (strings are an i16 length and UTF-8 bytes). A group's records go to partition
//! `abs(java hashCode(group)) % offsets.topic.num.partitions`, as in Kafka.

use std::io;
use std::sync::Arc;

use strata_storage::batch::{self, BatchHeader};
use strata_storage::control::{parse_end_txn_marker, ControlType};
use strata_storage::log_manager::LogManager;

use super::Committed;
use crate::internal_log::{now_ms, InternalLog, KeyValue};

/// Every live offset: ((group, topic, partition), offset).
pub type LoadedOffsets = Vec<((String, String, i32), Committed)>;

/// A classic group's membership as of its last completed rebalance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: String,
    pub leader: String,
    pub members: Vec<MemberRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Vec<u8>,
    pub assignment: Vec<u8>,
}

/// A KIP-848 group's state: epochs, members with their epochs, subscriptions and assignments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupRecord {
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub topic_partitions: Vec<(String, i32)>,
    pub members: Vec<ConsumerMemberRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerMemberRecord {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub epoch: i32,
    pub previous_epoch: i32,
    pub rebalance_timeout_ms: i32,
    pub subscribed: Vec<String>,
    pub regex: Option<String>,
    pub assignor: Option<String>,
    pub assigned: Vec<(String, i32)>,
    pub target: Vec<(String, i32)>,
}

/// What a reload finds: the live offsets and the groups' last membership.
#[derive(Debug, Default)]
pub struct Loaded {
    pub offsets: LoadedOffsets,
    pub groups: Vec<(String, GroupRecord)>,
    pub consumer_groups: Vec<(String, ConsumerGroupRecord)>,
    /// Transactional commits still waiting for their transaction's marker: (producer id,
    /// (group, topic, partition), offset).
    pub pending_txn: Vec<(i64, (String, String, i32), Committed)>,
}

fn put_opt_str(out: &mut Vec<u8>, s: &Option<String>) {
    match s {
        Some(s) => put_str(out, s),
        None => out.extend_from_slice(&(-1i16).to_be_bytes()),
    }
}

fn get_opt_str(bytes: &[u8], at: &mut usize) -> Option<Option<String>> {
    let len = i16::from_be_bytes(bytes.get(*at..*at + 2)?.try_into().ok()?);
    if len < 0 {
        *at += 2;
        return Some(None);
    }
    get_str(bytes, at).map(Some)
}

fn put_partitions(out: &mut Vec<u8>, ps: &[(String, i32)]) {
    out.extend_from_slice(&(ps.len() as i32).to_be_bytes());
    for (t, p) in ps {
        put_str(out, t);
        out.extend_from_slice(&p.to_be_bytes());
    }
}

fn get_partitions(bytes: &[u8], at: &mut usize) -> Option<Vec<(String, i32)>> {
    let n = get_i32(bytes, at)?;
    let mut out = Vec::new();
    for _ in 0..n.max(0) {
        let t = get_str(bytes, at)?;
        out.push((t, get_i32(bytes, at)?));
    }
    Some(out)
}

/// The key of a KIP-848 group's state (version 3, as Kafka's consumer group metadata key).
pub fn encode_consumer_group_key(group: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + group.len());
    out.extend_from_slice(&3i16.to_be_bytes());
    put_str(&mut out, group);
    out
}

pub fn decode_consumer_group_key(bytes: &[u8]) -> Option<String> {
    let version = i16::from_be_bytes(bytes.get(0..2)?.try_into().ok()?);
    if version != 3 {
        return None;
    }
    let mut at = 2;
    get_str(bytes, &mut at)
}

pub fn encode_consumer_group_value(g: &ConsumerGroupRecord) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0i16.to_be_bytes());
    out.extend_from_slice(&g.group_epoch.to_be_bytes());
    out.extend_from_slice(&g.assignment_epoch.to_be_bytes());
    put_partitions(&mut out, &g.topic_partitions);
    out.extend_from_slice(&(g.members.len() as i32).to_be_bytes());
    for m in &g.members {
        put_str(&mut out, &m.id);
        put_opt_str(&mut out, &m.instance_id);
        put_opt_str(&mut out, &m.rack_id);
        put_str(&mut out, &m.client_id);
        put_str(&mut out, &m.client_host);
        out.extend_from_slice(&m.epoch.to_be_bytes());
        out.extend_from_slice(&m.previous_epoch.to_be_bytes());
        out.extend_from_slice(&m.rebalance_timeout_ms.to_be_bytes());
        out.extend_from_slice(&(m.subscribed.len() as i32).to_be_bytes());
        for t in &m.subscribed {
            put_str(&mut out, t);
        }
        put_opt_str(&mut out, &m.regex);
        put_opt_str(&mut out, &m.assignor);
        put_partitions(&mut out, &m.assigned);
        put_partitions(&mut out, &m.target);
    }
    out
}

pub fn decode_consumer_group_value(bytes: &[u8]) -> Option<ConsumerGroupRecord> {
    let version = i16::from_be_bytes(bytes.get(0..2)?.try_into().ok()?);
    if version != 0 {
        return None;
    }
    let mut at = 2;
    let group_epoch = get_i32(bytes, &mut at)?;
    let assignment_epoch = get_i32(bytes, &mut at)?;
    let topic_partitions = get_partitions(bytes, &mut at)?;
    let n = get_i32(bytes, &mut at)?;
    let mut members = Vec::new();
    for _ in 0..n.max(0) {
        let id = get_str(bytes, &mut at)?;
        let instance_id = get_opt_str(bytes, &mut at)?;
        let rack_id = get_opt_str(bytes, &mut at)?;
        let client_id = get_str(bytes, &mut at)?;
        let client_host = get_str(bytes, &mut at)?;
        let epoch = get_i32(bytes, &mut at)?;
        let previous_epoch = get_i32(bytes, &mut at)?;
        let rebalance_timeout_ms = get_i32(bytes, &mut at)?;
        let count = get_i32(bytes, &mut at)?;
        let mut subscribed = Vec::new();
        for _ in 0..count.max(0) {
            subscribed.push(get_str(bytes, &mut at)?);
        }
        members.push(ConsumerMemberRecord {
            id,
            instance_id,
            rack_id,
            client_id,
            client_host,
            epoch,
            previous_epoch,
            rebalance_timeout_ms,
            subscribed,
            regex: get_opt_str(bytes, &mut at)?,
            assignor: get_opt_str(bytes, &mut at)?,
            assigned: get_partitions(bytes, &mut at)?,
            target: get_partitions(bytes, &mut at)?,
        });
    }
    Some(ConsumerGroupRecord {
        group_epoch,
        assignment_epoch,
        topic_partitions,
        members,
    })
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as i32).to_be_bytes());
    out.extend_from_slice(b);
}

fn get_bytes(bytes: &[u8], at: &mut usize) -> Option<Vec<u8>> {
    let len = get_i32(bytes, at)?;
    if len < 0 {
        return Some(Vec::new());
    }
    let b = bytes.get(*at..*at + len as usize)?.to_vec();
    *at += len as usize;
    Some(b)
}

pub fn encode_group_key(group: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + group.len());
    out.extend_from_slice(&2i16.to_be_bytes());
    put_str(&mut out, group);
    out
}

pub fn encode_group_value(g: &GroupRecord) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&3i16.to_be_bytes());
    put_str(&mut out, &g.protocol_type);
    out.extend_from_slice(&g.generation.to_be_bytes());
    put_str(&mut out, &g.protocol);
    put_str(&mut out, &g.leader);
    out.extend_from_slice(&now_ms().to_be_bytes());
    out.extend_from_slice(&(g.members.len() as i32).to_be_bytes());
    for m in &g.members {
        put_str(&mut out, &m.id);
        match &m.instance_id {
            Some(i) => put_str(&mut out, i),
            None => out.extend_from_slice(&(-1i16).to_be_bytes()),
        }
        put_str(&mut out, &m.client_id);
        put_str(&mut out, &m.client_host);
        out.extend_from_slice(&m.rebalance_timeout_ms.to_be_bytes());
        out.extend_from_slice(&m.session_timeout_ms.to_be_bytes());
        put_bytes(&mut out, &m.subscription);
        put_bytes(&mut out, &m.assignment);
    }
    out
}

/// A group metadata key (version 2): the group id.
pub fn decode_group_key(bytes: &[u8]) -> Option<String> {
    let version = i16::from_be_bytes(bytes.get(0..2)?.try_into().ok()?);
    if version != 2 {
        return None;
    }
    let mut at = 2;
    get_str(bytes, &mut at)
}

pub fn decode_group_value(bytes: &[u8]) -> Option<GroupRecord> {
    let version = i16::from_be_bytes(bytes.get(0..2)?.try_into().ok()?);
    if version != 3 {
        return None;
    }
    let mut at = 2;
    let protocol_type = get_str(bytes, &mut at)?;
    let generation = get_i32(bytes, &mut at)?;
    let protocol = get_str(bytes, &mut at)?;
    let leader = get_str(bytes, &mut at)?;
    get_i64(bytes, &mut at)?;
    let count = get_i32(bytes, &mut at)?;
    let mut members = Vec::new();
    for _ in 0..count.max(0) {
        let id = get_str(bytes, &mut at)?;
        let instance_len = i16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?);
        let instance_id = if instance_len < 0 {
            at += 2;
            None
        } else {
            Some(get_str(bytes, &mut at)?)
        };
        members.push(MemberRecord {
            id,
            instance_id,
            client_id: get_str(bytes, &mut at)?,
            client_host: get_str(bytes, &mut at)?,
            rebalance_timeout_ms: get_i32(bytes, &mut at)?,
            session_timeout_ms: get_i32(bytes, &mut at)?,
            subscription: get_bytes(bytes, &mut at)?,
            assignment: get_bytes(bytes, &mut at)?,
        });
    }
    Some(GroupRecord {
        protocol_type,
        generation,
        protocol,
        leader,
        members,
    })
}

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

pub use crate::internal_log::java_hash;

fn put_str(out: &mut Vec<u8>, s: &str) {
    let bytes = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
    out.extend_from_slice(&(bytes.len() as i16).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn get_str(bytes: &[u8], at: &mut usize) -> Option<String> {
    let len = i16::from_be_bytes(bytes.get(*at..*at + 2)?.try_into().ok()?);
    *at += 2;
    if len < 0 {
        return Some(String::new());
    }
    let s = bytes.get(*at..*at + len as usize)?;
    *at += len as usize;
    Some(String::from_utf8_lossy(s).into_owned())
}

fn get_i64(bytes: &[u8], at: &mut usize) -> Option<i64> {
    let v = i64::from_be_bytes(bytes.get(*at..*at + 8)?.try_into().ok()?);
    *at += 8;
    Some(v)
}

fn get_i32(bytes: &[u8], at: &mut usize) -> Option<i32> {
    let v = i32::from_be_bytes(bytes.get(*at..*at + 4)?.try_into().ok()?);
    *at += 4;
    Some(v)
}

pub fn encode_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + group.len() + topic.len());
    out.extend_from_slice(&1i16.to_be_bytes());
    put_str(&mut out, group);
    put_str(&mut out, topic);
    out.extend_from_slice(&partition.to_be_bytes());
    out
}

pub fn encode_value(c: &Committed) -> Vec<u8> {
    let mut out = Vec::with_capacity(26 + c.metadata.len());
    out.extend_from_slice(&3i16.to_be_bytes());
    out.extend_from_slice(&c.offset.to_be_bytes());
    out.extend_from_slice(&c.leader_epoch.to_be_bytes());
    put_str(&mut out, &c.metadata);
    out.extend_from_slice(&c.commit_timestamp.to_be_bytes());
    out
}

/// An offset key (versions 0 and 1); None for group metadata keys (version 2) and others.
pub fn decode_key(bytes: &[u8]) -> Option<(String, String, i32)> {
    let version = i16::from_be_bytes(bytes.get(0..2)?.try_into().ok()?);
    if !(0..=1).contains(&version) {
        return None;
    }
    let mut at = 2;
    let group = get_str(bytes, &mut at)?;
    let topic = get_str(bytes, &mut at)?;
    let partition = get_i32(bytes, &mut at)?;
    Some((group, topic, partition))
}

/// An offset value, versions 0 to 3.
pub fn decode_value(bytes: &[u8]) -> Option<Committed> {
    let version = i16::from_be_bytes(bytes.get(0..2)?.try_into().ok()?);
    let mut at = 2;
    let offset = get_i64(bytes, &mut at)?;
    let leader_epoch = if version >= 3 {
        get_i32(bytes, &mut at)?
    } else {
        -1
    };
    let metadata = get_str(bytes, &mut at)?;
    let commit_timestamp = get_i64(bytes, &mut at)?;
    Some(Committed {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp,
    })
}

/// The offsets topic of one broker (see [`crate::internal_log`] for how writes, flushes and
/// compaction go).
pub struct OffsetStore {
    log: InternalLog,
}

type Entry = ((String, i32), Committed);

impl OffsetStore {
    /// The store over `__consumer_offsets`, which must exist.
    pub fn new(logs: Arc<LogManager>) -> io::Result<OffsetStore> {
        Ok(OffsetStore {
            log: InternalLog::new(logs, OFFSETS_TOPIC)?,
        })
    }

    pub fn log(&self) -> &InternalLog {
        &self.log
    }

    pub fn partition_for(&self, group: &str) -> i32 {
        self.log.partition_for(group)
    }

    /// Whether flushes wait to be completed.
    pub fn has_staged(&self) -> bool {
        self.log.has_staged()
    }

    /// Runs the staged flushes; call it without the coordinator's lock.
    pub fn complete_staged(&self) -> io::Result<()> {
        self.log.complete_staged()
    }

    /// Appends commits of one group.
    pub fn append(&self, group: &str, entries: &[Entry]) -> io::Result<()> {
        self.log
            .write(self.partition_for(group), &offset_records(group, entries))
    }

    /// Appends a transaction's commits of one group: a transactional batch of the producer,
    /// which counts only once the transaction's COMMIT marker follows it.
    pub fn append_txn(
        &self,
        group: &str,
        producer_id: i64,
        producer_epoch: i16,
        entries: &[Entry],
    ) -> io::Result<()> {
        let records = offset_records(group, entries);
        let refs: Vec<batch::KeyValueRef<'_>> = records
            .iter()
            .map(|(k, v)| (Some(k.as_slice()), v.as_deref()))
            .collect();
        let bytes = batch::transactional_batch(&refs, producer_id, producer_epoch, now_ms());
        self.log.write_batch(self.partition_for(group), &bytes)
    }

    /// Appends tombstones for offsets of one group.
    pub fn delete(&self, group: &str, keys: &[(String, i32)]) -> io::Result<()> {
        let records: Vec<KeyValue> = keys
            .iter()
            .map(|(topic, p)| (encode_key(group, topic, *p), None))
            .collect();
        self.log.write(self.partition_for(group), &records)
    }

    /// Records a classic group's membership (None: it has no members).
    pub fn store_group(&self, group: &str, record: Option<&GroupRecord>) -> io::Result<()> {
        let value = record.map(encode_group_value);
        self.log.write(
            self.partition_for(group),
            &[(encode_group_key(group), value)],
        )
    }

    /// Records a KIP-848 group's state (None: it has no members).
    pub fn store_consumer_group(
        &self,
        group: &str,
        record: Option<&ConsumerGroupRecord>,
    ) -> io::Result<()> {
        let value = record.map(encode_consumer_group_value);
        self.log.write(
            self.partition_for(group),
            &[(encode_consumer_group_key(group), value)],
        )
    }

    /// Every live committed offset and every group's last membership, replaying each partition
    /// from its log start; transactional commits count when their COMMIT marker is found, and
    /// those still undecided are returned as pending.
    pub fn load(&self) -> io::Result<Loaded> {
        let mut live: Live = Default::default();
        for p in 0..self.log.partition_count() {
            self.log
                .replay(p, |h, bytes, from| apply_batch(bytes, h, from, &mut live))?;
        }
        Ok(live.into())
    }

    /// What one partition holds (see [`OffsetStore::load`]).
    pub fn load_partition(&self, partition: i32) -> io::Result<Loaded> {
        let mut live: Live = Default::default();
        self.log.replay(partition, |h, bytes, from| {
            apply_batch(bytes, h, from, &mut live)
        })?;
        Ok(live.into())
    }

    /// Rolls the active segment of `partition` for the cleaner when it holds many more records
    /// than the partition has live keys (see [`InternalLog::maybe_roll`]).
    pub fn maybe_roll(&self, partition: i32, live_count: impl FnOnce() -> u64) -> io::Result<bool> {
        self.log.maybe_roll(partition, live_count)
    }
}

fn offset_records(group: &str, entries: &[Entry]) -> Vec<KeyValue> {
    entries
        .iter()
        .map(|((topic, p), c)| (encode_key(group, topic, *p), Some(encode_value(c))))
        .collect()
}

/// What a replay has found so far.
#[derive(Default)]
struct Live {
    offsets: std::collections::HashMap<(String, String, i32), Committed>,
    /// Transactional commits whose marker has not been read yet, by producer id.
    pending:
        std::collections::HashMap<i64, std::collections::HashMap<(String, String, i32), Committed>>,
    groups: std::collections::HashMap<String, GroupRecord>,
    consumer_groups: std::collections::HashMap<String, ConsumerGroupRecord>,
}

fn apply_batch(bytes: &[u8], header: &BatchHeader, from: i64, live: &mut Live) {
    if header.is_control() {
        // A transaction's marker: its commits count now, or never.
        let pending = live.pending.remove(&header.producer_id);
        if let (Some(marker), Some(pending)) = (parse_end_txn_marker(bytes), pending) {
            if marker.control == ControlType::Commit {
                live.offsets.extend(pending);
            }
        }
        return;
    }
    let Some(records) = batch::uncompressed_records(bytes, header) else {
        return;
    };
    if header.is_transactional() {
        let pending = live.pending.entry(header.producer_id).or_default();
        for r in records {
            let (Some(key), Some(value)) =
                (r.key.and_then(decode_key), r.value.and_then(decode_value))
            else {
                continue;
            };
            pending.insert(key, value);
        }
        return;
    }
    for r in records {
        if header.base_offset + (r.offset_delta as i64) < from {
            continue;
        }
        let Some(key_bytes) = r.key else {
            continue;
        };
        if let Some(group) = decode_consumer_group_key(key_bytes) {
            match r.value.and_then(decode_consumer_group_value) {
                Some(g) => {
                    live.consumer_groups.insert(group, g);
                }
                None => {
                    live.consumer_groups.remove(&group);
                }
            }
            continue;
        }
        if let Some(group) = decode_group_key(key_bytes) {
            match r.value.and_then(decode_group_value) {
                Some(g) => {
                    live.groups.insert(group, g);
                }
                None => {
                    live.groups.remove(&group);
                }
            }
            continue;
        }
        let Some(key) = decode_key(key_bytes) else {
            continue;
        };
        match r.value.and_then(decode_value) {
            Some(c) => {
                live.offsets.insert(key, c);
            }
            None => {
                live.offsets.remove(&key);
            }
        }
    }
}

impl From<Live> for Loaded {
    fn from(live: Live) -> Loaded {
        Loaded {
            offsets: live.offsets.into_iter().collect(),
            groups: live.groups.into_iter().collect(),
            consumer_groups: live.consumer_groups.into_iter().collect(),
            pending_txn: live
                .pending
                .into_iter()
                .flat_map(|(pid, offsets)| offsets.into_iter().map(move |(key, c)| (pid, key, c)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_matches_java() {
        // "hello".hashCode() == 99162322, "".hashCode() == 0, a negative one:
        assert_eq!(java_hash("hello"), 99_162_322);
        assert_eq!(java_hash(""), 0);
        assert_eq!(java_hash("polygenelubricants"), i32::MIN);
    }

    #[test]
    fn keys_and_values_round_trip() {
        let key = encode_key("g", "t", 7);
        assert_eq!(decode_key(&key), Some(("g".into(), "t".into(), 7)));
        let c = Committed {
            offset: 42,
            leader_epoch: 3,
            metadata: "m".into(),
            commit_timestamp: 1000,
        };
        assert_eq!(decode_value(&encode_value(&c)), Some(c));
        // A group metadata key (version 2) is not an offset key.
        assert_eq!(decode_key(&[0, 2, 0, 1, b'g']), None);
        assert_eq!(decode_value(&[0, 3, 1]), None);
        let g = GroupRecord {
            protocol_type: "consumer".into(),
            generation: 4,
            protocol: "range".into(),
            leader: "m1".into(),
            members: vec![MemberRecord {
                id: "m1".into(),
                instance_id: None,
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300,
                session_timeout_ms: 100,
                subscription: vec![1, 2],
                assignment: vec![3],
            }],
        };
        assert_eq!(
            decode_group_key(&encode_group_key("grp")),
            Some("grp".into())
        );
        assert_eq!(decode_group_value(&encode_group_value(&g)), Some(g));
        assert_eq!(decode_key(&encode_group_key("grp")), None);
        let c = ConsumerGroupRecord {
            group_epoch: 5,
            assignment_epoch: 5,
            topic_partitions: vec![("t".into(), 4)],
            members: vec![ConsumerMemberRecord {
                id: "m".into(),
                instance_id: Some("i".into()),
                rack_id: None,
                client_id: "c".into(),
                client_host: "/h".into(),
                epoch: 5,
                previous_epoch: 4,
                rebalance_timeout_ms: 1000,
                subscribed: vec!["t".into()],
                regex: None,
                assignor: Some("range".into()),
                assigned: vec![("t".into(), 0)],
                target: vec![("t".into(), 0), ("t".into(), 1)],
            }],
        };
        assert_eq!(
            decode_consumer_group_key(&encode_consumer_group_key("cg")),
            Some("cg".into())
        );
        assert_eq!(
            decode_consumer_group_value(&encode_consumer_group_value(&c)),
            Some(c)
        );
        assert_eq!(decode_group_key(&encode_consumer_group_key("cg")), None);
    }
}
