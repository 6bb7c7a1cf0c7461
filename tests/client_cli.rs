//! The client's command line, run as the real binary (`albatross <sub>` and
//! through a link named `albatross-client`), with `--socket -`: the hex dump
//! on stdout is parsed and compared with DER that this test writes by hand
//! from the grammar of §5, independently of the encoder under test.

use std::io::Read;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use albatross::solo5::testimage::build_test_image;
use albatross::solo5::{AbiTarget, DeviceKind};

// ---------------------------------------------------------------------------
// DER, written by hand

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &cat(parts))
}

/// SET OF: elements sorted by their encodings (§4.1).
fn set(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut sorted = parts.to_vec();
    sorted.sort();
    tlv(0x31, &cat(&sorted))
}

fn int(v: i64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let mut start = 0;
    while start < 7
        && ((bytes[start] == 0 && bytes[start + 1] < 0x80)
            || (bytes[start] == 0xff && bytes[start + 1] >= 0x80))
    {
        start += 1;
    }
    tlv(0x02, &bytes[start..])
}

fn boolean(b: bool) -> Vec<u8> {
    tlv(0x01, &[if b { 0xff } else { 0 }])
}

fn null() -> Vec<u8> {
    vec![0x05, 0x00]
}

fn utf8(s: &str) -> Vec<u8> {
    tlv(0x0c, s.as_bytes())
}

fn octets(b: &[u8]) -> Vec<u8> {
    tlv(0x04, b)
}

/// `[n]` EXPLICIT.
fn ctx(n: u8, inner: &[u8]) -> Vec<u8> {
    tlv(0xa0 | n, inner)
}

/// A command message with version 5, sequence 0 and `name`.
fn wire(name: &str, command: Vec<u8>) -> Vec<u8> {
    seq(&[
        seq(&[int(5), octets(&[0; 8]), utf8(name)]),
        ctx(0, &command),
    ])
}

fn console(c: Vec<u8>) -> Vec<u8> {
    ctx(0, &c)
}
fn stats(c: Vec<u8>) -> Vec<u8> {
    ctx(1, &c)
}
fn unikernel(c: Vec<u8>) -> Vec<u8> {
    ctx(3, &c)
}
fn policy(c: Vec<u8>) -> Vec<u8> {
    ctx(4, &c)
}
fn block(c: Vec<u8>) -> Vec<u8> {
    ctx(5, &c)
}

fn gentime(s: &str) -> Vec<u8> {
    tlv(0x18, s.as_bytes())
}

