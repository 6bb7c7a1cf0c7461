//! The client subcommands (§16.2): one argh struct each, holding only the
//! subcommand's own options (the common ones are parsed by
//! [`CommonOptions`]), and what each one does.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;

use argh::{ArgsInfo, FromArgs};
use flate2::write::ZlibEncoder;
use flate2::Compression;

use super::common::{self, CommonOptions, Context, Mode};
use super::error::{CliError, Exit};
use super::session::{execute, execute_optional, Request, Upload};
use super::values::{
    parse_block_spec, parse_bridge_tap, parse_compression, parse_dir, parse_file, parse_http_host,
    parse_int, parse_name, parse_net_spec, parse_path, parse_since, parse_typ,
};
use super::{dump, Invocation, RunFn};
use crate::model::{
    BlockSpec, FailBehaviour, Name, NetSpec, Path, Policy, Timestamp, Typ, UnikernelArguments,
    UnikernelConfig,
};
use crate::wire::state::StateLayout;
use crate::wire::{
    BlockCmd, Command, ConsoleCmd, InfoVersion, PolicyCmd, SinceCount, StatsCmd, UnikernelCmd,
};

/// What a client subcommand is: its argh struct plus how to run it.
pub trait Subcommand: FromArgs + ArgsInfo {
    /// Alias long option names and the names argh knows them by.
    const ALIASES: &'static [(&'static str, &'static str)] = &[];
    /// The common options this subcommand accepts (long names).
    const COMMON: &'static [&'static str] = common::ALL;
    /// Runs the parsed subcommand.
    fn run(self, ctx: &Context) -> Result<Exit, CliError>;
}

/// Fails if two entries share a name (`--block`, `--net`).
fn unique<T>(items: &[T], key: impl Fn(&T) -> &str, message: &str) -> Result<(), CliError> {
    let names: BTreeSet<&str> = items.iter().map(key).collect();
    if names.len() == items.len() {
        Ok(())
    } else {
        Err(CliError::Invalid(message.to_string()))
    }
}

/// The values in order of first appearance, duplicates dropped (the lists
/// are sets on the wire).
fn dedup(values: &[i64]) -> Vec<i64> {
    let mut seen = BTreeSet::new();
    values.iter().copied().filter(|v| seen.insert(*v)).collect()
}

