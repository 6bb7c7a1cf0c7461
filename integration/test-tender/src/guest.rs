//! The scripted guest: what the "unikernel" does is chosen by its own
//! command line, MirageOS style (see README.md for the language).

use std::fmt;
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::unix::fs::FileExt;
use std::process;
use std::thread;
use std::time::Duration;

use tun_tap::Iface;

use crate::console::{Console, LogLevel};
use crate::net::{self, Ipv4Cidr};
use crate::personality::{Personality, VERSION};
use crate::signals;

/// How the guest calls itself in its own messages.
const GUEST: &str = "test-unikernel";
/// MirageOS's exit code for a command-line error (before cmdliner).
const EXIT_MIRAGE_ARGUMENT: i32 = 64;
/// cmdliner's exit code for a command-line parse error.
const EXIT_CMDLINER_PARSE: i32 = 124;
/// MirageOS's exit code after `--help`/`--version`.
const EXIT_MIRAGE_HELP: i32 = 63;
/// solo5_abort() and guest traps end with this status.
const EXIT_ABORT: i32 = 255;
/// Frames up to the largest tap MTU plus the Ethernet header.
const FRAME_BUFFER: usize = 65_536 + 14;

/// One thing the guest does, in command-line order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `--test-console=TEXT`: print TEXT and a newline.
    Console(String),
    /// `--test-lines=N`: print N numbered lines.
    Lines(u64),
    /// `--test-delay-ms=M`: wait M milliseconds.
    Delay(Duration),
    /// `--test-block-write=NAME:TEXT`: write TEXT at the start of block
    /// device NAME.
    BlockWrite {
        /// Manifest name.
        device: String,
        /// What to write.
        text: String,
    },
    /// `--test-block-read=NAME`: print the text at the start of block
    /// device NAME (up to the first NUL byte or the end of the sector).
    BlockRead(String),
    /// An argument the guest does not know: printed, otherwise ignored.
    Ignored(String),
}

/// How the guest ends, after its steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Serve the network (if any) until a signal ends the tender.
    RunForever,
    /// `--test-exit=N`: `solo5_exit(N)`; the tender exits with N & 0xff.
    Exit(i32),
    /// `--test-abort[=MSG]`: `solo5_abort()` or a failed assertion; 255.
    Abort(Option<String>),
    /// `--test-signal=SIG`: the tender process gets SIG.
    Signal(i32),
    /// `--test-crash`: a guest CPU fault (hvt: trap + abort; spt: SIGSEGV).
    Crash,
}

/// The parsed guest command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// What to do, in order.
    pub steps: Vec<Step>,
    /// How to end; the last terminal option wins.
    pub end: End,
    /// `--ipv4=` (network `None`: the first one) and `--ipv4-NET=`.
    pub ipv4: Vec<(Option<String>, Ipv4Cidr)>,
    /// `--test-reject-name`: `--name=…` is an unknown option (exit 64).
    pub reject_name: bool,
    /// `--test-cmdliner-name`: `--name=…` is an unknown option under
    /// cmdliner (exit 124), and `--help`/`--version` exit 0.
    pub cmdliner: bool,
    /// `--name=X`, as albatross adds it.
    pub name: Option<String>,
    /// `--help` or `--version` was given.
    pub help: bool,
}

/// A guest option with a value it cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgError {
    /// The option, e.g. `--test-exit`.
    pub option: String,
    /// The value given.
    pub value: String,
    /// What was expected.
    pub expected: &'static str,
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "option '{}': invalid value '{}', expected {}",
            self.option, self.value, self.expected
        )
    }
}

impl std::error::Error for ArgError {}

