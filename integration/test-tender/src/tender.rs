//! The tender proper: command line, image checks, devices, then the guest,
//! in the order and with the messages of solo5-hvt/solo5-spt.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

use albatross::solo5::DeviceKind;
use albatross::solo5::{read_abi, read_manifest, ElfError, Manifest, NoteKind};
use tun_tap::Iface;

use crate::cmdline::{self, OptionError, Pass1, TenderOption};
use crate::console::{self, Console};
use crate::devices::{self, strerror, Block};
use crate::guest::{self, BlockDevice, Guest, NetDevice};
use crate::personality::{Personality, ABI_VERSION};
use crate::signals;

/// Default guest memory: 512 MiB.
const DEFAULT_MEMORY: u64 = 512 << 20;
/// hvt's largest guest memory.
const HVT_MAX_MEMORY: u64 = 4 << 30;
/// hvt rounds memory down to this (huge pages).
const HVT_MEMORY_ALIGN: u64 = 2 << 20;
/// hvt's hidden network ring, taken from the top of memory at 4 GiB.
const HVT_NET_RING: u64 = 2 << 20;
/// spt's lowest guest address (`SPT_GUEST_MIN_BASE`).
const SPT_GUEST_MIN_BASE: u64 = 0x10_0000;
/// The guest command line holds at most this many characters.
const CMDLINE_MAX: usize = 8191;
/// Default block sector size.
const DEFAULT_SECTOR_SIZE: u16 = 512;

/// Why the tender stops before the guest runs; all exit 1.
#[derive(Debug)]
enum Failure {
    /// Message lines, each prefixed with the program name.
    Fatal(Vec<String>),
    /// An optional reason, then ``Invalid option: `ARG'`` and the usage.
    InvalidOption {
        /// The specific message, if the module printed one.
        reason: Option<String>,
        /// The option as given.
        arg: String,
    },
}

impl Failure {
    fn fatal(line: impl Into<String>) -> Failure {
        Failure::Fatal(vec![line.into()])
    }

    fn invalid(reason: impl Into<String>, arg: &str) -> Failure {
        Failure::InvalidOption {
            reason: Some(reason.into()),
            arg: arg.to_string(),
        }
    }
}

/// The tender as called.
struct Tender {
    prog: Arc<str>,
    personality: Personality,
}

impl Tender {
    /// A message on stderr, prefixed like `warnx` does.
    fn warn(&self, message: &str) {
        eprintln!("{}: {message}", self.prog);
    }

    fn usage(&self) {
        eprint!("{}", self.personality.usage(&self.prog));
    }

    fn report(&self, failure: &Failure) {
        match failure {
            Failure::Fatal(lines) => lines.iter().for_each(|line| self.warn(line)),
            Failure::InvalidOption { reason, arg } => {
                if let Some(reason) = reason {
                    self.warn(reason);
                }
                self.warn(&format!("Invalid option: `{arg}'"));
                self.usage();
            }
        }
    }
}

/// Runs the tender with the whole argument vector (argv\[0\] included) and
/// returns the exit status for a failure before the guest runs; once the
/// guest runs, the guest ends the process.
pub fn run(argv: &[String]) -> i32 {
    let program = argv.first().map(String::as_str).unwrap_or_default();
    let base = Path::new(program)
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some(personality) = Personality::from_program(&base) else {
        eprintln!(
            "test-tender: cannot tell the target from the program name '{base}': call me through a \
             symlink whose name contains \"hvt\" or \"spt\", such as solo5-hvt or solo5-spt"
        );
        return 1;
    };
    let tender = Tender {
        prog: Arc::from(base),
        personality,
    };
    let args = argv.get(1..).unwrap_or_default();

    let (kernel, options_end) = match cmdline::pass1(args) {
        Pass1::Help => {
            tender.usage();
            return 1;
        }
        Pass1::Version => {
            eprint!("{}", personality.version_text(&tender.prog));
            return 0;
        }
        Pass1::MissingKernel => {
            tender.warn("Missing KERNEL operand");
            tender.usage();
            return 1;
        }
        Pass1::Kernel {
            kernel,
            options_end,
        } => (kernel, options_end),
    };
    if let Err(err) = signals::install(personality, tender.prog.clone()) {
        tender.warn(&format!(
            "Could not install signal handler: {}",
            strerror(&err)
        ));
        return 1;
    }
    match prepare(
        &tender,
        &args[kernel],
        &args[..options_end],
        &args[kernel + 1..],
    ) {
        Ok(guest) => guest::run(guest),
        Err(failure) => {
            tender.report(&failure);
            1
        }
    }
}

