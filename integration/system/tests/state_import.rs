//! Upstream's state files (`tests/vectors/state_*.b64`) are imported at
//! the first start: every unikernel is kept, and since their images are
//! empty none can run, which the daemon reports (log, `info` status lines)
//! instead of dropping them. `albatross export-state` then writes a file
//! that decodes as upstream's current layout with the same content.

use std::fs;
use std::path::{Path as FsPath, PathBuf};

use albatross::model::{FailBehaviour, Name};
use albatross::wire::state::{decode_state, encode_state, StateFile, StateLayout};
use albatross::wire::LifeCycle;
use albatross_integration::{
    binaries, eventually, exists, require_root, run_with_timeout, Setup, System, SHORT,
};

#[path = "../../../tests/common/mod.rs"]
mod common;

/// The upstream state files (see the vectors README).
const VECTORS: [&str; 10] = [
    "state_wire4_unikernel1.b64",
    "state_wire4_unikernel2.b64",
    "state_wire4_unikernel3.b64",
    "state_wire5_unikernel1.b64",
    "state_wire5_unikernel2.b64",
    "state_wire5_unikernel3.b64",
    "state_wire5_unikernel1_path.b64",
    "state_wire5_unikernel2_path.b64",
    "state_wire5_unikernel3_path.b64",
    "state_wire5_unikernel3_with_mac.b64",
];

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors")
}

fn b64(file: &str) -> Vec<u8> {
    let path = vectors_dir().join(file);
    common::unbase64(
        &fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
}

/// Replaces the database directory with one holding only `state`, then
/// starts the daemon on it (the first start of albatross-rs on a host
/// upstream ran on).
fn start_on_state(system: &mut System, state: &[u8]) {
    system.stop_daemon();
    for entry in fs::read_dir(&system.dbdir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            fs::remove_dir_all(&path).unwrap();
        } else {
            fs::remove_file(&path).unwrap();
        }
    }
    fs::write(system.dbdir.join("state"), state).unwrap();
    system.start_daemon();
}

/// `albatross export-state --dbdir DBDIR --file FILE`, which must succeed.
fn export_state(system: &System, file: &FsPath) -> String {
    let mut command = std::process::Command::new(&binaries().albatross);
    command
        .arg("export-state")
        .arg("--dbdir")
        .arg(&system.dbdir)
        .arg("--file")
        .arg(file);
    let out = run_with_timeout(&mut command, SHORT);
    assert_eq!(out.code, 0, "export-state failed: {out:?}");
    out.stdout
}

/// Imports `file` and checks what the daemon makes of it.
fn import(system: &mut System, file: &str) -> StateFile {
    let bytes = b64(file);
    let mut expected = decode_state(&bytes).unwrap();
    // Compared in canonical order (the status reply is sorted by name).
    expected.unikernels.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(expected.unikernels.len(), 4, "{file}");
    let mark = system.log_mark();
    start_on_state(system, &bytes);
    let names: Vec<Name> = expected.unikernels.iter().map(|(n, _)| n.clone()).collect();

    // Kept, waiting for a restart that cannot succeed, and said so.
    eventually(format!("{file}: every unikernel waiting"), SHORT, || {
        let status = system.status();
        status.iter().map(|s| &s.name).eq(names.iter())
            && status.iter().all(|s| s.state == LifeCycle::Waiting)
    });
    assert_eq!(system.info(), Vec::new(), "{file}: nothing runs");
    let log = system.log();
    let log = &log[mark..];
    assert!(
        log.contains("imported upstream state file"),
        "{file}: no import in the log:\n{log}"
    );
    for name in &names {
        let needle = format!("{name}: could not be restored: ");
        let line = log
            .lines()
            .find(|l| l.contains(&needle))
            .unwrap_or_else(|| panic!("{file}: no {needle:?} in the log:\n{log}"));
        assert!(
            line.len() > line.find(&needle).unwrap() + needle.len(),
            "{file}: no reason given: {line}"
        );
    }
    let out = system.client_ok("info", &[]);
    for name in &names {
        assert!(
            out.stdout.lines().any(|l| l
                .starts_with(&format!("{name}: waiting to restart, restarts: "))
                && l.contains(", next attempt: ")),
            "{file}: no status line for {name}:\n{out:?}"
        );
    }

    // The upstream file is left as it was; the store is complete.
    assert_eq!(
        fs::read(system.dbdir.join("state")).unwrap(),
        bytes,
        "{file}"
    );
    assert!(exists(&system.dbdir.join("store-version")), "{file}");

    // Exported: upstream's current layout, same unikernels and policies,
    // exactly the bytes upstream's writer makes for them.
    let out_file = system.files.join(format!("{file}.exported"));
    let said = export_state(system, &out_file);
    assert!(
        said.starts_with("wrote 4 unikernels and 0 policies"),
        "{said}"
    );
    let exported = fs::read(&out_file).unwrap();
    let decoded = decode_state(&exported).unwrap();
    assert_eq!(decoded.layout, StateLayout::Current, "{file}");
    assert_eq!(decoded.unikernels, expected.unikernels, "{file}");
    assert_eq!(decoded.policies, expected.policies, "{file}");
    assert_eq!(
        exported,
        encode_state(&expected.unikernels, &expected.policies),
        "{file}"
    );
    expected
}

