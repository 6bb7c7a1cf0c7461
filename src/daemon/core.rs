//! The privileged core: the life cycle of unikernels (§8.2, §10), policies
//! (§8.3) and the restart rules, on top of the resource model, the store
//! and the system-call layer.
//!
//! Everything runs on one single-threaded executor: the state lives in a
//! `RefCell` that is never borrowed across an `await`, so checks and
//! reservations are atomic. Slow work (image checks, files, taps, spawning)
//! runs on the blocking pool. Operations on one name are serialised by a
//! per-name lock; different unikernels never wait for each other.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smol::lock::{Mutex, MutexGuardArc};
use smol::{Async, LocalExecutor, Timer};

use super::image::{self, ImageError};
use super::store::{Store, StoreError};
use super::tenders::{TenderError, Tenders};
use crate::model::resources::{
    PolicyError, StartError, UnikernelError, UnikernelUsage, UnknownPolicy,
};
use crate::model::restart::{after_exit, AfterExit, Backoff, ExitStatus};
use crate::model::tender::{tender_arguments, HostPaths};
use crate::model::{
    BlockInfo, Name, NetInfo, Path, Policy, Resources, Timestamp, UnikernelConfig, UnikernelInfo,
};
use crate::sys::{Signal, Sys, SysError, Tender, TenderSpec};
use crate::wire::{LifeCycle, UnikernelStatus};

/// Settings of the core.
#[derive(Debug, Clone)]
pub struct Config {
    /// Runtime and persistent directories.
    pub paths: HostPaths,
    /// Pass the full name to `--name=` (upstream's `--no-drop-path`).
    pub full_name: bool,
    /// Largest uncompressed image accepted, in bytes.
    pub max_image: u64,
    /// How long a tender may take to exit after SIGTERM before SIGKILL.
    pub stop_timeout: Duration,
}

/// Why a command failed; the text is what the client prints.
#[derive(Debug)]
#[non_exhaustive]
pub enum CoreError {
    /// The header names a path where a unikernel is needed.
    NotAUnikernel(Name),
    /// bhyve on a host without it.
    Unsupported(&'static str),
    /// A unikernel of that name exists already.
    Exists(Name),
    /// No unikernel of that name.
    NotFound(&'static str),
    /// Policy or block device check failed.
    Policy(StartError),
    /// The image cannot run.
    Image(ImageError),
    /// No suitable tender.
    Tender(TenderError),
    /// A host resource could not be made.
    Sys(SysError),
    /// The store could not be written or read.
    Store(StoreError),
    /// The tender did not stop.
    StopFailed(Name),
    /// The daemon is shutting down.
    ShuttingDown,
    /// A policy could not be inserted (§9.3).
    PolicyInsert(PolicyError),
    /// No policy at that path.
    UnknownPolicy(UnknownPolicy),
    /// The resource model refused to record the unikernel.
    Record(UnikernelError),
    /// A block device operation failed.
    Block(super::blocks::BlockError),
    /// A request refused with upstream's message (e.g. "remove block: not found").
    Refused(String),
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreError::NotAUnikernel(n) => {
                write!(
                    f,
                    "{n} is a path; a unikernel name (with a label) is needed"
                )
            }
            CoreError::Unsupported(what) => write!(f, "{what} is not supported on this host"),
            CoreError::Exists(n) => write!(f, "unikernel {n} already exists"),
            CoreError::NotFound(what) => write!(f, "{what}"),
            CoreError::Policy(e) => write!(f, "{e}"),
            CoreError::Image(e) => write!(f, "{e}"),
            CoreError::Tender(e) => write!(f, "{e}"),
            CoreError::Sys(e) => write!(f, "{e}"),
            CoreError::Store(e) => write!(f, "{e}"),
            CoreError::StopFailed(n) => write!(f, "unikernel {n} did not stop"),
            CoreError::ShuttingDown => write!(f, "the daemon is shutting down"),
            CoreError::PolicyInsert(e) => write!(f, "{e}"),
            CoreError::UnknownPolicy(e) => write!(f, "{e}"),
            CoreError::Record(e) => write!(f, "{e}"),
            CoreError::Block(e) => write!(f, "{e}"),
            CoreError::Refused(text) => write!(f, "{text}"),
        }
    }
}

impl std::error::Error for CoreError {}

impl From<SysError> for CoreError {
    fn from(e: SysError) -> CoreError {
        CoreError::Sys(e)
    }
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> CoreError {
        CoreError::Store(e)
    }
}

/// Lines of console output kept per unikernel, reported when it dies.
const CONSOLE_TAIL: usize = 20;

/// A tender that runs, shared by the exit watcher and stoppers.
struct Running {
    tender: Rc<Async<Tender>>,
    pid: u32,
    taps: Vec<String>,
    started: Timestamp,
    since: Instant,
    /// Woken with the exit status once the exit is handled.
    waiters: Vec<smol::channel::Sender<ExitStatus>>,
    /// Set when a command stops the unikernel: no restart then.
    stopping: bool,
}

