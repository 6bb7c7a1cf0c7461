//! Unikernel images as the core receives them: possibly zlib-compressed
//! (§10.9), checked against their Solo5 notes (§10.2 steps 1–5), and
//! compressed again for `get` (§8.2).

use std::fmt;
use std::io::{Read, Write};

use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};

use crate::model::UnikernelArguments;
use crate::solo5::{read_abi, read_manifest, Abi, ElfError, ManifestMismatch, UnsupportedTarget};

/// Why an image cannot run.
#[derive(Debug)]
pub enum ImageError {
    /// The zlib stream is broken.
    Inflate(String),
    /// Inflated, it is larger than allowed.
    TooLarge {
        /// The limit in bytes.
        max: u64,
    },
    /// Zero bytes.
    Empty,
    /// Not a Solo5 ELF image.
    Elf(ElfError),
    /// A target no tender runs.
    Target(UnsupportedTarget),
    /// Its manifest disagrees with the configuration.
    Manifest(ManifestMismatch),
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageError::Inflate(e) => write!(f, "failed to uncompress: {e}"),
            ImageError::TooLarge { max } => {
                write!(
                    f,
                    "image is larger than the maximum of {max} bytes when uncompressed"
                )
            }
            ImageError::Empty => write!(f, "image is empty"),
            ImageError::Elf(e) => write!(f, "invalid image: {e}"),
            ImageError::Target(e) => write!(f, "{e}"),
            ImageError::Manifest(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ImageError {}

/// An uncompressed image that passed every check.
#[derive(Debug)]
pub struct CheckedImage {
    /// The ELF bytes.
    pub bytes: Vec<u8>,
    /// SHA-256 of `bytes`.
    pub digest: [u8; 32],
    /// Its Solo5 target and ABI version.
    pub abi: Abi,
}

/// Inflates a zlib stream, refusing output beyond `max` bytes.
pub fn inflate(data: &[u8], max: u64) -> Result<Vec<u8>, ImageError> {
    let mut out = Vec::new();
    ZlibDecoder::new(data)
        .take(max.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| ImageError::Inflate(e.to_string()))?;
    if out.len() as u64 > max {
        return Err(ImageError::TooLarge { max });
    }
    Ok(out)
}

/// zlib-compresses `data` at `level` (1–9).
pub fn deflate(data: &[u8], level: u32) -> Vec<u8> {
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::new(level.min(9)));
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

/// Uncompresses `image` if needed and checks it for a unikernel with
/// `args`: a Solo5 image for hvt or spt whose manifest declares exactly the
/// configured block devices and networks.
pub fn check(
    image: &[u8],
    compressed: bool,
    args: &UnikernelArguments,
    max: u64,
) -> Result<CheckedImage, ImageError> {
    let bytes = if compressed {
        inflate(image, max)?
    } else {
        image.to_vec()
    };
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    if bytes.len() as u64 > max {
        return Err(ImageError::TooLarge { max });
    }
    let abi = read_abi(&bytes).map_err(ImageError::Elf)?;
    abi.target.tender_name().map_err(ImageError::Target)?;
    let manifest = read_manifest(&bytes).map_err(ImageError::Elf)?;
    manifest
        .check_devices(
            args.blocks.iter().map(|b| b.name.as_str()),
            args.bridges.iter().map(|n| n.netif.as_str()),
        )
        .map_err(ImageError::Manifest)?;
    let digest = Sha256::digest(&bytes).into();
    Ok(CheckedImage { bytes, digest, abi })
}

/// The image in the form `get` asks for (§8.2): stored bytes as they are
/// when the compression matches, else inflated or deflated.
pub fn for_get(
    stored: Vec<u8>,
    compressed: bool,
    level: i64,
    max: u64,
) -> Result<(bool, Vec<u8>), ImageError> {
    match (compressed, level > 0) {
        (true, true) | (false, false) => Ok((compressed, stored)),
        (true, false) => Ok((false, inflate(&stored, max)?)),
        (false, true) => Ok((true, deflate(&stored, u32::try_from(level).unwrap_or(9)))),
    }
}
