//! The daemon's store through its public API: round trips, replacement,
//! import and export of upstream state files, and that one change touches
//! only its own files.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use albatross::daemon::store::{write_upstream_state, Loaded, Store, StoreError, StoreWarning};
use albatross::model::{
    BlockSpec, FailBehaviour, Name, NetSpec, Path, Policy, Typ, UnikernelArguments, UnikernelConfig,
};
use albatross::wire::state::{decode_state, StateLayout};
use albatross::wire::EncodeError;

mod common;
use common::{b64_file, vector_path};

/// A fresh, empty database directory.
fn scratch(tag: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "albatross-store-{}-{tag}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn name(text: &str) -> Name {
    Name::parse(text).unwrap()
}

fn path(text: &str) -> Path {
    Path::parse(text).unwrap()
}

/// A configuration that varies with `n` in every field the store keeps.
fn config(n: usize) -> UnikernelConfig {
    UnikernelConfig {
        typ: Typ::Solo5,
        compressed: n % 2 == 0,
        image: format!("image {n} ").repeat(n % 7 + 1).into_bytes(),
        args: UnikernelArguments {
            fail_behaviour: if n % 3 == 0 {
                FailBehaviour::Quit
            } else {
                FailBehaviour::Restart(vec![1, 2])
            },
            startup: (n % 4 == 0).then_some(n as i64),
            add_name: n % 5 != 0,
            cpuids: vec![(n % 4) as i64],
            memory: 32 + n as i64,
            blocks: vec![BlockSpec {
                name: "data".into(),
                device: Some(format!("disk{n}")),
                sector_size: None,
            }],
            bridges: vec![NetSpec {
                netif: "service".into(),
                bridge: None,
                mac: None,
            }],
            argv: (n % 2 == 1).then(|| vec![format!("--n={n}")]),
            cpus: 1,
            linux_boot_partition: None,
        },
    }
}

fn policy(n: usize) -> Policy {
    Policy {
        unikernels: n as i64,
        cpuids: [0, n as i64].into(),
        memory: 1024 * n as i64,
        block: (n % 2 == 0).then_some(n as i64),
        bridges: ["service".to_string()].into(),
    }
}

fn without_image(config: &UnikernelConfig) -> UnikernelConfig {
    UnikernelConfig {
        image: Vec::new(),
        ..config.clone()
    }
}

fn open(dbdir: &FsPath) -> (Store, Loaded) {
    let (store, loaded) = Store::open(dbdir).unwrap();
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    (store, loaded)
}

type Unikernels = Vec<(Name, UnikernelConfig)>;

/// Every unikernel of a freshly opened store with its image read back, and
/// every policy.
fn reopen(dbdir: &FsPath) -> (Unikernels, Vec<(Path, Policy)>) {
    let (store, loaded) = open(dbdir);
    let unikernels = loaded
        .unikernels
        .iter()
        .map(|u| {
            assert!(u.config.image.is_empty(), "{} keeps no image", u.name);
            assert_eq!(u.image, store.image_path(&u.name));
            let mut config = u.config.clone();
            config.image = store.read_image(&u.name).unwrap();
            (u.name.clone(), config)
        })
        .collect();
    (unikernels, loaded.policies)
}

/// Sorted like the store returns them: canonical order.
fn canonical<T: Clone>(mut entries: Vec<(Name, T)>) -> Vec<(Name, T)> {
    entries.sort_by(|a, b| a.0.trie_key().cmp(&b.0.trie_key()));
    entries
}

/// The decoded form of what the encoder writes (sets sorted).
fn normalised(config: &UnikernelConfig) -> UnikernelConfig {
    let record = albatross::wire::state::encode_config_record(config);
    albatross::wire::state::decode_config_record(&record).unwrap()
}

