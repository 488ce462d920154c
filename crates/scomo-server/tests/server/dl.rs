//! `/dl/{token}`: the alternate download server.

use std::time::Duration;

use reqwest::header;
use scomo::dlota::{DownloadDescriptor, DD_CONTENT_TYPE};
use scomo_server::store::{DownloadToken, Timestamp};
use serde_json::Value;

use crate::harness::{status_json, TestApp};
use crate::packages::{delete, package, sha256_hex, upload};

/// A server with one package; returns it, the package bytes and a live
/// download URL for it.
async fn setup(len: usize) -> (TestApp, Vec<u8>, String) {
    let app = TestApp::start().await;
    let bytes = package("com.example.dl", len, 11);
    let (status, v) = upload(&app, bytes.clone(), "").await;
    assert_eq!(status, 201, "{v}");
    let (status, d) = app
        .post(
            "/packages/com.example.dl/download-url?job_id=42",
            Value::Null,
        )
        .await;
    assert_eq!(status, 201, "{d}");
    let url = d["url"].as_str().unwrap().to_owned();
    (app, bytes, url)
}

fn token_of(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

async fn token(app: &TestApp, url: &str) -> DownloadToken {
    app.state
        .store()
        .download_token(token_of(url))
        .await
        .unwrap()
        .unwrap()
}

async fn get(app: &TestApp, url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut r = app.http.get(url);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap()
}

fn header_str(r: &reqwest::Response, name: header::HeaderName) -> &str {
    r.headers()
        .get(&name)
        .unwrap_or_else(|| panic!("no {name}"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn full_download_head_and_bytes_served() {
    let (app, bytes, url) = setup(300_000).await;
    let etag = format!("\"{}\"", sha256_hex(&bytes));
    // No Authorization header: the token in the URL is the capability.
    let r = get(&app, &url, &[]).await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        header_str(&r, header::CONTENT_LENGTH),
        bytes.len().to_string()
    );
    assert_eq!(header_str(&r, header::ACCEPT_RANGES), "bytes");
    assert_eq!(header_str(&r, header::ETAG), etag);
    assert_eq!(header_str(&r, header::CONTENT_TYPE), "application/gzip");
    let body = r.bytes().await.unwrap();
    assert_eq!(body.as_ref(), bytes.as_slice());
    // Recorded before the last chunk left: no waiting needed.
    let t = token(&app, &url).await;
    assert_eq!(t.bytes_served, bytes.len() as u64);
    assert_eq!(t.downloads_completed, 1);
    assert_eq!(t.job_id, Some(42));
    assert_eq!(t.last_error, None);
    let for_job = app.state.store().download_tokens_for_job(42).await.unwrap();
    assert_eq!(for_job.len(), 1);

    let r = app.http.head(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        header_str(&r, header::CONTENT_LENGTH),
        bytes.len().to_string()
    );
    assert_eq!(header_str(&r, header::ETAG), etag);
    assert_eq!(header_str(&r, header::ACCEPT_RANGES), "bytes");
    assert!(r.bytes().await.unwrap().is_empty());
    // HEAD serves nothing.
    assert_eq!(token(&app, &url).await.bytes_served, bytes.len() as u64);
}

#[tokio::test]
async fn ranges_resume_and_validators() {
    let (app, bytes, url) = setup(200_000).await;
    let n = bytes.len() as u64;
    let etag = format!("\"{}\"", sha256_hex(&bytes));
    let cases = [
        ("bytes=0-99".to_owned(), 0, 99),
        ("bytes=100-".to_owned(), 100, n - 1),
        ("bytes=-50".to_owned(), n - 50, n - 1),
        (format!("bytes=10-{}", n * 3), 10, n - 1),
        ("bytes=7-7".to_owned(), 7, 7),
    ];
    for (range, a, b) in &cases {
        let r = get(&app, &url, &[("range", range)]).await;
        assert_eq!(r.status().as_u16(), 206, "{range}");
        assert_eq!(
            header_str(&r, header::CONTENT_RANGE),
            format!("bytes {a}-{b}/{n}")
        );
        assert_eq!(
            header_str(&r, header::CONTENT_LENGTH),
            (b - a + 1).to_string()
        );
        let body = r.bytes().await.unwrap();
        assert_eq!(body.as_ref(), &bytes[*a as usize..=*b as usize], "{range}");
    }

    // Resume: two ranges make the file.
    let t0 = token(&app, &url).await;
    let half = n / 2;
    let first = get(&app, &url, &[("range", &format!("bytes=0-{}", half - 1))]).await;
    assert_eq!(first.status().as_u16(), 206);
    let mut joined = first.bytes().await.unwrap().to_vec();
    let second = get(
        &app,
        &url,
        &[("range", &format!("bytes={half}-")), ("if-range", &etag)],
    )
    .await;
    assert_eq!(second.status().as_u16(), 206);
    joined.extend_from_slice(&second.bytes().await.unwrap());
    assert_eq!(joined, bytes);
    let t1 = token(&app, &url).await;
    assert_eq!(t1.bytes_served - t0.bytes_served, n);
    assert_eq!(t1.downloads_completed - t0.downloads_completed, 1);

    // If-Range with another validator: the whole file.
    for stale in ["\"0000\"", "Wed, 21 Oct 2015 07:28:00 GMT"] {
        let r = get(&app, &url, &[("range", "bytes=0-9"), ("if-range", stale)]).await;
        assert_eq!(r.status().as_u16(), 200, "{stale}");
        assert!(r.headers().get(header::CONTENT_RANGE).is_none());
        assert_eq!(r.bytes().await.unwrap().len() as u64, n);
    }
    // Several ranges: the whole file too.
    let r = get(&app, &url, &[("range", "bytes=0-1,5-6")]).await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.bytes().await.unwrap().len() as u64, n);

    // If-None-Match with our tag: 304.
    let r = get(&app, &url, &[("if-none-match", &etag)]).await;
    assert_eq!(r.status().as_u16(), 304);
    assert_eq!(header_str(&r, header::ETAG), etag);
    assert!(r.bytes().await.unwrap().is_empty());
    let r = get(&app, &url, &[("if-none-match", "\"other\"")]).await;
    assert_eq!(r.status().as_u16(), 200);
    let _ = r.bytes().await.unwrap();

    // Outside the file: 416 with the size.
    for range in [format!("bytes={n}-"), "bytes=-0".to_owned()] {
        let r = get(&app, &url, &[("range", &range)]).await;
        assert_eq!(r.status().as_u16(), 416, "{range}");
        assert_eq!(
            header_str(&r, header::CONTENT_RANGE),
            format!("bytes */{n}")
        );
        let (_, v) = status_json(r).await;
        assert_eq!(v["code"], "range_not_satisfiable");
    }
}

#[tokio::test]
async fn unknown_expired_and_deleted() {
    let (app, _bytes, url) = setup(1000).await;
    for bad in ["0123456789abcdef0123456789abcdef", "not-a-token", "x"] {
        let r = get(&app, &format!("{}/dl/{bad}", app.url), &[]).await;
        let (status, v) = status_json(r).await;
        assert_eq!(
            (status, v["code"].as_str()),
            (404, Some("not_found")),
            "{bad}"
        );
        let r = get(&app, &format!("{}/dl/{bad}/dd", app.url), &[]).await;
        assert_eq!(r.status().as_u16(), 404);
    }

    // Expired: 410, on every route.
    let now = Timestamp::now();
    let expired = app
        .state
        .store()
        .create_download_token("com.example.dl", None, now - Duration::from_secs(1), now)
        .await
        .unwrap();
    let base = format!("{}/dl/{}", app.url, expired.token);
    for u in [base.clone(), format!("{base}/dd")] {
        let (status, v) = status_json(get(&app, &u, &[]).await).await;
        assert_eq!((status, v["code"].as_str()), (410, Some("gone")), "{u}");
    }
    let r = app
        .http
        .post(format!("{base}/notify"))
        .body("900 Success")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 410);

    // The package file vanished under a live token: 404.
    let sha = app.get("/packages/com.example.dl").await.1["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    let file = app.data_dir().join("packages").join(format!("{sha}.pkg"));
    let kept = std::fs::read(&file).unwrap();
    std::fs::remove_file(&file).unwrap();
    let (status, v) = status_json(get(&app, &url, &[]).await).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (404, Some("not_found")),
        "{v}"
    );
    std::fs::write(&file, kept).unwrap();

    // A package deleted once its URLs expired: its URLs are 404.
    let (status, _) = delete(&app, "com.example.dl").await;
    assert_eq!(status, 409, "the URL from setup is still live");
    let other = upload(&app, package("com.example.short", 100, 1), "")
        .await
        .1;
    let short = app
        .state
        .store()
        .create_download_token(
            other["pkg_id"].as_str().unwrap(),
            None,
            now - Duration::from_secs(1),
            now,
        )
        .await
        .unwrap();
    let (status, _) = delete(&app, "com.example.short").await;
    assert_eq!(status, 204);
    let (status, v) =
        status_json(get(&app, &format!("{}/dl/{}", app.url, short.token), &[]).await).await;
    assert_eq!((status, v["code"].as_str()), (404, Some("not_found")));
}

#[tokio::test]
async fn descriptor_and_install_notify() {
    let (app, bytes, url) = setup(5000).await;
    let r = get(&app, &format!("{url}/dd"), &[]).await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(header_str(&r, header::CONTENT_TYPE), DD_CONTENT_TYPE);
    let dd = DownloadDescriptor::parse(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(dd.object_uri, url);
    assert_eq!(
        dd.install_notify_uri.as_deref(),
        Some(format!("{url}/notify").as_str())
    );
    assert_eq!(dd.types, ["application/gzip"]);
    assert_eq!(dd.size, bytes.len() as u64);
    assert_eq!(dd.name.as_deref(), Some("Pkg com.example.dl"));
    // The object URI it names serves the package.
    let body = get(&app, &dd.object_uri, &[]).await.bytes().await.unwrap();
    assert_eq!(body.as_ref(), bytes.as_slice());

    let notify = dd.install_notify_uri.unwrap();
    for bad in ["", "hello", "200 OK", "99"] {
        let r = app.http.post(&notify).body(bad).send().await.unwrap();
        let (status, v) = status_json(r).await;
        assert_eq!(
            (status, v["code"].as_str()),
            (400, Some("bad_request")),
            "{bad:?}"
        );
    }
    assert_eq!(token(&app, &url).await.notify_status, None);
    let r = app
        .http
        .post(&notify)
        .body("953 Non-Acceptable Content\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let t = token(&app, &url).await;
    assert_eq!(t.notify_status, Some(953));
    assert!(t.notify_at.is_some());
    let r = app
        .http
        .post(&notify)
        .body("900 Success")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(token(&app, &url).await.notify_status, Some(900));
    let r = app
        .http
        .post(format!(
            "{}/dl/0123456789abcdef0123456789abcdef/notify",
            app.url
        ))
        .body("900 Success")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

#[tokio::test]
async fn an_aborted_download_is_recorded_with_what_it_got() {
    let (app, bytes, url) = setup(24 << 20).await;
    let mut r = get(&app, &url, &[]).await;
    assert_eq!(r.status().as_u16(), 200);
    let first = r.chunk().await.unwrap().unwrap();
    assert!(!first.is_empty() && first.len() < bytes.len());
    drop(r);
    // The server learns of the abort when its write fails: wait for that.
    let t = crate::harness::eventually(10, || async {
        let t = token(&app, &url).await;
        t.last_error.is_some().then_some(t)
    })
    .await;
    assert_eq!(t.downloads_completed, 0);
    assert!(
        t.bytes_served > 0 && t.bytes_served < bytes.len() as u64,
        "{t:?}"
    );
    assert!(t.last_error.unwrap().starts_with("stopped after"));
}
