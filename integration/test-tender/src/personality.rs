//! Which tender we pretend to be: solo5-hvt or solo5-spt, chosen by the
//! name we are called by, exactly as the daemon calls the real ones.

use albatross::solo5::AbiTarget;

/// The version our `--version` and the guest banner report. The real
/// tenders report `git describe` of their Solo5 tree.
pub const VERSION: &str = "v0.12.1-albatross-test";

/// The ABI version both real tenders implement (`solo5-tender.md` §3.2).
pub const ABI_VERSION: u32 = 2;

/// The tender being emulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Personality {
    /// `solo5-hvt`: KVM based; catches SIGINT/SIGTERM, rounds memory.
    Hvt,
    /// `solo5-spt`: seccomp based; no signal handlers, `--x-exec-heap`.
    Spt,
}

impl Personality {
    /// The personality for a program base name: it must contain `hvt` or
    /// `spt` (e.g. `solo5-hvt`, `solo5-spt.2`), but not both.
    pub fn from_program(base_name: &str) -> Option<Personality> {
        match (base_name.contains("hvt"), base_name.contains("spt")) {
            (true, false) => Some(Personality::Hvt),
            (false, true) => Some(Personality::Spt),
            _ => None,
        }
    }

    /// The Solo5 target whose images this tender runs.
    pub fn target(self) -> AbiTarget {
        match self {
            Personality::Hvt => AbiTarget::Hvt,
            Personality::Spt => AbiTarget::Spt,
        }
    }

    /// The real tender's name, used in "Executable is not for the … target".
    pub fn tender_name(self) -> &'static str {
        match self {
            Personality::Hvt => "solo5-hvt",
            Personality::Spt => "solo5-spt",
        }
    }

    /// The usage text the real tender prints on stderr (`solo5-tender.md`
    /// §3.2, byte for byte, including the space after the module list).
    pub fn usage(self, prog: &str) -> String {
        const NET: &str =
            "    --net:NAME=IFACE | @NN (attach tap at IFACE or at fd @NN as network NAME)\n  \
                           [ --net-mac:NAME=HWADDR ] (set HWADDR for network NAME)\n";
        const BLOCK: &str = "    --block:NAME=PATH (attach block device/file at PATH as block storage NAME)\n  \
                             [ --block-sector-size:NAME=SECTORSIZE ] (set sector size for block device \
                             NAME; must be a power of two greater than or equal 512)\n";
        const EXEC_HEAP: &str =
            "    --x-exec-heap (make the heap executable). WARNING: This option is \
                                 dangerous and not recommended as it makes the heap and stack \
                                 executable.\n";
        let (module_options, core_and_modules, version_line, modules) = match self {
            Personality::Hvt => (
                " [ MODULE OPTIONS ]",
                "core block net ",
                "    --version (display version information)\n",
                format!("{BLOCK}{NET}"),
            ),
            Personality::Spt => (
                "",
                "core net block ",
                "",
                format!("{EXEC_HEAP}{NET}{BLOCK}"),
            ),
        };
        format!(
            "usage: {prog} [ CORE OPTIONS ]{module_options} [ -- ] KERNEL [ ARGS ]\n\
             KERNEL is the filename of the unikernel to run.\n\
             ARGS are optional arguments passed to the unikernel.\n\
             Core options:\n  \
             [ --mem=512 ] (guest memory in MB)\n    \
             --help (display this help)\n\
             {version_line}\
             Compiled-in modules: {core_and_modules}\n\
             Compiled-in module options:\n\
             {modules}"
        )
    }

    /// The two lines `--version` prints on stderr.
    pub fn version_text(self, prog: &str) -> String {
        format!("{prog} tender, version {VERSION}\nABI version {ABI_VERSION}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chosen_by_program_name() {
        assert_eq!(
            Personality::from_program("solo5-hvt"),
            Some(Personality::Hvt)
        );
        assert_eq!(
            Personality::from_program("solo5-spt.2"),
            Some(Personality::Spt)
        );
        assert_eq!(Personality::from_program("test-tender"), None);
        assert_eq!(Personality::from_program("hvt-spt"), None);
    }

    #[test]
    fn hvt_usage_is_upstreams() {
        let expected = "usage: solo5-hvt [ CORE OPTIONS ] [ MODULE OPTIONS ] [ -- ] KERNEL [ ARGS ]
KERNEL is the filename of the unikernel to run.
ARGS are optional arguments passed to the unikernel.
Core options:
  [ --mem=512 ] (guest memory in MB)
    --help (display this help)
    --version (display version information)
Compiled-in modules: core block net 
Compiled-in module options:
    --block:NAME=PATH (attach block device/file at PATH as block storage NAME)
  [ --block-sector-size:NAME=SECTORSIZE ] (set sector size for block device NAME; must be a power of two greater than or equal 512)
    --net:NAME=IFACE | @NN (attach tap at IFACE or at fd @NN as network NAME)
  [ --net-mac:NAME=HWADDR ] (set HWADDR for network NAME)
";
        assert_eq!(Personality::Hvt.usage("solo5-hvt"), expected);
    }

    #[test]
    fn spt_usage_differs_as_measured() {
        let usage = Personality::Spt.usage("solo5-spt");
        let lines: Vec<&str> = usage.lines().collect();
        assert_eq!(
            lines[0],
            "usage: solo5-spt [ CORE OPTIONS ] [ -- ] KERNEL [ ARGS ]"
        );
        assert!(!usage.contains("--version"));
        assert_eq!(lines[6], "Compiled-in modules: core net block ");
        assert!(lines[8].starts_with("    --x-exec-heap (make the heap executable)."));
        assert!(lines[9].starts_with("    --net:NAME=IFACE"));
        assert!(lines[11].starts_with("    --block:NAME=PATH"));
        assert_eq!(lines.len(), 13);
    }
}
