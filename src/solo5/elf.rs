//! Finding and decoding the Solo5 ELF notes.
//!
//! Like Solo5's tenders and `solo5-elftool` (`tenders/common/elf.c`,
//! `elf_load_note`), notes are found through the `PT_NOTE` program headers,
//! not through section names: program headers are what the tender that will
//! run the image reads. Every note of every `PT_NOTE` segment is walked, so
//! an image with the `OpenBSD` note (or any other) before the Solo5 ones in
//! one segment is read as well as real images, which have one note per
//! segment.
//!
//! Every offset and size from the file is bounds-checked with checked
//! arithmetic; nothing is allocated beyond what the manifest holds, which is
//! at most 64 entries of at most 67 bytes.

use std::fmt;

use super::{Abi, AbiTarget, Device, DeviceKind, ImageInfo, Manifest};

/// `\x7fELF`.
const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
/// Size of an `Elf64_Ehdr`.
const EHDR_SIZE: usize = 64;
/// Size of an `Elf64_Phdr`.
pub(super) const PHDR_SIZE: usize = 56;
/// Size of an `Elf64_Nhdr` (namesz, descsz, type).
const NHDR_SIZE: usize = 12;
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const EV_CURRENT: u8 = 1;
pub(super) const ET_EXEC: u16 = 2;
pub(super) const PT_LOAD: u32 = 1;
pub(super) const PT_NOTE: u32 = 4;

/// Owner name of Solo5 notes, with its terminator as stored.
pub(super) const SOLO5_OWNER: &[u8] = b"Solo5\0";
/// Note type of the ABI note, "ABI1".
pub(super) const NOTE_TYPE_ABI1: u32 = 0x3149_4241;
/// Note type of the manifest note, "MFT1".
pub(super) const NOTE_TYPE_MFT1: u32 = 0x3154_464d;
/// Descriptor size of the ABI note: target, version, two reserved words.
pub(super) const ABI1_DESC_SIZE: usize = 16;
/// `struct mft` is 8-byte aligned, the note header before it is 20 bytes,
/// so the descriptor starts with 4 bytes of padding.
pub(super) const MFT_NOTE_PAD: usize = 4;
/// `struct mft` before its entries: version and entry count.
pub(super) const MFT_HEADER_SIZE: usize = 8;
/// `sizeof(struct mft_entry)` on 64-bit targets.
pub(super) const MFT_ENTRY_SIZE: usize = 104;
/// `MFT_NAME_SIZE`: the name field, terminator included.
pub(super) const MFT_NAME_SIZE: usize = 68;
/// `MFT_VERSION`.
pub(super) const MFT_VERSION: u32 = 1;
/// `MFT_MAX_ENTRIES`, the reserved entry included.
pub(super) const MFT_MAX_ENTRIES: u32 = 64;
/// `MFT_RESERVED_FIRST`, the type of the hidden entry 0.
pub(super) const MFT_RESERVED_FIRST: u32 = 1 << 30;
/// `MFT_DEV_BLOCK_BASIC`.
pub(super) const MFT_DEV_BLOCK_BASIC: u32 = 1;
/// `MFT_DEV_NET_BASIC`.
pub(super) const MFT_DEV_NET_BASIC: u32 = 2;

/// Offsets inside a manifest entry (`struct mft_entry`).
const ENTRY_TYPE: usize = 68;
const ENTRY_U: std::ops::Range<usize> = 72..88;
const ENTRY_B: std::ops::Range<usize> = 88..96;
const ENTRY_ATTACHED: usize = 96;

/// Which Solo5 note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteKind {
    /// The ABI note (type "ABI1").
    Abi,
    /// The manifest note (type "MFT1").
    Manifest,
}

impl fmt::Display for NoteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NoteKind::Abi => "Solo5 ABI note (owner \"Solo5\", type \"ABI1\")",
            NoteKind::Manifest => "Solo5 manifest note (owner \"Solo5\", type \"MFT1\")",
        })
    }
}

