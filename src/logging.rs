//! A small `log` backend for the daemons: one line per record on stderr,
//! with `<N>` syslog priority prefixes when stderr goes to journald (known
//! trap 16) and a time stamp otherwise.

use std::io::Write;

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::model::Timestamp;

struct Logger {
    program: &'static str,
    journald: bool,
}

fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = if self.journald {
            format!("<{}>{}\n", priority(record.level()), record.args())
        } else {
            format!(
                "{} {}: [{}] {}\n",
                Timestamp::now().to_rfc3339(),
                self.program,
                record.level(),
                record.args()
            )
        };
        // One write per line keeps concurrent lines whole; a failing stderr
        // has nowhere to report to.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Installs the logger for `program` at `level`. Later calls do nothing.
pub fn init(program: &'static str, level: LevelFilter) {
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    if log::set_boxed_logger(Box::new(Logger { program, journald })).is_ok() {
        log::set_max_level(level);
    }
}
