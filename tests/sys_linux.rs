//! Tests of the real system-call layer (`albatross::sys::linux`).
//!
//! Process tests run as any user. Network tests need root and `ip`; each
//! runs in a network namespace of its own: the test binary re-executes
//! itself for that one test under `ip netns exec` (which also mounts a
//! `/sys` that shows the namespace), and the namespace is deleted when the
//! test ends, passed or not. Without root they print a notice and pass.
#![cfg(target_os = "linux")]
#![allow(unsafe_code)]

use std::env;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use albatross::sys::linux::LinuxSys;
use albatross::sys::{ExitStatus, Files, Network, Processes, Signal, SysError, TenderSpec};

/// Set in a re-executed test binary: run the test body itself.
const CHILD_ENV: &str = "ALBATROSS_SYS_TEST_CHILD";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique(tag: &str) -> String {
    format!(
        "albatross-test-{}-{}-{tag}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Re-runs test `name` of this binary in a child process with `CHILD_ENV`
/// set, through `wrapper` (e.g. `ip netns exec NS`); returns its output.
fn rerun(wrapper: &[&str], name: &str) -> std::process::Output {
    let exe = env::current_exe().unwrap();
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    command
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Deletes the network namespace when dropped, even after a failure.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Prints a notice past libtest's output capture, which would hide it.
fn skip(name: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "skipping {name}: {why}");
}

/// Runs `body` inside a fresh network namespace (see the module doc).
fn in_netns(name: &str, body: impl FnOnce()) {
    if env::var_os(CHILD_ENV).is_some() {
        body();
        return;
    }
    if !rustix::process::geteuid().is_root() {
        skip(name, "needs root (network namespaces and taps)");
        return;
    }
    if Command::new("ip").arg("-V").output().is_err() {
        skip(name, "the ip command (iproute2) is not installed");
        return;
    }
    let ns = Netns(unique("ns"));
    let added = Command::new("ip")
        .args(["netns", "add", &ns.0])
        .status()
        .unwrap();
    assert!(added.success(), "ip netns add {} failed", ns.0);
    let out = rerun(&["ip", "netns", "exec", &ns.0], name);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name} failed in {}:\n{stdout}\n{stderr}",
        ns.0
    );
    assert!(
        stdout.contains("1 passed"),
        "{name} did not run:\n{stdout}\n{stderr}"
    );
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().unwrap();
    assert!(status.success(), "ip {args:?} failed");
}

fn sys_net(name: &str, attribute: &str) -> String {
    fs::read_to_string(Path::new("/sys/class/net").join(name).join(attribute))
        .unwrap()
        .trim()
        .to_string()
}

fn hex(text: &str) -> u64 {
    u64::from_str_radix(text.trim_start_matches("0x"), 16).unwrap()
}

fn exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Attaches to tap `name` as a tender does.
fn hold_tap(name: &str) -> OwnedFd {
    let fd = rustix::fs::open(
        "/dev/net/tun",
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    // SAFETY: ifreq is plain data, valid when zeroed; TUNSETIFF reads and
    // writes that ifreq, which lives across the call.
    unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
            *dst = src as libc::c_char;
        }
        req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
        let rc = libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            libc::TUNSETIFF,
            &mut req,
        );
        assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    }
    fd
}

