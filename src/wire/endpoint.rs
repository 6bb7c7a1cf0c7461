//! Which daemon serves a command and how its answer is read (§16.2,
//! "endpoint" table). Shared by the client and the TLS endpoint.

use super::types::{BlockCmd, Command, ConsoleCmd, StatsCmd};
use crate::paths::Socket;

/// How many messages answer a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// One reply ends the exchange.
    Single,
    /// Replies and data keep coming until the peer closes.
    Read,
    /// A reply, then block data chunks up to a block end-of-file.
    Dump,
}

/// The daemon socket and the reading mode of `command`.
pub fn endpoint(command: &Command) -> (Socket, ReadMode) {
    match command {
        Command::Unikernel(_) | Command::Policy(_) => (Socket::Vmmd, ReadMode::Single),
        Command::Block(BlockCmd::Dump(_)) => (Socket::Vmmd, ReadMode::Dump),
        Command::Block(_) => (Socket::Vmmd, ReadMode::Single),
        Command::Stats(StatsCmd::Subscribe) => (Socket::Stats, ReadMode::Read),
        Command::Stats(_) => (Socket::Stats, ReadMode::Single),
        Command::Console(ConsoleCmd::ListInactive) => (Socket::Console, ReadMode::Single),
        Command::Console(_) => (Socket::Console, ReadMode::Read),
    }
}
