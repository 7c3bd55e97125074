//! The shape docs/architecture.md promises (issue 20), checked on the source itself:
//! imports between top-level modules of the daemon point one way (no cycle), and no file
//! in `src/` grows past ~450 lines. A history merge once brought `store → jobs` back
//! (`store/export.rs` took `Job` from `jobs` instead of `domain`); this catches that.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 450;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Whether a file holds only tests (its module is compiled under `cfg(test)`).
fn is_test_file(rel: &Path) -> bool {
    rel.components().any(|c| {
        let c = c.as_os_str().to_string_lossy();
        c == "tests" || c == "tests.rs" || c.ends_with("_tests.rs")
    })
}

/// `crate::x` paths in `text`, outside `#[cfg(test)]` modules written inline (cut at the
/// first `#[cfg(test)]\nmod tests {`).
fn crate_refs(text: &str) -> BTreeSet<String> {
    let text = text.split("#[cfg(test)]\nmod tests {").next().unwrap_or("");
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&root).unwrap();
        if is_test_file(rel) {
            continue;
        }
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let top = first.trim_end_matches(".rs").to_owned();
        if top == "main" || top == "lib" {
            continue;
        }
        let text = fs::read_to_string(&f).unwrap();
        let entry = deps.entry(top.clone()).or_default();
        entry.extend(crate_refs(&text).into_iter().filter(|m| *m != top));
    }
    deps
}

/// A path `from → … → to` through `deps`, if there is one.
fn path(deps: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> Option<Vec<String>> {
    let mut stack = vec![vec![from.to_owned()]];
    let mut seen = BTreeSet::new();
    while let Some(p) = stack.pop() {
        let last = p.last().unwrap().clone();
        for next in deps.get(&last).into_iter().flatten() {
            let mut q = p.clone();
            q.push(next.clone());
            if next == to {
                return Some(q);
            }
            if seen.insert(next.clone()) {
                stack.push(q);
            }
        }
    }
    None
}

#[test]
fn top_level_modules_import_each_other_one_way_only() {
    let deps = module_graph();
    assert!(
        deps.contains_key("jobs") && deps["jobs"].contains("store"),
        "{deps:?}"
    );
    let mut cycles = Vec::new();
    for (m, targets) in &deps {
        for t in targets {
            if let Some(back) = path(&deps, t, m) {
                cycles.push(format!("{m} → {}", back.join(" → ")));
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "import cycles between top-level modules: {cycles:#?}"
    );
}

#[test]
fn no_source_file_is_longer_than_450_lines() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = fs::read_to_string(f).unwrap().lines().count();
            (n > MAX_LINES).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these: {long:#?}");
}

#[test]
fn the_check_sees_a_cycle_when_there_is_one() {
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    deps.entry("jobs".into())
        .or_default()
        .insert("store".into());
    deps.entry("store".into())
        .or_default()
        .insert("domain".into());
    assert_eq!(path(&deps, "store", "jobs"), None);
    deps.entry("store".into())
        .or_default()
        .insert("jobs".into());
    assert_eq!(
        path(&deps, "store", "jobs"),
        Some(vec!["store".into(), "jobs".into()])
    );
    assert_eq!(
        crate_refs("use crate::domain::Job;\n#[cfg(test)]\nmod tests {\nuse crate::jobs::X;\n}"),
        BTreeSet::from(["domain".to_owned()])
    );
}
