//! The real system-call layer on Linux.
//!
//! Requirements: Linux 5.11 or later (pidfds, `waitid(P_PIDFD)`,
//! `close_range(CLOSE_RANGE_CLOEXEC)`), `/dev/net/tun`, `/sys` mounted in the
//! daemon's network namespace, and root or CAP_NET_ADMIN for taps. The
//! daemon must not set SIGCHLD to "ignore" (the kernel would then reap
//! tenders itself), and the process that owns [`LinuxSys`] must carry no
//! narrow seccomp filter (known trap 2: tenders inherit it).

use std::path::Path;

use super::{
    files, ExitStatus, Files, Host, Network, Processes, Signal, SysError, TapCounters, Tender,
    TenderSpec,
};

mod host;
mod net;
mod process;

pub use process::Spawner;

/// The real implementation of the [`Sys`](super::Sys) traits.
///
/// It owns the [`Spawner`] thread: create one `LinuxSys` at start-up and
/// keep it for the life of the daemon (dropping it kills every tender).
#[derive(Debug)]
pub struct LinuxSys {
    spawner: Spawner,
}

impl LinuxSys {
    /// Starts the spawner thread.
    pub fn new() -> Result<LinuxSys, SysError> {
        Ok(LinuxSys {
            spawner: Spawner::start()?,
        })
    }
}

impl Network for LinuxSys {
    fn bridge_exists(&self, bridge: &str) -> Result<bool, SysError> {
        net::bridge_exists(bridge)
    }

    fn list_bridges(&self) -> Result<Vec<String>, SysError> {
        net::list_bridges()
    }

    fn create_tap(&self, bridge: &str) -> Result<String, SysError> {
        net::create_tap(bridge)
    }

    fn destroy_tap(&self, name: &str) -> Result<(), SysError> {
        net::destroy_tap(name)
    }

    fn list_taps_with_prefix(&self, prefix: &str) -> Result<Vec<String>, SysError> {
        net::list_taps_with_prefix(prefix)
    }

    fn tap_counters(&self, name: &str) -> Result<TapCounters, SysError> {
        net::tap_counters(name)
    }
}

impl Processes for LinuxSys {
    fn spawn_tender(&self, spec: TenderSpec) -> Result<Tender, SysError> {
        self.spawner.spawn(spec)
    }

    fn signal(&self, tender: &Tender, signal: Signal) -> Result<(), SysError> {
        process::signal(tender, signal)
    }

    fn wait_exit(&self, tender: &Tender) -> Result<Option<ExitStatus>, SysError> {
        process::wait_exit(tender)
    }
}

impl Files for LinuxSys {
    fn make_fifo(&self, path: &Path) -> Result<(), SysError> {
        files::make_fifo(path)
    }

    fn write_atomic(&self, dir: &Path, name: &str, bytes: &[u8]) -> Result<(), SysError> {
        files::write_atomic(dir, name, bytes)
    }

    fn remove_file(&self, path: &Path) -> Result<bool, SysError> {
        files::remove_file(path)
    }
}

impl Host for LinuxSys {
    fn online_cpus(&self) -> Result<u32, SysError> {
        host::online_cpus()
    }

    fn physical_memory_mb(&self) -> Result<u64, SysError> {
        Ok(host::physical_memory_mb())
    }

    fn filesystem_total_mb(&self, path: &Path) -> Result<u64, SysError> {
        host::filesystem_total_mb(path)
    }
}
