//! Bad input: each gives a clear error, the other unikernels keep running,
//! the store is unchanged and the daemon still answers.

use std::io::Write;

use albatross::model::{BlockSpec, Name, NetSpec, Typ, UnikernelConfig};
use albatross::solo5::testimage::build_test_image;
use albatross::solo5::{AbiTarget, DeviceKind};
use albatross::wire::frame::write_frame;
use albatross::wire::{BlockCmd, Command, Payload, Success, UnikernelCmd, Wire};
use albatross_integration::{
    arguments, framed, read_until_closed, require_root, Observed, Setup, System, SHORT,
};

/// A system with bridge br0 and a running unikernel `:bystander` on it.
fn system_with_bystander(setup: Setup) -> System {
    let system = setup.bridge("br0", "10.0.1.1/24").start();
    let image = system.image(
        "bystander.img",
        AbiTarget::Spt,
        &[("service", DeviceKind::NetBasic)],
    );
    system.client_ok(
        "create",
        &["bystander", image.to_str().unwrap(), "--net=service:br0"],
    );
    system.wait_tender(":bystander");
    system
}

/// The text of the single failure in `replies`.
fn failure(replies: &[Wire]) -> String {
    match replies {
        [Wire {
            payload: Payload::Failure(text),
            ..
        }] => text.clone(),
        other => panic!("expected one failure, got {other:#?}"),
    }
}

/// A create of `name` sent by hand (the client checks images itself).
fn create_by_hand(system: &System, name: &str, config: UnikernelConfig) -> Vec<Wire> {
    system.request(
        &Name::parse(name).unwrap(),
        Command::Unikernel(UnikernelCmd::Create(config)),
    )
}

fn config(image: Vec<u8>, compressed: bool, nets: &[&str], blocks: &[&str]) -> UnikernelConfig {
    let mut args = arguments();
    args.bridges = nets
        .iter()
        .map(|n| NetSpec {
            netif: (*n).into(),
            bridge: Some("br0".into()),
            mac: None,
        })
        .collect();
    args.blocks = blocks
        .iter()
        .map(|b| BlockSpec {
            name: (*b).into(),
            device: None,
            sector_size: None,
        })
        .collect();
    UnikernelConfig {
        typ: Typ::Solo5,
        compressed,
        image,
        args,
    }
}

/// Asserts that `text` is refused-with-`expected` and that nothing changed
/// since `before` (the bystander included).
fn check(system: &System, before: &Observed, context: &str, text: &str, expected: &str) {
    assert!(
        text.contains(expected),
        "{context}: {text:?} does not contain {expected:?}"
    );
    system.assert_unchanged(before, context);
}

#[test]
fn unknown_bridges() {
    require_root!();
    let system = system_with_bystander(Setup::new().bridge("br1", "10.0.2.1/24"));
    let image = system.image(
        "web.img",
        AbiTarget::Spt,
        &[("service", DeviceKind::NetBasic)],
    );
    let image = image.to_str().unwrap();
    let before = system.observe();
    // At the root, the host policy lists the bridges the daemon found.
    let out = system.client("create", &["web", image, "--net=service:nosuch"]);
    assert_eq!(out.code, 117, "{out:?}");
    check(
        &system,
        &before,
        "root",
        &out.stderr,
        ":web: failure: bridges nosuch not allowed by policy",
    );
    // Below a path without a policy, the bridge itself is looked up.
    let out = system.client("create", &["free:web", image, "--net=service:nosuch"]);
    assert_eq!(out.code, 117, "{out:?}");
    check(
        &system,
        &before,
        "no policy",
        &out.stderr,
        "free:web: failure: bridge nosuch does not exist",
    );
    // A bridge that went away after the daemon started.
    system.netns.ip(&["link", "del", "br1"]);
    let out = system.client("create", &["web", image, "--net=service:br1"]);
    assert_eq!(out.code, 117, "{out:?}");
    check(
        &system,
        &before,
        "deleted bridge",
        &out.stderr,
        ":web: failure: bridge br1 does not exist",
    );
}

