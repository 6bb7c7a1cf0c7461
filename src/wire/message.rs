//! Wire messages (§5.1–§5.4): header, commands, replies and data.
//!
//! The decoder accepts every legacy alternative that upstream still
//! decodes (§5.7) and refuses the removed ones with a message naming them.
//! The encoder writes the current layout of every value; values that only
//! exist in a legacy form (old info queries and replies, old block
//! commands) keep their legacy tag, so that they mean the same after a
//! round trip.

use super::der::{DecodeError, DecodeResult, Node, Reader, SEQUENCE, UTF8_STRING};
use super::layouts::{
    args_node, config_node, info_node, name_node, policy_node, read_args, read_config, read_info,
    read_name, read_policy, removed, unknown_alternative, ArgsLayout, ConfigLayout, EncodeError,
    InfoLayout,
};
use super::types::{
    BlockCmd, Command, ConsoleCmd, Data, Header, IfData, InfoVersion, KinfoMem, LifeCycle, Payload,
    PolicyCmd, RUsage, SinceCount, StatsCmd, StatsData, Success, Timeval, UnikernelCmd,
    UnikernelStatus, Wire, WIRE_VERSION,
};
use crate::model::{Name, UnikernelInfo};

/// Encodes a complete message (without the length prefix of §3).
///
/// Fails only for an old-layout info reply (success `[9]`/`[11]`) about a
/// unikernel that does not have exactly one cpuid.
pub fn encode_wire(wire: &Wire) -> Result<Vec<u8>, EncodeError> {
    let header = Node::seq(vec![
        Node::integer(wire.header.version),
        Node::int64(wire.header.sequence),
        name_node(&wire.header.name),
    ]);
    let payload = match &wire.payload {
        Payload::Command(c) => Node::explicit(0, command_node(c)),
        Payload::Reply(s) => Node::explicit(1, success_node(s)?),
        Payload::Failure(msg) => Node::explicit(2, Node::utf8(msg)),
        Payload::Data(d) => Node::explicit(3, data_node(d)),
    };
    Ok(Node::seq(vec![header, payload]).to_vec())
}

/// Decodes a complete message (without the length prefix of §3). The
/// version must be 5; every byte must be consumed.
pub fn decode_wire(bytes: &[u8]) -> DecodeResult<Wire> {
    let mut r = Reader::new(bytes);
    let wire = r.sequence("wire message", |r| {
        let header = r.sequence("header", read_header)?;
        let payload = r.choice("payload", |n, r| match n {
            0 => read_command(r).map(Payload::Command),
            1 => read_success(r).map(Payload::Reply),
            2 => r.utf8("failure message").map(Payload::Failure),
            3 => read_data(r).map(Payload::Data),
            _ => Err(unknown_alternative("payload", n)),
        })?;
        Ok(Wire { header, payload })
    })?;
    r.finish("wire message")?;
    Ok(wire)
}

fn read_header(r: &mut Reader<'_>) -> DecodeResult<Header> {
    let version = r.integer("version")?;
    if version != WIRE_VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    let sequence = r.int64("sequence number")?;
    let name = read_name(r, "header name")?;
    Ok(Header {
        version,
        sequence,
        name,
    })
}

// ------------------------------------------------------------- commands

/// The `Command` CHOICE (§5.2), as in wire payloads and certificates.
pub(crate) fn command_node(c: &Command) -> Node<'_> {
    match c {
        Command::Console(c) => Node::explicit(0, console_node(c)),
        Command::Stats(c) => Node::explicit(1, stats_cmd_node(c)),
        Command::Unikernel(c) => Node::explicit(3, unikernel_cmd_node(c)),
        Command::Policy(c) => Node::explicit(4, policy_cmd_node(c)),
        Command::Block(c) => Node::explicit(5, block_cmd_node(c)),
    }
}

/// Reads the `Command` CHOICE.
pub(crate) fn read_command(r: &mut Reader<'_>) -> DecodeResult<Command> {
    r.choice("command", |n, r| match n {
        0 => read_console(r).map(Command::Console),
        1 => read_stats_cmd(r).map(Command::Stats),
        2 => Err(removed("the log command [2]")),
        3 => read_unikernel_cmd(r).map(Command::Unikernel),
        4 => read_policy_cmd(r).map(Command::Policy),
        5 => read_block_cmd(r).map(Command::Block),
        _ => Err(unknown_alternative("command", n)),
    })
}

fn console_node(c: &ConsoleCmd) -> Node<'_> {
    match c {
        ConsoleCmd::Add(limit) => Node::explicit(0, Node::integer(*limit)),
        ConsoleCmd::Subscribe(since) => Node::explicit(
            2,
            match since {
                SinceCount::Since(t) => Node::explicit(0, Node::time(*t)),
                SinceCount::Count(n) => Node::explicit(1, Node::integer(*n)),
            },
        ),
        ConsoleCmd::ListInactive => Node::explicit(3, Node::null()),
    }
}

fn read_console(r: &mut Reader<'_>) -> DecodeResult<ConsoleCmd> {
    r.choice("console command", |n, r| match n {
        0 => r.integer("console add").map(ConsoleCmd::Add),
        1 => Err(removed("console subscribe with UTCTime [1]")),
        2 => r
            .choice("console subscribe", |n, r| match n {
                0 => r.time("console since").map(SinceCount::Since),
                1 => r.integer("console count").map(SinceCount::Count),
                _ => Err(unknown_alternative("console subscribe", n)),
            })
            .map(ConsoleCmd::Subscribe),
        3 => r
            .null("console list-inactive")
            .map(|()| ConsoleCmd::ListInactive),
        _ => Err(unknown_alternative("console command", n)),
    })
}

fn stats_cmd_node(c: &StatsCmd) -> Node<'_> {
    match c {
        StatsCmd::Add {
            vmmdev,
            pid,
            network,
        } => Node::explicit(
            0,
            Node::seq(vec![
                Node::utf8(vmmdev),
                Node::integer(*pid),
                Node::seq(
                    network
                        .iter()
                        .map(|(bridge, tap)| Node::seq(vec![Node::utf8(bridge), Node::utf8(tap)]))
                        .collect(),
                ),
            ]),
        ),
        StatsCmd::Remove => Node::explicit(1, Node::null()),
        StatsCmd::Subscribe => Node::explicit(2, Node::null()),
        StatsCmd::Initial => Node::explicit(3, Node::null()),
    }
}

