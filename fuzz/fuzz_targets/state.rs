//! State file decoder: any bytes yield a state or a typed error, never a
//! panic; whatever decodes is written in a canonical form that is a fixed
//! point of reading and writing.
#![no_main]

use albatross::wire::state::{decode_state, encode_state};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(state) = decode_state(data) {
        let bytes = encode_state(&state.unikernels, &state.policies);
        let again = decode_state(&bytes).expect("canonical state decodes");
        assert_eq!(encode_state(&again.unikernels, &again.policies), bytes);
    }
});
