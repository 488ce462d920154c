//! The README's quickstart, line by line, as a user would type it: so it
//! cannot rot. `scomo server &` is started by the harness (it waits for the
//! "listening on" line; a user waits by reading it); every other line runs
//! in one bash script in a fresh directory, with the server's real port and
//! a free UDP port for package 0.

use std::path::Path;
use std::process::Command;

use crate::harness::{free_udp_port, Server, BIN};

/// The shell block under "## A device in two minutes", continuation lines
/// joined, comments dropped.
fn quickstart(readme: &str) -> Vec<String> {
    let start = readme
        .find("## A device in two minutes")
        .expect("the quickstart section");
    let rest = &readme[start..];
    let open = rest.find("```sh\n").expect("its sh block") + "```sh\n".len();
    let close = open + rest[open..].find("```").expect("the block's end");
    let mut lines = Vec::new();
    let mut pending = String::new();
    for line in rest[open..close].lines() {
        let line = match line.find("  #") {
            Some(i) => &line[..i],
            None => line,
        }
        .trim_end();
        match line.strip_suffix('\\') {
            Some(part) => pending.push_str(part),
            None => {
                pending.push_str(line);
                if !pending.trim().is_empty() {
                    lines.push(pending.split_whitespace().collect::<Vec<_>>().join(" "));
                }
                pending.clear();
            }
        }
    }
    lines
}

#[test]
fn the_readme_quickstart_installs_an_active_component() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let lines = quickstart(&readme);
    assert_eq!(lines.first().map(String::as_str), Some("scomo server &"));
    assert!(lines
        .iter()
        .any(|l| l.contains("job create") && l.contains("--wait")));

    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(root.join("examples"), dir.path().join("examples")).unwrap();
    let server = Server::start(&dir.path().join("scomo-data"), &[]);
    let notify = format!("127.0.0.1:{}", free_udp_port());
    let mut script =
        String::from("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n");
    for l in &lines[1..] {
        script.push_str(
            &l.replace("http://127.0.0.1:8080", &server.url)
                .replace("127.0.0.1:7001", &notify),
        );
        script.push('\n');
    }
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("timeout")
        .args(["120", "bash", "-c", &script])
        .current_dir(dir.path())
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .env_remove("SCOMO_URL")
        .env_remove("SCOMO_TOKEN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the quickstart failed:\n{script}\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- server\n{}",
        server.log()
    );
    assert!(stdout.contains("succeeded"), "{stdout}");
    let inventory = stdout
        .lines()
        .find(|l| l.starts_with("deployed") && l.contains("com.example.hello"))
        .unwrap_or_else(|| panic!("no inventory line for the component:\n{stdout}"));
    assert!(
        inventory.contains("1.0.0") && inventory.contains("active"),
        "{inventory}"
    );
    assert!(dir
        .path()
        .join("agent-data/components/com.example.hello")
        .is_dir());
}
