//! Benchmarks of the real daemon with the test tender (not tests): deploy
//! and destroy latency next to the same work done by hand, create+destroy
//! cycles per second, create and `info` latency and the daemon's resident
//! memory with 0 to 1,000 unikernels defined, and the time a fresh daemon
//! takes to bring 100 unikernels back.
//!
//! Run as root, with release binaries (the harness takes the `albatross`
//! and `test-tender` next to this executable):
//!
//! ```text
//! cargo build --release --workspace --bins
//! cargo bench -p albatross-integration --bench daemon
//! ```
//!
//! Measurements that need the network namespace (taps made by hand, pings)
//! run in a second process of this executable started inside it with
//! `ip netns exec`, which also mounts the namespace's `/sys`.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use albatross::model::name::format_mac;
use albatross::model::{FailBehaviour, Name, NetSpec, Typ, UnikernelArguments, UnikernelConfig};
use albatross::solo5::{AbiTarget, DeviceKind};
use albatross::sys::linux::LinuxSys;
use albatross::sys::Network;
use albatross::wire::frame::{read_frame, write_frame};
use albatross::wire::{
    decode_wire, encode_wire, Command as WireCommand, Header, InfoVersion, Payload, Success,
    UnikernelCmd, Wire,
};
use albatross_integration::{is_root, wait_for, Setup, System};
use rustix::net::{
    ipproto, recv, sendto, socket, sockopt, AddressFamily, RecvFlags, SendFlags, SocketType,
};

/// Set in the process that runs inside the namespace.
const INNER: &str = "ALBATROSS_BENCH_INNER";
/// Deploys, destroys and pings per series.
const RUNS: usize = 200;
/// Untimed runs before each series.
const WARM_UP: usize = 5;
/// Create+destroy cycles timed for the rate.
const CYCLES: usize = 200;
/// Create and info requests timed per scale.
const PROBES: usize = 100;
/// Numbers of unikernels defined for the scale measurements.
const SCALES: [usize; 4] = [0, 100, 300, 1000];
/// The bridge and the guest address of the deploy series.
const BRIDGE: &str = "br0";
const BRIDGE_CIDR: &str = "10.0.9.1/24";
const GUEST: Ipv4Addr = Ipv4Addr::new(10, 0, 9, 2);

fn main() {
    if env::var_os(INNER).is_some() {
        inner();
        return;
    }
    // `cargo test --benches` runs this without `--bench`: nothing to do.
    if !env::args().any(|a| a == "--bench") {
        eprintln!(
            "daemon benchmarks: run with `cargo bench -p albatross-integration --bench daemon`"
        );
        return;
    }
    if !is_root() {
        eprintln!("notice: not root: daemon benchmarks skipped (they need namespaces and taps)");
        return;
    }
    outer();
}

// ---- statistics and the table ------------------------------------------

/// Median and 99th percentile of `samples`.
fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    let n = samples.len();
    assert!(n > 0, "no samples");
    let p99 = samples[(n * 99).div_ceil(100) - 1];
    (samples[n / 2], p99)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// One line of the result table: what, median or value, p99, remark.
struct Row {
    what: String,
    value: String,
    p99: String,
    note: String,
}

impl Row {
    fn timing(what: &str, samples: &mut [Duration], note: &str) -> Row {
        let (median, p99) = percentiles(samples);
        Row {
            what: what.to_string(),
            value: ms(median),
            p99: ms(p99),
            note: note.to_string(),
        }
    }

    fn value(what: &str, value: String, note: &str) -> Row {
        Row {
            what: what.to_string(),
            value,
            p99: String::new(),
            note: note.to_string(),
        }
    }

    /// A tab-separated line, for the inner process to hand rows out.
    fn line(&self) -> String {
        format!(
            "row\t{}\t{}\t{}\t{}",
            self.what, self.value, self.p99, self.note
        )
    }

    fn parse(line: &str) -> Option<Row> {
        let mut parts = line.strip_prefix("row\t")?.split('\t');
        Some(Row {
            what: parts.next()?.to_string(),
            value: parts.next()?.to_string(),
            p99: parts.next()?.to_string(),
            note: parts.next().unwrap_or_default().to_string(),
        })
    }
}

