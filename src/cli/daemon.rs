//! Command lines of the daemon roles. The roles themselves are not part of
//! this version: their options are parsed and validated (so `--help` and
//! configuration errors behave), then the program exits with status 1.

// The option fields are read by the roles, which later versions add.
#![allow(dead_code)]

use std::path::PathBuf;

use argh::{ArgsInfo, FromArgs};

use super::common::LOGGING;
use super::error::CliError;
use super::values::Level;
use super::values::{
    parse_dir, parse_file, parse_influx, parse_int, parse_name, parse_path, HostPort,
};
use crate::model::{Name, Path};

/// the privileged core: runs unikernels, keeps policies, block devices and
/// the state file, listens on <tmpdir>/util/vmmd.sock
#[derive(FromArgs, ArgsInfo)]
pub struct DaemonArgs {
    /// runtime directory (default: /run/albatross on Linux,
    /// /var/run/albatross elsewhere)
    #[argh(option, arg_name = "DIR", from_str_fn(parse_dir))]
    tmpdir: Option<PathBuf>,

    /// persistent directory with the state file and block devices
    /// (default: /var/lib/albatross on Linux, /var/db/albatross elsewhere)
    #[argh(option, arg_name = "DIR", from_str_fn(parse_dir))]
    dbdir: Option<PathBuf>,

    /// take the listening socket from systemd (LISTEN_FDS)
    #[argh(switch)]
    systemd_socket_activation: bool,

    /// report own metrics in influx line protocol to IP[:PORT] (default
    /// port 8094)
    #[argh(option, arg_name = "IP[:PORT]", from_str_fn(parse_influx))]
    influx: Option<HostPort>,

    /// pass the full name (with its path) to --name= of unikernels
    #[argh(switch)]
    no_drop_path: bool,

    /// exempt block devices below /dev/zvol from accounting for unikernels
    /// at this path (bhyve)
    #[argh(option, arg_name = "PATH", from_str_fn(parse_path))]
    allow_zvol_for: Option<Path>,

    /// directory searched first for the solo5-hvt and solo5-spt tenders
    /// (then the persistent directory, then PATH)
    #[argh(option, arg_name = "DIR", from_str_fn(parse_dir))]
    tender_dir: Option<PathBuf>,
}

/// the console daemon: keeps the last lines of every unikernel console and
/// serves subscribers on <tmpdir>/util/console.sock
#[derive(FromArgs, ArgsInfo)]
pub struct ConsoleArgs {
    /// runtime directory (default: /run/albatross on Linux,
    /// /var/run/albatross elsewhere)
    #[argh(option, arg_name = "DIR", from_str_fn(parse_dir))]
    tmpdir: Option<PathBuf>,

    /// take the listening socket from systemd (LISTEN_FDS)
    #[argh(switch)]
    systemd_socket_activation: bool,

    /// report own metrics in influx line protocol to IP[:PORT] (default
    /// port 8094)
    #[argh(option, arg_name = "IP[:PORT]", from_str_fn(parse_influx))]
    influx: Option<HostPort>,

    /// subscribers per unikernel console, at least 1 (default: 5)
    #[argh(option, arg_name = "N", from_str_fn(parse_positive), default = "5")]
    max_subscribers: i64,
}

/// the statistics daemon: gathers statistics of running unikernels and
/// serves subscribers on <tmpdir>/util/stat.sock
#[derive(FromArgs, ArgsInfo)]
pub struct StatsArgs {
    /// runtime directory (default: /run/albatross on Linux,
    /// /var/run/albatross elsewhere)
    #[argh(option, arg_name = "DIR", from_str_fn(parse_dir))]
    tmpdir: Option<PathBuf>,

    /// take the listening socket from systemd (LISTEN_FDS)
    #[argh(switch)]
    systemd_socket_activation: bool,

    /// report own metrics in influx line protocol to IP[:PORT] (default
    /// port 8094)
    #[argh(option, arg_name = "IP[:PORT]", from_str_fn(parse_influx))]
    influx: Option<HostPort>,

