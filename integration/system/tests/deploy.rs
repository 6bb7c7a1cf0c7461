//! Deploying: two unikernels with two networks and a block device each, on
//! real taps and bridges, with the exact tender command line, cpu pinning,
//! pings from the bridges and `info`; then destroying them.

use std::collections::BTreeSet;

use albatross::model::name::{derived_mac, format_mac};
use albatross::model::{BlockInfo, BlockSpec, Name, NetInfo, NetSpec, Typ, UnikernelArguments};
use albatross::solo5::{AbiTarget, DeviceKind};
use albatross_integration::{
    arguments, eventually, exists, open_fds, require_root, wire_round_trip, Setup, System,
    TenderProc, SHORT,
};
use sha2::{Digest, Sha256};

/// One unikernel of the scenario.
struct Unikernel {
    name: &'static str,
    target: AbiTarget,
    /// Host block device.
    device: &'static str,
    sector_size: Option<i64>,
    cpu: i64,
    mem: i64,
    service_ip: &'static str,
    mgmt_ip: &'static str,
    /// Explicit MAC of the mgmt interface, if any.
    mgmt_mac: Option<&'static str>,
}

const ALPHA: Unikernel = Unikernel {
    name: "alpha",
    target: AbiTarget::Hvt,
    device: "alpha-data",
    sector_size: Some(4096),
    cpu: 1,
    mem: 64,
    service_ip: "10.0.1.10",
    mgmt_ip: "10.0.2.10",
    mgmt_mac: None,
};

const BETA: Unikernel = Unikernel {
    name: "beta",
    target: AbiTarget::Spt,
    device: "beta-data",
    sector_size: None,
    cpu: 0,
    mem: 32,
    service_ip: "10.0.1.20",
    mgmt_ip: "10.0.2.20",
    mgmt_mac: Some("02:00:00:00:be:ef"),
};

const DEVICES: [(&str, DeviceKind); 3] = [
    ("service", DeviceKind::NetBasic),
    ("mgmt", DeviceKind::NetBasic),
    ("storage", DeviceKind::BlockBasic),
];

impl Unikernel {
    fn full_name(&self) -> Name {
        Name::parse(self.name).unwrap()
    }

    fn tender_name(&self) -> &'static str {
        match self.target {
            AbiTarget::Hvt => "solo5-hvt",
            _ => "solo5-spt",
        }
    }

    fn argv(&self) -> Vec<String> {
        vec![
            format!("--ipv4-service={}/24", self.service_ip),
            format!("--ipv4-mgmt={}/24", self.mgmt_ip),
        ]
    }

    /// The configuration as the daemon receives it.
    fn arguments(&self) -> UnikernelArguments {
        let mut args = arguments();
        args.cpuids = vec![self.cpu];
        args.memory = self.mem;
        args.blocks = vec![BlockSpec {
            name: "storage".into(),
            device: Some(self.device.into()),
            sector_size: self.sector_size,
        }];
        args.bridges = vec![
            NetSpec {
                netif: "service".into(),
                bridge: Some("br0".into()),
                mac: None,
            },
            NetSpec {
                netif: "mgmt".into(),
                bridge: Some("br1".into()),
                mac: self
                    .mgmt_mac
                    .map(|m| albatross::model::name::parse_mac(m).unwrap()),
            },
        ];
        args.argv = Some(self.argv());
        wire_round_trip(&self.full_name(), &args)
    }

    fn create(&self, system: &System) {
        let image = system.image(&format!("{}.img", self.name), self.target, &DEVICES);
        let mut block = format!("--block=storage:{}", self.device);
        if let Some(size) = self.sector_size {
            block.push_str(&format!("@{size}"));
        }
        let mgmt = match self.mgmt_mac {
            Some(mac) => format!("--net=mgmt:br1@{mac}"),
            None => "--net=mgmt:br1".to_string(),
        };
        let cpu = format!("--cpu={}", self.cpu);
        let mem = format!("--mem={}", self.mem);
        let argv: Vec<String> = self.argv().iter().map(|a| format!("--arg={a}")).collect();
        let mut args = vec![
            self.name,
            image.to_str().unwrap(),
            "--net=service:br0",
            &mgmt,
            &block,
            &cpu,
            &mem,
        ];
        args.extend(argv.iter().map(String::as_str));
        let out = system.client_ok("create", &args);
        assert_eq!(out.stdout, format!(":{}: created unikernel\n", self.name));
    }

    /// The MAC of `netif` the unikernel uses.
    fn mac(&self, netif: &str) -> String {
        match (netif, self.mgmt_mac) {
            ("mgmt", Some(mac)) => mac.to_string(),
            _ => format_mac(&derived_mac(netif, &self.full_name())),
        }
    }

    /// The exact command line of §10.4 for taps `taps` (in configuration
    /// order).
    fn expected_cmdline(&self, system: &System, taps: &[String]) -> Vec<String> {
        let args = self.arguments();
        let mut cmdline = vec![
            system
                .tender_dir
                .join(self.tender_name())
                .display()
                .to_string(),
            format!("--mem={}", self.mem),
        ];
        for (net, tap) in args.bridges.iter().zip(taps) {
            cmdline.push(format!("--net:{}={tap}", net.netif));
        }
        for net in &args.bridges {
            cmdline.push(format!("--net-mac:{}={}", net.netif, self.mac(&net.netif)));
        }
        cmdline.push(format!(
            "--block:storage={}",
            system.block_path(&format!(":{}", self.device)).display()
        ));
        if let Some(size) = self.sector_size {
            cmdline.push(format!("--block-sector-size:storage={size}"));
        }
        cmdline.push("--".into());
        cmdline.push(
            system
                .image_path(&format!(":{}", self.name))
                .display()
                .to_string(),
        );
        cmdline.push(format!("--name={}", self.name));
        cmdline.extend(self.argv());
        cmdline
    }
}

