//! Harness for the whole-system tests of albatross-rs (`tests/*.rs`).
//!
//! Each test builds a [`System`]: a network namespace of its own with
//! Linux bridges, fresh runtime and database directories, a tender
//! directory whose `solo5-hvt` and `solo5-spt` are symlinks to the test
//! tender, and the real `albatross daemon` started inside the namespace.
//! The test then drives it with the real client (or by hand over the
//! socket) and looks at the kernel objects: tender processes in `/proc`,
//! taps in the namespace's `/sys/class/net`, pings from the bridge.
//!
//! The binaries are not built by the tests: `target/<profile>/albatross`
//! and `target/<profile>/test-tender` must exist next to the test
//! executable's `deps/` directory. `integration/run` runs
//! `cargo build --workspace --bins` first; by hand, do the same before
//! `cargo test -p albatross-integration`.
//!
//! Everything here needs root (namespaces, bridges, taps). Tests call
//! [`require_root!`] first, which prints a notice and passes without it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

mod netns;
mod procs;
mod snapshot;
mod system;
mod wait;

pub use netns::Netns;
pub use procs::{open_fds, run_with_timeout, Output, TenderProc};
pub use snapshot::Snapshot;
pub use system::{
    arguments, exists, framed, read_until_closed, wire_round_trip, Observed, Setup, System, Tap,
};
pub use wait::{eventually, wait_for, LONG, SHORT};

/// Whether the tests run as root (they need namespaces and taps).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Returns from the test with a notice unless it runs as root.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::is_root() {
            eprintln!(
                "notice: not root: whole-system test skipped \
                 (it needs network namespaces, bridges and taps)"
            );
            return;
        }
    };
}

/// The binaries under test.
#[derive(Debug)]
pub struct Binaries {
    /// `albatross` (client and daemon).
    pub albatross: PathBuf,
    /// `test-tender`, the stand-in for `solo5-hvt` and `solo5-spt`.
    pub tender: PathBuf,
}

/// Finds the binaries in the target directory of the running test
/// executable (`target/<profile>/deps/<test>` → `target/<profile>/`).
///
/// # Panics
///
/// If they are not built, with a message saying how to build them.
pub fn binaries() -> &'static Binaries {
    static FOUND: OnceLock<Binaries> = OnceLock::new();
    FOUND.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test executable's path");
        let found = exe.ancestors().skip(1).find_map(|dir| {
            let albatross = dir.join("albatross");
            let tender = dir.join("test-tender");
            (albatross.is_file() && tender.is_file()).then(|| Binaries {
                albatross: canonical(&albatross),
                tender: canonical(&tender),
            })
        });
        found.unwrap_or_else(|| {
            panic!(
                "albatross and test-tender are not built next to {}: \
                 run `cargo build --workspace --bins` first (integration/run does)",
                exe.display()
            )
        })
    })
}

fn canonical(path: &Path) -> PathBuf {
    path.canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
