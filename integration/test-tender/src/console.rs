//! The guest console: fd 1, unbuffered, one write per console call
//! (`solo5-tender.md` §6), and the Solo5 runtime's log levels.

use std::io::{self, Write};
use std::sync::Arc;
use std::thread;

use signal_hook::consts::SIGPIPE;

use crate::personality::Personality;

/// Solo5's log levels, set by a leading `--solo5:LEVEL` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// `--solo5:quiet`: no `Solo5:` line at all.
    Quiet,
    /// `--solo5:error`: aborts only.
    Error,
    /// `--solo5:warn`.
    Warn,
    /// The default: banner and exit line.
    Info,
    /// `--solo5:debug`.
    Debug,
}

/// What the Solo5 runtime does to the command line before the application
/// sees it (§3.1): leading `--solo5:LEVEL` tokens set the log level and are
/// removed, as is leading whitespace. Tokens later on are left alone.
pub fn strip_runtime_options(cmdline: &str) -> (LogLevel, &str) {
    let mut level = LogLevel::Info;
    let mut rest = cmdline.trim_start_matches(' ');
    loop {
        let (token, after) = rest.split_once(' ').unwrap_or((rest, ""));
        level = match token {
            "--solo5:quiet" => LogLevel::Quiet,
            "--solo5:error" => LogLevel::Error,
            "--solo5:warn" => LogLevel::Warn,
            "--solo5:info" => LogLevel::Info,
            "--solo5:debug" => LogLevel::Debug,
            _ => return (level, rest),
        };
        rest = after.trim_start_matches(' ');
    }
}

/// The guest's console.
#[derive(Debug, Clone)]
pub struct Console {
    level: LogLevel,
    personality: Personality,
    prog: Arc<str>,
}

impl Console {
    /// A console logging at `level` for a guest of `personality`, whose
    /// tender is called `prog`.
    pub fn new(level: LogLevel, personality: Personality, prog: Arc<str>) -> Console {
        Console {
            level,
            personality,
            prog,
        }
    }

    /// The tender's name (argv\[0\]'s base name), which prefixes its
    /// messages on stderr.
    pub fn prog(&self) -> &str {
        &self.prog
    }

    /// A runtime log line (`Solo5: …`), shown if `level` is enabled.
    pub fn log(&self, level: LogLevel, line: &str) {
        if level <= self.level {
            self.puts(&format!("{line}\n"));
        }
    }

    /// Guest output, written with one write(2), as `solo5_console_write`.
    pub fn puts(&self, text: &str) {
        // Stdout's line buffer passes a write ending in a newline straight
        // through; the flush covers text without one.
        let mut out = io::stdout().lock();
        let result = out.write_all(text.as_bytes()).and_then(|()| out.flush());
        if let Err(err) = result {
            self.console_failed(&err);
        }
    }

    /// What the real tenders do when the console write fails (§6).
    fn console_failed(&self, err: &io::Error) {
        if err.kind() == io::ErrorKind::BrokenPipe {
            // The real tenders have SIGPIPE at its default action and die of
            // it; Rust's runtime ignores SIGPIPE, so do its default here.
            let _ = signal_hook::low_level::emulate_default_handler(SIGPIPE);
        }
        match self.personality {
            // spt drops the output silently and carries on.
            Personality::Spt => {}
            // hvt fails an assertion, its seccomp filter kills the aborting
            // thread, and the process hangs until SIGKILL.
            Personality::Hvt => {
                eprintln!(
                    "{}: hvt/hvt_core.c:142: hypercall_puts: Assertion `rc >= 0' failed.",
                    self.prog
                );
                loop {
                    thread::park();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_options_only_at_the_start() {
        assert_eq!(
            strip_runtime_options("Hello_Solo5"),
            (LogLevel::Info, "Hello_Solo5")
        );
        assert_eq!(
            strip_runtime_options("--solo5:quiet"),
            (LogLevel::Quiet, "")
        );
        assert_eq!(
            strip_runtime_options("  --solo5:debug --solo5:error  a b"),
            (LogLevel::Error, "a b")
        );
        assert_eq!(
            strip_runtime_options("Hello_Solo5 --solo5:quiet"),
            (LogLevel::Info, "Hello_Solo5 --solo5:quiet")
        );
        assert_eq!(
            strip_runtime_options("--solo5:loud x"),
            (LogLevel::Info, "--solo5:loud x")
        );
    }
}
