//! The `vmmd.sock` server (§8.1): one request per connection, answered
//! with the request header echoed; `policy add` keeps the connection for
//! more; block set and dump stream raw data (§3.3).
//!
//! Unlike upstream, a request that does not decode or is too large gets a
//! `failure` explaining why before the connection closes, and a failing
//! connection never affects another one.

use std::os::unix::net::UnixStream;
use std::rc::Rc;

use smol::Async;

use super::blocks::{self, Dump, Upload};
use super::core::{Core, CoreError};
use crate::model::{Name, Path};
use crate::sys::Sys;
use crate::wire::frame::{read_frame_async, write_frame_async, FrameError};
use crate::wire::{
    decode_wire, encode_wire, BlockCmd, Command, Data, Header, InfoVersion, Payload, PolicyCmd,
    Success, UnikernelCmd, Wire,
};

/// Limits of the server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request frame in bytes.
    pub max_frame: usize,
    /// Largest chunk of a raw data stream in bytes.
    pub max_chunk: usize,
}

type Conn = Async<UnixStream>;

/// What to do after answering.
enum Next {
    Close,
    KeepOpen,
}

async fn send(conn: &mut Conn, header: &Header, payload: Payload) -> bool {
    let wire = Wire {
        header: header.clone(),
        payload,
    };
    let bytes = match encode_wire(&wire) {
        Ok(bytes) => bytes,
        Err(e) => {
            let failure = Wire {
                header: header.clone(),
                payload: Payload::Failure(e.to_string()),
            };
            match encode_wire(&failure) {
                Ok(bytes) => bytes,
                Err(_) => return false,
            }
        }
    };
    write_frame_async(conn, &bytes).await.is_ok()
}

async fn reply(conn: &mut Conn, header: &Header, result: Result<Success, CoreError>) -> bool {
    let payload = match result {
        Ok(success) => Payload::Reply(success),
        Err(e) => Payload::Failure(e.to_string()),
    };
    send(conn, header, payload).await
}

fn string(result: Result<String, CoreError>) -> Result<Success, CoreError> {
    result.map(Success::String)
}

fn failure(text: impl Into<String>) -> Result<Success, CoreError> {
    Err(CoreError::Refused(text.into()))
}

/// Answers a request whose header is unknown (it did not arrive or did
/// not decode) with a failure under the root header.
async fn refuse(conn: &mut Conn, text: String) {
    log::warn!("{text}");
    send(conn, &Header::new(Name::root()), Payload::Failure(text)).await;
}

/// Serves one connection until it is done.
pub async fn serve_connection<S: Sys + Send + Sync + 'static>(
    core: Rc<Core<S>>,
    mut conn: Conn,
    limits: Limits,
) {
    loop {
        let bytes = match read_frame_async(&mut conn, limits.max_frame).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return,
            Err(FrameError::TooLarge { len, max }) => {
                let text = format!("request of {len} bytes exceeds the maximum of {max} bytes");
                refuse(&mut conn, text).await;
                return;
            }
            Err(e) => {
                log::debug!("connection: {e}");
                return;
            }
        };
        let wire = match decode_wire(&bytes) {
            Ok(wire) => wire,
            Err(e) => {
                refuse(&mut conn, format!("malformed request: {e}")).await;
                return;
            }
        };
        let header = wire.header;
        let Payload::Command(command) = wire.payload else {
            reply(&mut conn, &header, failure("unknown command")).await;
            return;
        };
        match handle(&core, &mut conn, &header, command, limits).await {
            Next::KeepOpen => continue,
            Next::Close => return,
        }
    }
}

async fn handle<S: Sys + Send + Sync + 'static>(
    core: &Rc<Core<S>>,
    conn: &mut Conn,
    header: &Header,
    command: Command,
    limits: Limits,
) -> Next {
    let name = &header.name;
    let result = match command {
        Command::Unikernel(cmd) => unikernel(core, name, cmd).await,
        Command::Policy(PolicyCmd::Add(policy)) => {
            let path = policy_path(name);
            let result = string(core.add_policy(&path, policy).await);
            let ok = result.is_ok();
            if reply(conn, header, result).await && ok {
                return Next::KeepOpen;
            }
            return Next::Close;
        }
        Command::Policy(PolicyCmd::Remove) => string(core.remove_policy(&policy_path(name)).await),
        Command::Policy(PolicyCmd::Info) => {
            Ok(Success::Policies(core.policies(&policy_path(name))))
        }
        Command::Block(BlockCmd::Set(compressed)) => {
            block_set(core, conn, header, compressed, limits).await;
            return Next::Close;
        }
        Command::Block(BlockCmd::Dump(level)) => {
            block_dump(core, conn, header, level).await;
            return Next::Close;
        }
        Command::Block(cmd) => block(core, name, cmd).await,
        Command::Console(_) | Command::Stats(_) => failure("unknown command"),
    };
    reply(conn, header, result).await;
    Next::Close
}

