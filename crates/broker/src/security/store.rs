//! The broker's durable security metadata: SCRAM credentials (salted keys, never passwords),
//! ACLs and client quotas, what Kafka keeps in its metadata log.
//!
//! Readers take the current [`SecurityImage`] (an `Arc`, swapped whole on every change), so an
//! authorization or a credential lookup never waits for a writer. A change is applied to a copy
//! of the image, the copy is written to `security.metadata` in the first log directory
//! atomically (temporary file, sync, rename, sync the directory), and only then published: a
//! change acknowledged to a client survives any crash, and a crash mid-write leaves the previous
//! file whole. The file is the image's records in order:
//!
//! ```text
//! magic "STRSEC01" | crc32c (u32, big-endian) of what follows | record...
//! record: type (u8) | fields (strings and byte strings length-prefixed, integers big-endian)
//! ```
//!
//! A file whose checksum or records do not read stops the broker at startup, naming the file.
//!
//! In a cluster the metadata log holds it instead (Kafka's ACL, SCRAM and quota records): a
//! change is the difference it makes ([`SecurityDelta`], records of the file's format), appended
//! through the controller by the replicator the broker installs; every node applies the deltas
//! to its metadata image in the log's order and publishes the result here (`replace`).

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use strata_storage::io::Io;

use super::acl::{AclBinding, AclImage};
use super::quota::{QuotaEntity, QuotaImage};
use super::scram::{ScramCredential, ScramMechanism};

/// The file, in the first log directory.
pub const SECURITY_FILE: &str = "security.metadata";
const MAGIC: &[u8; 8] = b"STRSEC01";

const RECORD_SCRAM: u8 = 1;
const RECORD_ACL: u8 = 2;
const RECORD_QUOTA: u8 = 3;

/// Everything the store holds, as of one change.
#[derive(Debug, Clone, Default)]
pub struct SecurityImage {
    pub scram: BTreeMap<(String, ScramMechanism), ScramCredential>,
    pub acls: AclImage,
    pub quotas: QuotaImage,
}

/// What a change does to the image: the records it sets (inserted, or replacing those of the
/// same key) and the records it removes, each in the file's record format.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SecurityDelta {
    pub set: Vec<u8>,
    pub removed: Vec<u8>,
}

impl SecurityDelta {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.removed.is_empty()
    }
}

/// Appends a delta to the metadata log and returns once this node's store has it.
pub type Replicator = Box<dyn Fn(SecurityDelta) -> io::Result<()> + Send + Sync>;