/// Why an image is not a readable Solo5 ELF image.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ElfError {
    /// The image ends before the ELF header does.
    TooShort {
        /// Length of the image in bytes.
        len: usize,
    },
    /// The image does not start with the ELF magic.
    NotElf,
    /// The ELF class is not 64-bit.
    NotElf64 {
        /// `EI_CLASS` found (1 is 32-bit).
        class: u8,
    },
    /// The byte order is not little-endian.
    NotLittleEndian {
        /// `EI_DATA` found (2 is big-endian).
        data: u8,
    },
    /// An ELF header field has a value no Solo5 executable has.
    BadHeader {
        /// The field.
        field: &'static str,
        /// The value found.
        value: u64,
        /// What Solo5 images have.
        expected: &'static str,
    },
    /// The program header table lies (partly) past the end of the image.
    ProgramHeadersOutOfBounds {
        /// `e_phoff`.
        offset: u64,
        /// `e_phnum`.
        count: u16,
        /// Length of the image in bytes.
        len: usize,
    },
    /// A segment's file contents lie (partly) past the end of the image.
    SegmentOutOfBounds {
        /// Index of the program header.
        index: usize,
        /// `p_offset`.
        offset: u64,
        /// `p_filesz`.
        size: u64,
        /// Length of the image in bytes.
        len: usize,
    },
    /// A `PT_NOTE` segment is not a sequence of well-formed notes.
    BadNote {
        /// Index of the program header.
        index: usize,
        /// Offset of the offending note inside the segment.
        at: usize,
        /// What is wrong.
        problem: &'static str,
    },
    /// No Solo5 note of this kind in any `PT_NOTE` segment.
    MissingNote {
        /// The note looked for.
        note: NoteKind,
    },
    /// The ABI note's descriptor is not 16 bytes.
    BadAbiSize {
        /// Descriptor size found.
        size: usize,
    },
    /// The ABI note's reserved words are not zero.
    AbiReservedNotZero {
        /// The two reserved words.
        reserved: [u32; 2],
    },
    /// The ABI note names a target Solo5 does not define.
    UnknownTarget {
        /// The target code found.
        code: u32,
    },
    /// The manifest note's descriptor is malformed.
    BadManifest(ManifestProblem),
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfError::TooShort { len } => write!(
                f,
                "not a Solo5 image: {len} bytes is shorter than the {EHDR_SIZE}-byte ELF header"
            ),
            ElfError::NotElf => f.write_str("not a Solo5 image: not an ELF file (bad magic)"),
            ElfError::NotElf64 { class } => {
                write!(
                    f,
                    "not a Solo5 image: ELF class {class}, only 64-bit (2) is supported"
                )
            }
            ElfError::NotLittleEndian { data } => write!(
                f,
                "not a Solo5 image: ELF data encoding {data}, only little-endian (1) is supported"
            ),
            ElfError::BadHeader {
                field,
                value,
                expected,
            } => write!(
                f,
                "not a Solo5 image: ELF header field {field} is {value}, expected {expected}"
            ),
            ElfError::ProgramHeadersOutOfBounds { offset, count, len } => write!(
                f,
                "truncated ELF image: {count} program headers at offset {offset} extend past \
                 the end of the {len}-byte image"
            ),
            ElfError::SegmentOutOfBounds {
                index,
                offset,
                size,
                len,
            } => write!(
                f,
                "truncated ELF image: segment {index} ({size} bytes at offset {offset}) extends \
                 past the end of the {len}-byte image"
            ),
            ElfError::BadNote { index, at, problem } => {
                write!(
                    f,
                    "malformed note at offset {at} of PT_NOTE segment {index}: {problem}"
                )
            }
            ElfError::MissingNote { note } => {
                write!(f, "not a Solo5 image: no {note} in any PT_NOTE segment")
            }
            ElfError::BadAbiSize { size } => write!(
                f,
                "malformed Solo5 ABI note: descriptor is {size} bytes, expected {ABI1_DESC_SIZE}"
            ),
            ElfError::AbiReservedNotZero { reserved } => write!(
                f,
                "malformed Solo5 ABI note: reserved words are {:#x} and {:#x}, expected zero",
                reserved[0], reserved[1]
            ),
            ElfError::UnknownTarget { code } => write!(
                f,
                "malformed Solo5 ABI note: unknown target {code} (known: 1 hvt, 2 spt, 3 virtio, \
                 4 muen, 5 genode, 6 xen)"
            ),
            ElfError::BadManifest(problem) => write!(f, "malformed Solo5 manifest note: {problem}"),
        }
    }
}

impl std::error::Error for ElfError {}

/// What is wrong with a manifest note's descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ManifestProblem {
    /// Smaller than padding, header and the reserved entry.
    TooSmall {
        /// Descriptor size found.
        size: usize,
    },
    /// A manifest version other than 1.
    UnsupportedVersion {
        /// Version found.
        version: u32,
    },
    /// An entry count of zero (entry 0 is mandatory).
    NoEntries,
    /// More than 64 entries.
    TooManyEntries {
        /// Entry count found.
        count: u32,
    },
    /// The descriptor size does not match the entry count.
    SizeMismatch {
        /// Entry count found.
        count: u32,
        /// Descriptor size found.
        size: usize,
        /// Descriptor size the count implies.
        expected: usize,
    },
    /// Entry 0 is not the reserved entry with an empty name.
    FirstNotReserved {
        /// Type of entry 0.
        kind: u32,
    },
    /// A reserved entry after entry 0.
    ReservedNotFirst {
        /// Index of the entry.
        index: usize,
    },
    /// An entry's name field has no terminator in its last byte.
    UnterminatedName {
        /// Index of the entry.
        index: usize,
    },
    /// An entry's name is not UTF-8.
    NameNotUtf8 {
        /// Index of the entry.
        index: usize,
    },
    /// An entry's private fields (properties, backing, attached) are not
    /// zero, as they must be in an image.
    PrivateNotZero {
        /// Index of the entry.
        index: usize,
    },
    /// An entry type Solo5 does not define.
    UnknownType {
        /// Index of the entry.
        index: usize,
        /// Type found.
        kind: u32,
    },
}

