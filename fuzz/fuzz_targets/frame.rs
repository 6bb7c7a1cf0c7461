//! Frame reader: any byte stream yields frames, end of stream or a typed
//! error, never a panic or an allocation beyond the limit.
#![no_main]

use albatross::wire::frame::{read_frame, FrameError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut r = data;
    loop {
        match read_frame(&mut r, 4096) {
            Ok(Some(body)) => assert!(body.len() <= 4096),
            Ok(None) | Err(FrameError::Truncated { .. }) | Err(FrameError::TooLarge { .. }) => break,
            Err(e) => panic!("unexpected error {e}"),
        }
    }
});
