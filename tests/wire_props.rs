//! Property tests of the codecs: every value survives an encode/decode
//! round trip (SET OF lists come back in sorted-encoding order, §4.1), and
//! no input — random, truncated or bit-flipped — makes a decoder panic.

use std::collections::BTreeSet;

use albatross::model::{
    BlockInfo, BlockSpec, FailBehaviour, Label, Name, NetInfo, NetSpec, Path, Policy, Timestamp,
    Typ, UnikernelArguments, UnikernelConfig, UnikernelInfo,
};
use albatross::wire::der::{Node, OCAML_INT_MAX, OCAML_INT_MIN};
use albatross::wire::state::{decode_state, encode_state, StateLayout};
use albatross::wire::{
    decode_cert_command, decode_wire, encode_cert_command, encode_wire, BlockCmd, CertCommand,
    Command, ConsoleCmd, Data, Header, IfData, InfoVersion, KinfoMem, Payload, PolicyCmd, RUsage,
    SinceCount, StatsCmd, StatsData, Success, Timeval, UnikernelCmd, Wire,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

// ------------------------------------------------------------ strategies

fn int() -> impl Strategy<Value = i64> {
    prop_oneof![
        -300i64..300,
        OCAML_INT_MIN..=OCAML_INT_MAX,
        Just(OCAML_INT_MIN),
        Just(OCAML_INT_MAX)
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z0-9:.-]{0,12}", "\\PC{0,6}"]
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..40)
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    // Years 0000 to 9999, the range GeneralizedTime can express.
    (-62_167_219_200_000i64..=253_402_300_799_999).prop_map(Timestamp::from_unix_millis)
}

fn label() -> impl Strategy<Value = Label> {
    "[a-z0-9.][a-z0-9.-]{0,8}".prop_map(|s| Label::parse(&s).unwrap())
}

fn path() -> impl Strategy<Value = Path> {
    vec(label(), 0..4).prop_map(Path::from_labels)
}

fn name() -> impl Strategy<Value = Name> {
    (path(), option::of(label())).prop_map(|(p, l)| match l {
        Some(l) => Name::new(p, l),
        None => Name::of_path(p),
    })
}

fn unikernel_name() -> impl Strategy<Value = Name> {
    (path(), label()).prop_map(|(p, l)| Name::new(p, l))
}

fn typ() -> impl Strategy<Value = Typ> {
    prop_oneof![Just(Typ::Solo5), Just(Typ::Bhyve)]
}

fn fail_behaviour() -> impl Strategy<Value = FailBehaviour> {
    prop_oneof![
        Just(FailBehaviour::Quit),
        vec(int(), 0..4).prop_map(FailBehaviour::Restart)
    ]
}

fn block_spec() -> BoxedStrategy<BlockSpec> {
    (text(), option::of(text()), option::of(int()))
        .prop_map(|(name, device, sector_size)| BlockSpec {
            name,
            device,
            sector_size,
        })
        .boxed()
}

fn net_spec() -> BoxedStrategy<NetSpec> {
    (text(), option::of(text()), option::of(any::<[u8; 6]>()))
        .prop_map(|(netif, bridge, mac)| NetSpec { netif, bridge, mac })
        .boxed()
}

fn args() -> BoxedStrategy<UnikernelArguments> {
    (
        (
            fail_behaviour(),
            option::of(int()),
            any::<bool>(),
            vec(int(), 0..4),
            int(),
        ),
        (
            vec(block_spec(), 0..3),
            vec(net_spec(), 0..3),
            option::of(vec(text(), 0..3)),
            int(),
            option::of(text()),
        ),
    )
        .prop_map(
            |(
                (fail_behaviour, startup, add_name, cpuids, memory),
                (blocks, bridges, argv, cpus, linux_boot_partition),
            )| UnikernelArguments {
                fail_behaviour,
                startup,
                add_name,
                cpuids,
                memory,
                blocks,
                bridges,
                argv,
                cpus,
                linux_boot_partition,
            },
        )
        .boxed()
}

fn config() -> BoxedStrategy<UnikernelConfig> {
    (typ(), any::<bool>(), bytes(), args())
        .prop_map(|(typ, compressed, image, args)| UnikernelConfig {
            typ,
            compressed,
            image,
            args,
        })
        .boxed()
}