/// Defines a subcommand struct with the options a unikernel configuration
/// is built from, which `create` and `restart` share.
macro_rules! with_unikernel_options {
    ($(#[$attr:meta])* struct $name:ident { $($fields:tt)* }) => {
        $(#[$attr])*
        struct $name {
            $($fields)*

            /// start-up priority, lower starts first (default: 50)
            #[argh(option, arg_name = "N", from_str_fn(parse_int))]
            startup: Option<i64>,

            /// do not pass --name=<label> to the unikernel
            #[argh(switch)]
            no_add_name: bool,

            /// CPU id to pin the unikernel to (repeatable; default: 0)
            #[argh(option, arg_name = "N", from_str_fn(parse_int))]
            cpu: Vec<i64>,

            /// memory in MB (default: 32)
            #[argh(option, arg_name = "MB", from_str_fn(parse_int), default = "32")]
            mem: i64,

            /// boot argument (repeatable; a value starting with '-' needs
            /// the '=' form, e.g. --arg=--ipv4=10.0.0.2/24)
            #[argh(option, arg_name = "ARG")]
            arg: Vec<String>,

            /// block device NAME[@SECTOR-SIZE] or NAME:DEVICE[@SECTOR-SIZE]
            /// (repeatable; sector size a power of two >= 512)
            #[argh(option, arg_name = "SPEC", from_str_fn(parse_block_spec))]
            block: Vec<BlockSpec>,

            /// network interface NAME[@MAC] or NAME:BRIDGE[@MAC] (repeatable;
            /// MAC as xx:xx:xx:xx:xx:xx, default derived from the name)
            #[argh(option, arg_name = "SPEC", from_str_fn(parse_net_spec))]
            net: Vec<NetSpec>,

            /// restart the unikernel when it exits (alias: --restart)
            #[argh(switch)]
            restart_on_fail: bool,

            /// exit code to restart on (repeatable; default: any but 1 and
            /// 60-64); ignored without --restart-on-fail
            #[argh(option, arg_name = "N", from_str_fn(parse_int))]
            exit_code: Vec<i64>,

            /// number of virtual CPUs, bhyve only (default: 1)
            #[argh(option, arg_name = "N", from_str_fn(parse_int), default = "1")]
            cpus: i64,

            /// boot partition for bhyve's grub loader
            #[argh(option, arg_name = "PARTITION")]
            linux_boot: Option<String>,
        }

        impl $name {
            /// The configuration the options describe.
            fn unikernel_arguments(&self) -> Result<UnikernelArguments, CliError> {
                unique(&self.net, |n| &n.netif, "Bridge names must be a set")?;
                unique(&self.block, |b| &b.name, "Block devices must be a set")?;
                let cpuids = if self.cpu.is_empty() { vec![0] } else { dedup(&self.cpu) };
                let fail_behaviour = if self.restart_on_fail {
                    FailBehaviour::Restart(dedup(&self.exit_code))
                } else {
                    FailBehaviour::Quit
                };
                Ok(UnikernelArguments {
                    fail_behaviour,
                    startup: self.startup,
                    add_name: !self.no_add_name,
                    cpuids,
                    memory: self.mem,
                    blocks: self.block.clone(),
                    bridges: self.net.clone(),
                    argv: (!self.arg.is_empty()).then(|| self.arg.clone()),
                    cpus: self.cpus,
                    linux_boot_partition: self.linux_boot.clone(),
                })
            }
        }
    };
}

const RESTART_ALIAS: &[(&str, &str)] = &[("--restart", "--restart-on-fail")];

with_unikernel_options! {
    /// create a unikernel: read IMAGE, check its Solo5 manifest against
    /// --block and --net, compress it if asked to, and send it to
    /// albatrossd
    #[derive(FromArgs, ArgsInfo)]
    struct Create {
        /// name of the unikernel, e.g. hello or tenant:hello
        #[argh(positional, arg_name = "NAME", from_str_fn(parse_name))]
        name: Name,

        /// the unikernel image (required for solo5; bhyve sends none)
        #[argh(positional, arg_name = "IMAGE")]
        image: Option<PathBuf>,

        /// hypervisor: solo5 (default) or bhyve
        #[argh(option, arg_name = "TYP", from_str_fn(parse_typ), default = "Typ::Solo5")]
        typ: Typ,

        /// replace a running unikernel of the same name
        #[argh(switch, short = 'f')]
        force: bool,

        /// zlib level 0 (none) to 9 for the image (default: 0 locally, 9
        /// with --destination or --csr)
        #[argh(option, arg_name = "LEVEL", from_str_fn(parse_compression))]
        compression_level: Option<u32>,
    }
}

/// zlib-compresses `data` at `level` (> 0), or returns it as is.
fn compress(level: u32, data: Vec<u8>) -> Result<(bool, Vec<u8>), CliError> {
    if level == 0 {
        return Ok((false, data));
    }
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::new(level));
    encoder.write_all(&data)?;
    Ok((true, encoder.finish()?))
}

/// Checks that the image's Solo5 manifest declares exactly the block and
/// network devices of the configuration (§10.2 step 5).
fn check_manifest(
    path: &std::path::Path,
    image: &[u8],
    args: &UnikernelArguments,
) -> Result<(), CliError> {
    let info = crate::solo5::read_image_info(image)
        .map_err(|e| CliError::Invalid(format!("image {}: {e}", path.display())))?;
    let blocks = args.blocks.iter().map(|b| b.name.as_str());
    let nets = args.bridges.iter().map(|n| n.netif.as_str());
    info.manifest
        .check_devices(blocks, nets)
        .map_err(|e| CliError::Invalid(format!("image {}: {e}", path.display())))
}

impl Subcommand for Create {
    const ALIASES: &'static [(&'static str, &'static str)] = RESTART_ALIAS;

    fn run(self, ctx: &Context) -> Result<Exit, CliError> {
        let args = self.unikernel_arguments()?;
        let (compressed, image) = match (self.typ, &self.image) {
            (Typ::Solo5, None) => {
                return Err(CliError::Invalid(
                    "an IMAGE is required for solo5 unikernels".to_string(),
                ))
            }
            (Typ::Solo5, Some(path)) => {
                let image = std::fs::read(path).map_err(|source| CliError::ReadFile {
                    what: "image",
                    path: path.clone(),
                    source,
                })?;
                check_manifest(path, &image, &args)?;
                compress(ctx.compression(self.compression_level), image)?
            }
            (Typ::Bhyve, image) => {
                if let Some(path) = image {
                    ctx.report.warn(&format!(
                        "{} is not sent: bhyve boots from block device 0",
                        path.display()
                    ));
                }
                (false, Vec::new())
            }
        };
        let config = UnikernelConfig {
            typ: self.typ,
            compressed,
            image,
            args,
        };
        let command = if self.force {
            UnikernelCmd::ForceCreate(config)
        } else {
            UnikernelCmd::Create(config)
        };
        execute(ctx, &[Request::new(self.name, Command::Unikernel(command))])
    }
}

/// destroy a unikernel
#[derive(FromArgs, ArgsInfo)]
struct Destroy {
    /// name of the unikernel
    #[argh(positional, arg_name = "NAME", from_str_fn(parse_name))]
    name: Name,
}

impl Subcommand for Destroy {
    fn run(self, ctx: &Context) -> Result<Exit, CliError> {
        execute(
            ctx,
            &[Request::new(
                self.name,
                Command::Unikernel(UnikernelCmd::Destroy),
            )],
        )
    }
}

with_unikernel_options! {
    /// restart a unikernel, with its configuration or (with
    /// --replace-arguments) with the one the other options describe
    #[derive(FromArgs, ArgsInfo)]
    struct Restart {
        /// name of the unikernel
        #[argh(positional, arg_name = "NAME", from_str_fn(parse_name))]
        name: Name,

        /// replace the configuration by the given options (without it they
        /// are ignored)
        #[argh(switch)]
        replace_arguments: bool,
    }
}

impl Subcommand for Restart {
    const ALIASES: &'static [(&'static str, &'static str)] = RESTART_ALIAS;

    fn run(self, ctx: &Context) -> Result<Exit, CliError> {
        let args = if self.replace_arguments {
            Some(self.unikernel_arguments()?)
        } else {
            None
        };
        execute(
            ctx,
            &[Request::new(
                self.name,
                Command::Unikernel(UnikernelCmd::Restart(args)),
            )],
        )
    }
}

/// show information about running unikernels
#[derive(FromArgs, ArgsInfo)]
struct Info {
    /// a unikernel, or a path ending in ':' for all below it (default: all)
    #[argh(
        option,
        short = 'n',
        arg_name = "NAME",
        from_str_fn(parse_name),
        default = "Name::root()"
    )]
    name: Name,
}