fn read_stats_cmd(r: &mut Reader<'_>) -> DecodeResult<StatsCmd> {
    r.choice("statistics command", |n, r| match n {
        0 => r.sequence("statistics add", |r| {
            // 2.7.2 starts with the vmmdev string; 2.8 presumably dropped it
            // and starts with the pid (§23.3.3).
            let vmmdev = if r.peek_tag() == Some(UTF8_STRING) {
                r.utf8("statistics vmmdev")?
            } else {
                String::new()
            };
            let pid = r.integer("statistics pid")?;
            let network = r.list_of(SEQUENCE, "statistics network", |r| {
                r.sequence("statistics interface", |r| {
                    Ok((r.utf8("statistics bridge")?, r.utf8("statistics tap")?))
                })
            })?;
            Ok(StatsCmd::Add {
                vmmdev,
                pid,
                network,
            })
        }),
        1 => r.null("statistics remove").map(|()| StatsCmd::Remove),
        2 => r.null("statistics subscribe").map(|()| StatsCmd::Subscribe),
        3 => r.null("statistics initial").map(|()| StatsCmd::Initial),
        _ => Err(unknown_alternative("statistics command", n)),
    })
}

fn unikernel_cmd_node(c: &UnikernelCmd) -> Node<'_> {
    match c {
        UnikernelCmd::Info(InfoVersion::Old4) => Node::explicit(15, Node::null()),
        UnikernelCmd::Info(InfoVersion::Old5) => Node::explicit(18, Node::null()),
        UnikernelCmd::Info(InfoVersion::Current) => Node::explicit(19, Node::null()),
        UnikernelCmd::Create(config) => Node::explicit(20, config_node(config)),
        UnikernelCmd::ForceCreate(config) => Node::explicit(21, config_node(config)),
        UnikernelCmd::Destroy => Node::explicit(3, Node::null()),
        UnikernelCmd::Get(level) => Node::explicit(11, Node::integer(*level)),
        UnikernelCmd::Status => Node::explicit(22, Node::null()),
        UnikernelCmd::Restart(args) => Node::explicit(
            14,
            match args {
                None => Node::explicit(0, Node::null()),
                Some(args) => Node::explicit(3, args_node(args)),
            },
        ),
    }
}

fn read_unikernel_cmd(r: &mut Reader<'_>) -> DecodeResult<UnikernelCmd> {
    r.choice("unikernel command", |n, r| match n {
        0 => Err(removed("unikernel info v1 [0]")),
        1 | 2 => Err(removed("unikernel create with a V1 configuration [1]/[2]")),
        3 => r.null("unikernel destroy").map(|()| UnikernelCmd::Destroy),
        4 | 5 => Err(removed("unikernel create with a V2 configuration [4]/[5]")),
        6 => Err(removed("unikernel get-old [6]")),
        7 => Err(removed("unikernel info v2 [7]")),
        8 => Err(removed("unikernel get v2 [8]")),
        9 => read_config(r, ConfigLayout::V3).map(UnikernelCmd::Create),
        10 => read_config(r, ConfigLayout::V3).map(UnikernelCmd::ForceCreate),
        11 => r.integer("unikernel get").map(UnikernelCmd::Get),
        12 => Err(removed("unikernel restart-old [12]")),
        13 => Err(removed("unikernel info-old3 [13]")),
        14 => r
            .choice("unikernel restart", |n, r| match n {
                0 => r.null("unikernel restart").map(|()| None),
                1 => read_args(r, ArgsLayout::V0).map(Some),
                2 => read_args(r, ArgsLayout::V1).map(Some),
                3 => read_args(r, ArgsLayout::Current).map(Some),
                _ => Err(unknown_alternative("unikernel restart", n)),
            })
            .map(UnikernelCmd::Restart),
        15 => r
            .null("unikernel info-old4")
            .map(|()| UnikernelCmd::Info(InfoVersion::Old4)),
        16 => read_config(r, ConfigLayout::V4).map(UnikernelCmd::Create),
        17 => read_config(r, ConfigLayout::V4).map(UnikernelCmd::ForceCreate),
        18 => r
            .null("unikernel info-old5")
            .map(|()| UnikernelCmd::Info(InfoVersion::Old5)),
        19 => r
            .null("unikernel info")
            .map(|()| UnikernelCmd::Info(InfoVersion::Current)),
        20 => read_config(r, ConfigLayout::Current).map(UnikernelCmd::Create),
        21 => read_config(r, ConfigLayout::Current).map(UnikernelCmd::ForceCreate),
        22 => r.null("unikernel status").map(|()| UnikernelCmd::Status),
        _ => Err(unknown_alternative("unikernel command", n)),
    })
}

fn policy_cmd_node(c: &PolicyCmd) -> Node<'_> {
    match c {
        PolicyCmd::Info => Node::explicit(0, Node::null()),
        PolicyCmd::Add(p) => Node::explicit(1, policy_node(p)),
        PolicyCmd::Remove => Node::explicit(2, Node::null()),
    }
}

fn read_policy_cmd(r: &mut Reader<'_>) -> DecodeResult<PolicyCmd> {
    r.choice("policy command", |n, r| match n {
        0 => r.null("policy info").map(|()| PolicyCmd::Info),
        1 => read_policy(r).map(PolicyCmd::Add),
        2 => r.null("policy remove").map(|()| PolicyCmd::Remove),
        _ => Err(unknown_alternative("policy command", n)),
    })
}

fn block_cmd_node(c: &BlockCmd) -> Node<'_> {
    match c {
        BlockCmd::Info => Node::explicit(0, Node::null()),
        BlockCmd::Add(size) => Node::explicit(1, Node::integer(*size)),
        BlockCmd::Remove => Node::explicit(2, Node::null()),
        BlockCmd::AddOld {
            size,
            compressed,
            data,
        } => {
            let mut children = vec![Node::integer(*size), Node::boolean(*compressed)];
            children.extend(data.as_deref().map(Node::octets));
            Node::explicit(3, Node::seq(children))
        }
        BlockCmd::SetOld { compressed, data } => Node::explicit(
            4,
            Node::seq(vec![Node::boolean(*compressed), Node::octets(data)]),
        ),
        BlockCmd::DumpOld(level) => Node::explicit(5, Node::integer(*level)),
        BlockCmd::Dump(level) => Node::explicit(6, Node::integer(*level)),
        BlockCmd::Set(compressed) => Node::explicit(7, Node::boolean(*compressed)),
    }
}

fn read_block_cmd(r: &mut Reader<'_>) -> DecodeResult<BlockCmd> {
    r.choice("block command", |n, r| match n {
        0 => r.null("block info").map(|()| BlockCmd::Info),
        1 => r.integer("block add size").map(BlockCmd::Add),
        2 => r.null("block remove").map(|()| BlockCmd::Remove),
        3 => r.sequence("block add-old", |r| {
            let size = r.integer("block add-old size")?;
            let compressed = r.boolean("block add-old compressed")?;
            let data = if r.is_empty() {
                None
            } else {
                Some(r.octets("block add-old data")?.to_vec())
            };
            Ok(BlockCmd::AddOld {
                size,
                compressed,
                data,
            })
        }),
        4 => r.sequence("block set-old", |r| {
            let compressed = r.boolean("block set-old compressed")?;
            let data = r.octets("block set-old data")?.to_vec();
            Ok(BlockCmd::SetOld { compressed, data })
        }),
        5 => r.integer("block dump-old level").map(BlockCmd::DumpOld),
        6 => r.integer("block dump level").map(BlockCmd::Dump),
        7 => r.boolean("block set compressed").map(BlockCmd::Set),
        _ => Err(unknown_alternative("block command", n)),
    })
}

