//! The daemon's persistence: one directory per unikernel and one file per
//! policy under `<dbdir>`, so that a change writes only its own files.
//!
//! Upstream keeps everything in the single file `<dbdir>/state` (§7.2),
//! rewritten in full (every image included) after each change and without
//! fsync (known traps 17 and 19). Here:
//!
//! * `<dbdir>/unikernels/<text(name)>/config` is the unikernel's
//!   configuration record ([`encode_config_record`]) with an empty image,
//!   and `…/image` the image exactly as received (compressed or not);
//! * `<dbdir>/policies/<text(path)>` (the root is `:`) is a policy record
//!   ([`encode_policy_record`]);
//! * `<dbdir>/store-version` holds `1` once the store is complete.
//!
//! A unikernel is replaced by writing a fresh directory `.<text>~new`,
//! moving the current one away to `.<text>~old`, moving the new one in,
//! syncing `unikernels/` and deleting the old one. A removal moves the
//! directory to `.<text>~del`, syncs and deletes. Start-up resolves what a
//! crash left: an `~old` whose final directory is missing is moved back,
//! every other `~new`, `~old` or `~del` is deleted, so each unikernel is
//! either its old or its new version, never neither. The markers use `~`
//! because it can never appear in a name: `.` is a label character, so
//! `.<text>.new` could be the text of another unikernel.
//!
//! On the first start with an upstream `<dbdir>/state` and no store, the
//! state file is imported (and left untouched); [`Store::export_state`] and
//! [`write_upstream_state`] go the other way for operators who move back.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, DirBuilder, File};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path as FsPath, PathBuf};

use crate::model::{Name, Path, Policy, UnikernelConfig};
use crate::sys::{files, SysError};
use crate::wire::state::{
    decode_config_record, decode_policy_record, decode_state, encode_config_record,
    encode_policy_record, encode_state_layout, StateLayout,
};
use crate::wire::{DecodeError, EncodeError};

/// Directory of the unikernels, below the database directory.
const UNIKERNELS: &str = "unikernels";
/// Directory of the policies, below the database directory.
const POLICIES: &str = "policies";
/// The configuration record in a unikernel's directory.
const CONFIG: &str = "config";
/// The image in a unikernel's directory.
const IMAGE: &str = "image";
/// The marker of a complete store, below the database directory.
const VERSION_FILE: &str = "store-version";
/// The only store layout so far.
const VERSION: &str = "1";
/// Upstream's state file, below the database directory.
const UPSTREAM_STATE: &str = "state";
/// Where [`write_upstream_state`] keeps the previous state file.
const UPSTREAM_BACKUP: &str = "state.bak";
/// Mode of the store's directories: images may hold secrets.
const DIR_MODE: u32 = 0o700;

/// The persistent store under a database directory.
#[derive(Debug, Clone)]
pub struct Store {
    dbdir: PathBuf,
}

/// A unikernel as loaded at start-up: its configuration without the image
/// (kept on disk, known trap 19) and where the image is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredUnikernel {
    /// The unikernel's name.
    pub name: Name,
    /// Its configuration; `image` is empty.
    pub config: UnikernelConfig,
    /// The image file, exactly as received (see `config.compressed`).
    pub image: PathBuf,
}

/// What [`Store::open`] found.
#[derive(Debug)]
pub struct Loaded {
    /// The unikernels that were read, in canonical order (§7.2).
    pub unikernels: Vec<StoredUnikernel>,
    /// The policies that were read, in canonical order.
    pub policies: Vec<(Path, Policy)>,
    /// The layout of `<dbdir>/state` if it was imported by this call.
    pub imported: Option<StateLayout>,
    /// What was repaired or left alone, one sentence each.
    pub warnings: Vec<StoreWarning>,
    /// Entries that could not be read ([`StoreError::Decode`] or
    /// [`StoreError::Incomplete`]); they stay on disk. Whether to start
    /// without them is the daemon's decision.
    pub errors: Vec<StoreError>,
}

/// Something [`Store::open`] repaired or skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreWarning {
    /// A replaced unikernel directory was moved back because the crash
    /// happened before its replacement was in place.
    Restored {
        /// The directory left by the crash.
        from: PathBuf,
        /// Where it is now.
        to: PathBuf,
    },
    /// A half-written or superseded entry left by a crash was deleted.
    Discarded {
        /// The deleted file or directory.
        path: PathBuf,
    },
    /// An entry that the store did not write was left alone.
    Ignored {
        /// The entry.
        path: PathBuf,
        /// Why it is not part of the store.
        reason: &'static str,
    },
    /// An import of the upstream state file was interrupted; the partial
    /// store was deleted and the file imported again.
    ImportRestarted {
        /// The upstream state file.
        state: PathBuf,
    },
}

impl fmt::Display for StoreWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreWarning::Restored { from, to } => write!(
                f,
                "restored {} from {} after an interrupted replacement",
                to.display(),
                from.display()
            ),
            StoreWarning::Discarded { path } => {
                write!(f, "deleted {} left by an interrupted write", path.display())
            }
            StoreWarning::Ignored { path, reason } => {
                write!(f, "ignored {}: {reason}", path.display())
            }
            StoreWarning::ImportRestarted { state } => write!(
                f,
                "the import of {} was interrupted; imported it again",
                state.display()
            ),
        }
    }
}

/// A file system operation of the store, for [`StoreError::Io`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    /// Creating a directory.
    CreateDir,
    /// Listing a directory.
    ListDir,
    /// Reading a file.
    Read,
    /// Writing a file (temporary file, fsync, rename, fsync directory).
    Write,
    /// Linking an existing file under a second name.
    Link,
    /// Removing a file or directory tree.
    Remove,
    /// Flushing a directory to disk.
    SyncDir,
}

