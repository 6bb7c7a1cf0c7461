//! Shared helpers for the test tender's own tests: a scratch directory with
//! `solo5-hvt`/`solo5-spt` symlinks to the binary under test, test images,
//! processes with time limits, and network namespaces.

#![allow(dead_code)] // Each test file uses a different part.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::symlink;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use albatross::solo5::testimage::build_test_image;
use albatross::solo5::{AbiTarget, DeviceKind};

/// How long any one tender run may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// The binary under test, built by cargo for these tests.
pub const TENDER: &str = env!("CARGO_BIN_EXE_test-tender");

/// The version line both personalities print.
pub const VERSION: &str = "v0.12.1-albatross-test";

/// A scratch directory with the tender symlinks.
pub struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    /// A fresh directory with `solo5-hvt` and `solo5-spt` pointing at the
    /// test tender, exactly as the daemon will find them.
    pub fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        for name in ["solo5-hvt", "solo5-spt"] {
            symlink(TENDER, dir.path().join(name)).unwrap();
        }
        Setup { dir }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The tender symlink for `target` ("hvt" or "spt").
    pub fn tender(&self, target: &str) -> PathBuf {
        self.dir.path().join(format!("solo5-{target}"))
    }

    /// A command running the tender for `target` with `args`.
    pub fn command(&self, target: &str, args: &[&str]) -> Command {
        let mut command = Command::new(self.tender(target));
        // Core dumps of crashing guests, if enabled, land in the scratch dir.
        command.args(args).current_dir(self.dir.path());
        command
    }

    /// Writes a test image named `name` and returns its path.
    pub fn image(
        &self,
        name: &str,
        target: AbiTarget,
        abi_version: u32,
        devices: &[(&str, DeviceKind)],
    ) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, build_test_image(target, abi_version, devices, b"")).unwrap();
        path.to_string_lossy().into_owned()
    }

    /// A device-less image for `target`.
    pub fn hello(&self, target: &str) -> String {
        self.image(&format!("hello.{target}"), abi_target(target), 2, &[])
    }

    /// A file of `len` zero bytes, returned as a path.
    pub fn file(&self, name: &str, len: u64) -> String {
        let path = self.dir.path().join(name);
        std::fs::File::create(&path).unwrap().set_len(len).unwrap();
        path.to_string_lossy().into_owned()
    }
}

/// The target for "hvt"/"spt".
pub fn abi_target(target: &str) -> AbiTarget {
    match target {
        "hvt" => AbiTarget::Hvt,
        "spt" => AbiTarget::Spt,
        other => panic!("no such target {other}"),
    }
}

/// What a finished run produced.
#[derive(Debug)]
pub struct Outcome {
    /// Exit status.
    pub status: ExitStatus,
    /// Everything on stdout.
    pub stdout: String,
    /// Everything on stderr.
    pub stderr: String,
}

impl Outcome {
    /// The exit code; panics if the process was killed.
    pub fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("killed by signal: {self:?}"))
    }

    /// The signal that killed the process; panics if it exited.
    pub fn signal(&self) -> i32 {
        self.status
            .signal()
            .unwrap_or_else(|| panic!("not killed by a signal: {self:?}"))
    }

    /// Stdout without the Solo5 banner (which must be there).
    pub fn guest_output(&self, target: &str, memory_mb: u64) -> &str {
        let banner = banner(target, memory_mb);
        self.stdout
            .strip_prefix(&banner)
            .unwrap_or_else(|| panic!("stdout does not start with the banner:\n{}", self.stdout))
    }
}

/// A running tender whose stdout lines arrive on a channel.
pub struct Running {
    child: Child,
    lines: Receiver<String>,
    stdout: String,
    stderr: Option<thread::JoinHandle<String>>,
}

