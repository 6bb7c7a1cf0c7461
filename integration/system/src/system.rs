//! One system under test: namespace, directories, tenders and the daemon.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::symlink;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use albatross::model::{
    FailBehaviour, Name, Policy, UnikernelArguments, UnikernelConfig, UnikernelInfo,
};
use albatross::solo5::testimage::build_test_image;
use albatross::solo5::{AbiTarget, DeviceKind};
use albatross::wire::frame::{read_frame, write_frame, FrameError};
use albatross::wire::{
    decode_wire, encode_wire, BlockCmd, Command, Header, InfoVersion, Payload, PolicyCmd, Success,
    UnikernelCmd, UnikernelStatus, Wire,
};
use rustix::process::{kill_process, Pid, Signal};

use crate::binaries;
use crate::netns::Netns;
use crate::procs::{children_running, run_with_timeout, Output, TenderProc};
use crate::snapshot::Snapshot;
use crate::wait::{eventually, wait_for, LONG, SHORT};

/// How a [`System`] is set up.
#[derive(Debug, Clone)]
pub struct Setup {
    bridges: Vec<(String, String)>,
    tenders: Vec<&'static str>,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup::new()
    }
}

impl Setup {
    /// No bridges; both tenders (`solo5-hvt` and `solo5-spt`).
    pub fn new() -> Setup {
        Setup {
            bridges: Vec::new(),
            tenders: vec!["hvt", "spt"],
        }
    }

    /// Adds bridge `name` with address `cidr` (made before the daemon
    /// starts, so the root policy allows it).
    pub fn bridge(mut self, name: &str, cidr: &str) -> Setup {
        self.bridges.push((name.to_string(), cidr.to_string()));
        self
    }

    /// Installs only these tenders (`"hvt"`, `"spt"`).
    pub fn tenders(mut self, targets: &[&'static str]) -> Setup {
        self.tenders = targets.to_vec();
        self
    }

    /// Makes the namespace, bridges, directories and tender links, and
    /// starts the daemon.
    pub fn start(self) -> System {
        let bins = binaries();
        let netns = Netns::create();
        for (name, cidr) in &self.bridges {
            netns.bridge(name, cidr);
        }
        let dir = tempfile::Builder::new()
            .prefix("albatross-it-")
            .tempdir()
            .expect("temporary directory");
        let root = dir.path().to_path_buf();
        let tender_dir = root.join("tenders");
        let files = root.join("files");
        // The daemon makes its subdirectories, but (as upstream's) wants
        // --tmpdir and --dbdir to exist.
        for d in [&tender_dir, &files, &root.join("run"), &root.join("db")] {
            fs::create_dir_all(d).expect("directory");
        }
        for target in &self.tenders {
            symlink(&bins.tender, tender_dir.join(format!("solo5-{target}"))).expect("tender link");
        }
        let mut system = System {
            tmpdir: root.join("run"),
            dbdir: root.join("db"),
            tender_dir,
            files,
            log: root.join("daemon.log"),
            daemon: None,
            netns,
            _dir: dir,
        };
        system.start_daemon();
        system
    }
}

/// What [`System::observe`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The database directory.
    pub store: Snapshot,
    /// The runtime directory.
    pub runtime: Snapshot,
    /// The taps.
    pub taps: Vec<Tap>,
    /// The tenders' pids and command lines.
    pub tenders: Vec<(u32, Vec<String>)>,
    /// `info` of the root.
    pub info: Vec<(Name, UnikernelInfo)>,
    /// `block info` of the root.
    pub blocks: Vec<(Name, i64, bool)>,
    /// `policy info` of the root.
    pub policies: Vec<(Name, Policy)>,
}

/// A tap interface in the namespace, from `/sys/class/net`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tap {
    /// Interface name (`vmmtapN`).
    pub name: String,
    /// The bridge it is enslaved to.
    pub master: Option<String>,
    /// Whether IFF_UP is set.
    pub up: bool,
    /// Its own (host-side) MAC address.
    pub mac: String,
}

/// The system under test. Dropping it stops the daemon (printing its log
/// if the test failed) and deletes the namespace and directories.
pub struct System {
    /// The network namespace.
    pub netns: Netns,
    /// `--tmpdir` of the daemon and client.
    pub tmpdir: PathBuf,
    /// `--dbdir` of the daemon.
    pub dbdir: PathBuf,
    /// `--tender-dir` of the daemon.
    pub tender_dir: PathBuf,
    /// Scratch directory for images and data files.
    pub files: PathBuf,
    log: PathBuf,
    daemon: Option<Child>,
    _dir: tempfile::TempDir,
}

impl System {
    // ---- the daemon ---------------------------------------------------------

    /// The daemon's socket.
    pub fn socket(&self) -> PathBuf {
        self.tmpdir.join("util").join("vmmd.sock")
    }

