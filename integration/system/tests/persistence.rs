//! Persistence across daemon restarts: SIGTERM stops every unikernel and
//! keeps the store, the next start brings them all back in start-up order;
//! kill -9 in the middle of a burst of creates leaves no tender, no tap and
//! no half-written unikernel behind, and the next start runs each stored
//! unikernel exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use albatross::model::UnikernelInfo;
use albatross::solo5::{AbiTarget, DeviceKind};
use albatross_integration::{
    binaries, eventually, exists, require_root, wait_for, Setup, Snapshot, System, LONG, SHORT,
};

/// A tender process found anywhere in `/proc` (whatever its parent).
#[derive(Debug, Clone)]
struct AnyTender {
    pid: u32,
    ppid: u32,
    cmdline: Vec<String>,
}

impl AnyTender {
    /// The unikernel it runs: the image argument `<tmpdir>/<name>.img`.
    fn unikernel(&self, system: &System) -> Option<String> {
        let prefix = format!("{}/", system.tmpdir.display());
        self.cmdline.iter().find_map(|arg| {
            arg.strip_prefix(&prefix)?
                .strip_suffix(".img")
                .map(str::to_string)
        })
    }

    /// The taps on its command line (`--net:NAME=TAP`).
    fn taps(&self) -> Vec<String> {
        self.cmdline
            .iter()
            .take_while(|a| *a != "--")
            .filter_map(|a| a.strip_prefix("--net:")?.split_once('='))
            .map(|(_, tap)| tap.to_string())
            .collect()
    }
}

/// Every test tender process whose command line mentions this system's
/// runtime directory, including orphans of a killed daemon.
fn tenders_anywhere(system: &System) -> Vec<AnyTender> {
    let tender = &binaries().tender;
    let tmpdir = system.tmpdir.display().to_string();
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse().ok()) else {
            continue;
        };
        let dir = entry.path();
        if fs::read_link(dir.join("exe")).ok().as_ref() != Some(tender) {
            continue;
        }
        let (Ok(cmdline), Ok(status)) = (
            fs::read(dir.join("cmdline")),
            fs::read_to_string(dir.join("status")),
        ) else {
            continue;
        };
        let cmdline: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|w| !w.is_empty())
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect();
        if !cmdline.iter().any(|a| a.contains(&tmpdir)) {
            continue;
        }
        let ppid = status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(0);
        found.push(AnyTender { pid, ppid, cmdline });
    }
    found.sort_by_key(|t| t.pid);
    found
}

/// The unikernels in the store: the directories below `<dbdir>/unikernels`
/// (crash markers start with `.`).
fn stored(system: &System) -> BTreeSet<String> {
    let Ok(entries) = fs::read_dir(system.dbdir.join("unikernels")) else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| !n.starts_with('.'))
        .collect()
}

/// The `NAME: started` lines of the log after `mark`, in order.
fn started_in_log(system: &System, mark: usize) -> Vec<String> {
    let log = system.log();
    log.get(mark..)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (_, rest) = l.split_once("[INFO] ")?;
            let (name, what) = rest.split_once(": ")?;
            what.starts_with("started ").then(|| name.to_string())
        })
        .collect()
}

/// Lines of the log after `mark` at error level.
fn errors_in_log(system: &System, mark: usize) -> Vec<String> {
    let log = system.log();
    log.get(mark..)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("[ERROR]"))
        .map(str::to_string)
        .collect()
}

/// `info` by name, without the start time (which a restart changes).
fn info_by_name(system: &System) -> BTreeMap<String, UnikernelInfo> {
    system
        .info()
        .into_iter()
        .map(|(name, mut info)| {
            info.started = albatross::model::Timestamp::from_unix_millis(0);
            (name.to_string(), info)
        })
        .collect()
}

/// Checks that each tap in the namespace belongs to exactly one running
/// tender and each tender's taps exist, are up and sit on `bridge`.
fn check_taps(system: &System, bridge: &str) {
    let tenders = system.tenders();
    let mut owners: BTreeMap<String, u32> = BTreeMap::new();
    for t in &tenders {
        for tap in t
            .cmdline
            .iter()
            .take_while(|a| *a != "--")
            .filter_map(|a| a.strip_prefix("--net:")?.split_once('='))
            .map(|(_, tap)| tap.to_string())
        {
            assert!(
                owners.insert(tap.clone(), t.pid).is_none(),
                "tap {tap} given to two tenders"
            );
        }
    }
    let taps = system.taps();
    let present: BTreeSet<String> = taps.iter().map(|t| t.name.clone()).collect();
    assert_eq!(
        present,
        owners.keys().cloned().collect::<BTreeSet<_>>(),
        "taps in the namespace against taps of running tenders"
    );
    for tap in taps {
        assert!(tap.up, "{tap:?} is down");
        assert_eq!(tap.master.as_deref(), Some(bridge), "{tap:?}");
    }
}

/// One unikernel of the SIGTERM scenario.
struct Planned {
    name: &'static str,
    startup: Option<i64>,
    ip: Option<&'static str>,
    target: AbiTarget,
}

