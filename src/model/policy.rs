//! Policies: the resource limits attached to a path (§9.1).

use std::collections::BTreeSet;

/// Limits for everything running at or below a path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Policy {
    /// Maximum number of running unikernels.
    pub unikernels: i64,
    /// CPU ids unikernels may be pinned to.
    pub cpuids: BTreeSet<i64>,
    /// Memory in MB for all running unikernels together.
    pub memory: i64,
    /// Block storage in MB; `None` means no block devices at all.
    pub block: Option<i64>,
    /// Host bridges unikernels may attach to.
    pub bridges: BTreeSet<String>,
}