/// Splits the application's command line into words the way a MirageOS
/// boot-argument parser does: on spaces, with `\` escaping the next
/// character (so `\ ` is a space inside a word).
pub fn split_words(cmdline: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = cmdline.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\\' => {
                word.extend(chars.next());
                in_word = true;
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// Parses the guest's words.
pub fn parse_script(words: &[String]) -> Result<Script, ArgError> {
    let mut script = Script {
        steps: Vec::new(),
        end: End::RunForever,
        ipv4: Vec::new(),
        reject_name: false,
        cmdliner: false,
        name: None,
        help: false,
    };
    for word in words {
        let (option, value) = match word.split_once('=') {
            Some((option, value)) => (option, Some(value)),
            None => (word.as_str(), None),
        };
        let error = |expected| ArgError {
            option: option.to_string(),
            value: value.unwrap_or_default().to_string(),
            expected,
        };
        match (option, value) {
            ("--test-console", Some(text)) => script.steps.push(Step::Console(text.to_string())),
            ("--test-lines", Some(n)) => script
                .steps
                .push(Step::Lines(n.parse().map_err(|_| error("a count"))?)),
            ("--test-delay-ms", Some(ms)) => script.steps.push(Step::Delay(Duration::from_millis(
                ms.parse().map_err(|_| error("milliseconds"))?,
            ))),
            ("--test-block-write", Some(spec)) => {
                let (device, text) = spec.split_once(':').ok_or_else(|| error("NAME:TEXT"))?;
                script.steps.push(Step::BlockWrite {
                    device: device.to_string(),
                    text: text.to_string(),
                });
            }
            ("--test-block-read", Some(device)) => {
                script.steps.push(Step::BlockRead(device.to_string()))
            }
            ("--test-exit", Some(n)) => {
                script.end = End::Exit(n.parse().map_err(|_| error("an integer"))?)
            }
            ("--test-abort", message) => script.end = End::Abort(message.map(str::to_string)),
            ("--test-signal", Some(sig)) => {
                script.end = End::Signal(
                    signals::parse_signal(sig).ok_or_else(|| error("a signal name or number"))?,
                )
            }
            ("--test-crash", None) => script.end = End::Crash,
            ("--test-reject-name", None) => script.reject_name = true,
            ("--test-cmdliner-name", None) => script.cmdliner = true,
            ("--name", Some(name)) => script.name = Some(name.to_string()),
            ("--help" | "--version", None) => script.help = true,
            // MirageOS options for the default stack that this guest has no use for.
            ("--ipv4-gateway" | "--ipv4-only" | "--ipv6" | "--ipv6-only", Some(_)) => {
                script.steps.push(Step::Ignored(word.clone()))
            }
            ("--ipv4", Some(cidr)) => script
                .ipv4
                .push((None, cidr.parse().map_err(|_| error("A.B.C.D/NN"))?)),
            (option, Some(cidr)) if option.starts_with("--ipv4-") => {
                let net = option["--ipv4-".len()..].to_string();
                script
                    .ipv4
                    .push((Some(net), cidr.parse().map_err(|_| error("A.B.C.D/NN"))?));
            }
            _ => script.steps.push(Step::Ignored(word.clone())),
        }
    }
    Ok(script)
}

/// A network device as the guest gets it.
pub struct NetDevice {
    /// Manifest name.
    pub name: String,
    /// The attached tap.
    pub tap: Iface,
    /// The guest's MAC (`--net-mac` or random).
    pub mac: [u8; 6],
}

/// A block device as the guest gets it.
pub struct BlockDevice {
    /// Manifest name.
    pub name: String,
    /// The backing file, open read-write.
    pub file: File,
    /// Capacity in bytes.
    pub capacity: u64,
    /// Sector size in bytes.
    pub sector_size: u16,
}

impl BlockDevice {
    /// Writes `text` at offset 0, as one write of whole sectors (the rest of
    /// the last sector zeroed), like `solo5_block_write`.
    fn write_start(&self, text: &str) -> Result<(), String> {
        let sector = usize::from(self.sector_size);
        let len = text.len().div_ceil(sector).max(1) * sector;
        if len as u64 > self.capacity {
            return Err(format!(
                "[{}] {} bytes do not fit the {}-byte block device",
                self.name,
                text.len(),
                self.capacity
            ));
        }
        let mut data = vec![0u8; len];
        data[..text.len()].copy_from_slice(text.as_bytes());
        self.file
            .write_all_at(&data, 0)
            .map_err(|err| format!("[{}] write failed: {err}", self.name))
    }

    /// The text in the first sector, up to the first NUL byte.
    fn read_start(&self) -> Result<String, String> {
        let mut sector = vec![0u8; usize::from(self.sector_size)];
        self.file
            .read_exact_at(&mut sector, 0)
            .map_err(|err| format!("[{}] read failed: {err}", self.name))?;
        let end = sector.iter().position(|&b| b == 0).unwrap_or(sector.len());
        Ok(String::from_utf8_lossy(&sector[..end]).into_owned())
    }
}

/// Everything the guest runs with.
pub struct Guest {
    /// The console (stdout).
    pub console: Console,
    /// Which tender runs it.
    pub personality: Personality,
    /// Guest memory as the guest sees it, in bytes.
    pub memory: u64,
    /// The command line after the runtime took its options.
    pub cmdline: String,
    /// Network devices in manifest order.
    pub nets: Vec<NetDevice>,
    /// Block devices in manifest order.
    pub blocks: Vec<BlockDevice>,
}

/// Runs the guest; it ends the process.
pub fn run(guest: Guest) -> ! {
    let console = &guest.console;
    if guest.personality == Personality::Hvt && guest.memory < 4 << 20 {
        // The hvt runtime's heap does not fit: measured, without the banner.
        console.log(LogLevel::Error, "Solo5: ABORT: mem.c:54: Not enough memory");
        process::exit(EXIT_ABORT);
    }
    banner(console, guest.personality, guest.memory);

    let script = match parse_script(&split_words(&guest.cmdline)) {
        Ok(script) => script,
        Err(err) => {
            console.puts(&format!("{GUEST}: {err}\n"));
            solo5_exit(console, EXIT_MIRAGE_ARGUMENT);
        }
    };
    let argument_error = if script.cmdliner {
        EXIT_CMDLINER_PARSE
    } else {
        EXIT_MIRAGE_ARGUMENT
    };
    if let Some(name) = &script.name {
        if script.reject_name || script.cmdliner {
            console.puts(&format!("{GUEST}: unknown option '--name'.\n"));
            solo5_exit(console, argument_error);
        }
        console.puts(&format!("{GUEST}: my name is {name}\n"));
    }
    if script.help {
        console.puts(&format!(
            "{GUEST}: the albatross test tender's guest ({VERSION}), see its README\n"
        ));
        solo5_exit(console, if script.cmdliner { 0 } else { EXIT_MIRAGE_HELP });
    }
    // Devices without an address stay attached, so their taps stay busy.
    let _silent = match serve_networks(console, guest.nets, &script.ipv4) {
        Ok(silent) => silent,
        Err(message) => {
            console.puts(&format!("{GUEST}: {message}\n"));
            solo5_exit(console, argument_error);
        }
    };

    for step in &script.steps {
        match step {
            Step::Console(text) => console.puts(&format!("{text}\n")),
            Step::Lines(n) => {
                for i in 1..=*n {
                    console.puts(&format!("line {i} of {n}\n"));
                }
            }
            Step::Delay(duration) => thread::sleep(*duration),
            Step::BlockWrite { device, text } => {
                if let Err(message) = block(&guest.blocks, device).and_then(|b| b.write_start(text))
                {
                    abort(console, &message);
                }
            }
            Step::BlockRead(device) => {
                match block(&guest.blocks, device).and_then(BlockDevice::read_start) {
                    Ok(text) => console.puts(&format!("[{device}] {text}\n")),
                    Err(message) => abort(console, &message),
                }
            }
            Step::Ignored(word) => console.puts(&format!("{GUEST}: ignoring argument '{word}'\n")),
        }
    }

    match &script.end {
        End::Exit(code) => solo5_exit(console, *code),
        End::Abort(None) => {
            console.log(LogLevel::Info, "Solo5: solo5_abort() called");
            process::exit(EXIT_ABORT);
        }
        End::Abort(Some(message)) => abort(console, message),
        End::Crash => crash(console, guest.personality),
        // A signal the process survives (ignored by default) changes nothing.
        End::Signal(sig) => signals::raise_on_self(*sig, guest.personality),
        End::RunForever => {}
    }
    loop {
        thread::park();
    }
}

/// The banner Solo5's runtime logs at start-up (§1), one write per line.
fn banner(console: &Console, personality: Personality, memory: u64) {
    // hvt images carry about 3 MiB of static data, spt images a few KiB.
    let (data_end, heap) = match personality {
        Personality::Hvt => ("0x30bfff", "0x30c000"),
        Personality::Spt => ("0x10bfff", "0x10c000"),
    };
    for line in [
        "            |      ___|".to_string(),
        "  __|  _ \\  |  _ \\ __ \\".to_string(),
        "\\__ \\ (   | | (   |  ) |".to_string(),
        "____/\\___/ _|\\___/____/".to_string(),
        format!("Solo5: Bindings version {VERSION}"),
        format!("Solo5: Memory map: {} MB addressable:", memory >> 20),
        "Solo5:   reserved @ (0x0 - 0xfffff)".to_string(),
        "Solo5:       text @ (0x100000 - 0x104fff)".to_string(),
        "Solo5:     rodata @ (0x105000 - 0x106fff)".to_string(),
        format!("Solo5:       data @ (0x107000 - {data_end})"),
        format!("Solo5:       heap >= {heap} < stack < {memory:#x}"),
    ] {
        console.log(LogLevel::Info, &line);
    }
}

/// A failed assertion in the guest: `Solo5: ABORT: …`, status 255.
fn abort(console: &Console, message: &str) -> ! {
    console.log(LogLevel::Error, &format!("Solo5: ABORT: {message}"));
    process::exit(EXIT_ABORT)
}

/// The block device the guest acquired as `name`.
fn block<'a>(blocks: &'a [BlockDevice], name: &str) -> Result<&'a BlockDevice, String> {
    blocks
        .iter()
        .find(|b| b.name == name)
        .ok_or_else(|| format!("no block device '{name}'"))
}