    /// Starts `albatross daemon -v -v` inside the namespace and waits until
    /// its socket accepts connections.
    ///
    /// # Panics
    ///
    /// If a daemon runs already, or it exits or does not listen in time.
    pub fn start_daemon(&mut self) {
        assert!(self.daemon.is_none(), "the daemon runs already");
        let bins = binaries();
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("daemon log");
        let child = self
            .netns
            .command(&bins.albatross)
            .arg("daemon")
            .arg("--tmpdir")
            .arg(&self.tmpdir)
            .arg("--dbdir")
            .arg(&self.dbdir)
            .arg("--tender-dir")
            .arg(&self.tender_dir)
            .args(["-v", "-v"])
            // No tender from the host's PATH may stand in for a missing one.
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("ip netns exec albatross daemon");
        self.daemon = Some(child);
        let socket = self.socket();
        let deadline = Instant::now() + SHORT;
        loop {
            if let Some(status) = self
                .daemon
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.daemon = None;
                panic!("the daemon exited at start-up ({status}):\n{}", self.log());
            }
            if UnixStream::connect(&socket).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon does not listen on {}:\n{}",
                socket.display(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The daemon's pid.
    ///
    /// # Panics
    ///
    /// If it is not running.
    pub fn daemon_pid(&self) -> u32 {
        self.daemon
            .as_ref()
            .expect("the daemon is not running")
            .id()
    }

    /// Whether the daemon process is still alive.
    pub fn daemon_alive(&mut self) -> bool {
        self.daemon
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    fn signal_daemon(&mut self, signal: Signal, timeout: Duration) -> ExitStatus {
        let mut child = self.daemon.take().expect("the daemon is not running");
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid")).expect("pid");
        let _ = kill_process(pid, signal);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the daemon did not exit within {timeout:?} of {signal:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the daemon with SIGTERM (it stops every unikernel) and returns
    /// its exit status.
    pub fn stop_daemon(&mut self) -> ExitStatus {
        self.signal_daemon(Signal::TERM, LONG)
    }

    /// Kills the daemon with SIGKILL.
    pub fn kill_daemon(&mut self) -> ExitStatus {
        self.signal_daemon(Signal::KILL, SHORT)
    }

    /// Everything the daemon logged so far (all its runs).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The current length of the log, to look for lines after it.
    pub fn log_mark(&self) -> usize {
        self.log().len()
    }

    /// Waits until the log, after `mark`, contains `needle`; returns the
    /// log from `mark`.
    pub fn wait_log(&self, mark: usize, needle: &str, timeout: Duration) -> String {
        wait_for(format!("{needle:?} in the daemon log"), timeout, || {
            let log = self.log();
            let tail = log.get(mark..).unwrap_or_default();
            tail.contains(needle).then(|| tail.to_string())
        })
    }

    // ---- the client ---------------------------------------------------------

    /// Runs `albatross SUB --tmpdir TMPDIR ARGS…` inside the namespace.
    pub fn client(&self, sub: &str, args: &[&str]) -> Output {
        let mut command = self.netns.command(&binaries().albatross);
        command
            .arg(sub)
            .arg("--tmpdir")
            .arg(&self.tmpdir)
            .args(args);
        run_with_timeout(&mut command, LONG)
    }

    /// Runs the client and asserts exit 0.
    pub fn client_ok(&self, sub: &str, args: &[&str]) -> Output {
        let out = self.client(sub, args);
        assert_eq!(
            out.code,
            0,
            "albatross {sub} {args:?} failed:\n{out:?}\ndaemon log:\n{}",
            self.log()
        );
        out
    }

    // ---- files --------------------------------------------------------------

    /// Writes a test image for `target` declaring `devices` into the
    /// scratch directory as `file`.
    pub fn image(&self, file: &str, target: AbiTarget, devices: &[(&str, DeviceKind)]) -> PathBuf {
        self.file(file, &build_test_image(target, 2, devices, b""))
    }

    /// Writes `bytes` into the scratch directory as `file`.
    pub fn file(&self, file: &str, bytes: &[u8]) -> PathBuf {
        let path = self.files.join(file);
        fs::write(&path, bytes).expect("scratch file");
        path
    }

    /// The image file the daemon writes for unikernel `name`.
    pub fn image_path(&self, name: &str) -> PathBuf {
        self.tmpdir.join(format!("{name}.img"))
    }

    /// The console FIFO of unikernel `name`.
    pub fn fifo_path(&self, name: &str) -> PathBuf {
        self.tmpdir.join("fifo").join(name)
    }

    /// The file of block device `name`.
    pub fn block_path(&self, name: &str) -> PathBuf {
        self.dbdir.join("block").join(name)
    }

    /// A snapshot of the database directory (store and block devices).
    pub fn store(&self) -> Snapshot {
        Snapshot::of(&self.dbdir)
    }

    // ---- tenders ------------------------------------------------------------

    /// The running tenders started by the daemon, by pid.
    pub fn tenders(&self) -> Vec<TenderProc> {
        match &self.daemon {
            Some(d) => children_running(d.id(), &binaries().tender),
            None => Vec::new(),
        }
    }

    /// The running tender of unikernel `name` (recognised by its image
    /// argument).
    pub fn tender(&self, name: &str) -> Option<TenderProc> {
        let image = self.image_path(name).display().to_string();
        let mut found: Vec<TenderProc> = self
            .tenders()
            .into_iter()
            .filter(|t| t.cmdline.contains(&image))
            .collect();
        assert!(
            found.len() <= 1,
            "more than one tender for {name}: {found:#?}"
        );
        found.pop()
    }

    /// Waits until unikernel `name` has a running tender.
    pub fn wait_tender(&self, name: &str) -> TenderProc {
        wait_for(format!("a tender for {name}"), SHORT, || self.tender(name))
    }

    /// Waits until unikernel `name` has a running tender other than `old`.
    pub fn wait_new_tender(&self, name: &str, old: u32, timeout: Duration) -> TenderProc {
        wait_for(
            format!("a new tender for {name} (old pid {old})"),
            timeout,
            || self.tender(name).filter(|t| t.pid != old),
        )
    }

    /// Waits until unikernel `name` has no running tender.
    pub fn wait_no_tender(&self, name: &str) {
        eventually(format!("the tender of {name} to exit"), SHORT, || {
            self.tender(name).is_none()
        });
    }

    // ---- network ------------------------------------------------------------

    /// The `vmmtap*` interfaces in the namespace, sorted by name.
    pub fn taps(&self) -> Vec<Tap> {
        let net = self.netns.sys_class_net();
        let Ok(entries) = fs::read_dir(&net) else {
            return Vec::new();
        };
        let mut taps: Vec<Tap> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_str()?.to_string();
                if !name.starts_with("vmmtap") {
                    return None;
                }
                let dir = net.join(&name);
                let read = |f: &str| {
                    fs::read_to_string(dir.join(f))
                        .ok()
                        .map(|s| s.trim().to_string())
                };
                // Only taps have tun_flags.
                read("tun_flags")?;
                let flags = read("flags")?;
                let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).ok()?;
                let master = fs::read_link(dir.join("master"))
                    .ok()
                    .and_then(|m| m.file_name().map(|f| f.to_string_lossy().into_owned()));
                Some(Tap {
                    name,
                    master,
                    up: flags & 1 == 1,
                    mac: read("address")?,
                })
            })
            .collect();
        taps.sort_by(|a, b| a.name.cmp(&b.name));
        taps
    }

    /// The tap called `name`.
    pub fn tap(&self, name: &str) -> Option<Tap> {
        self.taps().into_iter().find(|t| t.name == name)
    }

    /// Waits until `addr` answers a ping from the namespace.
    pub fn wait_ping(&self, addr: &str) {
        eventually(format!("{addr} to answer a ping"), SHORT, || {
            self.netns.ping(addr)
        });
    }

    // ---- the socket ---------------------------------------------------------

    /// A connection to the daemon's socket (reads time out after 30 s).
    pub fn connect(&self) -> UnixStream {
        let stream = UnixStream::connect(self.socket())
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.socket().display()));
        stream.set_read_timeout(Some(LONG)).expect("read timeout");
        stream
    }