pub struct SecurityStore {
    io: Arc<dyn Io>,
    path: PathBuf,
    image: RwLock<Arc<SecurityImage>>,
    /// Held by a change from reading the image to publishing its successor.
    writer: Mutex<()>,
    /// A node of a cluster: changes go to the metadata log, not the file.
    replicator: std::sync::OnceLock<Replicator>,
    /// The metadata log offset the image was published at (`replace`).
    published_at: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for SecurityStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SecurityStore {
    /// Reads the store (empty when the file does not exist).
    pub fn open(io: Arc<dyn Io>, path: PathBuf) -> io::Result<SecurityStore> {
        let image = if io.exists(&path) {
            let bytes = io.read_all(&path)?;
            decode(&bytes).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is corrupt", path.display()),
                )
            })?
        } else {
            SecurityImage::default()
        };
        Ok(SecurityStore {
            io,
            path,
            image: RwLock::new(Arc::new(image)),
            writer: Mutex::new(()),
            replicator: std::sync::OnceLock::new(),
            published_at: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Makes the metadata log this store's keeper (a node of a cluster): changes are appended
    /// through `replicator`, and the image is what the log decided (`replace`).
    pub fn replicate_with(&self, replicator: Replicator) {
        let _ = self.replicator.set(replicator);
    }

    /// Publishes the image the metadata log decided as of its entry `at`.
    pub fn replace(&self, image: SecurityImage, at: u64) {
        *self.image.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(image);
        self.unchanged_at(at);
    }

    /// Notes that the metadata log's entry `at` left the image as it is.
    pub fn unchanged_at(&self, at: u64) {
        self.published_at
            .fetch_max(at, std::sync::atomic::Ordering::SeqCst);
    }

    /// The metadata log entry the published image stands at.
    pub fn published_at(&self) -> u64 {
        self.published_at.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The current image.
    pub fn image(&self) -> Arc<SecurityImage> {
        self.image.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Applies `change` to a copy of the image; when it returns `Ok`, writes the copy durably
    /// and publishes it. Nothing is written when it returns `Err`, or when it changed nothing
    /// (`changed` false).
    pub fn update<R>(&self, change: impl FnOnce(&mut SecurityImage) -> (R, bool)) -> io::Result<R> {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let before = self.image();
        let mut next = (*before).clone();
        let (result, changed) = change(&mut next);
        if let (true, Some(replicate)) = (changed, self.replicator.get()) {
            let delta = diff(&before, &next);
            if !delta.is_empty() {
                replicate(delta)?;
            }
        } else if changed {
            self.io.write_atomic(&self.path, &encode(&next))?;
            *self.image.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
        }
        Ok(result)
    }

    /// A user's credential for a mechanism.
    pub fn scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Option<ScramCredential> {
        self.image()
            .scram
            .get(&(user.to_string(), mechanism))
            .cloned()
    }
}

/// Writes values the way the file holds them.
#[derive(Default)]
pub(super) struct Encoder(pub Vec<u8>);

impl Encoder {
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub fn bytes(&mut self, v: &[u8]) {
        self.0.extend_from_slice(&(v.len() as u32).to_be_bytes());
        self.0.extend_from_slice(v);
    }
    pub fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }
    pub fn opt_str(&mut self, v: Option<&str>) {
        match v {
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
            None => self.u8(0),
        }
    }
}

/// Reads values back; None when the bytes end early or do not fit.
pub(super) struct Decoder<'a>(pub &'a [u8]);

impl Decoder<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    pub fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    pub fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    pub fn f64(&mut self) -> Option<f64> {
        Some(f64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    pub fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = u32::from_be_bytes(self.take(4)?.try_into().ok()?) as usize;
        Some(self.take(n)?.to_vec())
    }
    pub fn str(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?).ok()
    }
    pub fn opt_str(&mut self) -> Option<Option<String>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.str()?)),
            _ => None,
        }
    }
}

fn encode_scram(body: &mut Encoder, user: &str, mechanism: ScramMechanism, c: &ScramCredential) {
    body.u8(RECORD_SCRAM);
    body.str(user);
    body.u8(mechanism.type_id() as u8);
    body.bytes(&c.salt);
    body.bytes(&c.stored_key);
    body.bytes(&c.server_key);
    body.i32(c.iterations);
}

fn encode_acl(body: &mut Encoder, binding: &AclBinding) {
    body.u8(RECORD_ACL);
    binding.encode(body);
}

fn encode_quota(body: &mut Encoder, entity: &QuotaEntity, key: &str, value: f64) {
    body.u8(RECORD_QUOTA);
    entity.encode(body);
    body.str(key);
    body.f64(value);
}

/// The image's records, in the file's format (without its header).
pub fn encode_records(image: &SecurityImage) -> Vec<u8> {
    let mut body = Encoder::default();
    for ((user, mechanism), c) in &image.scram {
        encode_scram(&mut body, user, *mechanism, c);
    }
    for binding in image.acls.bindings() {
        encode_acl(&mut body, binding);
    }
    for (entity, key, value) in image.quotas.entries() {
        encode_quota(&mut body, entity, key, value);
    }
    body.0
}

