//! The messages of wire version 5 (§5) as Rust values.
//!
//! Legacy layouts that upstream still decodes are read into the current
//! values (with the documented defaults), so the rest of the program sees
//! one shape per command. Where the legacy form changes the answer (old
//! info queries, old block commands) the variant says so.

use crate::model::{Name, Policy, Timestamp, UnikernelArguments, UnikernelConfig, UnikernelInfo};

/// The only wire version spoken.
pub const WIRE_VERSION: i64 = 5;

/// The header of every message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Always 5 when decoded.
    pub version: i64,
    /// Sequence number (an `int64` counter on the wire).
    pub sequence: i64,
    /// The object the message is about.
    pub name: Name,
}

impl Header {
    /// A version-5 header with sequence 0, as clients send.
    pub fn new(name: Name) -> Header {
        Header {
            version: WIRE_VERSION,
            sequence: 0,
            name,
        }
    }
}

/// One complete message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wire {
    /// Version, sequence and name.
    pub header: Header,
    /// What the message says.
    pub payload: Payload,
}

/// What a message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// A request.
    Command(Command),
    /// A successful answer.
    Reply(Success),
    /// An error answer, human readable.
    Failure(String),
    /// Streamed data (console lines, statistics, block dumps).
    Data(Data),
}

/// A request (§5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// For the console daemon.
    Console(ConsoleCmd),
    /// For the statistics daemon.
    Stats(StatsCmd),
    /// Unikernel life cycle.
    Unikernel(UnikernelCmd),
    /// Policies.
    Policy(PolicyCmd),
    /// Block devices.
    Block(BlockCmd),
}

/// Console commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleCmd {
    /// albatrossd registers a unikernel; the value is the path's
    /// unikernel limit.
    Add(i64),
    /// Subscribe to a unikernel's console.
    Subscribe(SinceCount),
    /// List consoles of unikernels that are not running.
    ListInactive,
}

/// Where a console subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinceCount {
    /// Lines from this time on.
    Since(Timestamp),
    /// The last n lines.
    Count(i64),
}

/// Statistics commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatsCmd {
    /// Start gathering for a tender process.
    Add {
        /// bhyve device (`""` on Linux).
        vmmdev: String,
        /// Tender process id.
        pid: i64,
        /// (unikernel-side interface, tap) pairs.
        network: Vec<(String, String)>,
    },
    /// Stop gathering.
    Remove,
    /// Subscribe to statistics.
    Subscribe,
    /// The stats daemon announces itself to albatrossd.
    Initial,
}

/// Which info reply layout a query asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InfoVersion {
    /// `info-old4` `[15]`, answered with success `[9]`.
    Old4,
    /// `info-old5` `[18]`, answered with success `[11]`.
    Old5,
    /// `info` `[19]`, answered with success `[13]`.
    Current,
}

/// Unikernel commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnikernelCmd {
    /// Query unikernels.
    Info(InfoVersion),
    /// Create (any layout).
    Create(UnikernelConfig),
    /// Create, replacing a running one of the same name.
    ForceCreate(UnikernelConfig),
    /// Destroy.
    Destroy,
    /// Fetch the image at a compression level (0 = none).
    Get(i64),
    /// Restart, with the old arguments (`None`) or new ones.
    Restart(Option<UnikernelArguments>),
    /// Restart counts and schedules (tag `[22]`, an albatross-rs
    /// extension that upstream daemons do not decode; see docs/compat.md).
    Status,
}

/// Policy commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyCmd {
    /// Policies at and below the path.
    Info,
    /// Insert or replace the policy at the path.
    Add(Policy),
    /// Remove the policy at the path.
    Remove,
}

/// Block device commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockCmd {
    /// Devices at and below the path.
    Info,
    /// Create an empty device of this many MB.
    Add(i64),
    /// Remove a device.
    Remove,
    /// Legacy create with optional inline content.
    AddOld {
        /// Size in MB.
        size: i64,
        /// Whether `data` is zlib-compressed.
        compressed: bool,
        /// Initial content.
        data: Option<Vec<u8>>,
    },
    /// Legacy set with inline content.
    SetOld {
        /// Whether `data` is zlib-compressed.
        compressed: bool,
        /// New content.
        data: Vec<u8>,
    },
    /// Legacy dump answered in one reply, at a compression level.
    DumpOld(i64),
    /// Streamed dump at a compression level.
    Dump(i64),
    /// Streamed set; the flag says whether the chunks are compressed.
    Set(bool),
}

