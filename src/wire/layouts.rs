//! The shared records of §5.5: policies, unikernel configurations in the
//! current and every legacy layout, restart arguments and info records.
//!
//! Decoders read every layout into the current Rust values with the
//! documented defaults; encoders write the current layouts only, plus the
//! two old info layouts that the daemon still answers with.

use std::collections::BTreeSet;
use std::fmt;

use super::der::{
    context, DecodeError, DecodeResult, Node, Reader, INTEGER, OCTET_STRING, SEQUENCE, SET,
    UTF8_STRING,
};
use super::state::StateLayout;
use crate::model::{
    BlockInfo, BlockSpec, FailBehaviour, Name, NetInfo, NetSpec, Policy, Timestamp, Typ,
    UnikernelArguments, UnikernelConfig, UnikernelInfo,
};

/// Why a value could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// An old info layout (success `[9]` or `[11]`) holds exactly one
    /// cpuid, but the unikernel is pinned to another number of CPUs.
    OldInfoCpuids {
        /// The unikernel.
        name: Name,
        /// Its number of cpuids.
        count: usize,
    },
    /// The state file layout cannot be written: only `[4]`, `[5]` and
    /// `[6]` carry policies, and the older ones are not written at all.
    UnwritableStateLayout {
        /// The layout asked for.
        layout: StateLayout,
    },
    /// An old state file layout holds exactly one cpuid per unikernel.
    OldStateCpuids {
        /// The unikernel.
        name: Name,
        /// The layout asked for.
        layout: StateLayout,
        /// The unikernel's number of cpuids.
        count: usize,
    },
    /// An old state file layout has no place for a setting the unikernel
    /// uses (a `cpus` other than 1, or a Linux boot partition).
    OldStateField {
        /// The unikernel.
        name: Name,
        /// The layout asked for.
        layout: StateLayout,
        /// The setting, as named in the grammar (§5.5).
        field: &'static str,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::OldInfoCpuids { name, count } => write!(
                f,
                "unikernel {name} has {count} cpuids, but the old info reply layout \
                 requested by this client holds exactly one"
            ),
            EncodeError::UnwritableStateLayout { layout } => write!(
                f,
                "state file layout {layout} cannot be written; only [4], [5] and [6] can"
            ),
            EncodeError::OldStateCpuids {
                name,
                layout,
                count,
            } => write!(
                f,
                "unikernel {name} has {count} cpuids, but state file layout {layout} \
                 holds exactly one"
            ),
            EncodeError::OldStateField {
                name,
                layout,
                field,
            } => write!(
                f,
                "unikernel {name} sets {field}, which state file layout {layout} cannot hold"
            ),
        }
    }
}

impl std::error::Error for EncodeError {}

/// Reads a name (§2.3) from a UTF8String.
pub(crate) fn read_name(r: &mut Reader<'_>, what: &'static str) -> DecodeResult<Name> {
    let bytes = r.utf8_bytes(what)?;
    Name::parse_bytes(bytes).map_err(|e| DecodeError::BadName(format!("{what}: {e}")))
}

/// A name in its text form.
pub(crate) fn name_node<'a>(name: &Name) -> Node<'a> {
    Node::utf8_owned(name.to_string())
}

/// The error for a CHOICE alternative that the grammar does not have.
pub(crate) fn unknown_alternative(what: &'static str, n: u8) -> DecodeError {
    DecodeError::UnexpectedTag {
        what,
        found: context(n),
    }
}

/// The error for an alternative that older upstream releases had and the
/// current grammar dropped (§5.7).
pub(crate) fn removed(what: &str) -> DecodeError {
    DecodeError::Unsupported(format!(
        "{what} is a legacy encoding that upstream albatross removed; it is no longer supported"
    ))
}

/// A SEQUENCE OF UTF8String.
fn strings_node(items: &[String]) -> Node<'_> {
    Node::seq(items.iter().map(|s| Node::utf8(s)).collect())
}

fn read_strings(r: &mut Reader<'_>, tag: u8, what: &'static str) -> DecodeResult<Vec<String>> {
    r.list_of(tag, what, |r| r.utf8(what))
}

/// A SET OF INTEGER.
fn ints_set_node<'a>(items: &[i64]) -> Node<'a> {
    Node::set_of(items.iter().map(|i| Node::integer(*i)).collect())
}

