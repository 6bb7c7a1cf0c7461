//! The test tender's network devices against real taps, each test in a
//! network namespace of its own (bridge 10.77.0.1/24, taps made with
//! `ip tuntap add`). Needs root; skipped with a notice otherwise.

mod support;

use std::process::Command;

use albatross::solo5::DeviceKind;
use support::*;

const TARGETS: [&str; 2] = ["hvt", "spt"];

/// A namespace with bridge br0 (10.77.0.1/24) and tap100 enslaved and up,
/// or `None` (and a notice) when we are not root.
fn network() -> Option<Netns> {
    if !is_root() {
        eprintln!(
            "notice: not root, network tests skipped (they need network namespaces and taps)"
        );
        return None;
    }
    let netns = Netns::new();
    netns.bridge("br0", "10.77.0.1/24");
    netns.tap("tap100", Some("br0"), true);
    Some(netns)
}

fn net_image(s: &Setup, target: &str, nets: &[&str]) -> String {
    let devices: Vec<(&str, DeviceKind)> =
        nets.iter().map(|n| (*n, DeviceKind::NetBasic)).collect();
    s.image(
        &format!("net{}.{target}", nets.len()),
        abi_target(target),
        2,
        &devices,
    )
}

fn attach_error(target: &str, iface: &str, error: &str, option: &str) -> String {
    let mut text = format!(
        "solo5-{target}: Could not attach interface: {iface}: {error}\nsolo5-{target}: Invalid option: `{option}'\n"
    );
    text.push_str(usage(target));
    text
}

#[test]
fn interfaces_that_cannot_be_attached() {
    let Some(netns) = network() else { return };
    netns.tap("tapdown", Some("br0"), false);
    let s = Setup::new();
    for target in TARGETS {
        let image = net_image(&s, target, &["service0"]);
        for (iface, error) in [
            ("tapnope", "No such file or directory"),
            ("tapdown", "Network is down"),
            ("br0", "Invalid argument"),
            ("lo", "Invalid argument"),
            ("abcdefghijklmnopqrstuvwxyz", "File name too long"),
        ] {
            let option = format!("--net:service0={iface}");
            let out = run(netns.exec(&s.command(target, &[&option, &image])));
            assert_eq!(out.code(), 1, "{target} {iface}");
            // The interface name is cut to 19 characters, as upstream's buffer.
            let shown: String = iface.chars().take(19).collect();
            assert_eq!(out.stderr, attach_error(target, &shown, error, &option));
        }
    }
}

#[test]
fn a_tap_is_held_by_one_tender_at_a_time() {
    let Some(netns) = network() else { return };
    netns.tap("tap101", Some("br0"), true);
    let s = Setup::new();
    for target in TARGETS {
        let image = net_image(&s, target, &["service0"]);
        let mut first = Running::start(netns.exec(&s.command(
            target,
            &["--net:service0=tap100", &image, "--test-console=holding"],
        )));
        first.wait_for("holding");
        let option = "--net:service0=tap100";
        let out = run(netns.exec(&s.command(target, &[option, &image])));
        assert_eq!(
            out.stderr,
            attach_error(target, "tap100", "Device or resource busy", option)
        );

        // The same tap for two devices of one tender.
        let two = net_image(&s, target, &["service0", "service1"]);
        let option = "--net:service1=tap101";
        let out = run(netns.exec(&s.command(target, &["--net:service0=tap101", option, &two])));
        assert_eq!(
            out.stderr,
            attach_error(target, "tap101", "Device or resource busy", option)
        );

        // The tap is free again as soon as its tender is gone.
        first.signal("KILL");
        first.finish();
        let out = run(
            netns.exec(&s.command(target, &["--net:service0=tap100", &image, "--test-exit=0"]))
        );
        assert_eq!(out.code(), 0, "{out:?}");
    }
}

#[test]
fn a_later_net_option_wins_and_the_earlier_tap_stays_busy() {
    let Some(netns) = network() else { return };
    netns.tap("tap101", Some("br0"), true);
    let s = Setup::new();
    let image = net_image(&s, "spt", &["service0"]);
    let mut tender = Running::start(netns.exec(&s.command(
        "spt",
        &[
            "--net:service0=tap100",
            "--net:service0=tap101",
            &image,
            "--test-console=up",
        ],
    )));
    tender.wait_for("up");
    for tap in ["tap100", "tap101"] {
        let option = format!("--net:service0={tap}");
        let out = run(netns.exec(&s.command("spt", &[&option, &image])));
        assert!(
            out.stderr.contains("Device or resource busy"),
            "{tap}: {}",
            out.stderr
        );
    }
}

#[test]
fn answers_ping_with_the_given_mac() {
    let Some(netns) = network() else { return };
    let s = Setup::new();
    for (i, target) in TARGETS.into_iter().enumerate() {
        let image = net_image(&s, target, &["service0"]);
        let addr = format!("10.77.0.{}", 10 + i);
        let mac = format!("02:00:00:00:00:{:02x}", 10 + i);
        let mut tender = Running::start(netns.exec(&s.command(
            target,
            &[
                "--mem=64",
                "--net:service0=tap100",
                &format!("--net-mac:service0={mac}"),
                "--",
                &image,
                &format!("--ipv4={addr}/24"),
            ],
        )));
        tender.wait_for("Serving ping");
        let ping = netns
            .exec(Command::new("ping").args(["-c", "1", "-W", "5", &addr]))
            .output()
            .unwrap();
        assert!(
            ping.status.success(),
            "ping {addr} failed: {}",
            String::from_utf8_lossy(&ping.stdout)
        );
        let neigh = netns.ip_output(&["neigh", "show", &addr]);
        assert!(neigh.contains(&format!("lladdr {mac}")), "{neigh}");
        tender.signal("TERM");
        let out = tender.finish();
        assert!(
            out.guest_output(target, 64).starts_with(&format!(
                "[service0] Serving ping on {addr}, with MAC: {}\n",
                mac.replace(':', "")
            )),
            "{}",
            out.stdout
        );
    }
}

#[test]
fn random_macs_are_local_unicast_and_two_networks_work() {
    let Some(netns) = network() else { return };
    netns.bridge("br1", "10.78.0.1/24");
    netns.tap("tap101", Some("br1"), true);
    let s = Setup::new();
    let image = net_image(&s, "spt", &["service0", "service1"]);
    let mut tender = Running::start(netns.exec(&s.command(
        "spt",
        &[
            "--net:service0=tap100",
            "--net:service1=tap101",
            &image,
            "--ipv4=10.77.0.2/24",
            "--ipv4-service1=10.78.0.2/24",
        ],
    )));
    tender.wait_for("[service0] Serving ping on 10.77.0.2");
    tender.wait_for("[service1] Serving ping on 10.78.0.2");
    for addr in ["10.77.0.2", "10.78.0.2"] {
        let ping = netns
            .exec(Command::new("ping").args(["-c", "1", "-W", "5", addr]))
            .output()
            .unwrap();
        assert!(
            ping.status.success(),
            "ping {addr}: {}",
            String::from_utf8_lossy(&ping.stdout)
        );
        let neigh = netns.ip_output(&["neigh", "show", addr]);
        let mac = neigh
            .split_whitespace()
            .skip_while(|w| *w != "lladdr")
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let first = u8::from_str_radix(mac.get(..2).unwrap_or("x"), 16)
            .unwrap_or_else(|_| panic!("{neigh}"));
        assert_eq!(
            first & 0x03,
            0x02,
            "{mac} is not locally administered unicast"
        );
    }
}
