//! Parsers for option and argument values, in the shape argh's
//! `from_str_fn` wants (`fn(&str) -> Result<T, String>`). The messages
//! follow upstream's wording where upstream has one.

use std::net::IpAddr;
use std::path::PathBuf;

use crate::model::name::parse_mac;
use crate::model::{BlockSpec, Name, NetSpec, Path, Timestamp, Typ};

/// Smallest and largest value of upstream's integers (OCaml's 63-bit `int`).
const INT_MIN: i64 = -(1 << 62);
const INT_MAX: i64 = (1 << 62) - 1;

/// Default TCP port of the TLS endpoint.
pub const DEFAULT_TLS_PORT: u16 = 1025;

/// Default port of an influx (telegraf) listener.
pub const DEFAULT_INFLUX_PORT: u16 = 8094;

/// An integer as OCaml's `int_of_string` reads it: optional sign, decimal
/// or `0x`/`0o`/`0b` digits, `_` separators, within the 63-bit range.
pub fn parse_int(text: &str) -> Result<i64, String> {
    let bad = || format!("invalid value '{text}', expected an integer");
    let (negative, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) = match body.get(..2) {
        Some("0x" | "0X") => (16, &body[2..]),
        Some("0o" | "0O") => (8, &body[2..]),
        Some("0b" | "0B") => (2, &body[2..]),
        _ => (10, body),
    };
    if digits.is_empty() || digits.starts_with('_') {
        return Err(bad());
    }
    let cleaned: String = digits.chars().filter(|c| *c != '_').collect();
    let magnitude = i128::from_str_radix(&cleaned, radix).map_err(|_| bad())?;
    let value = if negative { -magnitude } else { magnitude };
    i64::try_from(value)
        .ok()
        .filter(|v| (INT_MIN..=INT_MAX).contains(v))
        .ok_or_else(|| format!("invalid value '{text}', the integer is out of range"))
}

/// A unikernel or block device name (§2.3), lower-cased; a path text
/// ending in `:` is accepted too.
pub fn parse_name(text: &str) -> Result<Name, String> {
    Name::parse(text).map_err(|e| e.to_string())
}

/// A path (§2.2), lower-cased.
pub fn parse_path(text: &str) -> Result<Path, String> {
    Path::parse(text).map_err(|e| e.to_string())
}

/// A zlib compression level, 0 (none) to 9.
pub fn parse_compression(text: &str) -> Result<u32, String> {
    let level = parse_int(text)?;
    u32::try_from(level)
        .ok()
        .filter(|l| *l <= 9)
        .ok_or_else(|| format!("invalid compression level {level}, expected 0 (none) to 9"))
}

/// `solo5` or `bhyve`.
pub fn parse_typ(text: &str) -> Result<Typ, String> {
    match text {
        "solo5" => Ok(Typ::Solo5),
        "bhyve" => Ok(Typ::Bhyve),
        _ => Err(format!(
            "invalid value '{text}', expected either 'solo5' or 'bhyve'"
        )),
    }
}

/// Splits `name` or `name:device` (exactly one `:` at most).
fn split_colon(text: &str) -> Result<(String, Option<String>), String> {
    let mut parts = text.split(':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(name), None, _) => Ok((name.to_string(), None)),
        (Some(name), Some(device), None) => Ok((name.to_string(), Some(device.to_string()))),
        _ => Err(format!(
            "invalid value '{text}': format is 'name' or 'name:device-name'"
        )),
    }
}

/// `--block`: `name[@sector-size]` or `name:device-name[@sector-size]`;
/// the sector size must be a power of two of at least 512.
pub fn parse_block_spec(text: &str) -> Result<BlockSpec, String> {
    let mut parts = text.split('@');
    let (block, sector) = match (parts.next(), parts.next(), parts.next()) {
        (Some(block), sector, None) => (block, sector),
        _ => {
            return Err(format!(
                "invalid block device '{text}': format is 'name[@sector-size]' or \
                 'name:device-name[@sector-size]'"
            ))
        }
    };
    let sector_size = sector
        .map(|s| {
            let size = parse_int(s).map_err(|_| {
                format!("invalid block device '{text}': sector size must be an integer")
            })?;
            if size < 512 || size & (size - 1) != 0 {
                return Err(format!(
                    "invalid block device '{text}': sector size must be a power of two greater \
                     than or equal 512"
                ));
            }
            Ok(size)
        })
        .transpose()?;
    let (name, device) = split_colon(block)?;
    Ok(BlockSpec {
        name,
        device,
        sector_size,
    })
}