enum Phase {
    /// Resources reserved, tender being started.
    Starting,
    Running(Running),
    /// Waiting for a restart attempt at this time.
    Waiting {
        at: Timestamp,
    },
    /// Stopped by a command or the shutdown; about to be forgotten or
    /// started again.
    Stopped,
}

/// A unikernel the core knows: running, starting or waiting to restart.
struct Vm {
    /// Its configuration without the image (that stays on disk).
    config: UnikernelConfig,
    digest: [u8; 32],
    phase: Phase,
    backoff: Backoff,
    console: Rc<RefCell<VecDeque<Vec<u8>>>>,
    /// Bumped on every start, so stale restart timers do nothing.
    generation: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum LockKey {
    Unikernel(Name),
    Block(Name),
}

#[derive(Default)]
struct State {
    resources: Resources,
    vms: BTreeMap<Name, Vm>,
    shutting_down: bool,
    /// Source of [`Vm::generation`] values, unique over the daemon's life.
    generations: u64,
}

impl State {
    fn next_generation(&mut self) -> u64 {
        self.generations += 1;
        self.generations
    }
}

/// The core. Create it with [`Core::new`] inside the executor it spawns on.
pub struct Core<S: Sys + Send + Sync + 'static> {
    sys: Arc<S>,
    store: Arc<Store>,
    tenders: Arc<Tenders>,
    config: Arc<Config>,
    ex: Rc<LocalExecutor<'static>>,
    state: RefCell<State>,
    locks: RefCell<HashMap<LockKey, Arc<Mutex<()>>>>,
}

fn usage_of(config: &UnikernelConfig) -> UnikernelUsage {
    UnikernelUsage::of(&config.args)
}