#[test]
fn taps_are_created_up_enslaved_numbered_and_destroyed() {
    in_netns(
        "taps_are_created_up_enslaved_numbered_and_destroyed",
        || {
            ip(&["link", "add", "brtest", "type", "bridge"]);
            ip(&["link", "add", "vmmtap3", "type", "bridge"]);
            let sys = LinuxSys::new().unwrap();
            assert!(sys.bridge_exists("brtest").unwrap());
            assert!(!sys.bridge_exists("lo").unwrap());
            assert_eq!(sys.list_bridges().unwrap(), ["brtest", "vmmtap3"]);

            let tap = sys.create_tap("brtest").unwrap();
            assert_eq!(tap, "vmmtap0");
            assert_ne!(hex(&sys_net(&tap, "tun_flags")) & libc::IFF_TAP as u64, 0);
            assert_ne!(hex(&sys_net(&tap, "flags")) & libc::IFF_UP as u64, 0);
            let master = fs::read_link(format!("/sys/class/net/{tap}/master")).unwrap();
            assert_eq!(master.file_name().unwrap(), "brtest");

            assert_eq!(sys.create_tap("brtest").unwrap(), "vmmtap1");
            assert_eq!(sys.create_tap("brtest").unwrap(), "vmmtap2");
            sys.destroy_tap("vmmtap1").unwrap();
            assert!(!exists("vmmtap1"));
            assert_eq!(sys.create_tap("brtest").unwrap(), "vmmtap1");
            // vmmtap3 is taken by a bridge, which is no tap.
            assert_eq!(sys.create_tap("brtest").unwrap(), "vmmtap4");
            assert_eq!(
                sys.list_taps_with_prefix("vmmtap").unwrap(),
                ["vmmtap0", "vmmtap1", "vmmtap2", "vmmtap4"]
            );

            let counters = sys.tap_counters("vmmtap0").unwrap();
            assert_eq!(counters.mtu, 1500);
            assert_ne!(counters.flags & libc::IFF_UP as u32, 0);

            let holder = hold_tap("vmmtap2");
            let err = sys.destroy_tap("vmmtap2").unwrap_err();
            assert!(matches!(err, SysError::TapInUse { .. }), "{err}");
            drop(holder);
            let err = sys.destroy_tap("vmmtap3").unwrap_err();
            assert!(matches!(err, SysError::NotATap { .. }), "{err}");
            for tap in ["vmmtap0", "vmmtap1", "vmmtap2", "vmmtap4"] {
                sys.destroy_tap(tap).unwrap();
                assert!(!exists(tap), "{tap} still exists");
            }
            sys.destroy_tap("vmmtap0").unwrap();
            assert!(sys.list_taps_with_prefix("vmmtap").unwrap().is_empty());
        },
    );
}

#[test]
fn a_missing_bridge_is_a_typed_error_and_leaves_no_tap() {
    in_netns(
        "a_missing_bridge_is_a_typed_error_and_leaves_no_tap",
        || {
            let sys = LinuxSys::new().unwrap();
            let err = sys.create_tap("br7").unwrap_err();
            assert!(
                matches!(&err, SysError::NoSuchBridge { bridge } if bridge == "br7"),
                "{err}"
            );
            assert_eq!(
                err.to_string(),
                "bridge br7 does not exist (create it first: ip link add br7 type bridge)"
            );
            // An interface that is not a bridge is refused the same way.
            assert!(matches!(
                sys.create_tap("lo"),
                Err(SysError::NoSuchBridge { .. })
            ));
            let err = sys.create_tap("no/such").unwrap_err();
            assert!(
                matches!(err, SysError::InvalidInterfaceName { .. }),
                "{err}"
            );
            assert!(sys.list_taps_with_prefix("vmmtap").unwrap().is_empty());
        },
    );
}

/// A directory with a console FIFO whose read side is open.
struct Console {
    dir: PathBuf,
    fifo: PathBuf,
    reader: File,
}

impl Console {
    fn new(sys: &LinuxSys) -> Console {
        let dir = env::temp_dir().join(unique("console"));
        fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        sys.make_fifo(&fifo).unwrap();
        // Opened first, without blocking, as the console drain does.
        let reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        Console { dir, fifo, reader }
    }