/// What turns `before` into `after`.
pub fn diff(before: &SecurityImage, after: &SecurityImage) -> SecurityDelta {
    let (mut set, mut removed) = (Encoder::default(), Encoder::default());
    for ((user, m), c) in &after.scram {
        if before.scram.get(&(user.clone(), *m)) != Some(c) {
            encode_scram(&mut set, user, *m, c);
        }
    }
    for ((user, m), c) in &before.scram {
        if !after.scram.contains_key(&(user.clone(), *m)) {
            encode_scram(&mut removed, user, *m, c);
        }
    }
    let had: std::collections::BTreeSet<&AclBinding> = before.acls.bindings().collect();
    let has: std::collections::BTreeSet<&AclBinding> = after.acls.bindings().collect();
    for b in has.difference(&had) {
        encode_acl(&mut set, b);
    }
    for b in had.difference(&has) {
        encode_acl(&mut removed, b);
    }
    let quotas = |image: &SecurityImage| -> BTreeMap<(QuotaEntity, String), u64> {
        image
            .quotas
            .entries()
            .map(|(e, k, v)| ((e.clone(), k.to_string()), v.to_bits()))
            .collect()
    };
    let (was, is) = (quotas(before), quotas(after));
    for ((entity, key), bits) in &is {
        if was.get(&(entity.clone(), key.clone())) != Some(bits) {
            encode_quota(&mut set, entity, key, f64::from_bits(*bits));
        }
    }
    for ((entity, key), bits) in &was {
        if !is.contains_key(&(entity.clone(), key.clone())) {
            encode_quota(&mut removed, entity, key, f64::from_bits(*bits));
        }
    }
    SecurityDelta {
        set: set.0,
        removed: removed.0,
    }
}

/// One record read from the file's format.
enum Record {
    Scram(String, ScramMechanism, ScramCredential),
    Acl(AclBinding),
    Quota(QuotaEntity, String, f64),
}

fn decode_records(body: &[u8]) -> Option<Vec<Record>> {
    let mut d = Decoder(body);
    let mut records = Vec::new();
    while !d.0.is_empty() {
        records.push(match d.u8()? {
            RECORD_SCRAM => {
                let user = d.str()?;
                let mechanism = ScramMechanism::from_type_id(d.u8()? as i8)?;
                let credential = ScramCredential {
                    salt: d.bytes()?,
                    stored_key: d.bytes()?,
                    server_key: d.bytes()?,
                    iterations: d.i32()?,
                };
                Record::Scram(user, mechanism, credential)
            }
            RECORD_ACL => Record::Acl(AclBinding::decode(&mut d)?),
            RECORD_QUOTA => {
                let entity = QuotaEntity::decode(&mut d)?;
                let key = d.str()?;
                let value = d.f64()?;
                Record::Quota(entity, key, value)
            }
            _ => return None,
        });
    }
    Some(records)
}

impl SecurityImage {
    /// The image of records in the file's format (None: they do not read).
    pub fn from_records(body: &[u8]) -> Option<SecurityImage> {
        let mut image = SecurityImage::default();
        image.apply(&SecurityDelta {
            set: body.to_vec(),
            removed: Vec::new(),
        })?;
        Some(image)
    }

    /// Applies a delta: its removals, then what it sets. None (and the image unchanged) when
    /// its records do not read.
    pub fn apply(&mut self, delta: &SecurityDelta) -> Option<()> {
        let removed = decode_records(&delta.removed)?;
        let set = decode_records(&delta.set)?;
        for record in removed {
            match record {
                Record::Scram(user, m, _) => {
                    self.scram.remove(&(user, m));
                }
                Record::Acl(b) => {
                    self.acls.remove(&b);
                }
                Record::Quota(entity, key, _) => {
                    self.quotas.set(entity, &key, None);
                }
            }
        }
        for record in set {
            match record {
                Record::Scram(user, m, c) => {
                    self.scram.insert((user, m), c);
                }
                Record::Acl(b) => {
                    self.acls.add(b);
                }
                Record::Quota(entity, key, value) => {
                    self.quotas.set(entity, &key, Some(value));
                }
            }
        }
        Some(())
    }
}

fn encode(image: &SecurityImage) -> Vec<u8> {
    let body = Encoder(encode_records(image));
    let mut out = Vec::with_capacity(body.0.len() + 12);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&crc32c::crc32c(&body.0).to_be_bytes());
    out.extend_from_slice(&body.0);
    out
}

