//! Default directories and the daemon sockets below them (§1).
//!
//! The defaults depend on the operating system the program was built for:
//! Linux uses `/run/albatross` and `/var/lib/albatross`, FreeBSD (and macOS,
//! for the client) `/var/run/albatross` and `/var/db/albatross`.

use std::path::{Path, PathBuf};

/// The runtime directory used when `--tmpdir` is not given.
pub fn default_tmpdir() -> PathBuf {
    if cfg!(target_os = "linux") {
        PathBuf::from("/run/albatross")
    } else {
        PathBuf::from("/var/run/albatross")
    }
}

/// The persistent directory used when `--dbdir` is not given.
pub fn default_dbdir() -> PathBuf {
    if cfg!(target_os = "linux") {
        PathBuf::from("/var/lib/albatross")
    } else {
        PathBuf::from("/var/db/albatross")
    }
}

/// The three service sockets below `<tmpdir>/util/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Socket {
    /// albatrossd: unikernels, policies, block devices.
    Vmmd,
    /// albatross-console: console subscriptions.
    Console,
    /// albatross-stats: statistics.
    Stats,
}

impl Socket {
    /// The socket's file name.
    pub fn file_name(self) -> &'static str {
        match self {
            Socket::Vmmd => "vmmd.sock",
            Socket::Console => "console.sock",
            Socket::Stats => "stat.sock",
        }
    }

    /// `<tmpdir>/util/<file name>`.
    pub fn path(self, tmpdir: &Path) -> PathBuf {
        tmpdir.join("util").join(self.file_name())
    }
}
