//! Solo5 unikernel images: the ABI note and the device manifest of an ELF
//! image (spec §10.2 steps 3 and 5, `solo5-tender.md` §5).
//!
//! Pure: everything works on a byte slice the caller has read. [`read_abi`]
//! and [`read_manifest`] are separate so the daemon can keep upstream's order
//! (ABI note, tender check, then manifest); [`read_image_info`] reads both.
//! [`testimage`] builds minimal valid images for tests and the test tender.
//!
//! ```
//! use albatross::solo5::testimage::build_test_image;
//! use albatross::solo5::{read_image_info, AbiTarget, DeviceKind};
//!
//! let image = build_test_image(AbiTarget::Spt, 2, &[("service0", DeviceKind::NetBasic)], b"");
//! let info = read_image_info(&image)?;
//! assert_eq!(info.abi.target.tender_name()?, "solo5-spt");
//! info.manifest.check_devices([], ["service0"])?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod elf;
pub mod testimage;

use std::collections::BTreeSet;
use std::fmt;

pub use elf::{read_abi, read_image_info, read_manifest, ElfError, ManifestProblem, NoteKind};

/// The Solo5 target an image was built for (`enum abi_target` in Solo5's
/// `elf_abi.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AbiTarget {
    /// KVM/bhyve/vmm based `solo5-hvt` (code 1).
    Hvt,
    /// seccomp sandboxed `solo5-spt` (code 2).
    Spt,
    /// virtio, run by QEMU and friends (code 3).
    Virtio,
    /// Muen separation kernel (code 4).
    Muen,
    /// Genode (code 5).
    Genode,
    /// Xen PVH (code 6).
    Xen,
}

impl AbiTarget {
    /// The target for the numeric code in the ABI note, if known.
    pub fn from_code(code: u32) -> Option<AbiTarget> {
        match code {
            1 => Some(AbiTarget::Hvt),
            2 => Some(AbiTarget::Spt),
            3 => Some(AbiTarget::Virtio),
            4 => Some(AbiTarget::Muen),
            5 => Some(AbiTarget::Genode),
            6 => Some(AbiTarget::Xen),
            _ => None,
        }
    }

    /// The numeric code stored in the ABI note.
    pub fn code(self) -> u32 {
        match self {
            AbiTarget::Hvt => 1,
            AbiTarget::Spt => 2,
            AbiTarget::Virtio => 3,
            AbiTarget::Muen => 4,
            AbiTarget::Genode => 5,
            AbiTarget::Xen => 6,
        }
    }

    /// The name `solo5-elftool query-abi` prints (`"hvt"`, `"spt"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            AbiTarget::Hvt => "hvt",
            AbiTarget::Spt => "spt",
            AbiTarget::Virtio => "virtio",
            AbiTarget::Muen => "muen",
            AbiTarget::Genode => "genode",
            AbiTarget::Xen => "xen",
        }
    }

    /// The base name of the tender that runs this target (§10.3); only hvt
    /// and spt are supported.
    pub fn tender_name(self) -> Result<&'static str, UnsupportedTarget> {
        match self {
            AbiTarget::Hvt => Ok("solo5-hvt"),
            AbiTarget::Spt => Ok("solo5-spt"),
            target => Err(UnsupportedTarget { target }),
        }
    }
}

impl fmt::Display for AbiTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An image built for a target albatross cannot run (§10.2 step 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnsupportedTarget {
    /// The image's target.
    pub target: AbiTarget,
}

impl fmt::Display for UnsupportedTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Upstream's text, byte for byte.
        write!(f, "unsupported solo5 target {}", self.target)
    }
}

impl std::error::Error for UnsupportedTarget {}

/// The contents of the Solo5 ABI note ("ABI1").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Abi {
    /// Target the image was built for.
    pub target: AbiTarget,
    /// ABI version of that target; the tender must report the same (§10.3).
    pub version: u32,
}

/// The kind of a manifest device (`enum mft_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeviceKind {
    /// `MFT_DEV_BLOCK_BASIC` (1): attached with `--block:NAME=PATH`.
    BlockBasic,
    /// `MFT_DEV_NET_BASIC` (2): attached with `--net:NAME=TAP`.
    NetBasic,
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceKind::BlockBasic => "BLOCK_BASIC",
            DeviceKind::NetBasic => "NET_BASIC",
        })
    }
}

