//! Hostile and broken packages: each refused with the right code, nothing
//! written outside the component directory, nothing installed.

use std::path::Path;

use scomo_agent::scomo_client::ScomoConfig;

use crate::common::*;

/// Pushes `bytes` as Delivered/<name> and Execs Install; returns the result.
async fn try_install(agent: &Agent, name: &str, bytes: &[u8], extra: &[(&str, &str)]) -> u16 {
    let mut leaves = vec![("PkgID", name)];
    leaves.extend_from_slice(extra);
    let st = agent.push_package(name, &leaves, bytes);
    assert!(st.iter().all(|s| s.0 == 200), "{st:?}");
    agent.exec(&delivered_uri(name, "Install"), name);
    agent.idle().await;
    agent.result(name)
}

fn assert_nothing_installed(agent: &Agent, dir: &Path) {
    assert!(agent.client.inventory().is_empty());
    assert!(names(&dir.join("components")).is_empty());
    assert!(!dir.join("evil").exists());
    assert!(!dir.join("scomo/evil").exists());
    assert_consistent(agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_archives_and_manifests_are_1405() {
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(dir.path(), config()).await;
    let log = dir.path().join("log");
    let good = package("g", &[comp("c.g", "1.0")], &log);

    assert_eq!(
        try_install(&agent, "random", b"this is not an archive", &[]).await,
        1405
    );
    let truncated = &good[..good.len() / 2];
    assert_eq!(try_install(&agent, "truncated", truncated, &[]).await, 1405);

    let mut e = entries("nomanifest", &[comp("c.n", "1.0")], &log);
    e.remove(0);
    assert_eq!(
        try_install(&agent, "nomanifest", &tar_gz(&e), &[]).await,
        1405
    );

    let mut e = entries("badmanifest", &[comp("c.m", "1.0")], &log);
    e[0].1 = b"[package]\nid = \"x\"\n".to_vec();
    assert_eq!(
        try_install(&agent, "badmanifest", &tar_gz(&e), &[]).await,
        1405
    );

    // A component folder missing from the archive.
    let mut e = entries("nodir", &[comp("c.o", "1.0")], &log);
    e.retain(|(p, _, _)| !p.starts_with("c.o"));
    assert_eq!(try_install(&agent, "nodir", &tar_gz(&e), &[]).await, 1405);

    // The Delivered Status tells the data is still there.
    assert_eq!(
        agent
            .value(&format!("{ROOT}/Inventory/Delivered/random/Status"))
            .as_deref(),
        Some("50")
    );
    assert_eq!(
        agent
            .value(&format!("{ROOT}/Inventory/Delivered/random/State"))
            .as_deref(),
        Some("10")
    );
    assert_nothing_installed(&agent, dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_traversal_and_escaping_symlinks_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(dir.path(), config()).await;
    let log = dir.path().join("log");
    let base = || entries("t", &[comp("c.t", "1.0")], &log);

    let cases: Vec<(&str, Entries)> = vec![
        ("dotdot", {
            let mut e = base();
            e.push(("c.t/../../evil".into(), b"x".to_vec(), 0o644));
            e
        }),
        ("dotdot2", {
            let mut e = base();
            e.push(("../evil".into(), b"x".to_vec(), 0o644));
            e
        }),
        ("absolute", {
            let mut e = base();
            e.push((
                format!("{}/evil", dir.path().display()),
                b"x".to_vec(),
                0o644,
            ));
            e
        }),
        ("abslink", {
            let mut e = base();
            e.push(("c.t/etc".into(), b"/etc".to_vec(), 0o120_777));
            e
        }),
        ("uplink", {
            let mut e = base();
            e.push(("c.t/up".into(), b"../../..".to_vec(), 0o120_777));
            e
        }),
        ("through-link", {
            // A link inside the root, then a file written "through" it.
            let mut e = base();
            e.push(("c.t/l".into(), b"hooks".to_vec(), 0o120_777));
            e.push(("c.t/l/x".into(), b"x".to_vec(), 0o644));
            e
        }),
        ("hardlink", {
            let mut e = base();
            e.push(("c.t/h".into(), b"c.t/VERSION".to_vec(), 0o110_644));
            e
        }),
        ("duplicate", {
            let mut e = base();
            e.push(("c.t/VERSION".into(), b"2.0".to_vec(), 0o644));
            e
        }),
    ];
    for (name, e) in cases {
        assert_eq!(
            try_install(&agent, name, &tar_gz(&e), &[]).await,
            1405,
            "{name}"
        );
    }
    // Zip packages get the same treatment.
    let mut e = base();
    e.push(("c.t/../../evil".into(), b"x".to_vec(), 0o644));
    assert_eq!(try_install(&agent, "zipdotdot", &zip(&e), &[]).await, 1405);
    let mut e = base();
    e.push(("c.t/out".into(), b"../../evil".to_vec(), 0o120_777));
    assert_eq!(try_install(&agent, "ziplink", &zip(&e), &[]).await, 1405);
    assert_nothing_installed(&agent, dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_symlinks_and_zip_packages_install() {
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(dir.path(), config()).await;
    let log = dir.path().join("log");
    let mut e = entries("z", &[comp("c.z", "1.0")], &log);
    e.push(("c.z/lib/libx.so.1".into(), b"lib".to_vec(), 0o644));
    e.push(("c.z/lib/libx.so".into(), b"libx.so.1".to_vec(), 0o120_777));
    e.push(("c.z/bin/tool".into(), b"../lib/libx.so".to_vec(), 0o120_777));
    assert_eq!(try_install(&agent, "zipok", &zip(&e), &[]).await, 1200);
    let d = agent.client.component_dir("c.z");
    assert_eq!(std::fs::read(d.join("bin/tool")).unwrap(), b"lib");
    assert_eq!(std::fs::read_to_string(d.join("VERSION")).unwrap(), "1.0");
    // Executable bits survive: the hooks ran.
    assert_eq!(hook_log(&log), ["activate c.z 1.0"]);
    assert_consistent(&agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_and_foreign_packages() {
    let cfg = ScomoConfig {
        max_extracted_bytes: 64 * 1024,
        ..config()
    };
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(dir.path(), cfg).await;
    let log = dir.path().join("log");
    let mut c = comp("c.big", "1.0");
    // Compresses to almost nothing; expands past the limit.
    c.extra.push(("zeros".into(), vec![0u8; 1024 * 1024]));
    let bomb = package("bomb", &[c], &log);
    assert!(bomb.len() < 64 * 1024);
    assert_eq!(try_install(&agent, "bomb", &bomb, &[]).await, 1406);
    // A package for another environment.
    let mut e = entries("deb", &[comp("c.deb", "1.0")], &log);
    e[0].1 = String::from_utf8(e[0].1.clone())
        .unwrap()
        .replace("env_type = \"archive\"", "env_type = \"deb\"")
        .into_bytes();
    assert_eq!(try_install(&agent, "deb", &tar_gz(&e), &[]).await, 1413);
    assert_nothing_installed(&agent, dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_failures_are_1407() {
    let cfg = ScomoConfig {
        trusted_keys: vec![trusted_key()],
        ..config()
    };
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(dir.path(), cfg).await;
    let log = dir.path().join("log");
    let bytes = package("v", &[comp("c.v", "1.0")], &log);
    let other = package("w", &[comp("c.w", "1.0")], &log);
    let sig = signature(&bytes);
    assert_eq!(try_install(&agent, "unsigned", &bytes, &[]).await, 1407);
    assert_eq!(
        try_install(
            &agent,
            "wrongsig",
            &bytes,
            &[("Ext/Signature", &signature(&other))]
        )
        .await,
        1407
    );
    assert_eq!(
        try_install(
            &agent,
            "wronghash",
            &bytes,
            &[("Ext/Signature", &sig), ("Ext/SHA256", &sha256_hex(&other))]
        )
        .await,
        1407
    );
    assert_eq!(
        try_install(
            &agent,
            "garbage",
            &bytes,
            &[("Ext/Signature", "not base64!")]
        )
        .await,
        1407
    );
    assert_nothing_installed(&agent, dir.path());
    assert_eq!(
        try_install(
            &agent,
            "signed",
            &bytes,
            &[("Ext/Signature", &sig), ("Ext/SHA256", &sha256_hex(&bytes))]
        )
        .await,
        1200
    );
    assert_consistent(&agent);
}