impl fmt::Display for ManifestProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestProblem::TooSmall { size } => write!(
                f,
                "descriptor is {size} bytes, smaller than the {} bytes of one entry",
                MFT_NOTE_PAD + MFT_HEADER_SIZE + MFT_ENTRY_SIZE
            ),
            ManifestProblem::UnsupportedVersion { version } => {
                write!(f, "version {version}, expected {MFT_VERSION}")
            }
            ManifestProblem::NoEntries => f.write_str("zero entries"),
            ManifestProblem::TooManyEntries { count } => {
                write!(f, "{count} entries, at most {MFT_MAX_ENTRIES} allowed")
            }
            ManifestProblem::SizeMismatch {
                count,
                size,
                expected,
            } => write!(
                f,
                "descriptor is {size} bytes, but {count} entries need {expected} bytes"
            ),
            ManifestProblem::FirstNotReserved { kind } => write!(
                f,
                "entry 0 has type {kind:#x}, expected the reserved type {MFT_RESERVED_FIRST:#x} \
                 with an empty name"
            ),
            ManifestProblem::ReservedNotFirst { index } => {
                write!(
                    f,
                    "entry {index} has the reserved type, allowed only for entry 0"
                )
            }
            ManifestProblem::UnterminatedName { index } => write!(
                f,
                "name of entry {index} is not NUL-terminated within {MFT_NAME_SIZE} bytes"
            ),
            ManifestProblem::NameNotUtf8 { index } => {
                write!(f, "name of entry {index} is not UTF-8")
            }
            ManifestProblem::PrivateNotZero { index } => {
                write!(f, "entry {index} has non-zero private fields")
            }
            ManifestProblem::UnknownType { index, kind } => write!(
                f,
                "entry {index} has unknown type {kind:#x} (known: 1 BLOCK_BASIC, 2 NET_BASIC)"
            ),
        }
    }
}

/// Reads both Solo5 notes of an image.
pub fn read_image_info(image: &[u8]) -> Result<ImageInfo, ElfError> {
    Ok(ImageInfo {
        abi: read_abi(image)?,
        manifest: read_manifest(image)?,
    })
}

/// Reads the Solo5 ABI note of an image (§10.2 step 3). Every target Solo5
/// defines is returned; [`AbiTarget::tender_name`] refuses the ones
/// albatross cannot run.
pub fn read_abi(image: &[u8]) -> Result<Abi, ElfError> {
    let desc = find_solo5_note(image, NoteKind::Abi)?;
    if desc.len() != ABI1_DESC_SIZE {
        return Err(ElfError::BadAbiSize { size: desc.len() });
    }
    let word = |at| u32_le(desc, at).ok_or(ElfError::BadAbiSize { size: desc.len() });
    let (code, version) = (word(0)?, word(4)?);
    let reserved = [word(8)?, word(12)?];
    if reserved != [0, 0] {
        return Err(ElfError::AbiReservedNotZero { reserved });
    }
    let target = AbiTarget::from_code(code).ok_or(ElfError::UnknownTarget { code })?;
    Ok(Abi { target, version })
}

/// Reads the Solo5 manifest note of an image (§10.2 step 5).
pub fn read_manifest(image: &[u8]) -> Result<Manifest, ElfError> {
    let desc = find_solo5_note(image, NoteKind::Manifest)?;
    parse_manifest(desc).map_err(ElfError::BadManifest)
}

/// Checks the header as Solo5's `ehdr_is_valid` does (plus the zero
/// identification padding upstream's OCaml reader insists on) and returns
/// the program headers.
pub(super) fn program_headers(image: &[u8]) -> Result<Vec<ProgramHeader>, ElfError> {
    let len = image.len();
    if !image.starts_with(ELF_MAGIC) {
        return Err(if ELF_MAGIC.starts_with(image) {
            ElfError::TooShort { len }
        } else {
            ElfError::NotElf
        });
    }
    // Class and byte order first, so a short 32-bit ELF says what it is.
    let class = *image.get(4).ok_or(ElfError::TooShort { len })?;
    if class != ELFCLASS64 {
        return Err(ElfError::NotElf64 { class });
    }
    let data = *image.get(5).ok_or(ElfError::TooShort { len })?;
    if data != ELFDATA2LSB {
        return Err(ElfError::NotLittleEndian { data });
    }
    let header: [u8; EHDR_SIZE] = read(image, 0).ok_or(ElfError::TooShort { len })?;
    let h = &header[..];
    let bad = |field, value: u64, expected| ElfError::BadHeader {
        field,
        value,
        expected,
    };
    // Reads from the 64-byte array at fixed offsets below 64 cannot fail.
    let short = || ElfError::TooShort { len };
    if header[6] != EV_CURRENT {
        return Err(bad("EI_VERSION", header[6].into(), "1"));
    }
    if let Some(&pad) = header[9..16].iter().find(|&&b| b != 0) {
        return Err(bad("EI_PAD", pad.into(), "0"));
    }
    let e_type = u16_le(h, 0x10).ok_or_else(short)?;
    if e_type != ET_EXEC {
        return Err(bad("e_type", e_type.into(), "2 (ET_EXEC)"));
    }
    let e_version = u32_le(h, 0x14).ok_or_else(short)?;
    if e_version != u32::from(EV_CURRENT) {
        return Err(bad("e_version", e_version.into(), "1"));
    }
    let e_phoff = u64_le(h, 0x20).ok_or_else(short)?;
    let e_ehsize = u16_le(h, 0x34).ok_or_else(short)?;
    if usize::from(e_ehsize) != EHDR_SIZE {
        return Err(bad("e_ehsize", e_ehsize.into(), "64"));
    }
    let e_phentsize = u16_le(h, 0x36).ok_or_else(short)?;
    if usize::from(e_phentsize) != PHDR_SIZE {
        return Err(bad("e_phentsize", e_phentsize.into(), "56"));
    }
    let e_phnum = u16_le(h, 0x38).ok_or_else(short)?;
    if e_phnum == 0 {
        return Err(bad("e_phnum", 0, "at least 1"));
    }
    let out_of_bounds = || ElfError::ProgramHeadersOutOfBounds {
        offset: e_phoff,
        count: e_phnum,
        len,
    };
    // At most 65535 * 56 bytes, so the product cannot overflow.
    let table_size = usize::from(e_phnum) * PHDR_SIZE;
    let table = slice(image, e_phoff, table_size as u64).ok_or_else(out_of_bounds)?;
    table
        .chunks_exact(PHDR_SIZE)
        .enumerate()
        .map(|(index, entry)| ProgramHeader::parse(index, entry).ok_or_else(out_of_bounds))
        .collect()
}

