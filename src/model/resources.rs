//! Resource accounting (§9): the policies, the running unikernels and the
//! block devices, with the dynamic check for starting a unikernel (§9.2),
//! the static check for inserting a policy (§9.3) and block device
//! accounting (§9.4). Pure data; the daemon does the I/O around it.
//!
//! Every map iterates in upstream's canonical trie order: pre-order, a node
//! before its children, children ascending bytewise by label. Every
//! operation either succeeds completely or returns an error and changes
//! nothing.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::config::UnikernelArguments;
use super::name::{Label, Name, Path};
use super::policy::{listing, ExceedsPolicy, Policy, UNLIMITED_UNIKERNELS};

/// Block device labels starting with this are exempt from block accounting
/// in the path given by `--allow-zvol-for` (§9.4).
pub const ZVOL_PREFIX: &str = "/dev/zvol";

/// What a running (or starting) unikernel takes from its policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnikernelUsage {
    /// CPU ids it is pinned to.
    pub cpuids: BTreeSet<i64>,
    /// Memory in MB.
    pub memory: i64,
    /// Host bridges, in configuration order.
    pub bridges: Vec<String>,
    /// Host block device labels, in configuration order; each names the
    /// block device (unikernel path, label) (§2.4).
    pub blocks: Vec<String>,
}

impl UnikernelUsage {
    /// The usage of a unikernel configured with `args`.
    pub fn of(args: &UnikernelArguments) -> UnikernelUsage {
        UnikernelUsage {
            cpuids: args.cpuids.iter().copied().collect(),
            memory: args.memory,
            bridges: args
                .bridges
                .iter()
                .map(|net| net.host_bridge().to_owned())
                .collect(),
            blocks: args
                .blocks
                .iter()
                .map(|block| block.host_device().to_owned())
                .collect(),
        }
    }
}

/// A block device record: its size and whether a running unikernel uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockDevice {
    /// Size in MB.
    pub size: i64,
    /// Whether it is attached to a running unikernel.
    pub active: bool,
}

/// Why a unikernel may not start (§9.2). The texts are upstream's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartError {
    /// The policy's unikernel count is reached.
    TooManyUnikernels {
        /// The policy's limit.
        limit: i64,
    },
    /// The policy's memory would be exceeded.
    MemoryExceeded {
        /// The policy's limit in MB.
        limit: i64,
        /// Memory used at or below the path, in MB.
        used: i64,
        /// Memory requested, in MB.
        requested: i64,
    },
    /// CPU ids outside the policy.
    CpuidsNotAllowed {
        /// The requested CPU ids the policy does not allow.
        not_allowed: BTreeSet<i64>,
    },
    /// Host bridges outside the policy.
    BridgesNotAllowed {
        /// The requested bridges the policy does not allow, in order.
        not_allowed: Vec<String>,
    },
    /// A block device does not exist.
    BlockNotFound {
        /// Text form of the block device name.
        device: String,
    },
    /// A block device is attached to another running unikernel (or named
    /// twice in this configuration).
    BlockInUse {
        /// Text form of the block device name.
        device: String,
    },
    /// A unikernel of that name is running.
    AlreadyExists,
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::TooManyUnikernels { limit } => {
                write!(f, "maximum amount of unikernels ({limit}) reached")
            }
            StartError::MemoryExceeded { limit, used, requested } => write!(
                f,
                "maximum allowed memory ({limit}, used {used}) would be exceeded (requesting {requested})"
            ),
            StartError::CpuidsNotAllowed { not_allowed } => {
                write!(f, "CPUids {} are not allowed by policy", listing(not_allowed))
            }
            StartError::BridgesNotAllowed { not_allowed } => {
                write!(f, "bridges {} not allowed by policy", listing(not_allowed))
            }
            StartError::BlockNotFound { device } => write!(f, "block device {device} not found"),
            StartError::BlockInUse { device } => write!(f, "block device {device} already in use"),
            StartError::AlreadyExists => f.write_str("unikernel with same name already exists"),
        }
    }
}

