//! Storage tiers: a fast first tier (persistent memory, NVMe or SSD) and a large second tier,
//! each one or more directories with a capacity.
//!
//! This module holds the pure parts: tier descriptions, the placement of a new segment
//! ([`placement`]) and the migration policy ([`policy`]). They decide from usage numbers alone,
//! so they are tested without files.

pub mod migration;
pub mod migrator;
pub mod placement;
pub mod policy;
pub mod pool;
pub mod usage;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// The kind of device a tier lives on (`storage.tiers.types`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TierType {
    /// Persistent memory: segments are memory-mapped files (MAP_SYNC on a DAX filesystem).
    Pmem,
    Nvme,
    Ssd,
    Hdd,
}

impl TierType {
    /// Whether segments of this tier are memory-mapped rather than written with file I/O.
    pub fn is_mapped(self) -> bool {
        self == TierType::Pmem
    }
}

impl FromStr for TierType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PMEM" => Ok(TierType::Pmem),
            "NVME" => Ok(TierType::Nvme),
            "SSD" => Ok(TierType::Ssd),
            "HDD" => Ok(TierType::Hdd),
            other => Err(format!(
                "unknown tier type {other}; expected PMEM, NVME, SSD or HDD"
            )),
        }
    }
}

impl fmt::Display for TierType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TierType::Pmem => "PMEM",
            TierType::Nvme => "NVME",
            TierType::Ssd => "SSD",
            TierType::Hdd => "HDD",
        })
    }
}

/// Which tier: the first (fast) or the second (large).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TierId {
    First,
    Second,
}

/// One directory of a tier and the bytes it may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierDir {
    pub path: PathBuf,
    pub capacity_bytes: u64,
}

/// A tier as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierSpec {
    pub id: TierId,
    pub kind: TierType,
    pub dirs: Vec<TierDir>,
}

impl TierSpec {
    pub fn capacity_bytes(&self) -> u64 {
        self.dirs.iter().map(|d| d.capacity_bytes).sum()
    }
}

/// How much of one directory is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DirUsage {
    pub capacity_bytes: u64,
    pub used_bytes: u64,
}

impl DirUsage {
    pub fn free_bytes(&self) -> u64 {
        self.capacity_bytes.saturating_sub(self.used_bytes)
    }
}
