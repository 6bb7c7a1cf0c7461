//! `inspect-dump` and `extract-dump`: reading a state file (§7.2) of any
//! layout without a daemon.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::common::Context;
use super::error::{CliError, Exit};
use super::output;
use super::session::write_image;
use crate::daemon::store::{write_upstream_state, Store};
use crate::model::Name;
use crate::paths::default_dbdir;
use crate::sys::files;
use crate::wire::state::{decode_state, StateFile, StateLayout};

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

/// The store of albatross-rs' daemon in `dbdir`, as a state file.
fn read_store(dbdir: &Path, layout: StateLayout) -> Result<Vec<u8>, CliError> {
    Store::for_reading(dbdir)
        .export_state_layout(layout)
        .map_err(|e| {
            CliError::Invalid(format!("cannot read the store in {}: {e}", dbdir.display()))
        })
}

/// What `inspect-dump` reads: the named state file, or, when no `--file`
/// is given and `dbdir` holds the daemon's store, the store.
pub fn inspect_source(file: Option<&str>, dbdir: Option<&Path>) -> Result<StateFile, CliError> {
    let dir = dbdir.map_or_else(default_dbdir, Path::to_path_buf);
    if file.is_none() && Store::exists_in(&dir) {
        let bytes = read_store(&dir, StateLayout::Current)?;
        return decode_state(&bytes)
            .map_err(|e| CliError::Invalid(format!("store in {}: {e}", dir.display())));
    }
    read_state(&state_path(file, dbdir))
}

/// Writes the daemon's store in `dbdir` as an upstream state file of
/// `layout` to `file`, or to `<dbdir>/state` (keeping the previous one as
/// `state.bak`), so that upstream's albatrossd can take over.
pub fn export(
    dbdir: Option<&Path>,
    file: Option<&Path>,
    layout: StateLayout,
) -> Result<Exit, CliError> {
    let dir = dbdir.map_or_else(default_dbdir, Path::to_path_buf);
    if !Store::exists_in(&dir) {
        return Err(CliError::Invalid(format!(
            "{} holds no albatross-rs store",
            dir.display()
        )));
    }
    let bytes = read_store(&dir, layout)?;
    let written = match file {
        Some(path) => {
            let parent = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            files::write_atomic(parent, &name, &bytes)
                .map_err(|e| CliError::Invalid(e.to_string()))?;
            path.to_path_buf()
        }
        None => {
            write_upstream_state(&dir, &bytes).map_err(|e| CliError::Invalid(e.to_string()))?;
            dir.join("state")
        }
    };
    let state = decode_state(&bytes).map_err(|e| CliError::Invalid(e.to_string()))?;
    println!(
        "wrote {} unikernels and {} policies to {} (layout {layout})",
        state.unikernels.len(),
        state.policies.len(),
        written.display()
    );
    Ok(Exit::Success)
}

/// Prints every unikernel and policy of a state file (or store).
pub fn inspect(state: &StateFile) -> Result<Exit, CliError> {
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
pub fn extract(
    ctx: &Context,
    file: Option<&str>,
    dbdir: Option<&Path>,
    name: &Name,
) -> Result<Exit, CliError> {
    let state = inspect_source(file, dbdir)?;
    let (_, config) = state
        .unikernels
        .iter()
        .find(|(n, _)| n == name)
        .ok_or_else(|| CliError::Invalid(format!("unikernel {name} not found")))?;
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
