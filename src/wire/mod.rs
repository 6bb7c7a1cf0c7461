//! The external formats, byte for byte as upstream's wire version 5: the
//! DER profile, messages, framing, the certificate extension and the state
//! file. Every decoder here takes untrusted bytes and returns a typed error
//! instead of panicking.

pub mod cert_ext;
pub mod der;
pub mod endpoint;
pub mod frame;
mod layouts;
mod message;
pub mod state;
pub mod types;

pub use self::der::DecodeError;
pub use cert_ext::{
    chain_to_command, decode_cert_command, encode_cert_command, CertError, ChainCommand,
};
pub use layouts::EncodeError;
pub use message::{decode_wire, encode_wire};
pub use types::*;