impl Subcommand for Info {
    fn run(self, ctx: &Context) -> Result<Exit, CliError> {
        let command = Command::Unikernel(UnikernelCmd::Info(InfoVersion::Current));
        let exit = execute(ctx, &[Request::new(self.name.clone(), command)])?;
        if exit == Exit::Success {
            // Restart counts and waiting unikernels, from daemons that have
            // the status extension; others close the connection, and that
            // is not an error.
            let status = Command::Unikernel(UnikernelCmd::Status);
            execute_optional(ctx, &Request::new(self.name, status));
        }
        Ok(exit)
    }
}

/// download the image of a running unikernel into a file in the system's
/// temporary directory
#[derive(FromArgs, ArgsInfo)]
struct Get {
    /// name of the unikernel
    #[argh(positional, arg_name = "NAME", from_str_fn(parse_name))]
    name: Name,

    /// zlib level 0 (none) to 9 for the transfer (default: 0 locally, 9
    /// with --destination)
    #[argh(option, arg_name = "LEVEL", from_str_fn(parse_compression))]
    compression_level: Option<u32>,
}

impl Subcommand for Get {
    fn run(self, ctx: &Context) -> Result<Exit, CliError> {
        let level = i64::from(ctx.compression(self.compression_level));
        execute(
            ctx,
            &[Request::new(
                self.name,
                Command::Unikernel(UnikernelCmd::Get(level)),
            )],
        )
    }
}

/// update a unikernel to the latest build of a builder-web repository
#[derive(FromArgs, ArgsInfo)]
// Parsed and validated; the HTTP part that reads them comes later.
#[allow(dead_code)]
struct Update {
    /// name of the unikernel
    #[argh(positional, arg_name = "NAME", from_str_fn(parse_name))]
    name: Name,

    /// builder-web repository (default: https://builds.robur.coop)
    #[argh(
        option,
        arg_name = "URL",
        from_str_fn(parse_http_host),
        default = "String::from(\"https://builds.robur.coop\")"
    )]
    http_host: String,

    /// only show whether an update exists (alias: --dry-run)
    #[argh(switch)]
    dryrun: bool,

    /// zlib level 0 (none) to 9 for the new image (default: 0 locally, 9
    /// with --destination)
    #[argh(option, arg_name = "LEVEL", from_str_fn(parse_compression))]
    compression_level: Option<u32>,
}

impl Subcommand for Update {
    const ALIASES: &'static [(&'static str, &'static str)] = &[("--dry-run", "--dryrun")];