/// Successful replies (§5.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Success {
    /// No content.
    Empty,
    /// A message.
    String(String),
    /// Policies with their (possibly relative) paths.
    Policies(Vec<(Name, Policy)>),
    /// Block devices: name, size in MB, active.
    BlockDevices(Vec<(Name, i64, bool)>),
    /// A unikernel image.
    UnikernelImage {
        /// Whether `image` is zlib-compressed.
        compressed: bool,
        /// The image.
        image: Vec<u8>,
    },
    /// Legacy block dump in one piece.
    OldBlockImage {
        /// Whether `image` is zlib-compressed.
        compressed: bool,
        /// The content.
        image: Vec<u8>,
    },
    /// Info in the layout of `info-old4` (one cpuid each).
    OldUnikernelInfo4(Vec<(Name, UnikernelInfo)>),
    /// A block dump stream follows; the flag says whether compressed.
    BlockDeviceImage(bool),
    /// Info in the layout of `info-old5` (one cpuid each).
    OldUnikernelInfo5(Vec<(Name, UnikernelInfo)>),
    /// Names of inactive consoles.
    Consoles(Vec<Name>),
    /// Info in the current layout.
    UnikernelInfo(Vec<(Name, UnikernelInfo)>),
    /// Answer to [`UnikernelCmd::Status`] (tag `[14]`, an extension).
    UnikernelStatus(Vec<UnikernelStatus>),
}

/// Where a unikernel is in its life cycle (the status extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifeCycle {
    /// Its tender is being started.
    Starting,
    /// Its tender runs.
    Running,
    /// It exited and waits for a restart attempt.
    Waiting,
    /// It is being stopped.
    Stopped,
}

/// The state of one unikernel beyond what `info` carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnikernelStatus {
    /// Its name (relative to the queried path, like info).
    pub name: Name,
    /// Where it is in its life cycle.
    pub state: LifeCycle,
    /// Restarts since it was created.
    pub restarts: i64,
    /// The tender's process id while running.
    pub pid: Option<i64>,
    /// When the next restart is attempted, while waiting.
    pub next_attempt: Option<Timestamp>,
}

/// Streamed data (§5.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// A statistics sample.
    Stats(Box<StatsData>),
    /// A console line (raw bytes, as the unikernel wrote them).
    Console {
        /// When the line was read.
        timestamp: Timestamp,
        /// The line without its newline.
        line: Vec<u8>,
    },
    /// A piece of a block dump.
    BlockChunk(Vec<u8>),
    /// End of a block dump.
    BlockEof,
}

/// A `struct timeval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timeval {
    /// Seconds.
    pub sec: i64,
    /// Microseconds.
    pub usec: i64,
}

/// A `struct rusage` (§5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[allow(missing_docs)]
pub struct RUsage {
    pub utime: Timeval,
    pub stime: Timeval,
    pub maxrss: i64,
    pub ixrss: i64,
    pub idrss: i64,
    pub isrss: i64,
    pub minflt: i64,
    pub majflt: i64,
    pub nswap: i64,
    pub inblock: i64,
    pub outblock: i64,
    pub msgsnd: i64,
    pub msgrcv: i64,
    pub nsignals: i64,
    pub nvcsw: i64,
    pub nivcsw: i64,
}

/// FreeBSD's `kinfo_proc` memory figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[allow(missing_docs)]
pub struct KinfoMem {
    pub vsize: i64,
    pub rss: i64,
    pub tsize: i64,
    pub dsize: i64,
    pub ssize: i64,
    pub runtime: i64,
    pub cow: i64,
    pub start: Timeval,
}

/// Interface counters of one tap.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[allow(missing_docs)]
pub struct IfData {
    /// Unikernel-side interface name.
    pub bridge: String,
    pub flags: i32,
    pub send_length: i32,
    pub max_send_length: i32,
    pub send_drops: i32,
    pub mtu: i32,
    pub baudrate: i64,
    pub input_packets: i64,
    pub input_errors: i64,
    pub output_packets: i64,
    pub output_errors: i64,
    pub collisions: i64,
    pub input_bytes: i64,
    pub output_bytes: i64,
    pub input_mcast: i64,
    pub output_mcast: i64,
    pub input_dropped: i64,
    pub output_dropped: i64,
}

/// One statistics sample.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatsData {
    /// Resource usage of the tender.
    pub rusage: RUsage,
    /// Per-interface counters.
    pub ifdata: Vec<IfData>,
    /// bhyve counters (decoded from upstream peers, never produced here).
    pub vmm: Option<Vec<(String, i64)>>,
    /// Memory figures (FreeBSD).
    pub kinfo_mem: Option<KinfoMem>,
}

/// The albatross X.509 extension value (§7.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertCommand {
    /// Always 5 when decoded.
    pub version: i64,
    /// The command (leaf) or `policy add` (intermediate CA).
    pub command: Command,
}