/// The fields of an `Elf64_Phdr` this module uses.
#[derive(Debug, Clone, Copy)]
pub(super) struct ProgramHeader {
    /// Position in the program header table.
    pub(super) index: usize,
    /// `p_type`.
    pub(super) kind: u32,
    /// `p_offset`.
    pub(super) offset: u64,
    /// `p_filesz`.
    pub(super) size: u64,
    /// `p_align`.
    pub(super) align: u64,
}

impl ProgramHeader {
    fn parse(index: usize, entry: &[u8]) -> Option<ProgramHeader> {
        Some(ProgramHeader {
            index,
            kind: u32_le(entry, 0)?,
            offset: u64_le(entry, 8)?,
            size: u64_le(entry, 32)?,
            align: u64_le(entry, 48)?,
        })
    }

    /// The segment's bytes in the file.
    pub(super) fn contents<'a>(&self, image: &'a [u8]) -> Result<&'a [u8], ElfError> {
        slice(image, self.offset, self.size).ok_or(ElfError::SegmentOutOfBounds {
            index: self.index,
            offset: self.offset,
            size: self.size,
            len: image.len(),
        })
    }
}

/// The descriptor of the first Solo5 note of this kind, in program header
/// order. Like the tender, an earlier malformed `PT_NOTE` is an error.
fn find_solo5_note(image: &[u8], note: NoteKind) -> Result<&[u8], ElfError> {
    let wanted = match note {
        NoteKind::Abi => NOTE_TYPE_ABI1,
        NoteKind::Manifest => NOTE_TYPE_MFT1,
    };
    for ph in program_headers(image)?
        .iter()
        .filter(|ph| ph.kind == PT_NOTE)
    {
        let segment = ph.contents(image)?;
        // Solo5 marks its notes 4-aligned; honour 8 where a segment asks.
        let align = if ph.align == 8 { 8 } else { 4 };
        let mut at = 0;
        while at < segment.len() {
            let bad = |problem| ElfError::BadNote {
                index: ph.index,
                at,
                problem,
            };
            let header: [u8; NHDR_SIZE] =
                read(segment, at).ok_or_else(|| bad("the 12-byte note header is cut off"))?;
            let [n0, n1, n2, n3, d0, d1, d2, d3, t0, t1, t2, t3] = header;
            let name_size = usize_from(u32::from_le_bytes([n0, n1, n2, n3]));
            let desc_size = usize_from(u32::from_le_bytes([d0, d1, d2, d3]));
            let kind = u32::from_le_bytes([t0, t1, t2, t3]);
            let name_start = at + NHDR_SIZE;
            let name = name_start
                .checked_add(name_size)
                .and_then(|end| segment.get(name_start..end))
                .ok_or_else(|| bad("the owner name runs past the end of the segment"))?;
            // Sizes saturate: a range starting past the end is refused below.
            let desc_start = align_up(name_start + name.len(), align).unwrap_or(usize::MAX);
            let desc_end = desc_start.saturating_add(desc_size);
            let desc = segment
                .get(desc_start..desc_end)
                .ok_or_else(|| bad("the descriptor runs past the end of the segment"))?;
            if name == SOLO5_OWNER && kind == wanted {
                return Ok(desc);
            }
            // The last note's trailing padding may be absent.
            at = align_up(desc_end, align).unwrap_or(usize::MAX);
        }
    }
    Err(ElfError::MissingNote { note })
}

fn parse_manifest(desc: &[u8]) -> Result<Manifest, ManifestProblem> {
    let size = desc.len();
    if size < MFT_NOTE_PAD + MFT_HEADER_SIZE + MFT_ENTRY_SIZE {
        return Err(ManifestProblem::TooSmall { size });
    }
    let too_small = ManifestProblem::TooSmall { size };
    let version = u32_le(desc, MFT_NOTE_PAD).ok_or(too_small.clone())?;
    if version != MFT_VERSION {
        return Err(ManifestProblem::UnsupportedVersion { version });
    }
    let count = u32_le(desc, MFT_NOTE_PAD + 4).ok_or(too_small)?;
    if count == 0 {
        return Err(ManifestProblem::NoEntries);
    }
    if count > MFT_MAX_ENTRIES {
        return Err(ManifestProblem::TooManyEntries { count });
    }
    // count <= 64, so this cannot overflow.
    let expected = MFT_NOTE_PAD + MFT_HEADER_SIZE + usize_from(count) * MFT_ENTRY_SIZE;
    if size != expected {
        return Err(ManifestProblem::SizeMismatch {
            count,
            size,
            expected,
        });
    }
    let entries = &desc[MFT_NOTE_PAD + MFT_HEADER_SIZE..];
    let mut devices = Vec::new();
    for index in 0..usize_from(count) {
        let entry = read(entries, index * MFT_ENTRY_SIZE).ok_or(ManifestProblem::SizeMismatch {
            count,
            size,
            expected,
        })?;
        if let Some(device) = parse_entry(index, &entry)? {
            devices.push(device);
        }
    }
    Ok(Manifest { version, devices })
}

