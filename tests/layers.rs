//! The layers, checked in the source: the store and the model below it import
//! nothing from the layers above (the resolver, the servers, the CLI, sync,
//! accounts). Reads the files under `src/store/`, `src/model/` and
//! `src/phone/` and fails on any path into another top-level module of the
//! crate than the layer may use: `crate::x`, `crate::{x, …}`, `$crate::x`,
//! or `super::` climbing out of the layer.

use std::path::{Path, PathBuf};

/// A layer: its folder under `src/`, and the top-level modules it may name.
struct Layer {
    dir: &'static str,
    may_use: &'static [&'static str],
}

const LAYERS: &[Layer] = &[
    Layer { dir: "store", may_use: &["store", "model", "connector", "phone"] },
    Layer { dir: "model", may_use: &["model", "connector", "phone"] },
    Layer { dir: "phone", may_use: &["phone", "connector"] },
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file below `src/` (`store/sled/users.rs` → store, sled, users).
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let file = parts.pop().unwrap();
    if file != "mod.rs" {
        parts.push(file.trim_end_matches(".rs").to_string());
    }
    parts
}

fn ident_at(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules `code` (one file, in module `module`) names.
fn named_modules(code: &str, module: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for line in code.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue; // docs and comments may name other layers
        }
        let line = match line.find(" //") {
            Some(i) => &line[..i],
            None => line,
        };
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            let boundary = rest[..i].chars().last().is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
            let after = &rest[i + "crate::".len()..];
            if boundary {
                if let Some(group) = after.strip_prefix('{') {
                    // `crate::{a, b::c}`: the first segment of each item.
                    let inner = &group[..group.find('}').unwrap_or(group.len())];
                    for item in inner.split(',') {
                        let id = ident_at(item.trim());
                        if !id.is_empty() {
                            found.push(id.to_string());
                        }
                    }
                } else {
                    let id = ident_at(after);
                    // `crate::name!`: a macro exported at the crate root, not a module.
                    if !after[id.len()..].starts_with('!') {
                        found.push(id.to_string());
                    }
                }
            }
            rest = after;
        }
        let mut rest = line;
        while let Some(i) = rest.find("super::") {
            let boundary = rest[..i].chars().last().is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
            let mut after = &rest[i..];
            let mut ups = 0;
            while let Some(a) = after.strip_prefix("super::") {
                ups += 1;
                after = a;
            }
            if boundary {
                // Where the path lands: the module's ancestors, then the next segment.
                let kept = module.len().saturating_sub(ups);
                let first = if kept > 0 { module[0].clone() } else { ident_at(after).to_string() };
                found.push(first);
            }
            rest = after;
        }
    }
    found
}

/// Each file of `layer` and the modules it names that the layer may not use.
fn violations(root: &Path, layer: &Layer) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&root.join(layer.dir), &mut files);
    assert!(!files.is_empty(), "no source files under src/{}", layer.dir);
    let mut out = Vec::new();
    for f in files {
        let code = std::fs::read_to_string(&f).unwrap();
        let module = module_of(f.strip_prefix(root).unwrap());
        for m in named_modules(&code, &module) {
            if !layer.may_use.contains(&m.as_str()) && !m.is_empty() && m != "self" {
                out.push(format!("{} names crate::{m}", f.strip_prefix(root).unwrap().display()));
            }
        }
    }
    out
}

#[test]
fn the_store_and_the_model_import_nothing_from_the_layers_above() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    for layer in LAYERS {
        all.extend(violations(&root, layer));
    }
    assert!(
        all.is_empty(),
        "these files reach above their layer (the store may use only the model, the connector contract \
         and phone parsing; move the type down into src/model or the code up):\n  {}",
        all.join("\n  ")
    );
}

#[test]
fn the_checker_sees_every_way_of_naming_a_module() {
    let m =
        |code: &str, module: &[&str]| named_modules(code, &module.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_eq!(m("use crate::api::auth::StoredKey;", &["store", "api_keys"]), ["api"]);
    assert_eq!(m("use crate::{model::UserId, resolve::Status};", &["store"]), ["model", "resolve"]);
    assert_eq!(m("let s: crate::web::X = y;", &["store"]), ["web"]);
    assert_eq!(m("$crate::store::conformance::x()", &["store"]), ["store"]);
    assert!(m("crate::store_conformance!(|| new())", &["store"]).is_empty(), "a root macro is no module");
    assert_eq!(m("use super::super::accounts::RunRecord;", &["store", "sled", "accounts"]), ["store"]);
    assert_eq!(m("use super::accounts::RunRecord;", &["store"]), ["accounts"]);
    assert_eq!(m("use super::{Result, StoreError};", &["store", "sled"]), ["store"]);
    assert!(m("/// see [`crate::resolve`]", &["store"]).is_empty(), "docs may name other layers");
    assert!(m("use mycrate::api;", &["store"]).is_empty());
}
