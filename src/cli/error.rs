//! Exit statuses (§16.3) and the errors that end a command.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::wire::frame::FrameError;
use crate::wire::DecodeError;

/// How the client ends (§16.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: success.
    Success,
    /// 116: the local certificate chain does not validate against `--server-ca`.
    ChainFailure,
    /// 117: the daemon answered with a failure.
    RemoteCommandFailed,
    /// 118: an HTTP interaction failed (`update`).
    HttpFailed,
    /// 119: the server rejected our certificate.
    LocalAuthFailed,
    /// 120: the server's certificate is not trusted.
    RemoteAuthFailed,
    /// 121: reading or writing failed (also after `--socket -`).
    CommunicationFailed,
    /// 122: the connection could not be made.
    ConnectFailed,
    /// 124: command-line or validation error.
    CliError,
    /// 125: internal error, or a mode this version does not implement.
    InternalError,
}

impl Exit {
    /// The numeric exit status.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::ChainFailure => 116,
            Exit::RemoteCommandFailed => 117,
            Exit::HttpFailed => 118,
            Exit::LocalAuthFailed => 119,
            Exit::RemoteAuthFailed => 120,
            Exit::CommunicationFailed => 121,
            Exit::ConnectFailed => 122,
            Exit::CliError => 124,
            Exit::InternalError => 125,
        }
    }

    /// Every status with its meaning, for `--help`.
    pub const ALL: [(Exit, &'static str); 10] = [
        (Exit::Success, "success"),
        (
            Exit::ChainFailure,
            "the local certificate chain could not be validated against --server-ca",
        ),
        (
            Exit::RemoteCommandFailed,
            "the daemon answered with a failure",
        ),
        (Exit::HttpFailed, "an HTTP interaction failed (update)"),
        (Exit::LocalAuthFailed, "the server rejected our certificate"),
        (
            Exit::RemoteAuthFailed,
            "the server's certificate is not trusted",
        ),
        (
            Exit::CommunicationFailed,
            "reading or writing failed, or --socket - printed the message",
        ),
        (Exit::ConnectFailed, "the connection could not be made"),
        (Exit::CliError, "command-line or validation error"),
        (
            Exit::InternalError,
            "internal error, or a mode not implemented in this version",
        ),
    ];
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

/// Why a command did not run to its end.
#[derive(Debug)]
#[non_exhaustive]
pub enum CliError {
    /// The command line is malformed (unknown option, missing value, ...).
    Usage(String),
    /// The command line is well formed but a value is not acceptable.
    Invalid(String),
    /// A file named on the command line could not be read.
    ReadFile {
        /// What the file is for (e.g. "image").
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The reason.
        source: io::Error,
    },
    /// This mode or command needs something later versions will add.
    NotImplemented(String),
    /// The daemon socket could not be connected.
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The reason.
        source: io::Error,
    },
    /// Sending to or reading from the daemon failed.
    Io(io::Error),
    /// A message from the daemon was not framed correctly.
    Frame(FrameError),
    /// A message from the daemon did not decode.
    Decode(DecodeError),
    /// The daemon sent something that makes no sense at this point.
    Protocol(String),
    /// Writing a file failed.
    WriteFile {
        /// The file.
        path: PathBuf,
        /// The reason.
        source: io::Error,
    },
    /// A daemon role is not part of this version.
    RoleNotImplemented(&'static str),
}

impl CliError {
    /// The exit status this error ends the program with.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) | CliError::Invalid(_) | CliError::ReadFile { .. } => {
                Exit::CliError.into()
            }
            CliError::NotImplemented(_) => Exit::InternalError.into(),
            CliError::Connect { .. } => Exit::ConnectFailed.into(),
            CliError::Io(_) | CliError::Frame(_) | CliError::Decode(_) | CliError::Protocol(_) => {
                Exit::CommunicationFailed.into()
            }
            CliError::WriteFile { .. } => Exit::InternalError.into(),
            CliError::RoleNotImplemented(_) => ExitCode::from(1),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(msg) | CliError::Invalid(msg) | CliError::Protocol(msg) => {
                f.write_str(msg)
            }
            CliError::ReadFile { what, path, source } => {
                write!(f, "cannot read {what} {}: {source}", path.display())
            }
            CliError::NotImplemented(what) => {
                write!(f, "{what} is not implemented in this version")
            }
            CliError::Connect { path, source } => {
                write!(f, "couldn't connect to {}: {source}", path.display())
            }
            CliError::Io(e) => write!(f, "communication with the daemon failed: {e}"),
            CliError::Frame(e) => write!(f, "communication with the daemon failed: {e}"),
            CliError::Decode(e) => write!(f, "cannot decode the daemon's message: {e}"),
            CliError::WriteFile { path, source } => {
                write!(f, "failed to write {}: {source}", path.display())
            }
            CliError::RoleNotImplemented(role) => {
                write!(f, "the {role} role is not implemented in this version")
            }
        }
    }
}

impl std::error::Error for CliError {}

impl From<FrameError> for CliError {
    fn from(e: FrameError) -> CliError {
        CliError::Frame(e)
    }
}

impl From<DecodeError> for CliError {
    fn from(e: DecodeError) -> CliError {
        CliError::Decode(e)
    }
}

impl From<io::Error> for CliError {
    fn from(e: io::Error) -> CliError {
        CliError::Io(e)
    }
}
