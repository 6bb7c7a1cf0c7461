//! The system-call layer of the privileged daemon.
//!
//! Every system call the daemon core makes goes through the small traits
//! here, one per concern: [`Network`] (bridges and taps), [`Processes`]
//! (tenders), [`Files`] (FIFOs and durable writes) and [`Host`] (resources
//! for the root policy, §9.1). [`Sys`] bundles them so the core can be
//! generic over one type parameter.
//!
//! Two implementations exist: [`linux::LinuxSys`] (the real one, Linux
//! only) and [`fake::FakeSys`], a recording fake for tests of the core that
//! need no root.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

pub mod fake;
pub mod files;
#[cfg(target_os = "linux")]
pub mod linux;
pub mod seqpacket;

/// Prefix of the tap interfaces the daemon creates (`vmmtap0`, `vmmtap1`, …).
pub const TAP_PREFIX: &str = "vmmtap";

/// Longest interface name Linux accepts (`IFNAMSIZ` minus the NUL byte).
pub const MAX_IFNAME_LEN: usize = 15;

/// Bridges and tap interfaces.
pub trait Network {
    /// Whether `bridge` names an existing bridge interface.
    fn bridge_exists(&self, bridge: &str) -> Result<bool, SysError>;

    /// Names of all bridge interfaces, sorted.
    fn list_bridges(&self) -> Result<Vec<String>, SysError>;

    /// Creates a persistent tap named `vmmtapN` with the smallest free N,
    /// sets it up and enslaves it to `bridge`; returns its name.
    ///
    /// A missing bridge gives [`SysError::NoSuchBridge`]. On any failure
    /// the half-made tap is removed again.
    fn create_tap(&self, bridge: &str) -> Result<String, SysError>;

    /// Deletes the tap `name`. A tap that does not exist is not an error;
    /// one still held by a tender gives [`SysError::TapInUse`], an interface
    /// that is no tap [`SysError::NotATap`].
    ///
    /// This takes milliseconds in the kernel (known trap 7): call it off the
    /// request path.
    fn destroy_tap(&self, name: &str) -> Result<(), SysError>;

    /// Names of the existing tap interfaces whose name starts with
    /// `prefix`, sorted (used at start-up to delete stale `vmmtapN`).
    fn list_taps_with_prefix(&self, prefix: &str) -> Result<Vec<String>, SysError>;

    /// Current counters of interface `name` (for statistics).
    fn tap_counters(&self, name: &str) -> Result<TapCounters, SysError>;
}

/// Tender processes.
pub trait Processes {
    /// Starts a tender as described by `spec` (see [`TenderSpec`] for the
    /// state the child starts in).
    fn spawn_tender(&self, spec: TenderSpec) -> Result<Tender, SysError>;

    /// Sends `signal` to the tender. Sending to a tender that has exited
    /// but was not reaped yet succeeds.
    fn signal(&self, tender: &Tender, signal: Signal) -> Result<(), SysError>;

    /// Reaps the tender if it has exited, without blocking: `Ok(None)` while
    /// it runs. Call it when the pidfd becomes readable; after it returned
    /// a status, the pid is gone and the [`Tender`] should be dropped.
    fn wait_exit(&self, tender: &Tender) -> Result<Option<ExitStatus>, SysError>;
}

/// Files with the semantics the daemon needs.
pub trait Files {
    /// Makes sure `path` is a FIFO: creates it with mode 0640 (group bits
    /// not masked by the umask, §10.2 step 8) or accepts an existing FIFO.
    /// An existing non-FIFO gives [`SysError::NotAFifo`].
    fn make_fifo(&self, path: &Path) -> Result<(), SysError>;

    /// Replaces `dir/name` with `bytes` atomically and durably: a temporary
    /// file in `dir` is written, synced and renamed over `name`, then `dir`
    /// is synced (known trap 17). The file gets mode 0644 minus the umask.
    fn write_atomic(&self, dir: &Path, name: &str, bytes: &[u8]) -> Result<(), SysError>;

    /// Removes the file `path`; returns whether it existed.
    fn remove_file(&self, path: &Path) -> Result<bool, SysError>;
}

