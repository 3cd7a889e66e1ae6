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

pub struct SecurityStore {
    io: Arc<dyn Io>,
    path: PathBuf,
    image: RwLock<Arc<SecurityImage>>,
    /// Held by a change from reading the image to publishing its successor.
    writer: Mutex<()>,
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
        })
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
        let mut next = (*self.image()).clone();
        let (result, changed) = change(&mut next);
        if changed {
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

fn encode(image: &SecurityImage) -> Vec<u8> {
    let mut body = Encoder::default();
    for ((user, mechanism), c) in &image.scram {
        body.u8(RECORD_SCRAM);
        body.str(user);
        body.u8(mechanism.type_id() as u8);
        body.bytes(&c.salt);
        body.bytes(&c.stored_key);
        body.bytes(&c.server_key);
        body.i32(c.iterations);
    }
    for binding in image.acls.bindings() {
        body.u8(RECORD_ACL);
        binding.encode(&mut body);
    }
    for (entity, key, value) in image.quotas.entries() {
        body.u8(RECORD_QUOTA);
        entity.encode(&mut body);
        body.str(key);
        body.f64(value);
    }
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
    let mut d = Decoder(body);
    let mut image = SecurityImage::default();
    while !d.0.is_empty() {
        match d.u8()? {
            RECORD_SCRAM => {
                let user = d.str()?;
                let mechanism = ScramMechanism::from_type_id(d.u8()? as i8)?;
                let credential = ScramCredential {
                    salt: d.bytes()?,
                    stored_key: d.bytes()?,
                    server_key: d.bytes()?,
                    iterations: d.i32()?,
                };
                image.scram.insert((user, mechanism), credential);
            }
            RECORD_ACL => {
                image.acls.add(AclBinding::decode(&mut d)?);
            }
            RECORD_QUOTA => {
                let entity = QuotaEntity::decode(&mut d)?;
                let key = d.str()?;
                let value = d.f64()?;
                image.quotas.set(entity, &key, Some(value));
            }
            _ => return None,
        }
    }
    Some(image)
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