/// Policy commands take a path; a label is ignored with a warning (§8.3).
fn policy_path(name: &Name) -> Path {
    if let Some(label) = name.label() {
        log::warn!("policy command for {name}: the label {label} is ignored");
    }
    name.path().clone()
}

async fn unikernel<S: Sys + Send + Sync + 'static>(
    core: &Rc<Core<S>>,
    name: &Name,
    cmd: UnikernelCmd,
) -> Result<Success, CoreError> {
    match cmd {
        UnikernelCmd::Info(version) => {
            let infos = core.info(name);
            Ok(match version {
                InfoVersion::Current => Success::UnikernelInfo(infos),
                InfoVersion::Old5 => Success::OldUnikernelInfo5(infos),
                InfoVersion::Old4 => Success::OldUnikernelInfo4(infos),
            })
        }
        UnikernelCmd::Status => Ok(Success::UnikernelStatus(core.status(name))),
        UnikernelCmd::Create(config) => string(core.create(name, config, false).await),
        UnikernelCmd::ForceCreate(config) => string(core.create(name, config, true).await),
        UnikernelCmd::Destroy => string(core.destroy(name).await),
        UnikernelCmd::Restart(args) => string(core.restart(name, args).await),
        UnikernelCmd::Get(level) => core
            .get(name, level)
            .await
            .map(|(compressed, image)| Success::UnikernelImage { compressed, image }),
    }
}

fn block_path<S: Sys + Send + Sync + 'static>(core: &Core<S>, name: &Name) -> std::path::PathBuf {
    core.config().paths.block_dir().join(name.to_string())
}

async fn block<S: Sys + Send + Sync + 'static>(
    core: &Rc<Core<S>>,
    name: &Name,
    cmd: BlockCmd,
) -> Result<Success, CoreError> {
    match cmd {
        BlockCmd::Info => Ok(Success::BlockDevices(core.with_resources(|r| {
            if name.is_path() {
                r.blocks_below(name.path())
            } else {
                r.block(name)
                    .map(|b| (name.clone(), b.size, b.active))
                    .into_iter()
                    .collect()
            }
        }))),
        BlockCmd::Add(size) => string(block_add(core, name, size, None).await),
        BlockCmd::AddOld {
            size,
            compressed,
            data,
        } => string(block_add(core, name, size, data.map(|d| (compressed, d))).await),
        BlockCmd::Remove => {
            let _guard = core.lock_block(name).await;
            core.with_resources(|r| r.free_block(name))
                .map_err(|e| CoreError::Refused(format!("remove block: {e}")))?;
            let path = block_path(core, name);
            smol::unblock(move || blocks::remove(&path))
                .await
                .map_err(CoreError::Block)?;
            core.with_resources(|r| r.remove_block(name))
                .map_err(|e| CoreError::Refused(format!("remove block: {e}")))?;
            Ok(Success::String("removed block".to_string()))
        }
        BlockCmd::SetOld { compressed, data } => {
            let _guard = core.lock_block(name).await;
            let size = usable_block(core, name, "set block")?;
            let path = block_path(core, name);
            smol::unblock(move || {
                let mut upload = Upload::start(&path, size, compressed)?;
                upload.write(&data)?;
                upload.finish()
            })
            .await
            .map_err(CoreError::Block)?;
            Ok(Success::String("set block device".to_string()))
        }
        BlockCmd::DumpOld(level) => {
            let _guard = core.lock_block(name).await;
            usable_block(core, name, "dump block")?;
            let path = block_path(core, name);
            let (compressed, image) =
                smol::unblock(move || -> Result<(bool, Vec<u8>), blocks::BlockError> {
                    let mut dump = Dump::open(&path, level)?;
                    let mut out = Vec::new();
                    while let Some(piece) = dump.next_piece()? {
                        out.extend(piece);
                    }
                    Ok((level > 0, out))
                })
                .await
                .map_err(CoreError::Block)?;
            Ok(Success::OldBlockImage { compressed, image })
        }
        BlockCmd::Set(_) | BlockCmd::Dump(_) => failure("unknown command"),
    }
}

