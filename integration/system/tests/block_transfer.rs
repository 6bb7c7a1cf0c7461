//! Block device content through the client: `set-block` and `dump-block`
//! round-trip a 64 MB device byte for byte, compressed and not; an upload
//! larger than the device is refused and the old content kept.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use albatross_integration::{
    binaries, require_root, run_with_timeout, Output, Setup, System, LONG,
};

/// The device size in MB.
const SIZE_MB: usize = 64;
const SIZE: usize = SIZE_MB << 20;

/// Test content of `len` bytes: random, text, zeros with markers, random
/// again, so that compression has both easy and impossible parts.
fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut random = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = Vec::with_capacity(len);
    let quarter = len / 4;
    while out.len() < quarter {
        out.extend_from_slice(&random().to_le_bytes());
    }
    let line = format!("block content {seed}: the quick brown fox jumps over the lazy dog\n");
    while out.len() < 2 * quarter {
        out.extend_from_slice(line.as_bytes());
    }
    out.resize(3 * quarter, 0);
    for marker in (2 * quarter..3 * quarter).step_by(1 << 20) {
        out[marker..marker + 8].copy_from_slice(&random().to_le_bytes());
    }
    while out.len() < len {
        out.extend_from_slice(&random().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Runs the client with `TMPDIR` set to the scratch directory, where
/// `dump-block` writes.
fn client(system: &System, args: &[&str]) -> Output {
    let mut command = Command::new(&binaries().albatross);
    command
        .arg(args[0])
        .arg("--tmpdir")
        .arg(&system.tmpdir)
        .args(&args[1..])
        .env("TMPDIR", &system.files);
    run_with_timeout(&mut command, LONG)
}

fn client_ok(system: &System, args: &[&str]) -> Output {
    let out = client(system, args);
    assert_eq!(out.code, 0, "albatross {args:?}: {out:?}\n{}", system.log());
    out
}

/// Dumps the device at `level` and returns the content the client wrote.
fn dump(system: &System, level: &str) -> Vec<u8> {
    let out = client_ok(
        system,
        &[
            "dump-block",
            ":disk",
            &format!("--compression-level={level}"),
        ],
    );
    let path = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix(":disk: dumped to "))
        .unwrap_or_else(|| panic!("no dump file named: {out:?}"));
    let path = PathBuf::from(path);
    assert!(path.starts_with(&system.files), "{}", path.display());
    assert!(
        path.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(":disk."),
        "{}",
        path.display()
    );
    let bytes = fs::read(&path).unwrap();
    fs::remove_file(&path).unwrap();
    bytes
}

/// Asserts `a == b` without printing 64 MB when they differ.
fn assert_same(a: &[u8], b: &[u8], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    if let Some(at) = a.iter().zip(b).position(|(x, y)| x != y) {
        panic!("{what}: first difference at byte {at}");
    }
}

fn write(system: &System, name: &str, bytes: &[u8]) -> String {
    system.file(name, bytes).display().to_string()
}

fn device_file(system: &System) -> PathBuf {
    system.block_path(":disk")
}

fn padded(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.resize(SIZE, 0);
    bytes
}

fn check_device(system: &System, expected: &[u8], what: &str) {
    assert_same(&fs::read(device_file(system)).unwrap(), expected, what);
    let leftovers: Vec<String> = fs::read_dir(device_file(system).parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != ":disk")
        .collect();
    assert_eq!(leftovers, Vec::<String>::new(), "{what}: temporary files");
}

fn setup() -> System {
    let system = Setup::new().start();
    let out = client_ok(&system, &["create-block", ":disk", &SIZE_MB.to_string()]);
    assert!(out.stdout.contains("added block device"), "{out:?}");
    let out = client_ok(&system, &["block", "--name=:disk"]);
    assert_eq!(out.stdout, ":disk: 64 MB, inactive\n");
    system
}

#[test]
fn set_and_dump_round_trip_64_mb_uncompressed() {
    require_root!();
    let system = setup();
    let data = content(1, SIZE);
    let file = write(&system, "data", &data);
    let out = client_ok(&system, &["set-block", ":disk", &file]);
    assert_eq!(out.stdout, ":disk: set block device\n");
    check_device(&system, &data, "device file after set");
    assert_same(&dump(&system, "0"), &data, "dump at level 0");
    // The dump left the device as it was.
    check_device(&system, &data, "device file after dump");

    // Shorter content: the rest of the device is zeros.
    let short = content(2, SIZE / 2 + 12345);
    let file = write(&system, "short", &short);
    client_ok(&system, &["set-block", ":disk", &file]);
    assert_same(
        &dump(&system, "0"),
        &padded(short),
        "short content, level 0",
    );
}

#[test]
fn set_and_dump_round_trip_64_mb_compressed() {
    require_root!();
    let system = setup();
    let data = content(3, SIZE);
    let file = write(&system, "data", &data);
    let out = client_ok(
        &system,
        &["set-block", ":disk", &file, "--compression-level=9"],
    );
    assert_eq!(out.stdout, ":disk: set block device\n");
    check_device(&system, &data, "device file after compressed set");
    assert_same(&dump(&system, "9"), &data, "dump at level 9");
    // Either way round: compressed upload, plain dump and the reverse.
    assert_same(&dump(&system, "0"), &data, "dump at level 0");
    let short = content(4, SIZE - 4097);
    let file = write(&system, "short", &short);
    client_ok(&system, &["set-block", ":disk", &file]);
    assert_same(
        &dump(&system, "9"),
        &padded(short),
        "short content, level 9",
    );
}

/// Uploads `bytes` at `level`, which must be refused as too large, and
/// checks that the device still holds `kept`.
fn refused(system: &System, bytes: &[u8], level: &str, kept: &[u8]) {
    let file = write(system, "too-large", bytes);
    let out = client(
        system,
        &[
            "set-block",
            ":disk",
            &file,
            &format!("--compression-level={level}"),
        ],
    );
    assert_ne!(
        out.code,
        0,
        "{} bytes at level {level}: {out:?}",
        bytes.len()
    );
    check_device(system, kept, "device after a refused upload");
    assert_eq!(
        (
            out.code,
            out.stderr.contains("stream exceeds size"),
            out.stderr.contains("uncompress")
        ),
        (117, true, false),
        "{} bytes at level {level}: the daemon's reason is not shown: {out:?}",
        bytes.len()
    );
    assert_same(&dump(system, "0"), kept, "dump after a refused upload");
    fs::remove_file(Path::new(&file)).unwrap();
}

#[test]
fn an_upload_larger_than_the_device_is_refused_and_the_content_kept() {
    require_root!();
    let system = setup();
    let data = content(5, SIZE);
    let file = write(&system, "data", &data);
    client_ok(&system, &["set-block", ":disk", &file]);

    // One byte too many, plain and compressed.
    let mut over = content(6, SIZE);
    over.push(0x42);
    refused(&system, &over, "0", &data);
    refused(&system, &over, "9", &data);
    // Far too many: zeros compress to almost nothing, so the daemon only
    // notices after inflating.
    refused(&system, &vec![0; SIZE + (16 << 20)], "9", &data);
}

#[test]
fn an_upload_much_larger_than_the_device_is_refused_with_the_reason() {
    require_root!();
    let system = setup();
    let data = content(7, SIZE);
    let file = write(&system, "data", &data);
    client_ok(&system, &["set-block", ":disk", &file]);
    // The daemon refuses while the client is still sending.
    refused(&system, &content(8, SIZE + (32 << 20)), "0", &data);
}