/// One `struct mft_entry`; `None` for the reserved entry 0. The offsets are
/// constants inside the fixed-size record.
fn parse_entry(
    index: usize,
    entry: &[u8; MFT_ENTRY_SIZE],
) -> Result<Option<Device>, ManifestProblem> {
    let name_field = &entry[..MFT_NAME_SIZE];
    // Solo5's mft_validate insists on the last byte; the name ends at the first NUL.
    if entry[MFT_NAME_SIZE - 1] != 0 {
        return Err(ManifestProblem::UnterminatedName { index });
    }
    let name_len = name_field
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(MFT_NAME_SIZE);
    let private = entry[ENTRY_U]
        .iter()
        .chain(&entry[ENTRY_B])
        .chain([&entry[ENTRY_ATTACHED]]);
    if private.copied().any(|b| b != 0) {
        return Err(ManifestProblem::PrivateNotZero { index });
    }
    let kind = u32::from_le_bytes([
        entry[ENTRY_TYPE],
        entry[ENTRY_TYPE + 1],
        entry[ENTRY_TYPE + 2],
        entry[ENTRY_TYPE + 3],
    ]);
    let kind = match (index, kind) {
        (0, MFT_RESERVED_FIRST) if name_field.iter().all(|&b| b == 0) => return Ok(None),
        (0, kind) => return Err(ManifestProblem::FirstNotReserved { kind }),
        (_, MFT_RESERVED_FIRST) => return Err(ManifestProblem::ReservedNotFirst { index }),
        (_, MFT_DEV_BLOCK_BASIC) => DeviceKind::BlockBasic,
        (_, MFT_DEV_NET_BASIC) => DeviceKind::NetBasic,
        (_, kind) => return Err(ManifestProblem::UnknownType { index, kind }),
    };
    let name = std::str::from_utf8(&name_field[..name_len])
        .map_err(|_| ManifestProblem::NameNotUtf8 { index })?;
    Ok(Some(Device {
        name: name.to_string(),
        kind,
    }))
}

/// `len` bytes at `offset`, if the image holds them.
fn slice(bytes: &[u8], offset: u64, len: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    bytes.get(start..end)
}

fn read<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at.checked_add(N)?)?.try_into().ok()
}

fn u16_le(bytes: &[u8], at: usize) -> Option<u16> {
    read(bytes, at).map(u16::from_le_bytes)
}

fn u32_le(bytes: &[u8], at: usize) -> Option<u32> {
    read(bytes, at).map(u32::from_le_bytes)
}

fn u64_le(bytes: &[u8], at: usize) -> Option<u64> {
    read(bytes, at).map(u64::from_le_bytes)
}

/// A `u32` from the file as a size; saturates where `usize` is narrower,
/// which the bounds checks then refuse.
fn usize_from(value: u32) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

fn align_up(value: usize, align: usize) -> Option<usize> {
    Some(value.checked_add(align - 1)? & !(align - 1))
}

#[cfg(test)]
mod tests {
    use super::super::testimage::{
        abi_note, build_elf, build_test_image, manifest_note, openbsd_note, test_image_payload,
        RawNote,
    };
    use super::*;
    use proptest::prelude::*;

    const BLOCK: DeviceKind = DeviceKind::BlockBasic;
    const NET: DeviceKind = DeviceKind::NetBasic;

    /// Offset of program header `i` in a built image.
    fn phdr_at(i: usize) -> usize {
        EHDR_SIZE + i * PHDR_SIZE
    }

    /// One `PT_NOTE` segment per note, in the given order.
    fn image_with(notes: Vec<RawNote>) -> Vec<u8> {
        let segments: Vec<Vec<RawNote>> = notes.into_iter().map(|n| vec![n]).collect();
        build_elf(&segments, b"payload")
    }

    /// A valid image whose manifest descriptor `edit` has changed.
    fn with_manifest(entries: &[(&str, u32)], edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut manifest = manifest_note(entries);
        edit(&mut manifest.desc);
        image_with(vec![openbsd_note(), abi_note(1, 2), manifest])
    }

    fn manifest_error(entries: &[(&str, u32)], edit: impl FnOnce(&mut Vec<u8>)) -> ManifestProblem {
        match read_manifest(&with_manifest(entries, edit)) {
            Err(ElfError::BadManifest(problem)) => problem,
            other => panic!("expected a manifest problem, got {other:?}"),
        }
    }

    /// Offset of entry `i` inside the manifest descriptor.
    fn entry_at(i: usize) -> usize {
        MFT_NOTE_PAD + MFT_HEADER_SIZE + i * MFT_ENTRY_SIZE
    }

    fn put_u32(bytes: &mut [u8], at: usize, value: u32) {
        bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
    }

    fn put_u64(bytes: &mut [u8], at: usize, value: u64) {
        bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
    }

    fn hello() -> Vec<u8> {
        build_test_image(
            AbiTarget::Hvt,
            2,
            &[("storage", BLOCK), ("service0", NET)],
            b"code",
        )
    }

    fn devices(list: &[(&str, DeviceKind)]) -> Vec<Device> {
        list.iter()
            .map(|(name, kind)| Device {
                name: name.to_string(),
                kind: *kind,
            })
            .collect()
    }

    #[test]
    fn round_trip_hvt_and_spt() {
        let many: Vec<String> = (0..63).map(|i| format!("storage{i}")).collect();
        let many: Vec<(&str, DeviceKind)> = many
            .iter()
            .enumerate()
            .map(|(i, name)| (name.as_str(), if i % 3 == 0 { NET } else { BLOCK }))
            .collect();
        let lists: [&[(&str, DeviceKind)]; 4] = [
            &[],
            &[("service0", NET)],
            &[("storage", BLOCK), ("service0", NET)],
            &many,
        ];
        for target in [AbiTarget::Hvt, AbiTarget::Spt] {
            for list in lists {
                let image = build_test_image(target, 2, list, b"the payload");
                let info = read_image_info(&image).unwrap();
                assert_eq!(info.abi, Abi { target, version: 2 });
                assert_eq!(
                    info.manifest,
                    Manifest {
                        version: 1,
                        devices: devices(list)
                    }
                );
                assert_eq!(test_image_payload(&image).unwrap(), b"the payload");
            }
        }
    }

