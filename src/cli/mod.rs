//! The command line of the `albatross` multi-call binary.
//!
//! The program's role is chosen busybox-style: when the base name of
//! `argv[0]` is one of the program names in [`NAMES`] (upstream's program
//! names, old and new), that role runs; otherwise `argv[1]` names a client
//! subcommand or one of the daemon roles listed there as subcommands.
//!
//! Every role parses its arguments with argh after the preprocessing of
//! [`args`], which also splits off the options common to all client
//! subcommands.

pub mod args;
mod client;
mod common;
mod daemon;
mod dump;
mod error;
mod hexdump;
mod output;
mod session;
mod values;

use std::io::Write;
use std::process::ExitCode;

use argh::{ArgsInfo, FromArgs};

use self::client::{ClientCommand, COMMANDS};
use self::common::CommonOptions;
pub use self::error::{CliError, Exit};

/// What the program does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The client: every client subcommand.
    Client,
    /// The 1.x request tool: client subcommands that send a command, always
    /// writing a certificate signing request (`--csr`).
    ProvisionRequest,
    /// The 1.x CA tool: `sign` and `generate`.
    ProvisionCa,
    /// albatrossd.
    Daemon,
    /// The console daemon.
    Console,
    /// The 1.x event log daemon.
    Log,
    /// The statistics daemon.
    Stats,
    /// The influx exporter.
    Influx,
    /// The TLS endpoint.
    TlsEndpoint,
    /// The 1.x inetd TLS endpoint.
    TlsInetd,
}

/// How a name in [`NAMES`] selects its role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// As the base name of `argv[0]`.
    Program,
    /// As the first argument of `albatross`.
    Subcommand,
}

/// Every name that selects a role (client subcommands aside).
pub const NAMES: &[(&str, Via, Role)] = &[
    ("albatross-client", Via::Program, Role::Client),
    ("albatross_client_local", Via::Program, Role::Client),
    ("albatross_client_remote_tls", Via::Program, Role::Client),
    ("albatross_client_bistro", Via::Program, Role::Client),
    (
        "albatross_provision_request",
        Via::Program,
        Role::ProvisionRequest,
    ),
    ("albatross_provision_ca", Via::Program, Role::ProvisionCa),
    ("albatrossd", Via::Program, Role::Daemon),
    ("albatross-console", Via::Program, Role::Console),
    ("albatross_console", Via::Program, Role::Console),
    ("albatross_log", Via::Program, Role::Log),
    ("albatross-stats", Via::Program, Role::Stats),
    ("albatross_stats", Via::Program, Role::Stats),
    ("albatross-influx", Via::Program, Role::Influx),
    ("albatross_influx", Via::Program, Role::Influx),
    ("albatross-tls-endpoint", Via::Program, Role::TlsEndpoint),
    ("albatross_tls_endpoint", Via::Program, Role::TlsEndpoint),
    ("albatross-tls-inetd", Via::Program, Role::TlsInetd),
    ("albatross_tls_inetd", Via::Program, Role::TlsInetd),
    ("daemon", Via::Subcommand, Role::Daemon),
    ("tls-endpoint", Via::Subcommand, Role::TlsEndpoint),
    ("tls-inetd", Via::Subcommand, Role::TlsInetd),
    ("console-daemon", Via::Subcommand, Role::Console),
    ("log-daemon", Via::Subcommand, Role::Log),
    ("stats-daemon", Via::Subcommand, Role::Stats),
    ("influx", Via::Subcommand, Role::Influx),
];

/// How the program was invoked.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The program name used in messages (base name of `argv[0]`).
    pub prog: String,
    /// Whether commands become certificate signing requests.
    pub forced_csr: bool,
}

/// Runs a client subcommand: invocation, command path, arguments after it.
pub(crate) type RunFn = fn(&Invocation, &[&str], &[String]) -> Result<Exit, CliError>;

