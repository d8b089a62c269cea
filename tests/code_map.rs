//! The docs keep up with the code: every module under `src/` is named in the code map of
//! `docs/architecture.md`, and `README.md` stays a short front page.

use std::fs;
use std::path::{Path, PathBuf};

const CODE_MAP: &str = "docs/architecture.md";
const README_MAX_LINES: usize = 220;

fn crate_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, as a path relative to `root` with `/` separators.
fn rust_files(root: &Path, dir: &Path, found: &mut Vec<String>) {
    let entries =
        fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(root, &path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let relative = path
                .strip_prefix(root)
                .expect("a path under the crate root");
            let parts: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            found.push(parts.join("/"));
        }
    }
}

#[test]
fn every_module_under_src_is_in_the_code_map() {
    let root = crate_root();
    let map = fs::read_to_string(root.join(CODE_MAP))
        .unwrap_or_else(|e| panic!("cannot read {CODE_MAP}: {e}"));
    let mut files = Vec::new();
    rust_files(&root, &root.join("src"), &mut files);
    files.sort();
    assert!(!files.is_empty(), "no .rs file found under src/");

    let missing: Vec<&str> = files
        .iter()
        .map(String::as_str)
        .filter(|f| !map.contains(f))
        .collect();
    assert!(
        missing.is_empty(),
        "{} file(s) under src/ are not in the code map of {CODE_MAP}; add a line for each:\n  {}",
        missing.len(),
        missing.join("\n  ")
    );
}

#[test]
fn readme_stays_short() {
    let readme = fs::read_to_string(crate_root().join("README.md")).expect("README.md");
    let lines = readme.lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines, more than {README_MAX_LINES}: move details to docs/"
    );
}

#[test]
fn the_token_lengths_the_docs_give_are_the_codes() {
    use smsreg::domain::invitation::{LEGACY_TOKEN_LEN, TOKEN_LEN};
    let readme = fs::read_to_string(crate_root().join("README.md")).unwrap();
    let claim = format!("tokens exactly {TOKEN_LEN} characters ({LEGACY_TOKEN_LEN} for links");
    assert!(
        readme.replace("\n ", "").contains(&claim),
        "README.md's limits say {claim:?}"
    );
    let api = fs::read_to_string(crate_root().join("docs/api.md")).unwrap();
    let claim = format!("exactly {TOKEN_LEN} URL-safe characters ({LEGACY_TOKEN_LEN} for links");
    assert!(
        api.replace("\n ", "").contains(&claim),
        "docs/api.md says {claim:?}"
    );
    assert_eq!(smsreg::domain::Token::generate().as_str().len(), TOKEN_LEN);
}