#[test]
fn missing_tender() {
    require_root!();
    let system = system_with_bystander(Setup::new().tenders(&["spt"]));
    let image = system.image("web.img", AbiTarget::Hvt, &[]);
    let before = system.observe();
    let out = system.client("create", &["web", image.to_str().unwrap()]);
    assert_eq!(out.code, 117, "{out:?}");
    check(
        &system,
        &before,
        "missing hvt",
        &out.stderr,
        ":web: failure: tender does not exist, looked for solo5-hvt.2 and solo5-hvt in ",
    );
}

#[test]
fn manifest_mismatch() {
    require_root!();
    let system = system_with_bystander(Setup::new());
    let image = build_test_image(
        AbiTarget::Spt,
        2,
        &[
            ("other", DeviceKind::NetBasic),
            ("disk", DeviceKind::BlockBasic),
        ],
        b"",
    );
    system.client_ok("create-block", &["disk", "1"]);
    let before = system.observe();
    let text = failure(&create_by_hand(
        &system,
        "web",
        config(image.clone(), false, &["service"], &["disk"]),
    ));
    check(
        &system,
        &before,
        "nets",
        &text,
        "specified bridge(s) does not match with the manifest. Devices present in manifest: ",
    );
    assert!(
        text.contains("not configured: \"other\"")
            && text.contains("not in the manifest: \"service\""),
        "{text}"
    );
    let text = failure(&create_by_hand(
        &system,
        "web",
        config(image, false, &["other"], &[]),
    ));
    check(
        &system,
        &before,
        "blocks",
        &text,
        "specified block device(s) does not match with manifest. Devices present in manifest: ",
    );
    assert!(text.contains("not configured: \"disk\""), "{text}");
    // The client checks the manifest before sending anything.
    let path = system.file(
        "web.img",
        &build_test_image(AbiTarget::Spt, 2, &[("other", DeviceKind::NetBasic)], b""),
    );
    let out = system.client(
        "create",
        &["web", path.to_str().unwrap(), "--net=service:br0"],
    );
    assert_eq!(out.code, 124, "{out:?}");
    system.assert_unchanged(&before, "client-side check");
}

#[test]
fn broken_images() {
    require_root!();
    let system = system_with_bystander(Setup::new());
    let good = build_test_image(AbiTarget::Spt, 2, &[], b"payload");
    let cases: Vec<(&str, Vec<u8>, bool, &str)> = vec![
        ("zero-length", Vec::new(), false, "image is empty"),
        (
            "not ELF",
            b"#!/bin/sh\necho this is no unikernel\n".to_vec(),
            false,
            "invalid image: ",
        ),
        (
            "truncated",
            good[..good.len() / 2].to_vec(),
            false,
            "invalid image: ",
        ),
        (
            "corrupt",
            good.iter()
                .enumerate()
                .map(|(i, b)| if i >= 16 { b ^ 0x5a } else { *b })
                .collect(),
            false,
            "invalid image: ",
        ),
        ("not zlib", good.clone(), true, "failed to uncompress: "),
        (
            "zero-length compressed",
            Vec::new(),
            true,
            "failed to uncompress: ",
        ),
    ];
    let before = system.observe();
    for (context, image, compressed, expected) in cases {
        let text = failure(&create_by_hand(
            &system,
            "web",
            config(image, compressed, &[], &[]),
        ));
        check(&system, &before, context, &text, expected);
    }
    // A good image still works afterwards.
    let replies = create_by_hand(&system, "web", config(good, false, &[], &[]));
    assert!(
        matches!(replies.as_slice(), [Wire { payload: Payload::Reply(Success::String(s)), .. }] if s == "created unikernel"),
        "{replies:#?}"
    );
    system.wait_tender(":web");
}

