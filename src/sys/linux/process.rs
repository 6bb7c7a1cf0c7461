//! Starting, signalling and reaping tenders.
//!
//! Tenders are forked from one dedicated, long-lived thread (see
//! [`Spawner`]) and handled through pidfds (known trap 5).

#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;

use libc::c_int;
use rustix::fs::OFlags;
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, WaitId, WaitIdOptions};
use rustix::thread::CpuSet;

use crate::sys::{ExitStatus, Op, Signal, SysError, Tender, TenderSpec};

/// Name of the spawner thread (shown by `ps -T`).
const THREAD_NAME: &str = "tender-spawner";

/// First file descriptor the tender must not inherit.
const FIRST_EXTRA_FD: u32 = 3;

struct Request {
    spec: TenderSpec,
    reply: mpsc::SyncSender<Result<Tender, SysError>>,
}

/// Spawns tenders on one dedicated thread.
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits,
/// not the process. Tenders are therefore forked only from this thread,
/// which lives as long as the `Spawner`: then every tender is killed when
/// the daemon dies, even by SIGKILL, and never while it runs.
///
/// Dropping the `Spawner` ends its thread and so kills (SIGKILL) every
/// tender it started: keep it for the life of the daemon.
#[derive(Debug)]
pub struct Spawner {
    requests: mpsc::Sender<Request>,
}

impl Spawner {
    /// Starts the spawner thread.
    pub fn start() -> Result<Spawner, SysError> {
        let (requests, incoming) = mpsc::channel::<Request>();
        thread::Builder::new()
            .name(THREAD_NAME.to_string())
            .spawn(move || {
                for request in incoming {
                    // If the caller is gone, so is its interest in the
                    // tender; dropping it closes the pidfd, and the process
                    // goes on until the daemon ends.
                    let _ = request.reply.send(spawn(request.spec));
                }
            })
            .map_err(|e| SysError::io(Op::StartThread, THREAD_NAME, e))?;
        Ok(Spawner { requests })
    }

    /// Has the spawner thread start `spec` and waits for the result (the
    /// fork and exec take about half a millisecond).
    pub fn spawn(&self, spec: TenderSpec) -> Result<Tender, SysError> {
        let (reply, result) = mpsc::sync_channel(1);
        self.requests
            .send(Request { spec, reply })
            .map_err(|_| SysError::SpawnerGone)?;
        result.recv().map_err(|_| SysError::SpawnerGone)?
    }
}

/// Opens the console FIFO as the tender's stdin, stdout and stderr.
///
/// `O_NONBLOCK` makes the open fail with ENXIO instead of blocking the
/// spawner when nobody reads the FIFO; it is cleared right after, as the
/// tender expects blocking output.
fn open_console(path: &Path) -> Result<File, SysError> {
    let file = OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENXIO) => SysError::ConsoleNotOpen {
                path: path.to_path_buf(),
            },
            _ => SysError::io(Op::OpenConsole, path.display(), e),
        })?;
    rustix::fs::fcntl_setfl(&file, OFlags::APPEND)
        .map_err(|e| SysError::io(Op::OpenConsole, path.display(), e.into()))?;
    Ok(file)
}

fn cpu_set(cpuids: &[usize]) -> io::Result<CpuSet> {
    let mut set = CpuSet::new();
    for &id in cpuids {
        if id >= CpuSet::MAX_CPU {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "CPU id {id} is beyond the largest supported ({})",
                    CpuSet::MAX_CPU - 1
                ),
            ));
        }
        set.set(id);
    }
    Ok(set)
}

/// A kernel `struct sigaction`, or a kernel signal set, of zeros: handler
/// SIG_DFL, no flags, empty mask. Zeros mean that in every architecture's
/// layout, and 64 bytes is more than any of them needs.
const ZEROED_KERNEL_STRUCT: [u64; 8] = [0; 8];

/// What the child needs before exec, all computed before the fork.
struct ChildSetup {
    parent: Pid,
    affinity: Option<CpuSet>,
    last_signal: c_int,
    /// The kernel's `sizeof(sigset_t)`: 8 bytes for 64 signals.
    sigset_size: usize,
}

impl ChildSetup {
    fn new(cpuids: &[usize]) -> io::Result<ChildSetup> {
        let last_signal = libc::SIGRTMAX();
        Ok(ChildSetup {
            parent: rustix::process::getpid(),
            affinity: if cpuids.is_empty() {
                None
            } else {
                Some(cpu_set(cpuids)?)
            },
            last_signal,
            sigset_size: usize::try_from(last_signal).unwrap_or(64).div_ceil(64) * 8,
        })
    }