// -------------------------------------------------------------- replies

fn named_infos<'a>(
    items: &'a [(Name, UnikernelInfo)],
    layout: InfoLayout,
) -> Result<Node<'a>, EncodeError> {
    items
        .iter()
        .map(|(name, info)| {
            Ok(Node::seq(vec![
                name_node(name),
                info_node(name, info, layout)?,
            ]))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Node::seq)
}

fn read_named_infos(
    r: &mut Reader<'_>,
    layout: InfoLayout,
) -> DecodeResult<Vec<(Name, UnikernelInfo)>> {
    r.list_of(SEQUENCE, "unikernel info list", |r| {
        r.sequence("unikernel info entry", |r| {
            Ok((read_name(r, "unikernel name")?, read_info(r, layout)?))
        })
    })
}

fn image_node(compressed: bool, image: &[u8]) -> Node<'_> {
    Node::seq(vec![Node::boolean(compressed), Node::octets(image)])
}

fn read_image(r: &mut Reader<'_>, what: &'static str) -> DecodeResult<(bool, Vec<u8>)> {
    r.sequence(what, |r| {
        Ok((r.boolean("compressed")?, r.octets(what)?.to_vec()))
    })
}

fn success_node(s: &Success) -> Result<Node<'_>, EncodeError> {
    Ok(match s {
        Success::Empty => Node::explicit(0, Node::null()),
        Success::String(msg) => Node::explicit(1, Node::utf8(msg)),
        Success::Policies(items) => Node::explicit(
            2,
            Node::seq(
                items
                    .iter()
                    .map(|(n, p)| Node::seq(vec![name_node(n), policy_node(p)]))
                    .collect(),
            ),
        ),
        Success::BlockDevices(items) => Node::explicit(
            4,
            Node::seq(
                items
                    .iter()
                    .map(|(n, size, active)| {
                        Node::seq(vec![
                            name_node(n),
                            Node::integer(*size),
                            Node::boolean(*active),
                        ])
                    })
                    .collect(),
            ),
        ),
        Success::UnikernelImage { compressed, image } => {
            Node::explicit(6, image_node(*compressed, image))
        }
        Success::OldBlockImage { compressed, image } => {
            Node::explicit(7, image_node(*compressed, image))
        }
        Success::OldUnikernelInfo4(items) => {
            Node::explicit(9, named_infos(items, InfoLayout::Old4)?)
        }
        Success::BlockDeviceImage(compressed) => Node::explicit(10, Node::boolean(*compressed)),
        Success::OldUnikernelInfo5(items) => {
            Node::explicit(11, named_infos(items, InfoLayout::Old5)?)
        }
        Success::Consoles(names) => {
            Node::explicit(12, Node::seq(names.iter().map(name_node).collect()))
        }
        Success::UnikernelInfo(items) => {
            Node::explicit(13, named_infos(items, InfoLayout::Current)?)
        }
        Success::UnikernelStatus(items) => {
            Node::explicit(14, Node::seq(items.iter().map(status_node).collect()))
        }
    })
}

fn life_cycle_code(state: LifeCycle) -> i64 {
    match state {
        LifeCycle::Starting => 0,
        LifeCycle::Running => 1,
        LifeCycle::Waiting => 2,
        LifeCycle::Stopped => 3,
    }
}

fn status_node(s: &UnikernelStatus) -> Node<'_> {
    let mut fields = vec![
        name_node(&s.name),
        Node::integer(life_cycle_code(s.state)),
        Node::integer(s.restarts),
    ];
    if let Some(pid) = s.pid {
        fields.push(Node::explicit(0, Node::integer(pid)));
    }
    if let Some(at) = s.next_attempt {
        fields.push(Node::explicit(1, Node::time(at)));
    }
    Node::seq(fields)
}

fn read_status(r: &mut Reader<'_>) -> DecodeResult<UnikernelStatus> {
    r.sequence("unikernel status", |r| {
        let name = read_name(r, "unikernel status name")?;
        let state = match r.integer("unikernel state")? {
            0 => LifeCycle::Starting,
            1 => LifeCycle::Running,
            2 => LifeCycle::Waiting,
            3 => LifeCycle::Stopped,
            other => {
                return Err(DecodeError::Unsupported(format!(
                    "unknown unikernel state {other}"
                )))
            }
        };
        Ok(UnikernelStatus {
            name,
            state,
            restarts: r.integer("restart count")?,
            pid: r.optional(0, "process id", |r| r.integer("process id"))?,
            next_attempt: r.optional(1, "next attempt", |r| r.time("next attempt"))?,
        })
    })
}

fn read_success(r: &mut Reader<'_>) -> DecodeResult<Success> {
    r.choice("reply", |n, r| match n {
        0 => r.null("empty reply").map(|()| Success::Empty),
        1 => r.utf8("reply message").map(Success::String),
        2 => r
            .list_of(SEQUENCE, "policy list", |r| {
                r.sequence("policy entry", |r| {
                    Ok((read_name(r, "policy name")?, read_policy(r)?))
                })
            })
            .map(Success::Policies),
        3 => Err(removed("the reply with V2 unikernel configurations [3]")),
        4 => r
            .list_of(SEQUENCE, "block device list", |r| {
                r.sequence("block device entry", |r| {
                    Ok((
                        read_name(r, "block device name")?,
                        r.integer("block device size")?,
                        r.boolean("block device active")?,
                    ))
                })
            })
            .map(Success::BlockDevices),
        5 => Err(removed("the info v2 reply [5]")),
        6 => read_image(r, "unikernel image")
            .map(|(compressed, image)| Success::UnikernelImage { compressed, image }),
        7 => read_image(r, "block device image")
            .map(|(compressed, image)| Success::OldBlockImage { compressed, image }),
        8 => Err(removed("the info v3 reply [8]")),
        9 => read_named_infos(r, InfoLayout::Old4).map(Success::OldUnikernelInfo4),
        10 => r
            .boolean("block dump compressed")
            .map(Success::BlockDeviceImage),
        11 => read_named_infos(r, InfoLayout::Old5).map(Success::OldUnikernelInfo5),
        12 => r
            .list_of(SEQUENCE, "console list", |r| read_name(r, "console name"))
            .map(Success::Consoles),
        13 => read_named_infos(r, InfoLayout::Current).map(Success::UnikernelInfo),
        14 => r
            .list_of(SEQUENCE, "unikernel status list", read_status)
            .map(Success::UnikernelStatus),
        _ => Err(unknown_alternative("reply", n)),
    })
}