impl std::error::Error for StartError {}

/// Why recording a unikernel as running, or as stopped, failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnikernelError {
    /// A unikernel of that name is already recorded as running.
    AlreadyRunning {
        /// Its name.
        name: Name,
    },
    /// No unikernel of that name is running.
    Unknown {
        /// The name asked for.
        name: Name,
    },
    /// One of its block devices does not exist.
    BlockNotFound {
        /// Text form of the block device name.
        device: String,
    },
    /// One of its block devices is already in the state it should change to.
    BlockAlreadyInState {
        /// Text form of the block device name.
        device: String,
        /// The state it is already in.
        active: bool,
    },
}

impl fmt::Display for UnikernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnikernelError::AlreadyRunning { name } => {
                write!(f, "unikernel {name} is already running")
            }
            UnikernelError::Unknown { name } => write!(f, "unknown unikernel {name}"),
            UnikernelError::BlockNotFound { device } => {
                write!(f, "block device {device} not found")
            }
            UnikernelError::BlockAlreadyInState { device, active } => write!(
                f,
                "block device {device} already in state {}",
                if *active { "active" } else { "inactive" }
            ),
        }
    }
}

impl std::error::Error for UnikernelError {}

/// Why a policy may not be inserted (§9.3). The texts are upstream's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// The new policy exceeds the policy of an ancestor path.
    Above {
        /// The ancestor path.
        path: Path,
        /// How it exceeds it.
        reason: ExceedsPolicy,
    },
    /// A policy below would exceed the new policy.
    Below {
        /// The path of the policy below.
        path: Path,
        /// How it exceeds the new policy.
        reason: ExceedsPolicy,
    },
    /// Running unikernels use CPU ids the new policy does not allow.
    CpuidsInUse {
        /// The used CPU ids the policy does not allow.
        not_allowed: BTreeSet<i64>,
    },
    /// Running unikernels use bridges the new policy does not allow.
    BridgesInUse {
        /// The bridges the policy allows.
        allowed: BTreeSet<String>,
        /// The bridges in use.
        used: BTreeSet<String>,
    },
    /// More unikernels run than the new policy allows.
    UnikernelsRunning {
        /// The policy's limit.
        limit: i64,
        /// Unikernels running at or below the path.
        running: usize,
    },
    /// Running unikernels use more memory than the new policy allows.
    MemoryInUse {
        /// The policy's limit in MB.
        limit: i64,
        /// Memory used in MB.
        used: i64,
    },
    /// Block devices take more storage than the new policy allows.
    BlockInUse {
        /// The policy's limit in MB (0 when absent).
        limit: i64,
        /// Storage taken by block devices at or below the path, in MB.
        used: i64,
    },
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::Above { reason, .. } | PolicyError::Below { reason, .. } => {
                reason.fmt(f)
            }
            PolicyError::CpuidsInUse { not_allowed } => {
                write!(f, "policy does not allow CPUids {}", listing(not_allowed))
            }
            PolicyError::BridgesInUse { allowed, used } => write!(
                f,
                "policy allows bridges {}, which is not a superset of {}",
                listing(allowed),
                listing(used)
            ),
            PolicyError::UnikernelsRunning { limit, running } => write!(
                f,
                "unikernel would exceed running unikernel limit set by policy to {limit}, running {running}"
            ),
            PolicyError::MemoryInUse { limit, used } => write!(
                f,
                "unikernel would exceed running memory limit set by policy to {limit} MB, used {used} MB"
            ),
            PolicyError::BlockInUse { limit, used } => write!(
                f,
                "unikernel would exceed running block storage limit set by policy to {limit} MB, used {used} MB"
            ),
        }
    }
}

impl std::error::Error for PolicyError {}

/// `policy remove` of a path without a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPolicy {
    /// The path asked for.
    pub path: Path,
}