fn read_ints_set(r: &mut Reader<'_>, what: &'static str) -> DecodeResult<Vec<i64>> {
    r.list_of(SET, what, |r| r.integer(what))
}

// ---------------------------------------------------------------- policy

/// `Policy` (§5.5): cpuids ascending, bridges bytewise sorted.
pub(crate) fn policy_node(p: &Policy) -> Node<'_> {
    let mut children = vec![
        Node::seq(p.cpuids.iter().map(|c| Node::integer(*c)).collect()),
        Node::integer(p.unikernels),
        Node::integer(p.memory),
    ];
    children.extend(p.block.map(Node::integer));
    children.push(Node::seq(p.bridges.iter().map(|b| Node::utf8(b)).collect()));
    Node::seq(children)
}

/// Reads a `Policy`; duplicate cpuids or bridges collapse.
pub(crate) fn read_policy(r: &mut Reader<'_>) -> DecodeResult<Policy> {
    r.sequence("policy", |r| {
        let cpuids = r.list_of(SEQUENCE, "policy cpuids", |r| r.integer("policy cpuid"))?;
        let unikernels = r.integer("policy unikernels")?;
        let memory = r.integer("policy memory")?;
        let block = if r.peek_tag() == Some(INTEGER) {
            Some(r.integer("policy block")?)
        } else {
            None
        };
        let bridges = read_strings(r, SEQUENCE, "policy bridges")?;
        Ok(Policy {
            unikernels,
            cpuids: cpuids.into_iter().collect::<BTreeSet<_>>(),
            memory,
            block,
            bridges: bridges.into_iter().collect(),
        })
    })
}

// ------------------------------------------------------- typ and failure

fn typ_node<'a>(typ: Typ) -> Node<'a> {
    let n = match typ {
        Typ::Solo5 => 0,
        Typ::Bhyve => 1,
    };
    Node::explicit(n, Node::null())
}

fn read_typ(r: &mut Reader<'_>) -> DecodeResult<Typ> {
    r.choice("unikernel type", |n, r| {
        let typ = match n {
            0 => Typ::Solo5,
            1 => Typ::Bhyve,
            _ => return Err(unknown_alternative("unikernel type", n)),
        };
        r.null("unikernel type")?;
        Ok(typ)
    })
}

fn fail_node(fail: &FailBehaviour) -> Node<'_> {
    match fail {
        FailBehaviour::Quit => Node::explicit(0, Node::null()),
        FailBehaviour::Restart(codes) => Node::explicit(1, ints_set_node(codes)),
    }
}

fn read_fail(r: &mut Reader<'_>) -> DecodeResult<FailBehaviour> {
    r.choice("fail behaviour", |n, r| match n {
        0 => r.null("fail behaviour quit").map(|()| FailBehaviour::Quit),
        1 => read_ints_set(r, "restart exit codes").map(FailBehaviour::Restart),
        _ => Err(unknown_alternative("fail behaviour", n)),
    })
}

// ------------------------------------------------ block and net specs

fn block_spec_node(b: &BlockSpec) -> Node<'_> {
    let mut children = vec![Node::utf8(&b.name)];
    children.extend(b.device.as_deref().map(Node::utf8));
    children.extend(b.sector_size.map(Node::integer));
    Node::seq(children)
}

fn read_block_spec(r: &mut Reader<'_>) -> DecodeResult<BlockSpec> {
    r.sequence("block device", |r| {
        let name = r.utf8("block device name")?;
        let device = if r.peek_tag() == Some(UTF8_STRING) {
            Some(r.utf8("block device label")?)
        } else {
            None
        };
        let sector_size = if r.peek_tag() == Some(INTEGER) {
            Some(r.integer("block sector size")?)
        } else {
            None
        };
        Ok(BlockSpec {
            name,
            device,
            sector_size,
        })
    })
}

fn net_spec_node(n: &NetSpec) -> Node<'_> {
    let mut children = vec![Node::utf8(&n.netif)];
    children.extend(n.bridge.as_deref().map(Node::utf8));
    children.extend(n.mac.as_ref().map(|m| Node::octets(m)));
    Node::seq(children)
}