// ----------------------------------------------------------------- data

fn timeval_node<'a>(t: &Timeval) -> Node<'a> {
    Node::seq(vec![Node::int64(t.sec), Node::integer(t.usec)])
}

fn read_timeval(r: &mut Reader<'_>) -> DecodeResult<Timeval> {
    r.sequence("timeval", |r| {
        Ok(Timeval {
            sec: r.int64("seconds")?,
            usec: r.integer("microseconds")?,
        })
    })
}

fn rusage_node<'a>(u: &RUsage) -> Node<'a> {
    let mut children = vec![timeval_node(&u.utime), timeval_node(&u.stime)];
    children.extend(
        [
            u.maxrss, u.ixrss, u.idrss, u.isrss, u.minflt, u.majflt, u.nswap, u.inblock,
            u.outblock, u.msgsnd, u.msgrcv, u.nsignals, u.nvcsw, u.nivcsw,
        ]
        .into_iter()
        .map(Node::int64),
    );
    Node::seq(children)
}

fn read_rusage(r: &mut Reader<'_>) -> DecodeResult<RUsage> {
    r.sequence("resource usage", |r| {
        Ok(RUsage {
            utime: read_timeval(r)?,
            stime: read_timeval(r)?,
            maxrss: r.int64("maxrss")?,
            ixrss: r.int64("ixrss")?,
            idrss: r.int64("idrss")?,
            isrss: r.int64("isrss")?,
            minflt: r.int64("minflt")?,
            majflt: r.int64("majflt")?,
            nswap: r.int64("nswap")?,
            inblock: r.int64("inblock")?,
            outblock: r.int64("outblock")?,
            msgsnd: r.int64("msgsnd")?,
            msgrcv: r.int64("msgrcv")?,
            nsignals: r.int64("nsignals")?,
            nvcsw: r.int64("nvcsw")?,
            nivcsw: r.int64("nivcsw")?,
        })
    })
}

fn kinfo_node<'a>(k: &KinfoMem) -> Node<'a> {
    let mut children: Vec<Node<'a>> = [k.vsize, k.rss, k.tsize, k.dsize, k.ssize, k.runtime]
        .into_iter()
        .map(Node::int64)
        .collect();
    children.push(Node::integer(k.cow));
    children.push(timeval_node(&k.start));
    Node::implicit_seq(1, children)
}

fn read_kinfo(r: &mut Reader<'_>) -> DecodeResult<KinfoMem> {
    Ok(KinfoMem {
        vsize: r.int64("vsize")?,
        rss: r.int64("rss")?,
        tsize: r.int64("tsize")?,
        dsize: r.int64("dsize")?,
        ssize: r.int64("ssize")?,
        runtime: r.int64("runtime")?,
        cow: r.integer("cow")?,
        start: read_timeval(r)?,
    })
}

fn ifdata_node(i: &IfData) -> Node<'_> {
    let mut children = vec![Node::utf8(&i.bridge)];
    children.extend(
        [
            i.flags,
            i.send_length,
            i.max_send_length,
            i.send_drops,
            i.mtu,
        ]
        .into_iter()
        .map(|v| Node::integer(i64::from(v))),
    );
    children.extend(
        [
            i.baudrate,
            i.input_packets,
            i.input_errors,
            i.output_packets,
            i.output_errors,
            i.collisions,
            i.input_bytes,
            i.output_bytes,
            i.input_mcast,
            i.output_mcast,
            i.input_dropped,
            i.output_dropped,
        ]
        .into_iter()
        .map(Node::int64),
    );
    Node::seq(children)
}

/// An `int32` counter: an OCaml int truncated modulo 2^32 (§4.3).
fn read_int32(r: &mut Reader<'_>, what: &'static str) -> DecodeResult<i32> {
    // Truncation is upstream's Int32.of_int.
    r.integer(what).map(|v| v as i32)
}

fn read_ifdata(r: &mut Reader<'_>) -> DecodeResult<IfData> {
    r.sequence("interface data", |r| {
        Ok(IfData {
            bridge: r.utf8("interface name")?,
            flags: read_int32(r, "flags")?,
            send_length: read_int32(r, "send length")?,
            max_send_length: read_int32(r, "max send length")?,
            send_drops: read_int32(r, "send drops")?,
            mtu: read_int32(r, "mtu")?,
            baudrate: r.int64("baudrate")?,
            input_packets: r.int64("input packets")?,
            input_errors: r.int64("input errors")?,
            output_packets: r.int64("output packets")?,
            output_errors: r.int64("output errors")?,
            collisions: r.int64("collisions")?,
            input_bytes: r.int64("input bytes")?,
            output_bytes: r.int64("output bytes")?,
            input_mcast: r.int64("input multicast")?,
            output_mcast: r.int64("output multicast")?,
            input_dropped: r.int64("input dropped")?,
            output_dropped: r.int64("output dropped")?,
        })
    })
}

fn stats_node(s: &StatsData) -> Node<'_> {
    let mut children = vec![
        rusage_node(&s.rusage),
        Node::seq(s.ifdata.iter().map(ifdata_node).collect()),
    ];
    if let Some(vmm) = &s.vmm {
        children.push(Node::explicit(
            0,
            Node::seq(
                vmm.iter()
                    .map(|(k, v)| Node::seq(vec![Node::utf8(k), Node::int64(*v)]))
                    .collect(),
            ),
        ));
    }
    children.extend(s.kinfo_mem.as_ref().map(kinfo_node));
    Node::seq(children)
}

fn read_stats(r: &mut Reader<'_>) -> DecodeResult<StatsData> {
    r.sequence("statistics", |r| {
        let rusage = read_rusage(r)?;
        let ifdata = r.list_of(SEQUENCE, "interface data list", read_ifdata)?;
        let vmm = r.optional(0, "bhyve statistics", |r| {
            r.list_of(SEQUENCE, "bhyve statistics", |r| {
                r.sequence("bhyve counter", |r| {
                    Ok((r.utf8("bhyve counter name")?, r.int64("bhyve counter")?))
                })
            })
        })?;
        // [1] IMPLICIT: the tag replaces the SEQUENCE's, so `explicit`
        // reads the fields directly.
        let kinfo_mem = r.optional(1, "kinfo memory", read_kinfo)?;
        Ok(StatsData {
            rusage,
            ifdata,
            vmm,
            kinfo_mem,
        })
    })
}

fn data_node(d: &Data) -> Node<'_> {
    match d {
        Data::Stats(s) => Node::explicit(1, stats_node(s)),
        Data::Console { timestamp, line } => Node::explicit(
            3,
            Node::seq(vec![Node::time(*timestamp), Node::utf8_bytes(line)]),
        ),
        Data::BlockChunk(chunk) => Node::explicit(4, Node::explicit(0, Node::octets(chunk))),
        Data::BlockEof => Node::explicit(4, Node::explicit(1, Node::null())),
    }
}

