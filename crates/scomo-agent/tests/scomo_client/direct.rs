//! Direct delivery through `Tree::apply`: Add Delivered/<x>, Replace Data
//! (the complete large object as the session hands it over), Exec Install.

use omadm_wire::model::{Command, Data, Item, ItemCommand, Location, Meta};
use omadm_wire::StatusCode;
use scomo_agent::scomo_client::ScomoConfig;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_then_install() {
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(dir.path(), config()).await;
    let bytes = package("direct", &[comp("c.d", "3.1")], &dir.path().join("log"));
    let st = agent.push_package(
        "d1",
        &[
            ("PkgID", "direct"),
            ("Name", "Direct"),
            ("Ext/SHA256", &sha256_hex(&bytes)),
        ],
        &bytes,
    );
    assert!(st.iter().all(|s| *s == StatusCode::OK), "{st:?}");
    let base = format!("{ROOT}/Inventory/Delivered/d1");
    // Data is on disk, not in the tree, and cannot be read back.
    assert_eq!(
        std::fs::read(dir.path().join("scomo/packages/d1.pkg")).unwrap(),
        bytes
    );
    assert_eq!(agent.value(&format!("{base}/Data")).as_deref(), Some(""));
    assert_eq!(
        agent.status(get(&format!("{base}/Data"))),
        StatusCode::COMMAND_NOT_ALLOWED
    );
    assert_eq!(agent.value(&format!("{base}/State")).as_deref(), Some("10"));
    assert_eq!(
        agent.value(&format!("{base}/Status")).as_deref(),
        Some("10")
    );
    assert_eq!(
        agent.exec(&delivered_uri("d1", "Install"), "i1"),
        StatusCode::ACCEPTED
    );
    agent.idle().await;
    let r = agent.report("i1");
    assert_eq!(r.items[0].result.0, 1200);
    assert_eq!(
        r.items[0].source_uri.as_deref(),
        Some("./SCOMO/Inventory/Delivered/d1/Operations/Install")
    );
    assert_eq!(
        r.items[0].target_uri.as_deref(),
        Some("./SCOMO/Inventory/Deployed/c.d")
    );
    assert_eq!(agent.value(&format!("{base}/State")).as_deref(), Some("20"));
    assert_eq!(
        agent.value(&deployed("c.d", "Version")).as_deref(),
        Some("3.1")
    );
    assert_eq!(
        agent.value(&deployed("c.d", "PkgIDRef")).as_deref(),
        Some("direct")
    );
    assert_consistent(&agent);
    // Deleting the entry deletes the package file.
    assert_eq!(agent.status(delete(&base)), StatusCode::OK);
    assert!(!dir.path().join("scomo/packages/d1.pkg").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_in_base64_and_in_separate_commands() {
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(dir.path(), config()).await;
    let bytes = package("b64", &[comp("c.b", "1.0")], &dir.path().join("log"));
    let base = format!("{ROOT}/Inventory/Delivered/b 64");
    assert_eq!(agent.status(add_node(&base)), StatusCode::OK);
    assert_eq!(
        agent.status(add(&format!("{base}/PkgID"), "b64")),
        StatusCode::OK
    );
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let cmd = Command::Replace(ItemCommand {
        cmd_id: 1,
        items: vec![Item {
            target: Some(Location::uri(format!("{base}/Data"))),
            meta: Some(Meta::format_type("b64", "application/gzip")),
            data: Some(Data::Text(text)),
            ..Item::default()
        }],
        ..ItemCommand::default()
    });
    assert_eq!(agent.status(cmd), StatusCode::OK);
    agent.exec(&format!("{base}/Operations/InstallInactive"), "i1");
    agent.idle().await;
    assert_eq!(agent.result("i1"), 1200);
    assert_eq!(
        agent.value(&deployed("c.b", "State")).as_deref(),
        Some("10")
    );
    assert_consistent(&agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_push_is_413() {
    let cfg = ScomoConfig {
        max_package_bytes: 100,
        ..config()
    };
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(dir.path(), cfg).await;
    let st = agent.push_package("d1", &[("PkgID", "x")], &[1u8; 500]);
    assert_eq!(st[0], StatusCode::ATOMIC_FAILED);
    assert!(st.contains(&StatusCode::REQUEST_ENTITY_TOO_LARGE), "{st:?}");
    // The Atomic rolled back: no entry, no file.
    assert!(!agent.exists(&format!("{ROOT}/Inventory/Delivered/d1")));
    assert!(names(&dir.path().join("scomo/packages")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushing_into_a_busy_entry_is_refused() {
    let cfg = ScomoConfig {
        confirm: scomo_agent::scomo_client::ConfirmConfig {
            default: scomo_agent::scomo_client::ConfirmPolicy::Command,
            command: vec![
                "/bin/sh".into(),
                "-c".into(),
                // Holds the operation until the test lets it go.
                format!("while [ ! -e '{}' ]; do sleep 0.02; done", "GO_FILE"),
            ],
            ..Default::default()
        },
        ..config()
    };
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let mut cfg = cfg;
    cfg.confirm.command[2] = cfg.confirm.command[2].replace("GO_FILE", &go.display().to_string());
    let agent = Agent::start(dir.path(), cfg).await;
    let bytes = package("busy", &[comp("c.x", "1.0")], &dir.path().join("log"));
    agent.push_package("d1", &[("PkgID", "busy")], &bytes);
    assert_eq!(
        agent.exec(&delivered_uri("d1", "Install"), "i1"),
        StatusCode::ACCEPTED
    );
    let base = format!("{ROOT}/Inventory/Delivered/d1");
    assert_eq!(
        agent.value(&format!("{base}/Status")).as_deref(),
        Some("40")
    );
    assert_eq!(
        agent.status(replace_bin(&format!("{base}/Data"), b"new")),
        StatusCode::CONFLICT
    );
    assert_eq!(
        agent.exec(&delivered_uri("d1", "Remove"), "r1"),
        StatusCode::CONFLICT
    );
    std::fs::write(&go, b"").unwrap();
    agent.idle().await;
    assert_eq!(agent.result("i1"), 1200);
    assert_consistent(&agent);
}