/// Checks the tender of `u`: command line, affinity and descriptors.
fn check_tender(system: &System, u: &Unikernel, tender: &TenderProc, taps: &[String]) {
    assert_eq!(
        tender.cmdline,
        u.expected_cmdline(system, taps),
        "command line of {}",
        u.name
    );
    assert_eq!(
        tender.cpus_allowed,
        u.cpu.to_string(),
        "affinity of {}",
        u.name
    );
    let fifo = system
        .fifo_path(&format!(":{}", u.name))
        .display()
        .to_string();
    for fd in 0..3 {
        assert_eq!(
            tender.fds.get(&fd),
            Some(&fifo),
            "fd {fd} of {}: {:#?}",
            u.name,
            tender.fds
        );
    }
    // Nothing else: its taps (opened by the tender itself), its block
    // device, and the tender's own sockets and pipes, none of them shared
    // with the daemon (nothing leaked through the spawn).
    let daemon: BTreeSet<String> = open_fds(system.daemon_pid())
        .unwrap()
        .into_values()
        .collect();
    let block = system
        .block_path(&format!(":{}", u.device))
        .display()
        .to_string();
    let (mut tuns, mut blocks) = (0, 0);
    for (fd, target) in tender.fds.range(3..) {
        if target == "/dev/net/tun" {
            tuns += 1;
        } else if *target == block {
            blocks += 1;
        } else {
            assert!(
                (target.starts_with("socket:") || target.starts_with("pipe:"))
                    && !daemon.contains(target),
                "fd {fd} of {} ({target}) should not be open: {:#?}",
                u.name,
                tender.fds
            );
        }
    }
    assert_eq!(
        (tuns, blocks),
        (taps.len(), 1),
        "taps and block files of {}: {:#?}",
        u.name,
        tender.fds
    );
}

