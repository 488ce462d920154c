//! The `command` execution environment: integrator programs install,
//! activate, deactivate and remove.

use std::path::Path;

use omadm_wire::StatusCode;
use scomo_agent::scomo_client::{CommandEnvConfig, ScomoConfig};

use crate::common::*;

fn sh(script: String) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), script]
}

fn env_config(log: &Path) -> CommandEnvConfig {
    let log = log.display();
    CommandEnvConfig {
        env_type: "script".into(),
        install: sh(format!(
            "set -e\n\
             content=$(cat \"$SCOMO_PACKAGE\")\n\
             [ \"$content\" = fail ] && exit 3\n\
             echo \"install $SCOMO_PKG_ID $content $SCOMO_INSTALL_PARAMS\" >> '{log}'\n\
             echo \"cmd.one 4.2 Command One\"\n\
             echo \"cmd.two 1\"\n"
        )),
        activate: sh(format!(
            "echo \"activate $SCOMO_COMPONENT_ID $SCOMO_COMPONENT_VERSION\" >> '{log}'"
        )),
        deactivate: sh(format!(
            "echo \"deactivate $SCOMO_COMPONENT_ID\" >> '{log}'"
        )),
        remove: sh(format!("echo \"remove $SCOMO_COMPONENT_ID\" >> '{log}'")),
        install_space_bytes: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn programs_do_the_work() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("env.log");
    let cfg = ScomoConfig {
        environments: vec![env_config(&log)],
        ..config()
    };
    let agent = Agent::start(dir.path(), cfg).await;
    let st = agent.push_package(
        "s1",
        &[
            ("PkgID", "spkg"),
            ("EnvType", "script"),
            ("InstallParams", "mode=fast"),
        ],
        b"hello",
    );
    assert!(st.iter().all(|s| *s == StatusCode::OK), "{st:?}");
    agent.exec(&delivered_uri("s1", "Install"), "i1");
    agent.idle().await;
    let r = agent.report("i1");
    assert_eq!(r.items.len(), 2);
    assert!(r.items.iter().all(|i| i.result.0 == 1200));
    assert_eq!(
        agent.value(&deployed("cmd.one", "Version")).as_deref(),
        Some("4.2")
    );
    assert_eq!(
        agent.value(&deployed("cmd.one", "Name")).as_deref(),
        Some("Command One")
    );
    assert_eq!(
        agent.value(&deployed("cmd.two", "Name")).as_deref(),
        Some("cmd.two")
    );
    assert_eq!(
        agent.value(&deployed("cmd.one", "State")).as_deref(),
        Some("20")
    );
    agent.exec(&deployed_uri("cmd.one", "Remove"), "r1");
    agent.idle().await;
    assert_eq!(agent.result("r1"), 1200);
    assert!(!agent.exists(&deployed("cmd.one", "ID")));
    assert_eq!(
        hook_log(&log),
        [
            "install spkg hello mode=fast",
            "activate cmd.one 4.2",
            "activate cmd.two 1",
            "deactivate cmd.one",
            "remove cmd.one",
        ]
    );
    let ids: Vec<_> = agent.client.inventory().into_iter().map(|c| c.id).collect();
    assert_eq!(ids, ["cmd.two"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_and_space() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("env.log");
    let mut roomy = env_config(&log);
    roomy.env_type = "huge".into();
    roomy.install_space_bytes = u64::MAX / 2;
    let cfg = ScomoConfig {
        environments: vec![env_config(&log), roomy],
        ..config()
    };
    let agent = Agent::start(dir.path(), cfg).await;
    agent.push_package("f1", &[("PkgID", "f"), ("EnvType", "script")], b"fail");
    agent.exec(&delivered_uri("f1", "Install"), "f1");
    agent.push_package("h1", &[("PkgID", "h"), ("EnvType", "HUGE")], b"hello");
    agent.exec(&delivered_uri("h1", "Install"), "h1");
    agent.idle().await;
    assert_eq!(agent.result("f1"), 1405);
    // Not enough room: refused before the program runs.
    assert_eq!(agent.result("h1"), 1406);
    assert_eq!(
        agent
            .value(&format!("{ROOT}/Inventory/Delivered/h1/Status"))
            .as_deref(),
        Some("50")
    );
    assert!(hook_log(&log).is_empty());
    assert!(agent.client.inventory().is_empty());
}
