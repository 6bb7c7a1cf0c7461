//! The Solo5 tender command line (§10.4), word by word. CPU pinning is not
//! part of it: the daemon pins the child with `sched_setaffinity` instead
//! of exec'ing `taskset` (known trap 4).

use std::path::{Path as FsPath, PathBuf};

use super::config::UnikernelArguments;
use super::name::{format_mac, Name};
use super::resources::device_text;

/// Where the files of a unikernel live on the host (§2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    /// Runtime directory (`/run/albatross`).
    pub tmpdir: PathBuf,
    /// Persistent directory (`/var/lib/albatross`).
    pub dbdir: PathBuf,
}

impl HostPaths {
    /// The uncompressed image the tender runs: `<tmpdir>/<name>.img`.
    pub fn image(&self, name: &Name) -> PathBuf {
        self.tmpdir.join(format!("{name}.img"))
    }

    /// The console FIFO: `<tmpdir>/fifo/<name>`.
    pub fn fifo(&self, name: &Name) -> PathBuf {
        self.tmpdir.join("fifo").join(name.to_string())
    }

    /// The directory of block device files: `<dbdir>/block`.
    pub fn block_dir(&self) -> PathBuf {
        self.dbdir.join("block")
    }

    /// The unix socket directory: `<tmpdir>/util`.
    pub fn util_dir(&self) -> PathBuf {
        self.tmpdir.join("util")
    }
}

/// The value of `--name=`: the unikernel's label, or the full text name
/// when `full_name` (upstream's `--no-drop-path`) or when it has no label.
pub fn name_argument(name: &Name, full_name: bool) -> String {
    match name.label() {
        Some(label) if !full_name => label.to_string(),
        _ => name.to_string(),
    }
}

/// The arguments after the tender's own name, for unikernel `name`
/// configured with `args`, whose interfaces got `taps` (in configuration
/// order), running `image`.
pub fn tender_arguments(
    name: &Name,
    args: &UnikernelArguments,
    taps: &[String],
    paths: &HostPaths,
    image: &FsPath,
    full_name: bool,
) -> Vec<String> {
    let mut argv = vec![format!("--mem={}", args.memory)];
    for (net, tap) in args.bridges.iter().zip(taps) {
        argv.push(format!("--net:{}={tap}", net.netif));
    }
    for net in &args.bridges {
        argv.push(format!(
            "--net-mac:{}={}",
            net.netif,
            format_mac(&net.effective_mac(name))
        ));
    }
    for block in &args.blocks {
        let file = paths
            .block_dir()
            .join(device_text(name.path(), block.host_device()));
        argv.push(format!("--block:{}={}", block.name, file.display()));
    }
    for block in &args.blocks {
        if let Some(size) = block.sector_size {
            argv.push(format!("--block-sector-size:{}={size}", block.name));
        }
    }
    argv.push("--".to_owned());
    argv.push(image.display().to_string());
    if args.add_name {
        argv.push(format!("--name={}", name_argument(name, full_name)));
    }
    argv.extend(args.argv.iter().flatten().cloned());
    argv
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BlockSpec, FailBehaviour, NetSpec};

    #[test]
    fn spec_example() {
        // The example of §10.4, without the taskset prefix.
        let name = Name::parse("foo:web").unwrap();
        let args = UnikernelArguments {
            fail_behaviour: FailBehaviour::Quit,
            startup: None,
            add_name: true,
            cpuids: vec![1],
            memory: 64,
            blocks: vec![BlockSpec {
                name: "storage".into(),
                device: Some("data".into()),
                sector_size: Some(4096),
            }],
            bridges: vec![NetSpec {
                netif: "service".into(),
                bridge: Some("br0".into()),
                mac: None,
            }],
            argv: Some(vec!["--ipv4=10.0.0.2/24".into()]),
            cpus: 1,
            linux_boot_partition: None,
        };
        let paths = HostPaths {
            tmpdir: "/run/albatross".into(),
            dbdir: "/var/lib/albatross".into(),
        };
        let mac = format_mac(&crate::model::name::derived_mac("service", &name));
        let argv = tender_arguments(
            &name,
            &args,
            &["vmmtap0".into()],
            &paths,
            &paths.image(&name),
            false,
        );
        assert_eq!(
            argv,
            [
                "--mem=64".to_string(),
                "--net:service=vmmtap0".into(),
                format!("--net-mac:service={mac}"),
                "--block:storage=/var/lib/albatross/block/foo:data".into(),
                "--block-sector-size:storage=4096".into(),
                "--".into(),
                "/run/albatross/foo:web.img".into(),
                "--name=web".into(),
                "--ipv4=10.0.0.2/24".into(),
            ]
        );
        assert_eq!(name_argument(&name, true), "foo:web");
        assert_eq!(name_argument(&Name::parse(":web").unwrap(), true), ":web");
    }
}