/// One device the unikernel declares (the reserved entry 0 is not one).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Device {
    /// Name the unikernel acquires the device by.
    pub name: String,
    /// Block or network.
    pub kind: DeviceKind,
}

impl fmt::Display for Device {
    /// Upstream's rendering in mismatch messages: `block "name"` / `net "name"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            DeviceKind::BlockBasic => "block",
            DeviceKind::NetBasic => "net",
        };
        write!(f, "{kind} {}", ocaml_quoted(&self.name))
    }
}

/// The Solo5 application manifest ("MFT1" note).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Manifest {
    /// Manifest format version (always 1 once read).
    pub version: u32,
    /// Declared devices in manifest order; a device's index here plus one is
    /// its handle in the guest.
    pub devices: Vec<Device>,
}

impl Manifest {
    /// Names of the declared block devices.
    pub fn block_names(&self) -> BTreeSet<&str> {
        self.names(DeviceKind::BlockBasic)
    }

    /// Names of the declared network devices.
    pub fn net_names(&self) -> BTreeSet<&str> {
        self.names(DeviceKind::NetBasic)
    }

    fn names(&self, kind: DeviceKind) -> BTreeSet<&str> {
        self.devices
            .iter()
            .filter(|d| d.kind == kind)
            .map(|d| d.name.as_str())
            .collect()
    }

    /// §10.2 step 5: the configured block names (first `BlockSpec` field) and
    /// network names (`netif`) must equal the manifest's, as sets. Blocks are
    /// checked first, like upstream.
    pub fn check_devices<'a>(
        &self,
        block_names: impl IntoIterator<Item = &'a str>,
        net_names: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), ManifestMismatch> {
        self.check_kind(DeviceKind::BlockBasic, block_names)?;
        self.check_kind(DeviceKind::NetBasic, net_names)
    }

    fn check_kind<'a>(
        &self,
        kind: DeviceKind,
        configured: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), ManifestMismatch> {
        let declared = self.names(kind);
        let configured: BTreeSet<&str> = configured.into_iter().collect();
        if declared == configured {
            return Ok(());
        }
        Err(ManifestMismatch {
            kind,
            manifest: self.devices.clone(),
            missing: declared
                .difference(&configured)
                .map(|n| n.to_string())
                .collect(),
            extra: configured
                .difference(&declared)
                .map(|n| n.to_string())
                .collect(),
        })
    }
}

/// The configured devices of one kind differ from the manifest's (§10.2
/// step 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestMismatch {
    /// Which kind differs: block devices or networks (bridges).
    pub kind: DeviceKind,
    /// Every device of the manifest, as upstream lists them.
    pub manifest: Vec<Device>,
    /// Declared in the manifest but not configured (sorted).
    pub missing: Vec<String>,
    /// Configured but not declared in the manifest (sorted).
    pub extra: Vec<String>,
}

impl fmt::Display for ManifestMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Upstream's text first, then what exactly differs.
        f.write_str(match self.kind {
            DeviceKind::BlockBasic => "specified block device(s) does not match with manifest",
            DeviceKind::NetBasic => "specified bridge(s) does not match with the manifest",
        })?;
        let manifest: Vec<String> = self.manifest.iter().map(Device::to_string).collect();
        write!(f, ". Devices present in manifest: {}", manifest.join(", "))?;
        let differences: Vec<String> = [
            ("not configured", &self.missing),
            ("not in the manifest", &self.extra),
        ]
        .into_iter()
        .filter(|(_, names)| !names.is_empty())
        .map(|(label, names)| {
            let quoted: Vec<String> = names.iter().map(|name| ocaml_quoted(name)).collect();
            format!("{label}: {}", quoted.join(", "))
        })
        .collect();
        if !differences.is_empty() {
            write!(f, " ({})", differences.join("; "))?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestMismatch {}

/// Both Solo5 notes of an image.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageInfo {
    /// The ABI note: target and ABI version.
    pub abi: Abi,
    /// The device manifest.
    pub manifest: Manifest,
}

