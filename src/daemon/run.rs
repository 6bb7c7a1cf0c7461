//! Start-up and shutdown of `albatross daemon` (§10.10, §10.11):
//! directories, stale resources of a previous run, tenders, the store,
//! policies and block devices, the socket, restoring unikernels while
//! already answering requests, and a clean stop on SIGTERM.

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use smol::stream::StreamExt;
use smol::{Async, LocalExecutor};

use super::blocks;
use super::core::{Config, Core};
use super::server::{serve_connection, Limits};
use super::store::{Store, StoreError};
use super::tenders::Tenders;
use crate::model::tender::HostPaths;
use crate::model::{Path, Policy, Resources};
use crate::paths::Socket;
use crate::sys::linux::LinuxSys;
use crate::sys::{Host, Network, SysError, TAP_PREFIX};
use crate::wire::frame::{DEFAULT_MAX_CHUNK, DEFAULT_MAX_FRAME};

/// How the daemon is run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Runtime directory.
    pub tmpdir: PathBuf,
    /// Persistent directory.
    pub dbdir: PathBuf,
    /// Where to look for tenders first (before the database directory and
    /// `PATH`).
    pub tender_dir: Option<PathBuf>,
    /// Pass the full name to `--name=`.
    pub full_name: bool,
    /// The `/dev/zvol` escape (§9.4).
    pub allow_zvol_for: Option<Path>,
}

/// Why the daemon could not start.
#[derive(Debug)]
pub enum DaemonError {
    /// A directory could not be made.
    Directory(PathBuf, io::Error),
    /// The system-call layer failed.
    Sys(SysError),
    /// The store could not be opened.
    Store(StoreError),
    /// A stored policy does not fit (§10.10 step 6).
    Policy(Path, String),
    /// The socket could not be made.
    Socket(PathBuf, io::Error),
    /// The event loop failed.
    Runtime(io::Error),
}

impl fmt::Display for DaemonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DaemonError::Directory(p, e) => {
                write!(f, "cannot create directory {}: {e}", p.display())
            }
            DaemonError::Sys(e) => write!(f, "{e}"),
            DaemonError::Store(e) => write!(f, "{e}"),
            DaemonError::Policy(p, e) => {
                write!(
                    f,
                    "stored policy for {}: {e} (remove or fix it, then start again)",
                    crate::model::Name::of_path(p.clone())
                )
            }
            DaemonError::Socket(p, e) => write!(f, "cannot listen on {}: {e}", p.display()),
            DaemonError::Runtime(e) => write!(f, "event loop: {e}"),
        }
    }
}

impl std::error::Error for DaemonError {}

fn make_dir(path: &PathBuf, mode: u32) -> Result<(), DaemonError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|e| DaemonError::Directory(path.clone(), e))
}

/// Removes what a previous run that was killed left behind: taps, images
/// and FIFOs. Its tenders died with it (parent-death signal).
fn remove_stale(sys: &LinuxSys, paths: &HostPaths) {
    match sys.list_taps_with_prefix(TAP_PREFIX) {
        Ok(taps) => {
            for tap in taps {
                match sys.destroy_tap(&tap) {
                    Ok(()) => log::info!("removed stale tap {tap}"),
                    Err(e) => log::warn!("stale tap {tap}: {e}"),
                }
            }
        }
        Err(e) => log::warn!("listing taps: {e}"),
    }
    for dir in [paths.tmpdir.clone(), paths.tmpdir.join("fifo")] {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let stale = entry.file_type().is_ok_and(|t| {
                !t.is_dir()
                    && (dir.ends_with("fifo") || path.extension().is_some_and(|e| e == "img"))
            });
            if stale && fs::remove_file(&path).is_ok() {
                log::debug!("removed stale {}", path.display());
            }
        }
    }
}

/// The resource model at start-up: block devices first, then the root
/// policy discovered from the host, then the stored policies (§10.10).
fn resources(
    sys: &LinuxSys,
    options: &Options,
    paths: &HostPaths,
    policies: Vec<(Path, Policy)>,
) -> Result<Resources, DaemonError> {
    let mut resources = Resources::new(options.allow_zvol_for.clone());
    let scan = blocks::scan(&paths.block_dir())
        .map_err(|e| DaemonError::Directory(paths.block_dir(), e))?;
    for warning in scan.skipped {
        log::warn!("{warning}");
    }
    for (name, size) in scan.devices {
        if let Err(e) = resources.add_block(&name, size) {
            log::warn!("block device {name}: {e}");
        }
    }
    let root = Policy::host(
        sys.online_cpus().map_err(DaemonError::Sys)?,
        i64::try_from(sys.physical_memory_mb().map_err(DaemonError::Sys)?).unwrap_or(i64::MAX),
        i64::try_from(
            sys.filesystem_total_mb(&paths.block_dir())
                .map_err(DaemonError::Sys)?,
        )
        .unwrap_or(i64::MAX),
        sys.list_bridges().map_err(DaemonError::Sys)?,
    );
    log::info!(
        "host: {} cpus, {} MB memory, {} MB block storage, bridges {}",
        root.cpuids.len(),
        root.memory,
        root.block.unwrap_or(0),
        if root.bridges.is_empty() {
            "none".to_string()
        } else {
            root.bridges.iter().cloned().collect::<Vec<_>>().join(", ")
        }
    );
    resources
        .insert_policy(&Path::root(), root)
        .map_err(|e| DaemonError::Policy(Path::root(), e.to_string()))?;
    for (path, policy) in policies.into_iter().filter(|(p, _)| !p.is_root()) {
        resources
            .insert_policy(&path, policy)
            .map_err(|e| DaemonError::Policy(path.clone(), e.to_string()))?;
    }
    Ok(resources)
}