impl fmt::Display for StoreOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoreOp::CreateDir => "creating directory",
            StoreOp::ListDir => "listing directory",
            StoreOp::Read => "reading",
            StoreOp::Write => "writing",
            StoreOp::Link => "linking",
            StoreOp::Remove => "removing",
            StoreOp::SyncDir => "syncing directory",
        })
    }
}

/// Why the store failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// A file system operation failed.
    Io {
        /// The operation.
        op: StoreOp,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The error from the kernel.
        source: io::Error,
    },
    /// Renaming failed.
    Rename {
        /// The old name.
        from: PathBuf,
        /// The new name.
        to: PathBuf,
        /// The error from the kernel.
        source: io::Error,
    },
    /// A file does not decode.
    Decode {
        /// The file.
        path: PathBuf,
        /// Why.
        source: DecodeError,
    },
    /// A unikernel directory lacks one of its two files.
    Incomplete {
        /// The directory.
        dir: PathBuf,
        /// The missing file's name.
        missing: &'static str,
    },
    /// The store was written by a version of albatross with another
    /// layout.
    UnknownVersion {
        /// The version file.
        path: PathBuf,
        /// Its content.
        found: String,
    },
    /// A unikernel operation was given a path (a name without a label).
    NotAUnikernel {
        /// The name.
        name: Name,
    },
    /// The store cannot be written in the requested state file layout.
    Export(EncodeError),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io { op, path, source } => {
                write!(f, "{op} {} failed: {source}", path.display())
            }
            StoreError::Rename { from, to, source } => write!(
                f,
                "renaming {} to {} failed: {source}",
                from.display(),
                to.display()
            ),
            StoreError::Decode { path, source } => {
                write!(f, "{} does not decode: {source}", path.display())
            }
            StoreError::Incomplete { dir, missing } => write!(
                f,
                "unikernel directory {} has no {missing} file (was it changed by hand?)",
                dir.display()
            ),
            StoreError::UnknownVersion { path, found } => write!(
                f,
                "{} says store version {found:?}, but this albatross reads version {VERSION} only",
                path.display()
            ),
            StoreError::NotAUnikernel { name } => {
                write!(f, "{name} is a path, not the name of a unikernel")
            }
            StoreError::Export(e) => write!(f, "exporting the state file failed: {e}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io { source, .. } | StoreError::Rename { source, .. } => Some(source),
            StoreError::Decode { source, .. } => Some(source),
            StoreError::Export(e) => Some(e),
            _ => None,
        }
    }
}

fn io_error(op: StoreOp, path: &FsPath) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// A [`StoreError`] from the durable-file layer, which names its own paths.
fn sys_error(op: StoreOp, path: &FsPath, e: SysError) -> StoreError {
    let source = match e {
        SysError::Io { source, .. } => source,
        other => io::Error::other(other),
    };
    io_error(op, path)(source)
}

/// The crash markers of unikernel directories (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Marker {
    /// A replacement being written.
    New,
    /// The replaced version, until the replacement is in place.
    Old,
    /// A removed unikernel, until it is deleted.
    Del,
}

impl Marker {
    const ALL: [Marker; 3] = [Marker::New, Marker::Old, Marker::Del];

    fn suffix(self) -> &'static str {
        match self {
            Marker::New => "~new",
            Marker::Old => "~old",
            Marker::Del => "~del",
        }
    }

    /// `.<text>~new` and so on.
    fn file_name(self, text: &str) -> String {
        format!(".{text}{}", self.suffix())
    }

    /// The marker and the text of a marked file name.
    fn parse(file_name: &str) -> Option<(Marker, &str)> {
        let rest = file_name.strip_prefix('.')?;
        Marker::ALL
            .into_iter()
            .find_map(|m| Some((m, rest.strip_suffix(m.suffix())?)))
    }
}

/// The points of a write or removal where a crash is simulated by the
/// unit tests (the write stops right after the step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    MakeNew,
    WriteImage,
    WriteConfig,
    MoveOldAway,
    MoveNewIn,
    SyncDir,
    MoveToDel,
}

/// The image of a unikernel being written.
enum Image<'a> {
    /// These bytes.
    Bytes(&'a [u8]),
    /// The image already stored (linked, not copied).
    Keep,
}

/// The entries of the store directories, unmodified.
#[derive(Default)]
struct Listing {
    /// Unikernel directories by name, with their directory.
    unikernels: Vec<(Name, PathBuf)>,
    /// Crash leftovers of unikernel directories: marker, the name's text.
    marked: Vec<(Marker, String)>,
    /// Policy files by path, with their file.
    policies: Vec<(Path, PathBuf)>,
    /// Temporary files of interrupted policy writes.
    policy_temps: Vec<PathBuf>,
    /// Entries that the store did not write.
    ignored: Vec<StoreWarning>,
}

impl Store {
    /// Opens the store under `dbdir` (which must exist): creates it on the
    /// first start, importing `<dbdir>/state` if upstream left one,
    /// repairs what a crash left and reads every unikernel configuration
    /// (not the images) and every policy.
    pub fn open(dbdir: &FsPath) -> Result<(Store, Loaded), StoreError> {
        let store = Store {
            dbdir: dbdir.to_path_buf(),
        };
        let mut warnings = Vec::new();
        let imported = store.initialise(&mut warnings)?;
        let listing = store.list()?;
        let mut loaded = store.recover_and_read(listing)?;
        warnings.append(&mut loaded.warnings);
        loaded.warnings = warnings;
        loaded.imported = imported;
        Ok((store, loaded))
    }

