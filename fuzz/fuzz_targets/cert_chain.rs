//! Certificate chain to command (§15.3): certificates parsed from
//! arbitrary DER, their albatross extensions (policies in intermediates,
//! the command in the leaf) decoded and turned into a name, policies and a
//! command, or a typed error; never a panic.
//!
//! Input: a sequence of certificates, each prefixed by a 2-byte big-endian
//! length, leaf first.
#![no_main]

use albatross::wire::chain_to_command;
use libfuzzer_sys::fuzz_target;
use x509_cert::der::Decode;
use x509_cert::Certificate;

fuzz_target!(|data: &[u8]| {
    let mut chain = Vec::new();
    let mut rest = data;
    while let [hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (cert, next) = tail.split_at(len);
        match Certificate::from_der(cert) {
            Ok(cert) => chain.push(cert),
            Err(_) => return,
        }
        rest = next;
    }
    if let Ok(result) = chain_to_command(&chain) {
        assert!(chain.len() < 10, "chains of 10 or more certificates are refused");
        for (path, _) in &result.policies {
            assert!(result.name.path().is_within(path));
        }
    }
});
