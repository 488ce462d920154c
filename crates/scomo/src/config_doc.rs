//! Configuration references rendered from the config structs themselves:
//! the server's and the agent's tables in `docs/operator-guide.md` are made
//! here from a list of [`KeyDoc`]s and the serialized `Default` of each
//! config, so their defaults cannot go stale.

use serde_json::Value;

/// One configuration key, as the reference shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyDoc {
    /// Dotted key (`dm.max_msg_size`; `scomo.environments[].install` for a
    /// field of each entry of a list of tables).
    pub key: &'static str,
    /// Its TOML type, in words.
    pub ty: &'static str,
    /// The command-line flag setting it (without `--`), if any.
    pub flag: Option<&'static str>,
    /// The environment variable setting it, if any.
    pub env: Option<&'static str>,
    /// What it means (mirrors the field's doc comment).
    pub doc: &'static str,
}

/// A key set only in the configuration file.
pub const fn key(key: &'static str, ty: &'static str, doc: &'static str) -> KeyDoc {
    KeyDoc {
        key,
        ty,
        flag: None,
        env: None,
        doc,
    }
}

/// A key with a flag and an environment variable.
pub const fn flag(
    key: &'static str,
    ty: &'static str,
    flag: &'static str,
    env: &'static str,
    doc: &'static str,
) -> KeyDoc {
    KeyDoc {
        key,
        ty,
        flag: Some(flag),
        env: Some(env),
        doc,
    }
}

/// The leaves of a serialized config as (dotted key under `prefix`,
/// value), appended to `out`.
pub fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        _ => out.push((prefix.to_owned(), v.clone())),
    }
}

/// A default value as the table shows it.
fn show(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "unset".to_owned(),
        Some(v) => format!("`{v}`"),
    }
}

/// The Markdown table of `keys` with their `defaults` (from [`flatten`]).
pub fn markdown(keys: &[KeyDoc], defaults: &[(String, Value)]) -> String {
    let mut s = String::from(
        "| Key | Type | Default | Flag / environment | Meaning |\n|---|---|---|---|---|\n",
    );
    for k in keys {
        let default = defaults.iter().find(|(d, _)| d == k.key).map(|(_, v)| v);
        let flag = match (k.flag, k.env) {
            (Some(f), Some(e)) => format!("`--{f}`<br>`{e}`"),
            (Some(f), None) => format!("`--{f}`"),
            (None, Some(e)) => format!("`{e}`"),
            (None, None) => "—".to_owned(),
        };
        s.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            k.key,
            k.ty,
            show(default),
            flag,
            k.doc.replace('|', "\\|")
        ));
    }
    s
}
