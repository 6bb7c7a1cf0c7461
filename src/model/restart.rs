//! What happens when a unikernel's tender exits (§10.6, §23.5): retry
//! without `--name`, restart, or stop, and how long to wait before a
//! restart so that a crash loop does not become a restart storm.

use std::fmt;
use std::time::Duration;

use super::config::{FailBehaviour, UnikernelArguments};

/// How a tender process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum ExitStatus {
    /// It exited with this code.
    Exit(i32),
    /// A signal killed it.
    Signal(i32),
    /// A signal stopped it.
    Stopped(i32),
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Exit(code) => write!(f, "exit {code}"),
            ExitStatus::Signal(sig) => write!(f, "signal {sig}"),
            ExitStatus::Stopped(sig) => write!(f, "stopped {sig}"),
        }
    }
}

/// Exit codes that never cause a restart: 1 (Solo5 or tender error),
/// 60–64 (MirageOS argument and start-up errors), 123–125 (cmdliner's
/// reserved codes, §23.5).
pub fn is_never_restart_code(code: i32) -> bool {
    matches!(code, 1 | 60..=64 | 123..=125)
}

/// Exit codes meaning "the image does not understand `--name`": MirageOS
/// before 4.10 exits 64 on an unknown argument, cmdliner-based images 124.
pub fn is_unknown_argument_code(code: i32) -> bool {
    matches!(code, 64 | 124)
}

/// Whether the argument vector asks for help or version output, after
/// which a unikernel exits 0 and must not be restarted in a loop (§23.5).
fn asks_for_help(args: &UnikernelArguments) -> bool {
    args.argv
        .iter()
        .flatten()
        .any(|a| a == "--help" || a == "--version" || a.starts_with("--help="))
}

/// The decision after an exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterExit {
    /// Start again with `add-name` turned off, and persist that (§10.6 step 2).
    RetryWithoutName,
    /// Start again with the same configuration.
    Restart,
    /// Leave it stopped.
    Stop,
}

/// Decides what to do when a unikernel configured with `args` exits with
/// `status` (§10.6, with the 2.8 rules of §23.5).
pub fn after_exit(args: &UnikernelArguments, status: ExitStatus) -> AfterExit {
    let code = match status {
        ExitStatus::Exit(code) => code,
        ExitStatus::Signal(_) | ExitStatus::Stopped(_) => return AfterExit::Stop,
    };
    if args.add_name && is_unknown_argument_code(code) {
        return AfterExit::RetryWithoutName;
    }
    match &args.fail_behaviour {
        FailBehaviour::Quit => AfterExit::Stop,
        FailBehaviour::Restart(_) if is_never_restart_code(code) || asks_for_help(args) => {
            AfterExit::Stop
        }
        FailBehaviour::Restart(codes) if codes.is_empty() => AfterExit::Restart,
        FailBehaviour::Restart(codes) if codes.contains(&i64::from(code)) => AfterExit::Restart,
        FailBehaviour::Restart(_) => AfterExit::Stop,
    }
}

/// Exponential back-off for restarts of a unikernel that keeps dying.
///
/// The first restart after a run that lasted at least [`Backoff::STABLE`]
/// is immediate, as upstream's; each further quick failure doubles the
/// delay from [`Backoff::FIRST`] up to [`Backoff::CEILING`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backoff {
    /// Quick failures in a row.
    pub consecutive: u32,
    /// Restarts since the unikernel was created.
    pub restarts: u64,
}

impl Backoff {
    /// A run at least this long resets the back-off.
    pub const STABLE: Duration = Duration::from_secs(60);
    /// Delay after the second quick failure in a row.
    pub const FIRST: Duration = Duration::from_secs(1);
    /// The longest delay.
    pub const CEILING: Duration = Duration::from_secs(300);

    /// Records a restart after a run of `ran` and returns how long to wait
    /// before starting again.
    pub fn next_delay(&mut self, ran: Duration) -> Duration {
        if ran >= Self::STABLE {
            self.consecutive = 0;
        }
        let delay = match self.consecutive {
            0 => Duration::ZERO,
            n => Self::FIRST
                .saturating_mul(1u32.checked_shl(n - 1).unwrap_or(u32::MAX))
                .min(Self::CEILING),
        };
        self.consecutive = self.consecutive.saturating_add(1);
        self.restarts = self.restarts.saturating_add(1);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(fail: FailBehaviour, add_name: bool, argv: Option<Vec<&str>>) -> UnikernelArguments {
        UnikernelArguments {
            fail_behaviour: fail,
            startup: None,
            add_name,
            cpuids: vec![0],
            memory: 32,
            blocks: vec![],
            bridges: vec![],
            argv: argv.map(|v| v.into_iter().map(String::from).collect()),
            cpus: 1,
            linux_boot_partition: None,
        }
    }

    #[test]
    fn never_restart_classes() {
        let any = args(FailBehaviour::Restart(vec![]), false, None);
        for code in [1, 60, 61, 62, 63, 64, 123, 124, 125] {
            assert_eq!(
                after_exit(&any, ExitStatus::Exit(code)),
                AfterExit::Stop,
                "exit {code}"
            );
        }
        for code in [0, 2, 42, 126, 255] {
            assert_eq!(
                after_exit(&any, ExitStatus::Exit(code)),
                AfterExit::Restart,
                "exit {code}"
            );
        }
        assert_eq!(after_exit(&any, ExitStatus::Signal(9)), AfterExit::Stop);
        assert_eq!(after_exit(&any, ExitStatus::Stopped(19)), AfterExit::Stop);
    }

    #[test]
    fn exit_code_sets_and_quit() {
        let some = args(FailBehaviour::Restart(vec![0, 2]), false, None);
        assert_eq!(after_exit(&some, ExitStatus::Exit(2)), AfterExit::Restart);
        assert_eq!(after_exit(&some, ExitStatus::Exit(3)), AfterExit::Stop);
        let quit = args(FailBehaviour::Quit, false, None);
        assert_eq!(after_exit(&quit, ExitStatus::Exit(0)), AfterExit::Stop);
    }

    #[test]
    fn name_retry_comes_first() {
        let quit = args(FailBehaviour::Quit, true, None);
        assert_eq!(
            after_exit(&quit, ExitStatus::Exit(64)),
            AfterExit::RetryWithoutName
        );
        assert_eq!(
            after_exit(&quit, ExitStatus::Exit(124)),
            AfterExit::RetryWithoutName
        );
        let no_name = args(FailBehaviour::Restart(vec![]), false, None);
        assert_eq!(after_exit(&no_name, ExitStatus::Exit(124)), AfterExit::Stop);
    }

    #[test]
    fn help_and_version_do_not_loop() {
        for argv in [
            vec!["--help"],
            vec!["--version"],
            vec!["-l", "--help=plain"],
        ] {
            let a = args(FailBehaviour::Restart(vec![]), false, Some(argv));
            assert_eq!(after_exit(&a, ExitStatus::Exit(0)), AfterExit::Stop);
        }
    }

    #[test]
    fn backoff_grows_and_resets() {
        let mut b = Backoff::default();
        let quick = Duration::from_millis(10);
        let delays: Vec<_> = (0..12).map(|_| b.next_delay(quick).as_secs()).collect();
        assert_eq!(delays, [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(b.restarts, 12);
        assert_eq!(b.next_delay(Backoff::STABLE), Duration::ZERO);
        assert_eq!(b.next_delay(quick), Backoff::FIRST);
    }
}
