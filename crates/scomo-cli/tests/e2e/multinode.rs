//! Two `scomo server` processes on one PostgreSQL serve one fleet behind a
//! round-robin front: each session's first message lands on either node,
//! the rest follow its RespURI to the node that holds it, and every queued
//! batch is done exactly once even with two sessions per device at a time.
//!
//! Needs `SCOMO_TEST_DATABASE_URL` (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`); the test makes a schema of
//! its own and drops it. It fails, not skips, without the variable.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde_json::json;

use crate::harness::{agent_once, Server};

const PG_URL_VAR: &str = "SCOMO_TEST_DATABASE_URL";

/// A schema dropped when the test ends (panics included).
struct Schema {
    url: String,
    name: String,
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                use sqlx::Connection as _;
                let mut c = sqlx::PgConnection::connect(&url).await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
                )))
                .execute(&mut c)
                .await?;
                c.close().await
            })
        })
        .join();
    }
}

/// A front that sends each new session (`POST /dm`) to the nodes in turn.
async fn round_robin(nodes: Vec<String>) -> String {
    let next = Arc::new(AtomicUsize::new(0));
    let http = reqwest::Client::new();
    let app = axum::Router::new().route(
        "/dm",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let target = format!("{}/dm", nodes[i % nodes.len()]);
            let http = http.clone();
            async move {
                let mut r = http.post(target).body(body);
                for name in ["content-type", "x-syncml-hmac"] {
                    if let Some(v) = headers.get(name) {
                        r = r.header(name, v.clone());
                    }
                }
                let Ok(resp) = r.send().await else {
                    return (StatusCode::BAD_GATEWAY, HeaderMap::new(), Bytes::new());
                };
                let status = resp.status();
                let mut out = HeaderMap::new();
                for name in ["content-type", "x-syncml-hmac"] {
                    if let Some(v) = resp.headers().get(name) {
                        out.insert(name, v.clone());
                    }
                }
                let body = resp.bytes().await.unwrap_or_default();
                (status, out, body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_fleet_and_do_every_batch_once() {
    let url = match std::env::var(PG_URL_VAR) {
        Ok(u) if !u.is_empty() => u,
        _ => panic!(
            "{PG_URL_VAR} is not set: the two-node test needs PostgreSQL, e.g. \
             {PG_URL_VAR}=postgres://postgres@127.0.0.1:5432/test"
        ),
    };
    let mut r = [0u8; 6];
    getrandom::fill(&mut r).unwrap();
    let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
    let schema = Schema {
        url: url.clone(),
        name: format!("scomo_e2e_{}_{hex}", std::process::id()),
    };
    let dir = tempfile::tempdir().unwrap();
    let db = ["--database-url", &url, "--database-schema", &schema.name];
    let a = Server::start(
        &dir.path().join("a"),
        &[&db[..], &["--node-id", "node-a"]].concat(),
    );
    let b = Server::start(
        &dir.path().join("b"),
        &[&db[..], &["--node-id", "node-b"]].concat(),
    );
    let front = round_robin(vec![a.url.clone(), b.url.clone()]).await;
    let http = reqwest::Client::new();

    const DEVICES: usize = 6;
    let ids: Vec<String> = (0..DEVICES).map(|i| format!("IMEI:60{i:02}")).collect();
    let mut batches = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        // Provisioned on either node: one registry.
        if i % 2 == 0 { &a } else { &b }.provision(id, &[]);
        for node in [&a, &b] {
            let batch = node
                .enqueue(
                    &http,
                    id,
                    json!({"commands": [
                        {"op": "get", "target": "./DevInfo/DevId"},
                        {"op": "replace", "target": "./DevDetail/HwV", "data": node.url}
                    ]}),
                )
                .await;
            batches.push((id.clone(), batch));
        }
    }

    // Two agents per device at once, all through the front.
    let dm = format!("{front}/dm");
    let runs: Vec<_> = ids
        .iter()
        .flat_map(|id| [0, 1].map(|k| (id.clone(), k)))
        .map(|(id, k)| {
            let dm = dm.clone();
            let agent_dir = dir.path().join(format!("{}-{k}", id.replace(':', "_")));
            std::thread::spawn(move || agent_once(&id, &dm, &agent_dir, &[]))
        })
        .collect();
    for r in runs {
        r.join().expect("agent run");
    }

    for (id, batch) in &batches {
        let v = a.batch(&http, id, *batch).await;
        assert_eq!(v["state"], "completed", "{id} batch {batch}: {v}");
        assert_eq!(v["attempts"], 1, "sent once: {v}");
        assert_eq!(v["outcomes"].as_array().unwrap().len(), 2, "{v}");
    }
    let mut nodes = BTreeSet::new();
    for id in &ids {
        let sessions = b
            .get(
                &http,
                &format!("/devices/{}/sessions", crate::harness::enc(id)),
            )
            .await;
        for s in sessions.as_array().unwrap() {
            assert_eq!(s["outcome"], "ok", "{s}");
            nodes.insert(s["node_id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(
        nodes,
        BTreeSet::from(["node-a".to_owned(), "node-b".to_owned()]),
        "sessions spread over both nodes"
    );
}