#[test]
fn many_unikernels_and_policies_round_trip() {
    let dbdir = scratch("round-trip");
    let (store, loaded) = open(&dbdir);
    assert!(loaded.unikernels.is_empty() && loaded.policies.is_empty());
    assert!(loaded.warnings.is_empty() && loaded.imported.is_none());

    let names: Vec<Name> = (0..60)
        .map(|n| match n % 3 {
            0 => name(&format!(":u{n}")),
            1 => name(&format!("team{}:u{n}", n % 4)),
            _ => name(&format!("a:b{}:u.{n}", n % 2)),
        })
        .collect();
    let mut expected = Vec::new();
    for (n, name) in names.iter().enumerate() {
        let config = config(n);
        store.put_unikernel(name, &config).unwrap();
        expected.push((name.clone(), normalised(&config)));
    }
    // In canonical order.
    let paths = ["", "a", "a:b0", "a:b1", "team0", "team1", "z.z"];
    let policies: Vec<(Path, Policy)> = paths
        .iter()
        .enumerate()
        .map(|(n, p)| (path(p), policy(n + 1)))
        .collect();
    for (p, policy) in policies.iter().rev() {
        store.put_policy(p, policy).unwrap();
    }
    let (unikernels, read_policies) = reopen(&dbdir);
    assert_eq!(unikernels, canonical(expected.clone()));
    assert_eq!(read_policies, policies, "canonical order");
    assert!(dbdir.join("policies/:").is_file());
    assert!(dbdir.join("policies/a:b0:").is_file());

    // Remove every third unikernel and two policies.
    for (n, name) in names.iter().enumerate().filter(|(n, _)| n % 3 == 0) {
        assert!(store.remove_unikernel(name).unwrap(), "{n}");
        assert!(!store.remove_unikernel(name).unwrap(), "{n} twice");
    }
    expected.retain(|(name, _)| !name.path().is_root());
    assert!(store.remove_policy(&path("team1")).unwrap());
    assert!(store.remove_policy(&Path::root()).unwrap());
    assert!(!store.remove_policy(&Path::root()).unwrap());
    let (unikernels, read_policies) = reopen(&dbdir);
    assert_eq!(unikernels, canonical(expected));
    let kept: Vec<String> = read_policies.iter().map(|(p, _)| p.to_string()).collect();
    assert_eq!(kept, ["a", "a:b0", "a:b1", "team0", "z.z"]);
    fs::remove_dir_all(&dbdir).unwrap();
}

#[test]
fn replacing_a_unikernel() {
    let dbdir = scratch("replace");
    let (store, _) = open(&dbdir);
    let web = name("a:web");
    store.put_unikernel(&web, &config(1)).unwrap();
    store.put_unikernel(&web, &config(2)).unwrap();
    assert_eq!(reopen(&dbdir).0, [(web.clone(), normalised(&config(2)))]);

    // A new configuration with the stored image.
    let mut changed = config(3);
    changed.image = b"ignored".to_vec();
    store.update_config(&web, &changed).unwrap();
    let mut expected = normalised(&config(3));
    expected.image = config(2).image;
    assert_eq!(reopen(&dbdir).0, [(web.clone(), expected)]);
    assert_eq!(
        fs::read_dir(dbdir.join("unikernels")).unwrap().count(),
        1,
        "no leftovers"
    );

    let err = store
        .update_config(&name(":missing"), &config(1))
        .unwrap_err();
    assert!(err.to_string().starts_with("linking "), "{err}");
    fs::remove_dir_all(&dbdir).unwrap();
}