    fn run(self, ctx: &Context) -> Result<Exit, CliError> {
        if matches!(ctx.mode, Mode::Csr(_)) {
            return Err(CliError::Invalid(
                "update with CSR not supported".to_string(),
            ));
        }
        Err(CliError::NotImplemented(
            "update (fetching unikernels over HTTP)".to_string(),
        ))
    }
}

/// show the policies at and below a path
#[derive(FromArgs, ArgsInfo)]
struct PolicyInfo {
    /// the path (default: the root, i.e. all policies)
    #[argh(
        option,
        short = 'p',
        arg_name = "PATH",
        from_str_fn(parse_path),
        default = "Path::root()"
    )]
    path: Path,
}

impl Subcommand for PolicyInfo {
    fn run(self, ctx: &Context) -> Result<Exit, CliError> {
        let command = Command::Policy(PolicyCmd::Info);
        execute(ctx, &[Request::new(Name::of_path(self.path), command)])
    }
}

/// add or replace the policy of a path
#[derive(FromArgs, ArgsInfo)]
struct AddPolicy {
    /// the path, e.g. tenant or tenant:sub
    #[argh(positional, arg_name = "PATH", from_str_fn(parse_path))]
    path: Path,

    /// how many unikernels may run at and below the path at once
    #[argh(positional, arg_name = "UNIKERNELS", from_str_fn(parse_int))]
    unikernels: i64,

    /// memory in MB for all of them together (default: 512)
    #[argh(option, arg_name = "MB", from_str_fn(parse_int), default = "512")]
    mem: i64,

    /// CPU id they may use (repeatable; default: 0)
    #[argh(option, arg_name = "N", from_str_fn(parse_int))]
    cpu: Vec<i64>,

    /// block storage in MB (alias: --size; default: none allowed)
    #[argh(option, arg_name = "MB", from_str_fn(parse_int))]
    block: Option<i64>,

    /// host bridge they may use (repeatable; alias: --bridge)
    #[argh(option, arg_name = "NAME")]
    network: Vec<String>,
}

impl Subcommand for AddPolicy {
    const ALIASES: &'static [(&'static str, &'static str)] =
        &[("--size", "--block"), ("--bridge", "--network")];

    fn run(self, ctx: &Context) -> Result<Exit, CliError> {
        let cpus = if self.cpu.is_empty() {
            vec![0]
        } else {
            self.cpu
        };
        let cpuids: BTreeSet<i64> = cpus.iter().copied().collect();
        if cpuids.len() != cpus.len() {
            ctx.report.warn("CPUids is not a set");
        }
        let bridges: BTreeSet<String> = self.network.iter().cloned().collect();
        if bridges.len() != self.network.len() {
            ctx.report.warn("Bridges is not a set");
        }
        let policy = Policy {
            unikernels: self.unikernels,
            cpuids,
            memory: self.mem,
            block: self.block,
            bridges,
        };
        policy
            .check_usable()
            .map_err(|e| CliError::Invalid(e.to_string()))?;
        if policy.bridges.is_empty() {
            ctx.report.warn("policy without any network access");
        }
        let command = Command::Policy(PolicyCmd::Add(policy));
        execute(ctx, &[Request::new(Name::of_path(self.path), command)])
    }
}

/// remove the policy of a path
#[derive(FromArgs, ArgsInfo)]
struct RemovePolicy {
    /// the path (default: the root)
    #[argh(
        option,
        short = 'p',
        arg_name = "PATH",
        from_str_fn(parse_path),
        default = "Path::root()"
    )]
    path: Path,
}

impl Subcommand for RemovePolicy {
    fn run(self, ctx: &Context) -> Result<Exit, CliError> {
        let command = Command::Policy(PolicyCmd::Remove);
        execute(ctx, &[Request::new(Name::of_path(self.path), command)])
    }
}

/// show block devices
#[derive(FromArgs, ArgsInfo)]
struct BlockInfo {
    /// a block device, or a path ending in ':' for all below it (default:
    /// all)
    #[argh(
        option,
        arg_name = "NAME",
        from_str_fn(parse_name),
        default = "Name::root()"
    )]
    name: Name,
}

impl Subcommand for BlockInfo {
    fn run(self, ctx: &Context) -> Result<Exit, CliError> {
        execute(
            ctx,
            &[Request::new(self.name, Command::Block(BlockCmd::Info))],
        )
    }
}

/// create a block device, empty or filled from --data
#[derive(FromArgs, ArgsInfo)]
struct CreateBlock {
    /// name of the block device
    #[argh(positional, arg_name = "NAME", from_str_fn(parse_name))]
    name: Name,

    /// size in MB
    #[argh(positional, arg_name = "SIZE", from_str_fn(parse_int))]
    size: i64,