fn policy() -> BoxedStrategy<Policy> {
    (
        int(),
        vec(int(), 0..4),
        int(),
        option::of(int()),
        vec(text(), 0..4),
    )
        .prop_map(|(unikernels, cpuids, memory, block, bridges)| Policy {
            unikernels,
            cpuids: cpuids.into_iter().collect(),
            memory,
            block,
            bridges: bridges.into_iter().collect::<BTreeSet<_>>(),
        })
        .boxed()
}

fn block_info() -> BoxedStrategy<BlockInfo> {
    (text(), text(), int(), int())
        .prop_map(|(u, h, s, b)| BlockInfo {
            unikernel_device: u,
            host_device: h,
            sector_size: s,
            block_size: b,
        })
        .boxed()
}

fn net_info() -> BoxedStrategy<NetInfo> {
    (text(), text(), any::<[u8; 6]>())
        .prop_map(|(u, h, mac)| NetInfo {
            unikernel_device: u,
            host_device: h,
            mac,
        })
        .boxed()
}

/// Info records; `single_cpu` for the old layouts, which hold one cpuid.
fn info(single_cpu: bool) -> BoxedStrategy<UnikernelInfo> {
    let cpuids = if single_cpu {
        vec(int(), 1..=1)
    } else {
        vec(int(), 0..4)
    };
    (
        (
            typ(),
            option::of(int()),
            fail_behaviour(),
            cpuids,
            int(),
            bytes(),
        ),
        (
            vec(block_info(), 0..3),
            vec(net_info(), 0..3),
            option::of(vec(text(), 0..3)),
            timestamp(),
            int(),
            option::of(text()),
        ),
    )
        .prop_map(
            |(
                (typ, startup, fail_behaviour, cpuids, memory, digest),
                (blocks, bridges, argv, started, cpus, linux_boot_partition),
            )| UnikernelInfo {
                typ,
                startup,
                fail_behaviour,
                cpuids,
                memory,
                digest,
                blocks,
                bridges,
                argv,
                started,
                cpus,
                linux_boot_partition,
            },
        )
        .boxed()
}

fn console_cmd() -> BoxedStrategy<ConsoleCmd> {
    prop_oneof![
        int().prop_map(ConsoleCmd::Add),
        timestamp().prop_map(|t| ConsoleCmd::Subscribe(SinceCount::Since(t))),
        int().prop_map(|n| ConsoleCmd::Subscribe(SinceCount::Count(n))),
        Just(ConsoleCmd::ListInactive),
    ]
    .boxed()
}

fn stats_cmd() -> BoxedStrategy<StatsCmd> {
    prop_oneof![
        (text(), int(), vec((text(), text()), 0..3)).prop_map(|(vmmdev, pid, network)| {
            StatsCmd::Add {
                vmmdev,
                pid,
                network,
            }
        }),
        Just(StatsCmd::Remove),
        Just(StatsCmd::Subscribe),
        Just(StatsCmd::Initial),
    ]
    .boxed()
}

fn unikernel_cmd() -> BoxedStrategy<UnikernelCmd> {
    prop_oneof![
        Just(UnikernelCmd::Info(InfoVersion::Old4)),
        Just(UnikernelCmd::Info(InfoVersion::Old5)),
        Just(UnikernelCmd::Info(InfoVersion::Current)),
        config().prop_map(UnikernelCmd::Create),
        config().prop_map(UnikernelCmd::ForceCreate),
        Just(UnikernelCmd::Destroy),
        int().prop_map(UnikernelCmd::Get),
        option::of(args()).prop_map(UnikernelCmd::Restart),
    ]
    .boxed()
}

fn policy_cmd() -> BoxedStrategy<PolicyCmd> {
    prop_oneof![
        Just(PolicyCmd::Info),
        policy().prop_map(PolicyCmd::Add),
        Just(PolicyCmd::Remove)
    ]
    .boxed()
}

