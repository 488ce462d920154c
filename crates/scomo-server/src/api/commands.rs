//! `/api/v1/devices/{id}/commands`: the command queue's REST face.
//!
//! A batch is a list of DM commands in a small JSON form, one item each:
//!
//! ```json
//! { "commands": [
//!     { "op": "get", "target": "./DevInfo/Man" },
//!     { "op": "add", "target": "./Vendor/App", "format": "node" },
//!     { "op": "replace", "target": "./Vendor/App/Ver", "data": "2", "format": "chr" },
//!     { "op": "exec", "target": "./SCOMO/Download/p1/Operations/Download", "correlator": "c1" },
//!     { "op": "atomic", "commands": [ { "op": "delete", "target": "./Vendor/Old" } ] } ],
//!   "owner": "api", "idempotent": false, "notify": true }
//! ```
//!
//! The outcome of each command (status code and results, in depth-first
//! order, containers counted) appears on the batch once the device answers.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use omadm_wire::model::{Command, Container, Data, Exec, Item, ItemCommand, Location, Meta};
use serde::{Deserialize, Serialize};

use super::devices::find;
use super::{json_body, rfc3339};
use crate::error::{AppError, ErrorBody};
use crate::state::AppState;
use crate::store::{command_count, Batch, BatchId, NewBatch, Timestamp};

/// Most commands (containers and their children counted) in one batch.
pub const MAX_BATCH_COMMANDS: u32 = 1000;
/// Deepest nesting of Atomic/Sequence.
pub const MAX_NESTING: usize = 4;
/// Longest owner tag.
pub const MAX_OWNER_LEN: usize = 128;

/// A DM command in the API's JSON form.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    /// `get`, `add`, `replace`, `delete`, `exec`, `copy`, `atomic`, `sequence`.
    pub op: String,
    /// The node (`Item/Target/LocURI`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `Item/Source/LocURI` (Copy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// `Item/Data` as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// `Item/Data` as base64 bytes (`b64`-format values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_b64: Option<String>,
    /// `Meta/Format` (`chr`, `int`, `bool`, `b64`, `node`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// `Meta/Type` (MIME type).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub mime: Option<String>,
    /// Exec `Correlator`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlator: Option<String>,
    /// Children of `atomic` / `sequence`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub commands: Option<Vec<CommandSpec>>,
}

