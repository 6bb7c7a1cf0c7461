//! Sending commands: the hex dump of `--socket -`, and local mode over the
//! daemons' Unix sockets (§16.1, §16.3, §16.4). Remote mode and
//! certificate requests are refused with exit 125 for now.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use flate2::write::{ZlibDecoder, ZlibEncoder};
use flate2::Compression;

use super::common::{Context, Mode, Reporter};
use super::error::{CliError, Exit};
use super::values::Level;
use super::{hexdump, output};
use crate::model::Name;
use crate::wire::endpoint::{endpoint, ReadMode};
use crate::wire::frame::{read_frame, write_end, write_frame, DEFAULT_MAX_FRAME, SEND_CHUNK};
use crate::wire::{decode_wire, encode_wire, Command, Data, Header, Payload, Success, Wire};

/// A file streamed as chunks after the command (§3.3).
#[derive(Debug, Clone)]
pub struct Upload {
    /// The file to send.
    pub path: PathBuf,
    /// zlib level, 0 for raw chunks.
    pub level: u32,
}

/// One command for one daemon.
#[derive(Debug, Clone)]
pub struct Request {
    /// The header name.
    pub name: Name,
    /// The command.
    pub command: Command,
    /// Data streamed after the command, if any.
    pub upload: Option<Upload>,
}

impl Request {
    /// A request without streamed data.
    pub fn new(name: Name, command: Command) -> Request {
        Request {
            name,
            command,
            upload: None,
        }
    }

    fn encode(&self) -> Result<Vec<u8>, CliError> {
        let wire = Wire {
            header: Header::new(self.name.clone()),
            payload: Payload::Command(self.command.clone()),
        };
        encode_wire(&wire)
            .map_err(|e| CliError::Protocol(format!("cannot encode the command: {e}")))
    }
}

/// Sends `requests` one after another as the mode says; stops at the first
/// one that does not succeed.
pub fn execute(ctx: &Context, requests: &[Request]) -> Result<Exit, CliError> {
    match &ctx.mode {
        Mode::Local(Some(socket)) if socket == "-" => {
            let mut stdout = io::stdout().lock();
            for request in requests {
                stdout.write_all(hexdump::render(&request.encode()?).as_bytes())?;
            }
            stdout.flush()?;
            Ok(Exit::CommunicationFailed)
        }
        Mode::Local(socket) => {
            let mut exit = Exit::Success;
            for request in requests {
                exit = local(ctx, socket.as_deref().map(Path::new), request)?;
                if exit != Exit::Success {
                    break;
                }
            }
            Ok(exit)
        }
        Mode::Remote(destination, certs) => {
            ctx.report.debug(&certs.describe());
            Err(CliError::NotImplemented(format!(
                "remote mode (--destination {}:{}, TLS)",
                destination.host, destination.port
            )))
        }
        Mode::Csr(certs) => {
            ctx.report.debug(&certs.describe());
            Err(CliError::NotImplemented(
                "writing certificate signing requests (--csr)".to_string(),
            ))
        }
    }
}

/// Sends an extension request to a local daemon and prints what it
/// answers; says nothing if the daemon does not know the request (upstream
/// closes the connection) or in other modes.
pub fn execute_optional(ctx: &Context, request: &Request) {
    if let Mode::Local(socket) = &ctx.mode {
        if socket.as_deref() != Some("-") {
            let quiet = Context {
                report: Reporter::new("", Level::Quiet),
                ..ctx.clone()
            };
            if let Err(e) = local(&quiet, socket.as_deref().map(Path::new), request) {
                ctx.report.debug(&format!("status: {e}"));
            }
        }
    }
}