fn read_net_spec(r: &mut Reader<'_>) -> DecodeResult<NetSpec> {
    r.sequence("network interface", |r| {
        let netif = r.utf8("network interface name")?;
        let bridge = if r.peek_tag() == Some(UTF8_STRING) {
            Some(r.utf8("network bridge")?)
        } else {
            None
        };
        let mac = if r.peek_tag() == Some(OCTET_STRING) {
            Some(r.mac()?)
        } else {
            None
        };
        Ok(NetSpec { netif, bridge, mac })
    })
}

// ------------------------------------------ configurations and arguments

/// How the fields after `fail-behaviour` are laid out in one of the
/// configuration or argument layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resources {
    /// V1: one cpuid, blocks and bridges as `SET OF UTF8String`.
    V1,
    /// V2: as V1, bridges as `SEQUENCE OF SEQUENCE { netif, bridge OPT }`.
    V2,
    /// V3, V4, arguments V0/V1: one cpuid, `SET OF BlockSpec/NetSpec`.
    V3,
    /// Current: `SET OF INTEGER` cpuids, and `cpus [3]`,
    /// `linux-boot-partition [4]` at the end.
    Current,
}

/// The fields that every layout has after `fail-behaviour`.
struct Tail {
    cpuids: Vec<i64>,
    memory: i64,
    blocks: Vec<BlockSpec>,
    bridges: Vec<NetSpec>,
    argv: Option<Vec<String>>,
    cpus: i64,
    linux_boot_partition: Option<String>,
}

impl Tail {
    fn into_args(
        self,
        fail_behaviour: FailBehaviour,
        startup: Option<i64>,
        add_name: bool,
    ) -> UnikernelArguments {
        UnikernelArguments {
            fail_behaviour,
            startup,
            add_name,
            cpuids: self.cpuids,
            memory: self.memory,
            blocks: self.blocks,
            bridges: self.bridges,
            argv: self.argv,
            cpus: self.cpus,
            linux_boot_partition: self.linux_boot_partition,
        }
    }
}

fn read_tail(r: &mut Reader<'_>, layout: Resources) -> DecodeResult<Tail> {
    let cpuids = match layout {
        Resources::Current => read_ints_set(r, "cpuids")?,
        _ => vec![r.integer("cpuid")?],
    };
    let memory = r.integer("memory")?;
    let blocks = r
        .optional(0, "block devices", |r| match layout {
            Resources::V1 | Resources::V2 => Ok(read_strings(r, SET, "block device name")?
                .into_iter()
                .map(|name| BlockSpec {
                    name,
                    device: None,
                    sector_size: None,
                })
                .collect()),
            Resources::V3 | Resources::Current => r.list_of(SET, "block devices", read_block_spec),
        })?
        .unwrap_or_default();
    let bridges = r
        .optional(1, "network interfaces", |r| match layout {
            Resources::V1 => Ok(read_strings(r, SET, "network interface name")?
                .into_iter()
                .map(|netif| NetSpec {
                    netif,
                    bridge: None,
                    mac: None,
                })
                .collect()),
            Resources::V2 => r.list_of(SEQUENCE, "network interfaces", |r| {
                r.sequence("network interface", |r| {
                    let netif = r.utf8("network interface name")?;
                    let bridge = if r.is_empty() {
                        None
                    } else {
                        Some(r.utf8("network bridge")?)
                    };
                    Ok(NetSpec {
                        netif,
                        bridge,
                        mac: None,
                    })
                })
            }),
            Resources::V3 | Resources::Current => {
                r.list_of(SET, "network interfaces", read_net_spec)
            }
        })?
        .unwrap_or_default();
    let argv = r.optional(2, "arguments", |r| read_strings(r, SEQUENCE, "argument"))?;
    let (cpus, linux_boot_partition) = if layout == Resources::Current {
        let cpus = r.optional(3, "number of cpus", |r| r.integer("number of cpus"))?;
        let boot = r.optional(4, "linux boot partition", |r| {
            r.utf8("linux boot partition")
        })?;
        (cpus.unwrap_or(1), boot)
    } else {
        (1, None)
    };
    Ok(Tail {
        cpuids,
        memory,
        blocks,
        bridges,
        argv,
        cpus,
        linux_boot_partition,
    })
}

