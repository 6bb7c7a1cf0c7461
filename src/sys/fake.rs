//! A recording fake of the system-call layer, for tests of the core
//! without root.
//!
//! [`FakeSys`] implements every trait of [`sys`](super): it records each
//! call ([`FakeSys::calls`]), keeps an in-memory model of bridges, taps and
//! tenders, and lets a test script results: which bridges exist, which
//! operation fails next ([`FakeSys::fail_next`]), when a tender exits
//! ([`FakeSys::exit`]) and how tenders answer signals
//! ([`FakeSys::on_signal`]). File operations really happen (use a temporary
//! directory); they are recorded and can be made to fail too.
//!
//! A fake tender's `pidfd` is the read end of a pipe that becomes readable
//! when the tender exits, so the core can wait for it exactly as for a
//! real pidfd.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rustix::pipe::PipeFlags;

use super::{
    check_ifname, files, smallest_free_tap, ExitStatus, Files, Host, Network, Op, Processes,
    Signal, SysError, TapCounters, Tender, TenderSpec, TAP_PREFIX,
};

/// One recorded call, with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)] // each variant is the trait method of the same name
pub enum Call {
    BridgeExists(String),
    ListBridges,
    CreateTap {
        bridge: String,
    },
    DestroyTap(String),
    ListTapsWithPrefix(String),
    TapCounters(String),
    SpawnTender(TenderSpec),
    Signal {
        pid: u32,
        signal: Signal,
    },
    WaitExit(u32),
    MakeFifo(PathBuf),
    /// The bytes are not kept: read the file.
    WriteAtomic {
        dir: PathBuf,
        name: String,
    },
    RemoveFile(PathBuf),
    OnlineCpus,
    PhysicalMemoryMb,
    FilesystemTotalMb(PathBuf),
}

/// The operations a test can make fail with [`FakeSys::fail_next`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // each variant is the trait method of the same name
pub enum FakeOp {
    CreateTap,
    DestroyTap,
    SpawnTender,
    Signal,
    WaitExit,
    MakeFifo,
    WriteAtomic,
    RemoveFile,
}

#[derive(Debug)]
struct FakeTender {
    spec: TenderSpec,
    /// Write end of the pipe handed out as pidfd; written to on exit.
    exit_pipe: OwnedFd,
    status: Option<ExitStatus>,
    reaped: bool,
}

#[derive(Debug)]
struct State {
    calls: Vec<Call>,
    bridges: BTreeSet<String>,
    /// tap name → bridge
    taps: BTreeMap<String, String>,
    counters: BTreeMap<String, TapCounters>,
    failures: HashMap<FakeOp, VecDeque<SysError>>,
    tenders: BTreeMap<u32, FakeTender>,
    next_pid: u32,
    on_term: Option<ExitStatus>,
    on_kill: Option<ExitStatus>,
    cpus: u32,
    memory_mb: u64,
    filesystem_mb: u64,
}

