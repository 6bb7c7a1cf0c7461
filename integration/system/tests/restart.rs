//! Exits and restarts (§10.5, §10.6, §23.5): which exit codes and signals
//! restart a unikernel, the retry without `--name`, and the back-off of a
//! crash loop as `info` shows it.

use std::time::{Duration, Instant};

use albatross::model::{Name, Timestamp};
use albatross::solo5::AbiTarget;
use albatross::wire::state::decode_config_record;
use albatross::wire::LifeCycle;
use albatross_integration::{
    eventually, exists, require_root, wait_for, Setup, System, LONG, SHORT,
};
use rustix::process::{kill_process, Pid, Signal};

/// Creates device-less unikernel `name` for `target` with client options
/// `flags` and guest arguments `guest`.
fn create(system: &System, name: &str, target: AbiTarget, flags: &[&str], guest: &[&str]) {
    let image = system.image(&format!("{name}.img"), target, &[]);
    let guest: Vec<String> = guest.iter().map(|g| format!("--arg={g}")).collect();
    let mut args = vec![name, image.to_str().unwrap()];
    args.extend_from_slice(flags);
    args.extend(guest.iter().map(String::as_str));
    let out = system.client_ok("create", &args);
    assert_eq!(out.stdout, format!(":{name}: created unikernel\n"));
}

/// How many times the daemon started a tender for `name` (`:name`).
fn starts(system: &System, name: &str) -> usize {
    system.log().matches(&format!("{name}: started ")).count()
}

/// Waits until the tender of `name` was started `n` times.
fn wait_starts(system: &System, name: &str, n: usize, timeout: Duration) {
    eventually(format!("{n} starts of {name}"), timeout, || {
        starts(system, name) >= n
    });
}

/// Waits until the daemon decided not to restart `name` after `status`.
fn wait_not_restarted(system: &System, name: &str, status: &str) {
    system.wait_log(
        0,
        &format!("{name}: not restarted ({status}); removed"),
        SHORT,
    );
}

/// Asserts that the daemon forgot `name`: no tender, not in info or
/// status, not in the store, no image or FIFO left.
fn assert_gone(system: &System, name: &str) {
    assert!(system.tender(name).is_none(), "{name} still has a tender");
    let parsed = Name::parse(name).unwrap();
    assert!(
        !system.info().iter().any(|(n, _)| *n == parsed),
        "{name} in info"
    );
    assert!(
        system.status_of(name).is_none(),
        "{name} in status: {:?}",
        system.status_of(name)
    );
    assert!(
        !exists(&system.dbdir.join("unikernels").join(name)),
        "{name} still stored"
    );
    eventually(
        format!("the image and FIFO of {name} to be removed"),
        SHORT,
        || !exists(&system.image_path(name)) && !exists(&system.fifo_path(name)),
    );
}

fn kill(pid: u32, signal: Signal) {
    kill_process(Pid::from_raw(pid as i32).unwrap(), signal).unwrap();
}

#[test]
fn restartable_exits_restart() {
    require_root!();
    let system = Setup::new().start();
    let cases = [
        ("zero", vec!["--restart-on-fail"], "--test-exit=0"),
        ("two", vec!["--restart-on-fail"], "--test-exit=2"),
        ("other", vec!["--restart-on-fail"], "--test-exit=255"),
        (
            "listed",
            vec!["--restart-on-fail", "--exit-code=3", "--exit-code=7"],
            "--test-exit=7",
        ),
    ];
    for (name, flags, exit) in &cases {
        create(
            &system,
            name,
            AbiTarget::Spt,
            flags,
            &["--test-delay-ms=100", exit],
        );
    }
    for (name, _, _) in &cases {
        let name = format!(":{name}");
        wait_starts(&system, &name, 2, SHORT);
        let status = system.status_of(&name).unwrap();
        assert!(status.restarts >= 1, "{status:?}");
        let out = system.client_ok("destroy", &[&name]);
        assert!(
            out.stdout == format!("{name}: destroyed unikernel\n")
                || out.stdout == format!("{name}: destroyed: removed from restarting\n"),
            "{out:?}"
        );
        assert_gone(&system, &name);
    }
    assert!(system.taps().is_empty());
}