#[test]
fn malformed_and_oversized_frames() {
    require_root!();
    let system = system_with_bystander(Setup::new());
    let before = system.observe();
    // Not DER at all.
    let mut bytes = Vec::new();
    write_frame(&mut bytes, b"\x30\x03\x02\x01").unwrap();
    let text = failure(&system.send_raw(&bytes));
    check(
        &system,
        &before,
        "malformed DER",
        &text,
        "malformed request: ",
    );
    // DER, but a length that runs past the end.
    let mut bytes = Vec::new();
    write_frame(&mut bytes, b"\x30\x84\x7f\xff\xff\xff\x02\x01\x05").unwrap();
    let text = failure(&system.send_raw(&bytes));
    check(
        &system,
        &before,
        "DER length past the end",
        &text,
        "malformed request: ",
    );
    // A length prefix of 2 GiB - 1 with nothing behind it: refused at once.
    let text = failure(&system.send_raw(&[0x7f, 0xff, 0xff, 0xff]));
    check(
        &system,
        &before,
        "oversized prefix",
        &text,
        "request of 2147483647 bytes exceeds the maximum of ",
    );
    // A reply where a command belongs.
    let wire = Wire {
        header: albatross::wire::Header::new(Name::root()),
        payload: Payload::Reply(Success::Empty),
    };
    let mut bytes = Vec::new();
    write_frame(&mut bytes, &albatross::wire::encode_wire(&wire).unwrap()).unwrap();
    let text = failure(&system.send_raw(&bytes));
    check(&system, &before, "not a command", &text, "unknown command");
    // A frame cut short by the client: no reply, the connection closes.
    let mut stream = system.connect();
    let full = framed(
        &Name::root(),
        Command::Unikernel(UnikernelCmd::Info(albatross::wire::InfoVersion::Current)),
    );
    stream.write_all(&full[..full.len() - 3]).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_until_closed(&mut stream), Vec::<Wire>::new());
    system.assert_unchanged(&before, "truncated frame");
}

#[test]
fn client_disconnecting_in_the_middle_of_a_block_upload() {
    require_root!();
    let system = system_with_bystander(Setup::new());
    let content: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
    let data = system.file("content", &content);
    system.client_ok("create-block", &["disk", "1"]);
    let out = system.client_ok("set-block", &["disk", data.to_str().unwrap()]);
    assert_eq!(out.stdout, ":disk: set block device\n");
    assert_eq!(std::fs::read(system.block_path(":disk")).unwrap(), content);
    let before = system.observe();
    let name = Name::parse("disk").unwrap();

    // Between two chunks.
    let mut stream = system.connect();
    stream
        .write_all(&framed(&name, Command::Block(BlockCmd::Set(false))))
        .unwrap();
    for _ in 0..3 {
        write_frame(&mut stream, &[0xee; 4096]).unwrap();
    }
    let mark = system.log_mark();
    drop(stream);
    system.wait_log(mark, "set block :disk: ", SHORT);
    system.assert_unchanged(&before, "disconnect between chunks");

    // In the middle of a chunk.
    let mut stream = system.connect();
    stream
        .write_all(&framed(&name, Command::Block(BlockCmd::Set(false))))
        .unwrap();
    write_frame(&mut stream, &[0xee; 4096]).unwrap();
    stream.write_all(&[0, 0, 0x10, 0, 0xee, 0xee]).unwrap();
    let mark = system.log_mark();
    drop(stream);
    system.wait_log(mark, "set block :disk: ", SHORT);
    system.assert_unchanged(&before, "disconnect inside a chunk");

    // The device is not left locked: a complete upload works.
    let other: Vec<u8> = vec![0x42; 4096];
    let data = system.file("other", &other);
    system.client_ok("set-block", &["disk", data.to_str().unwrap()]);
    let now = std::fs::read(system.block_path(":disk")).unwrap();
    assert_eq!(now.len(), 1 << 20);
    assert_eq!(&now[..4096], &other[..]);
    assert!(now[4096..].iter().all(|b| *b == 0));
}