    fn spec(&self, program: &str, args: &[&str], cpuids: Vec<usize>) -> TenderSpec {
        TenderSpec {
            program: program.into(),
            args: args.iter().map(Into::into).collect(),
            cpuids,
            console: self.fifo.clone(),
            env: Vec::new(),
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Waits up to 5 s for `fd` (a pidfd) to become readable, i.e. for the
/// process to exit.
fn exits_soon(fd: impl AsFd) -> bool {
    let mut fds = [rustix::event::PollFd::new(
        &fd,
        rustix::event::PollFlags::IN,
    )];
    let timeout = rustix::event::Timespec {
        tv_sec: 5,
        tv_nsec: 0,
    };
    rustix::event::poll(&mut fds, Some(&timeout)).unwrap() == 1
}

fn status_field(pid: u32, field: &str) -> String {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

fn open_fds(pid: u32) -> Vec<String> {
    let mut fds: Vec<String> = fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    fds.sort();
    fds
}

#[test]
fn a_tender_starts_pinned_with_clean_signals_and_only_the_console() {
    // State a tender must not inherit: an ignored signal (process-wide) and
    // a blocked one (in this thread, which starts the spawner thread).
    // SAFETY: plain libc calls on valid, initialised arguments.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR1);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    let sys = LinuxSys::new().unwrap();
    let console = Console::new(&sys);
    let cpu = rustix::thread::sched_getaffinity(None)
        .map(|set| {
            (0..rustix::thread::CpuSet::MAX_CPU)
                .filter(|&c| set.is_set(c))
                .max()
                .unwrap()
        })
        .unwrap();
    let tender = sys
        .spawn_tender(console.spec("/bin/sleep", &["30"], vec![cpu]))
        .unwrap();
    let pid = tender.pid;

    assert_eq!(status_field(pid, "Cpus_allowed_list"), cpu.to_string());
    assert_eq!(status_field(pid, "SigBlk"), "0000000000000000");
    assert_eq!(status_field(pid, "SigIgn"), "0000000000000000");
    // The dynamic loader of the new program briefly holds its libraries
    // open; an inherited descriptor would stay.
    let mut fds = open_fds(pid);
    for _ in 0..200 {
        if fds == ["0", "1", "2"] {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        fds = open_fds(pid);
    }
    assert_eq!(fds, ["0", "1", "2"]);
    for fd in 0..3 {
        assert_eq!(
            fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap(),
            console.fifo
        );
    }
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after "pid (comm) ": state, ppid, pgrp, session.
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let session: u32 = after_name.split(' ').nth(3).unwrap().parse().unwrap();
    assert_eq!(session, pid, "the tender leads its own session");
    assert!(fs::read(format!("/proc/{pid}/environ")).unwrap().is_empty());

    assert_eq!(sys.wait_exit(&tender).unwrap(), None);
    sys.signal(&tender, Signal::Term).unwrap();
    assert!(exits_soon(&tender));
    assert_eq!(
        sys.wait_exit(&tender).unwrap(),
        Some(ExitStatus::Signal(15))
    );
    assert!(sys.wait_exit(&tender).is_err(), "reaped twice");
}

#[test]
fn exit_codes_and_console_output_come_through() {
    let sys = LinuxSys::new().unwrap();
    let mut console = Console::new(&sys);
    let tender = sys
        .spawn_tender(console.spec(
            "/bin/sh",
            &["-c", "echo hello; echo oops >&2; exit 7"],
            vec![],
        ))
        .unwrap();
    assert!(exits_soon(&tender));
    assert_eq!(sys.wait_exit(&tender).unwrap(), Some(ExitStatus::Exit(7)));
    let mut output = String::new();
    console.reader.read_to_string(&mut output).unwrap();
    assert_eq!(output, "hello\noops\n");

    let err = sys
        .spawn_tender(console.spec("/nonexistent/solo5-hvt", &[], vec![]))
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("starting /nonexistent/solo5-hvt failed: "),
        "{text}"
    );
    assert!(text.contains("install the solo5 tender"), "{text}");
}

#[test]
fn dropping_the_spawner_kills_its_tenders() {
    let sys = LinuxSys::new().unwrap();
    let console = Console::new(&sys);
    let tender = sys
        .spawn_tender(console.spec("/bin/sleep", &["30"], vec![]))
        .unwrap();
    drop(sys);
    assert!(
        exits_soon(&tender),
        "the tender outlived the spawner thread"
    );
    let status = rustix::process::waitid(
        rustix::process::WaitId::PidFd(tender.pidfd.as_fd()),
        rustix::process::WaitIdOptions::EXITED,
    )
    .unwrap()
    .unwrap();
    assert_eq!(status.terminating_signal(), Some(libc::SIGKILL));
}

/// Prefix of the line by which the helper reports its tender's pid.
const PID_LINE: &str = "TENDER_PID=";

#[test]
fn tenders_die_when_the_daemon_is_killed() {
    if env::var_os(CHILD_ENV).is_some() {
        // The helper plays the daemon: start a tender, report it, wait to be
        // killed.
        let sys = LinuxSys::new().unwrap();
        let console = Console::new(&sys);
        let tender = sys
            .spawn_tender(console.spec("/bin/sleep", &["30"], vec![]))
            .unwrap();
        println!("{PID_LINE}{}", tender.pid);
        std::thread::sleep(Duration::from_secs(30));
        return;
    }
    let exe = env::current_exe().unwrap();
    let mut helper = Command::new(exe)
        .args([
            "tenders_die_when_the_daemon_is_killed",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(helper.stdout.take().unwrap());
    let pid: i32 = stdout
        .lines()
        .map(|line| line.unwrap())
        // libtest may have written "test NAME ... " on the same line.
        .find_map(|line| Some(line.split_once(PID_LINE)?.1.trim().parse().unwrap()))
        .expect("the helper reported no tender");
    let pidfd: OwnedFd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(pid).unwrap(),
        rustix::process::PidfdFlags::empty(),
    )
    .unwrap();
    helper.kill().unwrap();
    helper.wait().unwrap();
    let died = exits_soon(&pidfd);
    if !died {
        let _ = rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL);
    }
    assert!(died, "the tender outlived the daemon killed with SIGKILL");
}
