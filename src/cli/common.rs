//! The options every client subcommand shares (§16.1), parsed once by
//! their own argh struct, and what they resolve to: the connection mode,
//! the runtime directory and the log level.

use std::path::PathBuf;

use argh::{ArgsInfo, FromArgs};

use super::error::CliError;
use super::values::{
    parse_color, parse_destination, parse_dir, parse_file, parse_key_type, parse_level, HostPort,
    KeyType, Level,
};
use crate::model::Timestamp;
use crate::paths::default_tmpdir;

/// Long names of the logging options, which every role accepts.
pub const LOGGING: &[&str] = &["--verbose", "--quiet", "--verbosity", "--color"];

/// Long names of all common options, which every subcommand that sends a
/// command accepts.
pub const ALL: &[&str] = &[
    "--socket",
    "--destination",
    "--csr",
    "--ca",
    "--ca-key",
    "--server-ca",
    "--key-type",
    "--tmpdir",
    "--verbose",
    "--quiet",
    "--verbosity",
    "--color",
];

/// options shared by the client subcommands.
#[derive(FromArgs, ArgsInfo, Debug)]
pub struct CommonOptions {
    /// local Unix socket of the daemon (default: its socket below --tmpdir);
    /// '-' prints the encoded message as a hex dump instead and exits 121
    #[argh(option, arg_name = "PATH")]
    socket: Option<String>,

    /// remote albatross TLS endpoint, HOST[:PORT] (default port 1025)
    #[argh(
        option,
        short = 'd',
        arg_name = "HOST[:PORT]",
        from_str_fn(parse_destination)
    )]
    destination: Option<HostPort>,

    /// write a key and a certificate signing request for the command
    /// instead of sending it
    #[argh(switch)]
    csr: bool,

    /// certificate of the CA that signs the command certificate (default:
    /// ca.pem)
    #[argh(option, arg_name = "FILE", from_str_fn(parse_file))]
    ca: Option<PathBuf>,

    /// private key of that CA (default: ca.key)
    #[argh(option, arg_name = "FILE", from_str_fn(parse_file))]
    ca_key: Option<PathBuf>,

    /// CA certificate that authenticates the remote server (default:
    /// cacert.pem)
    #[argh(option, arg_name = "FILE", from_str_fn(parse_file))]
    server_ca: Option<PathBuf>,

    /// type of generated keys: ed25519 (default), rsa2048, rsa4096, p256,
    /// p384 or p521
    #[argh(option, arg_name = "TYPE", from_str_fn(parse_key_type))]
    key_type: Option<KeyType>,

    /// albatross runtime directory, which holds util/*.sock (default:
    /// /run/albatross on Linux, /var/run/albatross elsewhere)
    #[argh(option, arg_name = "DIR", from_str_fn(parse_dir))]
    tmpdir: Option<PathBuf>,

    /// more messages (repeatable: -v info, -v -v debug)
    #[argh(switch, short = 'v')]
    verbose: u8,

    /// no messages besides the command's output
    #[argh(switch, short = 'q')]
    quiet: bool,

    /// message level: quiet, error, warning (default), info or debug
    #[argh(option, arg_name = "LEVEL", from_str_fn(parse_level))]
    verbosity: Option<Level>,

    /// when to colour output: auto, always or never (accepted for
    /// compatibility; output is never coloured)
    #[argh(option, arg_name = "WHEN", from_str_fn(parse_color))]
    color: Option<String>,
}

/// The certificate options of remote mode and `--csr` (parsed and
/// validated now so that scripts fail early on bad values; the modes that
/// use them come later).
#[derive(Debug, Clone)]
pub struct CertOptions {
    /// CA certificate signing the command certificate.
    ca: PathBuf,
    /// Its private key.
    ca_key: PathBuf,
    /// CA authenticating the server.
    server_ca: PathBuf,
    /// Type of generated keys.
    key_type: KeyType,
}

