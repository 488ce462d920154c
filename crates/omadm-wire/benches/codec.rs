//! Codec throughput: decode and encode of three typical DM messages, in XML
//! and in WBXML (STYLE.md point 18).
//!
//! | message | what                                                         | XML     | WBXML   |
//! |---------|--------------------------------------------------------------|---------|---------|
//! | `pkg1`  | client package 1: Alert 1201, DevInfo Replace ×5, MD5 Cred   | 1.3 KB  | 0.4 KB  |
//! | `pkg2`  | server package 2: Status + 100 Get/Replace/Add/Exec on SCOMO | 16.9 KB | 7.6 KB  |
//! | `lo64k` | a large-object chunk: Replace, 64 KiB Binary, MoreData, Size | 88 KB   | 66 KB   |
//!
//! ```text
//! cargo bench -p omadm-wire --bench codec            # all, then a summary table
//! cargo bench -p omadm-wire --bench codec -- pkg2    # only ids containing "pkg2"
//! ```
//!
//! Criterion reports time per message and MB/s of the encoded size (the
//! size in the encoding being measured). After the criterion runs, a short
//! table with messages/s and MB/s for every case is printed (`--bench` only,
//! so `cargo test --benches` stays quick).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use omadm_wire::codes::{AlertCode, StatusCode};
use omadm_wire::model::{
    Alert, Command, Cred, Data, Exec, Item, ItemCommand, Location, Meta, Status, SyncBody, SyncHdr,
    SyncMl,
};
use omadm_wire::{decode, encode, Encoding, Limits};

/// One benchmark case: a message and its two encodings.
struct Case {
    name: &'static str,
    msg: SyncMl,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "pkg1",
            msg: pkg1(),
        },
        Case {
            name: "pkg2",
            msg: pkg2(),
        },
        Case {
            name: "lo64k",
            msg: lo_chunk(),
        },
    ]
}

const ENCODINGS: [(Encoding, &str); 2] = [(Encoding::Xml, "xml"), (Encoding::Wbxml, "wbxml")];

fn header(msg_id: u32, target: &str, source: &str) -> SyncHdr {
    let mut h = SyncHdr::new("4F2A", msg_id, Location::uri(target), Location::uri(source));
    h.meta = Some(Meta {
        max_msg_size: Some(16_000),
        ..Meta::default()
    });
    h
}

fn item(target: &str, meta: Option<Meta>, data: Option<Data>) -> Item {
    Item {
        target: Some(Location::uri(target)),
        meta,
        data,
        ..Item::default()
    }
}

/// Client package 1 (`OMA-TS-DM_Protocol-V1_2` §8.3): session alert, the
/// DevInfo subtree, MD5 credentials.
fn pkg1() -> SyncMl {
    let mut header = header(1, "https://dm.example.com/omadm", "IMEI:490154203237518");
    header.cred = Some(Cred {
        meta: Some(Meta::format_type("b64", "syncml:auth-md5")),
        // Base64 of an MD5 digest.
        data: "kgV5f3sYrHhC0wxSvEb9Rw==".into(),
    });
    let mut alert = Alert::new(AlertCode::CLIENT_INITIATED_MGMT);
    alert.cmd_id = 1;
    let devinfo = [
        ("./DevInfo/DevId", "IMEI:490154203237518"),
        ("./DevInfo/Man", "Example Inc."),
        ("./DevInfo/Mod", "EX-2000"),
        ("./DevInfo/DmV", "1.2"),
        ("./DevInfo/Lang", "en-US"),
    ];
    let replace = ItemCommand {
        cmd_id: 2,
        items: devinfo
            .iter()
            .map(|(uri, value)| Item {
                source: Some(Location::uri(*uri)),
                meta: Some(Meta::format("chr")),
                data: Some(Data::Text((*value).into())),
                ..Item::default()
            })
            .collect(),
        ..ItemCommand::default()
    };
    SyncMl {
        header,
        body: SyncBody {
            commands: vec![Command::Alert(alert), Command::Replace(replace)],
            is_final: true,
        },
    }
}

/// Server package 2: the SyncHdr status, then 100 commands cycling through
/// Get, Replace, Add and Exec on `./SCOMO` paths.
fn pkg2() -> SyncMl {
    let header = header(1, "IMEI:490154203237518", "https://dm.example.com/omadm");
    let mut commands = vec![Command::Status(Status {
        cmd_id: 1,
        msg_ref: Some(1),
        cmd_ref: 0,
        cmd: "SyncHdr".into(),
        target_refs: vec!["https://dm.example.com/omadm".into()],
        source_refs: vec!["IMEI:490154203237518".into()],
        cred: None,
        chal: None,
        data: StatusCode::AUTHENTICATION_ACCEPTED,
        items: Vec::new(),
    })];
    for i in 0..100u32 {
        let cmd_id = i + 2;
        let pkg = format!("./SCOMO/Download/pkg{:03}", i / 4);
        commands.push(match i % 4 {
            0 => Command::Get(ItemCommand {
                cmd_id,
                items: vec![item(
                    &format!("./SCOMO/Inventory/Deployed/c{i:03}/Version"),
                    None,
                    None,
                )],
                ..ItemCommand::default()
            }),
            1 => Command::Replace(ItemCommand {
                cmd_id,
                items: vec![item(
                    &format!("{pkg}/PkgURL"),
                    Some(Meta::format("chr")),
                    Some(Data::Text(format!("https://dl.example.com/pkg{i:03}.dd"))),
                )],
                ..ItemCommand::default()
            }),
            2 => Command::Add(ItemCommand {
                cmd_id,
                meta: Some(Meta::format("node")),
                items: vec![item(&format!("{pkg}/Ext/Vendor{i:03}"), None, None)],
                ..ItemCommand::default()
            }),
            _ => Command::Exec(Exec {
                cmd_id,
                correlator: Some(format!("corr-{i:03}")),
                items: vec![item(
                    &format!("{pkg}/Operations/DownloadInstall"),
                    None,
                    None,
                )],
                ..Exec::default()
            }),
        });
    }
    SyncMl {
        header,
        body: SyncBody {
            commands,
            is_final: true,
        },
    }
}