impl<S: Sys + Send + Sync + 'static> Core<S> {
    /// A core over `resources` (policies and block devices already loaded).
    pub fn new(
        sys: Arc<S>,
        store: Arc<Store>,
        tenders: Tenders,
        config: Config,
        resources: Resources,
        ex: Rc<LocalExecutor<'static>>,
    ) -> Rc<Core<S>> {
        Rc::new(Core {
            sys,
            store,
            tenders: Arc::new(tenders),
            config: Arc::new(config),
            ex,
            state: RefCell::new(State {
                resources,
                ..State::default()
            }),
            locks: RefCell::new(HashMap::new()),
        })
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Runs `f` on the resource model.
    pub fn with_resources<T>(&self, f: impl FnOnce(&mut Resources) -> T) -> T {
        f(&mut self.state.borrow_mut().resources)
    }

    async fn lock(&self, key: LockKey) -> MutexGuardArc<()> {
        let lock = {
            let mut locks = self.locks.borrow_mut();
            // Forget locks nobody holds, so the table stays small.
            if locks.len() > 1024 {
                locks.retain(|_, l| Arc::strong_count(l) > 1);
            }
            locks
                .entry(key)
                .or_insert_with(|| Arc::new(Mutex::new(())))
                .clone()
        };
        lock.lock_arc().await
    }

    /// Locks the unikernel `name` and each of its block devices, in a fixed
    /// order (unikernel first, then devices sorted) so that two operations
    /// cannot deadlock.
    async fn lock_unikernel(
        &self,
        name: &Name,
        config: Option<&UnikernelConfig>,
    ) -> Vec<MutexGuardArc<()>> {
        let mut blocks: Vec<Name> = config
            .into_iter()
            .flat_map(|c| c.args.blocks.iter())
            .filter_map(|b| crate::model::Label::parse(b.host_device()).ok())
            .map(|label| name.sibling(label))
            .collect();
        blocks.sort();
        blocks.dedup();
        let mut guards = vec![self.lock(LockKey::Unikernel(name.clone())).await];
        for block in blocks {
            guards.push(self.lock(LockKey::Block(block)).await);
        }
        guards
    }

    /// Locks a block device for a set or dump.
    pub async fn lock_block(&self, name: &Name) -> MutexGuardArc<()> {
        self.lock(LockKey::Block(name.clone())).await
    }

    // ---- starting --------------------------------------------------------

    /// Reserves resources for `name` or fails with the policy error.
    fn reserve(&self, name: &Name, config: &UnikernelConfig) -> Result<(), CoreError> {
        let mut st = self.state.borrow_mut();
        if st.shutting_down {
            return Err(CoreError::ShuttingDown);
        }
        if st.vms.contains_key(name) {
            return Err(CoreError::Exists(name.clone()));
        }
        let usage = usage_of(config);
        st.resources
            .check_start(name, &usage)
            .map_err(CoreError::Policy)?;
        st.resources
            .insert_unikernel(name, usage)
            .map_err(CoreError::Record)?;
        let console = Rc::new(RefCell::new(VecDeque::new()));
        let mut kept = config.clone();
        kept.image = Vec::new();
        st.vms.insert(
            name.clone(),
            Vm {
                config: kept,
                digest: [0; 32],
                phase: Phase::Starting,
                backoff: Backoff::default(),
                console,
                generation: 0,
            },
        );
        Ok(())
    }

    /// Gives back what [`Core::reserve`] took.
    fn release(&self, name: &Name) {
        let mut st = self.state.borrow_mut();
        st.vms.remove(name);
        // The reservation exists unless someone removed it already.
        let _ = st.resources.remove_unikernel(name);
    }

    /// Prepares host resources and starts the tender of a reserved
    /// unikernel. `config.image` holds the image as stored.
    async fn launch(
        self: &Rc<Self>,
        name: &Name,
        config: &UnikernelConfig,
    ) -> Result<(), CoreError> {
        let sys = self.sys.clone();
        let tenders = self.tenders.clone();
        let settings = self.config.clone();
        let job_name = name.clone();
        let job_config = config.clone();
        let prepared =
            smol::unblock(move || prepare(&*sys, &tenders, &settings, &job_name, &job_config))
                .await?;
        // The read side first, so that the tender's open does not block.
        let fifo = self.config.paths.fifo(name);
        let reader = open_fifo_reader(&fifo).map_err(|e| {
            self.cleanup_detached(name, prepared.taps.clone());
            CoreError::Sys(SysError::io(crate::sys::Op::OpenConsole, fifo.display(), e))
        })?;
        let spec = TenderSpec {
            program: prepared.tender.clone(),
            args: prepared.argv.iter().map(Into::into).collect(),
            cpuids: config
                .args
                .cpuids
                .iter()
                .filter_map(|c| usize::try_from(*c).ok())
                .collect(),
            console: fifo.clone(),
            env: Vec::new(),
        };
        let sys = self.sys.clone();
        let tender = match smol::unblock(move || sys.spawn_tender(spec)).await {
            Ok(t) => t,
            Err(e) => {
                self.cleanup_detached(name, prepared.taps.clone());
                return Err(e.into());
            }
        };
        let pid = tender.pid;
        let tender = match Async::new(tender) {
            Ok(t) => Rc::new(t),
            Err(e) => {
                log::error!("{name}: cannot watch tender {pid}: {e}");
                return Err(CoreError::Sys(SysError::io(crate::sys::Op::Spawn, name, e)));
            }
        };
        log::info!(
            "{name}: started {} (pid {pid}, taps {})",
            prepared.tender.display(),
            if prepared.taps.is_empty() {
                "none".to_string()
            } else {
                prepared.taps.join(", ")
            }
        );
        let generation = {
            let mut st = self.state.borrow_mut();
            let generation = st.next_generation();
            let Some(vm) = st.vms.get_mut(name) else {
                return Err(CoreError::NotFound("unikernel vanished while starting"));
            };
            vm.digest = prepared.digest;
            vm.generation = generation;
            vm.phase = Phase::Running(Running {
                tender: tender.clone(),
                pid,
                taps: prepared.taps,
                started: Timestamp::now(),
                since: Instant::now(),
                waiters: Vec::new(),
                stopping: false,
            });
            let console = vm.console.clone();
            self.ex
                .spawn(drain_console(name.clone(), reader, console))
                .detach();
            vm.generation
        };
        let core = self.clone();
        let watched = name.clone();
        self.ex
            .spawn(async move { core.watch(watched, tender, generation).await })
            .detach();
        Ok(())
    }

    /// Removes the files and taps of a unikernel that did not start, off
    /// the request path.
    fn cleanup_detached(&self, name: &Name, taps: Vec<String>) {
        let sys = self.sys.clone();
        let image = self.config.paths.image(name);
        let fifo = self.config.paths.fifo(name);
        let name = name.clone();
        self.ex
            .spawn(smol::unblock(move || {
                cleanup(&*sys, &name, &image, &fifo, &taps)
            }))
            .detach();
    }

    /// Creates unikernel `name` (§8.2 create / force-create).
    pub async fn create(
        self: &Rc<Self>,
        name: &Name,
        config: UnikernelConfig,
        force: bool,
    ) -> Result<String, CoreError> {
        if name.is_path() {
            return Err(CoreError::NotAUnikernel(name.clone()));
        }
        if config.typ != crate::model::Typ::Solo5 {
            return Err(CoreError::Unsupported("bhyve"));
        }
        let _guards = self.lock_unikernel(name, Some(&config)).await;
        if force && self.state.borrow().vms.contains_key(name) {
            let usage = usage_of(&config);
            self.state
                .borrow()
                .resources
                .check_replace(name, &usage)
                .map_err(CoreError::Policy)?;
            self.stop(name).await?;
            self.forget(name).await?;
        }
        self.reserve(name, &config)?;
        if let Err(e) = self.launch(name, &config).await {
            self.release(name);
            return Err(e);
        }
        let store = self.store.clone();
        let (job_name, job_config) = (name.clone(), config);
        if let Err(e) = smol::unblock(move || store.put_unikernel(&job_name, &job_config)).await {
            log::error!("{name}: {e}; stopping it again");
            let _ = self.stop(name).await;
            self.release(name);
            return Err(e.into());
        }
        Ok("created unikernel".to_string())
    }

    // ---- stopping --------------------------------------------------------

    /// Stops the running tender of `name` and waits until its exit is
    /// handled; no restart follows. Does nothing if it is not running.
    async fn stop(self: &Rc<Self>, name: &Name) -> Result<(), CoreError> {
        let (tender, exited) = {
            let mut st = self.state.borrow_mut();
            let Some(Vm {
                phase: Phase::Running(run),
                ..
            }) = st.vms.get_mut(name)
            else {
                return Ok(());
            };
            let (tx, rx) = smol::channel::bounded(1);
            run.waiters.push(tx);
            run.stopping = true;
            (run.tender.clone(), rx)
        };
        if let Err(e) = self.sys.signal(tender.get_ref(), Signal::Term) {
            log::warn!("{name}: {e}");
        }
        let timeout = self.config.stop_timeout;
        let status = smol::future::or(async { exited.recv().await.ok() }, async {
            Timer::after(timeout).await;
            None
        })
        .await;
        if status.is_some() {
            return Ok(());
        }
        log::warn!(
            "{name}: no exit {}s after SIGTERM, sending SIGKILL",
            timeout.as_secs()
        );
        if let Err(e) = self.sys.signal(tender.get_ref(), Signal::Kill) {
            log::warn!("{name}: {e}");
        }
        exited
            .recv()
            .await
            .map(|_| ())
            .map_err(|_| CoreError::StopFailed(name.clone()))
    }

    /// Forgets a stopped (or waiting) unikernel: memory and store.
    async fn forget(&self, name: &Name) -> Result<(), CoreError> {
        self.state.borrow_mut().vms.remove(name);
        let store = self.store.clone();
        let name = name.clone();
        smol::unblock(move || store.remove_unikernel(&name)).await?;
        Ok(())
    }

    /// Destroys unikernel `name` (§8.2 destroy).
    pub async fn destroy(self: &Rc<Self>, name: &Name) -> Result<String, CoreError> {
        let _guards = self.lock_unikernel(name, None).await;
        let phase = match self.state.borrow().vms.get(name) {
            None => return Err(CoreError::NotFound("destroy: not found")),
            Some(Vm {
                phase: Phase::Waiting { .. },
                ..
            }) => "waiting",
            Some(_) => "running",
        };
        self.stop(name).await?;
        self.forget(name).await?;
        Ok(if phase == "waiting" {
            "destroyed: removed from restarting"
        } else {
            "destroyed unikernel"
        }
        .to_string())
    }

    /// Restarts unikernel `name` with its configuration or with `args`
    /// (§8.2 restart). A unikernel waiting for a restart starts at once.
    pub async fn restart(
        self: &Rc<Self>,
        name: &Name,
        args: Option<crate::model::UnikernelArguments>,
    ) -> Result<String, CoreError> {
        let old = self
            .state
            .borrow()
            .vms
            .get(name)
            .map(|vm| vm.config.clone());
        let Some(old) = old else {
            return Err(CoreError::NotFound("destroy: not found"));
        };
        let mut config = old.clone();
        if let Some(args) = args {
            config.args = args;
        }
        let _guards = self.lock_unikernel(name, Some(&config)).await;
        let store = self.store.clone();
        let job = name.clone();
        config.image = smol::unblock(move || store.read_image(&job)).await?;
        // Refuse before stopping anything: policies and the manifest.
        self.state
            .borrow()
            .resources
            .check_replace(name, &usage_of(&config))
            .map_err(CoreError::Policy)?;
        let (image, compressed, args, max) = (
            config.image.clone(),
            config.compressed,
            config.args.clone(),
            self.config.max_image,
        );
        smol::unblock(move || image::check(&image, compressed, &args, max).map(|_| ()))
            .await
            .map_err(CoreError::Image)?;
        self.stop(name).await?;
        self.state.borrow_mut().vms.remove(name);
        self.reserve(name, &config)?;
        if let Err(e) = self.launch(name, &config).await {
            self.release(name);
            let _ = self.forget(name).await;
            return Err(e);
        }
        if config.args != old.args {
            let store = self.store.clone();
            let (job_name, job_config) = (name.clone(), config);
            smol::unblock(move || store.update_config(&job_name, &job_config)).await?;
        }
        Ok("created unikernel".to_string())
    }

    // ---- exits and restarts ---------------------------------------------

    async fn watch(self: Rc<Self>, name: Name, tender: Rc<Async<Tender>>, generation: u64) {
        let status = loop {
            if let Err(e) = tender.readable().await {
                log::error!("{name}: waiting for the tender failed: {e}");
                break ExitStatus::Exit(23);
            }
            match self.sys.wait_exit(tender.get_ref()) {
                Ok(Some(status)) => break status,
                Ok(None) => continue,
                Err(e) => {
                    log::error!("{name}: {e}");
                    break ExitStatus::Exit(23);
                }
            }
        };
        self.exited(&name, status, generation).await;
    }

    /// Handles the exit of `name`'s tender (§10.5, §10.6).
    async fn exited(self: &Rc<Self>, name: &Name, status: ExitStatus, generation: u64) {
        let (run, config, console) = {
            let mut st = self.state.borrow_mut();
            let Some(vm) = st
                .vms
                .get_mut(name)
                .filter(|vm| vm.generation == generation)
            else {
                return;
            };
            let Phase::Running(run) = std::mem::replace(&mut vm.phase, Phase::Starting) else {
                return;
            };
            let console: Vec<Vec<u8>> = vm.console.borrow().iter().cloned().collect();
            let config = vm.config.clone();
            let _ = st.resources.remove_unikernel(name);
            (run, config, console)
        };
        let ran = run.since.elapsed();
        if run.stopping || matches!(status, ExitStatus::Exit(0)) {
            log::info!("{name}: exited ({status}) after {}s", ran.as_secs());
        } else {
            let tail: Vec<String> = console
                .iter()
                .rev()
                .take(5)
                .rev()
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .collect();
            log::warn!(
                "{name}: exited ({status}) after {}s; last console lines: {}",
                ran.as_secs(),
                tail.join(" | ")
            );
        }
        // Image and FIFO go first (a restart writes the same paths again);
        // taps take the kernel milliseconds (known trap 7), so they go off
        // the request path, except at shutdown, which waits for them.
        let sys = self.sys.clone();
        let image = self.config.paths.image(name);
        let fifo = self.config.paths.fifo(name);
        let job = name.clone();
        smol::unblock(move || remove_files(&*sys, &job, &image, &fifo)).await;
        let sys = self.sys.clone();
        let job = name.clone();
        let taps = run.taps.clone();
        let taps_gone = smol::unblock(move || destroy_taps(&*sys, &job, &taps));
        let shutting_down = self.state.borrow().shutting_down;
        if shutting_down {
            taps_gone.await;
        } else {
            self.ex.spawn(taps_gone).detach();
        }
        if run.stopping || shutting_down {
            if let Some(vm) = self.state.borrow_mut().vms.get_mut(name) {
                vm.phase = Phase::Stopped;
            }
            for waiter in run.waiters {
                let _ = waiter.try_send(status);
            }
            return;
        }
        let decision = after_exit(&config.args, status);
        match decision {
            AfterExit::Stop => {
                log::info!("{name}: not restarted ({status}); removed");
                // A tender that exits at once can get here while its create
                // still writes the configuration: remove it after that, and
                // only if nothing replaced it meanwhile.
                let _guards = self.lock_unikernel(name, None).await;
                let current = self
                    .state
                    .borrow()
                    .vms
                    .get(name)
                    .is_some_and(|vm| vm.generation == generation);
                if current {
                    if let Err(e) = self.forget(name).await {
                        log::error!("{name}: {e}");
                    }
                }
            }
            AfterExit::RetryWithoutName | AfterExit::Restart => {
                let delay = {
                    let mut st = self.state.borrow_mut();
                    let Some(vm) = st.vms.get_mut(name) else {
                        return;
                    };
                    if decision == AfterExit::RetryWithoutName {
                        vm.config.args.add_name = false;
                    }
                    let delay = vm.backoff.next_delay(ran);
                    vm.phase = Phase::Waiting { at: after(delay) };
                    delay
                };
                if decision == AfterExit::RetryWithoutName {
                    log::warn!("{name}: {status}, probably does not understand --name; retrying without it");
                } else if !delay.is_zero() {
                    log::warn!(
                        "{name}: restarting in {}s (restart {})",
                        delay.as_secs(),
                        self.restarts(name)
                    );
                }
                self.schedule_restart(
                    name,
                    generation,
                    delay,
                    decision == AfterExit::RetryWithoutName,
                );
            }
        }
    }

    /// Keeps a unikernel that could not start as waiting, and tries again
    /// after the back-off delay: the cause (a missing bridge, image or
    /// tender, a full disk) may go away, and nothing is lost meanwhile.
    fn keep_waiting(
        self: &Rc<Self>,
        name: &Name,
        mut config: UnikernelConfig,
        mut backoff: Backoff,
        persist: bool,
    ) {
        config.image = Vec::new();
        let delay = backoff.next_delay(Duration::ZERO);
        let generation = {
            let mut st = self.state.borrow_mut();
            let generation = st.next_generation();
            let vm = Vm {
                config,
                digest: [0; 32],
                phase: Phase::Waiting { at: after(delay) },
                backoff,
                console: Rc::new(RefCell::new(VecDeque::new())),
                generation,
            };
            st.vms.insert(name.clone(), vm);
            generation
        };
        self.schedule_restart(name, generation, delay, persist);
    }

    /// Runs [`Core::restart_after_exit`] after `delay`.
    fn schedule_restart(
        self: &Rc<Self>,
        name: &Name,
        generation: u64,
        delay: Duration,
        persist: bool,
    ) {
        let core = self.clone();
        let name = name.clone();
        self.ex
            .spawn(async move {
                Timer::after(delay).await;
                core.restart_after_exit(&name, generation, persist).await;
            })
            .detach();
    }

    fn restarts(&self, name: &Name) -> u64 {
        self.state
            .borrow()
            .vms
            .get(name)
            .map_or(0, |vm| vm.backoff.restarts)
    }

    /// A scheduled restart: runs unless the unikernel was destroyed,
    /// restarted by hand or started otherwise since.
    async fn restart_after_exit(self: &Rc<Self>, name: &Name, generation: u64, persist: bool) {
        let config = {
            let st = self.state.borrow();
            match st.vms.get(name) {
                Some(vm)
                    if vm.generation == generation && matches!(vm.phase, Phase::Waiting { .. }) =>
                {
                    vm.config.clone()
                }
                _ => return,
            }
        };
        let _guards = self.lock_unikernel(name, Some(&config)).await;
        // Re-check under the lock: a destroy may have come first.
        let (backoff, console) = {
            let st = self.state.borrow();
            match st.vms.get(name) {
                Some(vm)
                    if vm.generation == generation && matches!(vm.phase, Phase::Waiting { .. }) =>
                {
                    (vm.backoff, vm.console.clone())
                }
                _ => return,
            }
        };
        match self.start_stored(name, config.clone(), persist).await {
            Ok(()) => {
                if let Some(vm) = self.state.borrow_mut().vms.get_mut(name) {
                    vm.backoff = backoff;
                    vm.console = console;
                }
            }
            Err(e) => {
                log::error!("{name}: restart failed: {e}");
                self.keep_waiting(name, config, backoff, persist);
            }
        }
    }

    /// Starts a stored unikernel (restart or restore) with `config`
    /// (without image), persisting the configuration if `persist`.
    async fn start_stored(
        self: &Rc<Self>,
        name: &Name,
        mut config: UnikernelConfig,
        persist: bool,
    ) -> Result<(), CoreError> {
        let store = self.store.clone();
        let job = name.clone();
        config.image = smol::unblock(move || store.read_image(&job)).await?;
        self.state.borrow_mut().vms.remove(name);
        self.reserve(name, &config)?;
        if let Err(e) = self.launch(name, &config).await {
            self.release(name);
            return Err(e);
        }
        if persist {
            let store = self.store.clone();
            let job = name.clone();
            smol::unblock(move || store.update_config(&job, &config)).await?;
        }
        Ok(())
    }

    /// Starts the stored unikernels at daemon start-up, lowest start-up
    /// priority first (§10.10 step 11). A failure is logged and the
    /// unikernel kept for a later restart attempt.
    pub async fn restore(self: &Rc<Self>, mut unikernels: Vec<(Name, UnikernelConfig)>) {
        unikernels.sort_by_key(|(_, c)| {
            c.args
                .startup
                .unwrap_or(crate::model::config::DEFAULT_STARTUP)
        });
        for (name, config) in unikernels {
            let _guards = self.lock_unikernel(&name, Some(&config)).await;
            if self.state.borrow().vms.contains_key(&name) {
                continue;
            }
            if let Err(e) = self.start_stored(&name, config.clone(), false).await {
                log::error!("{name}: could not be restored: {e}");
                self.keep_waiting(&name, config, Backoff::default(), false);
            }
        }
    }

    /// Stops every unikernel and waits for their clean-up; the store keeps
    /// them, so the next start brings them back (§10.11).
    pub async fn shutdown(self: &Rc<Self>) {
        let names: Vec<Name> = {
            let mut st = self.state.borrow_mut();
            st.shutting_down = true;
            st.vms.keys().cloned().collect()
        };
        let stops: Vec<_> = names
            .into_iter()
            .map(|name| {
                let core = self.clone();
                self.ex.spawn(async move {
                    // A create or restart in flight finishes first, so
                    // what it persists is complete when the daemon exits.
                    let _guards = core.lock_unikernel(&name, None).await;
                    if let Err(e) = core.stop(&name).await {
                        log::error!("{name}: {e}");
                    }
                })
            })
            .collect();
        for stop in stops {
            stop.await;
        }
    }

    // ---- queries ----------------------------------------------------------

    /// Info on the running unikernels named by `name` (§8.2): that one, or
    /// all at or below a path with names relative to it.
    pub fn info(&self, name: &Name) -> Vec<(Name, UnikernelInfo)> {
        let st = self.state.borrow();
        let selected: Vec<(Name, &Name, &Vm)> = if name.is_path() {
            st.vms
                .iter()
                .filter_map(|(full, vm)| Some((full.relative_to(name.path())?, full, vm)))
                .collect()
        } else {
            st.vms
                .get_key_value(name)
                .map(|(full, vm)| (name.clone(), full, vm))
                .into_iter()
                .collect()
        };
        selected
            .into_iter()
            .filter_map(|(reported, full, vm)| {
                let Phase::Running(run) = &vm.phase else {
                    return None;
                };
                let args = &vm.config.args;
                let blocks = args
                    .blocks
                    .iter()
                    .map(|b| BlockInfo {
                        unikernel_device: b.name.clone(),
                        host_device: b.host_device().to_string(),
                        sector_size: b.sector_size.unwrap_or(512),
                        block_size: crate::model::Label::parse(b.host_device())
                            .ok()
                            .and_then(|l| st.resources.block(&full.sibling(l)))
                            .map_or(0, |d| d.size),
                    })
                    .collect();
                let bridges = args
                    .bridges
                    .iter()
                    .map(|n| NetInfo {
                        unikernel_device: n.netif.clone(),
                        host_device: n.host_bridge().to_string(),
                        mac: n.effective_mac(full),
                    })
                    .collect();
                Some((
                    reported,
                    UnikernelInfo {
                        typ: vm.config.typ,
                        startup: args.startup,
                        fail_behaviour: args.fail_behaviour.clone(),
                        cpuids: args.cpuids.clone(),
                        memory: args.memory,
                        digest: vm.digest.to_vec(),
                        blocks,
                        bridges,
                        argv: args.argv.clone(),
                        started: run.started,
                        cpus: args.cpus,
                        linux_boot_partition: args.linux_boot_partition.clone(),
                    },
                ))
            })
            .collect()
    }

    /// Life cycle, restart count and next restart attempt of the
    /// unikernels named by `name` (that one, or all at or below a path
    /// with names relative to it); waiting ones included.
    pub fn status(&self, name: &Name) -> Vec<UnikernelStatus> {
        let st = self.state.borrow();
        let selected: Vec<(Name, &Vm)> = if name.is_path() {
            st.vms
                .iter()
                .filter_map(|(full, vm)| Some((full.relative_to(name.path())?, vm)))
                .collect()
        } else {
            st.vms
                .get(name)
                .map(|vm| (name.clone(), vm))
                .into_iter()
                .collect()
        };
        selected
            .into_iter()
            .map(|(reported, vm)| {
                let (state, pid, next_attempt) = match &vm.phase {
                    Phase::Starting => (LifeCycle::Starting, None, None),
                    Phase::Running(r) => (LifeCycle::Running, Some(i64::from(r.pid)), None),
                    Phase::Waiting { at } => (LifeCycle::Waiting, None, Some(*at)),
                    Phase::Stopped => (LifeCycle::Stopped, None, None),
                };
                UnikernelStatus {
                    name: reported,
                    state,
                    restarts: i64::try_from(vm.backoff.restarts).unwrap_or(i64::MAX),
                    pid,
                    next_attempt,
                }
            })
            .collect()
    }

    /// The image of `name` at compression `level` (§8.2 get).
    pub async fn get(&self, name: &Name, level: i64) -> Result<(bool, Vec<u8>), CoreError> {
        let compressed = match self.state.borrow().vms.get(name) {
            Some(vm) => vm.config.compressed,
            None => return Err(CoreError::NotFound("get: no unikernel found")),
        };
        let store = self.store.clone();
        let job = name.clone();
        let max = self.config.max_image;
        smol::unblock(move || -> Result<(bool, Vec<u8>), CoreError> {
            let stored = store.read_image(&job)?;
            image::for_get(stored, compressed, level, max).map_err(CoreError::Image)
        })
        .await
    }

    // ---- policies ---------------------------------------------------------

    /// Adds or replaces the policy at `path` (§8.3 add).
    pub async fn add_policy(&self, path: &Path, policy: Policy) -> Result<String, CoreError> {
        let old = {
            let mut st = self.state.borrow_mut();
            let old = st.resources.policy(path).cloned();
            if old.as_ref() == Some(&policy) {
                return Ok("no modification of policy".to_string());
            }
            st.resources
                .insert_policy(path, policy.clone())
                .map_err(CoreError::PolicyInsert)?;
            old
        };
        let store = self.store.clone();
        let (job_path, job_policy) = (path.clone(), policy);
        if let Err(e) = smol::unblock(move || store.put_policy(&job_path, &job_policy)).await {
            // Not persisted: not in force either.
            let mut st = self.state.borrow_mut();
            let _ = st.resources.remove_policy(path);
            if let Some(old) = old {
                let _ = st.resources.insert_policy(path, old);
            }
            return Err(e.into());
        }
        Ok("added policy".to_string())
    }

    /// Removes the policy at `path` (§8.3 remove).
    pub async fn remove_policy(&self, path: &Path) -> Result<String, CoreError> {
        let removed = self
            .state
            .borrow_mut()
            .resources
            .remove_policy(path)
            .map_err(CoreError::UnknownPolicy)?;
        let store = self.store.clone();
        let job = path.clone();
        if let Err(e) = smol::unblock(move || store.remove_policy(&job)).await {
            let _ = self
                .state
                .borrow_mut()
                .resources
                .insert_policy(path, removed);
            return Err(e.into());
        }
        Ok("removed policy".to_string())
    }

    /// Policies at and below `path`, names relative to it (§8.3 info).
    pub fn policies(&self, path: &Path) -> Vec<(Name, Policy)> {
        self.state.borrow().resources.policies_below(path)
    }
}

