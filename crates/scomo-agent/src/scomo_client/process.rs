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
}
