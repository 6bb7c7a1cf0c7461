//! Every vector under `tests/vectors/` (a copy of the shared upstream
//! vectors) decodes to exactly what its README says, and every vector in a
//! current layout re-encodes to identical bytes.

use std::collections::BTreeSet;

use albatross::model::name::{derived_mac, parse_mac};
use albatross::model::{
    BlockSpec, FailBehaviour, Label, Name, NetSpec, Path, Policy, Timestamp, Typ,
    UnikernelArguments, UnikernelConfig,
};
use albatross::wire::state::{decode_state, encode_state, StateLayout};
use albatross::wire::{
    chain_to_command, decode_cert_command, decode_wire, encode_cert_command, encode_wire, BlockCmd,
    CertCommand, CertError, Command, ConsoleCmd, Data, Header, InfoVersion, Payload, PolicyCmd,
    SinceCount, Success, UnikernelCmd, Wire,
};
use x509_cert::Certificate;

mod common;
use common::{b64_file, hex_file, read_text, unhex, vector_path};

fn name(text: &str) -> Name {
    Name::parse(text).unwrap()
}

fn path(text: &str) -> Path {
    Path::parse(text).unwrap()
}

fn header(text: &str) -> Header {
    Header {
        version: 5,
        sequence: 0,
        name: name(text),
    }
}