fn block_cmd() -> BoxedStrategy<BlockCmd> {
    prop_oneof![
        Just(BlockCmd::Info),
        int().prop_map(BlockCmd::Add),
        Just(BlockCmd::Remove),
        (int(), any::<bool>(), option::of(bytes())).prop_map(|(size, compressed, data)| {
            BlockCmd::AddOld {
                size,
                compressed,
                data,
            }
        }),
        (any::<bool>(), bytes())
            .prop_map(|(compressed, data)| BlockCmd::SetOld { compressed, data }),
        int().prop_map(BlockCmd::DumpOld),
        int().prop_map(BlockCmd::Dump),
        any::<bool>().prop_map(BlockCmd::Set),
    ]
    .boxed()
}

fn command() -> BoxedStrategy<Command> {
    prop_oneof![
        console_cmd().prop_map(Command::Console),
        stats_cmd().prop_map(Command::Stats),
        unikernel_cmd().prop_map(Command::Unikernel),
        policy_cmd().prop_map(Command::Policy),
        block_cmd().prop_map(Command::Block),
    ]
    .boxed()
}

fn named_infos(single_cpu: bool) -> BoxedStrategy<Vec<(Name, UnikernelInfo)>> {
    vec((name(), info(single_cpu)), 0..3).boxed()
}

fn success() -> BoxedStrategy<Success> {
    prop_oneof![
        Just(Success::Empty),
        text().prop_map(Success::String),
        vec((name(), policy()), 0..3).prop_map(Success::Policies),
        vec((name(), int(), any::<bool>()), 0..3).prop_map(Success::BlockDevices),
        (any::<bool>(), bytes())
            .prop_map(|(compressed, image)| Success::UnikernelImage { compressed, image }),
        (any::<bool>(), bytes())
            .prop_map(|(compressed, image)| Success::OldBlockImage { compressed, image }),
        named_infos(true).prop_map(Success::OldUnikernelInfo4),
        any::<bool>().prop_map(Success::BlockDeviceImage),
        named_infos(true).prop_map(Success::OldUnikernelInfo5),
        vec(name(), 0..4).prop_map(Success::Consoles),
        named_infos(false).prop_map(Success::UnikernelInfo),
    ]
    .boxed()
}

fn timeval() -> impl Strategy<Value = Timeval> {
    (any::<i64>(), int()).prop_map(|(sec, usec)| Timeval { sec, usec })
}

fn rusage() -> BoxedStrategy<RUsage> {
    ((timeval(), timeval()), vec(any::<i64>(), 14))
        .prop_map(|((utime, stime), v)| RUsage {
            utime,
            stime,
            maxrss: v[0],
            ixrss: v[1],
            idrss: v[2],
            isrss: v[3],
            minflt: v[4],
            majflt: v[5],
            nswap: v[6],
            inblock: v[7],
            outblock: v[8],
            msgsnd: v[9],
            msgrcv: v[10],
            nsignals: v[11],
            nvcsw: v[12],
            nivcsw: v[13],
        })
        .boxed()
}

fn kinfo() -> BoxedStrategy<KinfoMem> {
    (vec(any::<i64>(), 6), int(), timeval())
        .prop_map(|(v, cow, start)| KinfoMem {
            vsize: v[0],
            rss: v[1],
            tsize: v[2],
            dsize: v[3],
            ssize: v[4],
            runtime: v[5],
            cow,
            start,
        })
        .boxed()
}

fn ifdata() -> BoxedStrategy<IfData> {
    (text(), vec(any::<i32>(), 5), vec(any::<i64>(), 12))
        .prop_map(|(bridge, s, l)| IfData {
            bridge,
            flags: s[0],
            send_length: s[1],
            max_send_length: s[2],
            send_drops: s[3],
            mtu: s[4],
            baudrate: l[0],
            input_packets: l[1],
            input_errors: l[2],
            output_packets: l[3],
            output_errors: l[4],
            collisions: l[5],
            input_bytes: l[6],
            output_bytes: l[7],
            input_mcast: l[8],
            output_mcast: l[9],
            input_dropped: l[10],
            output_dropped: l[11],
        })
        .boxed()
}

fn stats() -> BoxedStrategy<StatsData> {
    (
        rusage(),
        vec(ifdata(), 0..3),
        option::of(vec((text(), any::<i64>()), 0..3)),
        option::of(kinfo()),
    )
        .prop_map(|(rusage, ifdata, vmm, kinfo_mem)| StatsData {
            rusage,
            ifdata,
            vmm,
            kinfo_mem,
        })
        .boxed()
}