/// `solo5_exit(code)`: the exit line, then the tender exits with the low
/// eight bits of the code.
fn solo5_exit(console: &Console, code: i32) -> ! {
    console.log(LogLevel::Info, &format!("Solo5: solo5_exit({code}) called"));
    process::exit(code & 0xff)
}

/// A guest CPU fault, as each tender reports it (§2, §4).
fn crash(console: &Console, personality: Personality) {
    match personality {
        Personality::Hvt => {
            for line in [
                "Solo5: trap: type=#PF ec=0x2 rip=0x104022 rsp=0x1fffffe0 rflags=0x10006",
                "Solo5: trap: cr2=0x400000000",
                "Solo5: ABORT: cpu_x86_64.c:182: Fatal trap",
            ] {
                console.log(LogLevel::Error, line);
            }
            process::exit(EXIT_ABORT);
        }
        Personality::Spt => signals::raise_on_self(signals::SIGSEGV, personality),
    }
}

/// Starts a responder for every network device that has an address, and
/// returns the others.
fn serve_networks(
    console: &Console,
    nets: Vec<NetDevice>,
    ipv4: &[(Option<String>, Ipv4Cidr)],
) -> Result<Vec<NetDevice>, String> {
    let first = nets.first().map(|net| net.name.clone());
    let mut addresses = Vec::new();
    for (net, cidr) in ipv4 {
        let name = match net {
            Some(name) => name.clone(),
            None => first
                .clone()
                .ok_or("--ipv4 given, but the unikernel has no network device")?,
        };
        if !nets.iter().any(|n| n.name == name) {
            return Err(format!(
                "--ipv4-{name} given, but there is no network device '{name}'"
            ));
        }
        addresses.push((name, *cidr));
    }
    let mut silent = Vec::new();
    for device in nets {
        // The last address given for a device wins.
        let Some(cidr) = addresses
            .iter()
            .rev()
            .find(|(name, _)| *name == device.name)
            .map(|(_, c)| *c)
        else {
            silent.push(device);
            continue;
        };
        console.puts(&format!(
            "[{}] Serving ping on {}, with MAC: {}\n",
            device.name,
            cidr.addr,
            net::mac_hex(device.mac)
        ));
        let console = console.clone();
        thread::spawn(move || respond_forever(&console, device, cidr));
    }
    Ok(silent)
}