#[test]
fn every_upstream_state_file_is_imported_kept_and_exported() {
    require_root!();
    let mut system = Setup::new().start();
    for file in VECTORS {
        import(&mut system, file);
    }
}

#[test]
fn imported_unikernels_survive_failed_restarts_and_a_daemon_restart() {
    require_root!();
    let mut system = Setup::new().start();
    let file = "state_wire5_unikernel3_path.b64";
    let state = import(&mut system, file);

    // The README's table: A3 at foo:, B3 at bar:.
    let config = |name: &str| {
        let name = Name::parse(name).unwrap();
        state
            .unikernels
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| c.clone())
            .unwrap()
    };
    let a3 = config("foo:hello");
    assert_eq!(a3.args.cpuids, [0]);
    assert_eq!(a3.args.memory, 1);
    assert_eq!(a3.args.fail_behaviour, FailBehaviour::Quit);
    assert_eq!(
        a3.args
            .blocks
            .iter()
            .map(|b| (b.name.as_str(), b.device.as_deref()))
            .collect::<Vec<_>>(),
        [("block", None), ("secondblock", Some("second-data"))]
    );
    assert_eq!(
        a3.args
            .bridges
            .iter()
            .map(|b| (b.netif.as_str(), b.bridge.as_deref()))
            .collect::<Vec<_>>(),
        [("service", None), ("other-net", Some("second-bridge"))]
    );
    assert_eq!(a3.args.argv, Some(vec!["-l *:debug".to_string()]));
    let b3 = config("bar:my.nice.unikernel");
    assert_eq!(
        (b3.args.cpuids.as_slice(), b3.args.memory),
        ([2].as_slice(), 10)
    );
    assert_eq!(b3.args.argv, None);

    // Several failed attempts later, all four are still there.
    eventually("a few restart attempts each", SHORT, || {
        system.status().iter().all(|s| s.restarts >= 2)
    });
    system.stop_daemon();
    system.start_daemon();
    eventually("every unikernel waiting again", SHORT, || {
        let status = system.status();
        status.len() == 4 && status.iter().all(|s| s.state == LifeCycle::Waiting)
    });
    let out_file = system.files.join("after-restart.state");
    export_state(&system, &out_file);
    let again = decode_state(&fs::read(&out_file).unwrap()).unwrap();
    assert_eq!(again.unikernels, state.unikernels);
}

#[test]
fn the_export_of_the_mac_vector_is_byte_identical_to_upstreams_writer() {
    require_root!();
    let mut system = Setup::new().start();
    import(&mut system, "state_wire5_unikernel3_with_mac.b64");
    let out_file = system.files.join("exported");
    export_state(&system, &out_file);
    assert_eq!(
        fs::read(&out_file).unwrap(),
        b64("derived/state_v6_client_gen.b64"),
        "the current upstream form of the vector (test/albatross_client_gen.ml)"
    );
}