/// Runs a daemon role; the last argument names the role in messages.
type RoleRunFn = fn(&[&str], &[String], &'static str) -> Result<Exit, CliError>;

/// A daemon role's entry points.
struct DaemonFns {
    role: &'static str,
    description: fn() -> &'static str,
    help: fn(&[&str]) -> String,
    run: RoleRunFn,
}

impl DaemonFns {
    fn of<T: daemon::DaemonRole>(role: &'static str) -> DaemonFns {
        DaemonFns {
            role,
            description: || T::get_args_info().description,
            help: daemon::help::<T>,
            run: daemon::run::<T>,
        }
    }
}

impl Role {
    /// The entry points of a daemon role; `None` for the client roles.
    fn daemon(self) -> Option<DaemonFns> {
        match self {
            Role::Client | Role::ProvisionRequest | Role::ProvisionCa => None,
            Role::Daemon => Some(DaemonFns::of::<daemon::DaemonArgs>("albatrossd")),
            Role::Console => Some(DaemonFns::of::<daemon::ConsoleArgs>("console")),
            Role::Log => Some(DaemonFns::of::<daemon::LogArgs>("log")),
            Role::Stats => Some(DaemonFns::of::<daemon::StatsArgs>("stats")),
            Role::Influx => Some(DaemonFns::of::<daemon::InfluxArgs>("influx")),
            Role::TlsEndpoint => Some(DaemonFns::of::<daemon::TlsEndpointArgs>("TLS endpoint")),
            Role::TlsInetd => Some(DaemonFns::of::<daemon::TlsInetdArgs>("tls-inetd")),
        }
    }
}

/// One thing a command group offers.
enum Item {
    Client(&'static ClientCommand),
    Daemon(&'static str, DaemonFns),
}

impl Item {
    fn name(&self) -> &'static str {
        match self {
            Item::Client(c) => c.name,
            Item::Daemon(name, _) => name,
        }
    }

    fn description(&self) -> String {
        match self {
            Item::Client(ClientCommand {
                alias_of: Some(of), ..
            }) => format!("alias of {of}"),
            Item::Client(c) => (c.description)().to_string(),
            Item::Daemon(_, d) => (d.description)().to_string(),
        }
    }

    fn help(&self, cmd: &[&str]) -> String {
        match self {
            Item::Client(c) => (c.help)(cmd),
            Item::Daemon(_, d) => (d.help)(cmd),
        }
    }

    fn run(&self, inv: &Invocation, cmd: &[&str], args: &[String]) -> Result<Exit, CliError> {
        match self {
            Item::Client(c) => (c.run)(inv, cmd, args),
            Item::Daemon(_, d) => (d.run)(cmd, args, d.role),
        }
    }
}

/// Writes to stdout, ignoring a closed pipe (as when piped into `head`).
fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Parses a role's or subcommand's arguments: preprocessing, then argh for
/// its own options and for the `common` options it accepts. `Ok(None)`
/// means `--help` was given and printed.
pub(crate) fn parse<T: FromArgs + ArgsInfo>(
    cmd: &[&str],
    arguments: &[String],
    common: &[&str],
    aliases: &'static [(&'static str, &'static str)],
    help: fn(&[&str]) -> String,
) -> Result<Option<(T, CommonOptions)>, CliError> {
    let spec = args::Spec::new(
        &T::get_args_info(),
        &CommonOptions::get_args_info(),
        common,
        aliases,
    );
    let split = args::split(&spec, arguments)?;
    if split.help {
        print(&help(cmd));
        return Ok(None);
    }
    let own: Vec<&str> = split.own.iter().map(String::as_str).collect();
    let own = T::from_args(cmd, &own).map_err(|e| CliError::Usage(args::one_line(&e.output)))?;
    let shared: Vec<&str> = split.common.iter().map(String::as_str).collect();
    let shared = CommonOptions::from_args(cmd, &shared)
        .map_err(|e| CliError::Usage(args::one_line(&e.output)))?;
    Ok(Some((own, shared)))
}

/// A set of subcommands under one program name.
fn group(
    inv: &Invocation,
    cmd: &[&str],
    about: &str,
    items: &[Item],
    args: &[String],
) -> Result<Exit, CliError> {
    let usage = || {
        let mut text = format!(
            "Usage: {} <command> [<args>]\n\n{about}\n\nCommands:\n",
            cmd.join(" ")
        );
        for item in items {
            args::push_entry(&mut text, item.name(), &item.description());
        }
        text.push_str(&format!(
            "\nRun '{0} <command> --help' or '{0} help <command>' for a command's options.\n",
            cmd.join(" ")
        ));
        text
    };
    let find = |name: &str| items.iter().find(|i| i.name() == name);
    let unknown = |name: &str| {
        let names: Vec<&str> = items.iter().map(Item::name).collect();
        CliError::Usage(format!(
            "unknown command '{name}', must be one of {}",
            names.join(", ")
        ))
    };
    let Some(first) = args.first() else {
        print(&usage());
        return Ok(Exit::Success);
    };
    match first.as_str() {
        "--help" => print(&usage()),
        s if s.starts_with("--help=") => print(&usage()),
        "--version" => print(&format!(
            "{} {} (wire version {})\n",
            inv.prog,
            env!("CARGO_PKG_VERSION"),
            crate::wire::WIRE_VERSION
        )),
        "help" => match args.get(1) {
            None => print(&usage()),
            Some(topic) => {
                let item = find(topic).ok_or_else(|| unknown(topic))?;
                let mut path = cmd.to_vec();
                path.push(item.name());
                print(&item.help(&path));
            }
        },
        name => {
            let item = find(name).ok_or_else(|| unknown(name))?;
            let mut path = cmd.to_vec();
            path.push(item.name());
            return item.run(inv, &path, &args[1..]);
        }
    }
    Ok(Exit::Success)
}

fn client_items(filter: impl Fn(&ClientCommand) -> bool) -> Vec<Item> {
    COMMANDS
        .iter()
        .filter(|c| filter(c))
        .map(Item::Client)
        .collect()
}

const CLIENT_ABOUT: &str = "albatross client: sends a command to a local albatross daemon (default, \
--socket), to a remote TLS endpoint (--destination with --ca, --ca-key, --server-ca and --key-type), \
or writes it into a certificate signing request (--csr); also inspects state files.";

fn run_role(inv: &Invocation, role: Role, cmd: &[&str], args: &[String]) -> Result<Exit, CliError> {
    match role {
        Role::Client => group(inv, cmd, CLIENT_ABOUT, &client_items(|_| true), args),
        Role::ProvisionRequest => {
            let inv = Invocation {
                forced_csr: true,
                ..inv.clone()
            };
            let about = "writes a key and a certificate signing request for a command (as --csr).";
            group(&inv, cmd, about, &client_items(|c| c.sends_command), args)
        }
        Role::ProvisionCa => {
            let about = "certificate authority operations: sign requests, generate a CA.";
            group(
                inv,
                cmd,
                about,
                &client_items(|c| matches!(c.name, "sign" | "generate")),
                args,
            )
        }
        daemon_role => match daemon_role.daemon() {
            Some(d) => (d.run)(cmd, args, d.role),
            None => Err(CliError::Usage(format!("{} has no entry point", inv.prog))),
        },
    }
}

/// `albatross <subcommand>`: every client subcommand and the daemon roles.
fn run_multi(inv: &Invocation, args: &[String]) -> Result<Exit, CliError> {
    let mut items = client_items(|_| true);
    items.extend(
        NAMES
            .iter()
            .filter(|(_, via, _)| *via == Via::Subcommand)
            .filter_map(|(name, _, role)| role.daemon().map(|d| Item::Daemon(name, d))),
    );
    let about =
        "albatross: orchestrates MirageOS/Solo5 unikernels. The client subcommands talk to \
the daemons; daemon, console-daemon, stats-daemon, log-daemon, influx, tls-endpoint and tls-inetd \
run the daemon roles (also reachable as albatrossd, albatross-console, ... through links).";
    group(inv, &[inv.prog.as_str()], about, &items, args)
}

/// Runs the program; the exit status follows §16.3 for the client.
pub fn main() -> ExitCode {
    let mut arguments = Vec::new();
    for arg in std::env::args_os() {
        match arg.into_string() {
            Ok(arg) => arguments.push(arg),
            Err(bad) => {
                eprintln!("albatross: argument {bad:?} is not valid UTF-8");
                return Exit::CliError.into();
            }
        }
    }
    let prog = arguments
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("albatross")
        .to_string();
    let inv = Invocation {
        prog: prog.clone(),
        forced_csr: false,
    };
    let rest = arguments.get(1..).unwrap_or_default();
    let role = NAMES
        .iter()
        .find(|(name, via, _)| *via == Via::Program && *name == prog);
    let result = match role {
        Some((_, _, role)) => run_role(&inv, *role, &[prog.as_str()], rest),
        None => run_multi(&inv, rest),
    };
    match result {
        Ok(exit) => exit.into(),
        Err(e) => {
            // Exactly one line, whatever the message holds.
            let msg = e.to_string().replace(['\n', '\r'], " ");
            eprintln!("{prog}: {msg}");
            e.exit_code()
        }
    }
}