fn from_hex(text: &str) -> Vec<u8> {
    let text = text.trim();
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn vector(file: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(file);
    from_hex(&std::fs::read_to_string(path).unwrap())
}

/// The fields of a unikernel configuration after typ/compressed/image:
/// what `UnikernelArguments` and `UnikernelConfig` share (§5.5).
struct Args {
    fail: Vec<u8>,
    startup: Option<i64>,
    add_name: bool,
    cpuids: Vec<i64>,
    memory: i64,
    blocks: Vec<Vec<u8>>,
    nets: Vec<Vec<u8>>,
    argv: Option<Vec<&'static str>>,
    cpus: i64,
    boot: Option<&'static str>,
}

impl Default for Args {
    fn default() -> Args {
        Args {
            fail: ctx(0, &null()),
            startup: None,
            add_name: true,
            cpuids: vec![0],
            memory: 32,
            blocks: vec![],
            nets: vec![],
            argv: None,
            cpus: 1,
            boot: None,
        }
    }
}

impl Args {
    /// `startup`, `add-name`, ... in the order both layouts have after
    /// `fail-behaviour` (the config puts `startup` before `add-name` and
    /// `fail-behaviour` after, the arguments put `fail-behaviour` first).
    fn tail(&self) -> Vec<Vec<u8>> {
        let mut out = vec![
            set(&self.cpuids.iter().map(|c| int(*c)).collect::<Vec<_>>()),
            int(self.memory),
        ];
        if !self.blocks.is_empty() {
            out.push(ctx(0, &set(&self.blocks)));
        }
        if !self.nets.is_empty() {
            out.push(ctx(1, &set(&self.nets)));
        }
        if let Some(argv) = &self.argv {
            out.push(ctx(
                2,
                &seq(&argv.iter().map(|a| utf8(a)).collect::<Vec<_>>()),
            ));
        }
        out.push(ctx(3, &int(self.cpus)));
        if let Some(boot) = self.boot {
            out.push(ctx(4, &utf8(boot)));
        }
        out
    }

    fn arguments(&self) -> Vec<u8> {
        let mut parts = vec![self.fail.clone()];
        if let Some(s) = self.startup {
            parts.push(int(s));
        }
        parts.push(boolean(self.add_name));
        parts.extend(self.tail());
        seq(&parts)
    }

    fn config(&self, typ: Vec<u8>, compressed: bool, image: &[u8]) -> Vec<u8> {
        let mut parts = vec![typ, boolean(compressed), octets(image)];
        if let Some(s) = self.startup {
            parts.push(int(s));
        }
        parts.push(boolean(self.add_name));
        parts.push(self.fail.clone());
        parts.extend(self.tail());
        seq(&parts)
    }
}

fn solo5() -> Vec<u8> {
    ctx(0, &null())
}

fn create_wire(name: &str, args: &Args, image: &[u8]) -> Vec<u8> {
    wire(
        name,
        unikernel(ctx(20, &args.config(solo5(), false, image))),
    )
}

fn block_spec(name: &str, device: Option<&str>, sector: Option<i64>) -> Vec<u8> {
    let mut parts = vec![utf8(name)];
    parts.extend(device.map(utf8));
    parts.extend(sector.map(int));
    seq(&parts)
}

fn net_spec(name: &str, bridge: Option<&str>, mac: Option<[u8; 6]>) -> Vec<u8> {
    let mut parts = vec![utf8(name)];
    parts.extend(bridge.map(utf8));
    parts.extend(mac.map(|m| octets(&m)));
    seq(&parts)
}

/// `Policy` (§5.5): cpuids first, block optional, both lists SEQUENCE OF.
fn policy_value(
    cpuids: &[i64],
    unikernels: i64,
    memory: i64,
    blk: Option<i64>,
    bridges: &[&str],
) -> Vec<u8> {
    let mut parts = vec![
        seq(&cpuids.iter().map(|c| int(*c)).collect::<Vec<_>>()),
        int(unikernels),
        int(memory),
    ];
    parts.extend(blk.map(int));
    parts.push(seq(&bridges.iter().map(|b| utf8(b)).collect::<Vec<_>>()));
    seq(&parts)
}

// ---------------------------------------------------------------------------
// Running the binary

struct Fixture {
    dir: PathBuf,
    client_link: PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("albatross-client-cli-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let client_link = dir.join("albatross-client");
        symlink(env!("CARGO_BIN_EXE_albatross"), &client_link).unwrap();
        for role in [
            "albatrossd",
            "albatross-console",
            "albatross_log",
            "albatross-stats",
            "albatross-influx",
            "albatross-tls-endpoint",
            "albatross_tls_inetd",
            "albatross_provision_request",
            "albatross_provision_ca",
        ] {
            symlink(env!("CARGO_BIN_EXE_albatross"), dir.join(role)).unwrap();
        }
        std::fs::write(dir.join("plain.img"), plain_image()).unwrap();
        std::fs::write(dir.join("devices.img"), devices_image()).unwrap();
        std::fs::write(dir.join("data.bin"), vec![7u8; 5000]).unwrap();
        std::fs::write(dir.join("big.bin"), vec![0u8; (1 << 20) + 1]).unwrap();
        for f in ["ca.pem", "ca.key", "cert.pem", "key.pem", "req.csr"] {
            std::fs::write(dir.join(f), "-----BEGIN NOTHING-----\n").unwrap();
        }
        Fixture { dir, client_link }
    })
}

fn plain_image() -> Vec<u8> {
    build_test_image(AbiTarget::Hvt, 1, &[], b"no devices at all")
}

fn devices_image() -> Vec<u8> {
    build_test_image(
        AbiTarget::Hvt,
        1,
        &[
            ("storage", DeviceKind::BlockBasic),
            ("service", DeviceKind::NetBasic),
        ],
        b"one block device and one network",
    )
}

/// Replaces `@NAME` placeholders by files of the fixture directory.
fn expand(args: &[&str]) -> Vec<String> {
    let dir = &fixture().dir;
    args.iter()
        .map(|a| match a.strip_prefix('@') {
            Some(file) => dir.join(file).to_string_lossy().into_owned(),
            None => a.replace("=@", &format!("={}/", dir.display())),
        })
        .collect()
}

fn run_with(program: &Path, args: &[String]) -> Output {
    Command::new(program)
        .args(args)
        .env("TMPDIR", &fixture().dir)
        .current_dir(&fixture().dir)
        .output()
        .unwrap()
}

/// Runs `albatross ARGS`.
fn run(args: &[&str]) -> Output {
    run_with(Path::new(env!("CARGO_BIN_EXE_albatross")), &expand(args))
}

/// Runs `albatross-client ARGS` (the link).
fn run_client(args: &[&str]) -> Output {
    run_with(&fixture().client_link, &expand(args))
}

/// Runs a program of the fixture directory (a link to the binary).
fn run_program(program: &str, args: &[&str]) -> Output {
    run_with(&fixture().dir.join(program), &expand(args))
}