impl CertOptions {
    /// The settings, for debugging output.
    pub fn describe(&self) -> String {
        format!(
            "CA {}, CA key {}, server CA {}, key type {:?}",
            self.ca.display(),
            self.ca_key.display(),
            self.server_ca.display(),
            self.key_type
        )
    }
}

/// Where a command goes.
#[derive(Debug, Clone)]
pub enum Mode {
    /// To a local daemon socket; `Some("-")` prints a hex dump instead.
    Local(Option<String>),
    /// To a remote TLS endpoint.
    Remote(HostPort, CertOptions),
    /// Into a certificate signing request.
    Csr(CertOptions),
}

/// Prints messages on stderr according to the log level.
#[derive(Debug, Clone)]
pub struct Reporter {
    prog: String,
    level: Level,
}

impl Reporter {
    /// A reporter for program `prog` at `level`.
    pub fn new(prog: &str, level: Level) -> Reporter {
        Reporter {
            prog: prog.to_string(),
            level,
        }
    }

    fn emit(&self, level: Level, tag: &str, msg: &str) {
        if self.level >= level {
            eprintln!("{}: [{tag}] {msg}", self.prog);
        }
    }

    /// A warning (shown unless `-q` or a lower `--verbosity`).
    pub fn warn(&self, msg: &str) {
        self.emit(Level::Warning, "WARNING", msg);
    }

    /// An informational message (shown with `-v`).
    pub fn info(&self, msg: &str) {
        self.emit(Level::Info, "INFO", msg);
    }

    /// A debugging message (shown with `-v -v`).
    pub fn debug(&self, msg: &str) {
        self.emit(Level::Debug, "DEBUG", msg);
    }
}

/// Everything a subcommand needs besides its own options.
#[derive(Debug, Clone)]
pub struct Context {
    /// Where commands go.
    pub mode: Mode,
    /// The runtime directory.
    pub tmpdir: PathBuf,
    /// Messages.
    pub report: Reporter,
    /// When the client started (names the files it writes, §16.4).
    pub started: Timestamp,
}

impl CommonOptions {
    /// Resolves the options; `forced_csr` is set for
    /// `albatross_provision_request`, which always writes requests.
    pub fn into_context(self, prog: &str, forced_csr: bool) -> Result<Context, CliError> {
        let level = if self.quiet {
            Level::Quiet
        } else {
            match (self.verbosity, self.verbose) {
                (Some(level), _) => level,
                (None, 0) => Level::Warning,
                (None, 1) => Level::Info,
                (None, _) => Level::Debug,
            }
        };
        let report = Reporter::new(prog, level);
        if let Some(color) = &self.color {
            report.debug(&format!("--color={color}: output is never coloured"));
        }
        let certs = CertOptions {
            ca: self.ca.unwrap_or_else(|| PathBuf::from("ca.pem")),
            ca_key: self.ca_key.unwrap_or_else(|| PathBuf::from("ca.key")),
            server_ca: self
                .server_ca
                .unwrap_or_else(|| PathBuf::from("cacert.pem")),
            key_type: self.key_type.unwrap_or(KeyType::Ed25519),
        };
        let mode = match (self.csr || forced_csr, self.destination, self.socket) {
            (false, None, socket) => Mode::Local(socket),
            (false, Some(destination), None) => Mode::Remote(destination, certs),
            (true, None, None) => Mode::Csr(certs),
            _ => {
                return Err(CliError::Usage(
                    "The options --csr, --destination, and --socket are mutually exclusive"
                        .to_string(),
                ))
            }
        };
        Ok(Context {
            mode,
            tmpdir: self.tmpdir.unwrap_or_else(default_tmpdir),
            report,
            started: Timestamp::now(),
        })
    }
}

impl Context {
    /// The compression level: the one given, else 0 locally and 9 for
    /// remote mode and requests (§10.9).
    pub fn compression(&self, given: Option<u32>) -> u32 {
        given.unwrap_or(match self.mode {
            Mode::Local(_) => 0,
            Mode::Remote(..) | Mode::Csr(_) => 9,
        })
    }
}