    #[test]
    fn round_trip_details() {
        let long = "x".repeat(67);
        let image = build_test_image(AbiTarget::Spt, 7, &[(&long, BLOCK)], b"");
        let info = read_image_info(&image).unwrap();
        assert_eq!(info.abi.version, 7);
        assert_eq!(info.manifest.devices, devices(&[(&long, BLOCK)]));
        assert_eq!(test_image_payload(&image).unwrap(), b"");
        // Every target Solo5 defines is read; only the tender refuses some.
        let image = build_test_image(AbiTarget::Xen, 1, &[], b"");
        assert_eq!(
            read_abi(&image).unwrap(),
            Abi {
                target: AbiTarget::Xen,
                version: 1
            }
        );
    }

    #[test]
    fn openbsd_note_first_in_one_segment() {
        let notes = vec![
            openbsd_note(),
            abi_note(2, 2),
            manifest_note(&[("service0", MFT_DEV_NET_BASIC)]),
        ];
        let image = build_elf(&[notes], b"");
        let info = read_image_info(&image).unwrap();
        assert_eq!(
            info.abi,
            Abi {
                target: AbiTarget::Spt,
                version: 2
            }
        );
        assert_eq!(info.manifest.devices, devices(&[("service0", NET)]));
    }

    #[test]
    fn other_owners_are_skipped_and_the_first_solo5_note_wins() {
        let impostor = RawNote {
            section: ".note.gnu",
            owner: b"GNU\0",
            kind: NOTE_TYPE_ABI1,
            desc: vec![0xff; 3],
        };
        let image = image_with(vec![
            impostor,
            abi_note(1, 2),
            abi_note(2, 9),
            manifest_note(&[]),
        ]);
        assert_eq!(
            read_abi(&image).unwrap(),
            Abi {
                target: AbiTarget::Hvt,
                version: 2
            }
        );
    }

    #[test]
    fn not_elf() {
        assert_eq!(read_image_info(b""), Err(ElfError::TooShort { len: 0 }));
        assert_eq!(
            read_image_info(b"\x7fEL"),
            Err(ElfError::TooShort { len: 3 })
        );
        assert_eq!(
            read_image_info(b"#!/bin/sh\necho hi\n"),
            Err(ElfError::NotElf)
        );
        assert_eq!(read_image_info(&[0; 4096]), Err(ElfError::NotElf));
    }

    #[test]
    fn not_64_bit_little_endian() {
        let mut image = hello();
        image[4] = 1;
        assert_eq!(
            read_image_info(&image),
            Err(ElfError::NotElf64 { class: 1 })
        );
        assert_eq!(
            read_image_info(&image[..5]),
            Err(ElfError::NotElf64 { class: 1 })
        );
        let mut image = hello();
        image[5] = 2;
        assert_eq!(
            read_image_info(&image),
            Err(ElfError::NotLittleEndian { data: 2 })
        );
    }

    #[test]
    fn truncated_header() {
        let image = hello();
        assert_eq!(
            read_image_info(&image[..40]),
            Err(ElfError::TooShort { len: 40 })
        );
        assert_eq!(
            read_image_info(&image[..63]),
            Err(ElfError::TooShort { len: 63 })
        );
        let len = phdr_at(2);
        assert_eq!(
            read_image_info(&image[..len]),
            Err(ElfError::ProgramHeadersOutOfBounds {
                offset: 64,
                count: 4,
                len
            })
        );
    }

