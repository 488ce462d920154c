//! The delivery package manifest, `scomo-package.toml` at the root of an
//! `archive` package (tar.gz or zip).
//!
//! ```toml
//! [package]
//! id = "com.example.hello-1.0.0"   # becomes PkgID
//! name = "Hello"
//! env_type = "archive"
//! [[component]]                    # one per deployment component
//! id = "com.example.hello"
//! name = "Hello service"
//! version = "1.0.0"
//! dir = "hello"                    # folder holding the component's files
//! activate = "bin/activate"        # optional hooks, relative to `dir`
//! deactivate = "bin/deactivate"
//! ```

use serde::{Deserialize, Serialize};

/// File name of the manifest inside a package.
pub const MANIFEST_FILE: &str = "scomo-package.toml";

/// A parsed, validated manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// `[package]`.
    pub package: PackageInfo,
    /// `[[component]]`s.
    #[serde(rename = "component", default)]
    pub components: Vec<ComponentInfo>,
}

/// `[package]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageInfo {
    /// PkgID.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Execution environment (`archive`, or an integrator's type).
    #[serde(default = "default_env_type")]
    pub env_type: String,
    /// Package version, informational.
    #[serde(default)]
    pub version: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

fn default_env_type() -> String {
    "archive".to_owned()
}

/// `[[component]]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentInfo {
    /// Deployment component ID.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Version string.
    pub version: String,
    /// Folder in the package holding the component's files.
    pub dir: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Hook run on activation, relative to the component folder.
    #[serde(default)]
    pub activate: Option<String>,
    /// Hook run on deactivation, relative to the component folder.
    #[serde(default)]
    pub deactivate: Option<String>,
}

/// What is wrong with a manifest; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// Not valid TOML or not the expected shape.
    #[error("{MANIFEST_FILE} is not valid: {0}")]
    Syntax(String),
    /// A field has a value we refuse.
    #[error("{MANIFEST_FILE}: {field} = {value:?}: {reason}")]
    Invalid {
        /// The field, e.g. `component[1].dir`.
        field: String,
        /// Its value.
        value: String,
        /// What is accepted.
        reason: &'static str,
    },
}

impl Manifest {
    /// Parses and validates manifest text.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let m: Manifest =
            toml::from_str(text).map_err(|e| ManifestError::Syntax(e.message().to_owned()))?;
        m.validate()?;
        Ok(m)
    }

    /// The manifest as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks ids, names and paths: ids are single node names (they become
    /// tree node names and directory names), paths stay inside the package.
    pub fn validate(&self) -> Result<(), ManifestError> {
        check_id("package.id", &self.package.id)?;
        check_nonempty("package.name", &self.package.name)?;
        check_id("package.env_type", &self.package.env_type)?;
        if self.components.is_empty() {
            return Err(invalid(
                "component",
                "",
                "a package needs at least one [[component]]",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, c) in self.components.iter().enumerate() {
            check_id(&format!("component[{i}].id"), &c.id)?;
            if !seen.insert(c.id.as_str()) {
                return Err(invalid(
                    &format!("component[{i}].id"),
                    &c.id,
                    "component ids must be unique",
                ));
            }
            check_nonempty(&format!("component[{i}].name"), &c.name)?;
            check_nonempty(&format!("component[{i}].version"), &c.version)?;
            check_relative(&format!("component[{i}].dir"), &c.dir)?;
            for (name, hook) in [("activate", &c.activate), ("deactivate", &c.deactivate)] {
                if let Some(h) = hook {
                    check_relative(&format!("component[{i}].{name}"), h)?;
                }
            }
        }
        Ok(())
    }
}

fn invalid(field: &str, value: &str, reason: &'static str) -> ManifestError {
    ManifestError::Invalid {
        field: field.to_owned(),
        value: value.to_owned(),
        reason,
    }
}

fn check_nonempty(field: &str, value: &str) -> Result<(), ManifestError> {
    if value.trim().is_empty() {
        return Err(invalid(field, value, "must not be empty"));
    }
    Ok(())
}

/// Ids become node names and directory names: letters, digits, `.`, `-`,
/// `_`, `+`, at most 128 bytes, not `.`/`..`.
pub fn check_id(field: &str, value: &str) -> Result<(), ManifestError> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value != "."
        && value != ".."
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'));
    if !ok {
        return Err(invalid(field, value, "use 1-128 of A-Z a-z 0-9 . - _ +"));
    }
    Ok(())
}

/// A relative path with no `..`, no absolute root and no backslashes.
fn check_relative(field: &str, value: &str) -> Result<(), ManifestError> {
    let ok = !value.is_empty()
        && !value.starts_with('/')
        && !value.contains('\\')
        && !value.contains('\0')
        && value.split('/').all(|seg| seg != "..");
    if !ok {
        return Err(invalid(
            field,
            value,
            "must be a relative path inside the package, without '..'",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &str = r#"
[package]
id = "com.example.hello-1.0.0"
name = "Hello"
env_type = "archive"
[[component]]
id = "com.example.hello"
name = "Hello service"
version = "1.0.0"
dir = "hello"
activate = "bin/activate"
deactivate = "bin/deactivate"
"#;

    #[test]
    fn parses_the_documented_example() {
        let m = Manifest::parse(HELLO).unwrap();
        assert_eq!(m.package.id, "com.example.hello-1.0.0");
        assert_eq!(m.components.len(), 1);
        assert_eq!(m.components[0].activate.as_deref(), Some("bin/activate"));
        assert_eq!(Manifest::parse(&m.to_toml()).unwrap(), m);
    }

    #[test]
    fn refuses_bad_manifests_naming_the_field() {
        let cases = [
            (
                HELLO.replace("dir = \"hello\"", "dir = \"../etc\""),
                "component[0].dir",
            ),
            (
                HELLO.replace("dir = \"hello\"", "dir = \"/etc\""),
                "component[0].dir",
            ),
            (
                HELLO.replace("bin/activate", "../../bin/sh"),
                "component[0].activate",
            ),
            (
                HELLO.replace("id = \"com.example.hello\"", "id = \"a/b\""),
                "component[0].id",
            ),
            (
                HELLO.replace("version = \"1.0.0\"", "version = \"\""),
                "component[0].version",
            ),
        ];
        for (text, field) in cases {
            let err = Manifest::parse(&text).unwrap_err().to_string();
            assert!(err.contains(field), "{err}");
        }
        let err = Manifest::parse("[package]\nid='x'\nname='y'\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least one"), "{err}");
        let err = Manifest::parse("[package]\nid='x'\nname='y'\ncolour='red'\n").unwrap_err();
        assert!(matches!(err, ManifestError::Syntax(_)), "{err}");
    }
}