impl CommandSpec {
    /// The DM command, or a message naming what is wrong (`at` locates it,
    /// e.g. `commands[2].commands[0]`).
    pub fn to_command(&self, at: &str, depth: usize) -> Result<Command, String> {
        let op = self.op.to_ascii_lowercase();
        let container = matches!(op.as_str(), "atomic" | "sequence");
        if container {
            if depth >= MAX_NESTING {
                return Err(format!("{at}: containers nest at most {MAX_NESTING} deep"));
            }
            if self.target.is_some()
                || self.source.is_some()
                || self.data.is_some()
                || self.data_b64.is_some()
                || self.correlator.is_some()
            {
                return Err(format!(
                    "{at}: {op} takes only \"commands\" (and format/type for its Meta)"
                ));
            }
            let children = self
                .commands
                .as_deref()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| format!("{at}: {op} needs a non-empty \"commands\" list"))?;
            let commands = children
                .iter()
                .enumerate()
                .map(|(i, c)| c.to_command(&format!("{at}.commands[{i}]"), depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            let k = Container {
                meta: self.meta(),
                commands,
                ..Container::default()
            };
            return Ok(if op == "atomic" {
                Command::Atomic(k)
            } else {
                Command::Sequence(k)
            });
        }
        if self.commands.is_some() {
            return Err(format!("{at}: only atomic and sequence take \"commands\""));
        }
        if self.correlator.is_some() && op != "exec" {
            return Err(format!("{at}: only exec takes a \"correlator\""));
        }
        let target = self
            .target
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| format!("{at}: {op:?} needs a \"target\" node URI"))?;
        if target.len() > 1024 || target.chars().any(char::is_control) {
            return Err(format!("{at}: target is not a usable URI"));
        }
        let data = match (&self.data, &self.data_b64) {
            (Some(_), Some(_)) => return Err(format!("{at}: give data or data_b64, not both")),
            (Some(t), None) => Some(Data::Text(t.clone())),
            (None, Some(b)) => Some(Data::Binary(
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .map_err(|_| format!("{at}: data_b64 is not base64"))?,
            )),
            (None, None) => None,
        };
        let item = Item {
            target: Some(Location::uri(target)),
            source: self.source.as_deref().map(Location::uri),
            meta: self.meta(),
            data,
            ..Item::default()
        };
        let item_cmd = || ItemCommand {
            items: vec![item.clone()],
            ..ItemCommand::default()
        };
        match op.as_str() {
            "get" | "delete" if item.data.is_some() => {
                Err(format!("{at}: {op} takes no data"))
            }
            "get" => Ok(Command::Get(item_cmd())),
            "delete" => Ok(Command::Delete(item_cmd())),
            "add" => Ok(Command::Add(item_cmd())),
            "replace" => Ok(Command::Replace(item_cmd())),
            "copy" if item.source.is_none() => Err(format!("{at}: copy needs a \"source\"")),
            "copy" => Ok(Command::Copy(item_cmd())),
            "exec" => Ok(Command::Exec(Exec {
                correlator: self.correlator.clone(),
                items: vec![item],
                ..Exec::default()
            })),
            other => Err(format!(
                "{at}: op {other:?} is not one of get, add, replace, delete, exec, copy, atomic, sequence"
            )),
        }
    }

    fn meta(&self) -> Option<Meta> {
        (self.format.is_some() || self.mime.is_some()).then(|| Meta {
            format: self.format.clone(),
            r#type: self.mime.clone(),
            ..Meta::default()
        })
    }

    /// The JSON form of a stored command (first item of multi-item ones).
    pub fn from_command(cmd: &Command) -> CommandSpec {
        let (op, items, correlator, meta, children): (&str, &[Item], _, _, _) = match cmd {
            Command::Get(c) => ("get", &c.items, None, c.meta.as_ref(), None),
            Command::Add(c) => ("add", &c.items, None, c.meta.as_ref(), None),
            Command::Replace(c) => ("replace", &c.items, None, c.meta.as_ref(), None),
            Command::Delete(c) => ("delete", &c.items, None, c.meta.as_ref(), None),
            Command::Copy(c) => ("copy", &c.items, None, c.meta.as_ref(), None),
            Command::Exec(e) => (
                "exec",
                &e.items,
                e.correlator.clone(),
                e.meta.as_ref(),
                None,
            ),
            Command::Atomic(k) => ("atomic", &[], None, k.meta.as_ref(), Some(&k.commands)),
            Command::Sequence(k) => ("sequence", &[], None, k.meta.as_ref(), Some(&k.commands)),
            other => (other.name(), &[], None, None, None),
        };
        let item = items.first();
        let meta = item.and_then(|i| i.meta.as_ref()).or(meta);
        let (data, data_b64) = split_data(item.and_then(|i| i.data.as_ref()));
        CommandSpec {
            op: op.to_ascii_lowercase(),
            target: item
                .and_then(|i| i.target.as_ref())
                .map(|l| l.loc_uri.clone()),
            source: item
                .and_then(|i| i.source.as_ref())
                .map(|l| l.loc_uri.clone()),
            data,
            data_b64,
            format: meta.and_then(|m| m.format.clone()),
            mime: meta.and_then(|m| m.r#type.clone()),
            correlator,
            commands: children.map(|c| c.iter().map(CommandSpec::from_command).collect()),
        }
    }
}

fn split_data(d: Option<&Data>) -> (Option<String>, Option<String>) {
    match d {
        None => (None, None),
        Some(Data::Text(s) | Data::Xml(s)) => (Some(s.clone()), None),
        Some(Data::Binary(b)) => match std::str::from_utf8(b) {
            Ok(s) => (Some(s.to_owned()), None),
            Err(_) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(b)),
            ),
        },
    }
}

