//! Certificate extension decoder: any bytes yield a command or a typed
//! error, never a panic; the canonical encoding is a fixed point.
#![no_main]

use albatross::wire::{decode_cert_command, encode_cert_command};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(command) = decode_cert_command(data) {
        let bytes = encode_cert_command(&command);
        let again = decode_cert_command(&bytes).expect("canonical encoding decodes");
        assert_eq!(encode_cert_command(&again), bytes);
    }
});
