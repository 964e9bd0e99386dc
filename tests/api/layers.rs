//! The layers lean one way (ARCHITECTURE.md, "Layers"): the domain never names the HTTP edge,
//! and neither the domain nor the edge names the process's composition (`app`, `cli`, …).
//!
//! Reads `src/` as text: every `crate::` path, including the names inside grouped imports
//! (`use crate::{db, http};`), is resolved to the top-level module it starts from.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Modules that answer HTTP: they may use the domain, never the top.
const EDGE: &[&str] = &["http", "web"];
/// The composition of the process: may use everything, used by nothing but each other.
const TOP: &[&str] = &["app", "cli", "demo", "bench", "main", "lib"];

#[test]
fn the_domain_names_neither_the_edge_nor_the_top() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(
        files.len() > 50,
        "expected the crate's sources under {}, found {} files",
        src.display(),
        files.len()
    );

    let mut breaches = Vec::new();
    for file in &files {
        let layer = top_module(&src, file);
        if TOP.contains(&layer.as_str()) {
            continue;
        }
        let forbidden: Vec<&str> = if EDGE.contains(&layer.as_str()) {
            TOP.to_vec()
        } else {
            EDGE.iter().chain(TOP).copied().collect()
        };
        let text = std::fs::read_to_string(file).expect("source file is readable");
        for used in crate_modules_used(&text) {
            if forbidden.contains(&used.as_str()) {
                breaches.push(format!(
                    "{} ({layer}) uses crate::{used}",
                    file.strip_prefix(&src).unwrap().display()
                ));
            }
        }
    }
    assert!(
        breaches.is_empty(),
        "layers crossed the wrong way:\n  {}",
        breaches.join("\n  ")
    );
}

#[test]
fn the_scan_sees_plain_grouped_and_nested_paths() {
    let text = r#"
        use crate::error::Error;
        use crate::{db, http::error::ApiError};
        use crate::{
            stores::{self, Store},
            web,
        };
        // use crate::cli; is only a comment
        fn f() { crate::app::run(); }
    "#;
    let used = crate_modules_used(text);
    let expected: BTreeSet<String> = ["error", "db", "http", "stores", "web", "app"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(used, expected);
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/stores/handshake.rs` → `stores`; `src/review.rs` → `review`.
fn top_module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("file under src/");
    let first = rel.components().next().expect("non-empty path");
    let name = first.as_os_str().to_string_lossy();
    name.strip_suffix(".rs").unwrap_or(&name).to_string()
}

/// The top-level modules named by `crate::` paths in `text`, comments left out.
fn crate_modules_used(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut used = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        // `catalogd_crate::x` or `my_crate::x` are other paths, not ours.
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let trimmed = rest.trim_start();
        if let Some(group) = trimmed.strip_prefix('{') {
            used.extend(group_heads(group));
        } else {
            let name = ident(trimmed);
            if !name.is_empty() {
                used.insert(name.to_string());
            }
        }
    }
    used
}

/// The first segment of each path in a `{…}` group (the text after its `{`), at depth one.
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 1;
    let mut expecting = true;
    let mut i = 0;
    let bytes = group.as_bytes();
    while i < bytes.len() && depth > 0 {
        let c = bytes[i] as char;
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 1 => expecting = true,
            c if expecting && depth == 1 && (c.is_alphabetic() || c == '_') => {
                let name = ident(&group[i..]);
                heads.push(name.to_string());
                i += name.len();
                expecting = false;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    heads
}

fn ident(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}