fn read_data(r: &mut Reader<'_>) -> DecodeResult<Data> {
    r.choice("data", |n, r| match n {
        0 => Err(removed("console data with UTCTime [0]")),
        1 => read_stats(r).map(|s| Data::Stats(Box::new(s))),
        2 => Err(removed("log data [2]")),
        3 => r.sequence("console data", |r| {
            let timestamp = r.time("console timestamp")?;
            let line = r.utf8_bytes("console line")?.to_vec();
            Ok(Data::Console { timestamp, line })
        }),
        4 => r.choice("block data", |n, r| match n {
            0 => r
                .octets("block chunk")
                .map(|c| Data::BlockChunk(c.to_vec())),
            1 => r.null("block end").map(|()| Data::BlockEof),
            _ => Err(unknown_alternative("block data", n)),
        }),
        _ => Err(unknown_alternative("data", n)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        BlockInfo, BlockSpec, FailBehaviour, NetInfo, NetSpec, Policy, Timestamp, Typ,
        UnikernelArguments, UnikernelConfig,
    };

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn header_node<'a>(name: &'a str) -> Node<'a> {
        Node::seq(vec![Node::integer(5), Node::int64(0), Node::utf8(name)])
    }

    /// A message with a root header around `payload`.
    fn message(payload: Node<'_>) -> Vec<u8> {
        Node::seq(vec![header_node(":"), payload]).to_vec()
    }

    /// A message whose payload is command `[n]` around `inner`.
    fn command(n: u8, inner: Node<'_>) -> Vec<u8> {
        message(Node::explicit(0, Node::explicit(n, inner)))
    }

    fn unikernel(n: u8, inner: Node<'_>) -> Vec<u8> {
        command(3, Node::explicit(n, inner))
    }

    fn payload(bytes: &[u8]) -> Payload {
        decode_wire(bytes).unwrap().payload
    }

    fn wire(payload: Payload) -> Wire {
        Wire {
            header: Header::new(Name::root()),
            payload,
        }
    }

    #[test]
    fn status_extension_round_trips() {
        let request = wire(Payload::Command(Command::Unikernel(UnikernelCmd::Status)));
        let bytes = encode_wire(&request).unwrap();
        assert_eq!(bytes, unikernel(22, Node::null()));
        assert_eq!(decode_wire(&bytes).unwrap(), request);
        let at = Timestamp::parse_rfc3339("2026-11-26T07:00:00.5Z").unwrap();
        let reply = wire(Payload::Reply(Success::UnikernelStatus(vec![
            UnikernelStatus {
                name: Name::parse("a:b").unwrap(),
                state: LifeCycle::Running,
                restarts: 0,
                pid: Some(4242),
                next_attempt: None,
            },
            UnikernelStatus {
                name: Name::parse("c").unwrap(),
                state: LifeCycle::Waiting,
                restarts: 7,
                pid: None,
                next_attempt: Some(at),
            },
        ])));
        let bytes = encode_wire(&reply).unwrap();
        assert_eq!(decode_wire(&bytes).unwrap(), reply);
        // An unknown state is a decode error, not a panic.
        let bad = message(Node::explicit(
            1,
            Node::explicit(
                14,
                Node::seq(vec![Node::seq(vec![
                    Node::utf8(":x"),
                    Node::integer(9),
                    Node::integer(0),
                ])]),
            ),
        ));
        assert!(decode_wire(&bad).is_err());
    }

    fn args() -> UnikernelArguments {
        UnikernelArguments {
            fail_behaviour: FailBehaviour::Restart(vec![1]),
            startup: Some(3),
            add_name: false,
            cpuids: vec![4],
            memory: 64,
            blocks: vec![BlockSpec {
                name: "disk".into(),
                device: None,
                sector_size: Some(4096),
            }],
            bridges: vec![NetSpec {
                netif: "service".into(),
                bridge: Some("br0".into()),
                mac: Some([2, 0, 0, 0, 0, 1]),
            }],
            argv: Some(vec!["-l".into(), "*:debug".into()]),
            cpus: 1,
            linux_boot_partition: None,
        }
    }

    fn config() -> UnikernelConfig {
        UnikernelConfig {
            typ: Typ::Solo5,
            compressed: true,
            image: vec![1, 2, 3],
            args: args(),
        }
    }

    /// `[0] SET OF BlockSpec` and `[1] SET OF NetSpec` of `args()`.
    fn v3_devices() -> Vec<Node<'static>> {
        vec![
            Node::explicit(
                0,
                Node::set_of(vec![Node::seq(vec![
                    Node::utf8("disk"),
                    Node::integer(4096),
                ])]),
            ),
            Node::explicit(
                1,
                Node::set_of(vec![Node::seq(vec![
                    Node::utf8("service"),
                    Node::utf8("br0"),
                    Node::octets(&[2, 0, 0, 0, 0, 1]),
                ])]),
            ),
            Node::explicit(2, Node::seq(vec![Node::utf8("-l"), Node::utf8("*:debug")])),
        ]
    }

    fn restart_on_1() -> Node<'static> {
        Node::explicit(1, Node::set_of(vec![Node::integer(1)]))
    }

    #[test]
    fn fixed_patterns() {
        // §5.6
        let root = unhex("30 10 02 01 05 04 08 00 00 00 00 00 00 00 00 0C 01 3A");
        assert_eq!(header_node(":").to_vec(), root);
        let failure = encode_wire(&wire(Payload::Failure("test".into()))).unwrap();
        assert_eq!(&failure[root.len() + 2..], unhex("A2 06 0C 04 74 65 73 74"));
        let eof = encode_wire(&wire(Payload::Data(Data::BlockEof))).unwrap();
        assert_eq!(&eof[root.len() + 2..], unhex("A3 06 A4 04 A1 02 05 00"));
        let quit = args_node(&UnikernelArguments {
            fail_behaviour: FailBehaviour::Quit,
            ..args()
        })
        .to_vec();
        assert_eq!(&quit[2..6], unhex("A0 02 05 00"));
        let all = args_node(&UnikernelArguments {
            fail_behaviour: FailBehaviour::Restart(vec![]),
            ..args()
        })
        .to_vec();
        assert_eq!(&all[2..6], unhex("A1 02 31 00"));
    }

    #[test]
    fn truncations_and_trailing_bytes() {
        let full = encode_wire(&wire(Payload::Command(Command::Unikernel(
            UnikernelCmd::Create(config()),
        ))))
        .unwrap();
        assert!(decode_wire(&full).is_ok());
        for len in 0..full.len() {
            assert!(
                decode_wire(&full[..len]).is_err(),
                "truncated to {len} bytes"
            );
        }
        let mut long = full.clone();
        long.push(0);
        assert_eq!(
            decode_wire(&long),
            Err(DecodeError::Trailing {
                what: "wire message"
            })
        );
        // Trailing bytes inside a constructed value.
        let inner = unikernel(19, Node::seq(vec![]));
        assert!(decode_wire(&inner).is_err());
    }

    #[test]
    fn header_rules() {
        let with_version = |v: i64| {
            Node::seq(vec![
                Node::seq(vec![Node::integer(v), Node::int64(0), Node::utf8(":")]),
                Node::explicit(2, Node::utf8("x")),
            ])
            .to_vec()
        };
        assert_eq!(
            decode_wire(&with_version(4)),
            Err(DecodeError::UnknownVersion(4))
        );
        assert_eq!(
            decode_wire(&with_version(3)),
            Err(DecodeError::UnknownVersion(3))
        );
        assert!(decode_wire(&with_version(5)).is_ok());

        let with_sequence = |seq: &[u8]| {
            Node::seq(vec![
                Node::seq(vec![Node::integer(5), Node::octets(seq), Node::utf8(":")]),
                Node::explicit(2, Node::utf8("x")),
            ])
            .to_vec()
        };
        assert_eq!(
            decode_wire(&with_sequence(&[0, 0, 0, 0, 0, 0, 1])),
            Err(DecodeError::ShortInt64 {
                what: "sequence number",
                len: 7
            })
        );
        assert!(decode_wire(&with_sequence(&[])).is_err());
        // Longer than 8 bytes: the first 8 count (§4.3).
        let long = decode_wire(&with_sequence(&[0, 0, 0, 0, 0, 0, 1, 2, 0xFF])).unwrap();
        assert_eq!(long.header.sequence, 258);

        for bad in ["", "a::b", "-a", "a b", "x:"] {
            let bytes = Node::seq(vec![header_node(bad), Node::explicit(2, Node::utf8("x"))]);
            let result = decode_wire(&bytes.to_vec());
            if bad == "x:" {
                assert_eq!(result.unwrap().header.name.to_string(), "x:");
            } else {
                assert!(
                    matches!(result, Err(DecodeError::BadName(_))),
                    "{bad:?}: {result:?}"
                );
            }
        }
        // Names are lower-cased by parsing.
        let upper = Node::seq(vec![
            header_node("FOO:Bar"),
            Node::explicit(2, Node::utf8("x")),
        ]);
        assert_eq!(
            decode_wire(&upper.to_vec())
                .unwrap()
                .header
                .name
                .to_string(),
            "foo:bar"
        );
    }

    #[test]
    fn removed_tags_are_errors() {
        let null = Node::null;
        let mut cases = vec![
            ("log command", command(2, null())),
            (
                "console subscribe UTCTime",
                command(0, Node::explicit(1, null())),
            ),
            (
                "success [3]",
                message(Node::explicit(1, Node::explicit(3, null()))),
            ),
            (
                "success [5]",
                message(Node::explicit(1, Node::explicit(5, null()))),
            ),
            (
                "success [8]",
                message(Node::explicit(1, Node::explicit(8, null()))),
            ),
            (
                "data [0]",
                message(Node::explicit(3, Node::explicit(0, null()))),
            ),
            (
                "data [2]",
                message(Node::explicit(3, Node::explicit(2, null()))),
            ),
        ];
        for n in [0, 1, 2, 4, 5, 6, 7, 8, 12, 13] {
            cases.push(("unikernel command", unikernel(n, null())));
        }
        for (what, bytes) in cases {
            let result = decode_wire(&bytes);
            let Err(DecodeError::Unsupported(msg)) = &result else {
                panic!("{what}: {result:?}")
            };
            assert!(msg.contains("legacy"), "{what}: {msg}");
        }
        // Tags that never existed.
        for bytes in [
            command(6, null()),
            unikernel(23, null()),
            message(Node::explicit(4, null())),
        ] {
            assert!(matches!(
                decode_wire(&bytes),
                Err(DecodeError::UnexpectedTag { .. })
            ));
        }
    }

    #[test]
    fn legacy_create_layouts() {
        let v3 = |tag: u8| {
            let mut fields = vec![
                Node::explicit(0, Node::null()),
                Node::boolean(true),
                Node::octets(&[1, 2, 3]),
                restart_on_1(),
                Node::integer(4),
                Node::integer(64),
            ];
            fields.extend(v3_devices());
            unikernel(tag, Node::seq(fields))
        };
        let legacy = UnikernelConfig {
            args: UnikernelArguments {
                startup: None,
                add_name: true,
                ..args()
            },
            ..config()
        };
        assert_eq!(
            payload(&v3(9)),
            Payload::Command(Command::Unikernel(UnikernelCmd::Create(legacy.clone())))
        );
        assert_eq!(
            payload(&v3(10)),
            Payload::Command(Command::Unikernel(UnikernelCmd::ForceCreate(legacy)))
        );

        let v4 = |tag: u8| {
            let mut fields = vec![
                Node::explicit(0, Node::null()),
                Node::boolean(true),
                Node::octets(&[1, 2, 3]),
                Node::integer(3),
                Node::boolean(false),
                restart_on_1(),
                Node::integer(4),
                Node::integer(64),
            ];
            fields.extend(v3_devices());
            unikernel(tag, Node::seq(fields))
        };
        assert_eq!(
            payload(&v4(16)),
            Payload::Command(Command::Unikernel(UnikernelCmd::Create(config())))
        );
        let forced = payload(&v4(17));
        assert_eq!(
            forced,
            Payload::Command(Command::Unikernel(UnikernelCmd::ForceCreate(config())))
        );
        // Re-encoding writes the current layout [21].
        let current = encode_wire(&wire(forced)).unwrap();
        assert_eq!(
            current[current.len() - config_node(&config()).encoded_len() - 2],
            0xB5
        );
        // V4 does not know `cpus [3]`.
        let mut fields = vec![
            Node::explicit(0, Node::null()),
            Node::boolean(true),
            Node::octets(&[]),
            Node::boolean(false),
            restart_on_1(),
            Node::integer(4),
            Node::integer(64),
            Node::explicit(3, Node::integer(1)),
        ];
        assert!(decode_wire(&unikernel(16, Node::seq(fields.clone()))).is_err());
        fields.pop();
        assert!(decode_wire(&unikernel(16, Node::seq(fields))).is_ok());
    }

    #[test]
    fn restart_layouts() {
        let restart =
            |n: u8, fields: Vec<Node<'static>>| unikernel(14, Node::explicit(n, Node::seq(fields)));
        let mut v0 = vec![restart_on_1(), Node::integer(4), Node::integer(64)];
        v0.extend(v3_devices());
        let expected = UnikernelArguments {
            startup: None,
            add_name: true,
            ..args()
        };
        assert_eq!(
            payload(&restart(1, v0)),
            Payload::Command(Command::Unikernel(UnikernelCmd::Restart(Some(expected))))
        );
        let mut v1 = vec![
            restart_on_1(),
            Node::integer(3),
            Node::boolean(false),
            Node::integer(4),
            Node::integer(64),
        ];
        v1.extend(v3_devices());
        assert_eq!(
            payload(&restart(2, v1)),
            Payload::Command(Command::Unikernel(UnikernelCmd::Restart(Some(args()))))
        );
        let keep = unikernel(14, Node::explicit(0, Node::null()));
        assert_eq!(
            payload(&keep),
            Payload::Command(Command::Unikernel(UnikernelCmd::Restart(None)))
        );
        // The current layout without `cpus [3]` defaults to 1 vCPU.
        let mut current = vec![
            restart_on_1(),
            Node::boolean(true),
            Node::set_of(vec![Node::integer(0), Node::integer(1)]),
            Node::integer(8),
        ];
        let Payload::Command(Command::Unikernel(UnikernelCmd::Restart(Some(a)))) =
            payload(&restart(3, current.clone()))
        else {
            panic!()
        };
        assert_eq!(
            (a.cpus, a.startup, a.add_name, a.argv),
            (1, None, true, None)
        );
        assert_eq!(a.cpuids, vec![0, 1]);
        current.push(Node::explicit(4, Node::utf8("/dev/sda1")));
        let Payload::Command(Command::Unikernel(UnikernelCmd::Restart(Some(a)))) =
            payload(&restart(3, current))
        else {
            panic!()
        };
        assert_eq!(a.linux_boot_partition.as_deref(), Some("/dev/sda1"));
    }

    fn info() -> UnikernelInfo {
        UnikernelInfo {
            typ: Typ::Solo5,
            startup: Some(7),
            fail_behaviour: FailBehaviour::Quit,
            cpuids: vec![1],
            memory: 32,
            digest: vec![0xAB; 32],
            blocks: vec![BlockInfo {
                unikernel_device: "disk".into(),
                host_device: "data".into(),
                sector_size: 512,
                block_size: 10,
            }],
            bridges: vec![NetInfo {
                unikernel_device: "service".into(),
                host_device: "br0".into(),
                mac: [0, 0x80, 0x41, 1, 2, 3],
            }],
            argv: Some(vec![]),
            started: Timestamp::from_unix_millis(1_735_689_600_123),
            cpus: 1,
            linux_boot_partition: None,
        }
    }

    #[test]
    fn old_info_replies() {
        let name = Name::parse("a:b").unwrap();
        let items = vec![(name.clone(), info())];
        // Old4 has no startup; both have one cpuid and no cpus field.
        let old4 = wire(Payload::Reply(Success::OldUnikernelInfo4(items.clone())));
        let decoded = decode_wire(&encode_wire(&old4).unwrap()).unwrap();
        let without_startup = UnikernelInfo {
            startup: None,
            ..info()
        };
        assert_eq!(
            decoded.payload,
            Payload::Reply(Success::OldUnikernelInfo4(vec![(
                name.clone(),
                without_startup
            )]))
        );
        let old5 = wire(Payload::Reply(Success::OldUnikernelInfo5(items)));
        assert_eq!(decode_wire(&encode_wire(&old5).unwrap()).unwrap(), old5);

        let multi = UnikernelInfo {
            cpuids: vec![0, 1],
            ..info()
        };
        for reply in [
            Success::OldUnikernelInfo4(vec![(name.clone(), multi.clone())]),
            Success::OldUnikernelInfo5(vec![(name.clone(), multi.clone())]),
            Success::OldUnikernelInfo5(vec![(
                name.clone(),
                UnikernelInfo {
                    cpuids: vec![],
                    ..info()
                },
            )]),
        ] {
            let err = encode_wire(&wire(Payload::Reply(reply))).unwrap_err();
            assert!(matches!(&err, EncodeError::OldInfoCpuids { name: n, .. } if *n == name));
            assert!(err.to_string().contains("a:b"), "{err}");
        }
        let current = wire(Payload::Reply(Success::UnikernelInfo(vec![(name, multi)])));
        assert_eq!(
            decode_wire(&encode_wire(&current).unwrap()).unwrap(),
            current
        );
    }

    #[test]
    fn info_defaults_and_mac_length() {
        let entry = |mac: &'static [u8], extra: Vec<Node<'static>>| {
            let mut fields = vec![
                Node::explicit(1, Node::null()),
                Node::explicit(0, Node::null()),
                Node::set_of(vec![]),
                Node::integer(1),
                Node::octets(b"alba-1"),
                Node::explicit(
                    1,
                    Node::set_of(vec![Node::seq(vec![
                        Node::utf8("n"),
                        Node::utf8("b"),
                        Node::octets(mac),
                    ])]),
                ),
            ];
            fields.extend(extra);
            message(Node::explicit(
                1,
                Node::explicit(
                    13,
                    Node::seq(vec![Node::seq(vec![Node::utf8("vm"), Node::seq(fields)])]),
                ),
            ))
        };
        let Payload::Reply(Success::UnikernelInfo(items)) = payload(&entry(&[1; 6], vec![])) else {
            panic!()
        };
        let i = &items[0].1;
        assert_eq!(
            (i.typ, i.started, i.cpus, i.argv.clone()),
            (Typ::Bhyve, Timestamp::EPOCH, 1, None)
        );
        let boot = entry(
            &[1; 6],
            vec![
                Node::explicit(4, Node::integer(2)),
                Node::explicit(5, Node::utf8("p")),
            ],
        );
        let Payload::Reply(Success::UnikernelInfo(items)) = payload(&boot) else {
            panic!()
        };
        assert_eq!(
            (items[0].1.cpus, items[0].1.linux_boot_partition.as_deref()),
            (2, Some("p"))
        );
        assert_eq!(
            decode_wire(&entry(&[1; 5], vec![])),
            Err(DecodeError::BadMac { len: 5 })
        );
        assert_eq!(
            decode_wire(&entry(&[1; 7], vec![])),
            Err(DecodeError::BadMac { len: 7 })
        );
    }

    #[test]
    fn legacy_block_commands_and_replies() {
        let block = |n: u8, inner: Node<'static>| command(5, Node::explicit(n, inner));
        let add_old = block(3, Node::seq(vec![Node::integer(10), Node::boolean(false)]));
        assert_eq!(
            payload(&add_old),
            Payload::Command(Command::Block(BlockCmd::AddOld {
                size: 10,
                compressed: false,
                data: None
            }))
        );
        let add_old_data = block(
            3,
            Node::seq(vec![
                Node::integer(10),
                Node::boolean(true),
                Node::octets(&[9, 9]),
            ]),
        );
        assert_eq!(
            payload(&add_old_data),
            Payload::Command(Command::Block(BlockCmd::AddOld {
                size: 10,
                compressed: true,
                data: Some(vec![9, 9])
            }))
        );
        let set_old = block(4, Node::seq(vec![Node::boolean(true), Node::octets(&[1])]));
        assert_eq!(
            payload(&set_old),
            Payload::Command(Command::Block(BlockCmd::SetOld {
                compressed: true,
                data: vec![1]
            }))
        );
        assert_eq!(
            payload(&block(5, Node::integer(9))),
            Payload::Command(Command::Block(BlockCmd::DumpOld(9)))
        );
        let image = message(Node::explicit(
            1,
            Node::explicit(
                7,
                Node::seq(vec![Node::boolean(false), Node::octets(&[5; 3])]),
            ),
        ));
        assert_eq!(
            payload(&image),
            Payload::Reply(Success::OldBlockImage {
                compressed: false,
                image: vec![5; 3]
            })
        );
        for bytes in [add_old, add_old_data, set_old, image] {
            assert_eq!(encode_wire(&decode_wire(&bytes).unwrap()).unwrap(), bytes);
        }
    }

    #[test]
    fn statistics_add_layouts() {
        // §23.3.3, certain for 2.7.2.
        let v272 = unhex(
            "30 36 30 13 02 01 05 04 08 00 00 00 00 00 00 00 00 0C 04 3A 66 6F 6F
             A0 1F A1 1D A0 1B 30 19 0C 00 02 02 04 D2
             30 11 30 0F 0C 07 73 65 72 76 69 63 65 0C 04 74 61 70 30",
        );
        let add = StatsCmd::Add {
            vmmdev: String::new(),
            pid: 1234,
            network: vec![("service".into(), "tap0".into())],
        };
        let expected = Wire {
            header: Header::new(Name::parse(":foo").unwrap()),
            payload: Payload::Command(Command::Stats(add)),
        };
        assert_eq!(decode_wire(&v272).unwrap(), expected);
        assert_eq!(encode_wire(&expected).unwrap(), v272);
        // The presumed 2.8 layout without vmmdev.
        let v28 = unhex(
            "30 34 30 13 02 01 05 04 08 00 00 00 00 00 00 00 00 0C 04 3A 66 6F 6F
             A0 1D A1 1B A0 19 30 17 02 02 04 D2
             30 11 30 0F 0C 07 73 65 72 76 69 63 65 0C 04 74 61 70 30",
        );
        assert_eq!(decode_wire(&v28).unwrap(), expected);
        // A vmmdev is kept.
        let freebsd = command(
            1,
            Node::explicit(
                0,
                Node::seq(vec![
                    Node::utf8("solo5-7"),
                    Node::integer(7),
                    Node::seq(vec![]),
                ]),
            ),
        );
        let Payload::Command(Command::Stats(StatsCmd::Add {
            vmmdev,
            pid,
            network,
        })) = payload(&freebsd)
        else {
            panic!()
        };
        assert_eq!((vmmdev.as_str(), pid, network.len()), ("solo5-7", 7, 0));
    }

    fn sample(vmm: Option<Vec<(String, i64)>>, kinfo: bool) -> StatsData {
        StatsData {
            rusage: RUsage {
                maxrss: 5,
                utime: Timeval { sec: 1, usec: 2 },
                ..RUsage::default()
            },
            ifdata: vec![IfData {
                bridge: "service".into(),
                flags: -1,
                mtu: 1500,
                output_dropped: i64::MIN,
                ..IfData::default()
            }],
            vmm,
            kinfo_mem: kinfo.then_some(KinfoMem {
                rss: 9,
                cow: 3,
                ..KinfoMem::default()
            }),
        }
    }

    #[test]
    fn statistics_data() {
        for s in [
            sample(None, false),
            sample(None, true),
            sample(Some(vec![("vcpu0 exits".into(), 7)]), true),
            sample(Some(vec![]), false),
        ] {
            let w = wire(Payload::Data(Data::Stats(Box::new(s))));
            let bytes = encode_wire(&w).unwrap();
            assert_eq!(decode_wire(&bytes).unwrap(), w);
        }
        // Without vmm, kinfo-mem is an A1 right after the interface list.
        let bytes = encode_wire(&wire(Payload::Data(Data::Stats(Box::new(sample(
            None, true,
        ))))))
        .unwrap();
        let kinfo = kinfo_node(&sample(None, true).kinfo_mem.unwrap()).to_vec();
        assert_eq!(kinfo[0], 0xA1);
        assert!(bytes.ends_with(&kinfo));
    }

    #[test]
    fn int32_counters_truncate() {
        let mut fields = vec![Node::utf8("tap0"), Node::integer((1 << 32) + 5)];
        fields.extend([
            Node::integer(-1),
            Node::integer(0x8000_0000),
            Node::integer(0),
            Node::integer(0),
        ]);
        fields.extend((0..12).map(Node::int64));
        let stats = Node::seq(vec![
            rusage_node(&RUsage::default()),
            Node::seq(vec![Node::seq(fields)]),
        ]);
        let Payload::Data(Data::Stats(s)) =
            payload(&message(Node::explicit(3, Node::explicit(1, stats))))
        else {
            panic!()
        };
        let i = &s.ifdata[0];
        assert_eq!(
            (i.flags, i.send_length, i.max_send_length),
            (5, -1, i32::MIN)
        );
        assert_eq!(i.output_dropped, 11);
    }

    #[test]
    fn console_and_policy_commands() {
        for cmd in [
            ConsoleCmd::Add(3),
            ConsoleCmd::ListInactive,
            ConsoleCmd::Subscribe(SinceCount::Since(Timestamp::from_unix_millis(1_000_500))),
            ConsoleCmd::Subscribe(SinceCount::Count(-1)),
        ] {
            let w = wire(Payload::Command(Command::Console(cmd)));
            assert_eq!(decode_wire(&encode_wire(&w).unwrap()).unwrap(), w);
        }
        // Duplicate cpuids and bridges collapse; bridges come back sorted.
        let policy = Node::seq(vec![
            Node::seq(vec![Node::integer(1), Node::integer(0), Node::integer(1)]),
            Node::integer(2),
            Node::integer(3),
            Node::seq(vec![Node::utf8("b"), Node::utf8("a"), Node::utf8("b")]),
        ]);
        let Payload::Command(Command::Policy(PolicyCmd::Add(p))) =
            payload(&command(4, Node::explicit(1, policy)))
        else {
            panic!()
        };
        assert_eq!(
            p,
            Policy {
                unikernels: 2,
                cpuids: [0, 1].into(),
                memory: 3,
                block: None,
                bridges: ["a".to_string(), "b".to_string()].into(),
            }
        );
        // Console data lines are raw bytes, not necessarily UTF-8.
        let line = wire(Payload::Data(Data::Console {
            timestamp: Timestamp::EPOCH,
            line: vec![0xFF, 0xFE, b'x'],
        }));
        assert_eq!(decode_wire(&encode_wire(&line).unwrap()).unwrap(), line);
    }
}