/// A large-object chunk (`OMA-TS-DM_Protocol-V1_2` §6.8): the first of
/// several 64 KiB chunks of a 1 MB package, Size on the first chunk.
fn lo_chunk() -> SyncMl {
    let header = header(3, "https://dm.example.com/omadm", "IMEI:490154203237518");
    // Deterministic bytes that neither compress nor happen to be UTF-8.
    let mut state = 0x2545_F491_4F6C_DD1D_u64;
    let payload: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[3]
        })
        .collect();
    let replace = ItemCommand {
        cmd_id: 4,
        items: vec![Item {
            target: Some(Location::uri("./SCOMO/Inventory/Delivered/pkg042/Data")),
            meta: Some(Meta {
                format: Some("bin".into()),
                r#type: Some("application/vnd.example.pkg".into()),
                size: Some(1_048_576),
                ..Meta::default()
            }),
            data: Some(Data::Binary(payload)),
            more_data: true,
            ..Item::default()
        }],
        ..ItemCommand::default()
    };
    SyncMl {
        header,
        body: SyncBody {
            commands: vec![Command::Replace(replace)],
            is_final: false,
        },
    }
}

fn bench_codec(c: &mut Criterion) {
    let limits = Limits::default();
    for case in cases() {
        for (enc, enc_name) in ENCODINGS {
            let bytes = encode(&case.msg, enc);
            assert_eq!(
                decode(&bytes, enc, &limits).as_ref(),
                Ok(&case.msg),
                "{} does not round-trip in {enc_name}",
                case.name
            );
            let mut group = c.benchmark_group(format!("{}/{enc_name}", case.name));
            group.throughput(Throughput::Bytes(bytes.len() as u64));
            group.bench_with_input(BenchmarkId::from_parameter("decode"), &bytes, |b, bytes| {
                b.iter(|| decode(black_box(bytes), enc, &limits))
            });
            group.bench_with_input(BenchmarkId::from_parameter("encode"), &case.msg, |b, m| {
                b.iter(|| encode(black_box(m), enc))
            });
            group.finish();
        }
    }
}

criterion_group!(benches, bench_codec);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // `cargo bench` passes --bench; `cargo test --benches` does not.
    if std::env::args().any(|a| a == "--bench") {
        summary_table();
    }
}

/// Messages/s and MB/s of every case, measured briefly on its own so that
/// they fit in one table (criterion prints one throughput per benchmark).
fn summary_table() {
    let filter = bench_filter();
    let limits = Limits::default();
    println!();
    println!(
        "{:<8} {:<6} {:>8} | {:>12} {:>9} | {:>12} {:>9}",
        "message", "enc", "bytes", "decode msg/s", "MB/s", "encode msg/s", "MB/s"
    );
    println!("{}", "-".repeat(76));
    for case in cases() {
        for (enc, enc_name) in ENCODINGS {
            let id = format!("{}/{enc_name}", case.name);
            if filter.as_ref().is_some_and(|f| !id.contains(f.as_str())) {
                continue;
            }
            let bytes = encode(&case.msg, enc);
            let dec = rate(|| drop(black_box(decode(black_box(&bytes), enc, &limits))));
            let enc_rate = rate(|| drop(black_box(encode(black_box(&case.msg), enc))));
            let mb = |per_s: f64| per_s * bytes.len() as f64 / 1e6;
            println!(
                "{:<8} {:<6} {:>8} | {:>12.0} {:>9.1} | {:>12.0} {:>9.1}",
                case.name,
                enc_name,
                bytes.len(),
                dec,
                mb(dec),
                enc_rate,
                mb(enc_rate)
            );
        }
    }
    println!("(MB = 1e6 bytes of the message in that encoding; single thread)");
}

/// The name filter criterion was given: the first argument that is neither
/// an option nor an option's value.
fn bench_filter() -> Option<String> {
    // Criterion 0.5 options that take a value.
    const WITH_VALUE: &[&str] = &[
        "--baseline",
        "--baseline-lenient",
        "--color",
        "--confidence-level",
        "--format",
        "--load-baseline",
        "--measurement-time",
        "--noise-threshold",
        "--nresamples",
        "--output-format",
        "--plotting-backend",
        "--profile-time",
        "--sample-size",
        "--save-baseline",
        "--significance-level",
        "--warm-up-time",
        "-b",
        "-c",
        "-s",
    ];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if WITH_VALUE.contains(&a.as_str()) {
            args.next();
        } else if !a.starts_with('-') {
            return Some(a);
        }
    }
    None
}

/// Calls per second of `f`, over about half a second.
fn rate(mut f: impl FnMut()) -> f64 {
    let budget = Duration::from_millis(500);
    // Warm up and size a batch to ~10 ms.
    let start = Instant::now();
    let mut batch = 1u64;
    while start.elapsed() < Duration::from_millis(10) {
        f();
        batch += 1;
    }
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < budget {
        for _ in 0..batch {
            f();
        }
        calls += batch;
    }
    calls as f64 / start.elapsed().as_secs_f64()
}