/// The devices attached by pass 2.
#[derive(Default)]
struct Attached {
    nets: BTreeMap<String, Iface>,
    macs: BTreeMap<String, [u8; 6]>,
    blocks: BTreeMap<String, Block>,
    sector_sizes: BTreeMap<String, u16>,
    /// Taps replaced by a later `--net:` for the same name: upstream keeps
    /// them open (busy) for the life of the tender.
    replaced_taps: Vec<Iface>,
}

/// Everything between pass 1 and the guest.
fn prepare(
    tender: &Tender,
    kernel: &str,
    options: &[String],
    guest_args: &[String],
) -> Result<Guest, Failure> {
    let personality = tender.personality;
    let (manifest, entry) = load_image(personality, kernel)?;

    // Pass 2, in command-line order; the first failure stops.
    let mut memory = DEFAULT_MEMORY;
    let mut attached = Attached::default();
    for arg in options {
        let declared = |name: &str, kind: DeviceKind| {
            if manifest
                .devices
                .iter()
                .any(|d| d.name == name && d.kind == kind)
            {
                Ok(())
            } else {
                Err(Failure::invalid(
                    format!("Resource not declared in manifest: '{name}'"),
                    arg,
                ))
            }
        };
        match cmdline::parse_option(arg, personality) {
            Err(OptionError::Invalid) => return Err(Failure::InvalidOption { reason: None, arg: arg.clone() }),
            Err(OptionError::MalformedMem) => return Err(Failure::fatal("Malformed argument to --mem")),
            Err(OptionError::BadSectorSize) => {
                return Err(Failure::invalid("Block size must be a multiple of 2 greater than or equal 512", arg))
            }
            Ok(TenderOption::Mem(bytes)) => memory = bytes,
            Ok(TenderOption::ExecHeap) => tender.warn(
                "WARNING: The use of --x-exec-heap is dangerous and not recommended as it makes the heap \
                 and stack executable.",
            ),
            Ok(TenderOption::Net { name, iface }) => {
                declared(&name, DeviceKind::NetBasic)?;
                let tap = devices::attach_tap(&iface).map_err(|err| {
                    Failure::invalid(format!("Could not attach interface: {iface}: {}", strerror(&err)), arg)
                })?;
                attached.replaced_taps.extend(attached.nets.insert(name, tap));
            }
            Ok(TenderOption::NetMac { name, mac }) => {
                declared(&name, DeviceKind::NetBasic)?;
                attached.macs.insert(name, mac);
            }
            Ok(TenderOption::Block { name, path }) => {
                declared(&name, DeviceKind::BlockBasic)?;
                let block = devices::attach_block(&path).map_err(|err| {
                    // err(3) style, and without the usage.
                    Failure::fatal(format!("Could not open block device: {path}: {}", strerror(&err)))
                })?;
                attached.blocks.insert(name, block);
            }
            Ok(TenderOption::BlockSectorSize { name, size }) => {
                declared(&name, DeviceKind::BlockBasic)?;
                attached.sector_sizes.insert(name, size);
            }
        }
    }

    let memory = check_memory(tender, kernel, memory, entry)?;
    // hvt writes the guest command line before setting up its modules, spt
    // after.
    let cmdline = guest_args.join(" ");
    if personality == Personality::Hvt {
        check_cmdline(&cmdline)?;
    }
    check_blocks(&manifest, &attached)?;
    check_all_attached(&manifest, &attached)?;
    if personality == Personality::Spt {
        check_cmdline(&cmdline)?;
    }

    let mut nets = Vec::new();
    for device in manifest
        .devices
        .iter()
        .filter(|d| d.kind == DeviceKind::NetBasic)
    {
        let Some(tap) = attached.nets.remove(&device.name) else {
            continue;
        };
        let mac = match attached.macs.get(&device.name) {
            Some(mac) if *mac != [0; 6] => *mac,
            _ => random_mac().map_err(|err| {
                Failure::fatal(format!("Could not open /dev/urandom: {}", strerror(&err)))
            })?,
        };
        nets.push(NetDevice {
            name: device.name.clone(),
            tap,
            mac,
        });
    }
    let mut blocks = Vec::new();
    for device in manifest
        .devices
        .iter()
        .filter(|d| d.kind == DeviceKind::BlockBasic)
    {
        let Some(block) = attached.blocks.remove(&device.name) else {
            continue;
        };
        let sector_size = attached
            .sector_sizes
            .get(&device.name)
            .copied()
            .unwrap_or(DEFAULT_SECTOR_SIZE);
        blocks.push(BlockDevice {
            name: device.name.clone(),
            file: block.file,
            capacity: block.capacity,
            sector_size,
        });
    }
    // Replaced taps stay open (and busy) until the process ends, as in the
    // real tenders; the guest never returns, so nothing is lost.
    std::mem::forget(attached.replaced_taps);

    let visible = match personality {
        Personality::Hvt if !nets.is_empty() && memory == HVT_MAX_MEMORY => memory - HVT_NET_RING,
        _ => memory,
    };
    let (level, app_cmdline) = console::strip_runtime_options(&cmdline);
    Ok(Guest {
        console: Console::new(level, personality, tender.prog.clone()),
        personality,
        memory: visible,
        cmdline: app_cmdline.to_string(),
        nets,
        blocks,
    })
}