impl Running {
    /// Starts `command` with stdin closed and stdout/stderr captured.
    pub fn start(mut command: Command) -> Running {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            stderr.read_to_string(&mut text).unwrap();
            text
        });
        Running {
            child,
            lines,
            stdout: String::new(),
            stderr: Some(stderr),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until a stdout line contains `needle`; panics after `TIMEOUT`.
    pub fn wait_for(&mut self, needle: &str) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.stdout.push_str(&line);
                    self.stdout.push('\n');
                    if line.contains(needle) {
                        return;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    panic!("no line with {needle:?} on stdout; got:\n{}", self.stdout);
                }
            }
        }
    }

    /// Sends a signal (a name for kill(1), e.g. "TERM").
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for the end (killing the process after `TIMEOUT`).
    pub fn finish(mut self) -> Outcome {
        let status = wait_with_timeout(&mut self.child);
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.stdout.push_str(&line);
            self.stdout.push('\n');
        }
        let stderr = self
            .stderr
            .take()
            .map(|t| t.join().unwrap())
            .unwrap_or_default();
        Outcome {
            status,
            stdout: std::mem::take(&mut self.stdout),
            stderr,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A failed test must not leave a tender holding a tap.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `command` to the end, with stdin closed.
pub fn run(command: Command) -> Outcome {
    Running::start(command).finish()
}

fn wait_with_timeout(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the tender did not finish within {TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// The banner Solo5 prints at start-up, for `memory_mb` MB.
pub fn banner(target: &str, memory_mb: u64) -> String {
    let (data_end, heap) = if target == "hvt" {
        ("0x30bfff", "0x30c000")
    } else {
        ("0x10bfff", "0x10c000")
    };
    format!(
        "            |      ___|\n  __|  _ \\  |  _ \\ __ \\\n\\__ \\ (   | | (   |  ) |\n____/\\___/ _|\\___/____/\n\
         Solo5: Bindings version {VERSION}\n\
         Solo5: Memory map: {memory_mb} MB addressable:\n\
         Solo5:   reserved @ (0x0 - 0xfffff)\n\
         Solo5:       text @ (0x100000 - 0x104fff)\n\
         Solo5:     rodata @ (0x105000 - 0x106fff)\n\
         Solo5:       data @ (0x107000 - {data_end})\n\
         Solo5:       heap >= {heap} < stack < {:#x}\n",
        memory_mb << 20
    )
}

/// The usage text of solo5-hvt, as measured on the real one.
pub const HVT_USAGE: &str = "usage: solo5-hvt [ CORE OPTIONS ] [ MODULE OPTIONS ] [ -- ] KERNEL [ ARGS ]
KERNEL is the filename of the unikernel to run.
ARGS are optional arguments passed to the unikernel.
Core options:
  [ --mem=512 ] (guest memory in MB)
    --help (display this help)
    --version (display version information)
Compiled-in modules: core block net 
Compiled-in module options:
    --block:NAME=PATH (attach block device/file at PATH as block storage NAME)
  [ --block-sector-size:NAME=SECTORSIZE ] (set sector size for block device NAME; must be a power of two greater than or equal 512)
    --net:NAME=IFACE | @NN (attach tap at IFACE or at fd @NN as network NAME)
  [ --net-mac:NAME=HWADDR ] (set HWADDR for network NAME)
";

/// The usage text of solo5-spt.
pub const SPT_USAGE: &str = "usage: solo5-spt [ CORE OPTIONS ] [ -- ] KERNEL [ ARGS ]
KERNEL is the filename of the unikernel to run.
ARGS are optional arguments passed to the unikernel.
Core options:
  [ --mem=512 ] (guest memory in MB)
    --help (display this help)
Compiled-in modules: core net block 
Compiled-in module options:
    --x-exec-heap (make the heap executable). WARNING: This option is dangerous and not recommended as it makes the heap and stack executable.
    --net:NAME=IFACE | @NN (attach tap at IFACE or at fd @NN as network NAME)
  [ --net-mac:NAME=HWADDR ] (set HWADDR for network NAME)
    --block:NAME=PATH (attach block device/file at PATH as block storage NAME)
  [ --block-sector-size:NAME=SECTORSIZE ] (set sector size for block device NAME; must be a power of two greater than or equal 512)
";

/// The usage text for `target`.
pub fn usage(target: &str) -> &'static str {
    if target == "hvt" {
        HVT_USAGE
    } else {
        SPT_USAGE
    }
}

/// Whether we run as root (network namespaces and taps need it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|status| {
            status
                .lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// A network namespace made for one test, deleted when dropped.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a fresh namespace with loopback up.
    pub fn new() -> Netns {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "tt-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::SeqCst)
        );
        let netns = Netns { name };
        sh(&["ip", "netns", "add", &netns.name]);
        netns.ip(&["link", "set", "lo", "up"]);
        netns
    }

    /// Runs `ip -n NS ARGS…`, which must succeed.
    pub fn ip(&self, args: &[&str]) {
        let mut full = vec!["ip", "-n", &self.name];
        full.extend_from_slice(args);
        sh(&full);
    }

    /// Output of `ip -n NS ARGS…`.
    pub fn ip_output(&self, args: &[&str]) -> String {
        let output = Command::new("ip")
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// A bridge `name` with `addr` (CIDR), up.
    pub fn bridge(&self, name: &str, addr: &str) {
        self.ip(&["link", "add", name, "type", "bridge"]);
        self.ip(&["addr", "add", addr, "dev", name]);
        self.ip(&["link", "set", name, "up"]);
    }

    /// A tap `name` made with `ip tuntap add`, enslaved to `bridge` if
    /// given, and up if `up`.
    pub fn tap(&self, name: &str, bridge: Option<&str>, up: bool) {
        self.ip(&["tuntap", "add", "dev", name, "mode", "tap"]);
        if let Some(bridge) = bridge {
            self.ip(&["link", "set", name, "master", bridge]);
        }
        if up {
            self.ip(&["link", "set", name, "up"]);
        }
    }

    /// `command` run inside the namespace (`ip netns exec`, which also
    /// mounts the namespace's /sys).
    pub fn exec(&self, command: &Command) -> Command {
        let mut wrapped = Command::new("ip");
        wrapped
            .args(["netns", "exec", &self.name])
            .arg(command.get_program())
            .args(command.get_args());
        wrapped
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Runs a command that must succeed.
pub fn sh(args: &[&str]) {
    let output = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
