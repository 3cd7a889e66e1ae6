//! Credentials given when a node's storage is formatted (`strata storage format --add-scram`,
//! as kafka-storage.sh's): kept beside the metadata log's `meta.properties` until an active
//! controller writes them into the metadata log, once (the image remembers that it has: a user
//! deleted later does not come back with a new controller), as Kafka's bootstrap records.

use std::path::Path;

use strata_storage::io::Io;

use super::types::MetadataRecord;
use super::MetadataQuorum;
use crate::security::scram::{ScramCredential, ScramMechanism};
use crate::security::store::{diff, SecurityDelta, SecurityImage};

/// In the metadata log directory.
pub const BOOTSTRAP_FILE: &str = "bootstrap-security.json";

/// The delta that creates `credentials` (user, mechanism, credential).
pub fn scram_delta(credentials: &[(String, ScramMechanism, ScramCredential)]) -> SecurityDelta {
    let mut image = SecurityImage::default();
    for (user, mechanism, credential) in credentials {
        image
            .scram
            .insert((user.clone(), *mechanism), credential.clone());
    }
    diff(&SecurityImage::default(), &image)
}

/// Writes the bootstrap records into a node's metadata log directory (when formatting).
pub fn write(io: &dyn Io, metadata_log_dir: &Path, delta: &SecurityDelta) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(delta).map_err(std::io::Error::other)?;
    io.create_dir_durable(metadata_log_dir)?;
    io.write_atomic(&metadata_log_dir.join(BOOTSTRAP_FILE), &bytes)
}

/// The bootstrap records of a node, if it was formatted with some.
pub fn read(io: &dyn Io, metadata_log_dir: &Path) -> std::io::Result<Option<SecurityDelta>> {
    let path = metadata_log_dir.join(BOOTSTRAP_FILE);
    if !io.exists(&path) {
        return Ok(None);
    }
    let bytes = io.read_all(&path)?;
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

impl MetadataQuorum {
    /// As the active controller: writes this node's bootstrap records into the log unless the
    /// log already has some (from this or another controller).
    pub(super) async fn bootstrap_security(&self) {
        if self.image().security_bootstrapped {
            return;
        }
        let pending = self
            .bootstrap
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(delta) = pending else { return };
        match self
            .append_as_leader(MetadataRecord::BootstrapSecurity(delta))
            .await
        {
            Ok(_) => tracing::info!("bootstrap SCRAM credentials written to the metadata log"),
            Err(e) => tracing::warn!(error = %e, "bootstrap SCRAM credentials not written yet"),
        }
    }
}