/// The messages of `--socket -` output, checking the dump format of §16.8
/// on the way: `out:`, lines of `%06x` offset, two spaces, 16 bytes in
/// groups, the ASCII column at column 50, then an empty line.
fn parse_dumps(stdout: &str) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    let mut lines = stdout.split('\n');
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        assert_eq!(line, "out:", "unexpected line in {stdout:?}");
        let mut bytes = Vec::new();
        for line in lines.by_ref() {
            if line.is_empty() {
                break;
            }
            let offset = usize::from_str_radix(&line[..6], 16).unwrap();
            assert_eq!(offset, bytes.len(), "offset of {line:?}");
            assert_eq!(&line[6..8], "  ");
            let hex = &line[8..50];
            let chunk = from_hex(&hex.replace(' ', ""));
            assert!(!chunk.is_empty() && chunk.len() <= 16);
            // Spacing: a space after every second byte, another after the
            // 8th and the 16th.
            let mut expected_hex = String::new();
            for (i, b) in chunk.iter().enumerate() {
                expected_hex.push_str(&format!("{b:02x}"));
                if i % 2 == 1 {
                    expected_hex.push(' ');
                }
                if i == 7 || i == 15 {
                    expected_hex.push(' ');
                }
            }
            assert_eq!(hex.trim_end(), expected_hex.trim_end(), "hex of {line:?}");
            let ascii: String = chunk
                .iter()
                .map(|&b| {
                    if (0x20..0x7f).contains(&b) {
                        b as char
                    } else {
                        '.'
                    }
                })
                .collect();
            assert_eq!(&line[50..], ascii, "ascii of {line:?}");
            bytes.extend(chunk);
        }
        messages.push(bytes);
    }
    messages
}

