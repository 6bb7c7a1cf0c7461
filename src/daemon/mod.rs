//! The privileged core: the daemon's state machine, its persistence, the
//! `vmmd.sock` server and the restart logic. Every system call goes
//! through [`crate::sys`].

pub mod store;