#[test]
fn never_restarted_exits() {
    require_root!();
    let system = Setup::new().start();
    // --no-add-name: 64 and 124 would otherwise mean "retry without --name".
    let mut cases: Vec<(String, Vec<&str>, i32)> = [1, 60, 61, 62, 63, 64, 123, 124, 125]
        .into_iter()
        .map(|code| {
            (
                format!("code{code}"),
                vec!["--restart-on-fail", "--no-add-name"],
                code,
            )
        })
        .collect();
    cases.push((
        "unlisted".into(),
        vec!["--restart-on-fail", "--exit-code=3"],
        4,
    ));
    cases.push(("quit0".into(), vec![], 0));
    cases.push(("quit2".into(), vec![], 2));
    let before = system.store();
    for (name, flags, code) in &cases {
        create(
            &system,
            name,
            AbiTarget::Spt,
            flags,
            &[&format!("--test-exit={code}")],
        );
    }
    for (name, _, code) in &cases {
        let name = format!(":{name}");
        wait_not_restarted(&system, &name, &format!("exit {code}"));
        assert_gone(&system, &name);
        assert_eq!(starts(&system, &name), 1, "{name} was restarted");
    }
    // The store is back where it started.
    assert_eq!(system.store(), before);
}

#[test]
fn signals_never_restart() {
    require_root!();
    let system = Setup::new().start();
    // The guest makes the tender die of SIGSEGV (spt).
    create(
        &system,
        "segv",
        AbiTarget::Spt,
        &["--restart-on-fail"],
        &["--test-crash"],
    );
    // Signals from outside: spt dies of them, hvt catches SIGTERM and
    // exits 1 (solo5-tender.md §4).
    for (name, target) in [
        ("killed", AbiTarget::Spt),
        ("termed", AbiTarget::Spt),
        ("hvtterm", AbiTarget::Hvt),
    ] {
        create(&system, name, target, &["--restart-on-fail"], &[]);
    }
    wait_not_restarted(&system, ":segv", "signal 11");
    kill(system.wait_tender(":killed").pid, Signal::KILL);
    kill(system.wait_tender(":termed").pid, Signal::TERM);
    kill(system.wait_tender(":hvtterm").pid, Signal::TERM);
    wait_not_restarted(&system, ":killed", "signal 9");
    wait_not_restarted(&system, ":termed", "signal 15");
    wait_not_restarted(&system, ":hvtterm", "exit 1");
    for name in [":segv", ":killed", ":termed", ":hvtterm"] {
        assert_gone(&system, name);
        assert_eq!(starts(&system, name), 1, "{name} was restarted");
    }
}

#[test]
fn unknown_name_argument_is_retried_without_it_and_persisted() {
    require_root!();
    let mut system = Setup::new().start();
    // MirageOS before 4.10 exits 64 on --name; cmdliner images exit 124.
    // Neither asks for restarts: the retry does not depend on it.
    create(
        &system,
        "legacy",
        AbiTarget::Spt,
        &[],
        &["--test-reject-name"],
    );
    create(
        &system,
        "cmdliner",
        AbiTarget::Hvt,
        &[],
        &["--test-cmdliner-name"],
    );
    for (name, tender, code, guest) in [
        ("legacy", "solo5-spt", 64, "--test-reject-name"),
        ("cmdliner", "solo5-hvt", 124, "--test-cmdliner-name"),
    ] {
        let full = format!(":{name}");
        system.wait_log(
            0,
            &format!(
                "{full}: exit {code}, probably does not understand --name; retrying without it"
            ),
            SHORT,
        );
        wait_starts(&system, &full, 2, SHORT);
        let running = system.wait_tender(&full);
        let expected = vec![
            system.tender_dir.join(tender).display().to_string(),
            "--mem=32".to_string(),
            "--".to_string(),
            system.image_path(&full).display().to_string(),
            guest.to_string(),
        ];
        assert_eq!(running.cmdline, expected);
    }
    // Persisted (§10.6 step 2): the stored configurations say so, and
    // after a restart of the daemon both start without --name.
    for name in [":legacy", ":cmdliner"] {
        let config = system.dbdir.join("unikernels").join(name).join("config");
        eventually(format!("add-name false stored for {name}"), SHORT, || {
            std::fs::read(&config)
                .ok()
                .and_then(|bytes| decode_config_record(&bytes).ok())
                .is_some_and(|c| !c.args.add_name)
        });
    }
    let status = system.stop_daemon();
    assert!(status.success(), "daemon exit: {status}");
    let mark = system.log_mark();
    system.start_daemon();
    for name in [":legacy", ":cmdliner"] {
        let tender = system.wait_tender(name);
        assert!(
            !tender.cmdline.iter().any(|a| a.starts_with("--name=")),
            "{tender:?}"
        );
    }
    assert!(!system.log()[mark..].contains("probably does not understand --name"));
}

