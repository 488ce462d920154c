//! Running hooks, environment programs and the confirmation command: a
//! bounded run time, a bounded captured output, no shell.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Most stdout kept from a program.
const MAX_OUTPUT: u64 = 64 * 1024;

/// How a program ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Finished {
    pub(crate) success: bool,
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
}

/// Runs `argv` (program and arguments) with `env` added to the agent's
/// environment, in `cwd` if given, killing it after `timeout`.
pub(crate) fn run(
    argv: &[String],
    env: &[(&str, String)],
    cwd: Option<&Path>,
    timeout: Duration,
) -> Result<Finished, String> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| "no program configured".to_owned())?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    // A group of its own, so that a timeout ends what it started as well
    // (a script's children would go on running, holding its output open).
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    let stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        if let Some(s) = stdout {
            let mut limited = s.take(MAX_OUTPUT);
            let _ = limited.read_to_string(&mut out);
            // Drain the rest so the child never blocks on a full pipe.
            let _ = std::io::copy(&mut limited.into_inner(), &mut std::io::sink());
        }
        out
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if start.elapsed() >= timeout => {
                kill_group(&child);
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program} did not finish within {timeout:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("waiting for {program}: {e}")),
        }
    };
    let stdout = reader.join().unwrap_or_default();
    Ok(Finished {
        success: status.success(),
        code: status.code(),
        stdout,
    })
}

/// Kills the child's process group (the child leads it: `process_group(0)`).
fn kill_group(child: &std::process::Child) {
    use rustix::process::{kill_process_group, Pid, Signal};
    let pid = Pid::from_child(child);
    // kill(-1) would signal every process we may signal: never.
    if pid != Pid::INIT {
        let _ = kill_process_group(pid, Signal::KILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["/bin/sh".into(), "-c".into(), script.into()]
    }

    #[test]
    fn runs_and_captures() {
        let f = run(
            &sh("echo \"$X\"; exit 3"),
            &[("X", "hi".into())],
            None,
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(
            (f.success, f.code, f.stdout.as_str()),
            (false, Some(3), "hi\n")
        );
        let err = run(&sh("sleep 5"), &[], None, Duration::from_millis(100)).unwrap_err();
        assert!(err.contains("did not finish"), "{err}");
        assert!(run(&[], &[], None, Duration::from_secs(1)).is_err());
        assert!(run(
            &["/nonexistent/prog".into()],
            &[],
            None,
            Duration::from_secs(1)
        )
        .is_err());
    }

    #[test]
    fn a_timeout_ends_what_the_program_started() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        // The shell waits on a child of its own, which holds its stdout.
        let script = format!("sleep 60 & echo $! > {}; wait", pidfile.display());
        let err = run(&sh(&script), &[], None, Duration::from_millis(1500)).unwrap_err();
        assert!(err.contains("did not finish"), "{err}");
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // SIGKILL was sent to the group before run returned: the child is
        // dead (a zombie until its new parent reaps it) or gone. Polled, as
        // the kernel finishes the kill asynchronously.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit(')')
                        .next()
                        .and_then(|r| r.split_whitespace().next())
                        .map(str::to_owned)
                });
            match state.as_deref() {
                None | Some("Z" | "X") => break,
                Some(s) => assert!(Instant::now() < deadline, "sleep {pid} still {s}"),
            }
            std::thread::yield_now();
        }
    }
}