/// The current layout's fields from `cpuids` on.
fn push_tail<'a>(a: &'a UnikernelArguments, out: &mut Vec<Node<'a>>) {
    out.push(ints_set_node(&a.cpuids));
    push_resources(a, out);
    out.push(Node::explicit(3, Node::integer(a.cpus)));
    if let Some(boot) = &a.linux_boot_partition {
        out.push(Node::explicit(4, Node::utf8(boot)));
    }
}

/// The fields from `memory` to `arguments`, the same in the V3, V4 and
/// current layouts.
fn push_resources<'a>(a: &'a UnikernelArguments, out: &mut Vec<Node<'a>>) {
    out.push(Node::integer(a.memory));
    if !a.blocks.is_empty() {
        out.push(Node::explicit(
            0,
            Node::set_of(a.blocks.iter().map(block_spec_node).collect()),
        ));
    }
    if !a.bridges.is_empty() {
        out.push(Node::explicit(
            1,
            Node::set_of(a.bridges.iter().map(net_spec_node).collect()),
        ));
    }
    if let Some(argv) = &a.argv {
        out.push(Node::explicit(2, strings_node(argv)));
    }
}

fn read_startup(r: &mut Reader<'_>) -> DecodeResult<Option<i64>> {
    if r.peek_tag() == Some(INTEGER) {
        r.integer("startup priority").map(Some)
    } else {
        Ok(None)
    }
}

/// `UnikernelConfig` (current layout, create `[20]`/`[21]`, state `[6]`).
pub(crate) fn config_node(c: &UnikernelConfig) -> Node<'_> {
    let a = &c.args;
    let mut children = vec![
        typ_node(c.typ),
        Node::boolean(c.compressed),
        Node::octets(&c.image),
    ];
    children.extend(a.startup.map(Node::integer));
    children.push(Node::boolean(a.add_name));
    children.push(fail_node(&a.fail_behaviour));
    push_tail(a, &mut children);
    Node::seq(children)
}

/// The old configuration layouts that can still be written, for state
/// files that older upstream releases read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OldConfigLayout {
    /// State `[4]` (upstream 2.2.0 to 2.5.x): no startup, no add-name.
    V3,
    /// State `[5]` (upstream 2.6.x).
    V4,
}

/// `UnikernelConfigV3` or `UnikernelConfigV4` pinned to the single
/// `cpuid`. These layouts have no `cpus` and no `linux-boot-partition`; the
/// caller checks that nothing it cares about is dropped.
pub(crate) fn old_config_node(
    c: &UnikernelConfig,
    cpuid: i64,
    layout: OldConfigLayout,
) -> Node<'_> {
    let a = &c.args;
    let mut children = vec![
        typ_node(c.typ),
        Node::boolean(c.compressed),
        Node::octets(&c.image),
    ];
    if layout == OldConfigLayout::V4 {
        children.extend(a.startup.map(Node::integer));
        children.push(Node::boolean(a.add_name));
    }
    children.push(fail_node(&a.fail_behaviour));
    children.push(Node::integer(cpuid));
    push_resources(a, &mut children);
    Node::seq(children)
}

/// The unikernel configuration layouts of §5.5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConfigLayout {
    /// State `[1]`.
    V0,
    /// State `[0]`.
    V1,
    /// State `[2]`.
    V2,
    /// State `[3]`/`[4]`, create `[9]`/`[10]`.
    V3,
    /// State `[5]`, create `[16]`/`[17]`.
    V4,
    /// State `[6]`, create `[20]`/`[21]`.
    Current,
}

/// Reads a unikernel configuration in `layout`.
pub(crate) fn read_config(
    r: &mut Reader<'_>,
    layout: ConfigLayout,
) -> DecodeResult<UnikernelConfig> {
    if layout == ConfigLayout::V0 {
        return r.sequence("unikernel configuration", read_config_v0);
    }
    r.sequence("unikernel configuration", |r| {
        let typ = read_typ(r)?;
        let compressed = r.boolean("compressed")?;
        let image = r.octets("image")?.to_vec();
        let (startup, add_name) = match layout {
            ConfigLayout::V4 | ConfigLayout::Current => (read_startup(r)?, r.boolean("add name")?),
            _ => (None, true),
        };
        let fail = read_fail(r)?;
        let resources = match layout {
            ConfigLayout::V0 | ConfigLayout::V1 => Resources::V1,
            ConfigLayout::V2 => Resources::V2,
            ConfigLayout::V3 | ConfigLayout::V4 => Resources::V3,
            ConfigLayout::Current => Resources::Current,
        };
        let args = read_tail(r, resources)?.into_args(fail, startup, add_name);
        Ok(UnikernelConfig {
            typ,
            compressed,
            image,
            args,
        })
    })
}