/// `POST /api/v1/devices/{id}/commands`.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnqueueRequest {
    /// The commands, sent in order in one session.
    pub commands: Vec<CommandSpec>,
    /// Who consumes the outcome (default `api`).
    #[serde(default)]
    pub owner: Option<String>,
    /// Whether sending the batch twice is harmless (a crashed session then
    /// sends it again instead of leaving it unacknowledged).
    #[serde(default)]
    pub idempotent: bool,
    /// Send package 0 to the device when it has a notification address
    /// (default true).
    #[serde(default)]
    pub notify: Option<bool>,
}

/// A batch as the API shows it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchView {
    /// Its id.
    pub id: i64,
    /// The device.
    pub device_id: String,
    /// The owner tag.
    pub owner: String,
    /// `pending`, `in_flight`, `sent`, `completed`, `unacknowledged`, `cancelled`.
    pub state: String,
    /// Whether it may be sent again.
    pub idempotent: bool,
    /// Sessions that claimed it.
    pub attempts: u32,
    /// Commands, containers and children counted.
    pub command_count: u32,
    /// When it was enqueued (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When it reached a final state (RFC 3339).
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    /// The commands.
    pub commands: Vec<CommandSpec>,
    /// Statuses and results so far.
    pub outcomes: Vec<OutcomeView>,
}

/// One command's outcome.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutcomeView {
    /// Depth-first index of the command.
    pub index: u32,
    /// The device's status code.
    pub status: u16,
    /// Results items of a Get.
    pub results: Vec<ResultItemView>,
}

/// One Results item.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ResultItemView {
    /// The node.
    pub source: Option<String>,
    /// Its format.
    pub format: Option<String>,
    /// Its type.
    #[serde(rename = "type")]
    pub mime: Option<String>,
    /// The value as text.
    pub data: Option<String>,
    /// The value as base64, when it is not text.
    pub data_b64: Option<String>,
}