fn data() -> BoxedStrategy<Data> {
    prop_oneof![
        stats().prop_map(|s| Data::Stats(Box::new(s))),
        (timestamp(), bytes()).prop_map(|(timestamp, line)| Data::Console { timestamp, line }),
        bytes().prop_map(Data::BlockChunk),
        Just(Data::BlockEof),
    ]
    .boxed()
}

fn payload() -> BoxedStrategy<Payload> {
    prop_oneof![
        command().prop_map(Payload::Command),
        success().prop_map(Payload::Reply),
        text().prop_map(Payload::Failure),
        data().prop_map(Payload::Data),
    ]
    .boxed()
}

fn wire() -> BoxedStrategy<Wire> {
    (any::<i64>(), name(), payload())
        .prop_map(|(sequence, name, payload)| Wire {
            header: Header {
                version: 5,
                sequence,
                name,
            },
            payload,
        })
        .boxed()
}

/// Unikernels with distinct names and policies with distinct paths.
/// The contents of a state file: unikernels and policies.
type StateEntries = (Vec<(Name, UnikernelConfig)>, Vec<(Path, Policy)>);

fn state() -> impl Strategy<Value = StateEntries> {
    (
        vec((unikernel_name(), config()), 0..4),
        vec((path(), policy()), 0..4),
    )
        .prop_map(|(mut unikernels, mut policies)| {
            let mut seen = BTreeSet::new();
            unikernels.retain(|(n, _)| seen.insert(n.clone()));
            let mut seen = BTreeSet::new();
            policies.retain(|(p, _)| seen.insert(p.clone()));
            (unikernels, policies)
        })
}

// ---------------------------------------------- normalisation (§4.1)

/// Sorts a SET OF list by the DER encodings of its elements.
fn sort_set<T>(items: &mut [T], encode: impl Fn(&T) -> Vec<u8>) {
    items.sort_by_cached_key(encode);
}

fn norm_fail(f: &mut FailBehaviour) {
    if let FailBehaviour::Restart(codes) = f {
        sort_set(codes, |c| Node::integer(*c).to_vec());
    }
}

fn norm_args(a: &mut UnikernelArguments) {
    norm_fail(&mut a.fail_behaviour);
    sort_set(&mut a.cpuids, |c| Node::integer(*c).to_vec());
    sort_set(&mut a.blocks, |b| {
        let mut children = vec![Node::utf8(&b.name)];
        children.extend(b.device.as_deref().map(Node::utf8));
        children.extend(b.sector_size.map(Node::integer));
        Node::seq(children).to_vec()
    });
    sort_set(&mut a.bridges, |n| {
        let mut children = vec![Node::utf8(&n.netif)];
        children.extend(n.bridge.as_deref().map(Node::utf8));
        children.extend(n.mac.as_ref().map(|m| Node::octets(m)));
        Node::seq(children).to_vec()
    });
}

/// What an info record looks like after a trip through `layout`.
fn norm_info(i: &mut UnikernelInfo, layout: InfoVersion) {
    norm_fail(&mut i.fail_behaviour);
    sort_set(&mut i.cpuids, |c| Node::integer(*c).to_vec());
    sort_set(&mut i.blocks, |b| {
        Node::seq(vec![
            Node::utf8(&b.unikernel_device),
            Node::utf8(&b.host_device),
            Node::integer(b.sector_size),
            Node::integer(b.block_size),
        ])
        .to_vec()
    });
    sort_set(&mut i.bridges, |n| {
        Node::seq(vec![
            Node::utf8(&n.unikernel_device),
            Node::utf8(&n.host_device),
            Node::octets(&n.mac),
        ])
        .to_vec()
    });
    if layout != InfoVersion::Current {
        i.cpus = 1;
        i.linux_boot_partition = None;
    }
    if layout == InfoVersion::Old4 {
        i.startup = None;
    }
}

fn norm_infos(items: &mut [(Name, UnikernelInfo)], layout: InfoVersion) {
    for (_, i) in items {
        norm_info(i, layout);
    }
}

fn norm_command(c: &mut Command) {
    match c {
        Command::Unikernel(UnikernelCmd::Create(config) | UnikernelCmd::ForceCreate(config)) => {
            norm_args(&mut config.args)
        }
        Command::Unikernel(UnikernelCmd::Restart(Some(args))) => norm_args(args),
        _ => {}
    }
}