/// A string quoted the way OCaml's `%S` does (upstream prints names so):
/// `"` and `\` escaped, `\n \t \r \b` by name, other bytes outside
/// printable ASCII as `\ddd` in decimal.
fn ocaml_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for &b in s.as_bytes() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\r' => out.push_str("\\r"),
            0x08 => out.push_str("\\b"),
            b' '..=b'~' => out.push(char::from(b)),
            _ => out.push_str(&format!("\\{b:03}")),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(devices: &[(&str, DeviceKind)]) -> Manifest {
        Manifest {
            version: 1,
            devices: devices
                .iter()
                .map(|(name, kind)| Device {
                    name: name.to_string(),
                    kind: *kind,
                })
                .collect(),
        }
    }

    #[test]
    fn targets_round_trip_and_tenders() {
        for code in 1..=6 {
            let target = AbiTarget::from_code(code).unwrap();
            assert_eq!(target.code(), code);
        }
        assert_eq!(AbiTarget::from_code(0), None);
        assert_eq!(AbiTarget::from_code(7), None);
        assert_eq!(AbiTarget::Hvt.tender_name(), Ok("solo5-hvt"));
        assert_eq!(AbiTarget::Spt.tender_name(), Ok("solo5-spt"));
        let err = AbiTarget::Virtio.tender_name().unwrap_err();
        assert_eq!(err.to_string(), "unsupported solo5 target virtio");
        assert_eq!(AbiTarget::Xen.to_string(), "xen");
    }

    #[test]
    fn names_by_kind() {
        let m = manifest(&[
            ("storage", DeviceKind::BlockBasic),
            ("service", DeviceKind::NetBasic),
            ("data", DeviceKind::BlockBasic),
        ]);
        assert_eq!(
            m.block_names().into_iter().collect::<Vec<_>>(),
            ["data", "storage"]
        );
        assert_eq!(m.net_names().into_iter().collect::<Vec<_>>(), ["service"]);
    }

    #[test]
    fn check_devices_accepts_equal_sets_in_any_order() {
        let m = manifest(&[
            ("a", DeviceKind::BlockBasic),
            ("b", DeviceKind::BlockBasic),
            ("n", DeviceKind::NetBasic),
        ]);
        assert_eq!(m.check_devices(["b", "a"], ["n"]), Ok(()));
        // Sets: a repeated configured name does not matter.
        assert_eq!(m.check_devices(["a", "b", "a"], ["n", "n"]), Ok(()));
        assert_eq!(manifest(&[]).check_devices([], []), Ok(()));
    }

    #[test]
    fn block_mismatch_message() {
        let m = manifest(&[
            ("storage", DeviceKind::BlockBasic),
            ("service", DeviceKind::NetBasic),
        ]);
        let err = m.check_devices(["disk"], ["service"]).unwrap_err();
        assert_eq!(err.kind, DeviceKind::BlockBasic);
        assert_eq!(err.missing, ["storage"]);
        assert_eq!(err.extra, ["disk"]);
        assert_eq!(
            err.to_string(),
            "specified block device(s) does not match with manifest. Devices present in \
             manifest: block \"storage\", net \"service\" (not configured: \"storage\"; \
             not in the manifest: \"disk\")"
        );
    }

    #[test]
    fn bridge_mismatch_message_is_checked_after_blocks() {
        let m = manifest(&[("service", DeviceKind::NetBasic)]);
        let err = m.check_devices([], ["service", "extra"]).unwrap_err();
        assert_eq!(err.kind, DeviceKind::NetBasic);
        assert_eq!(
            err.to_string(),
            "specified bridge(s) does not match with the manifest. Devices present in \
             manifest: net \"service\" (not in the manifest: \"extra\")"
        );
        // Both differ: the block message wins.
        let err = m.check_devices(["b"], []).unwrap_err();
        assert_eq!(err.kind, DeviceKind::BlockBasic);
        // A device of the other kind does not count.
        let err = m.check_devices(["service"], ["service"]).unwrap_err();
        assert_eq!(err.kind, DeviceKind::BlockBasic);
    }

    #[test]
    fn empty_manifest_lists_nothing() {
        let err = manifest(&[]).check_devices([], ["service0"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "specified bridge(s) does not match with the manifest. Devices present in \
             manifest:  (not in the manifest: \"service0\")"
        );
    }

    #[test]
    fn ocaml_quoting() {
        assert_eq!(ocaml_quoted("abc"), "\"abc\"");
        assert_eq!(ocaml_quoted("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(ocaml_quoted("\n\t\r\u{8}"), "\"\\n\\t\\r\\b\"");
        assert_eq!(ocaml_quoted("\u{1}é'"), "\"\\001\\195\\169'\"");
    }
}