/// Opens KERNEL and checks its ABI note, then reads its manifest, before any
/// device is touched. Returns the manifest and the ELF entry point.
fn load_image(personality: Personality, kernel: &str) -> Result<(Manifest, u64), Failure> {
    let mut file = fs::File::open(kernel)
        .map_err(|err| Failure::fatal(format!("{kernel}: Could not open: {}", strerror(&err))))?;
    let mut image = Vec::new();
    if file.read_to_end(&mut image).is_err() {
        // pread_in_full's -1, printed as a size_t.
        return Err(Failure::fatal(format!(
            "{kernel}: pread_in_full for elf header while loading note returned {} < 0",
            u64::MAX
        )));
    }
    let image_error = |err: ElfError| {
        Failure::fatal(match err {
            ElfError::TooShort { .. }
            | ElfError::NotElf
            | ElfError::NotElf64 { .. }
            | ElfError::NotLittleEndian { .. }
            | ElfError::BadHeader { .. } => format!(
                "{kernel}: invalid executable: invalid or unsupported executable (elf header invalid while \
                 loading note)"
            ),
            ElfError::MissingNote { note: NoteKind::Abi } => {
                format!("{kernel}: No Solo5 ABI information found in executable")
            }
            ElfError::MissingNote { note: NoteKind::Manifest } => {
                format!("{kernel}: No Solo5 manifest found in executable")
            }
            ElfError::UnknownTarget { .. } => not_for_target(personality, kernel),
            ElfError::BadManifest(_) => format!("{kernel}: Solo5 manifest is invalid"),
            other => format!("{kernel}: invalid executable: {other}"),
        })
    };
    let abi = read_abi(&image).map_err(image_error)?;
    if abi.target != personality.target() {
        return Err(Failure::Fatal(vec![not_for_target(personality, kernel)]));
    }
    if abi.version != ABI_VERSION {
        return Err(Failure::fatal(format!(
            "{kernel}: Executable requests unsupported ABI version {}",
            abi.version
        )));
    }
    let manifest = read_manifest(&image).map_err(image_error)?;
    // e_entry; read_abi has checked that the 64-byte ELF header is there.
    let entry = image
        .get(24..32)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes);
    Ok((manifest, entry))
}

fn not_for_target(personality: Personality, kernel: &str) -> String {
    format!(
        "{kernel}: Executable is not for the {} target",
        personality.tender_name()
    )
}

