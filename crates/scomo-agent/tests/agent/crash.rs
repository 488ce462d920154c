//! kill -9 while the tree is being written: on restart it is the old or the
//! new tree, never a broken one.
//!
//! The test binary re-runs itself as the writer child (env
//! `SCOMO_TREE_WRITER_DIR`), which saves two alternating trees in a loop and
//! reports each save on stdout; the parent kills it after a varying number
//! of saves, so the kill lands at different points of a write.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use scomo_agent::config::{AgentConfig, AuthKind, EncodingKind};
use scomo_agent::device::DeviceState;

fn config(dir: &std::path::Path) -> AgentConfig {
    let mut c = super::config(
        "http://127.0.0.1:9/dm",
        dir,
        AuthKind::Md5,
        EncodingKind::Xml,
    );
    c.agent.data_dir = dir.to_owned();
    c
}

/// The child: alternates a big value between "A…" and "B…" forever.
#[test]
fn tree_writer_child() {
    let Ok(dir) = std::env::var("SCOMO_TREE_WRITER_DIR") else {
        return; // Only meaningful when started by the parent below.
    };
    let dir = std::path::PathBuf::from(dir);
    let mut state = DeviceState::open(&dir, &config(&dir)).unwrap();
    for i in 0u64.. {
        let fill = if i.is_multiple_of(2) { "A" } else { "B" };
        state
            .tree
            .set_leaf(
                "./Vendor/Big",
                fill.repeat(200_000),
                omadm_tree::Format::Chr,
            )
            .unwrap();
        state
            .tree
            .set_leaf("./Vendor/Counter", i.to_string(), omadm_tree::Format::Chr)
            .unwrap();
        state.save().unwrap();
        println!("saved {i}");
    }
}

#[test]
fn killed_while_writing_the_tree_leaves_old_or_new() {
    for kill_after in [1usize, 3, 7, 12] {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "crash::tree_writer_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("SCOMO_TREE_WRITER_DIR", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut saves = 0;
        while saves < kill_after {
            let line = lines.next().expect("the writer exited early").unwrap();
            if line.starts_with("saved ") {
                saves += 1;
            }
        }
        child.kill().unwrap(); // SIGKILL: no cleanup runs.
        child.wait().unwrap();
        let state = DeviceState::open(dir.path(), &config(dir.path())).expect("the tree reopens");
        let big = state.tree.value_str("./Vendor/Big").expect("a saved value");
        assert!(
            big.len() == 200_000
                && (big.bytes().all(|b| b == b'A') || big.bytes().all(|b| b == b'B'))
        );
        let counter: u64 = state
            .tree
            .value_str("./Vendor/Counter")
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            big.starts_with('A'),
            counter.is_multiple_of(2),
            "value and counter come from one save"
        );
        assert!(counter + 1 >= kill_after as u64);
    }
}