/// The 1.x layout: `cpu, memory, block OPT, network OPT, image CHOICE,
/// arguments OPT`.
fn read_config_v0(r: &mut Reader<'_>) -> DecodeResult<UnikernelConfig> {
    let cpuid = r.integer("cpuid")?;
    let memory = r.integer("memory")?;
    let blocks = if r.peek_tag() == Some(UTF8_STRING) {
        vec![BlockSpec {
            name: r.utf8("block device")?,
            device: None,
            sector_size: None,
        }]
    } else {
        Vec::new()
    };
    let bridges = if r.peek_tag() == Some(SEQUENCE) {
        read_strings(r, SEQUENCE, "network interface name")?
            .into_iter()
            .map(|netif| NetSpec {
                netif,
                bridge: None,
                mac: None,
            })
            .collect()
    } else {
        Vec::new()
    };
    let (compressed, image) = r.choice("image", |n, r| match n {
        0 | 1 => Ok((false, r.octets("image")?.to_vec())),
        2 => Ok((true, r.octets("image")?.to_vec())),
        _ => Err(unknown_alternative("image", n)),
    })?;
    let argv = if r.is_empty() {
        None
    } else {
        Some(read_strings(r, SEQUENCE, "argument")?)
    };
    Ok(UnikernelConfig {
        typ: Typ::Solo5,
        compressed,
        image,
        args: UnikernelArguments {
            fail_behaviour: FailBehaviour::Quit,
            startup: None,
            add_name: true,
            cpuids: vec![cpuid],
            memory,
            blocks,
            bridges,
            argv,
            cpus: 1,
            linux_boot_partition: None,
        },
    })
}

/// `UnikernelArguments` (current layout, restart `[3]`).
pub(crate) fn args_node(a: &UnikernelArguments) -> Node<'_> {
    let mut children = vec![fail_node(&a.fail_behaviour)];
    children.extend(a.startup.map(Node::integer));
    children.push(Node::boolean(a.add_name));
    push_tail(a, &mut children);
    Node::seq(children)
}

/// The restart argument layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArgsLayout {
    /// Restart `[1]`: no startup, no add-name, one cpuid.
    V0,
    /// Restart `[2]`: one cpuid.
    V1,
    /// Restart `[3]`.
    Current,
}

/// Reads restart arguments in `layout`.
pub(crate) fn read_args(
    r: &mut Reader<'_>,
    layout: ArgsLayout,
) -> DecodeResult<UnikernelArguments> {
    r.sequence("restart arguments", |r| {
        let fail = read_fail(r)?;
        let (startup, add_name) = match layout {
            ArgsLayout::V0 => (None, true),
            ArgsLayout::V1 | ArgsLayout::Current => (read_startup(r)?, r.boolean("add name")?),
        };
        let resources = if layout == ArgsLayout::Current {
            Resources::Current
        } else {
            Resources::V3
        };
        Ok(read_tail(r, resources)?.into_args(fail, startup, add_name))
    })
}

// ------------------------------------------------------------- info

/// The info reply layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InfoLayout {
    /// Success `[9]`.
    Old4,
    /// Success `[11]`.
    Old5,
    /// Success `[13]`.
    Current,
}

fn block_info_node(b: &BlockInfo) -> Node<'_> {
    Node::seq(vec![
        Node::utf8(&b.unikernel_device),
        Node::utf8(&b.host_device),
        Node::integer(b.sector_size),
        Node::integer(b.block_size),
    ])
}

fn read_block_info(r: &mut Reader<'_>) -> DecodeResult<BlockInfo> {
    r.sequence("block device info", |r| {
        Ok(BlockInfo {
            unikernel_device: r.utf8("unikernel block device")?,
            host_device: r.utf8("host block device")?,
            sector_size: r.integer("sector size")?,
            block_size: r.integer("block size")?,
        })
    })
}

