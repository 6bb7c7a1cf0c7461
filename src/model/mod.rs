//! The pure model: names, time, policies, unikernel configurations and the
//! resource accounting that enforces policies. Nothing here does I/O.

pub mod config;
pub mod event;
pub mod name;
pub mod policy;
pub mod resources;
pub mod restart;
pub mod tender;
pub mod time;

pub use config::{
    BlockInfo, BlockSpec, FailBehaviour, NetInfo, NetSpec, Typ, UnikernelArguments,
    UnikernelConfig, UnikernelInfo,
};
pub use name::{Label, Name, NameError, Path};
pub use policy::{ExceedsPolicy, Policy, UnusablePolicy, UNLIMITED_UNIKERNELS};
pub use resources::{
    block_bytes, BlockAddError, BlockDevice, BlockSizeError, BlockUseError, PolicyError, Resources,
    StartError, UnikernelError, UnikernelUsage, UnknownPolicy,
};
pub use time::Timestamp;
