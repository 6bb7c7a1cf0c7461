//! Host resources for the root policy (§9.1).

use std::fs;
use std::io;
use std::path::Path;

use crate::sys::{Op, SysError};

/// The online CPUs, as the kernel lists them (e.g. `0-3,6`). glibc's
/// `sysconf(_SC_NPROCESSORS_ONLN)` reads the same file.
const CPU_ONLINE: &str = "/sys/devices/system/cpu/online";

const MB: u128 = 1 << 20;

/// Counts the CPUs of a kernel CPU list such as `0-3,6`.
pub(super) fn count_cpu_list(text: &str) -> Option<u32> {
    let mut count: u32 = 0;
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?),
            None => {
                let cpu = part.parse::<u32>().ok()?;
                (cpu, cpu)
            }
        };
        count = count.checked_add(last.checked_sub(first)?.checked_add(1)?)?;
    }
    Some(count)
}

pub(super) fn online_cpus() -> Result<u32, SysError> {
    let fail = |e: io::Error| SysError::io(Op::Read, CPU_ONLINE, e);
    let text = fs::read_to_string(CPU_ONLINE).map_err(fail)?;
    count_cpu_list(&text).filter(|&n| n > 0).ok_or_else(|| {
        fail(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not a CPU list: {:?}", text.trim()),
        ))
    })
}

pub(super) fn physical_memory_mb() -> u64 {
    let info = rustix::system::sysinfo();
    let bytes = u128::from(info.totalram) * u128::from(info.mem_unit);
    u64::try_from(bytes / MB).unwrap_or(u64::MAX)
}

pub(super) fn filesystem_total_mb(path: &Path) -> Result<u64, SysError> {
    let st =
        rustix::fs::statfs(path).map_err(|e| SysError::io(Op::Read, path.display(), e.into()))?;
    // As upstream: blocks × block size, the total and not the free space.
    let block_size = u128::try_from(st.f_bsize).unwrap_or(0);
    let bytes = u128::from(st.f_blocks) * block_size;
    Ok(u64::try_from(bytes / MB).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(count_cpu_list("0\n"), Some(1));
        assert_eq!(count_cpu_list("0-1\n"), Some(2));
        assert_eq!(count_cpu_list("0-3,6,8-9"), Some(7));
        assert_eq!(count_cpu_list(""), Some(0));
        assert_eq!(count_cpu_list("3-1"), None);
        assert_eq!(count_cpu_list("a"), None);
        assert_eq!(count_cpu_list("0-"), None);
    }

    #[test]
    fn this_host_has_resources() {
        assert!(online_cpus().unwrap() >= 1);
        assert!(physical_memory_mb() > 16);
        assert!(filesystem_total_mb(Path::new("/")).unwrap() > 0);
        let err = filesystem_total_mb(Path::new("/nonexistent/block")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/block"), "{err}");
    }
}