/// Host resources, the inputs of the root policy (§9.1). Bridges come from
/// [`Network::list_bridges`].
pub trait Host {
    /// Number of online CPUs (`_SC_NPROCESSORS_ONLN`).
    fn online_cpus(&self) -> Result<u32, SysError>;

    /// Physical memory in MB (pages × page size, divided by 2^20).
    fn physical_memory_mb(&self) -> Result<u64, SysError>;

    /// Total size (not free space) in MB of the file system holding `path`.
    fn filesystem_total_mb(&self, path: &Path) -> Result<u64, SysError>;
}

/// Everything the daemon core needs from the system.
pub trait Sys: Network + Processes + Files + Host {}

impl<T: Network + Processes + Files + Host> Sys for T {}

/// What to start and how (§10.4).
///
/// The child starts with: its own session (`setsid`), an empty signal mask
/// and the default disposition for every signal, SIGPIPE included (known
/// trap 3), the affinity `cpuids`, SIGKILL as parent-death signal (so no
/// tender outlives the daemon), stdin, stdout and stderr on the console
/// FIFO and no other file descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenderSpec {
    /// The executable; it is also `argv[0]`. Resolve it before (§10.3): it
    /// is executed as given, without a `PATH` search.
    pub program: PathBuf,
    /// The arguments after `argv[0]`.
    pub args: Vec<OsString>,
    /// CPUs the tender may run on; empty means no pinning.
    pub cpuids: Vec<usize>,
    /// The console FIFO. Its read side must already be open (the console
    /// drain opens it first), else the spawn fails with
    /// [`SysError::ConsoleNotOpen`] instead of blocking.
    pub console: PathBuf,
    /// The complete environment of the tender; nothing is inherited. The
    /// tenders need none, so an empty list is the usual value.
    pub env: Vec<(OsString, OsString)>,
}

/// A running (or exited, not yet reaped) tender.
///
/// It implements [`AsFd`] with its pidfd, which becomes readable when the
/// tender exits: wrap the whole `Tender` in `async_io::Async` to wait for
/// that, then call [`Processes::wait_exit`].
///
/// Dropping a `Tender` neither stops nor reaps the process: reap it with
/// [`Processes::wait_exit`] first.
#[derive(Debug)]
pub struct Tender {
    /// Process id.
    pub pid: u32,
    /// The pidfd (for the fake: a pipe that becomes readable on exit).
    pub pidfd: OwnedFd,
}

impl AsFd for Tender {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }
}

/// The signals the daemon sends to tenders: SIGTERM first, then SIGKILL
/// after a grace period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// SIGTERM (15): hvt prints "Exiting on signal 15" and exits 1; spt dies.
    Term,
    /// SIGKILL (9).
    Kill,
}

impl Signal {
    /// The signal number.
    pub fn number(self) -> i32 {
        match self {
            Signal::Term => 15,
            Signal::Kill => 9,
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Signal::Term => f.write_str("SIGTERM"),
            Signal::Kill => f.write_str("SIGKILL"),
        }
    }
}

/// How a tender ended (§10.5), displayed as upstream logs it.
pub use crate::model::restart::ExitStatus;

/// Counters of one interface, from `/sys/class/net/NAME/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[allow(missing_docs)] // the names say it: statistics/<field>
pub struct TapCounters {
    /// Interface flags (`IFF_*`).
    pub flags: u32,
    pub mtu: u32,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    /// Received multicast packets (`statistics/multicast`).
    pub multicast: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
    pub collisions: u64,
}

/// The operation that failed, for [`SysError::Io`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Opening `/dev/net/tun` or creating the tap on it.
    CreateTap,
    /// Setting a tap up.
    SetUp,
    /// Adding a tap to a bridge (the object is "TAP to bridge BRIDGE").
    AddToBridge,
    /// Deleting a tap.
    DestroyTap,
    /// Reading a file under `/sys` or `/proc`, or `statfs` of a path.
    Read,
    /// Opening the console FIFO for the tender.
    OpenConsole,
    /// Starting a process (the object is the program).
    Spawn,
    /// Sending a signal (the object is the pid).
    Signal,
    /// Reaping a process (the object is the pid).
    Wait,
    /// Creating a FIFO.
    MakeFifo,
    /// Writing a file.
    WriteFile,
    /// Removing a file.
    RemoveFile,
    /// Starting a thread (the object is the thread name).
    StartThread,
}

