//! The daemon's unprivileged roles. Each runs in a process of its own,
//! confined (see `docs/privsep.md`), and talks to the core over its
//! channel ([`crate::ipc`]).
//!
//! A role's code sees the core only through a [`CoreLink`]: the role's own
//! messages in, its own replies out. Messages every role understands (a new
//! standard error after SIGHUP) are handled here.

use std::os::fd::{BorrowedFd, OwnedFd};

use crate::ipc::messages::{FromRole, ToRole};
use crate::ipc::{AsyncChannel, IpcError, Message};

/// A role's connection to the core, after start-up: `M` is what the core
/// sends the role, `R` what the role sends back.
#[derive(Debug)]
pub struct CoreLink<C, M, R> {
    channel: AsyncChannel<FromRole<R>, ToRole<C, M>>,
}

impl<C, M, R> CoreLink<C, M, R>
where
    C: bincode::Encode + bincode::Decode<()>,
    M: Message,
    R: Message,
{
    /// A link over an established channel.
    pub fn new(channel: AsyncChannel<FromRole<R>, ToRole<C, M>>) -> CoreLink<C, M, R> {
        CoreLink { channel }
    }

    /// The next message of the role's own kind, with its descriptors.
    /// [`IpcError::Closed`] means the core is gone: the role should end.
    pub async fn recv(&self) -> Result<(M, Vec<OwnedFd>), IpcError> {
        loop {
            match self.channel.recv().await? {
                (ToRole::Role(msg), fds) => return Ok((msg, fds)),
                (ToRole::Stderr, fds) => {
                    if let Some(fd) = fds.first() {
                        // Nothing to report to if this fails: stderr is what
                        // would carry the report.
                        let _ = rustix::stdio::dup2_stderr(fd);
                    }
                }
                (ToRole::Init { .. }, _) => {
                    return Err(IpcError::Codec("a second Init".to_string()))
                }
            }
        }
    }

    /// Sends a message of the role's own kind.
    pub async fn send(&self, msg: R, fds: &[BorrowedFd<'_>]) -> Result<(), IpcError> {
        self.channel.send(&FromRole::Role(msg), fds).await
    }
}