impl fmt::Display for UnknownPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Upstream's reply text.
        f.write_str("unknown policy")
    }
}

impl std::error::Error for UnknownPolicy {}

/// A block device size whose byte count (`size << 20`) is not positive or
/// does not fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockSizeError {
    /// The size in MB.
    pub size: i64,
}

impl fmt::Display for BlockSizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "overflow while computing bytes of a {} MB block device",
            self.size
        )
    }
}

impl std::error::Error for BlockSizeError {}

/// The size in bytes of a block device of `size_mb` MB (§9.4). Sizes of 0
/// MB or less, or whose byte count overflows, are refused.
pub fn block_bytes(size_mb: i64) -> Result<u64, BlockSizeError> {
    size_mb
        .checked_mul(1 << 20)
        .filter(|_| size_mb > 0)
        .and_then(|bytes| u64::try_from(bytes).ok())
        .ok_or(BlockSizeError { size: size_mb })
}

/// Why a block device may not be added (§8.4, §9.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockAddError {
    /// A block device of that name exists.
    Exists,
    /// The policy at the device's path allows no block devices.
    NotAllowed,
    /// The policy's block storage would be exceeded.
    LimitExceeded {
        /// The policy's limit in MB.
        limit: i64,
        /// Storage taken at or below the path, in MB.
        used: i64,
        /// The requested size in MB.
        requested: i64,
    },
    /// The size is not positive or too large.
    Size(BlockSizeError),
}

impl fmt::Display for BlockAddError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockAddError::Exists => f.write_str("block device with same name already exists"),
            BlockAddError::NotAllowed => f.write_str("no block devices are allowed by policy"),
            BlockAddError::LimitExceeded { limit, used, requested } => write!(
                f,
                "block device policy limit of {limit} MB (used {used} MB) would be exceeded by the request ({requested} MB)"
            ),
            BlockAddError::Size(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for BlockAddError {}

/// Why a block device may not be removed, overwritten or dumped. The
/// texts are upstream's reply tails: the daemon prefixes the operation
/// ("remove block: not found").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockUseError {
    /// No block device of that name.
    NotFound,
    /// It is attached to a running unikernel.
    InUse,
}

impl fmt::Display for BlockUseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockUseError::NotFound => f.write_str("not found"),
            BlockUseError::InUse => f.write_str("is in use"),
        }
    }
}

impl std::error::Error for BlockUseError {}

/// A name ordered the way upstream's trie walks: by its labels (path labels
/// then the label), so a node comes before its children; a path name comes
/// before the label name with the same labels.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TrieKey(Name);

impl Ord for TrieKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .trie_key()
            .cmp(&other.0.trie_key())
            .then_with(|| self.0.label().is_some().cmp(&other.0.label().is_some()))
    }
}

impl PartialOrd for TrieKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The entries of `map` whose names lie at or below `path`, in trie order.
fn names_within<'a, V>(
    map: &'a BTreeMap<TrieKey, V>,
    path: &'a Path,
) -> impl Iterator<Item = (&'a Name, &'a V)> + 'a {
    let prefix = path.labels();
    map.range(TrieKey(Name::of_path(path.clone()))..)
        // Everything whose labels start with the path's is contiguous here;
        // of those, a root-level `:a` is not within path `a`.
        .take_while(move |(key, _)| {
            let labels = key.0.trie_key();
            labels.len() >= prefix.len() && labels.iter().zip(prefix).all(|(a, b)| *a == b)
        })
        .filter(move |(key, _)| key.0.is_within(path))
        .map(|(key, value)| (&key.0, value))
}

/// Adds up MB values without overflowing (wire integers reach 2^62).
fn total(values: impl Iterator<Item = i64>) -> i64 {
    values.fold(0, i64::saturating_add)
}

/// Policies, running unikernels and block devices of one albatrossd.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resources {
    policies: BTreeMap<Path, Policy>,
    unikernels: BTreeMap<TrieKey, UnikernelUsage>,
    blocks: BTreeMap<TrieKey, BlockDevice>,
    allow_zvol_for: Option<Path>,
}

