//! Framing (§3): every message is a 4-byte big-endian signed length and
//! that many bytes of DER; a length of zero or less ends a stream. Raw data
//! streams (§3.3) use the same prefix per chunk and end with a zero length.
//!
//! Upstream has no bound on the length; here every reader has one, so a
//! peer cannot make us allocate more than the limit it was given.

use std::fmt;
use std::io::{self, Read, Write};

/// Default maximum size of one message: large enough for a unikernel
/// image inline in a create command. Also the most a DER value may hold
/// (the `der` crate's 256 MiB length limit).
pub const DEFAULT_MAX_FRAME: usize = 256 * 1024 * 1024;

/// Default maximum size of one raw data chunk.
pub const DEFAULT_MAX_CHUNK: usize = 1024 * 1024;

/// Size of the pieces a raw stream is cut into when sending (upstream
/// sends file pieces of 4096 bytes).
pub const SEND_CHUNK: usize = 4096;

/// Why a frame could not be read.
#[derive(Debug)]
#[non_exhaustive]
pub enum FrameError {
    /// The peer announced more bytes than allowed.
    TooLarge {
        /// The announced length.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The stream ended inside the length prefix or the body.
    Truncated {
        /// Bytes still missing.
        missing: usize,
    },
    /// Reading or writing failed.
    Io(io::Error),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the maximum of {max} bytes")
            }
            FrameError::Truncated { missing } => {
                write!(
                    f,
                    "connection closed in the middle of a frame ({missing} bytes missing)"
                )
            }
            FrameError::Io(e) => write!(f, "i/o error: {e}"),
        }
    }
}

impl std::error::Error for FrameError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FrameError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for FrameError {
    fn from(e: io::Error) -> FrameError {
        FrameError::Io(e)
    }
}

/// Reads exactly `buf.len()` bytes; a premature end is [`FrameError::Truncated`].
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<(), FrameError> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => {
                return Err(FrameError::Truncated {
                    missing: buf.len() - filled,
                })
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Interprets a length prefix: `None` for end of stream (`len <= 0`).
pub fn parse_length(prefix: [u8; 4], max: usize) -> Result<Option<usize>, FrameError> {
    let len = i32::from_be_bytes(prefix);
    if len <= 0 {
        return Ok(None);
    }
    // A positive i32 always fits in usize on the platforms we build for.
    let len = len.unsigned_abs() as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(Some(len))
}

/// Reads one frame of at most `max` bytes; `Ok(None)` is end of stream.
/// The body buffer grows with the bytes actually received, so a peer that
/// announces a large frame and sends little costs little.
pub fn read_frame(r: &mut impl Read, max: usize) -> Result<Option<Vec<u8>>, FrameError> {
    let mut prefix = [0u8; 4];
    read_full(r, &mut prefix)?;
    let Some(len) = parse_length(prefix, max)? else {
        return Ok(None);
    };
    let mut body = Vec::new();
    let got = r.take(len as u64).read_to_end(&mut body)?;
    if got < len {
        return Err(FrameError::Truncated { missing: len - got });
    }
    Ok(Some(body))
}

/// The 4-byte prefix announcing `len` bytes.
pub fn length_prefix(len: usize) -> io::Result<[u8; 4]> {
    i32::try_from(len).map(i32::to_be_bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("frame of {len} bytes is too large"),
        )
    })
}

/// Writes one frame.
pub fn write_frame(w: &mut impl Write, body: &[u8]) -> io::Result<()> {
    w.write_all(&length_prefix(body.len())?)?;
    w.write_all(body)
}

/// Writes the zero-length frame that ends a raw data stream.
pub fn write_end(w: &mut impl Write) -> io::Result<()> {
    w.write_all(&[0, 0, 0, 0])
}

/// As [`read_frame`], for an asynchronous stream.
pub async fn read_frame_async<R: futures_lite::AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Option<Vec<u8>>, FrameError> {
    use futures_lite::AsyncReadExt;
    let mut prefix = [0u8; 4];
    let mut filled = 0;
    while filled < prefix.len() {
        match r.read(&mut prefix[filled..]).await? {
            0 => {
                return Err(FrameError::Truncated {
                    missing: prefix.len() - filled,
                })
            }
            n => filled += n,
        }
    }
    let Some(len) = parse_length(prefix, max)? else {
        return Ok(None);
    };
    let mut body = Vec::new();
    let got = r.take(len as u64).read_to_end(&mut body).await?;
    if got < len {
        return Err(FrameError::Truncated { missing: len - got });
    }
    Ok(Some(body))
}

/// As [`write_frame`], for an asynchronous stream.
pub async fn write_frame_async<W: futures_lite::AsyncWrite + Unpin>(
    w: &mut W,
    body: &[u8],
) -> io::Result<()> {
    use futures_lite::AsyncWriteExt;
    w.write_all(&length_prefix(body.len())?).await?;
    w.write_all(body).await?;
    w.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_end() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"hello").unwrap();
        write_end(&mut buf).unwrap();
        let mut r = &buf[..];
        assert_eq!(
            read_frame(&mut r, 10).unwrap().as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(read_frame(&mut r, 10).unwrap(), None);
        // Negative lengths end a stream too.
        assert_eq!(
            read_frame(&mut &[0xFF, 0xFF, 0xFF, 0xFF][..], 10).unwrap(),
            None
        );
    }

    #[test]
    fn limits_and_truncation() {
        let mut r = &[0, 0, 0, 11][..];
        assert!(matches!(
            read_frame(&mut r, 10),
            Err(FrameError::TooLarge { len: 11, max: 10 })
        ));
        let mut r = &[0, 0, 0, 5, b'a'][..];
        assert!(matches!(
            read_frame(&mut r, 10),
            Err(FrameError::Truncated { missing: 4 })
        ));
        let mut r = &[0, 0][..];
        assert!(matches!(
            read_frame(&mut r, 10),
            Err(FrameError::Truncated { missing: 2 })
        ));
        // A huge announced frame with no body allocates nothing big.
        let mut r = &[0x7F, 0xFF, 0xFF, 0xFF][..];
        assert!(matches!(
            read_frame(&mut r, usize::MAX),
            Err(FrameError::Truncated { .. })
        ));
    }
}