    /// initial content, sent after the device is created
    #[argh(option, arg_name = "FILE", from_str_fn(parse_file))]
    data: Option<PathBuf>,

    /// zlib level 0 (none) to 9 for the content (default: 0 locally, 9 with
    /// --destination)
    #[argh(option, arg_name = "LEVEL", from_str_fn(parse_compression))]
    compression_level: Option<u32>,
}

impl Subcommand for CreateBlock {
    fn run(self, ctx: &Context) -> Result<Exit, CliError> {
        let mut requests = vec![Request::new(
            self.name.clone(),
            Command::Block(BlockCmd::Add(self.size)),
        )];
        if let Some(path) = self.data {
            let limit = self
                .size
                .checked_mul(1 << 20)
                .filter(|l| *l > 0)
                .ok_or_else(|| {
                    CliError::Invalid(format!("block size of {} MB is out of range", self.size))
                })?;
            let len = std::fs::metadata(&path)
                .map_err(|source| CliError::ReadFile {
                    what: "data file",
                    path: path.clone(),
                    source,
                })?
                .len();
            if u64::try_from(limit).is_ok_and(|limit| len > limit) {
                return Err(CliError::Invalid(format!(
                    "data exceeds size: {} has {len} bytes, the device {} MB",
                    path.display(),
                    self.size
                )));
            }
            requests.push(set_request(ctx, self.name, path, self.compression_level));
        }
        execute(ctx, &requests)
    }
}

/// `block set` streaming the content of `path`.
fn set_request(ctx: &Context, name: Name, path: PathBuf, level: Option<u32>) -> Request {
    let level = ctx.compression(level);
    Request {
        name,
        command: Command::Block(BlockCmd::Set(level > 0)),
        upload: Some(Upload { path, level }),
    }
}

/// overwrite a block device with the content of a file
#[derive(FromArgs, ArgsInfo)]
struct SetBlock {
    /// name of the block device
    #[argh(positional, arg_name = "NAME", from_str_fn(parse_name))]
    name: Name,

    /// the new content
    #[argh(positional, arg_name = "FILE", from_str_fn(parse_file))]
    file: PathBuf,

    /// zlib level 0 (none) to 9 for the content (default: 0 locally, 9 with
    /// --destination)
    #[argh(option, arg_name = "LEVEL", from_str_fn(parse_compression))]
    compression_level: Option<u32>,
}

impl Subcommand for SetBlock {
    fn run(self, ctx: &Context) -> Result<Exit, CliError> {
        execute(
            ctx,
            &[set_request(
                ctx,
                self.name,
                self.file,
                self.compression_level,
            )],
        )
    }
}

/// dump the content of a block device into a file in the system's
/// temporary directory
#[derive(FromArgs, ArgsInfo)]
struct DumpBlock {
    /// name of the block device
    #[argh(positional, arg_name = "NAME", from_str_fn(parse_name))]
    name: Name,

    /// zlib level 0 (none) to 9 for the transfer (default: 0 locally, 9
    /// with --destination)
    #[argh(option, arg_name = "LEVEL", from_str_fn(parse_compression))]
    compression_level: Option<u32>,
}

impl Subcommand for DumpBlock {
    fn run(self, ctx: &Context) -> Result<Exit, CliError> {
        let level = i64::from(ctx.compression(self.compression_level));
        execute(
            ctx,
            &[Request::new(
                self.name,
                Command::Block(BlockCmd::Dump(level)),
            )],
        )
    }
}

/// destroy a block device
#[derive(FromArgs, ArgsInfo)]
struct DestroyBlock {
    /// name of the block device
    #[argh(positional, arg_name = "NAME", from_str_fn(parse_name))]
    name: Name,
}

impl Subcommand for DestroyBlock {
    fn run(self, ctx: &Context) -> Result<Exit, CliError> {
        execute(
            ctx,
            &[Request::new(self.name, Command::Block(BlockCmd::Remove))],
        )
    }
}

/// show the console output of a unikernel and follow it until interrupted
#[derive(FromArgs, ArgsInfo)]
struct Console {
    /// name of the unikernel
    #[argh(positional, arg_name = "NAME", from_str_fn(parse_name))]
    name: Name,

    /// lines since this time (RFC 3339, e.g. 2025-08-22T13:04:43Z; a bare
    /// date means midnight UTC); wins over --count
    #[argh(option, arg_name = "TIME", from_str_fn(parse_since))]
    since: Option<Timestamp>,

