//! `/api/v1/packages`: uploads streamed to disk, metadata from the manifest,
//! idempotent re-upload, conflicts, bad archives, delete.

use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::harness::{status_json, Builder, TestApp};

/// A manifest for `id` with one component.
pub(crate) fn manifest(id: &str) -> String {
    format!(
        "[package]\nid = \"{id}\"\nname = \"Pkg {id}\"\nenv_type = \"archive\"\nversion = \"2.1\"\n\n\
         [[component]]\nid = \"{id}.svc\"\nname = \"Service\"\nversion = \"2.1.0\"\ndir = \"svc\"\n"
    )
}

/// `len` bytes that do not compress.
pub(crate) fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A tar.gz with `manifest` (if any) at its root and a payload file.
pub(crate) fn targz(manifest: Option<&str>, payload: &[u8]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let mut add = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, path, data).unwrap();
    };
    if let Some(m) = manifest {
        add("scomo-package.toml", m.as_bytes());
    }
    add("svc/payload.bin", payload);
    tar.into_inner().unwrap().finish().unwrap()
}

/// A valid package for `id`.
pub(crate) fn package(id: &str, payload_len: usize, seed: u64) -> Vec<u8> {
    targz(Some(&manifest(id)), &noise(payload_len, seed))
}

pub(crate) fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// POSTs `body` to `/api/v1/packages[?query]`.
pub(crate) async fn upload(app: &TestApp, body: Vec<u8>, query: &str) -> (u16, Value) {
    let r = app
        .http
        .post(app.api(&format!("/packages{query}")))
        .bearer_auth(&app.token)
        .header("content-type", "application/gzip")
        .body(body)
        .send()
        .await
        .expect("upload");
    status_json(r).await
}

pub(crate) async fn delete(app: &TestApp, pkg_id: &str) -> (u16, Value) {
    let r = app
        .http
        .delete(app.api(&format!("/packages/{pkg_id}")))
        .bearer_auth(&app.token)
        .send()
        .await
        .expect("DELETE");
    status_json(r).await
}