fn show(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `args` with `--socket -` both ways and checks exit 121 and the
/// dumped messages.
fn check(args: &[&str], expected: &[Vec<u8>]) {
    let mut full = args.to_vec();
    full.extend(["--socket", "-"]);
    check_raw(&full, expected);
}

/// As [`check`], for arguments that already contain `--socket -`.
fn check_raw(args: &[&str], expected: &[Vec<u8>]) {
    for out in [run(args), run_client(args)] {
        assert_eq!(out.status.code(), Some(121), "{args:?}\n{}", show(&out));
        let got = parse_dumps(&String::from_utf8(out.stdout.clone()).unwrap());
        assert_eq!(got.len(), expected.len(), "{args:?}\n{}", show(&out));
        for (g, e) in got.iter().zip(expected) {
            assert_eq!(hex(g), hex(e), "{args:?}");
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ---------------------------------------------------------------------------
// Valid command lines

#[test]
fn unikernel_queries_and_life_cycle() {
    let info = || unikernel(ctx(19, &null()));
    check(&["info"], &[wire(":", info())]);
    check(&["info", "-n", "hello"], &[wire(":hello", info())]);
    check(&["info", "--name=Foo:Bar"], &[wire("foo:bar", info())]);
    check(&["info", "-n", "a:b:"], &[wire("a:b:", info())]);
    check(&["info", "-nHELLO"], &[wire(":hello", info())]);
    check_raw(&["info", "--socket=-", "-n", "x"], &[wire(":x", info())]);
    check(
        &["destroy", "hello"],
        &[wire(":hello", unikernel(ctx(3, &null())))],
    );
    check(
        &["destroy", "FOO:Bar"],
        &[wire("foo:bar", unikernel(ctx(3, &null())))],
    );
    check_raw(
        &["destroy", "--socket", "-", "--", "hello"],
        &[wire(":hello", unikernel(ctx(3, &null())))],
    );
    check(
        &["get", "hello"],
        &[wire(":hello", unikernel(ctx(11, &int(0))))],
    );
    check(
        &["get", "hello", "--compression-level", "9"],
        &[wire(":hello", unikernel(ctx(11, &int(9))))],
    );
    check(
        &["get", "hello", "--compression-level=0"],
        &[wire(":hello", unikernel(ctx(11, &int(0))))],
    );
}

#[test]
fn restart() {
    let keep = wire(":hello", unikernel(ctx(14, &ctx(0, &null()))));
    check(&["restart", "hello"], std::slice::from_ref(&keep));
    // Without --replace-arguments the other options are ignored.
    check(
        &[
            "restart", "hello", "--mem", "64", "--net", "a", "--net", "a",
        ],
        &[keep],
    );
    let args = |a: Args| wire(":hello", unikernel(ctx(14, &ctx(3, &a.arguments()))));
    check(
        &["restart", "hello", "--replace-arguments"],
        &[args(Args::default())],
    );
    check(
        &[
            "restart",
            "hello",
            "--replace-arguments",
            "--exit-code",
            "3",
        ],
        &[args(Args::default())],
    );
    check(
        &[
            "restart",
            "hello",
            "--replace-arguments",
            "--mem=64",
            "--cpu",
            "1",
            "--cpu",
            "0",
            "--arg=--x",
            "--arg",
            "y",
            "--restart",
            "--exit-code",
            "3",
            "--startup",
            "10",
            "--no-add-name",
            "--block",
            "data@4096",
            "--net",
            "service:br0",
            "--cpus",
            "2",
            "--linux-boot",
            "hd0",
        ],
        &[args(Args {
            fail: ctx(1, &set(&[int(3)])),
            startup: Some(10),
            add_name: false,
            cpuids: vec![1, 0],
            memory: 64,
            blocks: vec![block_spec("data", None, Some(4096))],
            nets: vec![net_spec("service", Some("br0"), None)],
            argv: Some(vec!["--x", "y"]),
            cpus: 2,
            boot: Some("hd0"),
        })],
    );
}

#[test]
fn create_unikernel() {
    let plain = plain_image();
    let devices = devices_image();
    let d = Args::default;
    check(
        &["create", "hello", "@plain.img"],
        &[create_wire(":hello", &d(), &plain)],
    );
    check(
        &["create", "-f", "hello", "@plain.img"],
        &[wire(
            ":hello",
            unikernel(ctx(21, &d().config(solo5(), false, &plain))),
        )],
    );
    check(
        &["create", "Tenant:Hello", "@plain.img"],
        &[create_wire("tenant:hello", &d(), &plain)],
    );
    check(
        &["create", "a:b:", "@plain.img"],
        &[create_wire("a:b:", &d(), &plain)],
    );
    check(
        &[
            "create",
            "hello",
            "@devices.img",
            "--net",
            "service",
            "--block",
            "storage",
        ],
        &[create_wire(
            ":hello",
            &Args {
                blocks: vec![block_spec("storage", None, None)],
                nets: vec![net_spec("service", None, None)],
                ..d()
            },
            &devices,
        )],
    );
    check(
        &[
            "create",
            "hello",
            "@devices.img",
            "--net=service:br0@00:DE:ad:be:ef:01",
            "--block=storage:disk@4096",
        ],
        &[create_wire(
            ":hello",
            &Args {
                blocks: vec![block_spec("storage", Some("disk"), Some(4096))],
                nets: vec![net_spec(
                    "service",
                    Some("br0"),
                    Some([0, 0xde, 0xad, 0xbe, 0xef, 1]),
                )],
                ..d()
            },
            &devices,
        )],
    );
    check(
        &["create", "hello", "@plain.img", "--mem=-1"],
        &[create_wire(":hello", &Args { memory: -1, ..d() }, &plain)],
    );
    check(
        &[
            "create",
            "hello",
            "@plain.img",
            "--arg=--ipv4=10.0.0.2/24",
            "--arg",
            "plain",
        ],
        &[create_wire(
            ":hello",
            &Args {
                argv: Some(vec!["--ipv4=10.0.0.2/24", "plain"]),
                ..d()
            },
            &plain,
        )],
    );
    check(
        &[
            "create",
            "hello",
            "@plain.img",
            "--cpu",
            "300",
            "--cpu",
            "1",
            "--cpu",
            "300",
        ],
        &[create_wire(
            ":hello",
            &Args {
                cpuids: vec![300, 1],
                ..d()
            },
            &plain,
        )],
    );
    check(
        &["create", "hello", "@plain.img", "--restart-on-fail"],
        &[create_wire(
            ":hello",
            &Args {
                fail: ctx(1, &set(&[])),
                ..d()
            },
            &plain,
        )],
    );
    check(
        &[
            "create",
            "hello",
            "@plain.img",
            "--restart",
            "--exit-code",
            "255",
            "--exit-code",
            "3",
        ],
        &[create_wire(
            ":hello",
            &Args {
                fail: ctx(1, &set(&[int(255), int(3)])),
                ..d()
            },
            &plain,
        )],
    );
    check(
        &["create", "hello", "@plain.img", "--exit-code", "3"],
        &[create_wire(":hello", &d(), &plain)],
    );
    check(
        &[
            "create",
            "hello",
            "@plain.img",
            "--startup",
            "10",
            "--no-add-name",
            "--cpus",
            "2",
            "--linux-boot",
            "hd0,msdos1",
            "--compression-level",
            "0",
        ],
        &[create_wire(
            ":hello",
            &Args {
                startup: Some(10),
                add_name: false,
                cpus: 2,
                boot: Some("hd0,msdos1"),
                ..d()
            },
            &plain,
        )],
    );
    let bhyve = wire(
        ":vm",
        unikernel(ctx(20, &d().config(ctx(1, &null()), false, &[]))),
    );
    check(
        &["create", "vm", "--typ", "bhyve"],
        std::slice::from_ref(&bhyve),
    );
    check(&["create", "vm", "@plain.img", "--typ=bhyve"], &[bhyve]);
}

/// Minimal DER walking, to take the compressed image out of a message.
fn children(mut bytes: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let tag = bytes[0];
        let (len, skip) = if bytes[1] < 0x80 {
            (bytes[1] as usize, 2)
        } else {
            let n = (bytes[1] & 0x7f) as usize;
            (
                bytes[2..2 + n]
                    .iter()
                    .fold(0usize, |a, b| a << 8 | *b as usize),
                2 + n,
            )
        };
        out.push((tag, &bytes[skip..skip + len]));
        bytes = &bytes[skip + len..];
    }
    out
}

#[test]
fn create_compressed() {
    let plain = plain_image();
    for args in [
        &[
            "create",
            "hello",
            "@plain.img",
            "--compression-level",
            "9",
            "--socket",
            "-",
        ][..],
        &[
            "create",
            "hello",
            "@plain.img",
            "--compression-level=1",
            "--socket",
            "-",
        ][..],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(121), "{}", show(&out));
        let got = parse_dumps(&String::from_utf8(out.stdout).unwrap()).remove(0);
        // wire -> payload [0] -> unikernel [3] -> create [20] -> config
        let top = children(&got);
        let payload = children(top[0].1);
        let cmd = children(payload[1].1);
        let create = children(cmd[0].1);
        let config = children(create[0].1);
        let fields = children(config[0].1);
        assert_eq!(fields[2].0, 0x04);
        let compressed = fields[2].1.to_vec();
        let mut inflated = Vec::new();
        flate2::read::ZlibDecoder::new(&compressed[..])
            .read_to_end(&mut inflated)
            .unwrap();
        assert_eq!(inflated, plain);
        let expected = wire(
            ":hello",
            unikernel(ctx(20, &Args::default().config(solo5(), true, &compressed))),
        );
        assert_eq!(hex(&got), hex(&expected));
    }
}

#[test]
fn policies() {
    check(&["policy"], &[wire(":", policy(ctx(0, &null())))]);
    check(
        &["policy", "-p", "a:b"],
        &[wire("a:b:", policy(ctx(0, &null())))],
    );
    check(
        &["policy", "--path=A"],
        &[wire("a:", policy(ctx(0, &null())))],
    );
    let add = |name: &str, p: Vec<u8>| wire(name, policy(ctx(1, &p)));
    check(
        &["add-policy", "user", "16"],
        &[add("user:", policy_value(&[0], 16, 512, None, &[]))],
    );
    check(
        &[
            "add-policy",
            "user",
            "16",
            "--mem",
            "1024",
            "--cpu",
            "1",
            "--cpu",
            "0",
            "--size",
            "100",
            "--bridge",
            "br1",
            "--network",
            "br0",
        ],
        &[add(
            "user:",
            policy_value(&[0, 1], 16, 1024, Some(100), &["br0", "br1"]),
        )],
    );
    check(
        &[
            "replace-policy",
            "A:b",
            "2",
            "--block=10",
            "--network",
            "service",
        ],
        &[add(
            "a:b:",
            policy_value(&[0], 2, 512, Some(10), &["service"]),
        )],
    );
    check(
        &["add-policy", "user", "2", "--cpu", "3", "--cpu", "3"],
        &[add("user:", policy_value(&[3], 2, 512, None, &[]))],
    );
    check(&["remove-policy"], &[wire(":", policy(ctx(2, &null())))]);
    check(
        &["remove-policy", "-p", "user"],
        &[wire("user:", policy(ctx(2, &null())))],
    );
}

#[test]
fn blocks() {
    check(&["block"], &[wire(":", block(ctx(0, &null())))]);
    check(
        &["block", "--name=disk"],
        &[wire(":disk", block(ctx(0, &null())))],
    );
    check(
        &["create-block", "disk", "10"],
        &[wire(":disk", block(ctx(1, &int(10))))],
    );
    // Two messages: add, then set (whose chunk stream is not printed).
    check(
        &["create-block", "disk", "10", "--data", "@data.bin"],
        &[
            wire(":disk", block(ctx(1, &int(10)))),
            wire(":disk", block(ctx(7, &boolean(false)))),
        ],
    );
    check(
        &[
            "create-block",
            "disk",
            "10",
            "--data=@data.bin",
            "--compression-level",
            "5",
        ],
        &[
            wire(":disk", block(ctx(1, &int(10)))),
            wire(":disk", block(ctx(7, &boolean(true)))),
        ],
    );
    check(
        &["set-block", "disk", "@data.bin"],
        &[wire(":disk", block(ctx(7, &boolean(false))))],
    );
    check(
        &["set-block", "disk", "@data.bin", "--compression-level=9"],
        &[wire(":disk", block(ctx(7, &boolean(true))))],
    );
    check(
        &["dump-block", "disk"],
        &[wire(":disk", block(ctx(6, &int(0))))],
    );
    check(
        &["dump-block", "disk", "--compression-level", "4"],
        &[wire(":disk", block(ctx(6, &int(4))))],
    );
    check(
        &["destroy-block", "disk"],
        &[wire(":disk", block(ctx(2, &null())))],
    );
}

#[test]
fn consoles() {
    check(
        &["console", "foo"],
        &[vector("wire_console_subscribe_foo_count20.hex")],
    );
    check(
        &["console", "foo.bar"],
        &[vector("wire_console_subscribe_foo.bar_count20.hex")],
    );
    let sub = |c: Vec<u8>| wire(":foo", console(ctx(2, &c)));
    check(&["console", "foo", "--count", "5"], &[sub(ctx(1, &int(5)))]);
    check(&["console", "foo", "--count=-1"], &[sub(ctx(1, &int(-1)))]);
    check(
        &["console", "foo", "--since", "2025-08-22"],
        &[sub(ctx(0, &gentime("20250822000000Z")))],
    );
    // --since wins over --count; fractions are cut to milliseconds.
    check(
        &[
            "console",
            "foo",
            "--since=2025-08-22T13:04:43.123456+02:00",
            "--count",
            "3",
        ],
        &[sub(ctx(0, &gentime("20250822110443.123Z")))],
    );
    check(
        &["inactive-consoles"],
        &[wire(":", console(ctx(3, &null())))],
    );
    check(
        &["inactive-consoles", "-p", "user"],
        &[wire("user:", console(ctx(3, &null())))],
    );
}

#[test]
fn statistics() {
    check(&["stats"], &[wire(":", stats(ctx(2, &null())))]);
    check(
        &["stats", "-n", "hello"],
        &[wire(":hello", stats(ctx(2, &null())))],
    );
    check(
        &["stats-add", "42"],
        &[wire(
            ":",
            stats(ctx(0, &seq(&[utf8(""), int(42), seq(&[])]))),
        )],
    );
    check(
        &[
            "stats-add",
            "42",
            "--vmmdev",
            "solo5-42",
            "--bridge",
            "service:vmmtap0",
            "--bridge=net2:vmmtap1",
            "-n",
            "hello",
        ],
        &[wire(
            ":hello",
            stats(ctx(
                0,
                &seq(&[
                    utf8("solo5-42"),
                    int(42),
                    seq(&[
                        seq(&[utf8("service"), utf8("vmmtap0")]),
                        seq(&[utf8("net2"), utf8("vmmtap1")]),
                    ]),
                ]),
            )),
        )],
    );
    check(&["stats-remove"], &[wire(":", stats(ctx(1, &null())))]);
    check(
        &["stats-remove", "-n", "hello"],
        &[wire(":hello", stats(ctx(1, &null())))],
    );
}

#[test]
fn common_options_anywhere() {
    let info = wire(":hello", unikernel(ctx(19, &null())));
    check(
        &["info", "-v", "-q", "-n", "hello"],
        std::slice::from_ref(&info),
    );
    check(
        &[
            "info",
            "-vv",
            "-n",
            "hello",
            "--color",
            "never",
            "--verbosity=debug",
        ],
        std::slice::from_ref(&info),
    );
    check(
        &["info", "--tmpdir=/tmp", "-n", "hello", "--key-type", "p256"],
        std::slice::from_ref(&info),
    );
    check(
        &[
            "info",
            "--ca",
            "@ca.pem",
            "--ca-key=@ca.key",
            "--server-ca",
            "@ca.pem",
            "-n",
            "hello",
        ],
        &[info],
    );
}

// ---------------------------------------------------------------------------
// Invalid command lines: exit 124 and exactly one line on stderr

fn check_error(args: &[&str], needle: &str) {
    for out in [run(args), run_client(args)] {
        assert_eq!(out.status.code(), Some(124), "{args:?}\n{}", show(&out));
        let stderr = String::from_utf8(out.stderr.clone()).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{args:?}\n{}", show(&out));
        assert!(stderr.ends_with('\n'));
        assert!(
            stderr.contains(needle),
            "{args:?}: {stderr:?} lacks {needle:?}"
        );
        assert!(out.stdout.is_empty(), "{args:?}\n{}", show(&out));
    }
}

#[test]
fn invalid_command_lines() {
    let s = ["--socket", "-"];
    let with = |args: &[&'static str]| -> Vec<&'static str> {
        args.iter().chain(s.iter()).copied().collect()
    };
    let cases: &[(&[&str], &str)] = &[
        (&["create", "foo_bar", "@plain.img"], "invalid label"),
        (&["create", "-hello", "@plain.img"], "unknown option '-h'"),
        (&["info", "-n", "a::b"], "empty label"),
        (
            &[
                "create",
                "hello",
                "@plain.img",
                "--net",
                "a",
                "--net",
                "a:br0",
            ],
            "Bridge names must be a set",
        ),
        (
            &[
                "create",
                "hello",
                "@plain.img",
                "--block",
                "a",
                "--block",
                "a:b",
            ],
            "Block devices must be a set",
        ),
        (
            &["create", "hello", "@plain.img", "--net", "a@00:11:22"],
            "MAC address",
        ),
        (
            &[
                "create",
                "hello",
                "@plain.img",
                "--net",
                "a@zz:zz:zz:zz:zz:zz",
            ],
            "MAC address",
        ),
        (
            &["create", "hello", "@plain.img", "--net", "a:b:c"],
            "format is",
        ),
        (
            &["create", "hello", "@plain.img", "--block", "a@1000"],
            "power of two",
        ),
        (
            &["create", "hello", "@plain.img", "--block", "a@256"],
            "power of two",
        ),
        (
            &["create", "hello", "@plain.img", "--block", "a@x"],
            "must be an integer",
        ),
        (
            &["add-policy", "user", "0"],
            "Unusable policy with no unikernels",
        ),
        (
            &["add-policy", "user", "1", "--mem", "16"],
            "Unusable policy with memory 16 MB <= 16 MB",
        ),
        (
            &["add-policy", "user", "1", "--block=-1"],
            "Unusable policy with block -1 MB < 0 MB",
        ),
        (&["add-policy", "a:", "1"], "empty label"),
        (
            &["create", "hello", "/nonexistent/image"],
            "cannot read image",
        ),
        (
            &["create", "hello", "@plain.img", "--net", "service"],
            "does not match",
        ),
        (&["create", "hello", "@devices.img"], "does not match"),
        (
            &[
                "create",
                "hello",
                "@devices.img",
                "--block",
                "storage",
                "--net",
                "other",
            ],
            "does not match",
        ),
        (&["create", "hello", "@data.bin"], "image"),
        (&["create", "hello"], "IMAGE is required"),
        (
            &["create", "hello", "@plain.img", "--mem", "-1"],
            "unknown option '-1'",
        ),
        (
            &["create", "hello", "@plain.img", "--arg", "--x"],
            "unknown option '--x'",
        ),
        (
            &["create", "hello", "@plain.img", "--mem"],
            "needs an argument",
        ),
        (
            &["create", "hello", "@plain.img", "--force=yes"],
            "cannot take an argument",
        ),
        (&["create", "hello", "@plain.img", "--typ", "xen"], "solo5"),
        (
            &["create", "hello", "@plain.img", "--compression-level=-1"],
            "compression level",
        ),
        (&["info", "--bogus"], "unknown option '--bogus'"),
        (&["info", "--nam", "x"], "unknown option '--nam'"),
        (
            &["console", "foo", "--since", "yesterday"],
            "couldn't parse timestamp",
        ),
        (&["console", "foo", "--count", "x"], "expected an integer"),
        (
            &["get", "hello", "--compression-level", "10"],
            "compression level",
        ),
        (
            &["create-block", "disk", "1", "--data", "@big.bin"],
            "data exceeds size",
        ),
        (
            &["set-block", "disk", "/nonexistent"],
            "no '/nonexistent' file",
        ),
        (&["stats-add", "notanumber"], "expected an integer"),
        (&["stats-add", "1", "--bridge", "nocolon"], "bridge:tap"),
        (&["destroy"], "NAME"),
        (&["destroy", "a", "b"], "b"),
        (&["info", "--tmpdir", "/nonexistent"], "directory"),
        (&["info", "--key-type", "dsa"], "ed25519"),
        (&["info", "--verbosity", "loud"], "quiet"),
        (&["info", "--color", "pink"], "never"),
        (
            &["info", "--ca", "/nonexistent.pem"],
            "no '/nonexistent.pem' file",
        ),
        (&["info", "-d", "bad_host!"], "invalid host"),
        (&["info", "-d", "host:port"], "invalid port"),
        (&["info", "--csr"], "mutually exclusive"),
        (&["info", "-d", "example.org"], "mutually exclusive"),
        (&["nosuchcommand"], "unknown command 'nosuchcommand'"),
    ];
    for (args, needle) in cases {
        check_error(&with(args), needle);
    }
    // Without --socket.
    check_error(
        &["certificate", "@cert.pem", "@key.pem"],
        "no destination provided",
    );
    check_error(
        &["update", "hello", "--csr"],
        "update with CSR not supported",
    );
    check_error(&["update", "hello", "--http-host", "ftp://x"], "http");
    check_error(
        &["inspect-dump", "--file", "/nonexistent/state"],
        "dump file",
    );
    check_error(
        &["inspect-dump", "--socket", "-"],
        "unknown option '--socket'",
    );
    check_error(
        &["sign", "@ca.pem", "db", "@ca.key", "/nonexistent.csr"],
        "no '/nonexistent.csr' file",
    );
}

// ---------------------------------------------------------------------------
// Modes and roles not implemented yet

fn check_not_implemented(program: Option<&str>, args: &[&str], code: i32, needle: &str) {
    let out = match program {
        None => run(args),
        Some(p) => run_program(p, args),
    };
    assert_eq!(out.status.code(), Some(code), "{args:?}\n{}", show(&out));
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{args:?}\n{}", show(&out));
    assert!(
        stderr.contains(needle) && stderr.contains("not implemented in this version"),
        "{stderr:?}"
    );
}

#[test]
fn not_implemented_modes_exit_125() {
    check_not_implemented(None, &["info", "-d", "example.org"], 125, "remote mode");
    check_not_implemented(
        None,
        &["console", "foo", "--destination=-:1025"],
        125,
        "remote mode",
    );
    check_not_implemented(None, &["info", "--csr"], 125, "--csr");
    check_not_implemented(
        None,
        &["certificate", "@cert.pem", "@key.pem", "-d", "10.0.0.1"],
        125,
        "certificate",
    );
    check_not_implemented(
        None,
        &[
            "sign", "@ca.pem", "db", "@ca.key", "@req.csr", "--days", "3",
        ],
        125,
        "sign",
    );
    check_not_implemented(
        None,
        &[
            "generate",
            "ca",
            "db",
            "--server-days",
            "10",
            "--key-type",
            "rsa4096",
        ],
        125,
        "generate",
    );
    check_not_implemented(
        None,
        &[
            "update",
            "hello",
            "--dry-run",
            "--http-host",
            "https://builds.robur.coop/",
        ],
        125,
        "update",
    );
    check_not_implemented(
        Some("albatross_provision_request"),
        &["add-policy", "user", "2", "--bridge", "br0"],
        125,
        "--csr",
    );
    check_not_implemented(
        Some("albatross_provision_ca"),
        &["generate", "ca", "db"],
        125,
        "generate",
    );
}

#[test]
fn daemon_roles_exit_1() {
    for (args, role) in [
        (&["daemon"][..], "albatrossd"),
        (&["console-daemon", "--max-subscribers", "3"][..], "console"),
        (&["stats-daemon", "--interval=5"][..], "stats"),
        (&["log-daemon"][..], "log"),
        (&["influx", "--influx", "127.0.0.1"][..], "influx"),
        (
            &[
                "tls-endpoint",
                "@ca.pem",
                "@cert.pem",
                "@key.pem",
                "--port",
                "4433",
            ][..],
            "TLS endpoint",
        ),
        (
            &["tls-inetd", "@ca.pem", "@cert.pem", "@key.pem"][..],
            "tls-inetd",
        ),
    ] {
        check_not_implemented(None, args, 1, &format!("the {role} role"));
    }
    for (program, role) in [
        ("albatrossd", "albatrossd"),
        ("albatross-console", "console"),
        ("albatross_log", "log"),
        ("albatross-stats", "stats"),
        ("albatross-influx", "influx"),
    ] {
        check_not_implemented(Some(program), &["-v"], 1, &format!("the {role} role"));
    }
    let out = run(&[
        "tls-endpoint",
        "@ca.pem",
        "@cert.pem",
        "@key.pem",
        "--port",
        "1",
        "--systemd-socket-activation",
    ]);
    assert_eq!(out.status.code(), Some(124), "{}", show(&out));
    let out = run_program("albatross-console", &["--max-subscribers", "0"]);
    assert_eq!(out.status.code(), Some(124), "{}", show(&out));
}

// ---------------------------------------------------------------------------
// Help

const CLIENT_SUBCOMMANDS: &[&str] = &[
    "create",
    "destroy",
    "restart",
    "info",
    "get",
    "update",
    "policy",
    "add-policy",
    "replace-policy",
    "remove-policy",
    "block",
    "create-block",
    "set-block",
    "dump-block",
    "destroy-block",
    "console",
    "inactive-consoles",
    "stats",
    "stats-add",
    "stats-remove",
    "certificate",
    "sign",
    "generate",
    "inspect-dump",
    "extract-dump",
];

const DAEMON_SUBCOMMANDS: &[&str] = &[
    "daemon",
    "tls-endpoint",
    "tls-inetd",
    "console-daemon",
    "log-daemon",
    "stats-daemon",
    "influx",
];

fn check_help(out: Output, what: &str) -> String {
    assert_eq!(out.status.code(), Some(0), "{what}\n{}", show(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("Usage: "), "{what}: {text}");
    assert!(out.stderr.is_empty(), "{what}");
    text
}

#[test]
fn help_of_everything() {
    let top = check_help(run(&["--help"]), "--help");
    for sub in CLIENT_SUBCOMMANDS.iter().chain(DAEMON_SUBCOMMANDS) {
        assert!(
            top.contains(&format!("\n  {sub} ")),
            "{sub} missing from the top help"
        );
    }
    check_help(run(&[]), "no arguments");
    check_help(run(&["help"]), "help");
    let client_top = check_help(run_client(&["--help"]), "albatross-client --help");
    assert!(!client_top.contains("console-daemon"));
    for sub in CLIENT_SUBCOMMANDS {
        for out in [
            run(&[sub, "--help"]),
            run_client(&[sub, "--help"]),
            run(&["help", sub]),
            run(&[sub, "x", "--help=plain"]),
        ] {
            let text = check_help(out, sub);
            assert!(text.contains("Common options:"), "{sub}");
            assert!(
                text.contains("  124 command-line or validation error"),
                "{sub}"
            );
            assert!(!text.contains("--help, help"), "{sub}");
        }
    }
    let create = check_help(run(&["create", "--help"]), "create");
    for option in [
        "--typ",
        "--force",
        "--compression-level",
        "--startup",
        "--no-add-name",
        "--cpu",
        "--mem",
        "--arg",
        "--block",
        "--net",
        "--restart-on-fail",
        "--exit-code",
        "--cpus",
        "--linux-boot",
        "--socket",
        "--destination",
        "--csr",
        "--ca",
        "--ca-key",
        "--server-ca",
        "--key-type",
        "--tmpdir",
        "--verbose",
        "--quiet",
        "--verbosity",
        "--color",
    ] {
        assert!(create.contains(option), "create --help lacks {option}");
    }
    assert!(create.contains("(default: 32)"));
    for sub in DAEMON_SUBCOMMANDS {
        let text = check_help(run(&[sub, "--help"]), sub);
        assert!(text.contains("Logging options:"), "{sub}");
    }
    for program in [
        "albatrossd",
        "albatross-console",
        "albatross_log",
        "albatross-stats",
        "albatross-influx",
        "albatross-tls-endpoint",
        "albatross_tls_inetd",
    ] {
        check_help(run_program(program, &["--help"]), program);
    }
    check_help(
        run_program("albatross_provision_ca", &["--help"]),
        "provision_ca",
    );
    check_help(
        run_program("albatross_provision_request", &["create", "--help"]),
        "provision_request",
    );
    let out = run(&["help", "nosuchcommand"]);
    assert_eq!(out.status.code(), Some(124));
}