/// Binds `<tmpdir>/util/vmmd.sock`, replacing a stale socket, mode 0660.
fn listen(paths: &HostPaths) -> Result<Async<UnixListener>, DaemonError> {
    let path = Socket::Vmmd.path(&paths.tmpdir);
    let fail = |e| DaemonError::Socket(path.clone(), e);
    match fs::remove_file(&path) {
        Ok(()) => log::debug!("removed stale socket {}", path.display()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e)),
    }
    let listener = UnixListener::bind(&path).map_err(fail)?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o660)).map_err(fail)?;
    Async::new(listener).map_err(fail)
}

/// The tender search path: `--tender-dir`, the database directory, `PATH`.
fn tender_dirs(options: &Options) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = options.tender_dir.iter().cloned().collect();
    dirs.push(options.dbdir.clone());
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs
}

/// Raises the soft limit of open files to the hard limit: every running
/// unikernel holds a pidfd and its console FIFO, and the usual soft limit
/// of 1,024 would stop the daemon at about 500 unikernels.
fn raise_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            log::warn!("cannot raise the open file limit: {e}");
        }
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(options: Options) -> Result<(), DaemonError> {
    raise_file_limit();
    let paths = HostPaths {
        tmpdir: options.tmpdir.clone(),
        dbdir: options.dbdir.clone(),
    };
    make_dir(&paths.tmpdir, 0o755)?;
    make_dir(&paths.util_dir(), 0o755)?;
    make_dir(&paths.tmpdir.join("fifo"), 0o750)?;
    make_dir(&paths.dbdir, 0o700)?;
    make_dir(&paths.block_dir(), 0o700)?;

    let sys = Arc::new(LinuxSys::new().map_err(DaemonError::Sys)?);
    remove_stale(&sys, &paths);
    let tenders = Tenders::discover(tender_dirs(&options));
    if tenders.all().is_empty() {
        log::warn!(
            "no solo5 tender found in {:?}: unikernels cannot start until one is installed",
            tenders.dirs()
        );
    }
    let (store, loaded) = Store::open(&paths.dbdir).map_err(DaemonError::Store)?;
    if let Some(layout) = loaded.imported {
        log::info!(
            "imported upstream state file {} (layout {layout})",
            paths.dbdir.join("state").display()
        );
    }
    for warning in &loaded.warnings {
        log::warn!("{warning}");
    }
    for error in &loaded.errors {
        log::error!("{error}; left on disk, not started");
    }
    let resources = resources(&sys, &options, &paths, loaded.policies)?;
    let listener = listen(&paths)?;
    let config = Config {
        paths,
        full_name: options.full_name,
        max_image: DEFAULT_MAX_FRAME as u64 * 4,
        stop_timeout: Duration::from_secs(10),
    };
    let limits = Limits {
        max_frame: DEFAULT_MAX_FRAME,
        max_chunk: DEFAULT_MAX_CHUNK,
    };
    let unikernels: Vec<_> = loaded
        .unikernels
        .into_iter()
        .map(|u| (u.name, u.config))
        .collect();

    let ex = Rc::new(LocalExecutor::new());
    let core = Core::new(sys, Arc::new(store), tenders, config, resources, ex.clone());
    let mut signals =
        async_signal::Signals::new([async_signal::Signal::Term, async_signal::Signal::Int])
            .map_err(DaemonError::Runtime)?;
    smol::block_on(ex.run(async {
        log::info!(
            "listening on {}",
            Socket::Vmmd.path(&core.config().paths.tmpdir).display()
        );
        let restoring = core.clone();
        ex.spawn(async move { restoring.restore(unikernels).await })
            .detach();
        let accept = async {
            loop {
                match listener.accept().await {
                    Ok((conn, _)) => {
                        ex.spawn(serve_connection(core.clone(), conn, limits))
                            .detach();
                    }
                    Err(e) => log::warn!("accept: {e}"),
                }
            }
        };
        let signal = async {
            let name = match signals.next().await {
                Some(Ok(async_signal::Signal::Int)) => "SIGINT",
                _ => "SIGTERM",
            };
            log::info!("{name}: stopping every unikernel; they start again with the daemon");
        };
        smol::future::or(accept, signal).await;
        drop(listener);
        let _ = fs::remove_file(Socket::Vmmd.path(&core.config().paths.tmpdir));
        core.shutdown().await;
        log::info!("stopped");
    }));
    Ok(())
}