fn print_table(rows: &[Row]) {
    let width = |f: fn(&Row) -> &str, head: &str| {
        rows.iter()
            .map(|r| f(r).len())
            .max()
            .unwrap_or(0)
            .max(head.len())
    };
    let (w0, w1, w2) = (
        width(|r| &r.what, "measurement"),
        width(|r| &r.value, "median / value"),
        width(|r| &r.p99, "p99"),
    );
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| {:w0$} | {:>w1$} | {:>w2$} | note |",
        "measurement", "median / value", "p99"
    );
    let _ = writeln!(
        out,
        "|{}|{}|{}|---|",
        "-".repeat(w0 + 2),
        "-".repeat(w1 + 2),
        "-".repeat(w2 + 2)
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| {:w0$} | {:>w1$} | {:>w2$} | {} |",
            r.what, r.value, r.p99, r.note
        );
    }
    print!("{out}");
}

// ---- requests over the socket ----------------------------------------------

/// Sends `command` for `name` and returns the reply frames undecoded (the
/// daemon closes the connection after the reply).
fn request_raw(socket: &Path, name: &Name, command: WireCommand) -> Vec<Vec<u8>> {
    let wire = Wire {
        header: Header::new(name.clone()),
        payload: Payload::Command(command),
    };
    let body = encode_wire(&wire).expect("encode");
    let mut stream = UnixStream::connect(socket).expect("connect to vmmd.sock");
    write_frame(&mut stream, &body).expect("send");
    let mut frames = Vec::new();
    while let Ok(Some(frame)) = read_frame(&mut stream, 1 << 30) {
        frames.push(frame);
    }
    frames
}

/// Sends `command` and expects a success reply.
fn request_ok(socket: &Path, name: &Name, command: WireCommand) {
    let frames = request_raw(socket, name, command);
    let replies: Vec<Wire> = frames
        .iter()
        .map(|f| decode_wire(f).expect("a reply that decodes"))
        .collect();
    match replies.as_slice() {
        [Wire {
            payload: Payload::Reply(_),
            ..
        }] => {}
        other => panic!("{name}: unexpected reply {other:#?}"),
    }
}

fn create(socket: &Path, name: &Name, config: &UnikernelConfig) {
    request_ok(
        socket,
        name,
        WireCommand::Unikernel(UnikernelCmd::Create(config.clone())),
    );
}

fn destroy(socket: &Path, name: &Name) {
    request_ok(socket, name, WireCommand::Unikernel(UnikernelCmd::Destroy));
}

fn info_command() -> WireCommand {
    WireCommand::Unikernel(UnikernelCmd::Info(InfoVersion::Current))
}

/// How many unikernels run, according to `info`.
fn running(socket: &Path) -> usize {
    let frames = request_raw(socket, &Name::root(), info_command());
    match frames
        .first()
        .map(|f| decode_wire(f).expect("decode").payload)
    {
        Some(Payload::Reply(Success::UnikernelInfo(list))) => list.len(),
        other => panic!("unexpected info reply: {other:?}"),
    }
}

fn config(
    image: Vec<u8>,
    memory: i64,
    bridges: Vec<NetSpec>,
    argv: Option<Vec<String>>,
) -> UnikernelConfig {
    UnikernelConfig {
        typ: Typ::Solo5,
        compressed: false,
        image,
        args: UnikernelArguments {
            fail_behaviour: FailBehaviour::Quit,
            startup: None,
            add_name: true,
            cpuids: vec![0],
            memory,
            blocks: Vec::new(),
            bridges,
            argv,
            cpus: 1,
            linux_boot_partition: None,
        },
    }
}

// ---- pings --------------------------------------------------------------------

/// ICMP echo over a raw socket, so that a ping costs no process start.
struct Pinger {
    fd: OwnedFd,
    id: u16,
    seq: u16,
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

impl Pinger {
    fn new() -> Pinger {
        let fd = socket(AddressFamily::INET, SocketType::RAW, Some(ipproto::ICMP))
            .expect("raw ICMP socket");
        sockopt::set_socket_timeout(&fd, sockopt::Timeout::Recv, Some(Duration::from_millis(1)))
            .expect("receive timeout");
        Pinger {
            fd,
            id: (std::process::id() & 0xffff) as u16,
            seq: 0,
        }
    }