/// Decodes a wire vector, checks that it re-encodes identically, returns it.
fn wire_roundtrip(bytes: &[u8], what: &str) -> Wire {
    let wire = decode_wire(bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(
        encode_wire(&wire).unwrap(),
        bytes,
        "{what}: re-encoding differs"
    );
    wire
}

fn subscribe_count20() -> Command {
    Command::Console(ConsoleCmd::Subscribe(SinceCount::Count(20)))
}

// ------------------------------------------------------------ wire (§1)

#[test]
fn console_subscribe_vectors() {
    for (file, text) in [
        ("wire_console_subscribe_foo_count20.hex", ":foo"),
        ("wire_console_subscribe_foo.bar_count20.hex", ":foo.bar"),
    ] {
        let bytes = hex_file(file);
        let wire = wire_roundtrip(&bytes, file);
        assert_eq!(wire.header, header(text), "{file}");
        assert!(wire.header.name.path().is_root());
        assert_eq!(wire.header.name.label().unwrap().as_str(), &text[1..]);
        assert_eq!(
            wire.payload,
            Payload::Command(subscribe_count20()),
            "{file}"
        );
    }
    assert_eq!(hex_file("wire_console_subscribe_foo_count20.hex").len(), 34);
    assert_eq!(
        hex_file("wire_console_subscribe_foo.bar_count20.hex").len(),
        38
    );
}

// ----------------------------------------------------- cert values (§3)

fn arc_policy() -> Policy {
    Policy {
        unikernels: 1,
        cpuids: BTreeSet::from([0]),
        memory: 512,
        block: None,
        bridges: BTreeSet::new(),
    }
}

#[test]
fn cert_extension_values() {
    let bytes = hex_file("cert_ext_console_subscribe_count20.hex");
    assert_eq!(bytes.len(), 14);
    let cmd = decode_cert_command(&bytes).unwrap();
    assert_eq!(
        cmd,
        CertCommand {
            version: 5,
            command: subscribe_count20()
        }
    );
    assert_eq!(encode_cert_command(&cmd), bytes);

    let bytes = hex_file("cert_ext_policy_arc.hex");
    assert_eq!(bytes.len(), 25);
    let cmd = decode_cert_command(&bytes).unwrap();
    assert_eq!(
        cmd,
        CertCommand {
            version: 5,
            command: Command::Policy(PolicyCmd::Add(arc_policy()))
        }
    );
    assert_eq!(encode_cert_command(&cmd), bytes);
}

// ----------------------------------------------------- TLS chains (§2)

fn chain(file: &str) -> Vec<Certificate> {
    Certificate::load_pem_chain(read_text(file).as_bytes()).unwrap()
}

#[test]
fn tls_chains() {
    let expected_command = CertCommand {
        version: 5,
        command: subscribe_count20(),
    };
    for (file, expected_name) in [
        ("tls_chain_foo.pem", ":foo"),
        ("tls_chain_foo.bar.pem", ":foo.bar"),
    ] {
        let certs = chain(file);
        assert_eq!(certs.len(), 2, "{file}");
        let result = chain_to_command(&certs).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(result.name, name(expected_name), "{file}");
        assert!(result.name.path().is_root());
        assert!(result.policies.is_empty(), "{file}");
        assert_eq!(result.command, expected_command, "{file}");
    }

    let certs = chain("tls_chain_arc_foo.bar.pem");
    assert_eq!(certs.len(), 2);
    let result = chain_to_command(&certs).unwrap();
    assert_eq!(
        result.name,
        Name::new(path("arc"), Label::parse("foo.bar").unwrap())
    );
    assert_eq!(result.name.to_string(), "arc:foo.bar");
    assert_eq!(result.policies, vec![(path("arc"), arc_policy())]);
    assert_eq!(result.command, expected_command);

    // The root CA alone: it has no albatross extension.
    let ca = chain("tls_ca_test.pem");
    assert_eq!(ca.len(), 1);
    assert!(matches!(
        chain_to_command(&ca),
        Err(CertError::NoLeafExtension { .. })
    ));
    // The leaf in the intermediate's place: its command is not a policy.
    let mut reversed = chain("tls_chain_foo.pem");
    reversed.reverse();
    assert!(matches!(
        chain_to_command(&reversed),
        Err(CertError::UnexpectedIntermediateCommand {
            command: "console subscribe",
            ..
        })
    ));
    // Ten certificates are too many.
    let long: Vec<Certificate> = std::iter::repeat(chain("tls_chain_foo.pem"))
        .flatten()
        .take(10)
        .collect();
    assert_eq!(
        chain_to_command(&long),
        Err(CertError::ChainTooLong { len: 10 })
    );
    assert_eq!(chain_to_command(&[]), Err(CertError::EmptyChain));
}

// ---------------------------------------------------- state dumps (§4)

fn block(name: &str, device: Option<&str>) -> BlockSpec {
    BlockSpec {
        name: name.into(),
        device: device.map(Into::into),
        sector_size: None,
    }
}

fn net(netif: &str, bridge: Option<&str>, mac: Option<&str>) -> NetSpec {
    NetSpec {
        netif: netif.into(),
        bridge: bridge.map(Into::into),
        mac: mac.map(|m| parse_mac(m).unwrap()),
    }
}

/// A configuration with the legacy defaults of the state vectors.
fn legacy(
    cpuid: i64,
    memory: i64,
    blocks: Vec<BlockSpec>,
    bridges: Vec<NetSpec>,
    argv: Option<&[&str]>,
) -> UnikernelConfig {
    UnikernelConfig {
        typ: Typ::Solo5,
        compressed: false,
        image: Vec::new(),
        args: UnikernelArguments {
            fail_behaviour: FailBehaviour::Quit,
            startup: None,
            add_name: true,
            cpuids: vec![cpuid],
            memory,
            blocks,
            bridges,
            argv: argv.map(|a| a.iter().map(|s| s.to_string()).collect()),
            cpus: 1,
            linux_boot_partition: None,
        },
    }
}

const DEBUG: &[&str] = &["-l *:debug"];

fn a3() -> UnikernelConfig {
    legacy(
        0,
        1,
        vec![
            block("block", None),
            block("secondblock", Some("second-data")),
        ],
        vec![
            net("service", None, None),
            net("other-net", Some("second-bridge"), None),
        ],
        Some(DEBUG),
    )
}

fn a2() -> UnikernelConfig {
    legacy(
        0,
        1,
        vec![block("block", None), block("second-data", None)],
        vec![
            net("service", None, None),
            net("other-net", Some("second-bridge"), None),
        ],
        Some(DEBUG),
    )
}

fn a1() -> UnikernelConfig {
    legacy(
        0,
        1,
        vec![block("block", None), block("secondblock", None)],
        vec![net("service", None, None), net("other-net", None, None)],
        Some(DEBUG),
    )
}

fn b3() -> UnikernelConfig {
    legacy(
        2,
        10,
        vec![],
        vec![net("service", Some("bridge-interface"), None)],
        None,
    )
}

fn b1() -> UnikernelConfig {
    legacy(2, 10, vec![], vec![net("service", None, None)], None)
}

fn bm() -> UnikernelConfig {
    legacy(
        2,
        10,
        vec![],
        vec![net(
            "service",
            Some("bridge-interface"),
            Some("00:de:ad:be:ef:00"),
        )],
        None,
    )
}

fn check_state(
    file: &str,
    len: usize,
    layout: StateLayout,
    tag: u8,
    entries: &[(&str, UnikernelConfig)],
    canonical: &[&str],
) {
    let bytes = b64_file(file);
    assert_eq!(bytes.len(), len, "{file}: size");
    let state = decode_state(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(state.layout, layout, "{file}");
    assert_eq!(state.layout.tag(), tag, "{file}");
    assert!(state.policies.is_empty(), "{file}: policies");
    assert_eq!(state.unikernels.len(), entries.len(), "{file}: entry count");
    for ((got_name, got), (want_name, want)) in state.unikernels.iter().zip(entries) {
        let ctx = format!("{file}, entry {want_name}");
        assert_eq!(got_name, &name(want_name), "{ctx}: name");
        assert_eq!(got.typ, want.typ, "{ctx}: typ");
        assert_eq!(got.compressed, want.compressed, "{ctx}: compressed");
        assert_eq!(got.image, want.image, "{ctx}: image");
        let (g, w) = (&got.args, &want.args);
        assert_eq!(g.fail_behaviour, w.fail_behaviour, "{ctx}: fail behaviour");
        assert_eq!(g.startup, w.startup, "{ctx}: startup");
        assert_eq!(g.add_name, w.add_name, "{ctx}: add-name");
        assert_eq!(g.cpuids, w.cpuids, "{ctx}: cpuids");
        assert_eq!(g.memory, w.memory, "{ctx}: memory");
        assert_eq!(g.blocks, w.blocks, "{ctx}: block devices (in stored order)");
        assert_eq!(g.bridges, w.bridges, "{ctx}: bridges (in stored order)");
        assert_eq!(g.argv, w.argv, "{ctx}: argv");
        assert_eq!(g.cpus, w.cpus, "{ctx}: cpus");
        assert_eq!(
            g.linux_boot_partition, w.linux_boot_partition,
            "{ctx}: boot partition"
        );
        assert_eq!(got, want, "{ctx}");
    }
    // The canonical order is what a current writer produces.
    let rewritten = decode_state(&encode_state(&state.unikernels, &state.policies)).unwrap();
    assert_eq!(rewritten.layout, StateLayout::Current);
    let order: Vec<String> = rewritten
        .unikernels
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    assert_eq!(order, canonical, "{file}: canonical order");
    for (n, config) in &rewritten.unikernels {
        let original = state.unikernels.iter().find(|(m, _)| m == n).unwrap();
        assert_eq!(&original.1, config, "{file}: {n} after rewriting");
    }
}

const FLAT: &[&str] = &[
    ":bar.hello",
    ":bar.my.nice.unikernel",
    ":foo.hello",
    ":foo.my.nice.unikernel",
];
const NESTED: &[&str] = &[
    "bar:hello",
    "bar:my.nice.unikernel",
    "foo:hello",
    "foo:my.nice.unikernel",
];

fn flat_names(prefix: &str, configs: [UnikernelConfig; 4]) -> Vec<(String, UnikernelConfig)> {
    let [c1, c2, c3, c4] = configs;
    vec![
        (format!("{prefix}foo.my.nice.unikernel"), c1),
        (format!("{prefix}foo.hello"), c2),
        (format!("{prefix}bar.my.nice.unikernel"), c3),
        (format!("{prefix}bar.hello"), c4),
    ]
}

fn as_refs(entries: &[(String, UnikernelConfig)]) -> Vec<(&str, UnikernelConfig)> {
    entries
        .iter()
        .map(|(n, c)| (n.as_str(), c.clone()))
        .collect()
}

#[test]
fn state_dumps() {
    use StateLayout::*;
    let cases = [
        (
            "state_wire4_unikernel1.b64",
            322,
            V1Unikernels,
            0,
            "",
            [a1(), a1(), b1(), b1()],
        ),
        (
            "state_wire4_unikernel2.b64",
            400,
            V2Unikernels,
            2,
            "",
            [a2(), a2(), b3(), b3()],
        ),
        (
            "state_wire4_unikernel3.b64",
            436,
            V3Unikernels,
            3,
            "",
            [a3(), a3(), b3(), b3()],
        ),
        (
            "state_wire5_unikernel1.b64",
            326,
            V1Unikernels,
            0,
            ":",
            [a1(), a1(), b1(), b1()],
        ),
        (
            "state_wire5_unikernel2.b64",
            405,
            V2Unikernels,
            2,
            ":",
            [a2(), a2(), b3(), b3()],
        ),
        (
            "state_wire5_unikernel3.b64",
            440,
            V3Unikernels,
            3,
            ":",
            [a3(), a3(), b3(), b3()],
        ),
    ];
    for (file, len, layout, tag, prefix, configs) in cases {
        let entries = flat_names(prefix, configs);
        check_state(file, len, layout, tag, &as_refs(&entries), FLAT);
    }
    let path_cases = [
        (
            "state_wire5_unikernel1_path.b64",
            322,
            V1Unikernels,
            0,
            [a1(), a1(), b1(), b1()],
        ),
        (
            "state_wire5_unikernel2_path.b64",
            400,
            V2Unikernels,
            2,
            [a2(), a2(), b3(), b3()],
        ),
        (
            "state_wire5_unikernel3_path.b64",
            436,
            V3Unikernels,
            3,
            [a3(), a3(), b3(), b3()],
        ),
    ];
    for (file, len, layout, tag, [c1, c2, c3, c4]) in path_cases {
        let entries = [
            ("foo:my.nice.unikernel", c1),
            ("foo:hello", c2),
            ("bar:my.nice.unikernel", c3),
            ("bar:hello", c4),
        ];
        check_state(file, len, layout, tag, &entries, NESTED);
    }
    let with_mac = [
        ("bar:hello", bm()),
        ("bar:my.nice.unikernel", bm()),
        ("foo:hello", a3()),
        ("foo:my.nice.unikernel", a3()),
    ];
    check_state(
        "state_wire5_unikernel3_with_mac.b64",
        452,
        V3Unikernels,
        3,
        &with_mac,
        NESTED,
    );
    // The same trie in the current layout, and the current writer's bytes.
    check_state(
        "derived/state_v6_client_gen.b64",
        500,
        Current,
        6,
        &with_mac,
        NESTED,
    );
    let v6 = b64_file("derived/state_v6_client_gen.b64");
    let old = decode_state(&b64_file("state_wire5_unikernel3_with_mac.b64")).unwrap();
    assert_eq!(encode_state(&old.unikernels, &old.policies), v6);
    let current = decode_state(&v6).unwrap();
    assert_eq!(encode_state(&current.unikernels, &current.policies), v6);
    assert_eq!(&v6[v6.len() - 2..], &[0x30, 0x00], "empty policy trie");
}

#[test]
fn wire4_and_wire5_flat_dumps_are_the_same_trie() {
    for n in 1..=3 {
        let a = decode_state(&b64_file(&format!("state_wire4_unikernel{n}.b64"))).unwrap();
        let b = decode_state(&b64_file(&format!("state_wire5_unikernel{n}.b64"))).unwrap();
        assert_eq!(a, b, "unikernel{n}");
    }
}

// -------------------------------------------------- derived vectors (§5)

#[test]
fn derived_wire_vectors() {
    let wire = wire_roundtrip(
        &hex_file("derived/failure_root_test.hex"),
        "failure_root_test",
    );
    assert_eq!(
        wire,
        Wire {
            header: header(":"),
            payload: Payload::Failure("test".into())
        }
    );

    let wire = wire_roundtrip(&hex_file("derived/console_data_ms.hex"), "console_data_ms");
    assert_eq!(
        wire,
        Wire {
            header: header(":foo"),
            payload: Payload::Data(Data::Console {
                timestamp: Timestamp::parse_rfc3339("2025-08-22T13:04:43.123Z").unwrap(),
                line: b"hello world".to_vec(),
            }),
        }
    );

    let wire = wire_roundtrip(&hex_file("derived/policy_info_arc.hex"), "policy_info_arc");
    assert_eq!(wire.header, header("arc:"));
    assert_eq!(wire.header.name, Name::of_path(path("arc")));
    assert_eq!(
        wire.payload,
        Payload::Command(Command::Policy(PolicyCmd::Info))
    );

    let wire = wire_roundtrip(
        &hex_file("derived/unikernel_create_hello.hex"),
        "unikernel_create_hello",
    );
    assert_eq!(wire.header, header(":hello"));
    let expected = UnikernelConfig {
        typ: Typ::Solo5,
        compressed: false,
        image: Vec::new(),
        args: UnikernelArguments {
            fail_behaviour: FailBehaviour::Restart(vec![0, 2]),
            startup: Some(10),
            add_name: true,
            cpuids: vec![1],
            memory: 32,
            blocks: vec![BlockSpec {
                name: "storage".into(),
                device: Some("data".into()),
                sector_size: Some(512),
            }],
            bridges: vec![net("service", None, None)],
            argv: Some(vec!["--hello=world".into()]),
            cpus: 1,
            linux_boot_partition: None,
        },
    };
    assert_eq!(
        wire.payload,
        Payload::Command(Command::Unikernel(UnikernelCmd::Create(expected)))
    );

    let wire = wire_roundtrip(
        &hex_file("derived/unikernel_info_reply_hello.hex"),
        "unikernel_info_reply_hello",
    );
    assert_eq!(wire.header, header(":hello"));
    let Payload::Reply(Success::UnikernelInfo(items)) = &wire.payload else {
        panic!("not an info reply: {:?}", wire.payload)
    };
    assert_eq!(items.len(), 1);
    let (n, info) = &items[0];
    assert_eq!(n, &name(":hello"));
    assert_eq!(info.typ, Typ::Solo5);
    assert_eq!(info.startup, None);
    assert_eq!(info.fail_behaviour, FailBehaviour::Restart(vec![]));
    assert_eq!(info.cpuids, vec![0]);
    assert_eq!(info.memory, 32);
    assert_eq!(
        info.digest,
        unhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    );
    assert!(info.blocks.is_empty());
    assert_eq!(info.bridges.len(), 1);
    assert_eq!(info.bridges[0].unikernel_device, "service");
    assert_eq!(info.bridges[0].host_device, "br0");
    assert_eq!(info.bridges[0].mac, parse_mac("00:80:41:cd:8a:eb").unwrap());
    assert_eq!(info.bridges[0].mac, derived_mac("service", &name(":hello")));
    assert_eq!(info.argv, None);
    assert_eq!(
        info.started,
        Timestamp::parse_rfc3339("2025-01-01T00:00:00Z").unwrap()
    );
    assert_eq!(info.cpus, 1);
    assert_eq!(info.linux_boot_partition, None);
}

// ----------------------------------------------- upstream replies

/// Every message of a recorded file; each decodes and re-encodes
/// identically (they are all in current layouts).
fn recorded(file: &str) -> Vec<Wire> {
    let text = read_text(&format!("upstream-replies/{file}"));
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "{file} is empty");
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| wire_roundtrip(&unhex(line), &format!("{file} line {}", i + 1)))
        .collect()
}

