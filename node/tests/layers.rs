//! The node library's layers import downwards only: `protocol` and `config` are leaves,
//! `core` stands on them, `apps` on `core`, and `server` wires everything. Read from the
//! sources, so a new `use` that breaks the order fails here, with the file named.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each top-level module with the modules it may name, itself included.
const ALLOWED: &[(&str, &[&str])] = &[
    ("protocol", &["protocol"]),
    ("config", &["config"]),
    ("core", &["protocol", "config", "core"]),
    ("apps", &["protocol", "config", "core", "apps"]),
    ("server", &["protocol", "config", "core", "apps", "server"]),
];

/// Namespace paths of the apps, which only the apps, the server's wiring and the
/// configuration's defaults may spell out.
const APP_PATHS: &[&str] = &["\"/lobby\"", "\"/chat\"", "\"/todo\""];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its comments (doc links may point anywhere) and without
/// its unit tests (which may use any namespace as data).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("read source");
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a file names through `crate::`.
fn named_layers(code: &str) -> BTreeSet<String> {
    code.match_indices("crate::")
        .map(|(at, m)| {
            code[at + m.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

#[test]
fn layers_import_downwards_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut broken = Vec::new();
    for (layer, allowed) in ALLOWED {
        let mut files = Vec::new();
        let dir = src.join(layer);
        if dir.is_dir() {
            rust_files(&dir, &mut files);
        }
        let file = src.join(format!("{layer}.rs"));
        if file.is_file() {
            files.push(file);
        }
        assert!(!files.is_empty(), "no sources for layer {layer}");
        for file in files {
            let code = code(&file);
            for named in named_layers(&code) {
                if !allowed.contains(&named.as_str()) {
                    broken.push(format!("{} names crate::{named}", file.display()));
                }
            }
            let names_an_app = APP_PATHS.iter().any(|path| code.contains(path));
            if names_an_app && !matches!(*layer, "apps" | "server" | "config") {
                broken.push(format!("{} spells out an app's namespace", file.display()));
            }
        }
    }
    assert!(broken.is_empty(), "layering broken:\n{}", broken.join("\n"));
}
