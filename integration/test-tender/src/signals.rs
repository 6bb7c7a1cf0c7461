//! Signal behaviour per tender (`solo5-tender.md` §4): solo5-hvt catches
//! SIGINT and SIGTERM (`Exiting on signal N`, exit 1); solo5-spt installs
//! no handler, so every signal has its inherited disposition. Both die of
//! SIGPIPE, which Rust's runtime ignores, so it is caught here and its
//! default action done by hand.

use std::io;
use std::process;
use std::sync::Arc;
use std::thread;

pub use signal_hook::consts::signal::SIGSEGV;
use signal_hook::consts::signal::{
    SIGABRT, SIGALRM, SIGBUS, SIGCHLD, SIGCONT, SIGFPE, SIGHUP, SIGILL, SIGINT, SIGKILL, SIGPIPE,
    SIGQUIT, SIGSTOP, SIGSYS, SIGTERM, SIGTRAP, SIGUSR1, SIGUSR2,
};
use signal_hook::iterator::Signals;
use signal_hook::low_level;

use crate::personality::Personality;

/// Signal names the guest's `--test-signal` accepts (with or without `SIG`).
const NAMES: [(&str, i32); 19] = [
    ("HUP", SIGHUP),
    ("INT", SIGINT),
    ("QUIT", SIGQUIT),
    ("ILL", SIGILL),
    ("TRAP", SIGTRAP),
    ("ABRT", SIGABRT),
    ("BUS", SIGBUS),
    ("FPE", SIGFPE),
    ("KILL", SIGKILL),
    ("USR1", SIGUSR1),
    ("SEGV", SIGSEGV),
    ("USR2", SIGUSR2),
    ("PIPE", SIGPIPE),
    ("ALRM", SIGALRM),
    ("TERM", SIGTERM),
    ("CHLD", SIGCHLD),
    ("CONT", SIGCONT),
    ("STOP", SIGSTOP),
    ("SYS", SIGSYS),
];

/// A signal by name (`SEGV`, `SIGSEGV`, any case) or number.
pub fn parse_signal(text: &str) -> Option<i32> {
    if let Ok(number) = text.parse::<i32>() {
        return (1..=64).contains(&number).then_some(number);
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, number)| number)
}

/// The signals the tender handles itself.
fn caught(personality: Personality) -> &'static [i32] {
    match personality {
        Personality::Hvt => &[SIGINT, SIGTERM, SIGPIPE],
        Personality::Spt => &[SIGPIPE],
    }
}

/// Installs the tender's handlers: a thread that waits for the caught
/// signals. A signal blocked at exec stays blocked, as with the real ones.
pub fn install(personality: Personality, prog: Arc<str>) -> io::Result<()> {
    let mut signals = Signals::new(caught(personality))?;
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if signal == SIGPIPE {
                    // Default action: die of it.
                    let _ = low_level::emulate_default_handler(SIGPIPE);
                } else {
                    eprintln!("{prog}: Exiting on signal {signal}");
                    process::exit(1);
                }
            }
        })?;
    Ok(())
}

/// Sends `signal` to the tender itself, as a guest fault or a stray signal
/// would: the tender's handler runs if it has one, otherwise the default
/// action (even where Rust's runtime installed a handler, e.g. SIGSEGV).
pub fn raise_on_self(signal: i32, personality: Personality) {
    if signal != SIGPIPE && caught(personality).contains(&signal) {
        let _ = low_level::raise(signal);
    } else {
        let _ = low_level::emulate_default_handler(signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names() {
        assert_eq!(parse_signal("SEGV"), Some(SIGSEGV));
        assert_eq!(parse_signal("sigterm"), Some(SIGTERM));
        assert_eq!(parse_signal("9"), Some(SIGKILL));
        assert_eq!(parse_signal("0"), None);
        assert_eq!(parse_signal("NOPE"), None);
    }
}
