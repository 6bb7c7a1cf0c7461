//! Every message between the core and its roles.
//!
//! The envelope is the same for all roles: a role says [`Hello`] first,
//! the core answers a role it started itself with [`ToRole::Init`] (its
//! sandbox and configuration, with its listening sockets), the role says
//! [`FromRole::Ready`] once it is confined and serving; after that each
//! side sends its role-specific messages. Adding a role means adding its
//! [`RoleKind`], its configuration and its two message types here.

use bincode::{Decode, Encode};

use super::Message;
use crate::model::event::Event;
use crate::model::{Name, Timestamp};

/// The roles the core can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode)]
pub enum RoleKind {
    /// Console output of unikernels (`console.sock`).
    Console,
    /// The persistent event log (`log.sock`).
    Log,
}

impl RoleKind {
    /// Every role.
    pub const ALL: [RoleKind; 2] = [RoleKind::Console, RoleKind::Log];

    /// The role's name in messages and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            RoleKind::Console => "console",
            RoleKind::Log => "log",
        }
    }
}

/// A role's first message.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Hello {
    /// Which role this is.
    pub role: RoleKind,
    /// Its process id (for the operator's log).
    pub pid: u32,
}

/// The unprivileged user a role runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct Credentials {
    /// User id.
    pub uid: u32,
    /// Primary (and only) group id.
    pub gid: u32,
}

/// What happens to a system call a role's filter does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub enum SeccompMode {
    /// The role is killed (the default).
    Kill,
    /// The call is allowed and logged by the kernel (to find a missing
    /// system call without stopping production).
    Log,
}

/// How a role is confined, decided by the core.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Sandbox {
    /// Drop to this user; `None` when the daemon does not run as root.
    pub user: Option<Credentials>,
    /// Change root to this directory; `None` when the daemon does not run
    /// as root.
    pub chroot: Option<String>,
    /// The seccomp filter's action.
    pub seccomp: SeccompMode,
}

/// What the core sends to a role: `C` is the role's configuration, `M`
/// its own messages.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum ToRole<C, M> {
    /// The first message to a role the daemon started: how to confine
    /// itself and its configuration, with `fds` descriptors (its listening
    /// sockets and directories, in the order its configuration says).
    Init {
        /// Its sandbox.
        sandbox: Sandbox,
        /// Its configuration.
        config: C,
        /// How many descriptors come with this message.
        fds: u8,
    },
    /// A message of the role's own kind.
    Role(M),
    /// Use the attached descriptor as standard error from now on (the
    /// daemon reopened its log file on SIGHUP).
    Stderr,
}

impl<C: Encode + Decode<()>, M: Message> Message for ToRole<C, M> {
    fn fds(&self) -> usize {
        match self {
            ToRole::Init { fds, .. } => usize::from(*fds),
            ToRole::Role(m) => m.fds(),
            ToRole::Stderr => 1,
        }
    }
}

/// What a role sends to the core; `M` is its own kind of message.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum FromRole<M> {
    /// The first message on every channel.
    Hello(Hello),
    /// Confined and serving.
    Ready,
    /// A message of the role's own kind.
    Role(M),
}

impl<M: Message> Message for FromRole<M> {
    fn fds(&self) -> usize {
        match self {
            FromRole::Hello(_) | FromRole::Ready => 0,
            FromRole::Role(m) => m.fds(),
        }
    }
}

/// A role that sends nothing of its own.
impl Message for () {}

// ---- console -----------------------------------------------------------

/// Configuration of the console role (§11).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct ConsoleConfig {
    /// Subscribers per unikernel.
    pub max_subscribers: u32,
}

/// What the core tells the console role.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum ToConsole {
    /// A unikernel started: the read end of its console FIFO is attached.
    /// `limit` is the number of unikernels its path may run (§11.2).
    Add {
        /// The unikernel.
        name: Name,
        /// The policy's unikernel count for its path.
        limit: i64,
    },
}

impl Message for ToConsole {
    fn fds(&self) -> usize {
        match self {
            ToConsole::Add { .. } => 1,
        }
    }
}

/// The console role's side of its channel.
pub type ConsoleRoleChannel = super::Channel<FromRole<()>, ToRole<ConsoleConfig, ToConsole>>;

// ---- event log ---------------------------------------------------------

/// Configuration of the log role.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct LogConfig {
    /// The log file's size at which it is rotated, in bytes.
    pub max_bytes: u64,
    /// How many rotated files are kept.
    pub keep: u32,
}

/// What the core tells the log role.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum ToLog {
    /// Store an event. `seq` increases by one per event of one daemon run.
    Event {
        /// Sequence number, for [`FromLog::Written`].
        seq: u64,
        /// When it happened.
        time: Timestamp,
        /// What happened.
        event: Event,
    },
    /// Reopen the log file (SIGHUP).
    Reopen,
}

impl Message for ToLog {}

/// What the log role tells the core.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum FromLog {
    /// Every event up to `seq` is on disk (synced); the core forgets them.
    Written {
        /// The last event written.
        seq: u64,
    },
}

impl Message for FromLog {}

/// The log role's side of its channel.
pub type LogRoleChannel = super::Channel<FromRole<FromLog>, ToRole<LogConfig, ToLog>>;
