//! `meta.properties`, Kafka's mark of a formatted directory: which cluster and node it belongs
//! to (`version=1`, `cluster.id`, `node.id`, `directory.id`), and `strata storage format`'s work
//! (kafka-storage.sh).
//!
//! A node of a cluster (`process.roles` set) starts only from formatted directories, all of one
//! cluster and of its own node id, as Kafka does: a directory from another cluster or node must
//! not be taken for this one's. A broker running alone formats itself at its first start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use strata_storage::io::Io;

pub const META_PROPERTIES: &str = "meta.properties";

/// One directory's `meta.properties`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaProperties {
    pub cluster_id: String,
    pub node_id: i32,
    pub directory_id: Option<String>,
}

/// A new id in Kafka's form: a random UUID, URL-safe base64 without padding (22 characters),
/// never starting with '-' (as Kafka's, so that it cannot be taken for a command-line flag).
pub fn random_uuid() -> String {
    loop {
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(uuid::Uuid::new_v4().as_bytes());
        if !id.starts_with('-') {
            return id;
        }
    }
}

/// Checks that `id` is a cluster id as Kafka takes it: 16 bytes in URL-safe base64.
pub fn check_cluster_id(id: &str) -> Result<(), String> {
    match base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(id) {
        Ok(bytes) if bytes.len() == 16 => Ok(()),
        Ok(bytes) => Err(format!(
            "Cluster ID string {id} does not appear to be a valid UUID: Input string `{id}` decoded as {} bytes, which is not equal to the expected 16 bytes of a base64-encoded UUID",
            bytes.len()
        )),
        Err(_) => Err(format!(
            "Cluster ID string {id} does not appear to be a valid UUID: it is not URL-safe base64"
        )),
    }
}

/// Reads `dir/meta.properties`; None when the directory has none.
pub fn read(io: &dyn Io, dir: &Path) -> Result<Option<MetaProperties>, String> {
    let path = dir.join(META_PROPERTIES);
    let bytes = match io.read_all(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let map: BTreeMap<String, String> = java_properties::read(&bytes[..])
        .map_err(|e| format!("cannot parse {}: {e}", path.display()))?
        .into_iter()
        .collect();
    let cluster_id = map
        .get("cluster.id")
        .cloned()
        .ok_or_else(|| format!("{} has no cluster.id", path.display()))?;
    let node_id = map
        .get("node.id")
        .or_else(|| map.get("broker.id"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("{} has no valid node.id", path.display()))?;
    Ok(Some(MetaProperties {
        cluster_id,
        node_id,
        directory_id: map.get("directory.id").cloned(),
    }))
}

/// Writes `dir/meta.properties` atomically (the directory made first when missing).
pub fn write(io: &dyn Io, dir: &Path, meta: &MetaProperties) -> std::io::Result<()> {
    io.create_dir_durable(dir)?;
    let mut text = format!(
        "#\n#Written by strata\nversion=1\ncluster.id={}\nnode.id={}\n",
        meta.cluster_id, meta.node_id
    );
    if let Some(id) = &meta.directory_id {
        text.push_str(&format!("directory.id={id}\n"));
    }
    io.write_atomic(&dir.join(META_PROPERTIES), text.as_bytes())
}

/// `strata storage format`: writes `meta.properties` into each of `dirs` (the log dirs and the
/// metadata log dir). Returns a line per directory formatted. A directory already formatted is
/// an error unless `ignore_formatted` (then it is left as it is).
pub fn format(
    io: &dyn Io,
    dirs: &[PathBuf],
    cluster_id: &str,
    node_id: i32,
    ignore_formatted: bool,
) -> Result<Vec<String>, String> {
    check_cluster_id(cluster_id)?;
    let mut todo = Vec::new();
    for dir in dirs {
        if todo.contains(dir) {
            continue;
        }
        match read(io, dir)? {
            Some(_) if ignore_formatted => {}
            Some(_) => {
                return Err(format!(
                    "Log directory {} is already formatted. Use --ignore-formatted to ignore this directory and format the others.",
                    dir.display()
                ))
            }
            None => todo.push(dir.clone()),
        }
    }
    if todo.is_empty() {
        return Err("All of the log directories are already formatted.".to_string());
    }
    let mut lines = Vec::new();
    for dir in todo {
        write(
            io,
            &dir,
            &MetaProperties {
                cluster_id: cluster_id.to_string(),
                node_id,
                directory_id: Some(random_uuid()),
            },
        )
        .map_err(|e| format!("cannot format {}: {e}", dir.display()))?;
        lines.push(format!(
            "Formatting {} with cluster.id {cluster_id}",
            dir.display()
        ));
    }
    Ok(lines)
}

/// The cluster id of formatted `dirs`, checked: each formatted, for one cluster and for
/// `node_id`.
pub fn check_formatted(io: &dyn Io, dirs: &[PathBuf], node_id: i32) -> Result<String, String> {
    let mut cluster: Option<(String, &Path)> = None;
    for dir in dirs {
        let meta = read(io, dir)?.ok_or_else(|| {
            format!(
                "No `meta.properties` found in {} (have you run `strata storage format` to format the directory?)",
                dir.display()
            )
        })?;
        if meta.node_id != node_id {
            return Err(format!(
                "Stored node id {} in {} doesn't match the configured node.id {node_id}",
                meta.node_id,
                dir.display()
            ));
        }
        match &cluster {
            Some((id, first)) if *id != meta.cluster_id => {
                return Err(format!(
                    "Invalid cluster.id in {}: expected {id} (as in {}), found {}",
                    dir.display(),
                    first.display(),
                    meta.cluster_id
                ))
            }
            Some(_) => {}
            None => cluster = Some((meta.cluster_id, dir)),
        }
    }
    cluster
        .map(|(id, _)| id)
        .ok_or_else(|| "no directories to check".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_storage::io::RealIo;

    #[test]
    fn format_then_check_then_refuse_a_second_format() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = vec![tmp.path().join("a"), tmp.path().join("b")];
        let id = random_uuid();
        assert_eq!(id.len(), 22);
        // One id in 64 would start with '-' if drawn freely.
        assert!((0..2000).all(|_| !random_uuid().starts_with('-')));
        assert!(check_cluster_id("abc").is_err());
        let lines = format(&RealIo, &dirs, &id, 3, false).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(check_formatted(&RealIo, &dirs, 3).unwrap(), id);
        assert!(check_formatted(&RealIo, &dirs, 4)
            .unwrap_err()
            .contains("doesn't match"));
        let err = format(&RealIo, &dirs, &id, 3, false).unwrap_err();
        assert!(err.contains("already formatted"), "{err}");
        let c = tmp.path().join("c");
        let mut more = dirs.clone();
        more.push(c.clone());
        assert!(check_formatted(&RealIo, &more, 3)
            .unwrap_err()
            .contains("No `meta.properties` found"));
        assert_eq!(format(&RealIo, &more, &id, 3, true).unwrap().len(), 1);
        assert_eq!(read(&RealIo, &c).unwrap().unwrap().node_id, 3);
    }
}