/// `--net`: `name[@mac]` or `name:bridge[@mac]`, the MAC as
/// `xx:xx:xx:xx:xx:xx`.
pub fn parse_net_spec(text: &str) -> Result<NetSpec, String> {
    // Split at the first '@': a MAC never contains one.
    let (net, mac) = match text.split_once('@') {
        Some((net, mac)) => (net, Some(mac)),
        None => (text, None),
    };
    let mac = mac
        .map(|m| {
            parse_mac(m).ok_or_else(|| {
                format!("invalid network '{text}': MAC address '{m}' is not xx:xx:xx:xx:xx:xx")
            })
        })
        .transpose()?;
    let (netif, bridge) = split_colon(net)
        .map_err(|_| format!("invalid network '{text}': format is [name:]bridge[@mac]"))?;
    Ok(NetSpec { netif, bridge, mac })
}

/// `--since`: RFC 3339, a bare date meaning midnight UTC.
pub fn parse_since(text: &str) -> Result<Timestamp, String> {
    Timestamp::parse_rfc3339(text).map_err(|e| format!("couldn't parse timestamp: {e}"))
}

/// `--bridge BRIDGE:TAP` of `stats-add`.
pub fn parse_bridge_tap(text: &str) -> Result<(String, String), String> {
    let mut parts = text.split(':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(bridge), Some(tap), None) => Ok((bridge.to_string(), tap.to_string())),
        _ => Err(format!("invalid value '{text}': format is bridge:tap")),
    }
}

/// A file that must exist (as cmdliner's `file` converter checks).
pub fn parse_file(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    if path.exists() {
        Ok(path)
    } else {
        Err(format!("no '{text}' file or directory"))
    }
}

/// A directory that must exist.
pub fn parse_dir(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    if path.is_dir() {
        Ok(path)
    } else {
        Err(format!("no '{text}' directory"))
    }
}

/// A host and port, as `--destination` and `--influx` take them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// An IP literal, a host name, or `-` (print instead of connecting).
    pub host: String,
    /// The TCP port.
    pub port: u16,
}

/// Splits `HOST[:PORT]` at the last `:` (so an IPv6 literal needs a port,
/// as upstream) and checks that HOST is `-`, an IP address or a host name.
pub fn parse_host_port(text: &str, default_port: u16) -> Result<HostPort, String> {
    let (host, port) = match text.rsplit_once(':') {
        None => (text, default_port),
        Some((host, port)) => {
            let port = port
                .parse()
                .map_err(|_| format!("invalid port in '{text}'"))?;
            (host, port)
        }
    };
    if host == "-" || host.parse::<IpAddr>().is_ok() || is_host_name(host) {
        Ok(HostPort {
            host: host.to_string(),
            port,
        })
    } else {
        Err(format!(
            "invalid host '{host}': neither an IP address nor a host name"
        ))
    }
}

/// `--destination`, default port 1025.
pub fn parse_destination(text: &str) -> Result<HostPort, String> {
    parse_host_port(text, DEFAULT_TLS_PORT)
}

/// `--influx`, default port 8094; the host must be an IP address.
pub fn parse_influx(text: &str) -> Result<HostPort, String> {
    let hp = parse_host_port(text, DEFAULT_INFLUX_PORT)?;
    if hp.host.parse::<IpAddr>().is_ok() {
        Ok(hp)
    } else {
        Err(format!(
            "invalid influx host '{}': an IP address is needed",
            hp.host
        ))
    }
}

/// A DNS host name: dot-separated labels of letters, digits and `-`, each
/// 1–63 bytes not starting or ending with `-`, at most 253 bytes in all.
fn is_host_name(text: &str) -> bool {
    let text = text.strip_suffix('.').unwrap_or(text);
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `--http-host`: `http://host` or `https://host`, one trailing `/` dropped.
pub fn parse_http_host(text: &str) -> Result<String, String> {
    let bad = || format!("invalid value '{text}', expected http[s]://hostname");
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .ok_or_else(bad)?;
    let host = rest.strip_suffix('/').unwrap_or(rest);
    if host.is_empty() || host.contains('/') {
        return Err(bad());
    }
    Ok(text[..text.len() - (rest.len() - host.len())].to_string())
}

/// The key types certificates can be made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// Ed25519 (the default).
    Ed25519,
    /// RSA, 2048 bits.
    Rsa2048,
    /// RSA, 4096 bits.
    Rsa4096,
    /// ECDSA on P-256.
    P256,
    /// ECDSA on P-384.
    P384,
    /// ECDSA on P-521.
    P521,
}