    /// A handle on the store under `dbdir` for reading only (export,
    /// inspection): nothing is created or repaired, so it is safe while a
    /// daemon runs.
    pub fn for_reading(dbdir: &FsPath) -> Store {
        Store {
            dbdir: dbdir.to_path_buf(),
        }
    }

    /// Whether `dbdir` holds a store (written by this program's daemon).
    pub fn exists_in(dbdir: &FsPath) -> bool {
        dbdir.join(VERSION_FILE).is_file()
    }

    /// The database directory.
    pub fn dbdir(&self) -> &FsPath {
        &self.dbdir
    }

    /// The image file of unikernel `name`.
    pub fn image_path(&self, name: &Name) -> PathBuf {
        self.unikernel_dir(&name.to_string()).join(IMAGE)
    }

    /// Reads the stored image of unikernel `name`.
    pub fn read_image(&self, name: &Name) -> Result<Vec<u8>, StoreError> {
        let path = self.image_path(name);
        fs::read(&path).map_err(io_error(StoreOp::Read, &path))
    }

    /// Stores unikernel `name` with `config`, whose `image` is the image,
    /// replacing any stored version. Writes only this unikernel's files.
    pub fn put_unikernel(&self, name: &Name, config: &UnikernelConfig) -> Result<(), StoreError> {
        self.write_unikernel(name, config, Image::Bytes(&config.image), None)
    }

    /// Replaces the configuration of the stored unikernel `name` and keeps
    /// its image (`config.image` is not used); the cost does not depend on
    /// the size of the image.
    pub fn update_config(&self, name: &Name, config: &UnikernelConfig) -> Result<(), StoreError> {
        self.write_unikernel(name, config, Image::Keep, None)
    }

    /// Removes unikernel `name`; returns whether it was stored.
    pub fn remove_unikernel(&self, name: &Name) -> Result<bool, StoreError> {
        self.delete_unikernel(name, None)
    }

    /// Stores the policy of `path`, replacing any stored one.
    pub fn put_policy(&self, path: &Path, policy: &Policy) -> Result<(), StoreError> {
        let dir = self.dir(POLICIES);
        let file = policy_file_name(path);
        files::write_atomic(&dir, &file, &encode_policy_record(policy))
            .map_err(|e| sys_error(StoreOp::Write, &dir.join(&file), e))
    }

    /// Removes the policy of `path`; returns whether one was stored.
    pub fn remove_policy(&self, path: &Path) -> Result<bool, StoreError> {
        let dir = self.dir(POLICIES);
        let file = dir.join(policy_file_name(path));
        let existed =
            files::remove_file(&file).map_err(|e| sys_error(StoreOp::Remove, &file, e))?;
        if existed {
            sync_dir(&dir)?;
        }
        Ok(existed)
    }

    /// The whole store as an upstream state file in the current layout
    /// `[6]`, canonical order, images included.
    pub fn export_state(&self) -> Result<Vec<u8>, StoreError> {
        self.export_state_layout(StateLayout::Current)
    }

