//! A network namespace per test, deleted when dropped (also when the test
//! panics), with bridges and a process that lets the test see the
//! namespace's `/sys`.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Prefix of the namespaces the harness makes: `alb-it-<pid>-<n>`.
const PREFIX: &str = "alb-it-";

/// A network namespace made for one test.
#[derive(Debug)]
pub struct Netns {
    /// Its name (`ip netns` name).
    pub name: String,
    /// A process that only sleeps inside the namespace: through its
    /// `/proc/PID/root` the test sees the `/sys` that `ip netns exec`
    /// mounted for the namespace.
    anchor: Child,
}

impl Netns {
    /// Creates a fresh namespace with loopback up. Namespaces left by
    /// test processes that were killed are deleted first.
    pub fn create() -> Netns {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        remove_stale();
        let name = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::SeqCst)
        );
        sh(Command::new("ip").args(["netns", "add", &name]));
        let anchor = Command::new("ip")
            .args(["netns", "exec", &name, "sleep", "infinity"])
            .stdin(Stdio::null())
            .spawn()
            .expect("ip netns exec sleep");
        let netns = Netns { name, anchor };
        netns.ip(&["link", "set", "lo", "up"]);
        netns
    }

    /// Runs `ip -n NS ARGS…`, which must succeed.
    pub fn ip(&self, args: &[&str]) {
        sh(Command::new("ip").arg("-n").arg(&self.name).args(args));
    }

    /// Stdout of `ip -n NS ARGS…`.
    pub fn ip_output(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .output()
            .expect("ip");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Adds bridge `name` with address `cidr` (e.g. `10.0.1.1/24`), up.
    pub fn bridge(&self, name: &str, cidr: &str) {
        self.ip(&["link", "add", name, "type", "bridge"]);
        self.ip(&["addr", "add", cidr, "dev", name]);
        self.ip(&["link", "set", name, "up"]);
    }

    /// A command running `program` inside the namespace
    /// (`ip netns exec NS program`, which execs it in place, so the child's
    /// pid is the program's).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// The namespace's `/sys/class/net`, as seen by its processes.
    pub fn sys_class_net(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root/sys/class/net", self.anchor.id()))
    }

    /// Whether one `ping` of `addr` from inside the namespace is answered
    /// within 2 s.
    pub fn ping(&self, addr: &str) -> bool {
        self.command("ping")
            .args(["-c1", "-W2", "-q", addr])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The link-layer address of neighbour `addr`, if the namespace knows
    /// it (`ip neigh show ADDR`).
    pub fn neighbour_mac(&self, addr: &str) -> Option<String> {
        let out = self.ip_output(&["neigh", "show", addr]);
        let mut words = out.split_whitespace();
        words.find(|w| *w == "lladdr")?;
        words.next().map(str::to_string)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = self.anchor.kill();
        let _ = self.anchor.wait();
        // Taps and bridges go with the namespace.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Deletes `alb-it-<pid>-<n>` namespaces whose test process is gone.
fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// Runs a command that must succeed.
fn sh(command: &mut Command) {
    let out = command.output().expect("spawn");
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
