//! The events of the event log: what happened to the daemon, to
//! unikernels, policies and block devices, and who logged in remotely.
//!
//! The core (and the TLS role, for logins) reports events; the log role
//! stores them with their time and serves them. The 1.x log daemon of
//! upstream (spec §18.2) knew a subset of these; `wire::eventlog` writes
//! those in its layouts and the others in new alternatives.

use crate::model::restart::ExitStatus;
use crate::model::{Name, Path, Policy};

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum Event {
    /// The daemon started.
    DaemonStarted {
        /// The daemon's version.
        version: String,
        /// Its process id.
        pid: u32,
    },
    /// The daemon stopped on request.
    DaemonStopped {
        /// Whether it stopped its unikernels (false: they were left
        /// running for the next start to adopt).
        unikernels_stopped: bool,
    },
    /// A command created (or force-created) a unikernel.
    Created {
        /// The unikernel.
        name: Name,
    },
    /// A unikernel's tender started.
    Started {
        /// The unikernel.
        name: Name,
        /// The tender's process id.
        pid: u32,
        /// SHA-256 of the image.
        digest: Vec<u8>,
        /// Its networks: (host bridge, tap).
        taps: Vec<(String, String)>,
        /// Its block devices: (unikernel-side name, host block device).
        blocks: Vec<(String, Name)>,
    },
    /// A unikernel's tender exited.
    Exited {
        /// The unikernel.
        name: Name,
        /// The tender's process id.
        pid: u32,
        /// How it ended.
        status: ExitStatus,
    },
    /// A unikernel is started again after its tender exited, by its fail
    /// behaviour (or without `--name=` after exit 64/124).
    Restarted {
        /// The unikernel.
        name: Name,
        /// How many times it was restarted, this one included.
        restarts: u64,
    },
    /// A unikernel could not be started; it waits for another attempt.
    StartFailed {
        /// The unikernel.
        name: Name,
        /// Why.
        reason: String,
    },
    /// A command destroyed a unikernel.
    Destroyed {
        /// The unikernel.
        name: Name,
    },
    /// A policy was added or replaced.
    PolicyAdded {
        /// Its path.
        path: Path,
        /// The new policy.
        policy: Policy,
    },
    /// A policy was removed.
    PolicyRemoved {
        /// Its path.
        path: Path,
    },
    /// A block device was created.
    BlockAdded {
        /// The device.
        name: Name,
        /// Its size in MB.
        size: i64,
    },
    /// A block device's content was replaced (an upload).
    BlockSet {
        /// The device.
        name: Name,
    },
    /// A block device was removed.
    BlockRemoved {
        /// The device.
        name: Name,
    },
    /// A client connected over TLS.
    Login {
        /// The administrative domain (or unikernel) of its certificate;
        /// the root when the certificate could not be read.
        name: Name,
        /// Where it came from: IP address and port, or `inetd`.
        peer: String,
        /// The command its certificate carries, as text (empty when the
        /// certificate could not be read).
        command: String,
        /// `None` when the command was forwarded, else why it was refused.
        refused: Option<String>,
    },
    /// The event log was reopened (SIGHUP, for log rotation).
    Reopened,
}

impl Event {
    /// The name the event is about: a subscriber to a path sees the
    /// events at or below it. Daemon-wide events belong to the root.
    pub fn name(&self) -> Name {
        match self {
            Event::DaemonStarted { .. } | Event::DaemonStopped { .. } | Event::Reopened => {
                Name::root()
            }
            Event::PolicyAdded { path, .. } | Event::PolicyRemoved { path } => {
                Name::of_path(path.clone())
            }
            Event::Created { name }
            | Event::Started { name, .. }
            | Event::Exited { name, .. }
            | Event::Restarted { name, .. }
            | Event::StartFailed { name, .. }
            | Event::Destroyed { name }
            | Event::BlockAdded { name, .. }
            | Event::BlockSet { name }
            | Event::BlockRemoved { name }
            | Event::Login { name, .. } => name.clone(),
        }
    }
}