/// Files in `<data_dir>/packages`.
fn package_files(app: &TestApp) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(app.data_dir().join("packages"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn upload_show_list_reupload_delete() {
    let app = TestApp::start().await;
    let bytes = package("com.example.a-2.1", 10_000, 1);
    let sha = sha256_hex(&bytes);
    let sig = base64::engine::general_purpose::STANDARD.encode([9u8; 64]);
    let (status, v) = upload(
        &app,
        bytes.clone(),
        &format!(
            "?signature={}",
            sig.replace('+', "%2B")
                .replace('/', "%2F")
                .replace('=', "%3D")
        ),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["pkg_id"], "com.example.a-2.1");
    assert_eq!(v["name"], "Pkg com.example.a-2.1");
    assert_eq!(v["version"], "2.1");
    assert_eq!(v["env_type"], "archive");
    assert_eq!(v["pkg_type"], "application/gzip");
    assert_eq!(v["size"], bytes.len() as u64);
    assert_eq!(v["sha256"], sha.as_str());
    assert_eq!(v["signature"], sig.as_str());
    assert_eq!(
        v["components"],
        serde_json::json!([{"id": "com.example.a-2.1.svc", "name": "Service", "version": "2.1.0"}])
    );
    assert!(v["created_at"].as_str().unwrap().ends_with('Z'));
    // The file is on disk under its digest, and nothing else is left there.
    assert_eq!(package_files(&app), [format!("{sha}.pkg")]);
    let on_disk =
        std::fs::read(app.data_dir().join("packages").join(format!("{sha}.pkg"))).unwrap();
    assert_eq!(on_disk, bytes);

    let (status, shown) = app.get("/packages/com.example.a-2.1").await;
    assert_eq!(status, 200);
    assert_eq!(shown, v);

    // The same bytes again: the existing record, 200.
    let (status, again) = upload(&app, bytes.clone(), "").await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again, v);
    // The same PkgID with other content: 409, and the first one stays.
    let (status, e) = upload(&app, package("com.example.a-2.1", 10_000, 2), "").await;
    assert_eq!(status, 409, "{e}");
    assert_eq!(e["code"], "conflict");
    assert_eq!(package_files(&app), [format!("{sha}.pkg")]);

    let (status, _) = upload(&app, package("com.example.b", 100, 3), "").await;
    assert_eq!(status, 201);
    let (status, _) = upload(&app, package("com.example.c", 100, 4), "").await;
    assert_eq!(status, 201);
    let (status, list) = app.get("/packages?limit=2").await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = list["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pkg_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["com.example.a-2.1", "com.example.b"]);
    assert_eq!(list["next_after"], "com.example.b");
    let (_, rest) = app.get("/packages?after=com.example.b&limit=2").await;
    assert_eq!(rest["packages"].as_array().unwrap().len(), 1);
    assert_eq!(rest["packages"][0]["pkg_id"], "com.example.c");
    assert_eq!(rest["next_after"], Value::Null);
    let (status, e) = app.get("/packages?limit=0").await;
    assert_eq!(status, 400, "{e}");

    let (status, _) = delete(&app, "com.example.a-2.1").await;
    assert_eq!(status, 204);
    assert!(!package_files(&app).contains(&format!("{sha}.pkg")));
    let (status, e) = app.get("/packages/com.example.a-2.1").await;
    assert_eq!((status, e["code"].as_str()), (404, Some("not_found")));
    let (status, _) = delete(&app, "com.example.a-2.1").await;
    assert_eq!(status, 404);
    // After the delete, other content under that PkgID is welcome.
    let (status, _) = upload(&app, package("com.example.a-2.1", 10_000, 2), "").await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn uploads_beyond_the_default_body_limit_stream_through() {
    let app = TestApp::start().await;
    // 5 MiB: beyond axum's 2 MB default for buffered bodies.
    let bytes = package("com.example.big", 5 << 20, 7);
    assert!(bytes.len() > 5 << 20);
    let (status, v) = upload(&app, bytes.clone(), "").await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["size"], bytes.len() as u64);
    assert_eq!(v["sha256"], sha256_hex(&bytes).as_str());
}

#[tokio::test]
async fn zip_packages_are_accepted() {
    use std::io::Write as _;
    let app = TestApp::start().await;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    w.start_file("scomo-package.toml", opts).unwrap();
    w.write_all(manifest("com.example.zipped").as_bytes())
        .unwrap();
    w.start_file("svc/payload.bin", opts).unwrap();
    w.write_all(b"payload").unwrap();
    let bytes = w.finish().unwrap().into_inner();
    let (status, v) = upload(&app, bytes, "").await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["pkg_type"], "application/zip");
    assert_eq!(v["pkg_id"], "com.example.zipped");
}

#[tokio::test]
async fn bad_uploads_are_refused_with_the_reason() {
    let app = TestApp::start().await;
    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (
            b"this is not an archive".to_vec(),
            "",
            "not a tar.gz, tar or zip",
        ),
        (targz(None, b"x"), "", "no scomo-package.toml"),
        (
            targz(Some("[package]\nid = \"x\"\n"), b"x"),
            "",
            "scomo-package.toml",
        ),
        (targz(Some(&manifest("bad/id")), b"x"), "", "package.id"),
        (vec![0x1f, 0x8b, 0, 1, 2, 3], "", "corrupt archive"),
        (Vec::new(), "", "empty"),
        (
            package("com.example.s", 10, 1),
            "?signature=%21%21",
            "signature is not base64",
        ),
        (package("com.example.s", 10, 1), "?signature=AAAA", "64"),
        (package("com.example.s", 10, 1), "?sig=AAAA", "sig"),
    ];
    for (body, q, words) in cases {
        let (status, v) = upload(&app, body, q).await;
        assert_eq!(status, 400, "{words}: {v}");
        assert_eq!(v["code"], "bad_request");
        let msg = v["message"].as_str().unwrap();
        assert!(msg.contains(words), "{msg:?} does not say {words:?}");
    }
    // Nothing was kept, not even temporary files.
    assert!(package_files(&app).is_empty());
    let (_, list) = app.get("/packages").await;
    assert!(list["packages"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn uploads_over_the_limit_are_413() {
    let app = Builder::new()
        .configure(|c| c.downloads.max_upload_bytes = 8 * 1024)
        .start()
        .await;
    let bytes = package("com.example.big", 64 * 1024, 1);
    let (status, v) = upload(&app, bytes.clone(), "").await;
    assert_eq!(status, 413, "{v}");
    assert_eq!(v["code"], "payload_too_large");
    // Without a Content-Length (chunked), the limit holds while streaming.
    let stream = futures_util::stream::iter(
        bytes
            .chunks(4096)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let r = app
        .http
        .post(app.api("/packages"))
        .bearer_auth(&app.token)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await;
    if let Ok(r) = r {
        // The server may also cut the connection after answering.
        assert_eq!(r.status().as_u16(), 413);
    }
    assert!(package_files(&app).is_empty());
    let (status, _) = upload(&app, package("com.example.small", 100, 1), "").await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn the_api_needs_a_token() {
    let app = TestApp::start().await;
    let r = app
        .http
        .post(app.api("/packages"))
        .body(package("com.example.a", 10, 1))
        .send()
        .await
        .unwrap();
    let (status, v) = status_json(r).await;
    assert_eq!((status, v["code"].as_str()), (401, Some("unauthorized")));
    for path in ["/packages", "/packages/x"] {
        let r = app.http.get(app.api(path)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401);
    }
    let r = app
        .http
        .delete(app.api("/packages/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(!app.data_dir().join("packages").exists() || package_files(&app).is_empty());
}

#[tokio::test]
async fn delete_is_refused_while_a_download_url_is_live() {
    let app = TestApp::start().await;
    let (status, _) = upload(&app, package("com.example.a", 100, 1), "").await;
    assert_eq!(status, 201);
    let (status, d) = app
        .post("/packages/com.example.a/download-url", Value::Null)
        .await;
    assert_eq!(status, 201, "{d}");
    assert!(d["url"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}/dl/", app.url)));
    assert_eq!(
        d["dd_url"],
        format!("{}/dd", d["url"].as_str().unwrap()).as_str()
    );
    let (status, e) = delete(&app, "com.example.a").await;
    assert_eq!(status, 409, "{e}");
    assert!(e["message"].as_str().unwrap().contains("in use"));
    let (status, _) = app.get("/packages/com.example.a").await;
    assert_eq!(status, 200);
    let (status, e) = app.post("/packages/nope/download-url", Value::Null).await;
    assert_eq!(status, 404, "{e}");
}