#[test]
fn crash_loop_backs_off_and_info_shows_it() {
    require_root!();
    let system = Setup::new().start();
    create(
        &system,
        "crash",
        AbiTarget::Spt,
        &["--restart-on-fail"],
        &["--test-exit=0"],
    );
    // Record when each start shows up in the log.
    let begin = Instant::now();
    let mut seen: Vec<Duration> = Vec::new();
    while seen.len() < 4 {
        let n = starts(&system, ":crash");
        while seen.len() < n {
            seen.push(begin.elapsed());
        }
        assert!(
            begin.elapsed() < LONG,
            "only {} starts after {:?}: {seen:?}",
            seen.len(),
            begin.elapsed()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let gaps: Vec<u128> = seen.windows(2).map(|w| (w[1] - w[0]).as_millis()).collect();
    // First restart at once, then 1 s, then 2 s (a little slack for the
    // tender's own run and the polling).
    assert!(
        gaps[0] < 700,
        "first restart after {} ms: {gaps:?}",
        gaps[0]
    );
    assert!(
        (900..1700).contains(&gaps[1]),
        "second restart after {} ms: {gaps:?}",
        gaps[1]
    );
    assert!(
        (1900..2700).contains(&gaps[2]),
        "third restart after {} ms: {gaps:?}",
        gaps[2]
    );

    // Now it waits 4 s: the status says so, and so does `info`.
    let status = wait_for("crash to wait for its 4th restart", SHORT, || {
        system
            .status_of(":crash")
            .filter(|s| s.state == LifeCycle::Waiting && s.restarts == 4)
    });
    assert_eq!(status.pid, None);
    let next = status.next_attempt.expect("a next attempt while waiting");
    let ahead = next.unix_millis() - Timestamp::now().unix_millis();
    assert!((0..=4100).contains(&ahead), "next attempt {ahead} ms ahead");
    let out = system.client_ok("info", &[]);
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with(":crash: "))
        .unwrap_or_else(|| panic!("no line for :crash in {out:?}"));
    assert!(line.contains("restarts: 4"), "{line}");
    let printed = line
        .split("next attempt: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no next attempt in {line}"));
    let printed = Timestamp::parse_rfc3339(printed.trim()).unwrap();
    assert!(
        (next.unix_millis() - printed.unix_millis()).abs() < 1000,
        "{line} against {next}"
    );

    // destroy stops the loop: no start at the time the restart was due.
    let out = system.client_ok("destroy", &["crash"]);
    assert_eq!(out.stdout, ":crash: destroyed: removed from restarting\n");
    let count = starts(&system, ":crash");
    let due = Duration::from_millis(u64::try_from(ahead).unwrap_or(0) + 500);
    std::thread::sleep(due);
    assert_eq!(starts(&system, ":crash"), count, "restarted after destroy");
    assert_gone(&system, ":crash");
}
