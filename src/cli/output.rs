//! Human-readable lines for replies, data and stored configurations: one
//! line per item, every byte that is not printable ASCII escaped.

use std::fmt::Write;

use crate::model::name::format_mac;
use crate::model::{FailBehaviour, Name, Policy, Typ, UnikernelConfig, UnikernelInfo};
use crate::wire::{Data, IfData, LifeCycle, StatsData, Success, Timeval, UnikernelStatus};

/// `bytes` with printable ASCII kept, `\` doubled, tab, CR and LF as
/// `\t`, `\r`, `\n`, and anything else as `\xHH`.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out
}

fn list<T>(items: &[T], show: impl Fn(&T) -> String) -> String {
    items.iter().map(show).collect::<Vec<_>>().join(",")
}

fn typ(t: Typ) -> &'static str {
    match t {
        Typ::Solo5 => "solo5",
        Typ::Bhyve => "bhyve",
    }
}

fn fail_behaviour(f: &FailBehaviour) -> String {
    match f {
        FailBehaviour::Quit => "quit".to_string(),
        FailBehaviour::Restart(codes) if codes.is_empty() => "restart on any exit".to_string(),
        FailBehaviour::Restart(codes) => format!("restart on exit {}", list(codes, i64::to_string)),
    }
}

fn argv(args: &Option<Vec<String>>) -> String {
    match args {
        None => "none".to_string(),
        Some(args) => format!(
            "[{}]",
            list(args, |a| format!("\"{}\"", escape(a.as_bytes())))
        ),
    }
}

/// One line describing a policy.
pub fn policy(p: &Policy) -> String {
    let cpuids: Vec<i64> = p.cpuids.iter().copied().collect();
    let bridges: Vec<&String> = p.bridges.iter().collect();
    format!(
        "unikernels {}, memory {} MB, cpuids {}, block {}, bridges {}",
        p.unikernels,
        p.memory,
        list(&cpuids, i64::to_string),
        p.block
            .map_or_else(|| "none".to_string(), |b| format!("{b} MB")),
        if bridges.is_empty() {
            "none".to_string()
        } else {
            list(&bridges, |b| escape(b.as_bytes()))
        },
    )
}

/// One line describing a stored configuration (state files).
pub fn config(c: &UnikernelConfig) -> String {
    let a = &c.args;
    let blocks = list(&a.blocks, |b| {
        let mut s = escape(b.name.as_bytes());
        if let Some(d) = &b.device {
            let _ = write!(s, ":{}", escape(d.as_bytes()));
        }
        if let Some(size) = b.sector_size {
            let _ = write!(s, "@{size}");
        }
        s
    });
    let nets = list(&a.bridges, |n| {
        let mut s = escape(n.netif.as_bytes());
        if let Some(b) = &n.bridge {
            let _ = write!(s, ":{}", escape(b.as_bytes()));
        }
        if let Some(mac) = &n.mac {
            let _ = write!(s, "@{}", format_mac(mac));
        }
        s
    });
    format!(
        "typ {}, image {} bytes{}, startup {}, add-name {}, fail {}, cpuids {}, cpus {}, \
         memory {} MB, blocks [{blocks}], nets [{nets}], argv {}{}",
        typ(c.typ),
        c.image.len(),
        if c.compressed { " (compressed)" } else { "" },
        a.startup
            .map_or_else(|| "default".to_string(), |s| s.to_string()),
        a.add_name,
        fail_behaviour(&a.fail_behaviour),
        list(&a.cpuids, i64::to_string),
        a.cpus,
        a.memory,
        argv(&a.argv),
        a.linux_boot_partition
            .as_ref()
            .map_or_else(String::new, |p| format!(
                ", linux-boot {}",
                escape(p.as_bytes())
            )),
    )
}

/// One line describing a running unikernel.
pub fn info(i: &UnikernelInfo) -> String {
    let digest = match i.typ {
        Typ::Solo5 => i
            .digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
        Typ::Bhyve => escape(&i.digest),
    };
    let blocks = list(&i.blocks, |b| {
        format!(
            "{}:{}@{} ({} MB)",
            escape(b.unikernel_device.as_bytes()),
            escape(b.host_device.as_bytes()),
            b.sector_size,
            b.block_size
        )
    });
    let nets = list(&i.bridges, |n| {
        format!(
            "{}:{}@{}",
            escape(n.unikernel_device.as_bytes()),
            escape(n.host_device.as_bytes()),
            format_mac(&n.mac)
        )
    });
    format!(
        "typ {}, started {}, startup {}, fail {}, cpuids {}, cpus {}, memory {} MB, digest {digest}, \
         blocks [{blocks}], nets [{nets}], argv {}{}",
        typ(i.typ),
        i.started,
        i.startup.map_or_else(|| "default".to_string(), |s| s.to_string()),
        fail_behaviour(&i.fail_behaviour),
        list(&i.cpuids, i64::to_string),
        i.cpus,
        i.memory,
        argv(&i.argv),
        i.linux_boot_partition
            .as_ref()
            .map_or_else(String::new, |p| format!(", linux-boot {}", escape(p.as_bytes()))),
    )
}

