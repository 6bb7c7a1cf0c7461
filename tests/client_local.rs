//! The client in local mode against fake daemons on Unix sockets: replies
//! in single, read and dump mode, chunk streams, files written (§16.3,
//! §16.4), exit codes; and `inspect-dump`/`extract-dump` on state files.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread::JoinHandle;

use albatross::model::{
    BlockSpec, FailBehaviour, Name, NetSpec, Path as NamePath, Policy, Timestamp, Typ,
    UnikernelArguments, UnikernelConfig,
};
use albatross::wire::frame::{read_frame, write_end, write_frame};
use albatross::wire::state::encode_state;
use albatross::wire::{
    decode_wire, encode_wire, BlockCmd, Command as Cmd, ConsoleCmd, Data, Header, InfoVersion,
    Payload, RUsage, SinceCount, StatsCmd, StatsData, Success, UnikernelCmd, Wire,
};

const MAX: usize = 1 << 26;

/// A fresh directory for one test.
fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "albatross-client-local-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn albatross(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_albatross"))
        .args(args)
        .env("TMPDIR", dir)
        .output()
        .unwrap()
}

fn show(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Accepts `connections` connections on `path`, handing each to `serve`.
fn daemon(
    path: &Path,
    connections: usize,
    serve: impl Fn(usize, UnixStream) + Send + 'static,
) -> JoinHandle<()> {
    let listener = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        for i in 0..connections {
            let (stream, _) = listener.accept().unwrap();
            serve(i, stream);
        }
    })
}

fn receive(stream: &mut UnixStream) -> Wire {
    decode_wire(&read_frame(stream, MAX).unwrap().unwrap()).unwrap()
}

fn send(stream: &mut UnixStream, header: &Header, payload: Payload) {
    let wire = Wire {
        header: header.clone(),
        payload,
    };
    write_frame(stream, &encode_wire(&wire).unwrap()).unwrap();
}

/// Reads chunks up to the zero-length end marker.
fn receive_chunks(stream: &mut UnixStream) -> Vec<Vec<u8>> {
    let mut chunks = Vec::new();
    while let Some(chunk) = read_frame(stream, MAX).unwrap() {
        chunks.push(chunk);
    }
    chunks
}

fn inflate(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// The one file whose name starts with `prefix` in `dir`.
fn written_file(dir: &Path, prefix: &str) -> Vec<u8> {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(prefix))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    std::fs::read(&found[0]).unwrap()
}

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

#[test]
fn single_reply_is_printed() {
    let dir = test_dir("single");
    let sock = dir.join("vmmd.sock");
    let d = daemon(&sock, 1, |_, mut s| {
        let w = receive(&mut s);
        assert_eq!(w.header.name, name(":hello"));
        assert_eq!(
            w.payload,
            Payload::Command(Cmd::Unikernel(UnikernelCmd::Info(InfoVersion::Current)))
        );
        send(
            &mut s,
            &w.header,
            Payload::Reply(Success::String("all fine".into())),
        );
    });
    let out = albatross(
        &dir,
        &["info", "-n", "hello", "--socket", sock.to_str().unwrap()],
    );
    d.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), ":hello: all fine\n");
}

#[test]
fn failure_exits_117() {
    let dir = test_dir("failure");
    let sock = dir.join("vmmd.sock");
    let d = daemon(&sock, 1, |_, mut s| {
        let w = receive(&mut s);
        send(
            &mut s,
            &w.header,
            Payload::Failure("destroy: not found".into()),
        );
    });
    let out = albatross(
        &dir,
        &["destroy", "hello", "--socket", sock.to_str().unwrap()],
    );
    d.join().unwrap();
    assert_eq!(out.status.code(), Some(117), "{}", show(&out));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1);
    assert!(stderr.contains("destroy: not found"));
}