    /// Sends `bytes` as they are and returns every message the daemon sends
    /// back until it closes the connection.
    pub fn send_raw(&self, bytes: &[u8]) -> Vec<Wire> {
        let mut stream = self.connect();
        stream.write_all(bytes).expect("write to vmmd.sock");
        read_until_closed(&mut stream)
    }

    /// Sends `command` for `name` and returns every message the daemon
    /// sends back until it closes the connection.
    pub fn request(&self, name: &Name, command: Command) -> Vec<Wire> {
        self.send_raw(&framed(name, command))
    }

    /// The running unikernels, as `info` for the root reports them.
    pub fn info(&self) -> Vec<(Name, UnikernelInfo)> {
        let replies = self.request(
            &Name::root(),
            Command::Unikernel(UnikernelCmd::Info(InfoVersion::Current)),
        );
        match replies.as_slice() {
            [Wire {
                payload: Payload::Reply(Success::UnikernelInfo(list)),
                ..
            }] => list.clone(),
            other => panic!("unexpected info reply: {other:#?}"),
        }
    }

    /// The status extension for every unikernel the daemon knows (running,
    /// starting, waiting to restart), sorted by name.
    pub fn status(&self) -> Vec<UnikernelStatus> {
        let replies = self.request(&Name::root(), Command::Unikernel(UnikernelCmd::Status));
        match replies.as_slice() {
            [Wire {
                payload: Payload::Reply(Success::UnikernelStatus(list)),
                ..
            }] => {
                let mut list = list.clone();
                list.sort_by(|a, b| a.name.cmp(&b.name));
                list
            }
            other => panic!("unexpected status reply: {other:#?}"),
        }
    }

