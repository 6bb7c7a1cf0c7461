//! The tender command line, parsed the way Solo5's C code does it
//! (`solo5-tender.md` §3.1–§3.2): pass 1 finds KERNEL and acts on
//! `--help`/`--version`; pass 2 turns each option before KERNEL into a
//! [`TenderOption`]. The `sscanf` conversions are emulated, including their
//! leniency (leading whitespace, trailing junk, wrap-around).

use crate::personality::Personality;

/// What pass 1 decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pass1 {
    /// `--help` came before KERNEL: usage on stderr, exit 1.
    Help,
    /// `--version` came before KERNEL: version on stderr, exit 0.
    Version,
    /// No KERNEL operand.
    MissingKernel,
    /// KERNEL is `args[kernel]`; the options are `args[..options_end]`
    /// (without a terminating `--`).
    Kernel {
        /// Index of KERNEL in the arguments.
        kernel: usize,
        /// End of the option arguments.
        options_end: usize,
    },
}

/// Pass 1 over the arguments (without argv\[0\]): every argument that starts
/// with `-` is skipped, `--` ends the options, `--help` and `--version` act at
/// once, whatever comes before them.
pub fn pass1(args: &[String]) -> Pass1 {
    for (i, arg) in args.iter().enumerate() {
        if !arg.starts_with('-') {
            return Pass1::Kernel {
                kernel: i,
                options_end: i,
            };
        }
        match arg.as_str() {
            "--" => {
                return if i + 1 < args.len() {
                    Pass1::Kernel {
                        kernel: i + 1,
                        options_end: i,
                    }
                } else {
                    Pass1::MissingKernel
                };
            }
            "--help" => return Pass1::Help,
            "--version" => return Pass1::Version,
            _ => {}
        }
    }
    Pass1::MissingKernel
}

/// One tender option of pass 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenderOption {
    /// `--mem=N`: guest memory in bytes (N × 2^20, wrapped like `size_t`).
    Mem(u64),
    /// `--net:NAME=IFACE`.
    Net {
        /// Manifest name.
        name: String,
        /// Tap interface (at most 19 characters, like the C buffer).
        iface: String,
    },
    /// `--net-mac:NAME=MAC`.
    NetMac {
        /// Manifest name.
        name: String,
        /// The MAC; all zeros means "unset".
        mac: [u8; 6],
    },
    /// `--block:NAME=PATH`.
    Block {
        /// Manifest name.
        name: String,
        /// Backing file or device.
        path: String,
    },
    /// `--block-sector-size:NAME=SIZE` with a valid size.
    BlockSectorSize {
        /// Manifest name.
        name: String,
        /// Power of two, at least 512.
        size: u16,
    },
    /// `--x-exec-heap` (spt only).
    ExecHeap,
}

/// Why an option of pass 2 was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionError {
    /// No module recognised it: ``Invalid option: `X'`` and the usage.
    Invalid,
    /// `--mem=` without a positive number: `Malformed argument to --mem`,
    /// without the usage.
    MalformedMem,
    /// `--block-sector-size` with a size that is not a power of two ≥ 512:
    /// a message, then ``Invalid option`` and the usage.
    BadSectorSize,
}

/// Largest manifest name (`MFT_NAME_MAX`).
const NAME_MAX: usize = 67;
/// Largest interface name the tender reads (`char iface[20]`).
const IFACE_MAX: usize = 19;
/// Largest path the tender reads (`PATH_MAX`).
const PATH_MAX: usize = 4096;