    /// Runs in the forked child: only async-signal-safe system calls, no
    /// allocation (known trap 3).
    fn apply(&self) -> io::Result<()> {
        rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
        // If the daemon died before the line above, no signal will come.
        if rustix::process::getppid() != Some(self.parent) {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        rustix::process::setsid()?;
        if let Some(set) = &self.affinity {
            rustix::thread::sched_setaffinity(None, set)?;
        }
        // The raw system calls, because glibc's wrappers refuse its two
        // internal signals (32 and 33), and an "ignore" inherited for them
        // would survive exec like any other.
        for sig in 1..=self.last_signal {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            // SAFETY: rt_sigaction reads a kernel sigaction from the first
            // pointer (a static of zeros, large enough), and the null old
            // action pointer asks for nothing back.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    ZEROED_KERNEL_STRUCT.as_ptr(),
                    std::ptr::null_mut::<u64>(),
                    self.sigset_size,
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        // SAFETY: rt_sigprocmask reads a signal set of sigset_size bytes
        // (zeros: the empty set) and returns no old set. The child has a
        // single thread, so this is its whole mask.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_rt_sigprocmask,
                libc::SIG_SETMASK,
                ZEROED_KERNEL_STRUCT.as_ptr(),
                std::ptr::null_mut::<u64>(),
                self.sigset_size,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // Marks rather than closes: std reports exec failures through a
        // close-on-exec pipe above fd 2, which must stay open until exec.
        // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on
        // file descriptors; it touches no memory.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                FIRST_EXTRA_FD,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Forks and execs the tender; runs on the spawner thread.
fn spawn(spec: TenderSpec) -> Result<Tender, SysError> {
    let program = spec.program.display().to_string();
    let fail = |e: io::Error| SysError::io(Op::Spawn, &program, e);
    let console = open_console(&spec.console)?;
    let setup = ChildSetup::new(&spec.cpuids).map_err(fail)?;
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::from(console.try_clone().map_err(fail)?))
        .stdout(Stdio::from(console.try_clone().map_err(fail)?))
        .stderr(Stdio::from(console));
    // SAFETY: the closure runs in the forked child before exec and makes only
    // async-signal-safe system calls on data prepared before the fork.
    unsafe { command.pre_exec(move || setup.apply()) };
    let mut child = command.spawn().map_err(fail)?;
    // The parent's copies of the console descriptor go with the command.
    drop(command);
    let pid = child.id();
    // The child is ours and not reaped, so its pid cannot be reused before
    // the pidfd exists.
    let pidfd = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or(Errno::SRCH)
        .and_then(|p| rustix::process::pidfd_open(p, PidfdFlags::empty()));
    match pidfd {
        Ok(pidfd) => Ok(Tender { pid, pidfd }),
        Err(e) => {
            // Without a pidfd the tender cannot be watched: stop it.
            let _ = child.kill();
            let _ = child.wait();
            Err(fail(e.into()))
        }
    }
}

pub(super) fn signal(tender: &Tender, signal: Signal) -> Result<(), SysError> {
    let sig = match signal {
        Signal::Term => rustix::process::Signal::TERM,
        Signal::Kill => rustix::process::Signal::KILL,
    };
    rustix::process::pidfd_send_signal(tender.pidfd.as_fd(), sig)
        .map_err(|e| SysError::io(Op::Signal, tender.pid, e.into()))
}

pub(super) fn wait_exit(tender: &Tender) -> Result<Option<ExitStatus>, SysError> {
    loop {
        let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG;
        match rustix::process::waitid(WaitId::PidFd(tender.pidfd.as_fd()), options) {
            Ok(Some(status)) => {
                // Only exits are asked for; anything else means "running".
                return Ok(status
                    .exit_status()
                    .map(ExitStatus::Exit)
                    .or_else(|| status.terminating_signal().map(ExitStatus::Signal))
                    .or_else(|| status.stopping_signal().map(ExitStatus::Stopped)));
            }
            // EAGAIN: a pidfd made non-blocking (by async-io) and no exit yet.
            Ok(None) | Err(Errno::AGAIN) => return Ok(None),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(SysError::io(Op::Wait, tender.pid, e.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_sets() {
        let set = cpu_set(&[0, 3]).unwrap();
        assert!(set.is_set(0) && set.is_set(3) && !set.is_set(1));
        assert_eq!(set.count(), 2);
        let err = cpu_set(&[CpuSet::MAX_CPU]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn console_without_reader_is_refused() {
        let dir = std::env::temp_dir().join(format!("albatross-console-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("c");
        crate::sys::files::make_fifo(&fifo).unwrap();
        let err = open_console(&fifo).unwrap_err();
        assert!(matches!(err, SysError::ConsoleNotOpen { .. }), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