impl BatchView {
    fn new(b: Batch) -> BatchView {
        let outcomes = b
            .outcomes
            .iter()
            .map(|o| OutcomeView {
                index: o.index,
                status: o.status.0,
                results: o
                    .results
                    .iter()
                    .flat_map(|r| {
                        r.items.iter().map(|i| {
                            let meta = i.meta.as_ref().or(r.meta.as_ref());
                            let (data, data_b64) = split_data(i.data.as_ref());
                            ResultItemView {
                                source: i
                                    .source
                                    .as_ref()
                                    .map(|l| l.loc_uri.clone())
                                    .or_else(|| r.source_ref.clone()),
                                format: meta.and_then(|m| m.format.clone()),
                                mime: meta.and_then(|m| m.r#type.clone()),
                                data,
                                data_b64,
                            }
                        })
                    })
                    .collect(),
            })
            .collect();
        BatchView {
            id: b.id.0,
            device_id: b.device_id,
            owner: b.owner,
            state: b.state.as_str().to_owned(),
            idempotent: b.idempotent,
            attempts: b.attempts,
            command_count: b.command_count,
            created_at: rfc3339(b.created_at),
            finished_at: b.finished_at.map(rfc3339),
            commands: b.commands.iter().map(CommandSpec::from_command).collect(),
            outcomes,
        }
    }
}

/// Enqueues a batch of DM commands for the device's next session (and sends
/// package 0 unless `notify` is false or the device has no address).
#[utoipa::path(
    post,
    path = "/api/v1/devices/{id}/commands",
    operation_id = "enqueue_batch",
    tag = "commands",
    params(("id" = String, Path, description = "The DevId")),
    request_body = EnqueueRequest,
    responses(
        (status = 201, description = "The batch, pending", body = BatchView),
        (status = 400, description = "A bad body or command", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such device", body = ErrorBody),
        (status = 413, description = "The body is too big", body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn enqueue(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<EnqueueRequest>, JsonRejection>,
) -> Result<Response, AppError> {
    let r = json_body(body)?;
    if r.commands.is_empty() {
        return Err(AppError::BadRequest("commands must not be empty".into()));
    }
    let commands = r
        .commands
        .iter()
        .enumerate()
        .map(|(i, c)| c.to_command(&format!("commands[{i}]"), 0))
        .collect::<Result<Vec<_>, _>>()
        .map_err(AppError::BadRequest)?;
    let count = command_count(&commands);
    if count > MAX_BATCH_COMMANDS {
        return Err(AppError::BadRequest(format!(
            "a batch holds at most {MAX_BATCH_COMMANDS} commands, this one {count}"
        )));
    }
    let owner = r.owner.unwrap_or_else(|| "api".into());
    if owner.is_empty() || owner.len() > MAX_OWNER_LEN {
        return Err(AppError::BadRequest(format!(
            "owner must be 1..={MAX_OWNER_LEN} bytes"
        )));
    }
    let device = find(&state, &id).await?;
    let now = Timestamp::now();
    let store = state.store();
    let batch = store
        .enqueue_batch(
            &NewBatch {
                device_id: id.clone(),
                owner,
                commands,
                idempotent: r.idempotent,
            },
            now,
        )
        .await?;
    tracing::info!(device = %id, %batch, commands = count, "batch enqueued");
    if r.notify.unwrap_or(true) && device.notify_addr.is_some() {
        store.enqueue_notification(&id, now, now).await?;
        state.wake_notifier();
    }
    let stored = store
        .batch(batch)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("batch {batch} vanished")))?;
    Ok((StatusCode::CREATED, Json(BatchView::new(stored))).into_response())
}

/// A batch with its statuses and results so far.
#[utoipa::path(
    get,
    path = "/api/v1/devices/{id}/commands/{batch}",
    operation_id = "show_batch",
    tag = "commands",
    params(
        ("id" = String, Path, description = "The DevId"),
        ("batch" = i64, Path, description = "The batch id"),
    ),
    responses(
        (status = 200, description = "The batch", body = BatchView),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such device or batch", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    Path((id, batch)): Path<(String, i64)>,
) -> Result<Response, AppError> {
    match state.store().batch(BatchId(batch)).await? {
        Some(b) if b.device_id == id => Ok(Json(BatchView::new(b)).into_response()),
        _ => Err(AppError::NotFound(format!(
            "device {id:?} has no batch {batch}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> CommandSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn specs_convert_and_round_trip() {
        let s = spec(
            r#"{"op":"atomic","commands":[{"op":"add","target":"./A","format":"node"},
                {"op":"exec","target":"./A/Op","correlator":"c1","data":"x"}]}"#,
        );
        let cmd = s.to_command("commands[0]", 0).unwrap();
        assert_eq!(command_count(std::slice::from_ref(&cmd)), 3);
        assert_eq!(CommandSpec::from_command(&cmd), s);
    }

    #[test]
    fn bad_specs_are_named() {
        let e = spec(r#"{"op":"get"}"#)
            .to_command("commands[1]", 0)
            .unwrap_err();
        assert!(e.contains("commands[1]") && e.contains("target"), "{e}");
        let e = spec(r#"{"op":"jump","target":"./x"}"#)
            .to_command("c", 0)
            .unwrap_err();
        assert!(e.contains("jump"), "{e}");
        let e = spec(r#"{"op":"get","target":"./x","correlator":"k"}"#)
            .to_command("c", 0)
            .unwrap_err();
        assert!(e.contains("correlator"), "{e}");
        let e = spec(r#"{"op":"atomic","commands":[]}"#)
            .to_command("c", 0)
            .unwrap_err();
        assert!(e.contains("non-empty"), "{e}");
        assert!(serde_json::from_str::<CommandSpec>(r#"{"op":"get","targte":"x"}"#).is_err());
    }
}