#[test]
fn two_unikernels_two_networks_and_a_block_device_each() {
    require_root!();
    let system = Setup::new()
        .bridge("br0", "10.0.1.1/24")
        .bridge("br1", "10.0.2.1/24")
        .start();
    for u in [&ALPHA, &BETA] {
        system.client_ok("create-block", &[u.device, "1"]);
    }
    ALPHA.create(&system);
    BETA.create(&system);

    // Taps: created in order, one per network, up, on the right bridge.
    let taps = system.taps();
    assert_eq!(
        taps.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["vmmtap0", "vmmtap1", "vmmtap2", "vmmtap3"],
        "{taps:#?}"
    );
    let mut next = 0;
    let mut expected_pids = BTreeSet::new();
    for u in [&ALPHA, &BETA] {
        let args = u.arguments();
        let names: Vec<String> = (next..next + args.bridges.len())
            .map(|n| format!("vmmtap{n}"))
            .collect();
        next += args.bridges.len();
        for (net, tap) in args.bridges.iter().zip(&names) {
            let tap = system.tap(tap).unwrap();
            assert!(tap.up, "{tap:?} is down");
            assert_eq!(
                tap.master.as_deref(),
                net.bridge.as_deref(),
                "{tap:?} of {}",
                u.name
            );
            // The guest's MAC goes to the tender; the tap keeps its own.
            assert_ne!(tap.mac, u.mac(&net.netif));
        }
        let tender = system.wait_tender(&format!(":{}", u.name));
        check_tender(&system, u, &tender, &names);
        expected_pids.insert(tender.pid);
    }
    let pids: BTreeSet<u32> = system.tenders().iter().map(|t| t.pid).collect();
    assert_eq!(pids, expected_pids, "exactly one tender per unikernel");

    // Each unikernel answers pings on both networks, with its MAC.
    for u in [&ALPHA, &BETA] {
        for (netif, ip) in [("service", u.service_ip), ("mgmt", u.mgmt_ip)] {
            system.wait_ping(ip);
            assert_eq!(
                system.netns.neighbour_mac(ip),
                Some(u.mac(netif)),
                "{} {netif}",
                u.name
            );
        }
    }

    // info over the wire: both, every field.
    let info = system.info();
    assert_eq!(info.len(), 2, "{info:#?}");
    for (u, (name, i)) in [&ALPHA, &BETA].into_iter().zip(&info) {
        let args = u.arguments();
        assert_eq!(name, &u.full_name());
        assert_eq!(i.typ, Typ::Solo5);
        assert_eq!(i.startup, None);
        assert_eq!(i.fail_behaviour, args.fail_behaviour);
        assert_eq!(i.cpuids, vec![u.cpu]);
        assert_eq!(i.memory, u.mem);
        let image = std::fs::read(system.files.join(format!("{}.img", u.name))).unwrap();
        assert_eq!(i.digest, Sha256::digest(&image).to_vec());
        assert_eq!(
            i.blocks,
            vec![BlockInfo {
                unikernel_device: "storage".into(),
                host_device: u.device.into(),
                sector_size: u.sector_size.unwrap_or(512),
                block_size: 1,
            }]
        );
        // The reply's lists are DER SET OFs: compare them as sets.
        let mut nets: Vec<NetInfo> = args
            .bridges
            .iter()
            .map(|n| NetInfo {
                unikernel_device: n.netif.clone(),
                host_device: n.bridge.clone().unwrap(),
                mac: albatross::model::name::parse_mac(&u.mac(&n.netif)).unwrap(),
            })
            .collect();
        let mut reported = i.bridges.clone();
        reported.sort_by(|a, b| a.unikernel_device.cmp(&b.unikernel_device));
        nets.sort_by(|a, b| a.unikernel_device.cmp(&b.unikernel_device));
        assert_eq!(reported, nets);
        assert_eq!(i.argv, Some(u.argv()));
        assert_eq!(i.cpus, 1);
        assert_eq!(i.linux_boot_partition, None);
        let age = albatross::model::Timestamp::now().unix_millis() - i.started.unix_millis();
        assert!((0..60_000).contains(&age), "started {} ms ago", age);
    }

    // info with the client: one line each.
    let out = system.client_ok("info", &[]);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{out:?}");
    assert!(lines[0].starts_with(":alpha: typ solo5, "), "{out:?}");
    assert!(
        lines[0].contains("cpuids 1, cpus 1, memory 64 MB"),
        "{out:?}"
    );
    assert!(
        lines[0].contains("blocks [storage:alpha-data@4096 (1 MB)]"),
        "{out:?}"
    );
    assert!(lines[1].starts_with(":beta: typ solo5, "), "{out:?}");
    assert!(lines[1].contains("mgmt:br1@02:00:00:00:be:ef"), "{out:?}");

    // Block devices are in use now.
    let out = system.client_ok("block", &[]);
    assert_eq!(
        out.stdout,
        ":alpha-data: 1 MB, active\n:beta-data: 1 MB, active\n"
    );

    // The runtime directory holds exactly the socket, the FIFOs and images.
    for u in [&ALPHA, &BETA] {
        assert!(exists(&system.image_path(&format!(":{}", u.name))));
        assert!(exists(&system.fifo_path(&format!(":{}", u.name))));
    }
}