#[test]
fn connection_failure_exits_122() {
    let dir = test_dir("connect");
    let sock = dir.join("nobody-listens.sock");
    let out = albatross(&dir, &["info", "--socket", sock.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(122), "{}", show(&out));
    assert_eq!(String::from_utf8(out.stderr).unwrap().lines().count(), 1);
    // The default socket lives below --tmpdir.
    let out = albatross(&dir, &["info", "--tmpdir", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(122), "{}", show(&out));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("util/vmmd.sock"));
}

#[test]
fn garbage_and_silence() {
    let dir = test_dir("garbage");
    let sock = dir.join("vmmd.sock");
    let d = daemon(&sock, 2, |i, mut s| {
        receive(&mut s);
        if i == 0 {
            write_frame(&mut s, b"\x30\x03\x02\x01\x05").unwrap();
        }
        // i == 1: close without a reply.
    });
    let out = albatross(&dir, &["info", "--socket", sock.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(121), "{}", show(&out));
    let out = albatross(&dir, &["info", "--socket", sock.to_str().unwrap()]);
    // Upstream treats the end of the connection as success.
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    d.join().unwrap();
}

#[test]
fn console_reads_until_the_daemon_closes() {
    let dir = test_dir("console");
    std::fs::create_dir_all(dir.join("util")).unwrap();
    let d = daemon(&dir.join("util/console.sock"), 1, |_, mut s| {
        let w = receive(&mut s);
        assert_eq!(
            w.payload,
            Payload::Command(Cmd::Console(ConsoleCmd::Subscribe(SinceCount::Count(2))))
        );
        send(
            &mut s,
            &w.header,
            Payload::Reply(Success::String("subscribed".into())),
        );
        let header = Header::new(name(":foo"));
        for line in [&b"hello world"[..], b"bell\x07 and \x1b[1mbold\xff"] {
            let timestamp = Timestamp::parse_rfc3339("2025-08-22T13:04:43Z").unwrap();
            send(
                &mut s,
                &header,
                Payload::Data(Data::Console {
                    timestamp,
                    line: line.to_vec(),
                }),
            );
        }
    });
    let out = albatross(
        &dir,
        &[
            "console",
            "foo",
            "--count",
            "2",
            "--tmpdir",
            dir.to_str().unwrap(),
        ],
    );
    d.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        ":foo: subscribed\n\
         :foo 2025-08-22T13:04:43-00:00 hello world\n\
         :foo 2025-08-22T13:04:43-00:00 bell\\x07 and \\x1b[1mbold\\xff\n"
    );
}

#[test]
fn stats_read_mode() {
    let dir = test_dir("stats");
    std::fs::create_dir_all(dir.join("util")).unwrap();
    let d = daemon(&dir.join("util/stat.sock"), 1, |_, mut s| {
        let w = receive(&mut s);
        assert_eq!(w.payload, Payload::Command(Cmd::Stats(StatsCmd::Subscribe)));
        send(
            &mut s,
            &w.header,
            Payload::Reply(Success::String("subscribed".into())),
        );
        let data = StatsData {
            rusage: RUsage {
                maxrss: 77,
                ..RUsage::default()
            },
            ..StatsData::default()
        };
        send(
            &mut s,
            &Header::new(name(":hello")),
            Payload::Data(Data::Stats(Box::new(data))),
        );
    });
    let out = albatross(&dir, &["stats", "--tmpdir", dir.to_str().unwrap()]);
    d.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert!(stdout.lines().nth(1).unwrap().contains("maxrss 77"));
}

#[test]
fn set_block_streams_chunks() {
    let content: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    for (level, compressed) in [("0", false), ("9", true)] {
        let dir = test_dir(&format!("set{level}"));
        let file = dir.join("content.bin");
        std::fs::write(&file, &content).unwrap();
        let sock = dir.join("vmmd.sock");
        let expected = content.clone();
        let d = daemon(&sock, 1, move |_, mut s| {
            let w = receive(&mut s);
            assert_eq!(
                w.payload,
                Payload::Command(Cmd::Block(BlockCmd::Set(compressed)))
            );
            let chunks = receive_chunks(&mut s);
            let data = chunks.concat();
            if compressed {
                assert_eq!(inflate(&data), expected);
            } else {
                assert!(chunks.iter().all(|c| c.len() <= 4096));
                assert_eq!(data, expected);
            }
            send(
                &mut s,
                &w.header,
                Payload::Reply(Success::String("set block device".into())),
            );
        });
        let out = albatross(
            &dir,
            &[
                "set-block",
                "disk",
                file.to_str().unwrap(),
                "--compression-level",
                level,
                "--socket",
                sock.to_str().unwrap(),
            ],
        );
        d.join().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            ":disk: set block device\n"
        );
    }
}

