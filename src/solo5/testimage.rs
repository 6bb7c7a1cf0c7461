//! Minimal Solo5 ELF images, for tests and the test tender.
//!
//! The images look like what the Solo5 toolchain links, minus the code: an
//! x86-64 `ET_EXEC` with one `PT_LOAD` segment (the payload, section
//! `.text`) and one `PT_NOTE` segment per note, in the order real images
//! have them: the `OpenBSD` ident note (section `.note.solo5.not-openbsd`),
//! the ABI note (`.note.solo5.abi`) and the manifest (`.note.solo5.manifest`).
//! Section headers name every note, so `readelf` and upstream's
//! section-based reader accept the images too. The payload is opaque: the
//! test tender decides what it means and finds it with [`test_image_payload`].

use super::elf::{
    program_headers, ElfError, ABI1_DESC_SIZE, ET_EXEC, MFT_DEV_BLOCK_BASIC, MFT_DEV_NET_BASIC,
    MFT_ENTRY_SIZE, MFT_HEADER_SIZE, MFT_NAME_SIZE, MFT_NOTE_PAD, MFT_RESERVED_FIRST, MFT_VERSION,
    NOTE_TYPE_ABI1, NOTE_TYPE_MFT1, PHDR_SIZE, PT_LOAD, PT_NOTE, SOLO5_OWNER,
};
use super::{AbiTarget, DeviceKind};

/// Where the image is linked, as Solo5 images are (`0x100000`).
const BASE_ADDRESS: u64 = 0x10_0000;
const EHDR_SIZE: usize = 64;
const SHDR_SIZE: usize = 64;
const EM_X86_64: u16 = 62;
const SHT_PROGBITS: u32 = 1;
const SHT_STRTAB: u32 = 3;
const SHT_NOTE: u32 = 7;
const SHF_ALLOC: u64 = 2;
const SHF_EXECINSTR: u64 = 4;
const PF_X: u32 = 1;
const PF_R: u32 = 4;
/// `NT_OPENBSD_IDENT`.
const NT_OPENBSD_IDENT: u32 = 1;

/// Builds a minimal valid Solo5 image for tests and the test tender: the
/// ABI note for `target` and `abi_version`, a manifest declaring `devices`
/// in order, and `payload` as the contents of the only loadable segment.
///
/// # Panics
///
/// If a device name is longer than 67 bytes or contains a NUL byte: the
/// manifest cannot hold it.
pub fn build_test_image(
    target: AbiTarget,
    abi_version: u32,
    devices: &[(&str, DeviceKind)],
    payload: &[u8],
) -> Vec<u8> {
    let entries: Vec<(&str, u32)> = devices
        .iter()
        .map(|&(name, kind)| {
            let code = match kind {
                DeviceKind::BlockBasic => MFT_DEV_BLOCK_BASIC,
                DeviceKind::NetBasic => MFT_DEV_NET_BASIC,
            };
            (name, code)
        })
        .collect();
    build_elf(
        &[
            vec![openbsd_note()],
            vec![abi_note(target.code(), abi_version)],
            vec![manifest_note(&entries)],
        ],
        payload,
    )
}

/// The payload of an image made by [`build_test_image`]: the contents of
/// its first `PT_LOAD` segment.
pub fn test_image_payload(image: &[u8]) -> Result<&[u8], ElfError> {
    match program_headers(image)?.iter().find(|ph| ph.kind == PT_LOAD) {
        Some(ph) => ph.contents(image),
        None => Ok(&[]),
    }
}

/// One ELF note and the section that holds it.
pub(super) struct RawNote {
    pub(super) section: &'static str,
    pub(super) owner: &'static [u8],
    pub(super) kind: u32,
    pub(super) desc: Vec<u8>,
}

/// The ident note every Solo5 image carries so OpenBSD refuses to run it.
pub(super) fn openbsd_note() -> RawNote {
    RawNote {
        section: ".note.solo5.not-openbsd",
        owner: b"OpenBSD\0",
        kind: NT_OPENBSD_IDENT,
        desc: vec![0; 4],
    }
}

/// The ABI note with a raw target code (tests use unknown ones).
pub(super) fn abi_note(target_code: u32, version: u32) -> RawNote {
    let mut desc = Vec::with_capacity(ABI1_DESC_SIZE);
    desc.extend_from_slice(&target_code.to_le_bytes());
    desc.extend_from_slice(&version.to_le_bytes());
    desc.resize(ABI1_DESC_SIZE, 0);
    RawNote {
        section: ".note.solo5.abi",
        owner: SOLO5_OWNER,
        kind: NOTE_TYPE_ABI1,
        desc,
    }
}

/// The manifest note: the reserved entry 0, then `entries` (name, raw type).
pub(super) fn manifest_note(entries: &[(&str, u32)]) -> RawNote {
    let count = entries.len() + 1;
    let mut desc = vec![0; MFT_NOTE_PAD];
    desc.extend_from_slice(&MFT_VERSION.to_le_bytes());
    desc.extend_from_slice(&u32::try_from(count).unwrap_or(u32::MAX).to_le_bytes());
    let reserved = ("", MFT_RESERVED_FIRST);
    for (name, kind) in std::iter::once(&reserved).chain(entries) {
        assert!(
            name.len() < MFT_NAME_SIZE && !name.contains('\0'),
            "manifest device name {name:?} does not fit the 68-byte field"
        );
        let start = desc.len();
        desc.extend_from_slice(name.as_bytes());
        desc.resize(start + MFT_NAME_SIZE, 0);
        desc.extend_from_slice(&kind.to_le_bytes());
        desc.resize(start + MFT_ENTRY_SIZE, 0);
    }
    debug_assert_eq!(
        desc.len(),
        MFT_NOTE_PAD + MFT_HEADER_SIZE + count * MFT_ENTRY_SIZE
    );
    RawNote {
        section: ".note.solo5.manifest",
        owner: SOLO5_OWNER,
        kind: NOTE_TYPE_MFT1,
        desc,
    }
}

