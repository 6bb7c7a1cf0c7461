//! The privileged core: the daemon's state machine, its persistence, the
//! `vmmd.sock` server and the restart logic. Every system call goes
//! through [`crate::sys`].

pub mod blocks;
pub mod core;
pub mod image;
#[cfg(target_os = "linux")]
pub mod run;
pub mod server;
pub mod store;
pub mod tenders;