/// The lines printed for a successful reply to a command on `name`.
/// Images are not described here (they are written to files).
pub fn reply(name: &Name, s: &Success) -> Vec<String> {
    match s {
        Success::Empty => vec![format!("{name}: success")],
        Success::String(msg) => vec![format!("{name}: {}", escape(msg.as_bytes()))],
        Success::Policies(ps) if ps.is_empty() => vec![format!("{name}: no policies")],
        Success::Policies(ps) => ps
            .iter()
            .map(|(n, p)| format!("{n}: {}", policy(p)))
            .collect(),
        Success::BlockDevices(bs) if bs.is_empty() => vec![format!("{name}: no block devices")],
        Success::BlockDevices(bs) => bs
            .iter()
            .map(|(n, size, active)| {
                format!(
                    "{n}: {size} MB, {}",
                    if *active { "active" } else { "inactive" }
                )
            })
            .collect(),
        Success::UnikernelInfo(us)
        | Success::OldUnikernelInfo4(us)
        | Success::OldUnikernelInfo5(us)
            if us.is_empty() =>
        {
            vec![format!("{name}: no unikernels running")]
        }
        Success::UnikernelInfo(us)
        | Success::OldUnikernelInfo4(us)
        | Success::OldUnikernelInfo5(us) => us
            .iter()
            .map(|(n, i)| format!("{n}: {}", info(i)))
            .collect(),
        Success::Consoles(cs) if cs.is_empty() => vec![format!("{name}: no inactive consoles")],
        Success::Consoles(cs) => cs
            .iter()
            .map(|n| format!("{n}: inactive console"))
            .collect(),
        Success::UnikernelImage { compressed, image }
        | Success::OldBlockImage { compressed, image } => {
            vec![format!(
                "{name}: image of {} bytes{}",
                image.len(),
                if *compressed { " (compressed)" } else { "" }
            )]
        }
        Success::BlockDeviceImage(compressed) => vec![format!(
            "{name}: block device dump follows{}",
            if *compressed { " (compressed)" } else { "" }
        )],
        Success::UnikernelStatus(list) => list.iter().filter_map(status).collect(),
    }
}

/// A line for a unikernel that was restarted or is not running; nothing
/// for one that simply runs.
fn status(s: &UnikernelStatus) -> Option<String> {
    let state = match s.state {
        LifeCycle::Running if s.restarts == 0 => return None,
        LifeCycle::Running => "running",
        LifeCycle::Starting => "starting",
        LifeCycle::Waiting => "waiting to restart",
        LifeCycle::Stopped => "stopping",
    };
    let next = s.next_attempt.map_or_else(String::new, |t| {
        format!(", next attempt: {}", t.to_rfc3339())
    });
    Some(format!(
        "{}: {state}, restarts: {}{next}",
        s.name, s.restarts
    ))
}

fn timeval(t: &Timeval) -> String {
    format!("{}.{:06}", t.sec, t.usec)
}

fn ifdata(i: &IfData) -> String {
    format!(
        "{}: mtu {}, in {} packets {} bytes {} errors {} dropped, out {} packets {} bytes {} \
         errors {} dropped",
        escape(i.bridge.as_bytes()),
        i.mtu,
        i.input_packets,
        i.input_bytes,
        i.input_errors,
        i.input_dropped,
        i.output_packets,
        i.output_bytes,
        i.output_errors,
        i.output_dropped
    )
}

fn stats(s: &StatsData) -> String {
    let r = &s.rusage;
    let mut line = format!(
        "utime {} s, stime {} s, maxrss {}, minflt {}, majflt {}, nvcsw {}, nivcsw {}",
        timeval(&r.utime),
        timeval(&r.stime),
        r.maxrss,
        r.minflt,
        r.majflt,
        r.nvcsw,
        r.nivcsw
    );
    if let Some(k) = &s.kinfo_mem {
        let _ = write!(
            line,
            ", vsize {}, rss {}, tsize {}, dsize {}, ssize {}, runtime {}, started {}",
            k.vsize,
            k.rss,
            k.tsize,
            k.dsize,
            k.ssize,
            k.runtime,
            timeval(&k.start)
        );
    }
    for i in &s.ifdata {
        let _ = write!(line, "; {}", ifdata(i));
    }
    if let Some(vmm) = &s.vmm {
        let _ = write!(
            line,
            "; vmm {}",
            list(vmm, |(k, v)| format!("{}={v}", escape(k.as_bytes())))
        );
    }
    line
}

/// The line printed for streamed data about `name`.
pub fn data(name: &Name, d: &Data) -> String {
    match d {
        Data::Console { timestamp, line } => format!("{name} {timestamp} {}", escape(line)),
        Data::Stats(s) => format!("{name}: {}", stats(s)),
        Data::BlockChunk(chunk) => format!("{name}: block data of {} bytes", chunk.len()),
        Data::BlockEof => format!("{name}: end of block data"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(escape(b"hello world"), "hello world");
        assert_eq!(
            escape(b"a\\b\tc\x1b[0m\xff\n"),
            "a\\\\b\\tc\\x1b[0m\\xff\\n"
        );
    }
}