fn decode(bytes: &[u8]) -> Option<SecurityImage> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let (crc, body) = rest.split_first_chunk::<4>()?;
    if crc32c::crc32c(body) != u32::from_be_bytes(*crc) {
        return None;
    }
    SecurityImage::from_records(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_storage::io::RealIo;

    #[test]
    fn changes_survive_reopening_and_corruption_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let io: Arc<dyn Io> = Arc::new(RealIo);
        let path = dir.path().join(SECURITY_FILE);
        let store = SecurityStore::open(io.clone(), path.clone()).unwrap();
        let m = ScramMechanism::Sha512;
        let salted = m.salted_password("pw", b"salt", 4096);
        let credential = m.credential(b"salt".to_vec(), &salted, 4096);
        store
            .update(|image| {
                image.scram.insert(("alice".into(), m), credential.clone());
                ((), true)
            })
            .unwrap();
        // A change that reports nothing changed writes nothing.
        store.update(|_| ((), false)).unwrap();
        let reopened = SecurityStore::open(io.clone(), path.clone()).unwrap();
        assert_eq!(reopened.scram_credential("alice", m), Some(credential));
        assert_eq!(
            reopened.scram_credential("alice", ScramMechanism::Sha256),
            None
        );
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let e = SecurityStore::open(io, path).unwrap_err();
        assert!(e.to_string().contains(SECURITY_FILE), "{e}");
    }

    fn acl(topic: &str, principal: &str) -> AclBinding {
        use super::super::acl::{AclOperation, PatternType, PermissionType, ResourceType};
        AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: topic.to_string(),
            pattern_type: PatternType::Literal,
            principal: principal.to_string(),
            host: "*".to_string(),
            operation: AclOperation::Write,
            permission: PermissionType::Allow,
        }
    }

    /// A change replayed from its delta (as every node of a cluster applies it from the
    /// metadata log) gives the image the change made.
    #[test]
    fn a_delta_applied_gives_the_image_the_change_made() {
        let m = ScramMechanism::Sha512;
        let credential = |pw: &str| {
            let salted = m.salted_password(pw, b"salt", 4096);
            m.credential(b"salt".to_vec(), &salted, 4096)
        };
        let user = |name: &str| {
            QuotaEntity(
                [("user".to_string(), Some(name.to_string()))]
                    .into_iter()
                    .collect(),
            )
        };
        let mut before = SecurityImage::default();
        before.scram.insert(("alice".into(), m), credential("a"));
        before.scram.insert(("carol".into(), m), credential("c"));
        before.acls.add(acl("orders", "User:alice"));
        before.acls.add(acl("audit", "User:carol"));
        before
            .quotas
            .set(user("alice"), "producer_byte_rate", Some(1024.0));
        before
            .quotas
            .set(user("carol"), "consumer_byte_rate", Some(2048.0));

        let mut after = before.clone();
        after.scram.remove(&("carol".into(), m));
        after.scram.insert(("alice".into(), m), credential("a2"));
        after.scram.insert(("bob".into(), m), credential("b"));
        after.acls.remove(&acl("audit", "User:carol"));
        after.acls.add(acl("orders", "User:bob"));
        after
            .quotas
            .set(user("alice"), "producer_byte_rate", Some(4096.0));
        after.quotas.set(user("carol"), "consumer_byte_rate", None);

        let delta = diff(&before, &after);
        let mut replayed = before.clone();
        replayed.apply(&delta).unwrap();
        assert_eq!(encode_records(&replayed), encode_records(&after));
        // Nothing changed: nothing to carry.
        assert!(diff(&after, &after).is_empty());
        // The image also reads back from its records.
        let read = SecurityImage::from_records(&encode_records(&after)).unwrap();
        assert_eq!(encode_records(&read), encode_records(&after));
        // A delta that does not read changes nothing.
        let mut untouched = after.clone();
        let bad = SecurityDelta {
            set: vec![9, 9, 9],
            removed: Vec::new(),
        };
        assert!(untouched.apply(&bad).is_none());
        assert_eq!(encode_records(&untouched), encode_records(&after));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        use proptest::prelude::*;
        proptest!(|(body in proptest::collection::vec(any::<u8>(), 0..200))| {
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
            bytes.extend_from_slice(&body);
            let _ = decode(&bytes);
        });
    }
}
