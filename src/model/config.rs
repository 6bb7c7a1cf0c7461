//! Unikernel configurations, restart arguments and info records (§5.5).
//!
//! Lists that travel as DER `SET OF` (cpuids, exit codes, block devices,
//! networks) are kept in the order they were given or decoded: the encoder
//! sorts them, the decoder preserves what it found (§4.1, §4.2).

use super::name::{derived_mac, Name};
use super::time::Timestamp;

/// The hypervisor kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Typ {
    /// A Solo5 unikernel run by `solo5-hvt` or `solo5-spt`.
    Solo5,
    /// A bhyve virtual machine (FreeBSD only).
    Bhyve,
}

/// What happens when a unikernel exits (§10.6).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FailBehaviour {
    /// Never restart.
    Quit,
    /// Restart on these exit codes; empty means on any code except the
    /// never-restart ones.
    Restart(Vec<i64>),
}

/// A block device as configured for a unikernel.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlockSpec {
    /// Device name as the unikernel's manifest knows it.
    pub name: String,
    /// Host block device label; `None` means the same as `name`.
    pub device: Option<String>,
    /// Sector size in bytes; `None` means the tender's default (512).
    pub sector_size: Option<i64>,
}

impl BlockSpec {
    /// The host device label: `device`, or `name` when absent.
    pub fn host_device(&self) -> &str {
        self.device.as_deref().unwrap_or(&self.name)
    }
}

/// A network interface as configured for a unikernel.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NetSpec {
    /// Interface name as the unikernel's manifest knows it.
    pub netif: String,
    /// Host bridge; `None` means the same as `netif`.
    pub bridge: Option<String>,
    /// Explicit MAC; `None` means derived (§2.6).
    pub mac: Option<[u8; 6]>,
}

impl NetSpec {
    /// The host bridge: `bridge`, or `netif` when absent.
    pub fn host_bridge(&self) -> &str {
        self.bridge.as_deref().unwrap_or(&self.netif)
    }

    /// The MAC the interface gets on unikernel `name`: explicit or derived.
    pub fn effective_mac(&self, name: &Name) -> [u8; 6] {
        self.mac.unwrap_or_else(|| derived_mac(&self.netif, name))
    }
}

/// Everything about a unikernel that a restart with new arguments may
/// replace: the configuration without typ, compression and image.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UnikernelArguments {
    /// Restart behaviour.
    pub fail_behaviour: FailBehaviour,
    /// Start-up priority, lower first; `None` means 50.
    pub startup: Option<i64>,
    /// Whether `--name=<name>` is prepended to the unikernel's argv.
    pub add_name: bool,
    /// CPUs the tender is pinned to.
    pub cpuids: Vec<i64>,
    /// Memory in MB.
    pub memory: i64,
    /// Block devices.
    pub blocks: Vec<BlockSpec>,
    /// Network interfaces.
    pub bridges: Vec<NetSpec>,
    /// Arguments; `None` (no argv at all) differs from an empty list.
    pub argv: Option<Vec<String>>,
    /// Number of virtual CPUs (bhyve).
    pub cpus: i64,
    /// Boot partition for bhyve/grub.
    pub linux_boot_partition: Option<String>,
}

/// Default start-up priority when none is configured.
pub const DEFAULT_STARTUP: i64 = 50;

/// A complete unikernel configuration as created and persisted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UnikernelConfig {
    /// Hypervisor kind.
    pub typ: Typ,
    /// Whether `image` is a zlib stream.
    pub compressed: bool,
    /// The image as received (compressed or not).
    pub image: Vec<u8>,
    /// Everything else.
    pub args: UnikernelArguments,
}

/// One block device in an info reply.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlockInfo {
    /// Name as the unikernel knows it.
    pub unikernel_device: String,
    /// Host device label.
    pub host_device: String,
    /// Sector size in bytes (512 when not configured).
    pub sector_size: i64,
    /// Size in MB, 0 if unknown.
    pub block_size: i64,
}

/// One network interface in an info reply.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NetInfo {
    /// Name as the unikernel knows it.
    pub unikernel_device: String,
    /// Host bridge.
    pub host_device: String,
    /// Effective MAC.
    pub mac: [u8; 6],
}

/// What `info` reports about a unikernel (§5.5 `UnikernelInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UnikernelInfo {
    /// Hypervisor kind.
    pub typ: Typ,
    /// Start-up priority, if configured.
    pub startup: Option<i64>,
    /// Restart behaviour.
    pub fail_behaviour: FailBehaviour,
    /// CPUs it is pinned to.
    pub cpuids: Vec<i64>,
    /// Memory in MB.
    pub memory: i64,
    /// Solo5: SHA-256 of the uncompressed image; bhyve: the VM name.
    pub digest: Vec<u8>,
    /// Block devices.
    pub blocks: Vec<BlockInfo>,
    /// Network interfaces.
    pub bridges: Vec<NetInfo>,
    /// Arguments, as configured.
    pub argv: Option<Vec<String>>,
    /// When the tender was started.
    pub started: Timestamp,
    /// Number of virtual CPUs.
    pub cpus: i64,
    /// Boot partition for bhyve/grub.
    pub linux_boot_partition: Option<String>,
}
