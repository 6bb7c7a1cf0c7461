//! Codec benchmarks: decoding and encoding a create command that carries a
//! 10 MB image, and an info reply listing 1,000 unikernels. Reports the
//! median and best time over repeated runs and the peak heap allocated
//! during one operation (on top of what was live before it).
//!
//! Run with `cargo bench --bench codec`.
// The counting allocator below is the one place that needs `unsafe`: it
// forwards to the system allocator and only adds bookkeeping.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use albatross::model::{
    BlockInfo, BlockSpec, FailBehaviour, Name, NetInfo, NetSpec, Timestamp, Typ,
    UnikernelArguments, UnikernelConfig, UnikernelInfo,
};
use albatross::wire::{
    decode_wire, encode_wire, Command, Header, Payload, Success, UnikernelCmd, Wire,
};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the atomics only count bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same layout contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Peak bytes allocated by `f` beyond what was live when it started.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed) - base)
}

fn timed<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, Duration) {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            black_box(f());
            start.elapsed()
        })
        .collect();
    times.sort();
    (times[runs / 2], times[0])
}

fn report(what: &str, runs: usize, mut f: impl FnMut() -> usize) {
    let (median, best) = timed(runs, &mut f);
    let (_, peak) = peak_of(&mut f);
    println!(
        "{what:<44} median {:>9.3} ms  best {:>9.3} ms  peak alloc {:>8.2} MiB",
        median.as_secs_f64() * 1e3,
        best.as_secs_f64() * 1e3,
        peak as f64 / (1024.0 * 1024.0)
    );
}

fn name(text: &str) -> Name {
    Name::parse(text).expect("benchmark names are valid")
}

fn create_command() -> Wire {
    // Pseudo-random bytes: an image does not compress and has no pattern.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let image: Vec<u8> = (0..10 * 1024 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let config = UnikernelConfig {
        typ: Typ::Solo5,
        compressed: false,
        image,
        args: UnikernelArguments {
            fail_behaviour: FailBehaviour::Restart(vec![0, 2]),
            startup: Some(10),
            add_name: true,
            cpuids: vec![1],
            memory: 64,
            blocks: vec![BlockSpec {
                name: "storage".into(),
                device: None,
                sector_size: None,
            }],
            bridges: vec![NetSpec {
                netif: "service".into(),
                bridge: Some("br0".into()),
                mac: None,
            }],
            argv: Some(vec!["--ipv4=10.0.0.2/24".into()]),
            cpus: 1,
            linux_boot_partition: None,
        },
    };
    Wire {
        header: Header::new(name("tenant:web")),
        payload: Payload::Command(Command::Unikernel(UnikernelCmd::Create(config))),
    }
}

fn info_reply(count: usize) -> Wire {
    let entries = (0..count)
        .map(|i| {
            let n = name(&format!("tenant{}:unikernel{i}", i % 10));
            let info = UnikernelInfo {
                typ: Typ::Solo5,
                startup: None,
                fail_behaviour: FailBehaviour::Restart(Vec::new()),
                cpuids: vec![(i % 2) as i64],
                memory: 32,
                digest: vec![0xAB; 32],
                blocks: vec![BlockInfo {
                    unikernel_device: "storage".into(),
                    host_device: format!("data{i}"),
                    sector_size: 512,
                    block_size: 16,
                }],
                bridges: vec![
                    NetInfo {
                        unikernel_device: "service".into(),
                        host_device: "br0".into(),
                        mac: [0, 0x80, 0x41, 1, 2, i as u8],
                    },
                    NetInfo {
                        unikernel_device: "management".into(),
                        host_device: "br1".into(),
                        mac: [0, 0x80, 0x41, 3, 4, i as u8],
                    },
                ],
                argv: Some(vec!["--ipv4=10.0.0.2/24".into(), "-l *:debug".into()]),
                started: Timestamp::from_unix_millis(1_735_689_600_000 + i as i64),
                cpus: 1,
                linux_boot_partition: None,
            };
            (n, info)
        })
        .collect();
    Wire {
        header: Header::new(Name::root()),
        payload: Payload::Reply(Success::UnikernelInfo(entries)),
    }
}

fn main() {
    let create = create_command();
    let create_bytes = encode_wire(&create).expect("create encodes");
    report("create, 10 MB image: encode", 30, || {
        encode_wire(&create).expect("create encodes").len()
    });
    report("create, 10 MB image: decode", 30, || {
        decode_wire(&create_bytes)
            .map(|w| w.header.sequence as usize)
            .expect("decodes")
    });

    let info = info_reply(1000);
    let info_bytes = encode_wire(&info).expect("info encodes");
    println!(
        "(info reply with 1,000 unikernels: {} bytes)",
        info_bytes.len()
    );
    report("info reply, 1,000 unikernels: encode", 30, || {
        encode_wire(&info).expect("info encodes").len()
    });
    report("info reply, 1,000 unikernels: decode", 30, || {
        decode_wire(&info_bytes)
            .map(|w| w.header.sequence as usize)
            .expect("decodes")
    });
}
