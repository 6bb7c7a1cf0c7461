//! Block device files under `<dbdir>/block` (§9.4, §8.4): discovery at
//! start-up, creation, removal, and the streamed set and dump.
//!
//! A set writes into a temporary file that replaces the device only when
//! the whole stream arrived: unlike upstream, a failed upload leaves the
//! old content intact.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path as FsPath, PathBuf};

use flate2::write::{ZlibDecoder, ZlibEncoder};
use flate2::Compression;

use crate::model::Name;

/// One MiB: block sizes are whole MB.
const MB: u64 = 1 << 20;

/// Mode of block device files.
const FILE_MODE: u32 = 0o600;

/// Why a block device operation failed.
#[derive(Debug)]
pub enum BlockError {
    /// A file operation failed.
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The uploaded content is larger than the device.
    StreamExceedsSize {
        /// The device size in MB.
        size: i64,
    },
    /// The compressed upload is not a valid zlib stream.
    Inflate(String),
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockError::Io { what, path, source } => {
                write!(f, "{what} {}: {source}", path.display())
            }
            BlockError::StreamExceedsSize { size } => {
                write!(f, "stream exceeds size (the device has {size} MB)")
            }
            BlockError::Inflate(e) => write!(f, "failed to uncompress the stream: {e}"),
        }
    }
}

impl std::error::Error for BlockError {}

fn io_err<'a>(what: &'static str, path: &'a FsPath) -> impl FnOnce(io::Error) -> BlockError + 'a {
    move |source| BlockError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// What [`scan`] found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Block devices and their sizes in MB, sorted by name.
    pub devices: Vec<(Name, i64)>,
    /// Files that are not block devices, one sentence each.
    pub skipped: Vec<String>,
}

/// The block devices found in `dir`: every file whose name parses as a
/// name with a label and whose size is a non-zero number of MB.
pub fn scan(dir: &FsPath) -> io::Result<Scan> {
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Scan::default()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let file_name = entry.file_name();
        let text = file_name.to_string_lossy();
        if text.starts_with('.') {
            continue;
        }
        let size = entry.metadata()?.len();
        match Name::parse(&text) {
            Ok(name) if !name.is_path() && size > 0 && size % MB == 0 => {
                found.push((name, i64::try_from(size / MB).unwrap_or(i64::MAX)));
            }
            Ok(_) | Err(_) => skipped.push(format!(
                "skipped {}: not a block device name, or not a non-zero multiple of 1 MB",
                entry.path().display()
            )),
        }
    }
    found.sort();
    Ok(Scan {
        devices: found,
        skipped,
    })
}

/// Writes `tmp` fully, then renames it over `path` and syncs the directory.
fn commit(tmp: &FsPath, path: &FsPath, file: File) -> Result<(), BlockError> {
    file.sync_all().map_err(io_err("cannot sync", tmp))?;
    drop(file);
    fs::rename(tmp, path).map_err(io_err("cannot rename", tmp))?;
    let dir = path.parent().unwrap_or(FsPath::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("cannot sync", dir))
}

fn temp_path(path: &FsPath, kind: &str) -> PathBuf {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{file}.{kind}"))
}

fn create_temp(path: &FsPath) -> Result<File, BlockError> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)
        .map_err(io_err("cannot create", path))
}

/// Creates the device file `path` of `size` MB, zero-filled (sparse).
pub fn create(path: &FsPath, size: i64) -> Result<(), BlockError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io_err("cannot create", dir))?;
    }
    let tmp = temp_path(path, "new");
    let file = create_temp(&tmp)?;
    let bytes = u64::try_from(size).unwrap_or(0).saturating_mul(MB);
    file.set_len(bytes).map_err(io_err("cannot extend", &tmp))?;
    commit(&tmp, path, file)
}

/// Removes the device file `path`.
pub fn remove(path: &FsPath) -> Result<(), BlockError> {
    fs::remove_file(path).map_err(io_err("cannot remove", path))
}