/// The value as it must come back from a round trip.
fn normalised(mut w: Wire) -> Wire {
    match &mut w.payload {
        Payload::Command(c) => norm_command(c),
        Payload::Reply(Success::OldUnikernelInfo4(items)) => norm_infos(items, InfoVersion::Old4),
        Payload::Reply(Success::OldUnikernelInfo5(items)) => norm_infos(items, InfoVersion::Old5),
        Payload::Reply(Success::UnikernelInfo(items)) => norm_infos(items, InfoVersion::Current),
        _ => {}
    }
    w
}

// ------------------------------------------------------------ properties

proptest! {
    #[test]
    fn wire_round_trip(w in wire()) {
        let bytes = encode_wire(&w).unwrap();
        let decoded = decode_wire(&bytes).unwrap();
        prop_assert_eq!(&decoded, &normalised(w));
        // The encoding is canonical: decoding and re-encoding is the identity.
        prop_assert_eq!(encode_wire(&decoded).unwrap(), bytes);
    }

    #[test]
    fn cert_command_round_trip(command in command()) {
        let cert = CertCommand { version: 5, command };
        let bytes = encode_cert_command(&cert);
        let decoded = decode_cert_command(&bytes).unwrap();
        let mut expected = cert;
        norm_command(&mut expected.command);
        prop_assert_eq!(&decoded, &expected);
        prop_assert_eq!(encode_cert_command(&decoded), bytes);
    }

    #[test]
    fn state_round_trip((unikernels, policies) in state()) {
        let bytes = encode_state(&unikernels, &policies);
        let decoded = decode_state(&bytes).unwrap();
        prop_assert_eq!(decoded.layout, StateLayout::Current);
        let mut expected_unikernels = unikernels.clone();
        for (_, c) in &mut expected_unikernels {
            norm_args(&mut c.args);
        }
        expected_unikernels.sort_by(|a, b| a.0.trie_key().cmp(&b.0.trie_key()));
        let mut expected_policies = policies.clone();
        expected_policies.sort_by(|a, b| a.0.cmp(&b.0));
        prop_assert_eq!(&decoded.unikernels, &expected_unikernels);
        prop_assert_eq!(&decoded.policies, &expected_policies);
        prop_assert_eq!(encode_state(&decoded.unikernels, &decoded.policies), bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..200)) {
        let _ = decode_wire(&bytes);
        let _ = decode_state(&bytes);
        let _ = decode_cert_command(&bytes);
    }

    /// Random bytes behind a plausible prefix reach deeper decoders.
    #[test]
    fn arbitrary_payloads_never_panic(tag in 0xA0u8..0xA8, body in vec(any::<u8>(), 0..120)) {
        let header = [0x30, 0x10, 0x02, 0x01, 0x05, 0x04, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0x0C, 0x01, 0x3A];
        let payload = Node::Prim { tag, body: body.clone().into() }.to_vec();
        let message = Node::seq(vec![Node::Raw(header.to_vec()), Node::Raw(payload.clone())]).to_vec();
        let _ = decode_wire(&message);
        let _ = decode_state(&payload);
        let cert = Node::seq(vec![Node::integer(5), Node::Raw(payload)]).to_vec();
        let _ = decode_cert_command(&cert);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn truncations_and_bit_flips_never_panic(w in wire(), (unikernels, policies) in state()) {
        let wire_bytes = encode_wire(&w).unwrap();
        let state_bytes = encode_state(&unikernels, &policies);
        for (bytes, decode) in [
            (wire_bytes, (|b: &[u8]| decode_wire(b).is_ok()) as fn(&[u8]) -> bool),
            (state_bytes, |b: &[u8]| decode_state(b).is_ok()),
        ] {
            for len in 0..bytes.len() {
                prop_assert!(!decode(&bytes[..len]), "a truncation decoded");
            }
            let mut flipped = bytes.clone();
            for i in 0..flipped.len() {
                for bit in 0..8 {
                    flipped[i] ^= 1 << bit;
                    let _ = decode(&flipped);
                    flipped[i] ^= 1 << bit;
                }
            }
        }
    }
}