/// Parses one option of pass 2.
pub fn parse_option(arg: &str, personality: Personality) -> Result<TenderOption, OptionError> {
    if let Some(rest) = arg.strip_prefix("--mem=") {
        let mib = scan_signed(rest).ok_or(OptionError::MalformedMem)?;
        // `size_t mem; sscanf("%zd"); mem <<= 20`: negative values wrap.
        let bytes = (mib as u64) << 20;
        return if bytes == 0 {
            Err(OptionError::MalformedMem)
        } else {
            Ok(TenderOption::Mem(bytes))
        };
    }
    if personality == Personality::Spt && arg.starts_with("--x-exec-heap") {
        // Matched as a prefix, as upstream's strncmp does.
        return Ok(TenderOption::ExecHeap);
    }
    if let Some(rest) = arg.strip_prefix("--net:") {
        let (name, rest) = scan_name_eq(rest).ok_or(OptionError::Invalid)?;
        let iface = scan_word(rest, IFACE_MAX).ok_or(OptionError::Invalid)?;
        return Ok(TenderOption::Net { name, iface });
    }
    if let Some(rest) = arg.strip_prefix("--net-mac:") {
        let (name, rest) = scan_name_eq(rest).ok_or(OptionError::Invalid)?;
        let mac = scan_mac(rest).ok_or(OptionError::Invalid)?;
        return Ok(TenderOption::NetMac { name, mac });
    }
    if let Some(rest) = arg.strip_prefix("--block:") {
        let (name, rest) = scan_name_eq(rest).ok_or(OptionError::Invalid)?;
        let path = scan_word(rest, PATH_MAX).ok_or(OptionError::Invalid)?;
        return Ok(TenderOption::Block { name, path });
    }
    if let Some(rest) = arg.strip_prefix("--block-sector-size:") {
        let (name, rest) = scan_name_eq(rest).ok_or(OptionError::Invalid)?;
        // `%hu`: an unsigned long, truncated to 16 bits (65536 becomes 0).
        let size = scan_signed(rest).ok_or(OptionError::Invalid)? as u16;
        if size < 512 || !size.is_power_of_two() {
            return Err(OptionError::BadSectorSize);
        }
        return Ok(TenderOption::BlockSectorSize { name, size });
    }
    Err(OptionError::Invalid)
}

/// C's `isspace` in the "C" locale (Rust's ASCII whitespace lacks `\v`).
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// `%ld`-like: optional whitespace and sign, at least one decimal digit,
/// trailing junk ignored, saturating on overflow like `strtol`.
fn scan_signed(s: &str) -> Option<i64> {
    let s = s.trim_start_matches(is_c_space);
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let digits: Vec<u8> = digits.bytes().take_while(u8::is_ascii_digit).collect();
    if digits.is_empty() {
        return None;
    }
    let magnitude = digits.iter().try_fold(0u64, |acc, d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    });
    Some(match (negative, magnitude) {
        (false, Some(m)) => i64::try_from(m).unwrap_or(i64::MAX),
        (true, Some(m)) => 0i64.checked_sub_unsigned(m).unwrap_or(i64::MIN),
        (false, None) => i64::MAX,
        (true, None) => i64::MIN,
    })
}

/// `%67[A-Za-z0-9]=`: a manifest name, then `=`; returns the rest.
fn scan_name_eq(s: &str) -> Option<(String, &str)> {
    let len = s
        .bytes()
        .take(NAME_MAX)
        .take_while(u8::is_ascii_alphanumeric)
        .count();
    if len == 0 {
        return None;
    }
    let rest = s[len..].strip_prefix('=')?;
    Some((s[..len].to_string(), rest))
}

/// `%Ns`: skips whitespace, then at most `max` non-whitespace characters.
fn scan_word(s: &str, max: usize) -> Option<String> {
    let word: String = s
        .trim_start_matches(is_c_space)
        .chars()
        .take_while(|&c| !is_c_space(c))
        .take(max)
        .collect();
    if word.is_empty() {
        None
    } else {
        Some(word)
    }
}

