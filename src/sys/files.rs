//! The real [`Files`](super::Files) operations, shared by every platform
//! implementation and by the fake (which records, then delegates here).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use rustix::fs::{FileType, Mode, CWD};

use super::{Op, SysError};

/// Mode of a new console FIFO before the umask (§10.2 step 8).
const FIFO_MODE: u32 = 0o640;

/// Mode of files written by [`write_atomic`] before the umask (as upstream
/// writes images, §10.2 step 6).
const FILE_MODE: u32 = 0o644;

/// See [`Files::make_fifo`](super::Files::make_fifo).
///
/// Upstream gets "0640 with only the owner and other bits of the umask
/// applied" by changing the process umask around `mkfifo`. The umask is
/// process-wide and the daemon has other threads, so this creates the FIFO
/// under the full umask and then adds the group read bit with `chmod`: the
/// same final mode, without touching the umask.
pub fn make_fifo(path: &Path) -> Result<(), SysError> {
    let fail = |e: io::Error| SysError::io(Op::MakeFifo, path.display(), e);
    match rustix::fs::mknodat(CWD, path, FileType::Fifo, Mode::from_raw_mode(FIFO_MODE), 0) {
        Ok(()) => {
            let created = fs::metadata(path).map_err(fail)?;
            let mode = fifo_mode_after_umask(std::os::unix::fs::PermissionsExt::mode(
                &created.permissions(),
            ));
            rustix::fs::chmod(path, Mode::from_raw_mode(mode)).map_err(|e| fail(e.into()))
        }
        Err(rustix::io::Errno::EXIST) => {
            let existing = fs::metadata(path).map_err(fail)?;
            if existing.file_type().is_fifo() {
                Ok(())
            } else {
                Err(SysError::NotAFifo {
                    path: path.to_path_buf(),
                })
            }
        }
        Err(e) => Err(fail(e.into())),
    }
}

/// The mode upstream's umask trick gives, from the mode `mknod` gave under
/// the full umask: owner and other bits as masked, group bits of 0640 kept.
fn fifo_mode_after_umask(created: u32) -> u32 {
    (created & 0o707) | (FIFO_MODE & 0o070)
}

/// See [`Files::write_atomic`](super::Files::write_atomic).
///
/// The temporary file is `dir/.NAME.tmp`: writers of one `dir/name` must
/// not run at the same time (the daemon writes each file from one place).
/// A temporary file left by a crash is overwritten by the next write.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), SysError> {
    let target = dir.join(name);
    let fail = |e: io::Error| SysError::io(Op::WriteFile, target.display(), e);
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(fail(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the file name must be one path component",
        )));
    }
    let temp = dir.join(format!(".{name}.tmp"));
    let written = write_synced(&temp, bytes).and_then(|()| fs::rename(&temp, &target));
    if let Err(e) = written {
        // The temporary file is garbage now; a failure to remove it changes
        // nothing for the caller, who gets the first error.
        let _ = fs::remove_file(&temp);
        return Err(fail(e));
    }
    // The rename is durable only once the directory entry is on disk.
    File::open(dir).and_then(|d| d.sync_all()).map_err(fail)
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// See [`Files::remove_file`](super::Files::remove_file).
pub fn remove_file(path: &Path) -> Result<bool, SysError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(SysError::io(Op::RemoveFile, path.display(), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(tag: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("albatross-files-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn fifo_mode_keeps_group_read() {
        // umask 022 gives 0640 under mknod; 077 gives 0600; 027 gives 0640.
        assert_eq!(fifo_mode_after_umask(0o640), 0o640);
        assert_eq!(fifo_mode_after_umask(0o600), 0o640);
        // umask 0277 (owner write masked) keeps that: 0440.
        assert_eq!(fifo_mode_after_umask(0o400), 0o440);
    }

    #[test]
    fn fifo_is_created_once_and_non_fifo_refused() {
        let dir = scratch("fifo");
        let fifo = dir.join("u");
        make_fifo(&fifo).unwrap();
        let meta = fs::metadata(&fifo).unwrap();
        assert!(meta.file_type().is_fifo());
        assert_eq!(meta.permissions().mode() & 0o070, 0o040);
        make_fifo(&fifo).unwrap();
        let plain = dir.join("plain");
        fs::write(&plain, b"x").unwrap();
        let err = make_fifo(&plain).unwrap_err();
        assert!(matches!(err, SysError::NotAFifo { .. }), "{err}");
        assert!(err.to_string().contains("exists and is not a fifo"));
        let err = make_fifo(&dir.join("missing/u")).unwrap_err();
        assert!(
            err.to_string().contains("create the directory first"),
            "{err}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = scratch("write");
        write_atomic(&dir, "state", b"one").unwrap();
        write_atomic(&dir, "state", b"two").unwrap();
        assert_eq!(fs::read(dir.join("state")).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["state"]);
        assert!(write_atomic(&dir, "a/b", b"x").is_err());
        assert!(write_atomic(&dir, "..", b"x").is_err());
        let err = write_atomic(&dir.join("missing"), "state", b"x").unwrap_err();
        assert!(err.to_string().contains("missing/state"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn remove_ignores_missing() {
        let dir = scratch("remove");
        let file = dir.join("f");
        fs::write(&file, b"x").unwrap();
        assert!(remove_file(&file).unwrap());
        assert!(!remove_file(&file).unwrap());
        assert!(remove_file(&dir).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