impl Op {
    fn describe(self) -> &'static str {
        match self {
            Op::CreateTap => "creating tap",
            Op::SetUp => "setting up interface",
            Op::AddToBridge => "adding interface",
            Op::DestroyTap => "deleting tap",
            Op::Read => "reading",
            Op::OpenConsole => "opening console FIFO",
            Op::Spawn => "starting",
            Op::Signal => "signalling process",
            Op::Wait => "reaping process",
            Op::MakeFifo => "creating FIFO",
            Op::WriteFile => "writing",
            Op::RemoveFile => "removing",
            Op::StartThread => "starting thread",
        }
    }

    /// A hint for the operator, where the error kind makes one obvious.
    fn hint(self, err: &io::Error) -> Option<&'static str> {
        let kind = err.kind();
        match self {
            Op::CreateTap | Op::SetUp | Op::AddToBridge | Op::DestroyTap
                if kind == io::ErrorKind::PermissionDenied =>
            {
                Some("the daemon needs root or CAP_NET_ADMIN")
            }
            Op::CreateTap if kind == io::ErrorKind::NotFound => {
                Some("is the tun module loaded? modprobe tun")
            }
            Op::Spawn if kind == io::ErrorKind::NotFound => {
                Some("install the solo5 tender or put it in the database directory")
            }
            Op::Spawn if kind == io::ErrorKind::PermissionDenied => {
                Some("the tender must be an executable file")
            }
            Op::MakeFifo | Op::WriteFile if kind == io::ErrorKind::NotFound => {
                Some("create the directory first")
            }
            Op::MakeFifo | Op::WriteFile | Op::RemoveFile
                if kind == io::ErrorKind::PermissionDenied =>
            {
                Some("check the directory's owner and mode")
            }
            _ => None,
        }
    }
}

/// Why a system operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum SysError {
    /// The bridge does not exist (or is not a bridge).
    NoSuchBridge {
        /// The bridge name.
        bridge: String,
    },
    /// An interface name the kernel would refuse (empty, longer than 15
    /// bytes, or with `/`, `:` or white space).
    InvalidInterfaceName {
        /// The name.
        name: String,
    },
    /// The tap is held open by a process (a tender still runs on it).
    TapInUse {
        /// The tap name.
        tap: String,
    },
    /// The interface exists but is not a tap.
    NotATap {
        /// The interface name.
        name: String,
    },
    /// A file that should be a FIFO is something else.
    NotAFifo {
        /// The path.
        path: PathBuf,
    },
    /// The console FIFO has no reader, so the tender would block on it.
    ConsoleNotOpen {
        /// The FIFO path.
        path: PathBuf,
    },
    /// The spawner thread is gone (it panicked or the spawner was dropped).
    SpawnerGone,
    /// A system call failed.
    Io {
        /// What was being done.
        op: Op,
        /// What it was done to: an interface name, a path or a pid.
        object: String,
        /// The error from the kernel.
        source: io::Error,
    },
}

impl SysError {
    /// A [`SysError::Io`] about `object`.
    pub fn io(op: Op, object: impl fmt::Display, source: io::Error) -> SysError {
        SysError::Io {
            op,
            object: object.to_string(),
            source,
        }
    }
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SysError::NoSuchBridge { bridge } => write!(
                f,
                "bridge {bridge} does not exist (create it first: ip link add {bridge} type bridge)"
            ),
            SysError::InvalidInterfaceName { name } => write!(
                f,
                "interface name {name:?} is not valid (1 to {MAX_IFNAME_LEN} bytes, no '/', ':' or white space)"
            ),
            SysError::TapInUse { tap } => {
                write!(f, "tap {tap} is in use by a process (stop its tender first)")
            }
            SysError::NotATap { name } => write!(f, "interface {name} is not a tap"),
            SysError::NotAFifo { path } => write!(
                f,
                "file {} exists and is not a fifo (remove it)",
                path.display()
            ),
            SysError::ConsoleNotOpen { path } => write!(
                f,
                "console FIFO {} has no reader (the console must open it before the tender starts)",
                path.display()
            ),
            SysError::SpawnerGone => {
                write!(f, "the tender spawner thread is gone (restart the daemon)")
            }
            SysError::Io { op, object, source } => {
                write!(f, "{} {object} failed: {source}", op.describe())?;
                match op.hint(source) {
                    Some(hint) => write!(f, " ({hint})"),
                    None => Ok(()),
                }
            }
        }
    }
}