/// One exchange with a local daemon.
fn local(ctx: &Context, socket: Option<&Path>, request: &Request) -> Result<Exit, CliError> {
    let (daemon, mode) = endpoint(&request.command);
    let path = socket.map_or_else(|| daemon.path(&ctx.tmpdir), Path::to_path_buf);
    let message = request.encode()?;
    let stream = UnixStream::connect(&path).map_err(|source| CliError::Connect {
        path: path.clone(),
        source,
    })?;
    ctx.report.info(&format!("connected to {}", path.display()));
    let mut reader = BufReader::new(stream);
    write_frame(reader.get_mut(), &message)?;
    if let Some(upload) = &request.upload {
        if let Err(e) = send_chunks(reader.get_mut(), upload) {
            // A daemon that refuses an upload (larger than the device, say)
            // answers and closes while we still send: its answer says why.
            if matches!(e, CliError::Io(_)) {
                if let Ok(exit @ Exit::RemoteCommandFailed) =
                    read_replies(ctx, &mut reader, &request.name, mode)
                {
                    return Ok(exit);
                }
            }
            return Err(e);
        }
    }
    read_replies(ctx, &mut reader, &request.name, mode)
}

/// Streams a file as chunks of at most 4096 raw bytes, or as the pieces
/// zlib produces from them, then the zero-length end marker.
fn send_chunks(stream: &mut UnixStream, upload: &Upload) -> Result<(), CliError> {
    let read_err = |source| CliError::ReadFile {
        what: "data file",
        path: upload.path.clone(),
        source,
    };
    let mut file = File::open(&upload.path).map_err(read_err)?;
    let mut buf = vec![0u8; SEND_CHUNK];
    let mut encoder =
        (upload.level > 0).then(|| ZlibEncoder::new(Vec::new(), Compression::new(upload.level)));
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(e)),
        };
        match encoder.as_mut() {
            None => write_frame(stream, &buf[..n])?,
            Some(enc) => {
                enc.write_all(&buf[..n])?;
                let piece = std::mem::take(enc.get_mut());
                if !piece.is_empty() {
                    write_frame(stream, &piece)?;
                }
            }
        }
    }
    if let Some(enc) = encoder {
        let rest = enc.finish()?;
        if !rest.is_empty() {
            write_frame(stream, &rest)?;
        }
    }
    write_end(stream)?;
    Ok(())
}

/// `<system temp dir>/<name>.<RFC 3339 start time>` (§16.4).
pub fn output_file(ctx: &Context, name: &Name) -> PathBuf {
    std::env::temp_dir().join(format!("{name}.{}", ctx.started.to_rfc3339()))
}

/// Creates an output file with mode 0644.
pub fn create_output(path: &Path) -> Result<File, CliError> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(path)
        .map_err(|source| CliError::WriteFile {
            path: path.to_path_buf(),
            source,
        })
}

/// Writes an image to its output file, inflating it if it is compressed,
/// and returns the file name.
pub fn write_image(
    ctx: &Context,
    name: &Name,
    compressed: bool,
    image: &[u8],
) -> Result<PathBuf, CliError> {
    let path = output_file(ctx, name);
    let file = create_output(&path)?;
    let write_err = |source| CliError::WriteFile {
        path: path.clone(),
        source,
    };
    if compressed {
        let mut decoder = ZlibDecoder::new(file);
        decoder
            .write_all(image)
            .and_then(|()| decoder.finish().map(drop))
            .map_err(|e| {
                CliError::Protocol(format!(
                    "failed to uncompress the image for {}: {e}",
                    path.display()
                ))
            })?;
    } else {
        let mut file = file;
        file.write_all(image).map_err(write_err)?;
    }
    Ok(path)
}

/// A block dump being written.
struct Dump {
    path: PathBuf,
    sink: DumpSink,
}

enum DumpSink {
    Raw(File),
    Inflate(ZlibDecoder<File>),
}

impl Dump {
    fn write(&mut self, chunk: &[u8]) -> Result<(), CliError> {
        let result = match &mut self.sink {
            DumpSink::Raw(f) => f.write_all(chunk),
            DumpSink::Inflate(d) => d.write_all(chunk),
        };
        result.map_err(|source| CliError::WriteFile {
            path: self.path.clone(),
            source,
        })
    }

