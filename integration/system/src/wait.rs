//! Polling with a deadline instead of fixed sleeps.

use std::fmt::Display;
use std::thread;
use std::time::{Duration, Instant};

/// Deadline for things that happen at once (a tender starting, a tap
/// appearing, an exit being handled).
pub const SHORT: Duration = Duration::from_secs(10);

/// Deadline for things that take a while by design (back-off delays,
/// several restarts in a row).
pub const LONG: Duration = Duration::from_secs(30);

/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(20);

/// Polls `probe` until it returns `Some`, and returns that.
///
/// # Panics
///
/// After `timeout`, naming `what`.
pub fn wait_for<T>(
    what: impl Display,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(POLL);
    }
}

/// Polls `condition` until it holds.
///
/// # Panics
///
/// After `timeout`, naming `what`.
pub fn eventually(what: impl Display, timeout: Duration, mut condition: impl FnMut() -> bool) {
    wait_for(what, timeout, || condition().then_some(()))
}