    #[test]
    fn bad_header_fields() {
        let cases: [(usize, &[u8], &str); 6] = [
            (6, &[2], "EI_VERSION"),
            (12, &[1], "EI_PAD"),
            (0x10, &[3, 0], "e_type"),
            (0x14, &[0], "e_version"),
            (0x36, &[32, 0], "e_phentsize"),
            (0x38, &[0, 0], "e_phnum"),
        ];
        for (at, bytes, field) in cases {
            let mut image = hello();
            image[at..at + bytes.len()].copy_from_slice(bytes);
            match read_image_info(&image) {
                Err(ElfError::BadHeader { field: found, .. }) => assert_eq!(found, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn program_headers_past_the_end() {
        let len = hello().len();
        for (phoff, phnum) in [
            (u64::MAX, 4u16),
            (u64::MAX - 10, 4),
            (len as u64, 4),
            (64, 0xffff),
        ] {
            let mut image = hello();
            put_u64(&mut image, 0x20, phoff);
            image[0x38..0x3a].copy_from_slice(&phnum.to_le_bytes());
            assert_eq!(
                read_image_info(&image),
                Err(ElfError::ProgramHeadersOutOfBounds {
                    offset: phoff,
                    count: phnum,
                    len
                })
            );
        }
    }

    #[test]
    fn segments_past_the_end() {
        // Program header 1 is the first PT_NOTE (the OpenBSD note).
        for (offset, size) in [
            (u64::MAX, 24),
            (0x120, u64::MAX),
            (u64::MAX - 4, 8),
            (0x120, 1 << 20),
        ] {
            let mut image = hello();
            put_u64(&mut image, phdr_at(1) + 8, offset);
            put_u64(&mut image, phdr_at(1) + 32, size);
            assert_eq!(
                read_image_info(&image),
                Err(ElfError::SegmentOutOfBounds {
                    index: 1,
                    offset,
                    size,
                    len: image.len()
                })
            );
        }
    }

    #[test]
    fn malformed_notes() {
        let image = hello();
        let abi_phdr = phdr_at(2);
        let abi_at = usize::try_from(u64_le(&image, abi_phdr + 8).unwrap()).unwrap();
        let problem = |image: &[u8]| match read_abi(image) {
            Err(ElfError::BadNote {
                index: 2,
                at: 0,
                problem,
            }) => problem,
            other => panic!("expected a bad note, got {other:?}"),
        };
        // A PT_NOTE too small for a note header.
        let mut short = image.clone();
        put_u64(&mut short, abi_phdr + 32, 5);
        assert_eq!(problem(&short), "the 12-byte note header is cut off");
        for (field, value, expected) in [
            (
                0,
                u32::MAX,
                "the owner name runs past the end of the segment",
            ),
            (0, 40, "the owner name runs past the end of the segment"),
            (
                4,
                u32::MAX,
                "the descriptor runs past the end of the segment",
            ),
            (4, 17, "the descriptor runs past the end of the segment"),
        ] {
            let mut bad = image.clone();
            put_u32(&mut bad, abi_at + field, value);
            assert_eq!(problem(&bad), expected);
        }
    }

    #[test]
    fn missing_notes() {
        let no_abi = image_with(vec![openbsd_note(), manifest_note(&[])]);
        assert_eq!(
            read_abi(&no_abi),
            Err(ElfError::MissingNote {
                note: NoteKind::Abi
            })
        );
        assert_eq!(
            read_image_info(&no_abi),
            Err(ElfError::MissingNote {
                note: NoteKind::Abi
            })
        );
        assert!(read_manifest(&no_abi).is_ok());
        let no_manifest = image_with(vec![openbsd_note(), abi_note(1, 2)]);
        assert_eq!(
            read_image_info(&no_manifest),
            Err(ElfError::MissingNote {
                note: NoteKind::Manifest
            })
        );
        // The Solo5 "stub" target has an empty PT_NOTE: no notes at all.
        let stub = build_elf(&[vec![]], b"");
        assert_eq!(
            read_abi(&stub),
            Err(ElfError::MissingNote {
                note: NoteKind::Abi
            })
        );
        // A note with the right type but another owner does not count.
        let mut renamed = abi_note(1, 2);
        renamed.owner = b"Solo6\0";
        let image = image_with(vec![renamed, manifest_note(&[])]);
        assert_eq!(
            read_abi(&image),
            Err(ElfError::MissingNote {
                note: NoteKind::Abi
            })
        );
    }

    #[test]
    fn bad_abi_notes() {
        let abi = |code, edit: fn(&mut Vec<u8>)| {
            let mut note = abi_note(code, 2);
            edit(&mut note.desc);
            read_abi(&image_with(vec![note, manifest_note(&[])]))
        };
        assert_eq!(abi(7, |_| ()), Err(ElfError::UnknownTarget { code: 7 }));
        assert_eq!(abi(0, |_| ()), Err(ElfError::UnknownTarget { code: 0 }));
        assert_eq!(
            abi(1, |d| d.truncate(12)),
            Err(ElfError::BadAbiSize { size: 12 })
        );
        assert_eq!(
            abi(1, |d| d.push(0)),
            Err(ElfError::BadAbiSize { size: 17 })
        );
        assert_eq!(
            abi(1, |d| d[12] = 1),
            Err(ElfError::AbiReservedNotZero { reserved: [0, 1] })
        );
    }

    #[test]
    fn unsupported_target_is_refused_by_tender_name() {
        let image = build_test_image(AbiTarget::Virtio, 1, &[], b"");
        let abi = read_abi(&image).unwrap();
        assert_eq!(
            abi.target.tender_name().unwrap_err().to_string(),
            "unsupported solo5 target virtio"
        );
    }

    #[test]
    fn manifest_header_problems() {
        let two = [("a", MFT_DEV_BLOCK_BASIC), ("b", MFT_DEV_NET_BASIC)];
        let count_at = MFT_NOTE_PAD + 4;
        assert_eq!(
            manifest_error(&two, |d| put_u32(d, count_at, 5)),
            ManifestProblem::SizeMismatch {
                count: 5,
                size: 324,
                expected: 532
            }
        );
        assert_eq!(
            manifest_error(&two, |d| put_u32(d, count_at, 2)),
            ManifestProblem::SizeMismatch {
                count: 2,
                size: 324,
                expected: 220
            }
        );
        assert_eq!(
            manifest_error(&two, |d| put_u32(d, count_at, u32::MAX)),
            ManifestProblem::TooManyEntries { count: u32::MAX }
        );
        assert_eq!(
            manifest_error(&two, |d| put_u32(d, count_at, 0)),
            ManifestProblem::NoEntries
        );
        assert_eq!(
            manifest_error(&two, |d| put_u32(d, MFT_NOTE_PAD, 2)),
            ManifestProblem::UnsupportedVersion { version: 2 }
        );
        assert_eq!(
            manifest_error(&two, |d| d.truncate(8)),
            ManifestProblem::TooSmall { size: 8 }
        );
        let names: Vec<String> = (0..64).map(|i| format!("d{i}")).collect();
        let entries: Vec<(&str, u32)> = names
            .iter()
            .map(|n| (n.as_str(), MFT_DEV_BLOCK_BASIC))
            .collect();
        assert_eq!(
            manifest_error(&entries, |_| ()),
            ManifestProblem::TooManyEntries { count: 65 }
        );
    }

    #[test]
    fn manifest_entry_problems() {
        let one = [("storage", MFT_DEV_BLOCK_BASIC)];
        let type_at = |i| entry_at(i) + ENTRY_TYPE;
        assert_eq!(
            manifest_error(&one, |d| put_u32(d, type_at(0), MFT_DEV_BLOCK_BASIC)),
            ManifestProblem::FirstNotReserved { kind: 1 }
        );
        assert_eq!(
            manifest_error(&one, |d| d[entry_at(0)] = b'x'),
            ManifestProblem::FirstNotReserved {
                kind: MFT_RESERVED_FIRST
            }
        );
        assert_eq!(
            manifest_error(&one, |d| put_u32(d, type_at(1), MFT_RESERVED_FIRST)),
            ManifestProblem::ReservedNotFirst { index: 1 }
        );
        assert_eq!(
            manifest_error(&one, |d| put_u32(d, type_at(1), 3)),
            ManifestProblem::UnknownType { index: 1, kind: 3 }
        );
        assert_eq!(
            manifest_error(&one, |d| d[entry_at(1)..entry_at(1) + 68].fill(b'a')),
            ManifestProblem::UnterminatedName { index: 1 }
        );
        // A NUL after the name but not in the last byte: Solo5 refuses it.
        assert_eq!(
            manifest_error(&one, |d| d[entry_at(1) + 67] = b'a'),
            ManifestProblem::UnterminatedName { index: 1 }
        );
        // Garbage between the first NUL and the last byte is ignored, as in Solo5.
        let garbage = with_manifest(&one, |d| d[entry_at(1) + 66] = b'a');
        assert_eq!(
            read_manifest(&garbage).unwrap().devices,
            devices(&[("storage", BLOCK)])
        );
        assert_eq!(
            manifest_error(&one, |d| d[entry_at(1)] = 0xff),
            ManifestProblem::NameNotUtf8 { index: 1 }
        );
        for offset in [72, 87, 88, 95, 96] {
            assert_eq!(
                manifest_error(&one, |d| d[entry_at(1) + offset] = 1),
                ManifestProblem::PrivateNotZero { index: 1 },
                "private byte {offset}"
            );
        }
        // Structure padding after `attached` is not checked, as in Solo5.
        assert!(read_manifest(&with_manifest(&one, |d| d[entry_at(1) + 97] = 1)).is_ok());
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            ElfError::NotElf64 { class: 1 }.to_string(),
            "not a Solo5 image: ELF class 1, only 64-bit (2) is supported"
        );
        assert_eq!(
            ElfError::MissingNote {
                note: NoteKind::Abi
            }
            .to_string(),
            "not a Solo5 image: no Solo5 ABI note (owner \"Solo5\", type \"ABI1\") in any \
             PT_NOTE segment"
        );
        assert_eq!(
            ElfError::SegmentOutOfBounds {
                index: 3,
                offset: 100,
                size: 8,
                len: 90
            }
            .to_string(),
            "truncated ELF image: segment 3 (8 bytes at offset 100) extends past the end of \
             the 90-byte image"
        );
        assert_eq!(
            ElfError::BadManifest(ManifestProblem::SizeMismatch {
                count: 5,
                size: 324,
                expected: 532
            })
            .to_string(),
            "malformed Solo5 manifest note: descriptor is 324 bytes, but 5 entries need 532 bytes"
        );
    }

    #[test]
    fn every_truncation_fails_cleanly_until_the_notes_are_complete() {
        let image = hello();
        let expected = read_image_info(&image).unwrap();
        // The manifest is the last note; section headers are not read.
        let notes_end = usize::try_from(
            u64_le(&image, phdr_at(3) + 8).unwrap() + u64_le(&image, phdr_at(3) + 32).unwrap(),
        )
        .unwrap();
        for len in 0..=image.len() {
            let result = read_image_info(&image[..len]);
            if len < notes_end {
                assert!(result.is_err(), "truncated to {len}");
            } else {
                assert_eq!(result.as_ref(), Ok(&expected), "truncated to {len}");
            }
            let _ = test_image_payload(&image[..len]);
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = read_image_info(&bytes);
            let _ = test_image_payload(&bytes);
        }

        #[test]
        fn corrupted_images_never_panic(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16)
        ) {
            let mut image = hello();
            for (at, byte) in edits {
                let at = at.index(image.len());
                image[at] = byte;
            }
            let _ = read_image_info(&image);
            let _ = test_image_payload(&image);
        }

        #[test]
        fn any_valid_manifest_round_trips(
            hvt in any::<bool>(),
            version in any::<u32>(),
            list in proptest::collection::vec(("[A-Za-z0-9]{1,67}", any::<bool>()), 0..=63),
        ) {
            let target = if hvt { AbiTarget::Hvt } else { AbiTarget::Spt };
            let list: Vec<(&str, DeviceKind)> = list
                .iter()
                .map(|(name, block)| (name.as_str(), if *block { BLOCK } else { NET }))
                .collect();
            let info = read_image_info(&build_test_image(target, version, &list, b"")).unwrap();
            prop_assert_eq!(info.abi, Abi { target, version });
            prop_assert_eq!(info.manifest.devices, devices(&list));
        }
    }
}