    /// the last N lines (default: 20)
    #[argh(option, arg_name = "N", from_str_fn(parse_int), default = "20")]
    count: i64,
}

impl Subcommand for Console {
    fn run(self, ctx: &Context) -> Result<Exit, CliError> {
        let from = self
            .since
            .map_or(SinceCount::Count(self.count), SinceCount::Since);
        execute(
            ctx,
            &[Request::new(
                self.name,
                Command::Console(ConsoleCmd::Subscribe(from)),
            )],
        )
    }
}

/// list the consoles of unikernels that stopped and whose output is kept
#[derive(FromArgs, ArgsInfo)]
struct InactiveConsoles {
    /// the path (default: the root)
    #[argh(
        option,
        short = 'p',
        arg_name = "PATH",
        from_str_fn(parse_path),
        default = "Path::root()"
    )]
    path: Path,
}

impl Subcommand for InactiveConsoles {
    fn run(self, ctx: &Context) -> Result<Exit, CliError> {
        let command = Command::Console(ConsoleCmd::ListInactive);
        execute(ctx, &[Request::new(Name::of_path(self.path), command)])
    }
}

/// show statistics of unikernels as they are gathered, until interrupted
#[derive(FromArgs, ArgsInfo)]
struct Stats {
    /// a unikernel, or a path ending in ':' (default: all)
    #[argh(
        option,
        short = 'n',
        arg_name = "NAME",
        from_str_fn(parse_name),
        default = "Name::root()"
    )]
    name: Name,
}

impl Subcommand for Stats {
    fn run(self, ctx: &Context) -> Result<Exit, CliError> {
        execute(
            ctx,
            &[Request::new(self.name, Command::Stats(StatsCmd::Subscribe))],
        )
    }
}

/// make albatross-stats gather statistics of a process (what albatrossd
/// does for every unikernel)
#[derive(FromArgs, ArgsInfo)]
struct StatsAdd {
    /// process id of the tender
    #[argh(positional, arg_name = "PID", from_str_fn(parse_int))]
    pid: i64,

    /// bhyve VMM device below /dev/vmm (default: none)
    #[argh(option, arg_name = "DEV", default = "String::new()")]
    vmmdev: String,

    /// unikernel interface and its tap device as BRIDGE:TAP (repeatable)
    #[argh(option, arg_name = "BRIDGE:TAP", from_str_fn(parse_bridge_tap))]
    bridge: Vec<(String, String)>,

    /// name of the unikernel (default: the root)
    #[argh(
        option,
        short = 'n',
        arg_name = "NAME",
        from_str_fn(parse_name),
        default = "Name::root()"
    )]
    name: Name,
}

impl Subcommand for StatsAdd {
    fn run(self, ctx: &Context) -> Result<Exit, CliError> {
        let command = StatsCmd::Add {
            vmmdev: self.vmmdev,
            pid: self.pid,
            network: self.bridge,
        };
        execute(ctx, &[Request::new(self.name, Command::Stats(command))])
    }
}

/// make albatross-stats stop gathering statistics of a unikernel
#[derive(FromArgs, ArgsInfo)]
struct StatsRemove {
    /// name of the unikernel (default: the root)
    #[argh(
        option,
        short = 'n',
        arg_name = "NAME",
        from_str_fn(parse_name),
        default = "Name::root()"
    )]
    name: Name,
}

impl Subcommand for StatsRemove {
    fn run(self, ctx: &Context) -> Result<Exit, CliError> {
        execute(
            ctx,
            &[Request::new(self.name, Command::Stats(StatsCmd::Remove))],
        )
    }
}

/// execute the command embedded in a client certificate on a remote TLS
/// endpoint (needs --destination)
#[derive(FromArgs, ArgsInfo)]
// Parsed and validated; TLS, which reads them, comes later.
#[allow(dead_code)]
struct Certificate {
    /// the client certificate (chain), PEM
    #[argh(positional, arg_name = "CERT", from_str_fn(parse_file))]
    cert: PathBuf,

    /// its private key, PEM
    #[argh(positional, arg_name = "KEY", from_str_fn(parse_file))]
    key: PathBuf,
}

impl Subcommand for Certificate {
    const COMMON: &'static [&'static str] = &[
        "--destination",
        "--server-ca",
        "--verbose",
        "--quiet",
        "--verbosity",
        "--color",
    ];

    fn run(self, ctx: &Context) -> Result<Exit, CliError> {
        match &ctx.mode {
            Mode::Remote(..) => Err(CliError::NotImplemented(
                "certificate (commands over TLS)".to_string(),
            )),
            _ => Err(CliError::Invalid("no destination provided".to_string())),
        }
    }
}

