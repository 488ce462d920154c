//! Indirect delivery against a real local HTTP server: resume, errors,
//! OMA Download OTA descriptors with install-notify, validation.

use omadm_wire::StatusCode;
use scomo::dlota::DownloadDescriptor;
use scomo_agent::scomo_client::{CrashMode, ScomoConfig};

use crate::common::*;

fn dd(object: &str, size: u64, notify: Option<&str>) -> String {
    DownloadDescriptor {
        dd_version: Some("1.0".into()),
        name: Some("pkg".into()),
        types: vec!["application/x-scomo-package".into()],
        size,
        object_uri: object.into(),
        install_notify_uri: notify.map(str::to_owned),
        ..DownloadDescriptor::default()
    }
    .to_xml()
}

async fn start(cfg: ScomoConfig) -> (tempfile::TempDir, Http, Agent) {
    let dir = tempfile::tempdir().unwrap();
    let http = Http::start().await;
    let agent = Agent::start(dir.path(), cfg).await;
    (dir, http, agent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_a_broken_transfer_with_range() {
    let (dir, http, agent) = start(config()).await;
    let mut c = comp("c.big", "1.0");
    c.extra.push((
        "blob".into(),
        (0..200_000u32).map(|i| (i % 251) as u8).collect(),
    ));
    let bytes = package("big", &[c], &dir.path().join("log"));
    http.serve(
        "big",
        Served {
            body: bytes.clone(),
            break_after: Some(bytes.len() / 2),
            ..Served::default()
        },
    );
    agent.add_download(
        "big",
        &[
            ("PkgID", "big"),
            ("PkgURL", &http.url("/pkg/big")),
            ("Ext/SHA256", &sha256_hex(&bytes)),
        ],
    );
    agent.exec(&download_uri("big", "DownloadInstall"), "c1");
    agent.idle().await;
    assert_eq!(agent.result("c1"), 1200);
    let seen = http.seen_path("/pkg/big");
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].range, None);
    let resumed_at: usize = seen[1]
        .range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|r| r.parse().ok())
        .expect("a Range header");
    assert!(resumed_at > 0 && resumed_at < bytes.len(), "{resumed_at}");
    assert_eq!(seen[1].if_range.as_deref(), Some("\"v1\""));
    assert_consistent(&agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_across_an_agent_restart() {
    let dir = tempfile::tempdir().unwrap();
    let http = Http::start().await;
    let log = dir.path().join("log");
    let mut c = comp("c.big", "1.0");
    c.extra.push(("blob".into(), noise(100_000, 2)));
    let bytes = package("big", &[c], &log);
    http.serve(
        "big",
        Served {
            body: bytes.clone(),
            gate_after: Some(30_000),
            ..Served::default()
        },
    );
    let agent = Agent::start_with(
        dir.path(),
        config(),
        CrashMode::Halt("download-chunk".into()),
    )
    .await;
    agent.add_download(
        "big",
        &[("PkgID", "big"), ("PkgURL", &http.url("/pkg/big"))],
    );
    agent.exec(&download_uri("big", "DownloadInstall"), "c1");
    let mut halted = agent.client.halted();
    halted.wait_for(|h| h.is_some()).await.unwrap();
    agent.stop().await;
    let part = std::fs::read(dir.path().join("scomo/downloads/1.part")).unwrap();
    assert!(!part.is_empty() && part.len() < bytes.len());
    // The restarted agent sends the rest (the gate no longer holds it).
    http.serve(
        "big",
        Served {
            body: bytes.clone(),
            ..Served::default()
        },
    );
    let agent = Agent::start(dir.path(), config()).await;
    agent.idle().await;
    assert_eq!(agent.result("c1"), 1200);
    let seen = http.seen_path("/pkg/big");
    assert_eq!(
        seen.last().and_then(|s| s.range.clone()),
        Some(format!("bytes={}-", part.len()))
    );
    assert_consistent(&agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_errors_map_to_result_codes() {
    let cfg = ScomoConfig {
        download_retries: 1,
        ..config()
    };
    let (_dir, http, agent) = start(cfg).await;
    for (name, status, code) in [
        ("nf", 404, 1402),
        ("auth", 401, 1403),
        ("forbidden", 403, 1403),
        ("boom", 500, 1500),
    ] {
        http.serve(
            name,
            Served {
                status: Some(status),
                ..Served::default()
            },
        );
        agent.add_download(
            name,
            &[
                ("PkgID", name),
                ("PkgURL", &http.url(&format!("/pkg/{name}"))),
            ],
        );
        agent.exec(&download_uri(name, "Download"), name);
        agent.idle().await;
        assert_eq!(agent.result(name), code, "{name}");
        assert_eq!(
            agent
                .value(&format!("{ROOT}/Download/{name}/Status"))
                .as_deref(),
            Some("20"),
            "{name}"
        );
    }
    // 5xx is retried (once here) before giving up; 4xx is not.
    assert_eq!(http.seen_path("/pkg/boom").len(), 2);
    assert_eq!(http.seen_path("/pkg/nf").len(), 1);
    // Nobody listening: 1501.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/pkg/x", closed.local_addr().unwrap());
    drop(closed);
    agent.add_download("gone", &[("PkgID", "gone"), ("PkgURL", &url)]);
    agent.exec(&download_uri("gone", "DownloadInstall"), "gone");
    agent.idle().await;
    assert_eq!(agent.result("gone"), 1501);
    assert!(names(&agent.dir.join("scomo/downloads")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_from_the_url() {
    let (dir, http, agent) = start(config()).await;
    let bytes = package("auth", &[comp("c.auth", "1.0")], &dir.path().join("log"));
    http.serve(
        "auth",
        Served {
            body: bytes,
            // user:pass
            auth: Some("Basic dXNlcjpwYXNz".into()),
            ..Served::default()
        },
    );
    let url = format!("http://user:pass@{}/pkg/auth", http.addr);
    agent.add_download("ok", &[("PkgID", "auth"), ("PkgURL", &url)]);
    agent.exec(&download_uri("ok", "DownloadInstall"), "ok");
    let wrong = format!("http://user:nope@{}/pkg/auth", http.addr);
    agent.add_download("bad", &[("PkgID", "auth"), ("PkgURL", &wrong)]);
    agent.exec(&download_uri("bad", "Download"), "bad");
    agent.idle().await;
    assert_eq!(agent.result("ok"), 1200);
    assert_eq!(agent.result("bad"), 1403);
    assert_consistent(&agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_descriptor_with_install_notify() {
    let (dir, http, agent) = start(config()).await;
    let bytes = package("ddp", &[comp("c.dd", "1.0")], &dir.path().join("log"));
    http.serve(
        "obj",
        Served {
            body: bytes.clone(),
            content_type: Some("application/x-scomo-package".into()),
            ..Served::default()
        },
    );
    // A relative objectURI, resolved against the descriptor's URL.
    let dd_url = http.serve_dd(
        "d1",
        dd(
            "../pkg/obj",
            bytes.len() as u64,
            Some(&http.url("/notify/d1")),
        ),
    );
    agent.add_download("d1", &[("PkgID", "ddp"), ("PkgURL", &dd_url)]);
    agent.exec(&download_uri("d1", "DownloadInstall"), "c1");
    agent.idle().await;
    assert_eq!(agent.result("c1"), 1200);
    let notes = http.seen_path("/notify/d1");
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].body, "900 Success\n");
    assert_eq!(http.seen_path("/pkg/obj").len(), 1);
    assert_consistent(&agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn descriptor_failures() {
    let (dir, http, agent) = start(config()).await;
    let bytes = package("ddp", &[comp("c.dd", "1.0")], &dir.path().join("log"));
    http.serve(
        "obj",
        Served {
            body: bytes.clone(),
            content_type: Some("application/x-scomo-package".into()),
            ..Served::default()
        },
    );
    // Wrong size: 905 to install-notify, 1402 to the server.
    let url = http.serve_dd(
        "size",
        dd(
            &http.url("/pkg/obj"),
            bytes.len() as u64 + 1,
            Some(&http.url("/notify/size")),
        ),
    );
    agent.add_download("size", &[("PkgID", "ddp"), ("PkgURL", &url)]);
    agent.exec(&download_uri("size", "DownloadInstall"), "size");
    agent.idle().await;
    assert_eq!(agent.result("size"), 1402);
    assert_eq!(
        http.seen_path("/notify/size")[0].body,
        "905 Attribute mismatch\n"
    );
    // An invalid descriptor (no size): 1402, nothing fetched.
    let bad = dd(&http.url("/pkg/obj"), 5, None).replace("<size>5</size>", "");
    let url = http.serve_dd("bad", bad);
    agent.add_download("bad", &[("PkgID", "ddp"), ("PkgURL", &url)]);
    agent.exec(&download_uri("bad", "Download"), "bad");
    agent.idle().await;
    assert_eq!(agent.result("bad"), 1402);
    // The package fails validation: 952 to install-notify, 1407.
    let url = http.serve_dd(
        "sig",
        dd(
            &http.url("/pkg/obj"),
            bytes.len() as u64,
            Some(&http.url("/notify/sig")),
        ),
    );
    agent.add_download(
        "sig",
        &[
            ("PkgID", "ddp"),
            ("PkgURL", &url),
            ("Ext/SHA256", &sha256_hex(b"other")),
        ],
    );
    agent.exec(&download_uri("sig", "DownloadInstall"), "sig");
    agent.idle().await;
    assert_eq!(agent.result("sig"), 1407);
    assert_eq!(
        http.seen_path("/notify/sig")[0].body,
        "952 Device Aborted\n"
    );
    assert_eq!(
        agent
            .value(&format!("{ROOT}/Download/sig/Status"))
            .as_deref(),
        Some("20")
    );
    assert!(agent.client.inventory().is_empty());
    assert_consistent(&agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_when_a_key_is_trusted() {
    let cfg = ScomoConfig {
        trusted_keys: vec![trusted_key()],
        ..config()
    };
    let (dir, http, agent) = start(cfg).await;
    let log = dir.path().join("log");
    let good = package("good", &[comp("c.good", "1.0")], &log);
    let url = http.serve_bytes("good", good.clone());
    agent.add_download(
        "good",
        &[
            ("PkgID", "good"),
            ("PkgURL", &url),
            ("Ext/Signature", &signature(&good)),
        ],
    );
    agent.exec(&download_uri("good", "DownloadInstall"), "good");
    let unsigned = package("unsigned", &[comp("c.u", "1.0")], &log);
    let url = http.serve_bytes("unsigned", unsigned);
    agent.add_download("unsigned", &[("PkgID", "unsigned"), ("PkgURL", &url)]);
    agent.exec(&download_uri("unsigned", "DownloadInstall"), "unsigned");
    let forged = package("forged", &[comp("c.f", "1.0")], &log);
    let url = http.serve_bytes("forged", forged);
    agent.add_download(
        "forged",
        &[
            ("PkgID", "forged"),
            ("PkgURL", &url),
            ("Ext/Signature", &signature(&good)),
        ],
    );
    agent.exec(&download_uri("forged", "DownloadInstall"), "forged");
    agent.idle().await;
    assert_eq!(agent.result("good"), 1200);
    assert_eq!(agent.result("unsigned"), 1407);
    assert_eq!(agent.result("forged"), 1407);
    let ids: Vec<_> = agent.client.inventory().into_iter().map(|c| c.id).collect();
    assert_eq!(ids, ["c.good"]);
    assert_consistent(&agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_download_is_1404() {
    let cfg = ScomoConfig {
        max_package_bytes: 1000,
        ..config()
    };
    let (_dir, http, agent) = start(cfg).await;
    let url = http.serve_bytes("big", vec![0u8; 5000]);
    agent.add_download("big", &[("PkgID", "big"), ("PkgURL", &url)]);
    assert_eq!(
        agent.exec(&download_uri("big", "Download"), "c1"),
        StatusCode::ACCEPTED
    );
    agent.idle().await;
    assert_eq!(agent.result("c1"), 1404);
    assert!(names(&agent.dir.join("scomo/downloads")).is_empty());
}