    /// Sends echo requests to `addr` every millisecond until one is
    /// answered.
    fn first_answer(&mut self, addr: Ipv4Addr) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let target = SocketAddrV4::new(addr, 0);
        loop {
            assert!(Instant::now() < deadline, "{addr} does not answer pings");
            self.seq = self.seq.wrapping_add(1);
            let mut packet = vec![8, 0, 0, 0];
            packet.extend_from_slice(&self.id.to_be_bytes());
            packet.extend_from_slice(&self.seq.to_be_bytes());
            packet.extend_from_slice(b"albatross bench!");
            let sum = checksum(&packet);
            packet[2..4].copy_from_slice(&sum.to_be_bytes());
            sendto(&self.fd, &packet, SendFlags::empty(), &target).expect("send echo request");
            let mut buf = [0u8; 1500];
            // Until the timeout: other ICMP traffic is skipped.
            while let Ok((n, _)) = recv(&self.fd, &mut buf[..], RecvFlags::empty()) {
                let ip = &buf[..n];
                let Some(ihl) = ip.first().map(|b| usize::from(b & 0x0f) * 4) else {
                    continue;
                };
                if n < ihl + 8 || ip[12..16] != addr.octets() {
                    continue;
                }
                let icmp = &ip[ihl..];
                if icmp[0] == 0 && icmp[4..6] == self.id.to_be_bytes() {
                    return;
                }
            }
        }
    }
}

/// Runs `start` while pinging [`GUEST`] from another thread from the
/// moment it is called; returns when `start` returned and when the first
/// answer came.
fn pinging(pinger: &mut Pinger, start: impl FnOnce()) -> (Instant, Instant) {
    std::thread::scope(|s| {
        let answered = s.spawn(|| {
            pinger.first_answer(GUEST);
            Instant::now()
        });
        start();
        let returned = Instant::now();
        (returned, answered.join().expect("pinger"))
    })
}

// ---- inside the namespace: deploys, destroys, by hand ----------------------