impl Resources {
    /// Empty resources; `allow_zvol_for` is the path of `--allow-zvol-for`.
    pub fn new(allow_zvol_for: Option<Path>) -> Resources {
        Resources {
            allow_zvol_for,
            ..Resources::default()
        }
    }

    // ---- policies -------------------------------------------------------

    /// The policy stored exactly at `path`.
    pub fn policy(&self, path: &Path) -> Option<&Policy> {
        self.policies.get(path)
    }

    /// Policies at or below `path`, in trie order.
    fn policies_within<'a>(
        &'a self,
        path: &'a Path,
    ) -> impl Iterator<Item = (&'a Path, &'a Policy)> {
        self.policies
            .range(path.clone()..)
            .take_while(move |(p, _)| p.is_within(path))
    }

    /// Policies at or below `path` with their paths relative to it, as
    /// path names (the policy at `path` itself is `:`), in trie order. At
    /// the root the names are absolute.
    pub fn policies_below(&self, path: &Path) -> Vec<(Name, Policy)> {
        self.policies_within(path)
            .filter_map(|(p, policy)| Some((Name::of_path(p.strip_prefix(path)?), policy.clone())))
            .collect()
    }

    /// Inserts or replaces the policy at `path` after the static check
    /// (§9.3): ancestors other than the root, policies below, then what
    /// runs and is stored below.
    pub fn insert_policy(&mut self, path: &Path, policy: Policy) -> Result<(), PolicyError> {
        // QUIRK: the root is never consulted as "above" (§9.3), so the
        // discovered host resources do not bound ordinary policies.
        let ancestors: Vec<Path> = path.ancestors().skip(1).collect();
        for ancestor in ancestors.iter().rev() {
            if let Some(above) = self.policies.get(ancestor) {
                policy
                    .check_within(above)
                    .map_err(|reason| PolicyError::Above {
                        path: ancestor.clone(),
                        reason,
                    })?;
            }
        }
        for (below_path, below) in self.policies_within(path).filter(|(p, _)| *p != path) {
            below
                .check_within(&policy)
                .map_err(|reason| PolicyError::Below {
                    path: below_path.clone(),
                    reason,
                })?;
        }
        self.check_running(path, &policy)?;
        self.policies.insert(path.clone(), policy);
        Ok(())
    }

    /// Step 3 of §9.3: what runs and is stored at or below `path` must fit.
    fn check_running(&self, path: &Path, policy: &Policy) -> Result<(), PolicyError> {
        let running: Vec<&UnikernelUsage> = names_within(&self.unikernels, path)
            .map(|(_, usage)| usage)
            .collect();
        let cpuids: BTreeSet<i64> = running
            .iter()
            .flat_map(|u| u.cpuids.iter().copied())
            .collect();
        if !cpuids.is_subset(&policy.cpuids) {
            return Err(PolicyError::CpuidsInUse {
                not_allowed: cpuids.difference(&policy.cpuids).copied().collect(),
            });
        }
        let bridges: BTreeSet<String> = running
            .iter()
            .flat_map(|u| u.bridges.iter().cloned())
            .collect();
        if !bridges.is_subset(&policy.bridges) {
            return Err(PolicyError::BridgesInUse {
                allowed: policy.bridges.clone(),
                used: bridges,
            });
        }
        if i128::try_from(running.len()).unwrap_or(i128::MAX) > i128::from(policy.unikernels) {
            return Err(PolicyError::UnikernelsRunning {
                limit: policy.unikernels,
                running: running.len(),
            });
        }
        let memory = total(running.iter().map(|u| u.memory));
        if memory > policy.memory {
            return Err(PolicyError::MemoryInUse {
                limit: policy.memory,
                used: memory,
            });
        }
        let block_limit = policy.block.unwrap_or(0);
        let block = self.block_usage(path);
        if block > block_limit {
            return Err(PolicyError::BlockInUse {
                limit: block_limit,
                used: block,
            });
        }
        Ok(())
    }

    /// Removes the policy at `path`.
    pub fn remove_policy(&mut self, path: &Path) -> Result<Policy, UnknownPolicy> {
        self.policies
            .remove(path)
            .ok_or_else(|| UnknownPolicy { path: path.clone() })
    }

    /// The `n` sent with `console add` for a unikernel in `path` (§10.1
    /// step 4): the policy's unikernel count, unlimited at the root, 0
    /// without a policy.
    pub fn console_limit(&self, path: &Path) -> i64 {
        if path.is_root() {
            UNLIMITED_UNIKERNELS
        } else {
            self.policies
                .get(path)
                .map_or(0, |policy| policy.unikernels)
        }
    }

    // ---- unikernels -----------------------------------------------------

    /// The usage of the running unikernel `name`.
    pub fn unikernel(&self, name: &Name) -> Option<&UnikernelUsage> {
        self.unikernels.get(&TrieKey(name.clone()))
    }

    /// Running unikernels at or below `path`, with absolute names, in trie
    /// order.
    pub fn unikernels_below<'a>(
        &'a self,
        path: &'a Path,
    ) -> impl Iterator<Item = (&'a Name, &'a UnikernelUsage)> {
        names_within(&self.unikernels, path)
    }

    /// The dynamic check for starting unikernel `name` with `usage` (§9.2):
    /// policy at its path, block devices, then the name.
    pub fn check_start(&self, name: &Name, usage: &UnikernelUsage) -> Result<(), StartError> {
        self.check_start_replacing(name, usage, None)
    }

    /// The check for `force-create` and `restart` (§8.2): as
    /// [`Resources::check_start`], but as if the running unikernel of that
    /// name (if any) were removed. Nothing changes.
    pub fn check_replace(&self, name: &Name, usage: &UnikernelUsage) -> Result<(), StartError> {
        self.check_start_replacing(name, usage, self.unikernel(name))
    }

    /// The dynamic check, ignoring `replaced` (the running unikernel `name`).
    fn check_start_replacing(
        &self,
        name: &Name,
        usage: &UnikernelUsage,
        replaced: Option<&UnikernelUsage>,
    ) -> Result<(), StartError> {
        let path = name.path();
        if let Some(policy) = self.policies.get(path) {
            let others: Vec<&UnikernelUsage> = self
                .unikernels_below(path)
                .filter(|(other, _)| !(replaced.is_some() && *other == name))
                .map(|(_, other)| other)
                .collect();
            let count = i128::try_from(others.len()).unwrap_or(i128::MAX);
            if count + 1 > i128::from(policy.unikernels) {
                return Err(StartError::TooManyUnikernels {
                    limit: policy.unikernels,
                });
            }
            let used = total(others.iter().map(|other| other.memory));
            if i128::from(usage.memory) > i128::from(policy.memory) - i128::from(used) {
                return Err(StartError::MemoryExceeded {
                    limit: policy.memory,
                    used,
                    requested: usage.memory,
                });
            }
            if !usage.cpuids.is_subset(&policy.cpuids) {
                return Err(StartError::CpuidsNotAllowed {
                    not_allowed: usage.cpuids.difference(&policy.cpuids).copied().collect(),
                });
            }
            let not_allowed: Vec<String> = usage
                .bridges
                .iter()
                .filter(|b| !policy.bridges.contains(*b))
                .cloned()
                .collect();
            if !not_allowed.is_empty() {
                return Err(StartError::BridgesNotAllowed { not_allowed });
            }
        }
        let mut seen = BTreeSet::new();
        for device in &usage.blocks {
            if self.zvol_exempt(path, device) {
                continue;
            }
            let text = device_text(path, device);
            let block = device_name(path, device).and_then(|key| {
                let block = self.blocks.get(&key)?;
                Some((key, block))
            });
            let Some((key, block)) = block else {
                return Err(StartError::BlockNotFound { device: text });
            };
            // A device of the replaced unikernel is free once it is gone.
            let freed = replaced.is_some_and(|old| old.blocks.contains(device));
            if (block.active && !freed) || !seen.insert(key) {
                return Err(StartError::BlockInUse { device: text });
            }
        }
        if replaced.is_none() && self.unikernel(name).is_some() {
            return Err(StartError::AlreadyExists);
        }
        Ok(())
    }

    /// Records unikernel `name` as running and marks its block devices
    /// active. Call [`Resources::check_start`] first.
    pub fn insert_unikernel(
        &mut self,
        name: &Name,
        usage: UnikernelUsage,
    ) -> Result<(), UnikernelError> {
        if self.unikernel(name).is_some() {
            return Err(UnikernelError::AlreadyRunning { name: name.clone() });
        }
        let keys = self.block_transitions(name.path(), &usage.blocks, true)?;
        self.set_active(keys, true);
        self.unikernels.insert(TrieKey(name.clone()), usage);
        Ok(())
    }

    /// Removes the running unikernel `name`, marks its block devices
    /// inactive and returns its usage.
    pub fn remove_unikernel(&mut self, name: &Name) -> Result<UnikernelUsage, UnikernelError> {
        let key = TrieKey(name.clone());
        let usage = self
            .unikernels
            .get(&key)
            .ok_or_else(|| UnikernelError::Unknown { name: name.clone() })?;
        let keys = self.block_transitions(name.path(), &usage.blocks, false)?;
        self.set_active(keys, false);
        self.unikernels
            .remove(&key)
            .ok_or(UnikernelError::Unknown { name: name.clone() })
    }

    /// The block devices in `path` to switch to `active`, or why one of them
    /// cannot be switched (missing, already in that state, or listed twice).
    fn block_transitions(
        &self,
        path: &Path,
        devices: &[String],
        active: bool,
    ) -> Result<Vec<TrieKey>, UnikernelError> {
        let mut keys: Vec<TrieKey> = Vec::new();
        for device in devices {
            if self.zvol_exempt(path, device) {
                continue;
            }
            let key = device_name(path, device).filter(|key| self.blocks.contains_key(key));
            let Some(key) = key else {
                return Err(UnikernelError::BlockNotFound {
                    device: device_text(path, device),
                });
            };
            let already = self
                .blocks
                .get(&key)
                .is_some_and(|block| block.active == active);
            if already || keys.contains(&key) {
                return Err(UnikernelError::BlockAlreadyInState {
                    device: device_text(path, device),
                    active,
                });
            }
            keys.push(key);
        }
        Ok(keys)
    }

    /// Sets the active flag of the given (existing) block devices.
    fn set_active(&mut self, keys: Vec<TrieKey>, active: bool) {
        for key in keys {
            if let Some(block) = self.blocks.get_mut(&key) {
                block.active = active;
            }
        }
    }

    /// Whether `device` in `path` is exempt from block accounting (§9.4).
    fn zvol_exempt(&self, path: &Path, device: &str) -> bool {
        device.starts_with(ZVOL_PREFIX) && self.allow_zvol_for.as_ref() == Some(path)
    }

    // ---- block devices --------------------------------------------------

    /// The block device `name`.
    pub fn block(&self, name: &Name) -> Option<BlockDevice> {
        self.blocks.get(&TrieKey(name.clone())).copied()
    }

    /// Block devices at or below `path` as (name relative to `path`, size
    /// in MB, active), in trie order. At the root the names are absolute.
    pub fn blocks_below(&self, path: &Path) -> Vec<(Name, i64, bool)> {
        names_within(&self.blocks, path)
            .filter_map(|(name, block)| Some((name.relative_to(path)?, block.size, block.active)))
            .collect()
    }

    /// Storage in MB taken by all block devices at or below `path`.
    fn block_usage(&self, path: &Path) -> i64 {
        total(names_within(&self.blocks, path).map(|(_, block)| block.size))
    }

    /// Whether block device `name` of `size` MB may be added (§8.4, §9.4):
    /// it must not exist, the policy at its path must allow it, and the
    /// size must convert to bytes. Returns the size in bytes.
    pub fn check_block_add(&self, name: &Name, size: i64) -> Result<u64, BlockAddError> {
        if self.block(name).is_some() {
            return Err(BlockAddError::Exists);
        }
        let path = name.path();
        if let Some(policy) = self.policies.get(path) {
            let Some(limit) = policy.block else {
                return Err(BlockAddError::NotAllowed);
            };
            let used = self.block_usage(path);
            if i128::from(size) > i128::from(limit) - i128::from(used) {
                return Err(BlockAddError::LimitExceeded {
                    limit,
                    used,
                    requested: size,
                });
            }
        }
        block_bytes(size).map_err(BlockAddError::Size)
    }

    /// Adds the inactive block device `name` of `size` MB after
    /// [`Resources::check_block_add`].
    pub fn add_block(&mut self, name: &Name, size: i64) -> Result<(), BlockAddError> {
        self.check_block_add(name, size)?;
        self.blocks.insert(
            TrieKey(name.clone()),
            BlockDevice {
                size,
                active: false,
            },
        );
        Ok(())
    }

    /// The block device `name` if it exists and is not in use (the
    /// precondition of `remove`, `set` and `dump`).
    pub fn free_block(&self, name: &Name) -> Result<BlockDevice, BlockUseError> {
        match self.block(name) {
            None => Err(BlockUseError::NotFound),
            Some(block) if block.active => Err(BlockUseError::InUse),
            Some(block) => Ok(block),
        }
    }

    /// Removes the block device `name` if it exists and is not in use.
    pub fn remove_block(&mut self, name: &Name) -> Result<BlockDevice, BlockUseError> {
        let block = self.free_block(name)?;
        self.blocks.remove(&TrieKey(name.clone()));
        Ok(block)
    }
}