impl std::error::Error for SysError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SysError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Checks that the kernel would accept `name` as an interface name; it is
/// also used as a file name under `/sys/class/net`.
pub fn check_ifname(name: &str) -> Result<(), SysError> {
    let bad = name.is_empty()
        || name.len() > MAX_IFNAME_LEN
        || name == "."
        || name == ".."
        || name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0);
    if bad {
        Err(SysError::InvalidInterfaceName {
            name: name.to_string(),
        })
    } else {
        Ok(())
    }
}

/// The number N of a `vmmtapN` name (digits only, no sign).
pub(crate) fn tap_number(name: &str) -> Option<u32> {
    let digits = name.strip_prefix(TAP_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The smallest N such that `vmmtapN` is not in `names` (§10.2 step 9).
pub(crate) fn smallest_free_tap<'a>(names: impl IntoIterator<Item = &'a str>) -> u32 {
    let used: std::collections::BTreeSet<u32> = names.into_iter().filter_map(tap_number).collect();
    // There are fewer names than numbers, so the search always ends early.
    (0..=u32::MAX)
        .find(|n| !used.contains(n))
        .unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_display_matches_upstream_log() {
        assert_eq!(ExitStatus::Exit(0).to_string(), "exit 0");
        assert_eq!(ExitStatus::Signal(15).to_string(), "signal 15");
        assert_eq!(ExitStatus::Stopped(19).to_string(), "stopped 19");
    }

    #[test]
    fn interface_names() {
        for good in ["br0", "vmmtap12", "a", "abcdefghijklmno", "br-lan.5"] {
            assert!(check_ifname(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "abcdefghijklmnop",
            ".",
            "..",
            "a/b",
            "a:b",
            "a b",
            "a\0",
        ] {
            assert!(
                matches!(
                    check_ifname(bad),
                    Err(SysError::InvalidInterfaceName { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn tap_numbers() {
        assert_eq!(tap_number("vmmtap0"), Some(0));
        assert_eq!(tap_number("vmmtap17"), Some(17));
        assert_eq!(tap_number("vmmtap"), None);
        assert_eq!(tap_number("vmmtap+1"), None);
        assert_eq!(tap_number("vmmtap1a"), None);
        assert_eq!(tap_number("tap1"), None);
        assert_eq!(tap_number("vmmtap99999999999"), None);
    }

    #[test]
    fn smallest_free_tap_number() {
        assert_eq!(smallest_free_tap([]), 0);
        assert_eq!(smallest_free_tap(["vmmtap0", "vmmtap2", "br0"]), 1);
        assert_eq!(smallest_free_tap(["vmmtap0", "vmmtap1"]), 2);
        assert_eq!(smallest_free_tap(["vmmtap1", "vmmtap01"]), 0);
    }

    #[test]
    fn error_messages_carry_hints() {
        let e = SysError::NoSuchBridge {
            bridge: "br7".into(),
        };
        assert_eq!(
            e.to_string(),
            "bridge br7 does not exist (create it first: ip link add br7 type bridge)"
        );
        let e = SysError::io(
            Op::CreateTap,
            "vmmtap0",
            io::Error::from_raw_os_error(1), // EPERM
        );
        let text = e.to_string();
        assert!(text.starts_with("creating tap vmmtap0 failed: "), "{text}");
        assert!(
            text.ends_with("(the daemon needs root or CAP_NET_ADMIN)"),
            "{text}"
        );
        let e = SysError::io(Op::Wait, 42, io::Error::from_raw_os_error(10));
        assert_eq!(
            e.to_string(),
            "reaping process 42 failed: No child processes (os error 10)"
        );
    }
}