/// Every state vector, with the unikernels it must give.
fn state_vectors() -> Vec<String> {
    let mut files: Vec<String> = fs::read_dir(vector_path(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f.starts_with("state_") && f.ends_with(".b64"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 10, "{files:?}");
    files
}

#[test]
fn import_of_every_upstream_state_file() {
    for file in state_vectors() {
        let dbdir = scratch("import");
        let bytes = b64_file(&file);
        fs::write(dbdir.join("state"), &bytes).unwrap();
        let state = decode_state(&bytes).unwrap();

        let (_, loaded) = open(&dbdir);
        assert_eq!(loaded.imported, Some(state.layout), "{file}");
        assert!(loaded.warnings.is_empty(), "{file}: {:?}", loaded.warnings);
        let (unikernels, policies) = reopen(&dbdir);
        assert_eq!(unikernels, canonical(state.unikernels.clone()), "{file}");
        assert_eq!(policies, state.policies, "{file}");
        let configs: Vec<UnikernelConfig> =
            loaded.unikernels.iter().map(|u| u.config.clone()).collect();
        let without: Vec<UnikernelConfig> = canonical(state.unikernels)
            .iter()
            .map(|(_, c)| without_image(c))
            .collect();
        assert_eq!(configs, without, "{file}");

        // The upstream file is untouched and not imported again.
        assert_eq!(fs::read(dbdir.join("state")).unwrap(), bytes, "{file}");
        assert_eq!(fs::read(dbdir.join("store-version")).unwrap(), b"1\n");
        let (_, again) = open(&dbdir);
        assert_eq!(again.imported, None, "{file}");
        fs::remove_dir_all(&dbdir).unwrap();
    }
}

#[test]
fn import_with_policies_and_export_of_older_layouts() {
    let dbdir = scratch("import-policies");
    let unikernels = vec![(name("a:web"), config(1)), (name(":dns"), config(2))];
    let policies = vec![(Path::root(), policy(9)), (path("a"), policy(2))];
    let v5 = albatross::wire::state::encode_state_layout(
        &unikernels,
        &policies,
        StateLayout::V4AndPolicies,
    )
    .unwrap();
    fs::write(dbdir.join("state"), &v5).unwrap();
    let (store, loaded) = open(&dbdir);
    assert_eq!(loaded.imported, Some(StateLayout::V4AndPolicies));
    assert_eq!(loaded.policies, policies);
    assert_eq!(
        store
            .export_state_layout(StateLayout::V4AndPolicies)
            .unwrap(),
        v5
    );
    assert_eq!(
        decode_state(&store.export_state().unwrap()).unwrap(),
        decode_state(&albatross::wire::state::encode_state(
            &unikernels,
            &policies
        ))
        .unwrap()
    );

    store
        .put_unikernel(&name(":smp"), &{
            let mut c = config(3);
            c.args.cpuids = vec![0, 1];
            c
        })
        .unwrap();
    let err = store
        .export_state_layout(StateLayout::V3AndPolicies)
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::Export(EncodeError::OldStateCpuids { count: 2, .. })
    ));
    assert!(
        err.to_string()
            .starts_with("exporting the state file failed: unikernel :smp has 2 cpuids"),
        "{err}"
    );
    fs::remove_dir_all(&dbdir).unwrap();
}

#[test]
fn export_after_import_is_the_current_upstream_form() {
    let dbdir = scratch("export");
    fs::write(
        dbdir.join("state"),
        b64_file("state_wire5_unikernel3_with_mac.b64"),
    )
    .unwrap();
    let (store, _) = open(&dbdir);
    let exported = store.export_state().unwrap();
    assert_eq!(exported, b64_file("derived/state_v6_client_gen.b64"));

    // Back to upstream: the previous state file is kept as state.bak.
    let previous = fs::read(dbdir.join("state")).unwrap();
    write_upstream_state(&dbdir, &exported).unwrap();
    assert_eq!(fs::read(dbdir.join("state")).unwrap(), exported);
    assert_eq!(fs::read(dbdir.join("state.bak")).unwrap(), previous);
    write_upstream_state(&dbdir, b"second").unwrap();
    assert_eq!(fs::read(dbdir.join("state.bak")).unwrap(), exported);
    let mut names: Vec<String> = fs::read_dir(&dbdir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "policies",
            "state",
            "state.bak",
            "store-version",
            "unikernels"
        ]
    );

    // Without a previous file there is no backup.
    let fresh = scratch("export-fresh");
    write_upstream_state(&fresh, &exported).unwrap();
    assert!(!fresh.join("state.bak").exists());
    fs::remove_dir_all(&fresh).unwrap();
    fs::remove_dir_all(&dbdir).unwrap();
}