/// The single request and reply of a step; the reply echoes the header.
fn step(step: &str) -> (Wire, Wire) {
    let request = recorded(&format!("{step}.request.hex"));
    let reply = recorded(&format!("{step}.reply.hex"));
    assert_eq!((request.len(), reply.len()), (1, 1), "{step}");
    let (request, reply) = (request[0].clone(), reply[0].clone());
    assert_eq!(
        request.header, reply.header,
        "{step}: reply must echo the request header"
    );
    (request, reply)
}

fn assert_failure(step_name: &str, reply: &Wire) {
    assert!(
        matches!(&reply.payload, Payload::Failure(msg) if !msg.is_empty()),
        "{step_name}"
    );
}

#[test]
fn every_recorded_message_decodes() {
    let dir = vector_path("upstream-replies");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let file = entry.unwrap().file_name().into_string().unwrap();
        if file.ends_with(".hex") {
            count += recorded(&file).len();
        }
    }
    assert_eq!(count, 22);
}

#[test]
fn upstream_replies() {
    let info = Payload::Command(Command::Unikernel(UnikernelCmd::Info(InfoVersion::Current)));

    let (req, rep) = step("info-empty");
    assert_eq!(req.header, header(":"));
    assert_eq!(req.payload, info);
    assert_eq!(rep.payload, Payload::Reply(Success::UnikernelInfo(vec![])));

    let (req, rep) = step("policy-info-root");
    assert_eq!(req.header, header(":"));
    assert_eq!(
        req.payload,
        Payload::Command(Command::Policy(PolicyCmd::Info))
    );
    let Payload::Reply(Success::Policies(policies)) = &rep.payload else {
        panic!("{rep:?}")
    };
    assert_eq!(policies.len(), 1);
    assert_eq!(policies[0].0, Name::root());
    let root = &policies[0].1;
    assert_eq!(root.unikernels, (1 << 62) - 1);
    assert_eq!(root.bridges, BTreeSet::from(["br0".to_string()]));
    assert_eq!(root.cpuids, BTreeSet::from([0, 1]), "2 cpus");
    assert!(root.block.is_some());

    let user = Policy {
        unikernels: 2,
        cpuids: BTreeSet::from([0]),
        memory: 64,
        block: Some(10),
        bridges: BTreeSet::from(["br0".to_string()]),
    };
    let (req, rep) = step("add-policy-user");
    assert_eq!(req.header, header("user:"));
    assert_eq!(
        req.payload,
        Payload::Command(Command::Policy(PolicyCmd::Add(user.clone())))
    );
    assert!(
        matches!(rep.payload, Payload::Reply(Success::String(_))),
        "{rep:?}"
    );

    let (req, rep) = step("add-policy-escalate");
    assert_eq!(req.header, header("user:big:"));
    let Payload::Command(Command::Policy(PolicyCmd::Add(big))) = &req.payload else {
        panic!("{req:?}")
    };
    assert_eq!((big.unikernels, big.memory), (4, 128));
    assert_failure("add-policy-escalate", &rep);

    let (req, rep) = step("policy-info-user");
    assert_eq!(req.header, header("user:"));
    assert_eq!(
        req.payload,
        Payload::Command(Command::Policy(PolicyCmd::Info))
    );
    let Payload::Reply(Success::Policies(policies)) = &rep.payload else {
        panic!("{rep:?}")
    };
    // Names are relative to the queried path `user`.
    let find = |text: &str| {
        policies
            .iter()
            .find(|(n, _)| *n == name(text))
            .map(|(_, p)| p)
    };
    assert_eq!(find(":"), Some(&user));
    let team = find("team:").expect("user:team relative as team:");
    assert_eq!((team.unikernels, team.memory), (1, 32));
    assert_eq!(team.cpuids, BTreeSet::from([0]));
    assert_eq!(team.bridges, BTreeSet::from(["br0".to_string()]));
    assert!(policies.iter().all(|(n, _)| n.is_path()));

    for (step_name, request_name, entry_name) in [
        ("info-all", ":", "user:net"),
        ("info-path", "user:", ":net"),
    ] {
        let (req, rep) = step(step_name);
        assert_eq!(req.header, header(request_name), "{step_name}");
        assert_eq!(req.payload, info, "{step_name}");
        let Payload::Reply(Success::UnikernelInfo(items)) = &rep.payload else {
            panic!("{step_name}: {rep:?}")
        };
        assert_eq!(items.len(), 1, "{step_name}");
        let (n, i) = &items[0];
        assert_eq!(n, &name(entry_name), "{step_name}");
        assert_eq!(i.typ, Typ::Solo5);
        assert_eq!(i.memory, 16);
        assert_eq!(i.cpuids, vec![0]);
        assert_eq!(i.digest.len(), 32, "SHA-256");
        assert!(i.blocks.is_empty());
        assert_eq!(i.bridges.len(), 1);
        assert_eq!(i.bridges[0].unikernel_device, "service0");
        assert_eq!(i.bridges[0].host_device, "br0");
        assert_eq!(i.bridges[0].mac, derived_mac("service0", &name("user:net")));
        assert_eq!(i.cpus, 1);
    }

    let (req, rep) = step("destroy-unknown");
    assert_eq!(req.header, header("user:nope"));
    assert_eq!(
        req.payload,
        Payload::Command(Command::Unikernel(UnikernelCmd::Destroy))
    );
    assert_failure("destroy-unknown", &rep);

    let (req, rep) = step("block-add-over-policy");
    assert_eq!(req.header, header("user:huge"));
    assert_eq!(
        req.payload,
        Payload::Command(Command::Block(BlockCmd::Add(20)))
    );
    assert_failure("block-add-over-policy", &rep);

    let (req, rep) = step("block-info-root");
    assert_eq!(req.header, header(":"));
    assert_eq!(
        req.payload,
        Payload::Command(Command::Block(BlockCmd::Info))
    );
    let Payload::Reply(Success::BlockDevices(devices)) = &rep.payload else {
        panic!("{rep:?}")
    };
    let total: i64 = devices.iter().map(|(_, size, _)| size).sum();
    assert_eq!(total, 3, "3 MB used under user");
    assert!(devices
        .iter()
        .all(|(n, _, active)| n.path() == &path("user") && !active));

    let (req, rep) = step("unknown-command");
    assert_eq!(req.header, header(":"));
    assert!(
        matches!(req.payload, Payload::Reply(_)),
        "a reply payload sent as a request"
    );
    assert_failure("unknown-command", &rep);
}