/// Receives new content for a device of `size` MB: feed chunks with
/// [`Upload::write`], then [`Upload::finish`] replaces the device.
pub struct Upload {
    path: PathBuf,
    tmp: PathBuf,
    size: i64,
    sink: Sink,
}

enum Sink {
    Raw(Limited),
    Zlib(ZlibDecoder<Limited>),
}

/// A file that refuses to grow beyond a limit.
struct Limited {
    file: File,
    written: u64,
    limit: u64,
}

impl Write for Limited {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written.saturating_add(buf.len() as u64) > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                "stream exceeds size",
            ));
        }
        let n = self.file.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Upload {
    /// Starts an upload to device file `path` of `size` MB.
    pub fn start(path: &FsPath, size: i64, compressed: bool) -> Result<Upload, BlockError> {
        let tmp = temp_path(path, "upload");
        let file = create_temp(&tmp)?;
        let limit = u64::try_from(size).unwrap_or(0).saturating_mul(MB);
        let limited = Limited {
            file,
            written: 0,
            limit,
        };
        let sink = if compressed {
            Sink::Zlib(ZlibDecoder::new(limited))
        } else {
            Sink::Raw(limited)
        };
        Ok(Upload {
            path: path.to_path_buf(),
            tmp,
            size,
            sink,
        })
    }

    fn fail(&self, e: io::Error) -> BlockError {
        let _ = fs::remove_file(&self.tmp);
        match e.kind() {
            io::ErrorKind::FileTooLarge => BlockError::StreamExceedsSize { size: self.size },
            io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => {
                BlockError::Inflate(e.to_string())
            }
            _ => BlockError::Io {
                what: "cannot write",
                path: self.tmp.clone(),
                source: e,
            },
        }
    }

    /// Appends one chunk.
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), BlockError> {
        let result = match &mut self.sink {
            Sink::Raw(f) => f.write_all(chunk),
            Sink::Zlib(z) => z.write_all(chunk),
        };
        result.map_err(|e| self.fail(e))
    }

    /// Extends the content to the device size and replaces the device.
    pub fn finish(self) -> Result<(), BlockError> {
        let limited = match self.sink {
            Sink::Raw(f) => Ok(f),
            Sink::Zlib(z) => z.finish(),
        };
        let limited = match limited {
            Ok(l) => l,
            Err(e) => {
                let _ = fs::remove_file(&self.tmp);
                return Err(match e.kind() {
                    // The last inflated bytes can overflow the device too.
                    io::ErrorKind::FileTooLarge => {
                        BlockError::StreamExceedsSize { size: self.size }
                    }
                    _ => BlockError::Inflate(e.to_string()),
                });
            }
        };
        limited
            .file
            .set_len(limited.limit)
            .map_err(io_err("cannot extend", &self.tmp))?;
        commit(&self.tmp, &self.path, limited.file)
    }

    /// Abandons the upload; the device keeps its content.
    pub fn abort(self) {
        let _ = fs::remove_file(&self.tmp);
    }
}

/// Reads a device for a dump: raw pieces of at most 4096 bytes, or zlib
/// output pieces at `level` > 0.
pub struct Dump {
    file: File,
    path: PathBuf,
    encoder: Option<ZlibEncoder<Vec<u8>>>,
    done: bool,
}

/// Raw dump piece size (upstream's).
const DUMP_PIECE: usize = 4096;
/// Input read per step when compressing.
const ZLIB_INPUT: usize = 64 * 1024;

impl Dump {
    /// Opens device file `path`.
    pub fn open(path: &FsPath, level: i64) -> Result<Dump, BlockError> {
        let file = File::open(path).map_err(io_err("cannot open", path))?;
        let encoder = (level > 0).then(|| {
            ZlibEncoder::new(
                Vec::new(),
                Compression::new(u32::try_from(level.min(9)).unwrap_or(9)),
            )
        });
        Ok(Dump {
            file,
            path: path.to_path_buf(),
            encoder,
            done: false,
        })
    }

