//! albatross-rs: an orchestrator for MirageOS/Solo5 unikernels that speaks
//! upstream albatross' wire version 5.
//!
//! The crate is layered the way the program is: [`model`] is the pure
//! model (names, policies, configurations, resource accounting), [`wire`]
//! the external formats, [`solo5`] reads unikernel images, [`sys`] holds
//! every system call of the privileged daemon behind traits, [`daemon`] is
//! the privileged core, and [`cli`] the command line that dispatches to the
//! client and the daemon roles.

pub mod cli;
pub mod daemon;
pub mod ipc;
pub mod logging;
pub mod model;
pub mod paths;
pub mod roles;
pub mod solo5;
pub mod sys;
pub mod wire;
