//! Finding the Solo5 tenders (§10.3). Every candidate is found and asked
//! for its ABI version once, at start-up; a deploy then only looks the
//! image's target and ABI version up in that table.

use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::solo5::AbiTarget;

/// One tender binary and the ABI version it reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tender {
    /// Where it is.
    pub path: PathBuf,
    /// `hvt` or `spt`.
    pub target: AbiTarget,
    /// The `.V` suffix of its file name, if any.
    pub suffix: Option<u32>,
    /// Index of its directory in the search order.
    pub dir_rank: usize,
    /// What `--version` said, or why it could not be read.
    pub abi: Result<u32, String>,
}

/// All tenders found at start-up.
#[derive(Debug, Clone, Default)]
pub struct Tenders {
    dirs: Vec<PathBuf>,
    found: Vec<Tender>,
}

/// Why no tender can run an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenderError {
    /// No binary of that name in any searched directory.
    NotFound {
        /// `solo5-hvt` or `solo5-spt`.
        name: String,
        /// The ABI version the image needs.
        abi: u32,
        /// The directories searched, in order.
        dirs: Vec<PathBuf>,
    },
    /// Binaries exist but none speaks the image's ABI version.
    AbiMismatch {
        /// The ABI version the image needs.
        abi: u32,
        /// What each candidate reported.
        found: Vec<(PathBuf, Result<u32, String>)>,
    },
}

impl fmt::Display for TenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TenderError::NotFound { name, abi, dirs } => {
                let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
                write!(
                    f,
                    "tender does not exist, looked for {name}.{abi} and {name} in {} \
                     (install solo5 or pass --tender-dir)",
                    dirs.join(", ")
                )
            }
            TenderError::AbiMismatch { abi, found } => {
                let found: Vec<String> = found
                    .iter()
                    .map(|(path, abi)| match abi {
                        Ok(v) => format!("{} has ABI version {v}", path.display()),
                        Err(e) => format!("{}: {e}", path.display()),
                    })
                    .collect();
                write!(
                    f,
                    "no tender for ABI version {abi}: {} (install a matching solo5 tender)",
                    found.join("; ")
                )
            }
        }
    }
}

impl std::error::Error for TenderError {}

/// The file name stem of a target's tender.
fn stem(target: AbiTarget) -> Option<&'static str> {
    target.tender_name().ok()
}

/// Parses `solo5-hvt`, `solo5-spt` and their `.V` forms.
fn parse_file_name(name: &str) -> Option<(AbiTarget, Option<u32>)> {
    let (stem, suffix) = match name.split_once('.') {
        Some((stem, v)) => (stem, Some(v.parse().ok()?)),
        None => (name, None),
    };
    let target = match stem {
        "solo5-hvt" => AbiTarget::Hvt,
        "solo5-spt" => AbiTarget::Spt,
        _ => return None,
    };
    Some((target, suffix))
}

/// Runs `tender --version` and finds the line `ABI version V`.
pub fn query_abi(path: &Path) -> Result<u32, String> {
    let out = Command::new(path)
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run it: {e}"))?;
    let text = [out.stdout, out.stderr].concat();
    let text = String::from_utf8_lossy(&text);
    text.lines()
        .find_map(|line| match line.split(' ').collect::<Vec<_>>()[..] {
            ["ABI", "version", v] => v.parse().ok(),
            _ => None,
        })
        .ok_or_else(|| {
            format!("unexpected --version output, expected a line 'ABI version V', got {text:?}")
        })
}

fn is_executable_file(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

impl Tenders {
    /// Searches `dirs` in order (the daemon passes `--tender-dir`, the
    /// database directory, then `PATH`) and asks every tender found for its
    /// ABI version.
    pub fn discover(dirs: Vec<PathBuf>) -> Tenders {
        let mut found = Vec::new();
        for (dir_rank, dir) in dirs.iter().enumerate() {
            let Ok(entries) = fs::read_dir(dir) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect();
            names.sort();
            for name in names {
                let Some((target, suffix)) = parse_file_name(&name) else {
                    continue;
                };
                let path = dir.join(&name);
                if !is_executable_file(&path) {
                    continue;
                }
                let abi = query_abi(&path);
                match &abi {
                    Ok(v) => log::info!("tender {} (ABI version {v})", path.display()),
                    Err(e) => log::warn!("tender {}: {e}", path.display()),
                }
                found.push(Tender {
                    path,
                    target,
                    suffix,
                    dir_rank,
                    abi,
                });
            }
        }
        Tenders { dirs, found }
    }

    /// The directories searched.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Every tender found.
    pub fn all(&self) -> &[Tender] {
        &self.found
    }

    /// The tender for an image of `target` and ABI version `abi`, in the
    /// order of §10.3: `solo5-t.V` before `solo5-t`, each in directory
    /// order.
    pub fn select(&self, target: AbiTarget, abi: u32) -> Result<&Tender, TenderError> {
        let name = stem(target).unwrap_or("solo5-?").to_owned();
        let mut candidates: Vec<&Tender> = self
            .found
            .iter()
            .filter(|t| t.target == target && (t.suffix.is_none() || t.suffix == Some(abi)))
            .collect();
        candidates.sort_by_key(|t| (t.suffix.is_none(), t.dir_rank));
        if candidates.is_empty() {
            return Err(TenderError::NotFound {
                name,
                abi,
                dirs: self.dirs.clone(),
            });
        }
        candidates
            .iter()
            .copied()
            .find(|t| t.abi == Ok(abi))
            .ok_or_else(|| TenderError::AbiMismatch {
                abi,
                found: candidates
                    .iter()
                    .map(|t| (t.path.clone(), t.abi.clone()))
                    .collect(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tender(target: AbiTarget, suffix: Option<u32>, rank: usize, abi: u32) -> Tender {
        Tender {
            path: PathBuf::from(format!("/d{rank}/t{suffix:?}")),
            target,
            suffix,
            dir_rank: rank,
            abi: Ok(abi),
        }
    }

    #[test]
    fn file_names() {
        assert_eq!(parse_file_name("solo5-hvt"), Some((AbiTarget::Hvt, None)));
        assert_eq!(
            parse_file_name("solo5-spt.2"),
            Some((AbiTarget::Spt, Some(2)))
        );
        assert_eq!(parse_file_name("solo5-spt.x"), None);
        assert_eq!(parse_file_name("solo5-virtio"), None);
    }

    #[test]
    fn selection_order() {
        let t = Tenders {
            dirs: vec![],
            found: vec![
                tender(AbiTarget::Hvt, None, 0, 2),
                tender(AbiTarget::Hvt, Some(2), 1, 2),
                tender(AbiTarget::Spt, None, 0, 1),
            ],
        };
        assert_eq!(t.select(AbiTarget::Hvt, 2).unwrap().suffix, Some(2));
        assert!(matches!(
            t.select(AbiTarget::Spt, 2),
            Err(TenderError::AbiMismatch { .. })
        ));
        assert!(matches!(
            t.select(AbiTarget::Hvt, 3),
            Err(TenderError::AbiMismatch { .. })
        ));
        let empty = Tenders::default();
        let e = empty.select(AbiTarget::Spt, 2).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("tender does not exist, looked for solo5-spt.2"));
    }
}