#[test]
fn create_block_with_data_uses_two_connections() {
    let dir = test_dir("createblock");
    let file = dir.join("content.bin");
    std::fs::write(&file, b"initial content").unwrap();
    let sock = dir.join("vmmd.sock");
    let d = daemon(&sock, 2, |i, mut s| {
        let w = receive(&mut s);
        if i == 0 {
            assert_eq!(w.payload, Payload::Command(Cmd::Block(BlockCmd::Add(3))));
            send(
                &mut s,
                &w.header,
                Payload::Reply(Success::String("added block device".into())),
            );
        } else {
            assert_eq!(
                w.payload,
                Payload::Command(Cmd::Block(BlockCmd::Set(false)))
            );
            assert_eq!(receive_chunks(&mut s).concat(), b"initial content");
            send(
                &mut s,
                &w.header,
                Payload::Reply(Success::String("set block device".into())),
            );
        }
    });
    let out = albatross(
        &dir,
        &[
            "create-block",
            "disk",
            "3",
            "--data",
            file.to_str().unwrap(),
            "--socket",
            sock.to_str().unwrap(),
        ],
    );
    d.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        ":disk: added block device\n:disk: set block device\n"
    );
}

#[test]
fn dump_block_writes_a_file() {
    let content: Vec<u8> = (0..9000u32).map(|i| (i % 7) as u8).collect();
    for compressed in [false, true] {
        let dir = test_dir(&format!("dump{compressed}"));
        let sock = dir.join("vmmd.sock");
        let sent = content.clone();
        let d = daemon(&sock, 1, move |_, mut s| {
            let w = receive(&mut s);
            let level = if compressed { 5 } else { 0 };
            assert_eq!(
                w.payload,
                Payload::Command(Cmd::Block(BlockCmd::Dump(level)))
            );
            send(
                &mut s,
                &w.header,
                Payload::Reply(Success::BlockDeviceImage(compressed)),
            );
            let body = if compressed {
                deflate(&sent)
            } else {
                sent.clone()
            };
            for piece in body.chunks(4096) {
                send(
                    &mut s,
                    &w.header,
                    Payload::Data(Data::BlockChunk(piece.to_vec())),
                );
            }
            send(&mut s, &w.header, Payload::Data(Data::BlockEof));
        });
        let level = if compressed { "5" } else { "0" };
        let out = albatross(
            &dir,
            &[
                "dump-block",
                "disk",
                "--compression-level",
                level,
                "--socket",
                sock.to_str().unwrap(),
            ],
        );
        d.join().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        assert!(String::from_utf8(out.stdout)
            .unwrap()
            .starts_with(":disk: dumped to "));
        assert_eq!(written_file(&dir, ":disk."), content);
    }
}

#[test]
fn dump_block_cut_short_exits_121() {
    let dir = test_dir("dumpshort");
    let sock = dir.join("vmmd.sock");
    let d = daemon(&sock, 1, |_, mut s| {
        let w = receive(&mut s);
        send(
            &mut s,
            &w.header,
            Payload::Reply(Success::BlockDeviceImage(false)),
        );
        send(
            &mut s,
            &w.header,
            Payload::Data(Data::BlockChunk(vec![1, 2, 3])),
        );
    });
    let out = albatross(
        &dir,
        &["dump-block", "disk", "--socket", sock.to_str().unwrap()],
    );
    d.join().unwrap();
    assert_eq!(out.status.code(), Some(121), "{}", show(&out));
}

#[test]
fn get_writes_the_uncompressed_image() {
    let dir = test_dir("get");
    let sock = dir.join("vmmd.sock");
    let d = daemon(&sock, 1, |_, mut s| {
        let w = receive(&mut s);
        assert_eq!(
            w.payload,
            Payload::Command(Cmd::Unikernel(UnikernelCmd::Get(9)))
        );
        let image = deflate(b"an image");
        send(
            &mut s,
            &w.header,
            Payload::Reply(Success::UnikernelImage {
                compressed: true,
                image,
            }),
        );
    });
    let out = albatross(
        &dir,
        &[
            "get",
            "Hello",
            "--compression-level",
            "9",
            "--socket",
            sock.to_str().unwrap(),
        ],
    );
    d.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(written_file(&dir, ":hello."), b"an image");
}

#[test]
fn chunk_writer_ends_with_zero_length() {
    // The end marker is what a daemon waits for; check the raw bytes once.
    let mut buf = Vec::new();
    write_frame(&mut buf, b"ab").unwrap();
    write_end(&mut buf).unwrap();
    assert_eq!(buf, [0, 0, 0, 2, b'a', b'b', 0, 0, 0, 0]);
}