/// The size of block device `name` if it exists and is not in use.
fn usable_block<S: Sys + Send + Sync + 'static>(
    core: &Core<S>,
    name: &Name,
    what: &str,
) -> Result<i64, CoreError> {
    match core.with_resources(|r| r.block(name)) {
        None => Err(CoreError::Refused(format!("{what}: not found"))),
        Some(b) if b.active => Err(CoreError::Refused(format!("{what}: is in use"))),
        Some(b) => Ok(b.size),
    }
}

async fn block_add<S: Sys + Send + Sync + 'static>(
    core: &Rc<Core<S>>,
    name: &Name,
    size: i64,
    data: Option<(bool, Vec<u8>)>,
) -> Result<String, CoreError> {
    if name.is_path() {
        return Err(CoreError::NotAUnikernel(name.clone()));
    }
    let _guard = core.lock_block(name).await;
    if core.with_resources(|r| r.block(name)).is_some() {
        return Err(CoreError::Refused(
            "block device with same name already exists".to_string(),
        ));
    }
    core.with_resources(|r| r.check_block_add(name, size))
        .map_err(|e| CoreError::Refused(e.to_string()))?;
    let path = block_path(core, name);
    smol::unblock(move || {
        blocks::create(&path, size)?;
        if let Some((compressed, data)) = data {
            let mut upload = Upload::start(&path, size, compressed)?;
            if let Err(e) = upload.write(&data).and_then(|()| upload.finish()) {
                let _ = blocks::remove(&path);
                return Err(e);
            }
        }
        Ok(())
    })
    .await
    .map_err(CoreError::Block)?;
    core.with_resources(|r| r.add_block(name, size))
        .map_err(|e| CoreError::Refused(e.to_string()))?;
    Ok("added block device".to_string())
}

async fn block_set<S: Sys + Send + Sync + 'static>(
    core: &Rc<Core<S>>,
    conn: &mut Conn,
    header: &Header,
    compressed: bool,
    limits: Limits,
) {
    let name = &header.name;
    let _guard = core.lock_block(name).await;
    let size = match usable_block(core, name, "set block") {
        Ok(size) => size,
        Err(e) => {
            reply(conn, header, Err(e)).await;
            return;
        }
    };
    let path = block_path(core, name);
    let started = smol::unblock(move || Upload::start(&path, size, compressed)).await;
    let mut upload = match started {
        Ok(upload) => upload,
        Err(e) => {
            reply(conn, header, Err(CoreError::Block(e))).await;
            return;
        }
    };
    loop {
        let chunk = match read_frame_async(conn, limits.max_chunk).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => {
                log::warn!("set block {name}: {e}; the device keeps its content");
                upload.abort();
                reply(
                    conn,
                    header,
                    Err(CoreError::Refused(format!("set block: {e}"))),
                )
                .await;
                return;
            }
        };
        let (back, result) = smol::unblock(move || {
            let result = upload.write(&chunk);
            (upload, result)
        })
        .await;
        upload = back;
        if let Err(e) = result {
            upload.abort();
            reply(conn, header, Err(CoreError::Block(e))).await;
            return;
        }
    }
    let result = smol::unblock(move || upload.finish()).await;
    reply(
        conn,
        header,
        result
            .map(|()| Success::String("set block device".to_string()))
            .map_err(CoreError::Block),
    )
    .await;
}

async fn block_dump<S: Sys + Send + Sync + 'static>(
    core: &Rc<Core<S>>,
    conn: &mut Conn,
    header: &Header,
    level: i64,
) {
    let name = &header.name;
    let _guard = core.lock_block(name).await;
    if let Err(e) = usable_block(core, name, "dump block") {
        reply(conn, header, Err(e)).await;
        return;
    }
    let path = block_path(core, name);
    let mut dump = match smol::unblock(move || Dump::open(&path, level)).await {
        Ok(dump) => dump,
        Err(e) => {
            reply(conn, header, Err(CoreError::Block(e))).await;
            return;
        }
    };
    if !send(
        conn,
        header,
        Payload::Reply(Success::BlockDeviceImage(level > 0)),
    )
    .await
    {
        return;
    }
    loop {
        let (back, piece) = smol::unblock(move || {
            let piece = dump.next_piece();
            (dump, piece)
        })
        .await;
        dump = back;
        match piece {
            Ok(Some(piece)) => {
                if !send(conn, header, Payload::Data(Data::BlockChunk(piece))).await {
                    return;
                }
            }
            Ok(None) => {
                send(conn, header, Payload::Data(Data::BlockEof)).await;
                return;
            }
            Err(e) => {
                send(conn, header, Payload::Data(Data::BlockEof)).await;
                send(conn, header, Payload::Failure(e.to_string())).await;
                return;
            }
        }
    }
}