/// The joined guest arguments must fit the tender's buffer.
fn check_cmdline(cmdline: &str) -> Result<(), Failure> {
    if cmdline.len() > CMDLINE_MAX {
        return Err(Failure::fatal(format!(
            "Guest command line too long (max={CMDLINE_MAX} characters)"
        )));
    }
    Ok(())
}

/// The memory checks each tender makes after pass 2; returns the memory the
/// guest gets.
fn check_memory(tender: &Tender, kernel: &str, memory: u64, entry: u64) -> Result<u64, Failure> {
    match tender.personality {
        Personality::Hvt => {
            if memory > HVT_MAX_MEMORY {
                return Err(Failure::fatal(format!(
                    "guest memory size {memory} bytes exceeds the max size {HVT_MAX_MEMORY} bytes"
                )));
            }
            if memory % HVT_MEMORY_ALIGN == 0 {
                return Ok(memory);
            }
            let adjusted = (memory - memory % HVT_MEMORY_ALIGN).max(HVT_MEMORY_ALIGN);
            tender.warn(&format!("adjusting memory to {adjusted} bytes"));
            Ok(adjusted)
        }
        Personality::Spt => {
            // spt maps guest memory up front; the kernel's overcommit
            // heuristic refuses more than RAM plus swap.
            if host_memory().is_some_and(|host| memory > host) {
                return Err(Failure::fatal(
                    "Error allocating guest memory: Cannot allocate memory",
                ));
            }
            if entry < SPT_GUEST_MIN_BASE || entry >= memory {
                return Err(Failure::fatal(format!(
                    "{kernel}: invalid executable: e_entry does not fall within the memory allocation range \
                     ({entry} < {SPT_GUEST_MIN_BASE} || {entry} >= {memory})"
                )));
            }
            Ok(memory)
        }
    }
}

/// MemTotal plus SwapTotal from /proc/meminfo, in bytes.
fn host_memory() -> Option<u64> {
    let meminfo = fs::read_to_string("/proc/meminfo").ok()?;
    let kib = |key: &str| {
        meminfo
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
    };
    Some((kib("MemTotal:")? + kib("SwapTotal:").unwrap_or(0)) * 1024)
}

/// Block module set-up: every attached block's size must be a non-zero
/// multiple of its sector size (alignment is checked first, as upstream).
fn check_blocks(manifest: &Manifest, attached: &Attached) -> Result<(), Failure> {
    for device in &manifest.devices {
        let Some(block) = attached.blocks.get(&device.name) else {
            continue;
        };
        let size = attached
            .sector_sizes
            .get(&device.name)
            .copied()
            .unwrap_or(DEFAULT_SECTOR_SIZE);
        let name = &device.name;
        if block.capacity % u64::from(size) != 0 {
            return Err(Failure::fatal(format!(
                "{name}: Backing storage size must be block aligned ({size} bytes)"
            )));
        }
        if block.capacity < u64::from(size) {
            return Err(Failure::fatal(format!(
                "{name}: Backing storage must be at least 1 block ({size} bytes) in size"
            )));
        }
    }
    Ok(())
}

/// Every device of the manifest must have been attached.
fn check_all_attached(manifest: &Manifest, attached: &Attached) -> Result<(), Failure> {
    let mut lines: Vec<String> = manifest
        .devices
        .iter()
        .filter(|d| match d.kind {
            DeviceKind::NetBasic => !attached.nets.contains_key(&d.name),
            DeviceKind::BlockBasic => !attached.blocks.contains_key(&d.name),
        })
        .map(|d| {
            format!(
                "Device '{}' of type {} declared but not attached.",
                d.name, d.kind
            )
        })
        .collect();
    if lines.is_empty() {
        return Ok(());
    }
    lines.push("All declared devices must be attached. See --help for syntax.".to_string());
    Err(Failure::Fatal(lines))
}

/// A random MAC, locally administered and unicast, as `tap_attach_genmac`.
fn random_mac() -> io::Result<[u8; 6]> {
    let mut mac = [0u8; 6];
    fs::File::open("/dev/urandom")?.read_exact(&mut mac)?;
    mac[0] = (mac[0] & 0xfe) | 0x02;
    Ok(mac)
}