    fn finish(self) -> Result<PathBuf, CliError> {
        let result = match self.sink {
            DumpSink::Raw(mut f) => f.flush(),
            DumpSink::Inflate(d) => d.finish().map(drop),
        };
        result.map_err(|source| CliError::WriteFile {
            path: self.path.clone(),
            source,
        })?;
        Ok(self.path)
    }
}

/// Reads and prints replies until the reading mode says the exchange is
/// over (§16.3): one reply in single mode, everything until the daemon
/// closes in read mode, a reply and block data up to its end in dump mode.
fn read_replies(
    ctx: &Context,
    reader: &mut BufReader<UnixStream>,
    name: &Name,
    mode: ReadMode,
) -> Result<Exit, CliError> {
    let mut stdout = io::stdout().lock();
    let mut dump: Option<Dump> = None;
    loop {
        // A clean end of the connection between messages ends the session
        // successfully (as upstream), except in the middle of a dump.
        if reader.fill_buf()?.is_empty() {
            if dump.is_some() {
                return Err(CliError::Protocol(
                    "the daemon closed the connection before the end of the block dump".to_string(),
                ));
            }
            return Ok(Exit::Success);
        }
        let Some(frame) = read_frame(reader, DEFAULT_MAX_FRAME)? else {
            return Ok(Exit::Success);
        };
        let wire = decode_wire(&frame)?;
        let shown = &wire.header.name;
        match wire.payload {
            Payload::Failure(msg) => {
                ctx.report.warn(&format!(
                    "{shown}: failure: {}",
                    output::escape(msg.as_bytes())
                ));
                return Ok(Exit::RemoteCommandFailed);
            }
            Payload::Command(_) => {
                ctx.report
                    .warn(&format!("{shown}: received an unexpected command"));
                return Ok(Exit::InternalError);
            }
            Payload::Reply(
                Success::UnikernelImage { compressed, image }
                | Success::OldBlockImage { compressed, image },
            ) => {
                let path = write_image(ctx, name, compressed, &image)?;
                writeln!(stdout, "{shown}: dumped image to {}", path.display())?;
                return Ok(Exit::Success);
            }
            Payload::Reply(Success::BlockDeviceImage(compressed)) if mode == ReadMode::Dump => {
                let path = output_file(ctx, name);
                let file = create_output(&path)?;
                let sink = if compressed {
                    DumpSink::Inflate(ZlibDecoder::new(file))
                } else {
                    DumpSink::Raw(file)
                };
                dump = Some(Dump { path, sink });
            }
            Payload::Reply(success) => {
                for line in output::reply(shown, &success) {
                    writeln!(stdout, "{line}")?;
                }
                if mode == ReadMode::Single {
                    return Ok(Exit::Success);
                }
            }
            Payload::Data(Data::BlockChunk(chunk)) => match dump.as_mut() {
                Some(d) => d.write(&chunk)?,
                None => return unexpected(ctx, shown, "block dump data"),
            },
            Payload::Data(Data::BlockEof) => match dump.take() {
                Some(d) => {
                    let path = d.finish()?;
                    writeln!(stdout, "{shown}: dumped to {}", path.display())?;
                    return Ok(Exit::Success);
                }
                None => return unexpected(ctx, shown, "end of block dump"),
            },
            Payload::Data(data) if mode == ReadMode::Read => {
                writeln!(stdout, "{}", output::data(shown, &data))?;
            }
            Payload::Data(_) => return unexpected(ctx, shown, "data"),
        }
        stdout.flush()?;
    }
}

fn unexpected(ctx: &Context, name: &Name, what: &str) -> Result<Exit, CliError> {
    ctx.report
        .warn(&format!("{name}: unexpected {what} received"));
    Ok(Exit::CommunicationFailed)
}