/// sign a certificate signing request with a CA certificate and key
#[derive(FromArgs, ArgsInfo)]
// Parsed and validated; certificate handling comes later.
#[allow(dead_code)]
struct Sign {
    /// the CA certificate, PEM
    #[argh(positional, arg_name = "CACERT", from_str_fn(parse_file))]
    cacert: PathBuf,

    /// database file the serial number and name are appended to
    #[argh(positional, arg_name = "DB")]
    db: PathBuf,

    /// the CA's private key, PEM
    #[argh(positional, arg_name = "KEY", from_str_fn(parse_file))]
    key: PathBuf,

    /// the request, PEM
    #[argh(positional, arg_name = "CSR", from_str_fn(parse_file))]
    csr: PathBuf,

    /// validity in days (default: 365 for policies and servers, 1 for
    /// commands)
    #[argh(option, arg_name = "N", from_str_fn(parse_int))]
    days: Option<i64>,
}

impl Subcommand for Sign {
    const COMMON: &'static [&'static str] = common::LOGGING;

    fn run(self, _ctx: &Context) -> Result<Exit, CliError> {
        Err(CliError::NotImplemented(
            "sign (certificate signing)".to_string(),
        ))
    }
}

/// generate a self-signed CA (cacert.pem) and a server certificate signed by it
#[derive(FromArgs, ArgsInfo)]
// Parsed and validated; certificate handling comes later.
#[allow(dead_code)]
struct Generate {
    /// common name of the CA; its key is NAME.key
    #[argh(positional, arg_name = "NAME")]
    name: String,

    /// database file the server certificate's serial number is appended to
    #[argh(positional, arg_name = "DB")]
    db: PathBuf,

    /// validity of the CA in days (default: 3650)
    #[argh(option, arg_name = "N", from_str_fn(parse_int), default = "3650")]
    days: i64,

    /// common name of the server certificate (default: server)
    #[argh(option, arg_name = "NAME", default = "String::from(\"server\")")]
    server: String,

    /// validity of the server certificate in days (default: 365)
    #[argh(option, arg_name = "N", from_str_fn(parse_int), default = "365")]
    server_days: i64,
}

impl Subcommand for Generate {
    const COMMON: &'static [&'static str] = &[
        "--key-type",
        "--verbose",
        "--quiet",
        "--verbosity",
        "--color",
    ];

    fn run(self, _ctx: &Context) -> Result<Exit, CliError> {
        Err(CliError::NotImplemented(
            "generate (certificate authority creation)".to_string(),
        ))
    }
}

/// print every unikernel and policy of a state file (any layout)
#[derive(FromArgs, ArgsInfo)]
struct InspectDump {
    /// the state file; a name without '/' is taken inside --dbdir (default:
    /// state)
    #[argh(option, arg_name = "FILE")]
    file: Option<String>,

    /// albatross database directory (default: /var/lib/albatross on Linux,
    /// /var/db/albatross elsewhere)
    #[argh(option, arg_name = "DIR", from_str_fn(parse_dir))]
    dbdir: Option<PathBuf>,
}

impl Subcommand for InspectDump {
    const COMMON: &'static [&'static str] = common::LOGGING;

    fn run(self, _ctx: &Context) -> Result<Exit, CliError> {
        dump::inspect(&dump::inspect_source(
            self.file.as_deref(),
            self.dbdir.as_deref(),
        )?)
    }
}

/// write the daemon's store as an upstream state file, for upstream's
/// albatrossd or for a backup
#[derive(FromArgs, ArgsInfo)]
struct ExportState {
    /// where to write (default: <dbdir>/state, the previous one kept as
    /// state.bak)
    #[argh(option, arg_name = "FILE")]
    file: Option<PathBuf>,

    /// albatross database directory (default: /var/lib/albatross on Linux,
    /// /var/db/albatross elsewhere)
    #[argh(option, arg_name = "DIR", from_str_fn(parse_dir))]
    dbdir: Option<PathBuf>,

    /// state file layout: 6 (albatross 2.3 and later, the default), 5
    /// (2.0 to 2.2) or 4 (1.5); the older ones hold one CPU per unikernel
    #[argh(
        option,
        arg_name = "N",
        from_str_fn(parse_layout),
        default = "StateLayout::Current"
    )]
    layout: StateLayout,
}

fn parse_layout(text: &str) -> Result<StateLayout, String> {
    match text {
        "6" => Ok(StateLayout::Current),
        "5" => Ok(StateLayout::V4AndPolicies),
        "4" => Ok(StateLayout::V3AndPolicies),
        _ => Err(format!("invalid layout '{text}', expected 6, 5 or 4")),
    }
}

