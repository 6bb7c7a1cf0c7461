//! Snapshots of a directory tree, to show that a refused request changed
//! nothing on disk.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// One entry of a [`Snapshot`].
#[derive(Clone, PartialEq, Eq)]
enum Entry {
    Dir { mode: u32 },
    File { mode: u32, len: u64, hash: u64 },
    Fifo,
    Socket,
    Symlink(PathBuf),
    Other,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::Dir { mode } => write!(f, "dir {mode:o}"),
            Entry::File { mode, len, hash } => {
                write!(f, "file {mode:o}, {len} bytes, fnv {hash:016x}")
            }
            Entry::Fifo => write!(f, "fifo"),
            Entry::Socket => write!(f, "socket"),
            Entry::Symlink(to) => write!(f, "symlink to {}", to.display()),
            Entry::Other => write!(f, "other"),
        }
    }
}

/// Every entry below a directory (relative paths) with its kind, mode and,
/// for files, length and content hash.
#[derive(Clone, PartialEq, Eq)]
pub struct Snapshot(BTreeMap<PathBuf, Entry>);

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(p, e)| (p.display().to_string(), e)))
            .finish()
    }
}

impl Snapshot {
    /// Takes a snapshot of `root`.
    pub fn of(root: &Path) -> Snapshot {
        let mut entries = BTreeMap::new();
        walk(root, root, &mut entries);
        Snapshot(entries)
    }

    /// The snapshot without `prefix` and everything below it.
    pub fn without(&self, prefix: &str) -> Snapshot {
        let prefix = Path::new(prefix);
        Snapshot(
            self.0
                .iter()
                .filter(|(p, _)| !p.starts_with(prefix))
                .map(|(p, e)| (p.clone(), e.clone()))
                .collect(),
        )
    }

    /// The relative paths in the snapshot.
    pub fn paths(&self) -> Vec<String> {
        self.0.keys().map(|p| p.display().to_string()).collect()
    }
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
        let kind = meta.file_type();
        let mode = meta.mode() & 0o7777;
        let value = if kind.is_dir() {
            walk(root, &path, out);
            Entry::Dir { mode }
        } else if kind.is_file() {
            let bytes = fs::read(&path).unwrap_or_default();
            Entry::File {
                mode,
                len: meta.len(),
                hash: fnv1a(&bytes),
            }
        } else if kind.is_fifo() {
            Entry::Fifo
        } else if kind.is_socket() {
            Entry::Socket
        } else if kind.is_symlink() {
            Entry::Symlink(fs::read_link(&path).unwrap_or_default())
        } else {
            Entry::Other
        };
        out.insert(rel, value);
    }
}

/// FNV-1a, 64 bits: enough to tell contents apart in a test.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