fn var(name: &str) -> String {
    env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

fn inner() {
    let socket = PathBuf::from(var("BENCH_SOCKET"));
    let tender = PathBuf::from(var("BENCH_TENDER"));
    let image_path = PathBuf::from(var("BENCH_IMAGE"));
    let image = fs::read(&image_path).expect("image");
    let name = Name::parse(":bench").expect("name");
    let net = NetSpec {
        netif: "service".into(),
        bridge: Some(BRIDGE.into()),
        mac: None,
    };
    let mac = format_mac(&net.effective_mac(&name));
    let ipv4 = format!("--ipv4={GUEST}/24");
    let deploy = config(image, 32, vec![net], Some(vec![ipv4.clone()]));
    let mut pinger = Pinger::new();
    let mut rows = Vec::new();

    // The daemon.
    let (mut running, mut pinged, mut destroyed) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..WARM_UP + RUNS {
        let t0 = Instant::now();
        let (t1, t2) = pinging(&mut pinger, || create(&socket, &name, &deploy));
        let t3 = Instant::now();
        destroy(&socket, &name);
        let t4 = Instant::now();
        if run >= WARM_UP {
            running.push(t1 - t0);
            pinged.push(t2 - t0);
            destroyed.push(t4 - t3);
        }
    }

    // By hand: one tap with ioctls, a plain spawn of the tender with the
    // same command line, SIGTERM and wait, tap deletion.
    let sys = LinuxSys::new().expect("system-call layer");
    let (mut h_running, mut h_pinged, mut h_killed, mut h_destroyed) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut h_tap, mut h_spawn) = (Vec::new(), Vec::new());
    for run in 0..WARM_UP + RUNS {
        let t0 = Instant::now();
        let mut started = None;
        let mut tapped = t0;
        let (t1, t2) = pinging(&mut pinger, || {
            let tap = sys.create_tap(BRIDGE).expect("tap");
            tapped = Instant::now();
            let child = Command::new(&tender)
                .arg("--mem=32")
                .arg(format!("--net:service={tap}"))
                .arg(format!("--net-mac:service={mac}"))
                .arg("--")
                .arg(&image_path)
                .arg("--name=bench")
                .arg(&ipv4)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn the tender");
            started = Some((tap, child));
        });
        let (tap, mut child) = started.expect("started");
        let t3 = Instant::now();
        let pid = rustix::process::Pid::from_child(&child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
        child.wait().expect("wait");
        let t4 = Instant::now();
        sys.destroy_tap(&tap).expect("delete the tap");
        let t5 = Instant::now();
        if run >= WARM_UP {
            h_running.push(t1 - t0);
            h_tap.push(tapped - t0);
            h_spawn.push(t1 - tapped);
            h_pinged.push(t2 - t0);
            h_killed.push(t4 - t3);
            h_destroyed.push(t5 - t3);
        }
    }

    rows.push(Row::timing(
        "deploy: request → reply (tender running)",
        &mut running,
        "create of a 1-net hvt unikernel; reply after tap, spawn and store",
    ));
    rows.push(Row::timing(
        "  by hand: tap ioctls + spawn",
        &mut h_running,
        "albatross::sys create_tap + std::process::Command::spawn",
    ));
    rows.push(Row::timing(
        "    of which tap ioctls",
        &mut h_tap,
        "TUNSETIFF, TUNSETPERSIST, SIOCSIFFLAGS, SIOCBRADDIF",
    ));
    rows.push(Row::timing(
        "    of which spawn",
        &mut h_spawn,
        "fork + exec of the test tender",
    ));
    rows.push(Row::timing(
        "deploy: request → first answered ping",
        &mut pinged,
        "raw ICMP echo every 1 ms from the request on; upstream: 23 ms",
    ));
    rows.push(Row::timing(
        "  by hand: → first answered ping",
        &mut h_pinged,
        "upstream measured 3 ms by hand",
    ));
    rows.push(Row::timing(
        "destroy: request → reply",
        &mut destroyed,
        "SIGTERM, exit handled, image/FIFO/tap removed, store updated",
    ));
    rows.push(Row::timing("  by hand: SIGTERM + wait", &mut h_killed, ""));
    rows.push(Row::timing(
        "  by hand: SIGTERM + wait + tap delete",
        &mut h_destroyed,
        "",
    ));

    // Create+destroy cycles, back to back.
    let t0 = Instant::now();
    for _ in 0..CYCLES {
        create(&socket, &name, &deploy);
        destroy(&socket, &name);
    }
    let rate = CYCLES as f64 / t0.elapsed().as_secs_f64();
    rows.push(Row::value(
        "create+destroy cycles per second",
        format!("{rate:.1}/s"),
        &format!("{CYCLES} sequential cycles, 1-net unikernel; upstream: 20/s"),
    ));
    for row in rows {
        println!("{}", row.line());
    }
}

// ---- outside: scale, memory, restore ------------------------------------------

/// The daemon's resident memory in MB.
fn rss_mb(pid: u32) -> f64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb / 1024.0
}