    /// The whole store as an upstream state file in `layout`: `[6]`, or
    /// `[5]`/`[4]` for older upstream releases (see
    /// [`encode_state_layout`] for what they cannot hold). Crash leftovers
    /// are not repaired here; they are simply not part of the store.
    pub fn export_state_layout(&self, layout: StateLayout) -> Result<Vec<u8>, StoreError> {
        let listing = self.list()?;
        let unikernels = listing
            .unikernels
            .into_iter()
            .map(|(name, dir)| {
                let mut config = read_config(&dir)?;
                let image = dir.join(IMAGE);
                config.image = fs::read(&image).map_err(io_error(StoreOp::Read, &image))?;
                Ok((name, config))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let policies = listing
            .policies
            .into_iter()
            .map(|(path, file)| Ok((path, read_policy(&file)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        encode_state_layout(&unikernels, &policies, layout).map_err(StoreError::Export)
    }

    fn dir(&self, which: &str) -> PathBuf {
        self.dbdir.join(which)
    }

    fn unikernel_dir(&self, file_name: &str) -> PathBuf {
        self.dir(UNIKERNELS).join(file_name)
    }

    /// Makes sure the store exists and is complete; imports upstream's
    /// state file on the first start. Returns the imported layout.
    fn initialise(
        &self,
        warnings: &mut Vec<StoreWarning>,
    ) -> Result<Option<StateLayout>, StoreError> {
        let version_file = self.dbdir.join(VERSION_FILE);
        match fs::read(&version_file) {
            Ok(content) => {
                let found = String::from_utf8_lossy(&content);
                if found.trim() == VERSION {
                    return Ok(None);
                }
                return Err(StoreError::UnknownVersion {
                    path: version_file,
                    found: found.into_owned(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(StoreOp::Read, &version_file)(e)),
        }
        let state_file = self.dbdir.join(UPSTREAM_STATE);
        let state = match fs::read(&state_file) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_error(StoreOp::Read, &state_file)(e)),
        };
        let mut imported = None;
        if let Some(bytes) = state {
            // Without the version file a store next to a state file is a
            // partial import: start it over.
            let mut partial = false;
            for which in [UNIKERNELS, POLICIES] {
                let dir = self.dir(which);
                match fs::remove_dir_all(&dir) {
                    Ok(()) => partial = true,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_error(StoreOp::Remove, &dir)(e)),
                }
            }
            if partial {
                warnings.push(StoreWarning::ImportRestarted {
                    state: state_file.clone(),
                });
            }
            self.create_dirs()?;
            let state = decode_state(&bytes).map_err(|source| StoreError::Decode {
                path: state_file,
                source,
            })?;
            for (name, config) in &state.unikernels {
                self.put_unikernel(name, config)?;
            }
            for (path, policy) in &state.policies {
                self.put_policy(path, policy)?;
            }
            imported = Some(state.layout);
        } else {
            self.create_dirs()?;
        }
        files::write_atomic(&self.dbdir, VERSION_FILE, format!("{VERSION}\n").as_bytes())
            .map_err(|e| sys_error(StoreOp::Write, &version_file, e))?;
        Ok(imported)
    }

    fn create_dirs(&self) -> Result<(), StoreError> {
        for which in [UNIKERNELS, POLICIES] {
            let dir = self.dir(which);
            match DirBuilder::new().mode(DIR_MODE).create(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_error(StoreOp::CreateDir, &dir)(e)),
            }
        }
        // The version file's write syncs `dbdir`, which makes both
        // directories durable.
        Ok(())
    }

    /// Lists both store directories without changing anything.
    fn list(&self) -> Result<Listing, StoreError> {
        let mut listing = Listing::default();
        let dir = self.dir(UNIKERNELS);
        for (file_name, path) in read_dir(&dir)? {
            let Some(text) = file_name.to_str() else {
                listing.ignored.push(not_utf8(path));
                continue;
            };
            if let Some((marker, base)) = Marker::parse(text) {
                if canonical_unikernel(base).is_some() {
                    listing.marked.push((marker, base.to_string()));
                    continue;
                }
            }
            match canonical_unikernel(text) {
                Some(name) => listing.unikernels.push((name, path)),
                None => listing.ignored.push(StoreWarning::Ignored {
                    path,
                    reason: "not the canonical name of a unikernel",
                }),
            }
        }
        let dir = self.dir(POLICIES);
        for (file_name, path) in read_dir(&dir)? {
            let Some(text) = file_name.to_str() else {
                listing.ignored.push(not_utf8(path));
                continue;
            };
            match canonical_path(text) {
                Some(policy_path) => listing.policies.push((policy_path, path)),
                // `files::write_atomic` writes `.<file>.tmp` first.
                None if text
                    .strip_prefix('.')
                    .and_then(|t| t.strip_suffix(".tmp"))
                    .is_some_and(|t| canonical_path(t).is_some()) =>
                {
                    listing.policy_temps.push(path)
                }
                None => listing.ignored.push(StoreWarning::Ignored {
                    path,
                    reason: "not the canonical name of a policy path",
                }),
            }
        }
        Ok(listing)
    }

    /// Repairs the crash leftovers of `listing` and reads its entries.
    fn recover_and_read(&self, mut listing: Listing) -> Result<Loaded, StoreError> {
        let mut warnings = std::mem::take(&mut listing.ignored);
        let mut names: BTreeSet<String> = listing
            .unikernels
            .iter()
            .map(|(n, _)| n.to_string())
            .collect();
        // One pass per base name, in a fixed order, with the final state of
        // the directory known: `~old` is restored only without a final one.
        let bases: BTreeSet<String> = listing.marked.iter().map(|(_, b)| b.clone()).collect();
        for base in bases.iter() {
            warnings.extend(self.resolve_leftovers(base)?);
            if exists(&self.unikernel_dir(base))? {
                names.insert(base.clone());
            }
        }
        if !bases.is_empty() {
            sync_dir(&self.dir(UNIKERNELS))?;
        }
        for path in listing.policy_temps {
            if files::remove_file(&path).map_err(|e| sys_error(StoreOp::Remove, &path, e))? {
                warnings.push(StoreWarning::Discarded { path });
            }
        }

        let mut errors = Vec::new();
        let mut unikernels = Vec::new();
        for text in names {
            let Some(name) = canonical_unikernel(&text) else {
                continue;
            };
            let dir = self.unikernel_dir(&text);
            let image = dir.join(IMAGE);
            let read = read_config(&dir).and_then(|config| {
                if image.is_file() {
                    Ok(config)
                } else {
                    Err(StoreError::Incomplete {
                        dir: dir.clone(),
                        missing: IMAGE,
                    })
                }
            });
            match read {
                Ok(mut config) => {
                    // The image lives in its own file; the record's is empty.
                    config.image = Vec::new();
                    unikernels.push(StoredUnikernel {
                        name,
                        config,
                        image,
                    });
                }
                Err(e) => errors.push(e),
            }
        }
        unikernels.sort_by(|a, b| a.name.trie_key().cmp(&b.name.trie_key()));

        let mut policies = Vec::new();
        for (path, file) in listing.policies {
            match read_policy(&file) {
                Ok(policy) => policies.push((path, policy)),
                Err(e) => errors.push(e),
            }
        }
        policies.sort_by(|a, b| a.0.labels().cmp(b.0.labels()));
        Ok(Loaded {
            unikernels,
            policies,
            imported: None,
            warnings,
            errors,
        })
    }

    /// Resolves the crash leftovers of the unikernel whose name's text is
    /// `text`: an `~old` without a final directory is moved back, every
    /// other leftover deleted. Does not sync `unikernels/`. Returns what
    /// was done.
    fn resolve_leftovers(&self, text: &str) -> Result<Vec<StoreWarning>, StoreError> {
        let final_dir = self.unikernel_dir(text);
        let mut warnings = Vec::new();
        for marker in [Marker::Old, Marker::New, Marker::Del] {
            let path = self.unikernel_dir(&marker.file_name(text));
            if !exists(&path)? {
                continue;
            }
            if marker == Marker::Old && !exists(&final_dir)? {
                rename(&path, &final_dir)?;
                warnings.push(StoreWarning::Restored {
                    from: path,
                    to: final_dir.clone(),
                });
            } else {
                fs::remove_dir_all(&path).map_err(io_error(StoreOp::Remove, &path))?;
                warnings.push(StoreWarning::Discarded { path });
            }
        }
        Ok(warnings)
    }

    /// Writes unikernel `name`; `crash_after` stops after that step, as a
    /// crash would (for the unit tests; `None` in production).
    fn write_unikernel(
        &self,
        name: &Name,
        config: &UnikernelConfig,
        image: Image<'_>,
        crash_after: Option<Step>,
    ) -> Result<(), StoreError> {
        let text = unikernel_text(name)?;
        let stop = |step| crash_after == Some(step);
        // Leftovers of an earlier failed write must not mix with this one.
        if !self.resolve_leftovers(&text)?.is_empty() {
            sync_dir(&self.dir(UNIKERNELS))?;
        }
        let final_dir = self.unikernel_dir(&text);
        let new = self.unikernel_dir(&Marker::New.file_name(&text));
        DirBuilder::new()
            .mode(DIR_MODE)
            .create(&new)
            .map_err(io_error(StoreOp::CreateDir, &new))?;
        if stop(Step::MakeNew) {
            return Ok(());
        }
        match image {
            Image::Bytes(bytes) => files::write_atomic(&new, IMAGE, bytes)
                .map_err(|e| sys_error(StoreOp::Write, &new.join(IMAGE), e))?,
            Image::Keep => {
                let from = final_dir.join(IMAGE);
                fs::hard_link(&from, new.join(IMAGE)).map_err(io_error(StoreOp::Link, &from))?
            }
        }
        if stop(Step::WriteImage) {
            return Ok(());
        }
        // The record never carries the image: it has its own file.
        let record = encode_config_record(&UnikernelConfig {
            typ: config.typ,
            compressed: config.compressed,
            image: Vec::new(),
            args: config.args.clone(),
        });
        // This also syncs `new`, making a linked image durable.
        files::write_atomic(&new, CONFIG, &record)
            .map_err(|e| sys_error(StoreOp::Write, &new.join(CONFIG), e))?;
        if stop(Step::WriteConfig) {
            return Ok(());
        }
        let old = self.unikernel_dir(&Marker::Old.file_name(&text));
        let replacing = exists(&final_dir)?;
        if replacing {
            rename(&final_dir, &old)?;
        }
        if stop(Step::MoveOldAway) {
            return Ok(());
        }
        rename(&new, &final_dir)?;
        if stop(Step::MoveNewIn) {
            return Ok(());
        }
        sync_dir(&self.dir(UNIKERNELS))?;
        if stop(Step::SyncDir) {
            return Ok(());
        }
        if replacing {
            fs::remove_dir_all(&old).map_err(io_error(StoreOp::Remove, &old))?;
        }
        Ok(())
    }

    /// Removes unikernel `name`; `crash_after` as for
    /// [`Store::write_unikernel`].
    fn delete_unikernel(&self, name: &Name, crash_after: Option<Step>) -> Result<bool, StoreError> {
        let text = unikernel_text(name)?;
        if !self.resolve_leftovers(&text)?.is_empty() {
            sync_dir(&self.dir(UNIKERNELS))?;
        }
        let final_dir = self.unikernel_dir(&text);
        if !exists(&final_dir)? {
            return Ok(false);
        }
        let del = self.unikernel_dir(&Marker::Del.file_name(&text));
        rename(&final_dir, &del)?;
        if crash_after == Some(Step::MoveToDel) {
            return Ok(true);
        }
        // The removal is durable from here on; `~del` is never restored.
        sync_dir(&self.dir(UNIKERNELS))?;
        fs::remove_dir_all(&del).map_err(io_error(StoreOp::Remove, &del))?;
        Ok(true)
    }
}

/// Writes `bytes` (an upstream state file, see [`Store::export_state`]) to
/// `<dbdir>/state` for an operator moving back to upstream albatross: the
/// previous file is kept as `state.bak` (a hard link, so the old content
/// stays whole), the new one is written to a temporary file, synced and
/// renamed over `state`, and the directory synced. Unlike upstream's
/// procedure (§7.2, known trap 17) there is always a complete `state`.
pub fn write_upstream_state(dbdir: &FsPath, bytes: &[u8]) -> Result<(), StoreError> {
    let state = dbdir.join(UPSTREAM_STATE);
    let backup = dbdir.join(UPSTREAM_BACKUP);
    if exists(&state)? {
        files::remove_file(&backup).map_err(|e| sys_error(StoreOp::Remove, &backup, e))?;
        fs::hard_link(&state, &backup).map_err(io_error(StoreOp::Link, &state))?;
    }
    // The write syncs `dbdir`, which also makes the link durable.
    files::write_atomic(dbdir, UPSTREAM_STATE, bytes)
        .map_err(|e| sys_error(StoreOp::Write, &state, e))
}

/// The text of a unikernel name, or the error for a path.
fn unikernel_text(name: &Name) -> Result<String, StoreError> {
    if name.is_path() {
        return Err(StoreError::NotAUnikernel { name: name.clone() });
    }
    Ok(name.to_string())
}

/// The file name of the policy of `path`: its text as a name (`:` for the
/// root, `a:b:` otherwise).
fn policy_file_name(path: &Path) -> String {
    Name::of_path(path.clone()).to_string()
}

/// The unikernel named by `text`, if `text` is exactly its canonical text.
fn canonical_unikernel(text: &str) -> Option<Name> {
    Name::parse(text)
        .ok()
        .filter(|name| !name.is_path() && name.to_string() == text)
}

/// The path named by `text`, if `text` is exactly the canonical text of a
/// path name.
fn canonical_path(text: &str) -> Option<Path> {
    Name::parse(text)
        .ok()
        .filter(|name| name.is_path() && name.to_string() == text)
        .map(|name| name.path().clone())
}

fn not_utf8(path: PathBuf) -> StoreWarning {
    StoreWarning::Ignored {
        path,
        reason: "the file name is not UTF-8",
    }
}

fn read_config(dir: &FsPath) -> Result<UnikernelConfig, StoreError> {
    let path = dir.join(CONFIG);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(StoreError::Incomplete {
                dir: dir.to_path_buf(),
                missing: CONFIG,
            })
        }
        Err(e) => return Err(io_error(StoreOp::Read, &path)(e)),
    };
    decode_config_record(&bytes).map_err(|source| StoreError::Decode { path, source })
}

fn read_policy(path: &FsPath) -> Result<Policy, StoreError> {
    let bytes = fs::read(path).map_err(io_error(StoreOp::Read, path))?;
    decode_policy_record(&bytes).map_err(|source| StoreError::Decode {
        path: path.to_path_buf(),
        source,
    })
}

/// The entries of `dir`: file name and full path.
fn read_dir(dir: &FsPath) -> Result<Vec<(OsString, PathBuf)>, StoreError> {
    fs::read_dir(dir)
        .and_then(|entries| {
            entries
                .map(|entry| entry.map(|e| (e.file_name(), e.path())))
                .collect()
        })
        .map_err(io_error(StoreOp::ListDir, dir))
}

fn exists(path: &FsPath) -> Result<bool, StoreError> {
    path.try_exists().map_err(io_error(StoreOp::Read, path))
}

fn rename(from: &FsPath, to: &FsPath) -> Result<(), StoreError> {
    fs::rename(from, to).map_err(|source| StoreError::Rename {
        from: from.to_path_buf(),
        to: to.to_path_buf(),
        source,
    })
}

/// Makes the entries of `dir` durable.
fn sync_dir(dir: &FsPath) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(StoreOp::SyncDir, dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FailBehaviour, Typ, UnikernelArguments};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn scratch(tag: &str) -> PathBuf {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "albatross-store-unit-{}-{tag}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn config(memory: i64, image: &[u8]) -> UnikernelConfig {
        UnikernelConfig {
            typ: Typ::Solo5,
            compressed: false,
            image: image.to_vec(),
            args: UnikernelArguments {
                fail_behaviour: FailBehaviour::Quit,
                startup: None,
                add_name: true,
                cpuids: vec![0],
                memory,
                blocks: vec![],
                bridges: vec![],
                argv: None,
                cpus: 1,
                linux_boot_partition: None,
            },
        }
    }

    fn name(text: &str) -> Name {
        Name::parse(text).unwrap()
    }

    fn open(dbdir: &FsPath) -> (Store, Loaded) {
        Store::open(dbdir).unwrap()
    }

    /// The unikernels of a freshly opened store: name, memory, image.
    fn contents(dbdir: &FsPath) -> (Vec<(String, i64, Vec<u8>)>, Loaded) {
        let (store, loaded) = open(dbdir);
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let found = loaded
            .unikernels
            .iter()
            .map(|u| {
                assert!(u.config.image.is_empty());
                let image = store.read_image(&u.name).unwrap();
                assert_eq!(fs::read(&u.image).unwrap(), image);
                (u.name.to_string(), u.config.args.memory, image)
            })
            .collect();
        (found, loaded)
    }

    fn entries(dir: &FsPath) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    const WRITE_STEPS: [Step; 6] = [
        Step::MakeNew,
        Step::WriteImage,
        Step::WriteConfig,
        Step::MoveOldAway,
        Step::MoveNewIn,
        Step::SyncDir,
    ];

    #[test]
    fn markers_cannot_be_names() {
        assert_eq!(Marker::parse(".:foo~new"), Some((Marker::New, ":foo")));
        assert_eq!(Marker::parse(".a:b~old"), Some((Marker::Old, "a:b")));
        assert_eq!(Marker::parse(".a:b~del"), Some((Marker::Del, "a:b")));
        assert_eq!(Marker::parse(".:foo.new"), None);
        assert_eq!(Marker::parse(":foo~new"), None);
        for marker in Marker::ALL {
            assert!(Name::parse(&marker.file_name(":foo")).is_err());
        }
        // What a `.name.new` scheme would have used is a unikernel name.
        assert!(canonical_unikernel(".:foo.new").is_some());
    }

    #[test]
    fn crash_at_every_step_of_a_write_keeps_old_or_new() {
        for replacing in [false, true] {
            for step in WRITE_STEPS {
                let dbdir = scratch("crash-write");
                let (store, _) = open(&dbdir);
                let web = name("a:web");
                store
                    .put_unikernel(&name(":other"), &config(8, b"x"))
                    .unwrap();
                if replacing {
                    store.put_unikernel(&web, &config(1, b"old")).unwrap();
                }
                store
                    .write_unikernel(&web, &config(2, b"new"), Image::Bytes(b"new"), Some(step))
                    .unwrap();
                let new_dir = store.unikernel_dir(&Marker::New.file_name("a:web"));
                if matches!(step, Step::MakeNew | Step::WriteImage) {
                    // `write_atomic` had begun the next file.
                    fs::write(new_dir.join(".config.tmp"), b"half").unwrap();
                }

                let (found, loaded) = contents(&dbdir);
                let committed = matches!(step, Step::MoveNewIn | Step::SyncDir);
                let mut expected = vec![(":other".to_string(), 8, b"x".to_vec())];
                if committed {
                    expected.insert(0, ("a:web".to_string(), 2, b"new".to_vec()));
                } else if replacing {
                    expected.insert(0, ("a:web".to_string(), 1, b"old".to_vec()));
                }
                assert_eq!(
                    found, expected,
                    "replacing {replacing}, crash after {step:?}"
                );
                // Until the new directory is in, `~new` is left; after, `~old`.
                let leftovers = !committed || replacing;
                assert_eq!(
                    !loaded.warnings.is_empty(),
                    leftovers,
                    "{step:?}: {:?}",
                    loaded.warnings
                );
                let mut names = vec![":other"];
                if committed || replacing {
                    names.push("a:web");
                }
                assert_eq!(entries(&dbdir.join(UNIKERNELS)), names);
                fs::remove_dir_all(&dbdir).unwrap();
            }
        }
    }

    #[test]
    fn restore_of_old_is_reported() {
        let dbdir = scratch("restore");
        let (store, _) = open(&dbdir);
        let web = name(":web");
        store.put_unikernel(&web, &config(1, b"old")).unwrap();
        store
            .write_unikernel(
                &web,
                &config(2, b"new"),
                Image::Bytes(b"new"),
                Some(Step::MoveOldAway),
            )
            .unwrap();
        let (_, loaded) = contents(&dbdir);
        let dir = dbdir.join(UNIKERNELS);
        assert_eq!(
            loaded.warnings,
            [
                StoreWarning::Restored {
                    from: dir.join(".:web~old"),
                    to: dir.join(":web"),
                },
                StoreWarning::Discarded {
                    path: dir.join(".:web~new")
                },
            ]
        );
        assert!(loaded.warnings[0].to_string().starts_with("restored "));
        fs::remove_dir_all(&dbdir).unwrap();
    }

    #[test]
    fn crash_while_deleting_the_old_version() {
        let dbdir = scratch("crash-delete-old");
        let (store, _) = open(&dbdir);
        let web = name(":web");
        store.put_unikernel(&web, &config(1, b"old")).unwrap();
        store
            .write_unikernel(
                &web,
                &config(2, b"new"),
                Image::Bytes(b"new"),
                Some(Step::SyncDir),
            )
            .unwrap();
        // Half deleted: the config is gone, the image not yet.
        fs::remove_file(dbdir.join(UNIKERNELS).join(".:web~old").join(CONFIG)).unwrap();
        let (found, _) = contents(&dbdir);
        assert_eq!(found, [(":web".to_string(), 2, b"new".to_vec())]);
        assert_eq!(entries(&dbdir.join(UNIKERNELS)), [":web"]);
        fs::remove_dir_all(&dbdir).unwrap();
    }

    #[test]
    fn crash_during_removal_removes() {
        for half_deleted in [false, true] {
            let dbdir = scratch("crash-remove");
            let (store, _) = open(&dbdir);
            store
                .put_unikernel(&name(":web"), &config(1, b"i"))
                .unwrap();
            assert!(store
                .delete_unikernel(&name(":web"), Some(Step::MoveToDel))
                .unwrap());
            if half_deleted {
                fs::remove_file(dbdir.join(UNIKERNELS).join(".:web~del").join(IMAGE)).unwrap();
            }
            let (found, loaded) = contents(&dbdir);
            assert!(found.is_empty());
            assert!(matches!(
                &loaded.warnings[..],
                [StoreWarning::Discarded { .. }]
            ));
            assert!(entries(&dbdir.join(UNIKERNELS)).is_empty());
            fs::remove_dir_all(&dbdir).unwrap();
        }
    }

    #[test]
    fn a_failed_write_is_repaired_by_the_next_operation() {
        let dbdir = scratch("repair-at-runtime");
        let (store, _) = open(&dbdir);
        let web = name(":web");
        store.put_unikernel(&web, &config(1, b"old")).unwrap();
        // As if the process had failed between the two renames.
        store
            .write_unikernel(
                &web,
                &config(2, b"new"),
                Image::Bytes(b"new"),
                Some(Step::MoveOldAway),
            )
            .unwrap();
        store.put_unikernel(&web, &config(3, b"third")).unwrap();
        assert_eq!(
            contents(&dbdir).0,
            [(":web".to_string(), 3, b"third".to_vec())]
        );
        assert_eq!(entries(&dbdir.join(UNIKERNELS)), [":web"]);

        store
            .write_unikernel(
                &web,
                &config(4, b"4"),
                Image::Bytes(b"4"),
                Some(Step::MoveOldAway),
            )
            .unwrap();
        assert!(store.remove_unikernel(&web).unwrap());
        assert!(contents(&dbdir).0.is_empty());
        assert!(entries(&dbdir.join(UNIKERNELS)).is_empty());
        fs::remove_dir_all(&dbdir).unwrap();
    }

    #[test]
    fn dotted_names_and_leftovers_do_not_mix() {
        let dbdir = scratch("dotted");
        let (store, _) = open(&dbdir);
        // `.:foo.new` is a unikernel (path `.`, label `foo.new`).
        store
            .put_unikernel(&name(".:foo.new"), &config(1, b"a"))
            .unwrap();
        store
            .put_unikernel(&name(":foo"), &config(2, b"b"))
            .unwrap();
        store
            .write_unikernel(
                &name(":foo"),
                &config(3, b"c"),
                Image::Bytes(b"c"),
                Some(Step::WriteConfig),
            )
            .unwrap();
        let (found, loaded) = contents(&dbdir);
        // Canonical order: label `.` sorts before `foo`.
        assert_eq!(
            found,
            [
                (".:foo.new".to_string(), 1, b"a".to_vec()),
                (":foo".to_string(), 2, b"b".to_vec()),
            ]
        );
        assert_eq!(loaded.warnings.len(), 1);
        fs::remove_dir_all(&dbdir).unwrap();
    }

    #[test]
    fn policy_write_leftovers_are_deleted() {
        let dbdir = scratch("policy-temp");
        let (store, _) = open(&dbdir);
        let policy = Policy {
            unikernels: 1,
            cpuids: [0].into(),
            memory: 64,
            block: None,
            bridges: Default::default(),
        };
        store
            .put_policy(&Path::parse("a").unwrap(), &policy)
            .unwrap();
        let temp = dbdir.join(POLICIES).join(".a:.tmp");
        fs::write(&temp, b"half").unwrap();
        fs::write(dbdir.join(POLICIES).join(".:.tmp"), b"half").unwrap();
        let (_, loaded) = open(&dbdir);
        assert_eq!(loaded.policies, [(Path::parse("a").unwrap(), policy)]);
        assert!(loaded
            .warnings
            .contains(&StoreWarning::Discarded { path: temp }));
        assert_eq!(entries(&dbdir.join(POLICIES)), ["a:"]);
        fs::remove_dir_all(&dbdir).unwrap();
    }

    #[test]
    fn foreign_entries_are_left_alone() {
        let dbdir = scratch("foreign");
        let (store, _) = open(&dbdir);
        store
            .put_unikernel(&name("a:web"), &config(1, b"i"))
            .unwrap();
        let unikernels = dbdir.join(UNIKERNELS);
        let policies = dbdir.join(POLICIES);
        fs::create_dir(unikernels.join("A:WEB")).unwrap();
        fs::create_dir(unikernels.join("a:")).unwrap();
        fs::write(unikernels.join("README"), b"").unwrap();
        fs::create_dir(unikernels.join(".junk~new")).unwrap();
        fs::write(policies.join("a:web"), b"").unwrap();
        fs::write(policies.join(".a:web.tmp"), b"").unwrap();
        let (found, loaded) = contents(&dbdir);
        assert_eq!(found.len(), 1);
        // Upper case is not canonical (`README` would be `:readme`).
        let ignored: Vec<&str> = loaded
            .warnings
            .iter()
            .map(|w| match w {
                StoreWarning::Ignored { path, .. } => path.file_name().unwrap().to_str().unwrap(),
                other => panic!("{other}"),
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(
            ignored,
            [".a:web.tmp", ".junk~new", "A:WEB", "README", "a:", "a:web"]
        );
        assert!(loaded.warnings[0].to_string().starts_with("ignored "));
        assert_eq!(entries(&unikernels).len(), 5);
        fs::remove_dir_all(&dbdir).unwrap();
    }

    #[test]
    fn unreadable_entries_are_errors_naming_the_file() {
        let dbdir = scratch("unreadable");
        let (store, _) = open(&dbdir);
        for n in [":good", ":bad", ":noimage", ":noconfig"] {
            store.put_unikernel(&name(n), &config(1, b"i")).unwrap();
        }
        store
            .put_policy(
                &Path::root(),
                &Policy {
                    unikernels: 1,
                    cpuids: [0].into(),
                    memory: 64,
                    block: None,
                    bridges: Default::default(),
                },
            )
            .unwrap();
        let dir = dbdir.join(UNIKERNELS);
        fs::write(dir.join(":bad").join(CONFIG), b"\x30\x00").unwrap();
        fs::remove_file(dir.join(":noimage").join(IMAGE)).unwrap();
        fs::remove_file(dir.join(":noconfig").join(CONFIG)).unwrap();
        fs::write(dbdir.join(POLICIES).join(":"), b"\x30\x01").unwrap();
        let (_, loaded) = open(&dbdir);
        let names: Vec<String> = loaded
            .unikernels
            .iter()
            .map(|u| u.name.to_string())
            .collect();
        assert_eq!(names, [":good"]);
        assert!(loaded.policies.is_empty());
        let messages: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
        assert_eq!(messages.len(), 4, "{messages:?}");
        for (error, file) in [
            (":bad/config does not decode", 1),
            (":noconfig has no config file", 1),
            (":noimage has no image file", 1),
            ("policies/: does not decode", 1),
        ] {
            assert_eq!(
                messages.iter().filter(|m| m.contains(error)).count(),
                file,
                "{error}: {messages:?}"
            );
        }
        assert!(loaded.errors.iter().any(|e| matches!(
            e,
            StoreError::Decode { path, .. } if path == &dir.join(":bad").join(CONFIG)
        )));
        fs::remove_dir_all(&dbdir).unwrap();
    }

    #[test]
    fn unknown_store_version_is_refused() {
        let dbdir = scratch("version");
        open(&dbdir);
        assert_eq!(fs::read(dbdir.join(VERSION_FILE)).unwrap(), b"1\n");
        fs::write(dbdir.join(VERSION_FILE), b"2\n").unwrap();
        let err = Store::open(&dbdir).unwrap_err();
        assert!(matches!(err, StoreError::UnknownVersion { .. }));
        assert!(err.to_string().contains("version \"2\\n\""), "{err}");
        fs::remove_dir_all(&dbdir).unwrap();

        let err = Store::open(&dbdir).unwrap_err();
        assert!(err.to_string().starts_with("creating directory "), "{err}");
    }

    #[test]
    fn paths_are_not_unikernels() {
        let dbdir = scratch("path-name");
        let (store, _) = open(&dbdir);
        let err = store
            .put_unikernel(&name("a:"), &config(1, b""))
            .unwrap_err();
        assert_eq!(err.to_string(), "a: is a path, not the name of a unikernel");
        assert!(store.remove_unikernel(&name(":")).is_err());
        fs::remove_dir_all(&dbdir).unwrap();
    }
}