/// The time `delay` from now.
fn after(delay: Duration) -> Timestamp {
    let ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
    Timestamp::from_unix_millis(Timestamp::now().unix_millis().saturating_add(ms))
}

/// What [`prepare`] made for a tender.
struct Prepared {
    digest: [u8; 32],
    tender: PathBuf,
    argv: Vec<String>,
    taps: Vec<String>,
}

/// Checks the image, picks the tender and makes the host resources of
/// unikernel `name` (§10.2); undoes what it made if a step fails.
fn prepare<S: Sys>(
    sys: &S,
    tenders: &Tenders,
    config: &Config,
    name: &Name,
    unikernel: &UnikernelConfig,
) -> Result<Prepared, CoreError> {
    let args = &unikernel.args;
    let checked = image::check(
        &unikernel.image,
        unikernel.compressed,
        args,
        config.max_image,
    )
    .map_err(CoreError::Image)?;
    let tender = tenders
        .select(checked.abi.target, checked.abi.version)
        .map_err(CoreError::Tender)?;
    for net in &args.bridges {
        if !sys.bridge_exists(net.host_bridge())? {
            return Err(CoreError::Sys(SysError::NoSuchBridge {
                bridge: net.host_bridge().to_string(),
            }));
        }
    }
    let paths = &config.paths;
    let image_path = paths.image(name);
    let image_name = format!("{name}.img");
    sys.write_atomic(&paths.tmpdir, &image_name, &checked.bytes)?;
    let fifo = paths.fifo(name);
    let mut taps = Vec::new();
    let made = sys
        .make_fifo(&fifo)
        .map_err(CoreError::from)
        .and_then(|()| {
            for net in &args.bridges {
                taps.push(sys.create_tap(net.host_bridge())?);
            }
            Ok(())
        });
    if let Err(e) = made {
        cleanup(sys, name, &image_path, &fifo, &taps);
        return Err(e);
    }
    let argv = tender_arguments(name, args, &taps, paths, &image_path, config.full_name);
    Ok(Prepared {
        digest: checked.digest,
        tender: tender.path.clone(),
        argv,
        taps,
    })
}