    /// seconds between two samples, at least 1 (default: 10)
    #[argh(
        option,
        arg_name = "SECONDS",
        from_str_fn(parse_positive),
        default = "10"
    )]
    interval: i64,

    /// also gather bhyve's VMM counters (FreeBSD)
    #[argh(switch)]
    gather_bhyve_stats: bool,
}

/// the influx exporter: subscribes to statistics and writes them to an
/// influx (telegraf) listener in line protocol
#[derive(FromArgs, ArgsInfo)]
pub struct InfluxArgs {
    /// the listener, IP[:PORT] (default port 8094)
    #[argh(option, arg_name = "IP[:PORT]", from_str_fn(parse_influx))]
    influx: Option<HostPort>,

    /// the unikernel or path to export (default: all)
    #[argh(
        option,
        short = 'n',
        arg_name = "NAME",
        from_str_fn(parse_name),
        default = "Name::root()"
    )]
    name: Name,

    /// tag measurements with the full name instead of the label
    #[argh(switch)]
    no_drop_path: bool,

    /// runtime directory (default: /run/albatross on Linux,
    /// /var/run/albatross elsewhere)
    #[argh(option, arg_name = "DIR", from_str_fn(parse_dir))]
    tmpdir: Option<PathBuf>,
}

/// the TLS endpoint: authenticates clients by certificate and forwards the
/// command their certificate carries to the daemons
#[derive(FromArgs, ArgsInfo)]
pub struct TlsEndpointArgs {
    /// the CA that client certificates must chain to (exactly one
    /// certificate)
    #[argh(positional, arg_name = "CA", from_str_fn(parse_file))]
    ca: PathBuf,

    /// the server certificate (chain)
    #[argh(positional, arg_name = "CERT", from_str_fn(parse_file))]
    cert: PathBuf,

    /// the server's private key
    #[argh(positional, arg_name = "KEY", from_str_fn(parse_file))]
    key: PathBuf,

    /// address to listen on (default: ::, both IPv6 and IPv4)
    #[argh(option, arg_name = "ADDR")]
    ip: Option<std::net::IpAddr>,

    /// TCP port to listen on (default: 1025)
    #[argh(option, arg_name = "PORT")]
    port: Option<u16>,

    /// take the listening socket from systemd (LISTEN_FDS); excludes --port
    #[argh(switch)]
    systemd_socket_activation: bool,

    /// serve one connection on stdin (inetd); needs --syslog or -q
    #[argh(switch)]
    inetd: bool,

    /// log to syslog
    #[argh(switch)]
    syslog: bool,

    /// runtime directory (default: /run/albatross on Linux,
    /// /var/run/albatross elsewhere)
    #[argh(option, arg_name = "DIR", from_str_fn(parse_dir))]
    tmpdir: Option<PathBuf>,
}

/// the 1.x inetd variant of the TLS endpoint: serves one connection on stdin
#[derive(FromArgs, ArgsInfo)]
pub struct TlsInetdArgs {
    /// the CA that client certificates must chain to
    #[argh(positional, arg_name = "CA", from_str_fn(parse_file))]
    ca: PathBuf,

    /// the server certificate (chain)
    #[argh(positional, arg_name = "CERT", from_str_fn(parse_file))]
    cert: PathBuf,

    /// the server's private key
    #[argh(positional, arg_name = "KEY", from_str_fn(parse_file))]
    key: PathBuf,

    /// runtime directory (default: /run/albatross on Linux,
    /// /var/run/albatross elsewhere)
    #[argh(option, arg_name = "DIR", from_str_fn(parse_dir))]
    tmpdir: Option<PathBuf>,
}

/// the 1.x event log daemon (removed upstream in 1.2.0)
#[derive(FromArgs, ArgsInfo)]
pub struct LogArgs {
    /// the event log file (default: /var/log/albatross)
    #[argh(option, arg_name = "FILE")]
    logfile: Option<PathBuf>,

    /// print the log file and exit
    #[argh(switch)]
    read_only: bool,

    /// take the listening socket from systemd (LISTEN_FDS)
    #[argh(switch)]
    systemd_socket_activation: bool,

