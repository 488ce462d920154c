//! The OpenAPI document: its snapshot (`openapi.json`, rewritten with
//! `SCOMO_BLESS=1`), its coverage of every endpoint, its shape, and
//! `GET /api/v1/openapi.json` over HTTP.

use std::collections::BTreeSet;
use std::path::PathBuf;

use scomo_server::api::{openapi, ENDPOINTS};
use serde_json::Value;

use crate::harness::{status_json, TestApp};

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn snapshot_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi.json")
}

fn pretty() -> String {
    let mut text = openapi::document().to_pretty_json().unwrap();
    text.push('\n');
    text
}

fn document_json() -> Value {
    serde_json::to_value(openapi::document()).unwrap()
}

/// Every `(METHOD, path)` of the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in METHODS {
            if item.get(m).is_some() {
                ops.insert((m.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    ops
}

#[test]
fn the_snapshot_is_current() {
    let path = snapshot_path();
    let text = pretty();
    if std::env::var("SCOMO_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let stored = std::fs::read_to_string(&path).unwrap_or_default();
    if stored != text {
        let first = stored
            .lines()
            .zip(text.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(stored.lines().count().min(text.lines().count()));
        panic!(
            "{} differs from openapi::document() from line {} on (rerun with SCOMO_BLESS=1 \
             if the change is intended)",
            path.display(),
            first + 1
        );
    }
}

#[test]
fn every_endpoint_is_documented_and_every_operation_served() {
    let doc = document_json();
    let documented = operations(&doc);
    let served: BTreeSet<(String, String)> = ENDPOINTS
        .iter()
        .map(|e| (e.method.to_owned(), e.full_path()))
        .collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served but not in openapi.rs paths(...): {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "documented but not in endpoints!: {unserved:?}"
    );
    // The document says which need the token, as the router does.
    for e in ENDPOINTS {
        let op = &doc["paths"][e.full_path()][e.method.to_ascii_lowercase()];
        let bearer = op["security"]
            .as_array()
            .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
        assert_eq!(bearer, e.token, "{} {}: security {}", e.method, e.path, op);
    }
}

/// Every `$ref` in `v`.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r);
            }
            m.values().for_each(|x| refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[test]
fn the_document_is_well_formed_openapi_3_1() {
    // The JSON (the snapshot's text) reads back as utoipa's model of OpenAPI.
    let parsed: utoipa::openapi::OpenApi = serde_json::from_str(&pretty()).unwrap();
    let doc = serde_json::to_value(&parsed).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "scomo");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");

    let mut op_ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        assert!(path.starts_with("/api/v1/"), "{path}");
        let ops: Vec<_> = METHODS.iter().filter_map(|m| item.get(*m)).collect();
        assert!(!ops.is_empty(), "{path} has no operation");
        for op in ops {
            let id = op["operationId"].as_str().unwrap_or_default();
            assert!(
                op_ids.insert(id.to_owned()),
                "{path}: duplicate operationId {id:?}"
            );
            let responses = op["responses"].as_object().unwrap();
            assert!(!responses.is_empty(), "{path} {id}: no responses");
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{path} {id}: no success response"
            );
            // Path templates and path parameters agree.
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            let templated: BTreeSet<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            assert_eq!(declared, templated, "{path} {id}: path parameters");
            if op.get("security").is_some() {
                for (status, r) in responses {
                    if status.starts_with('4') {
                        assert_eq!(
                            r["content"]["application/json"]["schema"]["$ref"],
                            "#/components/schemas/ErrorBody",
                            "{path} {id} {status}"
                        );
                    }
                }
                assert!(responses.contains_key("401"), "{path} {id}: no 401");
            }
        }
    }
    // Every reference resolves.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r.strip_prefix("#/components/schemas/").unwrap();
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "unresolved {r}"
        );
    }
}

#[tokio::test]
async fn the_document_is_served_without_a_token() {
    let app = TestApp::start().await;
    let r = app.http.get(app.api("/openapi.json")).send().await.unwrap();
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let (status, v) = status_json(r).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, document_json());
    // Unknown API paths are still a JSON 404 behind the token.
    let r = app.http.get(app.api("/openapi.yaml")).send().await.unwrap();
    let (status, v) = status_json(r).await;
    assert_eq!(status, 401, "{v}");
    let (status, v) = app.get("/openapi.yaml").await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["code"], "not_found");
}