fn b64(text: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.trim().bytes().filter(|c| *c != b'=') {
        acc = acc << 6 | alphabet.iter().position(|a| *a == c).unwrap() as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[test]
fn inspect_dump_reads_every_layout() {
    let dir = test_dir("inspect");
    let vectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    for (file, names) in [
        (
            "state_wire4_unikernel1.b64",
            [":foo.my.nice.unikernel", ":bar.hello"],
        ),
        (
            "state_wire5_unikernel3_path.b64",
            ["foo:my.nice.unikernel", "bar:hello"],
        ),
        (
            "state_wire5_unikernel3_with_mac.b64",
            ["bar:hello", "foo:hello"],
        ),
    ] {
        let state = dir.join(file.replace(".b64", ""));
        std::fs::write(
            &state,
            b64(&std::fs::read_to_string(vectors.join(file)).unwrap()),
        )
        .unwrap();
        let out = albatross(&dir, &["inspect-dump", "--file", state.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(stdout.starts_with("parsed 4 unikernels:\n"), "{stdout}");
        assert!(stdout.contains("parsed 0 policies:\n"), "{stdout}");
        for n in names {
            assert!(
                stdout.contains(&format!("\n{n}: typ solo5")),
                "{n} in {stdout}"
            );
        }
    }
}

#[test]
fn current_state_files_with_dbdir_and_extract() {
    let dir = test_dir("extract");
    let image = b"the unikernel image".to_vec();
    let args = UnikernelArguments {
        fail_behaviour: FailBehaviour::Restart(vec![3]),
        startup: Some(10),
        add_name: true,
        cpuids: vec![1],
        memory: 64,
        blocks: vec![BlockSpec {
            name: "storage".into(),
            device: Some("disk".into()),
            sector_size: Some(4096),
        }],
        bridges: vec![NetSpec {
            netif: "service".into(),
            bridge: None,
            mac: None,
        }],
        argv: Some(vec!["--hello=Hi".into()]),
        cpus: 1,
        linux_boot_partition: None,
    };
    let unikernels = vec![
        (
            name("tenant:web"),
            UnikernelConfig {
                typ: Typ::Solo5,
                compressed: true,
                image: deflate(&image),
                args: args.clone(),
            },
        ),
        (
            name(":plain"),
            UnikernelConfig {
                typ: Typ::Solo5,
                compressed: false,
                image: image.clone(),
                args,
            },
        ),
    ];
    let policies = vec![(
        NamePath::parse("tenant").unwrap(),
        Policy {
            unikernels: 2,
            cpuids: [1].into_iter().collect(),
            memory: 128,
            block: Some(10),
            bridges: ["service".to_string()].into_iter().collect(),
        },
    )];
    std::fs::write(dir.join("state"), encode_state(&unikernels, &policies)).unwrap();
    let d = dir.to_str().unwrap();
    let out = albatross(&dir, &["inspect-dump", "--dbdir", d]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("parsed 2 unikernels:\n"), "{stdout}");
    assert!(stdout.contains("tenant:web: typ solo5, image "), "{stdout}");
    assert!(
        stdout.contains("blocks [storage:disk@4096], nets [service], argv [\"--hello=Hi\"]"),
        "{stdout}"
    );
    assert!(stdout.contains("parsed 1 policies:\ntenant:: unikernels 2, memory 128 MB, cpuids 1, block 10 MB, bridges service\n"), "{stdout}");

    let out = albatross(&dir, &["extract-dump", "Tenant:Web", "--dbdir", d]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(written_file(&dir, "tenant:web."), image);
    let out = albatross(
        &dir,
        &["extract-dump", ":plain", "--dbdir", d, "--file", "state"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(written_file(&dir, ":plain."), image);

    let out = albatross(&dir, &["extract-dump", "nobody", "--dbdir", d]);
    assert_eq!(out.status.code(), Some(124), "{}", show(&out));
    std::fs::write(dir.join("broken"), b"\x30\x00").unwrap();
    let out = albatross(&dir, &["inspect-dump", "--dbdir", d, "--file", "broken"]);
    assert_eq!(out.status.code(), Some(124), "{}", show(&out));
    assert_eq!(String::from_utf8(out.stderr).unwrap().lines().count(), 1);
}
