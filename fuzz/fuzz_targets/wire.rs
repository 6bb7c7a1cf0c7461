//! Wire message decoder: any bytes yield a message or a typed error, never
//! a panic; whatever decodes re-encodes to a canonical form that decodes
//! and re-encodes to the same bytes (SET OF order may change once, §4.1).
#![no_main]

use albatross::wire::{decode_wire, encode_wire};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(wire) = decode_wire(data) {
        // Old info replies with several cpuids cannot be encoded, by design.
        if let Ok(bytes) = encode_wire(&wire) {
            let again = decode_wire(&bytes).expect("canonical encoding decodes");
            assert_eq!(encode_wire(&again).ok(), Some(bytes));
        }
    }
});