/// Lays out an image: ELF header, program headers (`PT_LOAD`, then one
/// `PT_NOTE` per element of `segments`), the notes, the payload, the
/// section name table and the section headers (one per note).
pub(super) fn build_elf(segments: &[Vec<RawNote>], payload: &[u8]) -> Vec<u8> {
    let phnum = 1 + segments.len();
    let mut out = vec![0; EHDR_SIZE + phnum * PHDR_SIZE];
    let mut names = vec![0u8];
    let mut sections = Vec::new();
    let mut phdrs = Vec::new();

    for segment in segments {
        pad_to(&mut out, 8);
        let segment_start = out.len();
        for note in segment {
            let start = out.len();
            push_u32(&mut out, len_u32(note.owner.len()));
            push_u32(&mut out, len_u32(note.desc.len()));
            push_u32(&mut out, note.kind);
            out.extend_from_slice(note.owner);
            pad_to(&mut out, 4);
            out.extend_from_slice(&note.desc);
            pad_to(&mut out, 4);
            sections.push(Section {
                name: add_name(&mut names, note.section),
                kind: SHT_NOTE,
                flags: SHF_ALLOC,
                offset: start,
                size: out.len() - start,
                align: 4,
            });
        }
        phdrs.push((PT_NOTE, PF_R, segment_start, out.len() - segment_start, 4));
    }

    pad_to(&mut out, 16);
    let payload_start = out.len();
    out.extend_from_slice(payload);
    phdrs.insert(
        0,
        (PT_LOAD, PF_R | PF_X, payload_start, payload.len(), 0x1000),
    );
    sections.push(Section {
        name: add_name(&mut names, ".text"),
        kind: SHT_PROGBITS,
        flags: SHF_ALLOC | SHF_EXECINSTR,
        offset: payload_start,
        size: payload.len(),
        align: 16,
    });

    let shstrtab_name = add_name(&mut names, ".shstrtab");
    let shstrtab_start = out.len();
    out.extend_from_slice(&names);
    sections.push(Section {
        name: shstrtab_name,
        kind: SHT_STRTAB,
        flags: 0,
        offset: shstrtab_start,
        size: names.len(),
        align: 1,
    });

    pad_to(&mut out, 8);
    let shoff = out.len();
    out.resize(out.len() + SHDR_SIZE, 0); // the null section
    for section in &sections {
        section.write(&mut out);
    }

    let mut header = Vec::with_capacity(EHDR_SIZE + phnum * PHDR_SIZE);
    header.extend_from_slice(b"\x7fELF");
    header.extend_from_slice(&[2, 1, 1]); // ELFCLASS64, little-endian, EV_CURRENT
    header.resize(16, 0);
    push_u16(&mut header, ET_EXEC);
    push_u16(&mut header, EM_X86_64);
    push_u32(&mut header, 1); // e_version
    push_u64(&mut header, address(payload_start)); // e_entry
    push_u64(&mut header, EHDR_SIZE as u64); // e_phoff
    push_u64(&mut header, shoff as u64);
    push_u32(&mut header, 0); // e_flags
    push_u16(&mut header, EHDR_SIZE as u16);
    push_u16(&mut header, PHDR_SIZE as u16);
    push_u16(&mut header, len_u16(phnum));
    push_u16(&mut header, SHDR_SIZE as u16);
    push_u16(&mut header, len_u16(sections.len() + 1));
    push_u16(&mut header, len_u16(sections.len())); // .shstrtab is last
    for (kind, flags, offset, size, align) in phdrs {
        push_u32(&mut header, kind);
        push_u32(&mut header, flags);
        push_u64(&mut header, offset as u64);
        push_u64(&mut header, address(offset)); // p_vaddr
        push_u64(&mut header, address(offset)); // p_paddr
        push_u64(&mut header, size as u64); // p_filesz
        push_u64(&mut header, size as u64); // p_memsz
        push_u64(&mut header, align);
    }
    out[..header.len()].copy_from_slice(&header);
    out
}

/// An `Elf64_Shdr` to be written.
struct Section {
    name: usize,
    kind: u32,
    flags: u64,
    offset: usize,
    size: usize,
    align: u64,
}

impl Section {
    fn write(&self, out: &mut Vec<u8>) {
        push_u32(out, len_u32(self.name));
        push_u32(out, self.kind);
        push_u64(out, self.flags);
        push_u64(
            out,
            if self.flags & SHF_ALLOC != 0 {
                address(self.offset)
            } else {
                0
            },
        );
        push_u64(out, self.offset as u64);
        push_u64(out, self.size as u64);
        push_u32(out, 0); // sh_link
        push_u32(out, 0); // sh_info
        push_u64(out, self.align);
        push_u64(out, 0); // sh_entsize
    }
}

/// Loaded at a page-aligned base plus the file offset, so every segment's
/// address and offset agree modulo its alignment.
fn address(offset: usize) -> u64 {
    BASE_ADDRESS + offset as u64
}

fn add_name(names: &mut Vec<u8>, name: &str) -> usize {
    let at = names.len();
    names.extend_from_slice(name.as_bytes());
    names.push(0);
    at
}

fn pad_to(out: &mut Vec<u8>, align: usize) {
    out.resize(out.len().next_multiple_of(align), 0);
}

/// Sizes in a test image are small; saturating keeps the builder total.
fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

fn len_u16(len: usize) -> u16 {
    u16::try_from(len).unwrap_or(u16::MAX)
}

fn push_u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn push_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn push_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}