#[test]
fn sigterm_stops_everything_and_the_next_start_brings_it_back_in_order() {
    require_root!();
    let mut system = Setup::new().bridge("br0", "10.0.1.1/24").start();
    let net = system.image(
        "net.hvt",
        AbiTarget::Hvt,
        &[
            ("service", DeviceKind::NetBasic),
            ("storage", DeviceKind::BlockBasic),
        ],
    );
    let net_spt = system.image(
        "net.spt",
        AbiTarget::Spt,
        &[("service", DeviceKind::NetBasic)],
    );
    let plain = system.image("plain.spt", AbiTarget::Spt, &[]);
    let planned = [
        Planned {
            name: "late",
            startup: Some(90),
            ip: Some("10.0.1.13"),
            target: AbiTarget::Hvt,
        },
        Planned {
            name: "early",
            startup: Some(5),
            ip: Some("10.0.1.11"),
            target: AbiTarget::Hvt,
        },
        Planned {
            name: "middle",
            startup: None,
            ip: Some("10.0.1.12"),
            target: AbiTarget::Spt,
        },
        Planned {
            name: "quiet",
            startup: Some(20),
            ip: None,
            target: AbiTarget::Spt,
        },
    ];
    for p in &planned {
        let mut args: Vec<String> = vec![format!(":{}", p.name)];
        match (p.ip, p.target) {
            (Some(ip), AbiTarget::Hvt) => {
                let device = format!("{}-disk", p.name);
                system.client_ok("create-block", &[&device, "1"]);
                args.push(net.display().to_string());
                args.push(format!("--block=storage:{device}"));
                args.push("--net=service:br0".to_string());
                args.push(format!("--arg=--ipv4={ip}/24"));
            }
            (Some(ip), _) => {
                args.push(net_spt.display().to_string());
                args.push("--net=service:br0".to_string());
                args.push(format!("--arg=--ipv4={ip}/24"));
            }
            (None, _) => args.push(plain.display().to_string()),
        }
        if let Some(startup) = p.startup {
            args.push(format!("--startup={startup}"));
        }
        args.push("--mem=16".to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        system.client_ok("create", &args);
    }
    for ip in planned.iter().filter_map(|p| p.ip) {
        system.wait_ping(ip);
    }
    let before = info_by_name(&system);
    assert_eq!(before.len(), planned.len(), "{before:#?}");
    check_taps(&system, "br0");
    assert_eq!(system.taps().len(), 3);
    let blocks_before = system.client_ok("block", &[]).stdout;
    assert_eq!(
        blocks_before
            .lines()
            .filter(|l| l.ends_with("1 MB, active"))
            .count(),
        2,
        "{blocks_before}"
    );
    let store_before = Snapshot::of(&system.dbdir.join("unikernels"));
    let old_pids: Vec<u32> = system.tenders().iter().map(|t| t.pid).collect();
    assert_eq!(old_pids.len(), planned.len());

    // SIGTERM: every unikernel stops, taps and runtime files go, the store
    // stays exactly as it was.
    let status = system.stop_daemon();
    assert!(status.success(), "the daemon exited with {status}");
    assert!(
        tenders_anywhere(&system).is_empty(),
        "tenders survived SIGTERM: {:#?}",
        tenders_anywhere(&system)
    );
    for pid in &old_pids {
        assert!(!exists(&PathBuf::from(format!("/proc/{pid}"))), "pid {pid}");
    }
    assert_eq!(system.taps(), Vec::new(), "taps left after SIGTERM");
    for p in &planned {
        let name = format!(":{}", p.name);
        assert!(!exists(&system.image_path(&name)), "image of {name} left");
        assert!(!exists(&system.fifo_path(&name)), "FIFO of {name} left");
    }
    assert_eq!(
        Snapshot::of(&system.dbdir.join("unikernels")),
        store_before,
        "the shutdown changed the store"
    );
    assert_eq!(
        stored(&system),
        planned.iter().map(|p| format!(":{}", p.name)).collect()
    );

    // The next start brings every one back, lowest start-up value first.
    let mark = system.log_mark();
    system.start_daemon();
    eventually("every unikernel to run again", LONG, || {
        system.running().len() == planned.len()
    });
    assert_eq!(
        info_by_name(&system),
        before,
        "configurations after restart"
    );
    assert_eq!(
        started_in_log(&system, mark),
        [":early", ":quiet", ":middle", ":late"],
        "start-up order"
    );
    let new: Vec<u32> = system.tenders().iter().map(|t| t.pid).collect();
    assert_eq!(new.len(), planned.len(), "exactly one tender each");
    assert!(new.iter().all(|p| !old_pids.contains(p)));
    check_taps(&system, "br0");
    assert_eq!(system.taps().len(), 3);
    for ip in planned.iter().filter_map(|p| p.ip) {
        system.wait_ping(ip);
    }
    assert_eq!(system.client_ok("block", &[]).stdout, blocks_before);
    assert_eq!(
        Snapshot::of(&system.dbdir.join("unikernels")),
        store_before,
        "restoring changed the store"
    );
    assert_eq!(errors_in_log(&system, mark), Vec::<String>::new());
}

/// How many unikernels the burst creates.
const BURST: usize = 50;

/// Starts one client process creating `name` (not waited for).
fn spawn_create(system: &System, name: &str, image: &str, ip: &str) -> Child {
    Command::new(&binaries().albatross)
        .arg("create")
        .arg("--tmpdir")
        .arg(&system.tmpdir)
        .args([
            name,
            image,
            "--net=service:br0",
            &format!("--arg=--ipv4={ip}/24"),
            "--mem=8",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the client")
}

#[test]
fn kill_9_during_a_burst_of_creates_then_every_stored_unikernel_runs_once() {
    require_root!();
    let mut system = Setup::new().bridge("br0", "10.0.1.1/24").start();
    let image = system.image(
        "burst.hvt",
        AbiTarget::Hvt,
        &[("service", DeviceKind::NetBasic)],
    );
    let image = image.display().to_string();
    let names: Vec<String> = (0..BURST).map(|i| format!(":u{i:02}")).collect();
    let ip = |i: usize| format!("10.0.1.{}", 100 + i);

    let clients: Vec<(String, Child)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), spawn_create(&system, n, &image, &ip(i))))
        .collect();
    // Kill in the middle: some unikernels run, others are on their way.
    wait_for("a third of the burst to run", LONG, || {
        (system.tenders().len() >= BURST / 3).then_some(())
    });
    let daemon = system.daemon_pid();
    let old: Vec<AnyTender> = tenders_anywhere(&system);
    system.kill_daemon();
    let killed_at = Instant::now();

    let mut created = BTreeSet::new();
    for (name, child) in clients {
        let out = child.wait_with_output().expect("client");
        if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("created") {
            created.insert(name);
        }
    }
    eprintln!(
        "burst: {} tenders ran when the daemon was killed, {} creates were answered",
        old.len(),
        created.len()
    );

    // The parent-death signal takes every tender of the killed daemon.
    eventually("the old daemon's tenders to die", SHORT, || {
        tenders_anywhere(&system).is_empty()
    });
    eprintln!(
        "burst: old tenders gone {} ms after the kill",
        killed_at.elapsed().as_millis()
    );
    for t in &old {
        assert_eq!(t.ppid, daemon, "{t:?} was not a child of the daemon");
    }

    let mark = system.log_mark();
    system.start_daemon();
    let in_store = stored(&system);
    eprintln!("burst: {} unikernels in the store", in_store.len());
    assert!(
        created.is_subset(&in_store),
        "answered creates missing from the store: {:?}",
        created.difference(&in_store).collect::<Vec<_>>()
    );
    assert!(in_store.iter().all(|n| names.contains(n)), "{in_store:?}");
    let expected: Vec<String> = in_store.iter().cloned().collect();
    eventually("every stored unikernel to run", LONG, || {
        system.running() == expected
    });
    // Nothing more starts later (a second copy, a stale restart).
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(system.running(), expected, "info against the store");
    assert_eq!(stored(&system), in_store, "the store changed after start");
    assert_eq!(
        errors_in_log(&system, mark),
        Vec::<String>::new(),
        "errors at start-up"
    );

    // Exactly one tender per stored unikernel, all children of the new
    // daemon, and nothing else.
    let now = tenders_anywhere(&system);
    let mut per_name: BTreeMap<String, usize> = BTreeMap::new();
    for t in &now {
        assert_eq!(t.ppid, system.daemon_pid(), "{t:?}");
        let name = t.unikernel(&system).expect("the image argument");
        *per_name.entry(name).or_default() += 1;
        assert_eq!(t.taps().len(), 1, "{t:?}");
    }
    assert_eq!(
        per_name.keys().cloned().collect::<BTreeSet<_>>(),
        in_store,
        "tenders against the store"
    );
    assert!(per_name.values().all(|n| *n == 1), "{per_name:?}");
    assert!(now.iter().all(|t| old.iter().all(|o| o.pid != t.pid)));

    // No stale tap: every vmmtapN belongs to a running tender.
    check_taps(&system, "br0");
    assert_eq!(system.taps().len(), in_store.len());
    // Nor a stale image or console FIFO.
    let files = |dir: PathBuf, suffix: &str| -> BTreeSet<String> {
        fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(suffix).map(str::to_string)
            })
            .collect()
    };
    assert_eq!(files(system.tmpdir.clone(), ".img"), in_store, "images");
    assert_eq!(files(system.tmpdir.join("fifo"), ""), in_store, "FIFOs");

    for (i, name) in names.iter().enumerate() {
        if in_store.contains(name) {
            system.wait_ping(&ip(i));
        }
    }
    let statuses = system.status();
    assert_eq!(statuses.len(), in_store.len(), "{statuses:#?}");
    assert!(statuses
        .iter()
        .all(|s| s.state == albatross::wire::LifeCycle::Running && s.restarts == 0));
}
