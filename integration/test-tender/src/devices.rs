//! Attaching the host side of the guest's devices for real, with the checks
//! and error numbers of Solo5's `tap_attach` and `block_attach`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use tun_tap::{Iface, Mode};

/// `IFNAMSIZ`: interface names are shorter than this.
const IFNAMSIZ: usize = 16;
/// `IFF_UP` and `IFF_RUNNING` in `/sys/class/net/X/flags`.
const IFF_UP_OR_RUNNING: u32 = 0x1 | 0x40;
/// `IFF_TAP` in `/sys/class/net/X/tun_flags`.
const IFF_TAP: u32 = 0x2;

// Linux error numbers the real tender sets itself (the kernel's come back
// from the ioctl as they are).
const ENOENT: i32 = 2;
const EBADF: i32 = 9;
const EINVAL: i32 = 22;
const ENAMETOOLONG: i32 = 36;
const ENETDOWN: i32 = 100;

/// Opens the tap `iface` the way `solo5-hvt`/`solo5-spt` do: the name must
/// be short enough, exist (a missing name must not create a tap), be up,
/// and be a tap; then TUNSETIFF(IFF_TAP|IFF_NO_PI) attaches to it, which
/// fails with EBUSY while another process holds it.
///
/// The `@NN` form (an open tap fd) fails as upstream's does (§3.3): with
/// "Success" for an open fd, EBADF for a closed one, EINVAL for junk.
pub fn attach_tap(iface: &str) -> io::Result<Iface> {
    if let Some(fd) = iface.strip_prefix('@') {
        let code = match fd.parse::<u32>() {
            Ok(fd) if Path::new(&format!("/proc/self/fd/{fd}")).exists() => 0,
            Ok(_) => EBADF,
            Err(_) => EINVAL,
        };
        return Err(io::Error::from_raw_os_error(code));
    }
    if iface.len() >= IFNAMSIZ {
        return Err(io::Error::from_raw_os_error(ENAMETOOLONG));
    }
    let dir = interface_dir(iface).ok_or_else(|| io::Error::from_raw_os_error(ENOENT))?;
    if read_hex(&dir.join("flags")).is_some_and(|flags| flags & IFF_UP_OR_RUNNING == 0) {
        return Err(io::Error::from_raw_os_error(ENETDOWN));
    }
    if !matches!(read_hex(&dir.join("tun_flags")), Some(flags) if flags & IFF_TAP != 0) {
        return Err(io::Error::from_raw_os_error(EINVAL));
    }
    let tap = Iface::without_packet_info(iface, Mode::Tap)?;
    if tap.name() != iface {
        return Err(io::Error::from_raw_os_error(EINVAL));
    }
    Ok(tap)
}

/// `/sys/class/net/NAME` if the interface exists. Names that are not plain
/// file names cannot be interfaces.
fn interface_dir(iface: &str) -> Option<PathBuf> {
    if iface.is_empty() || iface == "." || iface == ".." || iface.contains('/') {
        return None;
    }
    let dir = PathBuf::from("/sys/class/net").join(iface);
    dir.exists().then_some(dir)
}

/// A sysfs value such as `0x1003`.
fn read_hex(path: &Path) -> Option<u32> {
    let text = fs::read_to_string(path).ok()?;
    let text = text.trim();
    u32::from_str_radix(text.strip_prefix("0x").unwrap_or(text), 16).ok()
}

/// An attached block device: the open file and its capacity in bytes.
#[derive(Debug)]
pub struct Block {
    /// The backing file, open read-write.
    pub file: File,
    /// Its size, as `lseek(fd, 0, SEEK_END)` reports it.
    pub capacity: u64,
}

/// Opens a block device or file read-write, as `block_attach` does; the
/// capacity is its size. There is no locking, like upstream.
pub fn attach_block(path: &str) -> io::Result<Block> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let capacity = file.seek(SeekFrom::End(0))?;
    Ok(Block { file, capacity })
}

/// The C library's text for an error number (`strerror`), without the
/// " (os error N)" Rust adds.
pub fn strerror(err: &io::Error) -> String {
    let text = err.to_string();
    match (err.raw_os_error(), text.rfind(" (os error ")) {
        (Some(_), Some(at)) => text[..at].to_string(),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strerror_texts() {
        assert_eq!(
            strerror(&io::Error::from_raw_os_error(ENOENT)),
            "No such file or directory"
        );
        assert_eq!(
            strerror(&io::Error::from_raw_os_error(ENETDOWN)),
            "Network is down"
        );
        assert_eq!(
            strerror(&io::Error::from_raw_os_error(EINVAL)),
            "Invalid argument"
        );
        assert_eq!(
            strerror(&io::Error::from_raw_os_error(ENAMETOOLONG)),
            "File name too long"
        );
    }

    #[test]
    fn names_that_cannot_be_interfaces() {
        for name in ["", ".", "..", "a/b", "../lo"] {
            assert_eq!(interface_dir(name), None, "{name:?}");
        }
        let err = attach_tap("abcdefghijklmnop").unwrap_err();
        assert_eq!(strerror(&err), "File name too long");
        let err = attach_tap("no-such-tap0").unwrap_err();
        assert_eq!(strerror(&err), "No such file or directory");
        assert_eq!(strerror(&attach_tap("@1").unwrap_err()), "Success");
        assert_eq!(
            strerror(&attach_tap("@999999").unwrap_err()),
            "Bad file descriptor"
        );
        assert_eq!(strerror(&attach_tap("@x").unwrap_err()), "Invalid argument");
    }

    #[test]
    fn loopback_is_not_a_tap() {
        // lo is not a tap, but it is down in a fresh network namespace.
        let up = interface_dir("lo")
            .and_then(|dir| read_hex(&dir.join("flags")))
            .is_some_and(|flags| flags & IFF_UP_OR_RUNNING != 0);
        if up {
            let err = attach_tap("lo").unwrap_err();
            assert_eq!(strerror(&err), "Invalid argument");
        }
    }
}