impl Subcommand for ExportState {
    const COMMON: &'static [&'static str] = common::LOGGING;

    fn run(self, _ctx: &Context) -> Result<Exit, CliError> {
        dump::export(self.dbdir.as_deref(), self.file.as_deref(), self.layout)
    }
}

/// write the image of a unikernel from a state file into a file in the
/// system's temporary directory and print its configuration
#[derive(FromArgs, ArgsInfo)]
struct ExtractDump {
    /// name of the unikernel
    #[argh(positional, arg_name = "NAME", from_str_fn(parse_name))]
    name: Name,

    /// the state file; a name without '/' is taken inside --dbdir (default:
    /// state)
    #[argh(option, arg_name = "FILE")]
    file: Option<String>,

    /// albatross database directory (default: /var/lib/albatross on Linux,
    /// /var/db/albatross elsewhere)
    #[argh(option, arg_name = "DIR", from_str_fn(parse_dir))]
    dbdir: Option<PathBuf>,
}

impl Subcommand for ExtractDump {
    const COMMON: &'static [&'static str] = common::LOGGING;

    fn run(self, ctx: &Context) -> Result<Exit, CliError> {
        dump::extract(ctx, self.file.as_deref(), self.dbdir.as_deref(), &self.name)
    }
}

/// One entry of the client's command table.
pub struct ClientCommand {
    /// The subcommand name.
    pub name: &'static str,
    /// Whether it sends a wire command (and so makes sense as a request).
    pub sends_command: bool,
    /// The subcommand this name is an alias of, if it is one.
    pub alias_of: Option<&'static str>,
    /// Its one-line description.
    pub description: fn() -> &'static str,
    /// Its complete `--help` text, given the command path.
    pub help: fn(&[&str]) -> String,
    /// Parses the arguments after the name and runs it.
    pub run: RunFn,
}

const fn entry<T: Subcommand>(name: &'static str, sends_command: bool) -> ClientCommand {
    ClientCommand {
        name,
        sends_command,
        alias_of: None,
        description: || T::get_args_info().description,
        help: help::<T>,
        run: run::<T>,
    }
}

/// The client subcommands in the order `--help` lists them.
pub const COMMANDS: &[ClientCommand] = &[
    entry::<Create>("create", true),
    entry::<Destroy>("destroy", true),
    entry::<Restart>("restart", true),
    entry::<Info>("info", true),
    entry::<Get>("get", true),
    entry::<Update>("update", true),
    entry::<PolicyInfo>("policy", true),
    entry::<AddPolicy>("add-policy", true),
    ClientCommand {
        alias_of: Some("add-policy"),
        ..entry::<AddPolicy>("replace-policy", true)
    },
    entry::<RemovePolicy>("remove-policy", true),
    entry::<BlockInfo>("block", true),
    entry::<CreateBlock>("create-block", true),
    entry::<SetBlock>("set-block", true),
    entry::<DumpBlock>("dump-block", true),
    entry::<DestroyBlock>("destroy-block", true),
    entry::<Console>("console", true),
    entry::<InactiveConsoles>("inactive-consoles", true),
    entry::<Stats>("stats", true),
    entry::<StatsAdd>("stats-add", true),
    entry::<StatsRemove>("stats-remove", true),
    entry::<Certificate>("certificate", false),
    entry::<Sign>("sign", false),
    entry::<Generate>("generate", false),
    entry::<InspectDump>("inspect-dump", false),
    entry::<ExtractDump>("extract-dump", false),
    entry::<ExportState>("export-state", false),
];

/// The subcommand's own help, its common options and the exit statuses.
fn help<T: Subcommand>(cmd: &[&str]) -> String {
    let mut text = super::args::argh_help::<T>(cmd);
    text.push_str("\n\n");
    text.push_str(&super::args::options_section(
        "Common options",
        &CommonOptions::get_args_info(),
        T::COMMON,
    ));
    text.push_str("\nExit status:\n");
    for (exit, meaning) in Exit::ALL {
        text.push_str(&format!("  {:<4}{meaning}\n", exit.code()));
    }
    text
}

fn run<T: Subcommand>(inv: &Invocation, cmd: &[&str], args: &[String]) -> Result<Exit, CliError> {
    let Some((own, common)) = super::parse::<T>(cmd, args, T::COMMON, T::ALIASES, help::<T>)?
    else {
        return Ok(Exit::Success);
    };
    let ctx = common.into_context(&inv.prog, inv.forced_csr)?;
    own.run(&ctx)
}