    /// The status of unikernel `name`, if the daemon knows it.
    pub fn status_of(&self, name: &str) -> Option<UnikernelStatus> {
        let name = Name::parse(name).expect("a name");
        self.status().into_iter().find(|s| s.name == name)
    }

    /// Everything a request could change: the store and runtime files,
    /// taps, tenders, info, block devices and policies.
    pub fn observe(&self) -> Observed {
        let blocks = match self
            .request(&Name::root(), Command::Block(BlockCmd::Info))
            .as_slice()
        {
            [Wire {
                payload: Payload::Reply(Success::BlockDevices(list)),
                ..
            }] => list.clone(),
            other => panic!("unexpected block info reply: {other:#?}"),
        };
        let policies = match self
            .request(&Name::root(), Command::Policy(PolicyCmd::Info))
            .as_slice()
        {
            [Wire {
                payload: Payload::Reply(Success::Policies(list)),
                ..
            }] => list.clone(),
            other => panic!("unexpected policy info reply: {other:#?}"),
        };
        Observed {
            store: self.store(),
            runtime: Snapshot::of(&self.tmpdir),
            taps: self.taps(),
            tenders: self
                .tenders()
                .into_iter()
                .map(|t| (t.pid, t.cmdline))
                .collect(),
            info: self.info(),
            blocks,
            policies,
        }
    }

    /// Asserts that the system is (or soon is: taps and files of a failed
    /// start are removed off the request path) as `before`.
    pub fn assert_unchanged(&self, before: &Observed, context: &str) {
        let deadline = Instant::now() + SHORT;
        loop {
            let now = self.observe();
            if now == *before {
                return;
            }
            if Instant::now() >= deadline {
                assert_eq!(&now, before, "{context}: the system changed");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Names of the running unikernels, sorted.
    pub fn running(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .info()
            .into_iter()
            .map(|(n, _)| n.to_string())
            .collect();
        names.sort();
        names
    }
}

impl Drop for System {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- daemon log ({})\n{}---- end of daemon log",
                self.log.display(),
                self.log()
            );
            if self.daemon.is_some() {
                self.kill_daemon();
            }
        } else if self.daemon.is_some() {
            self.stop_daemon();
        }
    }
}

/// The framed bytes of `command` for `name` (version 5, sequence 0).
pub fn framed(name: &Name, command: Command) -> Vec<u8> {
    let wire = Wire {
        header: Header::new(name.clone()),
        payload: Payload::Command(command),
    };
    let body = encode_wire(&wire).expect("encode");
    let mut out = Vec::new();
    write_frame(&mut out, &body).expect("frame");
    out
}

/// Reads messages until the peer closes the connection.
pub fn read_until_closed(stream: &mut UnixStream) -> Vec<Wire> {
    let mut replies = Vec::new();
    loop {
        match read_frame(stream, 1 << 30) {
            Ok(Some(body)) => replies.push(decode_wire(&body).expect("a reply that decodes")),
            Ok(None) | Err(FrameError::Truncated { missing: 4 }) => return replies,
            Err(e) => panic!("reading replies: {e} (after {replies:#?})"),
        }
    }
}

/// Unikernel arguments as the client's defaults make them: no restart,
/// `--name` added, cpu 0, 32 MB, no devices, no arguments.
pub fn arguments() -> UnikernelArguments {
    UnikernelArguments {
        fail_behaviour: FailBehaviour::Quit,
        startup: None,
        add_name: true,
        cpuids: vec![0],
        memory: 32,
        blocks: Vec::new(),
        bridges: Vec::new(),
        argv: None,
        cpus: 1,
        linux_boot_partition: None,
    }
}

/// `args` as the daemon sees them after the trip through DER (block and
/// network lists come back in SET OF order, §10.4).
pub fn wire_round_trip(name: &Name, args: &UnikernelArguments) -> UnikernelArguments {
    let config = UnikernelConfig {
        typ: albatross::model::Typ::Solo5,
        compressed: false,
        image: Vec::new(),
        args: args.clone(),
    };
    let wire = Wire {
        header: Header::new(name.clone()),
        payload: Payload::Command(Command::Unikernel(UnikernelCmd::Create(config))),
    };
    match decode_wire(&encode_wire(&wire).expect("encode"))
        .expect("decode")
        .payload
    {
        Payload::Command(Command::Unikernel(UnikernelCmd::Create(c))) => c.args,
        other => panic!("round trip gave {other:?}"),
    }
}

/// Whether `path` exists (without following a final symlink).
pub fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}
