//! `scomo admin package ...` against a real `scomo server`: the example
//! package built with `scomo package build`, uploaded (streamed), listed,
//! shown, downloaded from `/dl` and deleted.

use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::harness::{run, Server};

#[tokio::test]
async fn upload_list_show_download_delete_the_example_package() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("hello-1.0.0.tar.gz");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello");
    let out = run(&[
        "package".into(),
        "build".into(),
        example.display().to_string(),
        "-o".into(),
        pkg.display().to_string(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&pkg).unwrap();
    let sha: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();

    let data = dir.path().join("server");
    let server = Server::start(&data, &[]);
    let v = server.admin(&["package", "upload", pkg.to_str().unwrap()]);
    assert_eq!(v["pkg_id"], "com.example.hello-1.0.0");
    assert_eq!(v["version"], "1.0.0");
    assert_eq!(v["sha256"], sha.as_str());
    assert_eq!(v["size"], bytes.len() as u64);
    assert_eq!(v["components"][0]["id"], "com.example.hello");
    assert!(data.join("packages").join(format!("{sha}.pkg")).exists());
    // Uploading again is harmless.
    let again = server.admin(&["package", "upload", pkg.to_str().unwrap()]);
    assert_eq!(again, v);

    let list = server.admin(&["package", "list"]);
    let pkgs = list["packages"].as_array().unwrap();
    assert_eq!(pkgs.len(), 1);
    assert_eq!(pkgs[0]["pkg_id"], "com.example.hello-1.0.0");
    let shown = server.admin(&["package", "show", "com.example.hello-1.0.0"]);
    assert_eq!(shown, v);

    // Human output names the package too.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scomo"))
        .args(["admin", "--server", &server.url, "package", "list"])
        .env("SCOMO_TOKEN", &server.token)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("com.example.hello-1.0.0") && text.contains(&sha),
        "{text}"
    );

    // A download URL serves the same bytes.
    let http = reqwest::Client::new();
    let d: serde_json::Value = http
        .post(format!(
            "{}/api/v1/packages/com.example.hello-1.0.0/download-url?ttl_secs=1",
            server.url
        ))
        .bearer_auth(&server.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let got = http
        .get(d["url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.as_ref(), bytes.as_slice());

    // Bad input is reported with the server's message.
    let junk = dir.path().join("junk.tar.gz");
    std::fs::write(&junk, b"junk").unwrap();
    let out = server.admin_raw(&["package", "upload", junk.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("400") && err.contains("not a tar.gz"), "{err}");
    let out = server.admin_raw(&["package", "show", "nope"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));

    // Deleting is refused while the URL is live, and works once the
    // package is no longer in use (the one-second URL expires).
    let out = server.admin_raw(&["package", "delete", "com.example.hello-1.0.0"]);
    if !out.status.success() {
        assert!(String::from_utf8_lossy(&out.stderr).contains("409"));
        crate::harness::eventually(10, "the download URL to expire", || async {
            server
                .admin_raw(&["package", "delete", "com.example.hello-1.0.0"])
                .status
                .success()
                .then_some(())
        })
        .await;
    }
    let list = server.admin(&["package", "list"]);
    assert!(list["packages"].as_array().unwrap().is_empty());
    assert!(!data.join("packages").join(format!("{sha}.pkg")).exists());
}