impl State {
    fn failure(&mut self, op: FakeOp) -> Result<(), SysError> {
        match self.failures.get_mut(&op).and_then(VecDeque::pop_front) {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    fn exit(&mut self, pid: u32, status: ExitStatus) -> bool {
        match self.tenders.get_mut(&pid) {
            Some(tender) if tender.status.is_none() => {
                tender.status = Some(status);
                // A pipe with room for 64 KiB takes this one byte; if it did
                // not, the tender would look alive, and the test would say so.
                let _ = rustix::io::write(&tender.exit_pipe, &[0]);
                true
            }
            _ => false,
        }
    }
}

/// The recording fake; see the [module documentation](self).
#[derive(Debug)]
pub struct FakeSys {
    state: Mutex<State>,
}

impl Default for FakeSys {
    fn default() -> Self {
        FakeSys::new()
    }
}

impl FakeSys {
    /// A host with no bridges, 2 CPUs, 4096 MB of memory and 10240 MB of
    /// block storage, whose tenders die of SIGTERM and SIGKILL at once.
    pub fn new() -> FakeSys {
        FakeSys {
            state: Mutex::new(State {
                calls: Vec::new(),
                bridges: BTreeSet::new(),
                taps: BTreeMap::new(),
                counters: BTreeMap::new(),
                failures: HashMap::new(),
                tenders: BTreeMap::new(),
                next_pid: 1000,
                on_term: Some(ExitStatus::Signal(15)),
                on_kill: Some(ExitStatus::Signal(9)),
                cpus: 2,
                memory_mb: 4096,
                filesystem_mb: 10240,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock has failed already.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, call: Call) -> MutexGuard<'_, State> {
        let mut state = self.state();
        state.calls.push(call);
        state
    }

    /// Makes `bridge` exist.
    pub fn add_bridge(&self, bridge: &str) {
        self.state().bridges.insert(bridge.to_string());
    }

    /// Makes `bridge` disappear (its taps stay, as in the kernel).
    pub fn remove_bridge(&self, bridge: &str) {
        self.state().bridges.remove(bridge);
    }

    /// Sets the host resources [`Host`] reports.
    pub fn set_host(&self, cpus: u32, memory_mb: u64, filesystem_mb: u64) {
        let mut state = self.state();
        state.cpus = cpus;
        state.memory_mb = memory_mb;
        state.filesystem_mb = filesystem_mb;
    }

    /// Sets the counters [`Network::tap_counters`] reports for `tap`
    /// (zeros until then).
    pub fn set_tap_counters(&self, tap: &str, counters: TapCounters) {
        self.state().counters.insert(tap.to_string(), counters);
    }

    /// Makes the next call of `op` fail with `error` (errors queue up, one
    /// per call).
    pub fn fail_next(&self, op: FakeOp, error: SysError) {
        self.state()
            .failures
            .entry(op)
            .or_default()
            .push_back(error);
    }

    /// What a tender does when it receives `signal`: exit with the status,
    /// or (`None`) ignore it. By default both signals kill at once.
    pub fn on_signal(&self, signal: Signal, response: Option<ExitStatus>) {
        let mut state = self.state();
        match signal {
            Signal::Term => state.on_term = response,
            Signal::Kill => state.on_kill = response,
        }
    }

    /// Makes tender `pid` exit with `status`: its pidfd becomes readable and
    /// the next [`Processes::wait_exit`] returns the status. Returns false
    /// if there is no such running tender.
    pub fn exit(&self, pid: u32, status: ExitStatus) -> bool {
        self.state().exit(pid, status)
    }

    /// The calls so far, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// The calls so far, oldest first; forgets them.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut self.state().calls)
    }

    /// The existing taps and their bridges, by tap name.
    pub fn taps(&self) -> Vec<(String, String)> {
        self.state()
            .taps
            .iter()
            .map(|(t, b)| (t.clone(), b.clone()))
            .collect()
    }

    /// Pids of the tenders that have not exited, ascending.
    pub fn running(&self) -> Vec<u32> {
        let state = self.state();
        state
            .tenders
            .iter()
            .filter(|(_, t)| t.status.is_none())
            .map(|(&pid, _)| pid)
            .collect()
    }

    /// The spec tender `pid` was started with.
    pub fn spec(&self, pid: u32) -> Option<TenderSpec> {
        self.state().tenders.get(&pid).map(|t| t.spec.clone())
    }
}

fn no_such_process(op: Op, pid: u32) -> SysError {
    SysError::io(
        op,
        pid,
        io::Error::from_raw_os_error(rustix::io::Errno::SRCH.raw_os_error()),
    )
}

impl Network for FakeSys {
    fn bridge_exists(&self, bridge: &str) -> Result<bool, SysError> {
        let state = self.record(Call::BridgeExists(bridge.to_string()));
        check_ifname(bridge)?;
        Ok(state.bridges.contains(bridge))
    }

    fn list_bridges(&self) -> Result<Vec<String>, SysError> {
        let state = self.record(Call::ListBridges);
        Ok(state.bridges.iter().cloned().collect())
    }

    fn create_tap(&self, bridge: &str) -> Result<String, SysError> {
        let mut state = self.record(Call::CreateTap {
            bridge: bridge.to_string(),
        });
        state.failure(FakeOp::CreateTap)?;
        check_ifname(bridge)?;
        if !state.bridges.contains(bridge) {
            return Err(SysError::NoSuchBridge {
                bridge: bridge.to_string(),
            });
        }
        let tap = format!(
            "{TAP_PREFIX}{}",
            smallest_free_tap(state.taps.keys().map(String::as_str))
        );
        state.taps.insert(tap.clone(), bridge.to_string());
        Ok(tap)
    }

    fn destroy_tap(&self, name: &str) -> Result<(), SysError> {
        let mut state = self.record(Call::DestroyTap(name.to_string()));
        state.failure(FakeOp::DestroyTap)?;
        check_ifname(name)?;
        state.taps.remove(name);
        state.counters.remove(name);
        Ok(())
    }

    fn list_taps_with_prefix(&self, prefix: &str) -> Result<Vec<String>, SysError> {
        let state = self.record(Call::ListTapsWithPrefix(prefix.to_string()));
        Ok(state
            .taps
            .keys()
            .filter(|t| t.starts_with(prefix))
            .cloned()
            .collect())
    }

    fn tap_counters(&self, name: &str) -> Result<TapCounters, SysError> {
        let state = self.record(Call::TapCounters(name.to_string()));
        check_ifname(name)?;
        if !state.taps.contains_key(name) {
            let path = format!("/sys/class/net/{name}/statistics");
            return Err(SysError::io(Op::Read, path, io::ErrorKind::NotFound.into()));
        }
        Ok(state.counters.get(name).copied().unwrap_or_default())
    }
}

impl Processes for FakeSys {
    fn spawn_tender(&self, spec: TenderSpec) -> Result<Tender, SysError> {
        let mut state = self.record(Call::SpawnTender(spec.clone()));
        state.failure(FakeOp::SpawnTender)?;
        let (pidfd, exit_pipe) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)
            .map_err(|e| SysError::io(Op::Spawn, spec.program.display(), e.into()))?;
        let pid = state.next_pid;
        state.next_pid += 1;
        state.tenders.insert(
            pid,
            FakeTender {
                spec,
                exit_pipe,
                status: None,
                reaped: false,
            },
        );
        Ok(Tender { pid, pidfd })
    }

    fn signal(&self, tender: &Tender, signal: Signal) -> Result<(), SysError> {
        let mut state = self.record(Call::Signal {
            pid: tender.pid,
            signal,
        });
        state.failure(FakeOp::Signal)?;
        let response = match signal {
            Signal::Term => state.on_term,
            Signal::Kill => state.on_kill,
        };
        match state.tenders.get(&tender.pid) {
            Some(t) if !t.reaped => {}
            _ => return Err(no_such_process(Op::Signal, tender.pid)),
        }
        if let Some(status) = response {
            state.exit(tender.pid, status);
        }
        Ok(())
    }

    fn wait_exit(&self, tender: &Tender) -> Result<Option<ExitStatus>, SysError> {
        let mut state = self.record(Call::WaitExit(tender.pid));
        state.failure(FakeOp::WaitExit)?;
        match state.tenders.get_mut(&tender.pid) {
            Some(t) if !t.reaped => {
                t.reaped = t.status.is_some();
                Ok(t.status)
            }
            // The real waitid fails with ECHILD for a reaped child.
            _ => Err(SysError::io(
                Op::Wait,
                tender.pid,
                io::Error::from_raw_os_error(rustix::io::Errno::CHILD.raw_os_error()),
            )),
        }
    }
}

impl Files for FakeSys {
    fn make_fifo(&self, path: &Path) -> Result<(), SysError> {
        let mut state = self.record(Call::MakeFifo(path.to_path_buf()));
        state.failure(FakeOp::MakeFifo)?;
        files::make_fifo(path)
    }

    fn write_atomic(&self, dir: &Path, name: &str, bytes: &[u8]) -> Result<(), SysError> {
        let mut state = self.record(Call::WriteAtomic {
            dir: dir.to_path_buf(),
            name: name.to_string(),
        });
        state.failure(FakeOp::WriteAtomic)?;
        files::write_atomic(dir, name, bytes)
    }

    fn remove_file(&self, path: &Path) -> Result<bool, SysError> {
        let mut state = self.record(Call::RemoveFile(path.to_path_buf()));
        state.failure(FakeOp::RemoveFile)?;
        files::remove_file(path)
    }
}

impl Host for FakeSys {
    fn online_cpus(&self) -> Result<u32, SysError> {
        Ok(self.record(Call::OnlineCpus).cpus)
    }

    fn physical_memory_mb(&self) -> Result<u64, SysError> {
        Ok(self.record(Call::PhysicalMemoryMb).memory_mb)
    }

    fn filesystem_total_mb(&self, path: &Path) -> Result<u64, SysError> {
        Ok(self
            .record(Call::FilesystemTotalMb(path.to_path_buf()))
            .filesystem_mb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(program: &str) -> TenderSpec {
        TenderSpec {
            program: program.into(),
            args: vec!["--mem=64".into()],
            cpuids: vec![0],
            console: "/run/albatross/fifo/a".into(),
            env: Vec::new(),
        }
    }

    fn readable(fd: &OwnedFd) -> bool {
        let mut fds = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
        let zero = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        rustix::event::poll(&mut fds, Some(&zero)).unwrap() == 1
    }

    #[test]
    fn taps_are_numbered_smallest_free_and_need_a_bridge() {
        let sys = FakeSys::new();
        let err = sys.create_tap("br0").unwrap_err();
        assert!(matches!(err, SysError::NoSuchBridge { .. }), "{err}");
        sys.add_bridge("br0");
        assert_eq!(sys.create_tap("br0").unwrap(), "vmmtap0");
        assert_eq!(sys.create_tap("br0").unwrap(), "vmmtap1");
        sys.destroy_tap("vmmtap0").unwrap();
        assert_eq!(sys.create_tap("br0").unwrap(), "vmmtap0");
        assert_eq!(
            sys.list_taps_with_prefix("vmmtap").unwrap(),
            ["vmmtap0", "vmmtap1"]
        );
        assert_eq!(sys.tap_counters("vmmtap1").unwrap(), TapCounters::default());
        assert!(sys.tap_counters("vmmtap7").is_err());
        assert_eq!(sys.list_bridges().unwrap(), ["br0"]);
        assert_eq!(
            sys.calls()[0],
            Call::CreateTap {
                bridge: "br0".into()
            }
        );
        assert_eq!(sys.take_calls().len(), 9);
        assert!(sys.calls().is_empty());
    }

    #[test]
    fn scripted_failures_come_once_in_order() {
        let sys = FakeSys::new();
        sys.fail_next(FakeOp::SpawnTender, SysError::SpawnerGone);
        assert!(matches!(
            sys.spawn_tender(spec("/t")),
            Err(SysError::SpawnerGone)
        ));
        let tender = sys.spawn_tender(spec("/t")).unwrap();
        assert_eq!(sys.running(), [tender.pid]);
        assert_eq!(sys.spec(tender.pid).unwrap().program, Path::new("/t"));
    }

    #[test]
    fn exit_makes_the_pidfd_readable_and_is_reaped_once() {
        let sys = FakeSys::new();
        let tender = sys.spawn_tender(spec("/t")).unwrap();
        assert!(!readable(&tender.pidfd));
        assert_eq!(sys.wait_exit(&tender).unwrap(), None);
        assert!(sys.exit(tender.pid, ExitStatus::Exit(3)));
        assert!(!sys.exit(tender.pid, ExitStatus::Exit(4)));
        assert!(readable(&tender.pidfd));
        assert!(sys.running().is_empty());
        assert_eq!(sys.wait_exit(&tender).unwrap(), Some(ExitStatus::Exit(3)));
        assert!(sys.wait_exit(&tender).is_err());
        assert!(sys.signal(&tender, Signal::Kill).is_err());
    }

    #[test]
    fn signal_responses_are_scripted() {
        let sys = FakeSys::new();
        sys.on_signal(Signal::Term, None);
        let tender = sys.spawn_tender(spec("/t")).unwrap();
        sys.signal(&tender, Signal::Term).unwrap();
        assert_eq!(sys.wait_exit(&tender).unwrap(), None);
        sys.signal(&tender, Signal::Kill).unwrap();
        assert_eq!(sys.wait_exit(&tender).unwrap(), Some(ExitStatus::Signal(9)));
        assert_eq!(
            sys.calls()[1..3],
            [
                Call::Signal {
                    pid: tender.pid,
                    signal: Signal::Term
                },
                Call::WaitExit(tender.pid)
            ]
        );
    }

    #[test]
    fn host_values_are_scripted() {
        let sys = FakeSys::new();
        sys.set_host(8, 16384, 500);
        assert_eq!(sys.online_cpus().unwrap(), 8);
        assert_eq!(sys.physical_memory_mb().unwrap(), 16384);
        assert_eq!(sys.filesystem_total_mb(Path::new("/x")).unwrap(), 500);
    }

    #[test]
    fn files_are_real_but_can_fail() {
        let dir = std::env::temp_dir().join(format!("albatross-fake-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sys = FakeSys::new();
        sys.fail_next(
            FakeOp::WriteAtomic,
            SysError::io(Op::WriteFile, "x", io::ErrorKind::StorageFull.into()),
        );
        assert!(sys.write_atomic(&dir, "state", b"a").is_err());
        sys.write_atomic(&dir, "state", b"b").unwrap();
        assert_eq!(std::fs::read(dir.join("state")).unwrap(), b"b");
        assert!(sys.remove_file(&dir.join("state")).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