/// Six `%02hhx` separated by `:`: one or two hex digits each; trailing
/// junk is ignored.
fn scan_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut rest = s;
    for (i, octet) in mac.iter_mut().enumerate() {
        if i > 0 {
            rest = rest.strip_prefix(':')?;
        }
        rest = rest.trim_start_matches(is_c_space);
        let len = rest
            .bytes()
            .take(2)
            .take_while(u8::is_ascii_hexdigit)
            .count();
        if len == 0 {
            return None;
        }
        *octet = u8::from_str_radix(&rest[..len], 16).ok()?;
        rest = &rest[len..];
    }
    Some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn pass1_finds_kernel_and_terminal_options() {
        assert_eq!(pass1(&args(&[])), Pass1::MissingKernel);
        assert_eq!(pass1(&args(&["--mem=2"])), Pass1::MissingKernel);
        assert_eq!(pass1(&args(&["--"])), Pass1::MissingKernel);
        assert_eq!(pass1(&args(&["--foo", "--version", "k"])), Pass1::Version);
        assert_eq!(pass1(&args(&["-x", "--help"])), Pass1::Help);
        assert_eq!(
            pass1(&args(&["k", "--help"])),
            Pass1::Kernel {
                kernel: 0,
                options_end: 0
            }
        );
        assert_eq!(
            pass1(&args(&["--mem=2", "--", "-k", "--help"])),
            Pass1::Kernel {
                kernel: 2,
                options_end: 1
            }
        );
        // After `--`, --help is KERNEL's business... and KERNEL itself.
        assert_eq!(
            pass1(&args(&["--", "--help"])),
            Pass1::Kernel {
                kernel: 1,
                options_end: 0
            }
        );
        assert_eq!(
            pass1(&args(&[""])),
            Pass1::Kernel {
                kernel: 0,
                options_end: 0
            }
        );
    }

    #[test]
    fn mem_is_a_leading_decimal() {
        let mem = |s: &str| parse_option(&format!("--mem={s}"), Personality::Hvt);
        assert_eq!(mem("512"), Ok(TenderOption::Mem(512 << 20)));
        assert_eq!(mem("2k"), Ok(TenderOption::Mem(2 << 20)));
        assert_eq!(mem(" +3"), Ok(TenderOption::Mem(3 << 20)));
        for bad in ["0", "", "abc", "0x10", "-0"] {
            assert_eq!(mem(bad), Err(OptionError::MalformedMem), "{bad:?}");
        }
        assert_eq!(mem("-1"), Ok(TenderOption::Mem(u64::MAX << 20)));
        // 2^44 MiB wraps to zero bytes.
        assert_eq!(mem("17592186044416"), Err(OptionError::MalformedMem));
        assert_eq!(
            parse_option("--mem", Personality::Hvt),
            Err(OptionError::Invalid)
        );
    }

    #[test]
    fn devices() {
        let p = |s: &str| parse_option(s, Personality::Spt);
        assert_eq!(
            p("--net:service0=tap100"),
            Ok(TenderOption::Net {
                name: "service0".into(),
                iface: "tap100".into()
            })
        );
        assert_eq!(
            p("--net:a=abcdefghijklmnopqrstuvwxyz"),
            Ok(TenderOption::Net {
                name: "a".into(),
                iface: "abcdefghijklmnopqrs".into()
            })
        );
        assert_eq!(p("--net:a="), Err(OptionError::Invalid));
        assert_eq!(p("--net:a-b=tap0"), Err(OptionError::Invalid));
        assert_eq!(p("--net:=tap0"), Err(OptionError::Invalid));
        assert_eq!(
            p(&format!("--net:{}=tap0", "a".repeat(68))),
            Err(OptionError::Invalid)
        );
        assert_eq!(
            p("--net-mac:service0=2:0:0:0:0:A2junk"),
            Ok(TenderOption::NetMac {
                name: "service0".into(),
                mac: [2, 0, 0, 0, 0, 0xa2]
            })
        );
        assert_eq!(
            p("--net-mac:service0=02:00:00:00:00"),
            Err(OptionError::Invalid)
        );
        assert_eq!(
            p("--net-mac:service0=02-00-00-00-00-01"),
            Err(OptionError::Invalid)
        );
        assert_eq!(
            p("--block:storage=/tmp/disk img"),
            Ok(TenderOption::Block {
                name: "storage".into(),
                path: "/tmp/disk".into()
            })
        );
        assert_eq!(
            p("--block-sector-size:storage=4096"),
            Ok(TenderOption::BlockSectorSize {
                name: "storage".into(),
                size: 4096
            })
        );
        for bad in ["1000", "256", "65536", "0", "-512"] {
            assert_eq!(
                p(&format!("--block-sector-size:storage={bad}")),
                Err(OptionError::BadSectorSize),
                "{bad}"
            );
        }
        assert_eq!(
            p("--block-sector-size:storage=x"),
            Err(OptionError::Invalid)
        );
        assert_eq!(p("--block-sector-size=4096"), Err(OptionError::Invalid));
    }

    #[test]
    fn exec_heap_only_on_spt() {
        assert_eq!(
            parse_option("--x-exec-heapfoo", Personality::Spt),
            Ok(TenderOption::ExecHeap)
        );
        assert_eq!(
            parse_option("--x-exec-heap", Personality::Hvt),
            Err(OptionError::Invalid)
        );
        assert_eq!(
            parse_option("-v", Personality::Spt),
            Err(OptionError::Invalid)
        );
    }
}