#[test]
fn an_interrupted_import_is_done_again() {
    let dbdir = scratch("reimport");
    let bytes = b64_file("state_wire5_unikernel3_path.b64");
    fs::write(dbdir.join("state"), &bytes).unwrap();
    open(&dbdir);
    // As if the import had stopped after two unikernels.
    fs::remove_file(dbdir.join("store-version")).unwrap();
    fs::remove_dir_all(dbdir.join("unikernels/foo:hello")).unwrap();
    fs::remove_dir_all(dbdir.join("unikernels/foo:my.nice.unikernel")).unwrap();

    let (_, loaded) = open(&dbdir);
    assert_eq!(loaded.imported.map(|l| l.tag()), Some(3));
    assert_eq!(
        loaded.warnings,
        [StoreWarning::ImportRestarted {
            state: dbdir.join("state")
        }]
    );
    assert!(loaded.warnings[0].to_string().contains("imported it again"));
    let state = decode_state(&bytes).unwrap();
    assert_eq!(reopen(&dbdir).0, canonical(state.unikernels));
    fs::remove_dir_all(&dbdir).unwrap();
}

#[test]
fn an_undecodable_state_file_is_an_error() {
    let dbdir = scratch("bad-state");
    fs::write(dbdir.join("state"), b"\x30\x00").unwrap();
    let err = Store::open(&dbdir).unwrap_err();
    assert!(matches!(&err, StoreError::Decode { path, .. } if path == &dbdir.join("state")));
    assert!(err.to_string().contains("/state does not decode"), "{err}");
    // Nothing counts as imported: the next start tries again.
    assert!(!dbdir.join("store-version").exists());
    fs::remove_dir_all(&dbdir).unwrap();
}

type Snapshot = BTreeMap<PathBuf, (u64, u64, i64, i64)>;

/// Size, inode and modification time of every file and directory below
/// `dir`, by path.
fn snapshot(dir: &FsPath) -> Snapshot {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                todo.push(path.clone());
            }
            out.insert(
                path,
                (meta.len(), meta.ino(), meta.mtime(), meta.mtime_nsec()),
            );
        }
    }
    out
}

/// The entries that differ between two snapshots, and the bytes of the
/// regular files among them after the change.
fn touched(before: &Snapshot, after: &Snapshot) -> (Vec<PathBuf>, u64) {
    let mut paths: Vec<PathBuf> = before
        .keys()
        .chain(after.keys())
        .filter(|p| before.get(*p) != after.get(*p))
        .cloned()
        .collect();
    paths.sort();
    paths.dedup();
    let bytes = paths
        .iter()
        .filter(|p| p.is_file())
        .map(|p| fs::metadata(p).unwrap().len())
        .sum();
    (paths, bytes)
}

#[test]
fn one_put_touches_only_its_own_files() {
    let mut costs = Vec::new();
    for others in [1, 40] {
        let dbdir = scratch("cost");
        let (store, _) = open(&dbdir);
        for n in 0..others {
            let mut big = config(n);
            big.image = vec![n as u8; 64 * 1024];
            store
                .put_unikernel(&name(&format!("o:u{n}")), &big)
                .unwrap();
            store
                .put_policy(&path(&format!("p{n}")), &policy(n))
                .unwrap();
        }
        let web = name("a:web");
        store.put_unikernel(&web, &config(1)).unwrap();
        let units = dbdir.join("unikernels");
        let mine = |p: &PathBuf| p.starts_with(units.join("a:web")) || p == &units;

        // Replacing: only this unikernel's directory (and its parent).
        let before = snapshot(&dbdir);
        store.put_unikernel(&web, &config(2)).unwrap();
        let (paths, bytes) = touched(&before, &snapshot(&dbdir));
        assert!(paths.iter().all(mine), "{paths:?}");
        costs.push((paths.len(), bytes));

        // Removing and writing a policy likewise.
        let before = snapshot(&dbdir);
        store.put_policy(&path("a"), &policy(3)).unwrap();
        assert!(store.remove_unikernel(&web).unwrap());
        let (paths, _) = touched(&before, &snapshot(&dbdir));
        let policies = dbdir.join("policies");
        assert!(
            paths
                .iter()
                .all(|p| mine(p) || p == &policies || p == &policies.join("a:")),
            "{paths:?}"
        );
        fs::remove_dir_all(&dbdir).unwrap();
    }
    assert_eq!(
        costs[0], costs[1],
        "cost with 1 and with 40 other unikernels"
    );
}
