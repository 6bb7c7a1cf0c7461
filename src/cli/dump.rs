//! `inspect-dump` and `extract-dump`: reading a state file (§7.2) of any
//! layout without a daemon.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::common::Context;
use super::error::{CliError, Exit};
use super::output;
use super::session::write_image;
use crate::model::Name;
use crate::paths::default_dbdir;
use crate::wire::state::{decode_state, StateFile};

/// The state file named by `--file` and `--dbdir`: a name without `/` is
/// taken inside the database directory, anything else as is.
pub fn state_path(file: Option<&str>, dbdir: Option<&Path>) -> PathBuf {
    let file = file.unwrap_or("state");
    if file.contains('/') {
        PathBuf::from(file)
    } else {
        dbdir
            .map_or_else(default_dbdir, Path::to_path_buf)
            .join(file)
    }
}

fn read_state(path: &Path) -> Result<StateFile, CliError> {
    let bytes = std::fs::read(path).map_err(|source| CliError::ReadFile {
        what: "dump file",
        path: path.to_path_buf(),
        source,
    })?;
    decode_state(&bytes)
        .map_err(|e| CliError::Invalid(format!("couldn't parse dump file {}: {e}", path.display())))
}

/// Prints every unikernel and policy of the state file.
pub fn inspect(path: &Path) -> Result<Exit, CliError> {
    let state = read_state(path)?;
    let mut out = io::stdout().lock();
    writeln!(out, "parsed {} unikernels:", state.unikernels.len())?;
    for (name, config) in &state.unikernels {
        writeln!(out, "{name}: {}", output::config(config))?;
    }
    writeln!(out, "parsed {} policies:", state.policies.len())?;
    for (path, policy) in &state.policies {
        writeln!(
            out,
            "{}: {}",
            Name::of_path(path.clone()),
            output::policy(policy)
        )?;
    }
    Ok(Exit::Success)
}

/// Writes the (uncompressed) image of `name` to a file (§16.4) and prints
/// its configuration.
pub fn extract(ctx: &Context, path: &Path, name: &Name) -> Result<Exit, CliError> {
    let state = read_state(path)?;
    let (_, config) = state
        .unikernels
        .iter()
        .find(|(n, _)| n == name)
        .ok_or_else(|| {
            CliError::Invalid(format!("unikernel {name} not found in {}", path.display()))
        })?;
    let file = write_image(ctx, name, config.compressed, &config.image)?;
    let mut out = io::stdout().lock();
    writeln!(out, "dumped image to {}", file.display())?;
    writeln!(out, "{name}: {}", output::config(config))?;
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert_eq!(
            state_path(None, Some(Path::new("/x"))),
            PathBuf::from("/x/state")
        );
        assert_eq!(
            state_path(Some("old"), Some(Path::new("/x"))),
            PathBuf::from("/x/old")
        );
        assert_eq!(
            state_path(Some("./old"), Some(Path::new("/x"))),
            PathBuf::from("./old")
        );
        assert_eq!(state_path(None, None), default_dbdir().join("state"));
    }
}