/// Removes the image, FIFO and taps of a unikernel that ended; logs what
/// fails (there is nobody to tell).
fn cleanup<S: Sys>(
    sys: &S,
    name: &Name,
    image: &std::path::Path,
    fifo: &std::path::Path,
    taps: &[String],
) {
    remove_files(sys, name, image, fifo);
    destroy_taps(sys, name, taps);
}

/// Removes a unikernel's image and FIFO, logging failures.
fn remove_files<S: Sys>(sys: &S, name: &Name, image: &std::path::Path, fifo: &std::path::Path) {
    for path in [image, fifo] {
        if let Err(e) = sys.remove_file(path) {
            log::warn!("{name}: {e}");
        }
    }
}

/// Deletes a unikernel's taps, logging failures.
fn destroy_taps<S: Sys>(sys: &S, name: &Name, taps: &[String]) {
    for tap in taps {
        if let Err(e) = sys.destroy_tap(tap) {
            log::warn!("{name}: {e}");
        }
    }
}

fn open_fifo_reader(path: &std::path::Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

/// Reads a unikernel's console until its tender exits, so the tender never
/// blocks on a full FIFO; keeps the last lines for the exit report. (The
/// console role, when it exists, takes this over.)
async fn drain_console(name: Name, fifo: File, tail: Rc<RefCell<VecDeque<Vec<u8>>>>) {
    use smol::io::AsyncReadExt;
    let Ok(mut fifo) = Async::new(fifo) else {
        return;
    };
    let mut buf = vec![0u8; 4096];
    let mut partial = Vec::new();
    loop {
        match fifo.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                partial.extend_from_slice(&buf[..n]);
                while let Some(end) = partial.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = partial.drain(..=end).take(end).collect();
                    log::debug!("{name}: {}", String::from_utf8_lossy(&line));
                    let mut tail = tail.borrow_mut();
                    if tail.len() == CONSOLE_TAIL {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
                partial.truncate(512);
            }
            Err(e) => {
                log::warn!("{name}: reading the console failed: {e}");
                break;
            }
        }
    }
}