fn net_info_node(n: &NetInfo) -> Node<'_> {
    Node::seq(vec![
        Node::utf8(&n.unikernel_device),
        Node::utf8(&n.host_device),
        Node::octets(&n.mac),
    ])
}

fn read_net_info(r: &mut Reader<'_>) -> DecodeResult<NetInfo> {
    r.sequence("network interface info", |r| {
        Ok(NetInfo {
            unikernel_device: r.utf8("unikernel network interface")?,
            host_device: r.utf8("host bridge")?,
            mac: r.mac()?,
        })
    })
}

/// A unikernel info record in `layout`; the old layouts need exactly one
/// cpuid.
pub(crate) fn info_node<'a>(
    name: &Name,
    i: &'a UnikernelInfo,
    layout: InfoLayout,
) -> Result<Node<'a>, EncodeError> {
    let mut children = vec![typ_node(i.typ)];
    if layout != InfoLayout::Old4 {
        children.extend(i.startup.map(Node::integer));
    }
    children.push(fail_node(&i.fail_behaviour));
    match (layout, i.cpuids.as_slice()) {
        (InfoLayout::Current, cpuids) => children.push(ints_set_node(cpuids)),
        (_, [cpuid]) => children.push(Node::integer(*cpuid)),
        (_, cpuids) => {
            return Err(EncodeError::OldInfoCpuids {
                name: name.clone(),
                count: cpuids.len(),
            })
        }
    }
    children.push(Node::integer(i.memory));
    children.push(Node::octets(&i.digest));
    if !i.blocks.is_empty() {
        children.push(Node::explicit(
            0,
            Node::set_of(i.blocks.iter().map(block_info_node).collect()),
        ));
    }
    if !i.bridges.is_empty() {
        children.push(Node::explicit(
            1,
            Node::set_of(i.bridges.iter().map(net_info_node).collect()),
        ));
    }
    if let Some(argv) = &i.argv {
        children.push(Node::explicit(2, strings_node(argv)));
    }
    children.push(Node::explicit(3, Node::time(i.started)));
    if layout == InfoLayout::Current {
        children.push(Node::explicit(4, Node::integer(i.cpus)));
        if let Some(boot) = &i.linux_boot_partition {
            children.push(Node::explicit(5, Node::utf8(boot)));
        }
    }
    Ok(Node::seq(children))
}

/// Reads a unikernel info record in `layout`.
pub(crate) fn read_info(r: &mut Reader<'_>, layout: InfoLayout) -> DecodeResult<UnikernelInfo> {
    r.sequence("unikernel info", |r| {
        let typ = read_typ(r)?;
        let startup = if layout == InfoLayout::Old4 {
            None
        } else {
            read_startup(r)?
        };
        let fail_behaviour = read_fail(r)?;
        let cpuids = match layout {
            InfoLayout::Current => read_ints_set(r, "cpuids")?,
            _ => vec![r.integer("cpuid")?],
        };
        let memory = r.integer("memory")?;
        let digest = r.octets("digest")?.to_vec();
        let blocks = r.optional(0, "block devices", |r| {
            r.list_of(SET, "block devices", read_block_info)
        })?;
        let bridges = r.optional(1, "network interfaces", |r| {
            r.list_of(SET, "network interfaces", read_net_info)
        })?;
        let argv = r.optional(2, "arguments", |r| read_strings(r, SEQUENCE, "argument"))?;
        let started = r.optional(3, "start time", |r| r.time("start time"))?;
        let (cpus, linux_boot_partition) = if layout == InfoLayout::Current {
            let cpus = r.optional(4, "number of cpus", |r| r.integer("number of cpus"))?;
            let boot = r.optional(5, "linux boot partition", |r| {
                r.utf8("linux boot partition")
            })?;
            (cpus.unwrap_or(1), boot)
        } else {
            (1, None)
        };
        Ok(UnikernelInfo {
            typ,
            startup,
            fail_behaviour,
            cpuids,
            memory,
            digest,
            blocks: blocks.unwrap_or_default(),
            bridges: bridges.unwrap_or_default(),
            argv,
            started: started.unwrap_or(Timestamp::EPOCH),
            cpus,
            linux_boot_partition,
        })
    })
}