    /// report own metrics in influx line protocol to IP[:PORT] (default
    /// port 8094)
    #[argh(option, arg_name = "IP[:PORT]", from_str_fn(parse_influx))]
    influx: Option<HostPort>,

    /// runtime directory (default: /run/albatross on Linux,
    /// /var/run/albatross elsewhere)
    #[argh(option, arg_name = "DIR", from_str_fn(parse_dir))]
    tmpdir: Option<PathBuf>,
}

fn parse_positive(text: &str) -> Result<i64, String> {
    let n = parse_int(text)?;
    if n >= 1 {
        Ok(n)
    } else {
        Err(format!(
            "invalid value '{text}', expected a number of at least 1"
        ))
    }
}

/// A daemon role's command line.
pub trait DaemonRole: FromArgs + ArgsInfo {
    /// Checks across options that argh cannot express.
    fn validate(&self) -> Result<(), CliError> {
        Ok(())
    }

    /// Whether this version runs the role (else it only parses options).
    const IMPLEMENTED: bool = false;

    /// Runs the role, if this version has it.
    fn start(self, _level: Level) -> Option<Result<super::error::Exit, CliError>> {
        None
    }
}

impl DaemonRole for DaemonArgs {
    const IMPLEMENTED: bool = cfg!(target_os = "linux");

    fn validate(&self) -> Result<(), CliError> {
        // Accepted for upstream's service files, but not silently ignored.
        if self.systemd_socket_activation {
            return Err(CliError::NotImplemented(
                "--systemd-socket-activation (the daemon binds its socket itself)".to_string(),
            ));
        }
        if self.influx.is_some() {
            return Err(CliError::NotImplemented(
                "--influx (self-metrics of the daemon)".to_string(),
            ));
        }
        Ok(())
    }

    #[cfg(target_os = "linux")]
    fn start(self, level: Level) -> Option<Result<super::error::Exit, CliError>> {
        crate::logging::init("albatrossd", level.filter());
        let options = crate::daemon::run::Options {
            tmpdir: self.tmpdir.unwrap_or_else(crate::paths::default_tmpdir),
            dbdir: self.dbdir.unwrap_or_else(crate::paths::default_dbdir),
            tender_dir: self.tender_dir,
            full_name: self.no_drop_path,
            allow_zvol_for: self.allow_zvol_for,
        };
        Some(
            crate::daemon::run::run(options)
                .map(|()| super::error::Exit::Success)
                .map_err(|e| CliError::Daemon(e.to_string())),
        )
    }
}
impl DaemonRole for ConsoleArgs {}
impl DaemonRole for StatsArgs {}
impl DaemonRole for InfluxArgs {}
impl DaemonRole for TlsInetdArgs {}
impl DaemonRole for LogArgs {}

impl DaemonRole for TlsEndpointArgs {
    fn validate(&self) -> Result<(), CliError> {
        if self.systemd_socket_activation && self.port.is_some() {
            return Err(CliError::Usage(
                "the options --systemd-socket-activation and --port are mutually exclusive"
                    .to_string(),
            ));
        }
        Ok(())
    }
}

/// The role's help: its own options and the logging options.
pub fn help<T: DaemonRole>(cmd: &[&str]) -> String {
    let mut text = super::args::argh_help::<T>(cmd);
    text.push_str("\n\n");
    text.push_str(&super::args::options_section(
        "Logging options",
        &super::common::CommonOptions::get_args_info(),
        LOGGING,
    ));
    if !T::IMPLEMENTED {
        text.push_str("\nThis version parses these options but does not implement the role: it exits with status 1.\n");
    }
    text
}

/// Parses the role's command line; a valid one ends with "not implemented".
pub fn run<T: DaemonRole>(
    cmd: &[&str],
    args: &[String],
    role: &'static str,
) -> Result<super::error::Exit, CliError> {
    let Some((own, logging)) = super::parse::<T>(cmd, args, LOGGING, &[], help::<T>)? else {
        return Ok(super::error::Exit::Success);
    };
    own.validate()?;
    own.start(logging.level(Level::Info))
        .unwrap_or(Err(CliError::RoleNotImplemented(role)))
}
