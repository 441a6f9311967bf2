//! `docs/config.md` is generated from `schemas/config.schema.json`, and the
//! schema is checked against the code (`config::schema_tests`), so the
//! reference cannot drift from either. After changing the schema:
//!
//! ```sh
//! CONTACTBRIDGE_UPDATE_DOCS=1 cargo test --test config_reference
//! ```

use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

const SCHEMA: &str = "schemas/config.schema.json";
const REFERENCE: &str = "docs/config.md";

#[test]
fn the_config_reference_matches_the_schema() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(root.join(SCHEMA)).expect("reading the schema"))
        .expect("the schema is JSON");
    let rendered = render(&schema);
    let path = root.join(REFERENCE);
    if std::env::var_os("CONTACTBRIDGE_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &rendered).expect("writing the reference");
        return;
    }
    let written = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        written == rendered,
        "{REFERENCE} is not the rendering of {SCHEMA}; regenerate it with \
         `CONTACTBRIDGE_UPDATE_DOCS=1 cargo test --test config_reference`"
    );
}

#[test]
fn every_key_of_the_schema_is_in_the_reference_with_its_variable() {
    let schema: Value = serde_json::from_str(include_str!("../schemas/config.schema.json")).unwrap();
    let rendered = render(&schema);
    let mut keys = Vec::new();
    leaves(&schema, "", &mut keys);
    assert!(keys.len() > 20, "the schema has its keys: {keys:?}");
    for key in keys {
        assert!(rendered.contains(&format!("`{key}`")), "{key} is in the reference");
        assert!(rendered.contains(&format!("`{}`", env_name(&key))), "{key}'s variable is in the reference");
    }
}

fn leaves(node: &Value, at: &str, out: &mut Vec<String>) {
    let Some(props) = node.get("properties").and_then(Value::as_object) else { return };
    for (name, child) in props {
        let key = if at.is_empty() { name.clone() } else { format!("{at}.{name}") };
        if child.get("properties").is_some() {
            leaves(child, &key, out);
        } else {
            out.push(key);
        }
    }
}

/// The environment variable that overrides a key (figment's `split("__")`).
fn env_name(key: &str) -> String {
    format!("CONTACTBRIDGE_{}", key.replace('.', "__").to_uppercase())
}

fn render(schema: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Configuration reference\n");
    let _ = writeln!(
        out,
        "<!-- Generated from {SCHEMA} by tests/config_reference.rs; do not edit by hand: \
         CONTACTBRIDGE_UPDATE_DOCS=1 cargo test --test config_reference -->\n"
    );
    if let Some(d) = schema.get("description").and_then(Value::as_str) {
        let _ = writeln!(out, "{d}\n");
    }
    let props = schema.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
    let (top, sections): (Vec<_>, Vec<_>) = props.iter().partition(|(_, v)| v.get("properties").is_none());
    if !top.is_empty() {
        let _ = writeln!(out, "## Top level\n");
        table(&mut out, "", top.iter().map(|(k, v)| (k.as_str(), *v)));
    }
    for (name, section) in sections {
        let _ = writeln!(out, "## `[{name}]`\n");
        if let Some(d) = section.get("description").and_then(Value::as_str) {
            let _ = writeln!(out, "{d}\n");
        }
        let inner = section.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
        let (leaves, tables): (Vec<_>, Vec<_>) = inner.iter().partition(|(_, v)| v.get("properties").is_none());
        table(&mut out, name, leaves.iter().map(|(k, v)| (k.as_str(), *v)));
        // A table inside a section (`[store.postgres]`).
        for (sub, node) in tables {
            let _ = writeln!(out, "### `[{name}.{sub}]`\n");
            if let Some(d) = node.get("description").and_then(Value::as_str) {
                let _ = writeln!(out, "{d}\n");
            }
            let rows = node.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
            table(&mut out, &format!("{name}.{sub}"), rows.iter().map(|(k, v)| (k.as_str(), v)));
        }
    }
    out
}

fn table<'a>(out: &mut String, section: &str, rows: impl Iterator<Item = (&'a str, &'a Value)>) {
    let _ = writeln!(out, "| key | type | default | environment | meaning |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    for (name, v) in rows {
        let key = if section.is_empty() { name.to_string() } else { format!("{section}.{name}") };
        let _ = writeln!(
            out,
            "| `{key}` | {} | {} | `{}` | {} |",
            type_of(v),
            v.get("default").map(|d| format!("`{}`", plain(d))).unwrap_or_else(|| "–".into()),
            env_name(&key),
            cell(v.get("description").and_then(Value::as_str).unwrap_or("")),
        );
    }
    let _ = writeln!(out);
}

fn type_of(v: &Value) -> String {
    let base = match v.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" or "),
        _ => "any".into(),
    };
    match v.get("enum").and_then(Value::as_array) {
        Some(values) => {
            format!("{base}: {}", values.iter().map(|e| format!("`{}`", plain(e))).collect::<Vec<_>>().join(", "))
        }
        None => base,
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A table cell: one line, no bare `|`.
fn cell(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|")
}

/// The commented config file the package installs in /etc loads, and says
/// what the unit expects: the state directory and loopback listeners.
#[test]
fn the_packaged_config_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/contactbridge.toml");
    let config = contactbridge::config::Config::load(Some(&path)).expect("the packaged config loads");
    assert_eq!(config.data_dir, Path::new("/var/lib/contactbridge"));
    let unit = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/contactbridge.service"))
        .expect("reading the unit");
    assert!(unit.contains("StateDirectory=contactbridge"), "the unit's state directory is the config's data_dir");
    assert!(unit.contains("--config /etc/contactbridge/contactbridge.toml"), "the unit reads the packaged config");
}