    /// The next piece, or `None` at the end.
    pub fn next_piece(&mut self) -> Result<Option<Vec<u8>>, BlockError> {
        if self.done {
            return Ok(None);
        }
        let Some(encoder) = &mut self.encoder else {
            let mut buf = vec![0u8; DUMP_PIECE];
            let n = self
                .file
                .read(&mut buf)
                .map_err(io_err("cannot read", &self.path))?;
            if n == 0 {
                self.done = true;
                return Ok(None);
            }
            buf.truncate(n);
            return Ok(Some(buf));
        };
        loop {
            let mut buf = vec![0u8; ZLIB_INPUT];
            let n = self
                .file
                .read(&mut buf)
                .map_err(io_err("cannot read", &self.path))?;
            if n == 0 {
                self.done = true;
                let rest =
                    std::mem::replace(encoder, ZlibEncoder::new(Vec::new(), Compression::none()));
                let out = rest
                    .finish()
                    .map_err(io_err("cannot compress", &self.path))?;
                return Ok((!out.is_empty()).then_some(out));
            }
            encoder
                .write_all(&buf[..n])
                .map_err(io_err("cannot compress", &self.path))?;
            let out = std::mem::take(encoder.get_mut());
            if !out.is_empty() {
                return Ok(Some(out));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("albatross-blocks-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn create_scan_set_dump() {
        let d = dir("cycle");
        let path = d.join("a:data");
        create(&path, 2).unwrap();
        fs::write(d.join("junk"), b"123").unwrap();
        let found = scan(&d).unwrap();
        assert_eq!(found.devices, vec![(Name::parse("a:data").unwrap(), 2)]);
        assert_eq!(found.skipped.len(), 1);

        let content: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let compressed = crate::daemon::image::deflate(&content, 6);
        let mut up = Upload::start(&path, 2, true).unwrap();
        for chunk in compressed.chunks(1000) {
            up.write(chunk).unwrap();
        }
        up.finish().unwrap();
        let data = fs::read(&path).unwrap();
        assert_eq!(data.len() as u64, 2 * MB);
        assert_eq!(&data[..content.len()], &content[..]);

        for level in [0, 9] {
            let mut dump = Dump::open(&path, level).unwrap();
            let mut out = Vec::new();
            while let Some(piece) = dump.next_piece().unwrap() {
                assert!(level > 0 || piece.len() <= DUMP_PIECE);
                out.extend(piece);
            }
            let out = if level > 0 {
                crate::daemon::image::inflate(&out, 4 * MB).unwrap()
            } else {
                out
            };
            assert_eq!(out, data);
        }
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn oversized_upload_keeps_old_content() {
        let d = dir("over");
        let path = d.join(":b");
        create(&path, 1).unwrap();
        let mut up = Upload::start(&path, 1, false).unwrap();
        up.write(&vec![1u8; MB as usize]).unwrap();
        assert!(matches!(
            up.write(&[1]),
            Err(BlockError::StreamExceedsSize { size: 1 })
        ));
        assert_eq!(fs::read(&path).unwrap(), vec![0u8; MB as usize]);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn oversized_compressed_upload_is_too_large_not_corrupt() {
        let d = dir("over-zlib");
        let path = d.join(":b");
        create(&path, 1).unwrap();
        // Zeros inflate in large steps: the overflow may only show when the
        // decoder flushes its last output at the end.
        let compressed = crate::daemon::image::deflate(&vec![0u8; MB as usize + 1], 9);
        let mut up = Upload::start(&path, 1, true).unwrap();
        let result = up.write(&compressed).and_then(|()| up.finish());
        assert!(
            matches!(result, Err(BlockError::StreamExceedsSize { size: 1 })),
            "{result:?}"
        );
        assert_eq!(fs::read(&path).unwrap(), vec![0u8; MB as usize]);
        fs::remove_dir_all(&d).unwrap();
    }
}
