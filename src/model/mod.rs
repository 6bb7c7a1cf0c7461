//! The pure model: names, time, policies, unikernel configurations and the
//! resource accounting that enforces policies. Nothing here does I/O.

pub mod config;
pub mod name;
pub mod policy;
pub mod time;

pub use config::{
    BlockInfo, BlockSpec, FailBehaviour, NetInfo, NetSpec, Typ, UnikernelArguments,
    UnikernelConfig, UnikernelInfo,
};
pub use name::{Label, Name, NameError, Path};
pub use policy::Policy;
pub use time::Timestamp;