/// The file system type of `dir` (from `findmnt`).
fn filesystem(dir: &Path) -> String {
    Command::new("findmnt")
        .args(["-n", "-o", "FSTYPE", "--target"])
        .arg(dir)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Creates `fill-N` for N in `from..to`, four requests at a time.
fn fill(socket: &Path, config: &UnikernelConfig, from: usize, to: usize) {
    const WORKERS: usize = 4;
    std::thread::scope(|s| {
        for worker in 0..WORKERS {
            s.spawn(move || {
                for n in (from..to).skip(worker).step_by(WORKERS) {
                    let name = Name::parse(&format!(":fill-{n:04}")).expect("name");
                    create(socket, &name, config);
                }
            });
        }
    });
}

/// A tmpfs mounted over a directory, unmounted (lazily) when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path) -> Tmpfs {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "mode=0755", "albatross-bench"])
            .arg(dir)
            .status()
            .expect("mount");
        assert!(status.success(), "mounting a tmpfs on {}", dir.display());
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn outer() {
    let started = Instant::now();
    let mut system: System = Setup::new().bridge(BRIDGE, BRIDGE_CIDR).start();
    // As in production (/run/albatross): the runtime directory on a tmpfs,
    // the database directory on disk.
    system.stop_daemon();
    let _tmpfs = Tmpfs::mount(&system.tmpdir);
    system.start_daemon();
    let net_image = system.image(
        "net.hvt",
        AbiTarget::Hvt,
        &[("service", DeviceKind::NetBasic)],
    );
    let small = system.image("small.hvt", AbiTarget::Hvt, &[]);
    let small_bytes = fs::read(&small).expect("image");
    let socket = system.socket();
    let mut rows = Vec::new();

    eprintln!("deploy, destroy and by-hand series ({RUNS} runs each)…");
    let inner = system
        .netns
        .command(env::current_exe().expect("this executable"))
        .env(INNER, "1")
        .env("BENCH_SOCKET", &socket)
        .env("BENCH_TENDER", system.tender_dir.join("solo5-hvt"))
        .env("BENCH_IMAGE", &net_image)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("run the namespace part");
    assert!(inner.status.success(), "the namespace part failed");
    rows.extend(
        String::from_utf8_lossy(&inner.stdout)
            .lines()
            .filter_map(Row::parse),
    );

    let filler = config(small_bytes.clone(), 8, Vec::new(), None);
    let probe = Name::parse(":probe").expect("name");
    let mut defined = 0;
    for scale in SCALES {
        eprintln!("{scale} unikernels defined…");
        fill(&socket, &filler, defined, scale);
        defined = scale;
        wait_for(
            format!("{scale} unikernels running"),
            Duration::from_secs(120),
            || (running(&socket) == scale).then_some(()),
        );
        let mut creates = Vec::new();
        for _ in 0..PROBES {
            let t0 = Instant::now();
            create(&socket, &probe, &filler);
            creates.push(t0.elapsed());
            destroy(&socket, &probe);
        }
        let mut infos = Vec::new();
        for _ in 0..PROBES {
            let t0 = Instant::now();
            let frames = request_raw(&socket, &Name::root(), info_command());
            infos.push(t0.elapsed());
            assert_eq!(frames.len(), 1);
        }
        rows.push(Row::timing(
            &format!("create latency, {scale} defined"),
            &mut creates,
            "no-net hvt unikernel, 8 MB",
        ));
        rows.push(Row::timing(
            &format!("info latency (all), {scale} defined"),
            &mut infos,
            if scale == 300 {
                "request → whole reply read; upstream: 17 ms, p99 21 ms at 300"
            } else {
                "request → whole reply read"
            },
        ));
        rows.push(Row::value(
            &format!("daemon RSS, {scale} defined"),
            format!("{:.1} MB", rss_mb(system.daemon_pid())),
            if scale == 300 {
                "VmRSS; upstream: 130 MB at 300"
            } else {
                "VmRSS"
            },
        ));

        if scale == 100 {
            eprintln!("restoring 100 unikernels…");
            system.stop_daemon();
            let t0 = Instant::now();
            system.start_daemon();
            let listening = t0.elapsed();
            wait_for(
                "100 unikernels running again",
                Duration::from_secs(60),
                || (running(&socket) == 100).then_some(()),
            );
            let all = t0.elapsed();
            rows.push(Row::value(
                "daemon start → listening",
                ms(listening),
                "includes `ip netns exec` and the first connect",
            ));
            rows.push(Row::value(
                "daemon start → all of 100 running again",
                ms(all),
                "polled with info every ~1 ms; upstream: 2.2 s",
            ));
        }
    }
    eprintln!("stopping {defined} unikernels…");
    let t0 = Instant::now();
    system.stop_daemon();
    rows.push(Row::value(
        &format!("SIGTERM → daemon exited, {defined} running"),
        ms(t0.elapsed()),
        "every tender stopped and cleaned up",
    ));
    println!(
        "\nalbatross daemon benchmarks ({} cpus; {} build; test tender; \
         runtime directory on tmpfs, database directory on {}; images: the test \
         image builder's ELF, {} bytes without nets, {} with one)\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        filesystem(&system.dbdir),
        small_bytes.len(),
        fs::metadata(&net_image).map_or(0, |m| m.len()),
    );
    print_table(&rows);
    println!("\ntotal time {:.0} s", started.elapsed().as_secs_f64());
    let _ = std::io::stdout().flush();
}
