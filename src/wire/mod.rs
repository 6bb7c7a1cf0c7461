//! The external formats, byte for byte as upstream's wire version 5: the
//! DER profile, messages, framing, the certificate extension and the state
//! file. Every decoder here takes untrusted bytes and returns a typed error
//! instead of panicking.

pub mod der;
pub mod frame;
pub mod endpoint;
pub mod types;

pub use self::der::DecodeError;
pub use types::*;