/// `--key-type`.
pub fn parse_key_type(text: &str) -> Result<KeyType, String> {
    match text {
        "ed25519" => Ok(KeyType::Ed25519),
        "rsa2048" => Ok(KeyType::Rsa2048),
        "rsa4096" => Ok(KeyType::Rsa4096),
        "p256" => Ok(KeyType::P256),
        "p384" => Ok(KeyType::P384),
        "p521" => Ok(KeyType::P521),
        _ => Err(format!(
            "invalid value '{text}', expected one of 'rsa2048', 'rsa4096', 'ed25519', 'p256', \
             'p384' or 'p521'"
        )),
    }
}

/// Log levels of `--verbosity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Nothing but the command's output.
    Quiet,
    /// Errors.
    Error,
    /// Errors and warnings (the default).
    Warning,
    /// Also informational messages.
    Info,
    /// Everything.
    Debug,
}

/// `--verbosity`.
pub fn parse_level(text: &str) -> Result<Level, String> {
    match text {
        "quiet" => Ok(Level::Quiet),
        "error" => Ok(Level::Error),
        "warning" => Ok(Level::Warning),
        "info" => Ok(Level::Info),
        "debug" => Ok(Level::Debug),
        _ => Err(format!(
            "invalid value '{text}', expected one of 'quiet', 'error', 'warning', 'info' or 'debug'"
        )),
    }
}

/// `--color`: accepted for compatibility; output is never coloured.
pub fn parse_color(text: &str) -> Result<String, String> {
    match text {
        "auto" | "always" | "never" => Ok(text.to_string()),
        _ => Err(format!(
            "invalid value '{text}', expected one of 'auto', 'always' or 'never'"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_like_ocaml() {
        assert_eq!(parse_int("-1"), Ok(-1));
        assert_eq!(parse_int("0x20"), Ok(32));
        assert_eq!(parse_int("1_000"), Ok(1000));
        assert_eq!(parse_int("4611686018427387903"), Ok(INT_MAX));
        assert!(parse_int("4611686018427387904").is_err());
        assert!(parse_int("").is_err());
        assert!(parse_int("12a").is_err());
        assert!(parse_int("0x").is_err());
    }

    #[test]
    fn block_and_net_specs() {
        let b = parse_block_spec("data:disk@4096").unwrap();
        assert_eq!(
            (b.name.as_str(), b.device.as_deref(), b.sector_size),
            ("data", Some("disk"), Some(4096))
        );
        assert!(parse_block_spec("data@1000")
            .unwrap_err()
            .contains("power of two"));
        assert!(parse_block_spec("data@256")
            .unwrap_err()
            .contains("power of two"));
        assert!(parse_block_spec("data@x").unwrap_err().contains("integer"));
        assert!(parse_block_spec("a:b:c").is_err());
        assert!(parse_block_spec("a@512@512").is_err());
        let n = parse_net_spec("service:br0@00:de:ad:be:ef:01").unwrap();
        assert_eq!(n.netif, "service");
        assert_eq!(n.bridge.as_deref(), Some("br0"));
        assert_eq!(n.mac, Some([0, 0xde, 0xad, 0xbe, 0xef, 1]));
        assert!(parse_net_spec("service@00:de:ad").is_err());
        assert!(parse_net_spec("a:b:c").is_err());
    }

    #[test]
    fn hosts() {
        assert_eq!(parse_destination("example.org").unwrap().port, 1025);
        let hp = parse_destination("10.0.0.1:4433").unwrap();
        assert_eq!((hp.host.as_str(), hp.port), ("10.0.0.1", 4433));
        // The port is taken after the last ':', as upstream does: an IPv6
        // literal needs an explicit port.
        let hp = parse_destination("::1:4433").unwrap();
        assert_eq!((hp.host.as_str(), hp.port), ("::1", 4433));
        assert!(parse_destination("::1").is_err());
        assert_eq!(parse_destination("-:1025").unwrap().host, "-");
        assert!(parse_destination("host:port").is_err());
        assert!(parse_destination("bad_host").is_err());
        assert_eq!(
            parse_http_host("https://builds.robur.coop/").unwrap(),
            "https://builds.robur.coop"
        );
        assert!(parse_http_host("ftp://x").is_err());
        assert!(parse_http_host("https://a/b").is_err());
    }

    #[test]
    fn compression_levels() {
        assert_eq!(parse_compression("9"), Ok(9));
        assert!(parse_compression("10").is_err());
        assert!(parse_compression("-1").is_err());
    }
}
