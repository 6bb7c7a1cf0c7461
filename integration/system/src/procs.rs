//! Processes: commands with a time limit, and tender processes found in
//! `/proc`.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// What a finished command produced.
#[derive(Clone, PartialEq, Eq)]
pub struct Output {
    /// Exit code (`-signal` if a signal killed it).
    pub code: i32,
    /// Everything on stdout.
    pub stdout: String,
    /// Everything on stderr.
    pub stderr: String,
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}---",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `command` with stdin closed and output captured.
///
/// # Panics
///
/// If it does not finish within `timeout` (it is killed then).
pub fn run_with_timeout(command: &mut Command, timeout: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    let readers = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .map(|pipe| {
        thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not finish within {timeout:?}");
        }
        thread::sleep(Duration::from_millis(5));
    };
    let [stdout, stderr] = readers.map(|r| r.join().expect("reader thread"));
    let code = status.code().unwrap_or_else(|| {
        use std::os::unix::process::ExitStatusExt;
        -status.signal().unwrap_or(0)
    });
    Output {
        code,
        stdout,
        stderr,
    }
}

/// A tender process as `/proc` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenderProc {
    /// Process id.
    pub pid: u32,
    /// Its command line, `argv[0]` first.
    pub cmdline: Vec<String>,
    /// `Cpus_allowed_list` of `/proc/PID/status` (e.g. `1`, `0-1`).
    pub cpus_allowed: String,
    /// Open file descriptors and what they point to.
    pub fds: BTreeMap<u32, String>,
}

/// The processes whose parent is `parent` and whose executable is `exe`.
/// Processes that end while being read are left out.
pub(crate) fn children_running(parent: u32, exe: &Path) -> Vec<TenderProc> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found: Vec<TenderProc> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| read_process(pid, parent, exe))
        .collect();
    found.sort_by_key(|t| t.pid);
    found
}

fn read_process(pid: u32, parent: u32, exe: &Path) -> Option<TenderProc> {
    let dir = format!("/proc/{pid}");
    let status = fs::read_to_string(format!("{dir}/status")).ok()?;
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_string())
    };
    if field("PPid:")?.parse::<u32>().ok()? != parent {
        return None;
    }
    if fs::read_link(format!("{dir}/exe")).ok()? != exe {
        return None;
    }
    let cmdline = fs::read(format!("{dir}/cmdline")).ok()?;
    let cmdline = cmdline
        .split(|b| *b == 0)
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect::<Vec<_>>();
    let cmdline = match cmdline.split_last() {
        // The command line ends with a NUL, which leaves an empty word.
        Some((last, rest)) if last.is_empty() => rest.to_vec(),
        _ => cmdline,
    };
    Some(TenderProc {
        pid,
        cmdline,
        cpus_allowed: field("Cpus_allowed_list:")?,
        fds: open_fds(pid)?,
    })
}

/// The open file descriptors of process `pid` and what they point to.
pub fn open_fds(pid: u32) -> Option<BTreeMap<u32, String>> {
    let mut fds = BTreeMap::new();
    for entry in fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|f| f.parse().ok()) else {
            continue;
        };
        if let Ok(target) = fs::read_link(entry.path()) {
            fds.insert(fd, target.display().to_string());
        }
    }
    Some(fds)
}