/// The block device `device` of a unikernel in `path` (§2.4). Upstream
/// does not validate or lower-case this label, so a device string that is
/// not a canonical label names no stored device.
fn device_name(path: &Path, device: &str) -> Option<TrieKey> {
    let label = Label::parse(device)
        .ok()
        .filter(|label| label.as_str() == device)?;
    Some(TrieKey(Name::new(path.clone(), label)))
}

/// Text form of block device `device` of a unikernel in `path` (§2.4,
/// §2.5): also its file name under `<dbdir>/block`.
pub fn device_text(path: &Path, device: &str) -> String {
    format!("{path}:{device}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::parse(s).unwrap()
    }

    fn path(s: &str) -> Path {
        Path::parse(s).unwrap()
    }

    fn usage(memory: i64) -> UnikernelUsage {
        UnikernelUsage {
            cpuids: [0].into(),
            memory,
            bridges: vec!["service".to_owned()],
            blocks: Vec::new(),
        }
    }

    #[test]
    fn trie_order_is_pre_order() {
        let mut r = Resources::default();
        for n in [
            "beta:d",
            "alpha:c",
            "alpha:b.c",
            "alpha:a.b.c",
            "b",
            "a:z",
            "a:b:c",
        ] {
            r.insert_unikernel(&name(n), usage(1)).unwrap();
        }
        let all: Vec<String> = r
            .unikernels_below(&Path::root())
            .map(|(n, _)| n.to_string())
            .collect();
        assert_eq!(
            all,
            [
                "a:b:c",
                "a:z",
                "alpha:a.b.c",
                "alpha:b.c",
                "alpha:c",
                ":b",
                "beta:d"
            ]
        );
        let alpha: Vec<String> = r
            .unikernels_below(&path("alpha"))
            .map(|(n, _)| n.relative_to(&path("alpha")).unwrap().to_string())
            .collect();
        assert_eq!(alpha, [":a.b.c", ":b.c", ":c"]);
    }

    #[test]
    fn upstream_trie_group() {
        // §19 "Trie", on the unikernel map.
        let names = |r: &Resources, path: &str| -> Vec<String> {
            let path = Path::parse(path).unwrap();
            r.unikernels_below(&path)
                .map(|(n, _)| n.relative_to(&path).unwrap().to_string())
                .collect()
        };
        assert_eq!(Resources::default(), Resources::default());
        let mut one = Resources::default();
        one.insert_unikernel(&name("foo"), usage(1)).unwrap();
        assert!(one.unikernel(&name("foo")).is_some());
        for other in ["bar", "foo.bar", "foo:foo"] {
            assert!(one.unikernel(&name(other)).is_none());
        }
        assert_eq!(names(&one, ""), [":foo"]);
        let mut flat = Resources::default();
        for n in ["caesar", "alpha", "beta"] {
            flat.insert_unikernel(&name(n), usage(1)).unwrap();
        }
        assert_eq!(names(&flat, ""), [":alpha", ":beta", ":caesar"]);
        let mut nested = Resources::default();
        for n in ["beta:d", "alpha:c", "alpha:a", "alpha:b"] {
            nested.insert_unikernel(&name(n), usage(1)).unwrap();
        }
        assert_eq!(
            names(&nested, ""),
            ["alpha:a", "alpha:b", "alpha:c", "beta:d"]
        );
        assert_eq!(names(&nested, "alpha"), [":a", ":b", ":c"]);
    }

    #[test]
    fn upstream_trie_collect_order_of_policies() {
        let mut r = Resources::default();
        let p = Policy {
            unikernels: 1,
            cpuids: [0].into(),
            memory: 1,
            block: None,
            bridges: BTreeSet::new(),
        };
        for at in ["alpha:beta:a", "alpha:beta", "alpha", "", "beta"] {
            r.policies.insert(path(at), p.clone());
        }
        let order: Vec<String> = r
            .policies_below(&Path::root())
            .into_iter()
            .map(|(n, _)| n.to_string())
            .collect();
        assert_eq!(
            order,
            [":", "alpha:", "alpha:beta:", "alpha:beta:a:", "beta:"]
        );
    }

    #[test]
    fn root_label_is_not_within_same_named_path() {
        let mut r = Resources::default();
        r.insert_unikernel(&name(":a"), usage(1)).unwrap();
        r.insert_unikernel(&name("a:x"), usage(1)).unwrap();
        let within: Vec<String> = r
            .unikernels_below(&path("a"))
            .map(|(n, _)| n.to_string())
            .collect();
        assert_eq!(within, ["a:x"]);
    }

    #[test]
    fn block_bytes_arithmetic() {
        assert_eq!(block_bytes(1), Ok(1 << 20));
        assert_eq!(block_bytes(0), Err(BlockSizeError { size: 0 }));
        assert_eq!(block_bytes(-5), Err(BlockSizeError { size: -5 }));
        assert_eq!(
            block_bytes(i64::MAX >> 20),
            Ok(((i64::MAX >> 20) as u64) << 20)
        );
        assert_eq!(
            block_bytes((i64::MAX >> 20) + 1),
            Err(BlockSizeError {
                size: (i64::MAX >> 20) + 1
            })
        );
    }

    #[test]
    fn device_labels_are_not_lower_cased() {
        let mut r = Resources::default();
        r.add_block(&name("data"), 1).unwrap();
        let mut u = usage(1);
        u.blocks = vec!["Data".to_owned()];
        assert_eq!(
            r.check_start(&name("web"), &u),
            Err(StartError::BlockNotFound {
                device: ":Data".to_owned()
            })
        );
        u.blocks = vec!["data".to_owned()];
        assert_eq!(r.check_start(&name("web"), &u), Ok(()));
    }
}