fn respond_forever(console: &Console, device: NetDevice, cidr: Ipv4Cidr) {
    let fatal = |what: &str, err: std::io::Error| -> ! {
        eprintln!(
            "{}: Fatal error when {what}: {}",
            console.prog(),
            crate::devices::strerror(&err)
        );
        process::exit(1)
    };
    announce(&device, cidr.addr).unwrap_or_else(|err| fatal("writing", err));
    let mut buffer = vec![0u8; FRAME_BUFFER];
    loop {
        let len = device
            .tap
            .recv(&mut buffer)
            .unwrap_or_else(|err| fatal("reading", err));
        if let Some(reply) = net::respond(&buffer[..len], device.mac, cidr) {
            device
                .tap
                .send(&reply)
                .unwrap_or_else(|err| fatal("writing", err));
        }
    }
}

fn announce(device: &NetDevice, addr: Ipv4Addr) -> std::io::Result<usize> {
    device.tap.send(&net::gratuitous_arp(device.mac, addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn splitting() {
        assert_eq!(split_words(""), Vec::<String>::new());
        assert_eq!(split_words("a  b "), ["a", "b"]);
        assert_eq!(
            split_words("--test-console=hello\\ world x"),
            ["--test-console=hello world", "x"]
        );
        assert_eq!(split_words("a\\\\b"), ["a\\b"]);
    }

    #[test]
    fn script() {
        let s = parse_script(&words(&[
            "--test-console=hi=there",
            "--test-lines=3",
            "--test-delay-ms=5",
            "--test-exit=300",
            "--name=web",
            "--ipv4=10.0.0.2/24",
            "--ipv4-service1=10.1.0.2/24",
            "--ipv4-gateway=10.0.0.1",
            "--test-block-write=storage:a:b",
            "--test-block-read=storage",
            "--frobnicate",
        ]))
        .unwrap();
        assert_eq!(
            s.steps,
            [
                Step::Console("hi=there".into()),
                Step::Lines(3),
                Step::Delay(Duration::from_millis(5)),
                Step::Ignored("--ipv4-gateway=10.0.0.1".into()),
                Step::BlockWrite {
                    device: "storage".into(),
                    text: "a:b".into()
                },
                Step::BlockRead("storage".into()),
                Step::Ignored("--frobnicate".into()),
            ]
        );
        assert_eq!(s.end, End::Exit(300));
        assert_eq!(s.name.as_deref(), Some("web"));
        assert_eq!(s.ipv4.len(), 2);
        assert_eq!(s.ipv4[1].0.as_deref(), Some("service1"));
        assert!(!s.reject_name && !s.cmdliner && !s.help);
    }

    #[test]
    fn endings() {
        let end = |w: &[&str]| parse_script(&words(w)).unwrap().end;
        assert_eq!(end(&[]), End::RunForever);
        assert_eq!(end(&["--test-abort"]), End::Abort(None));
        assert_eq!(end(&["--test-abort=boom"]), End::Abort(Some("boom".into())));
        assert_eq!(end(&["--test-signal=SEGV"]), End::Signal(signals::SIGSEGV));
        assert_eq!(end(&["--test-exit=-1", "--test-crash"]), End::Crash);
    }

    #[test]
    fn bad_values() {
        let err = parse_script(&words(&["--test-exit=x"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "option '--test-exit': invalid value 'x', expected an integer"
        );
        assert!(parse_script(&words(&["--ipv4=10.0.0.2"])).is_err());
        assert!(parse_script(&words(&["--test-signal=NOPE"])).is_err());
        assert!(parse_script(&words(&["--test-lines=-1"])).is_err());
    }
}