/// A unikernel on br0 with a new block device `<name>-data`, created with
/// the client; returns its tender.
fn create_with_block(system: &System, name: &str) -> TenderProc {
    let device = format!("{name}-data");
    system.client_ok("create-block", &[&device, "1"]);
    create_with_block_device(system, name, &device)
}

#[test]
fn destroy_removes_taps_fifo_and_image() {
    require_root!();
    let system = Setup::new().bridge("br0", "10.0.1.1/24").start();
    let keep = create_with_block(&system, "keep");
    let gone = create_with_block(&system, "gone");
    let taps = system.taps();
    assert_eq!(taps.len(), 2, "{taps:#?}");
    let keep_tap = taps
        .iter()
        .find(|t| keep.cmdline.contains(&format!("--net:service={}", t.name)))
        .unwrap()
        .clone();
    let gone_tap = taps
        .iter()
        .find(|t| gone.cmdline.contains(&format!("--net:service={}", t.name)))
        .unwrap()
        .clone();
    let before = system.store();
    assert!(
        before
            .paths()
            .contains(&"unikernels/:gone/config".to_string()),
        "{before:#?}"
    );

    let out = system.client_ok("destroy", &["gone"]);
    assert_eq!(out.stdout, ":gone: destroyed unikernel\n");
    // The reply comes after the exit.
    assert!(system.tender(":gone").is_none());
    eventually("the tap of :gone to be deleted", SHORT, || {
        system.tap(&gone_tap.name).is_none()
    });
    eventually("the image and FIFO of :gone to be deleted", SHORT, || {
        !exists(&system.image_path(":gone")) && !exists(&system.fifo_path(":gone"))
    });

    // Nothing else changed: the other unikernel runs on, with its tap, and
    // only the destroyed unikernel left the store (its block device stays).
    assert_eq!(system.tender(":keep").map(|t| t.pid), Some(keep.pid));
    assert_eq!(system.taps(), vec![keep_tap]);
    assert!(exists(&system.image_path(":keep")) && exists(&system.fifo_path(":keep")));
    assert_eq!(system.store(), before.without("unikernels/:gone"));
    assert_eq!(system.running(), [":keep"]);
    let out = system.client_ok("block", &[]);
    assert_eq!(
        out.stdout,
        ":gone-data: 1 MB, inactive\n:keep-data: 1 MB, active\n"
    );

    // A second destroy is a clear error, and changes nothing.
    let out = system.client("destroy", &["gone"]);
    assert_eq!(out.code, 117, "{out:?}");
    assert_eq!(out.stdout, "");
    assert!(
        out.stderr.contains(":gone: failure: destroy: not found"),
        "{out:?}"
    );
    assert_eq!(system.store(), before.without("unikernels/:gone"));
    assert_eq!(system.tender(":keep").map(|t| t.pid), Some(keep.pid));

    // The block device is free again: a new unikernel can use it.
    let again = create_with_block_device(&system, "again", "gone-data");
    assert!(again.cmdline.contains(&format!(
        "--block:storage={}",
        system.block_path(":gone-data").display()
    )));
}

/// Like [`create_with_block`] with an existing block device.
fn create_with_block_device(system: &System, name: &str, device: &str) -> TenderProc {
    let image = system.image(
        &format!("{name}.img"),
        AbiTarget::Spt,
        &[
            ("service", DeviceKind::NetBasic),
            ("storage", DeviceKind::BlockBasic),
        ],
    );
    let block = format!("--block=storage:{device}");
    system.client_ok(
        "create",
        &[name, image.to_str().unwrap(), "--net=service:br0", &block],
    );
    system.wait_tender(&format!(":{name}"))
}
