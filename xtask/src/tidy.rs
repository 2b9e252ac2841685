//! Tidy checks over the whole workspace, run as tests: the dependency rule, module docs on
//! every source file, no banned test attributes, and workspace lints inherited everywhere.

#![cfg(test)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::root;

/// Workspace crates each domain crate may depend on (the DAG of ARCHITECTURE.md).
fn allowed_workspace_deps() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    let mut rules = BTreeMap::new();
    let mut allow = |krate: &'static str, deps: &[&'static str]| {
        rules.insert(krate, deps.iter().copied().collect::<BTreeSet<_>>());
    };
    allow("platform", &[]);
    allow("migration", &["platform"]);
    allow("identity", &["platform"]);
    allow("oauth-as", &["platform", "identity"]);
    allow("conversations", &["platform"]);
    allow("providers", &["platform"]);
    allow("tooling", &["platform"]);
    allow("planner", &["platform"]);
    allow("releases", &["platform"]);
    allow("knowledge", &["platform", "providers"]);
    allow("agents", &["platform", "providers"]);
    allow(
        "chat-runtime",
        &[
            "platform",
            "agents",
            "conversations",
            "providers",
            "tooling",
            "knowledge",
        ],
    );
    rules
}

fn metadata() -> Value {
    let output = crate::cargo()
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("metadata is JSON")
}

#[test]
fn domain_crates_follow_the_dependency_rule() {
    let meta = metadata();
    let members: BTreeSet<String> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    let rules = allowed_workspace_deps();
    let mut problems = Vec::new();
    for package in meta["packages"].as_array().unwrap() {
        let name = package["name"].as_str().unwrap();
        if name == "server" || name == "bench-bare" || name == "xtask" || name == "llm-double" {
            continue;
        }
        let Some(allowed) = rules.get(name) else {
            problems.push(format!(
                "{name}: not in the dependency table of the tidy test"
            ));
            continue;
        };
        for dep in package["dependencies"].as_array().unwrap() {
            let dep_name = dep["name"].as_str().unwrap();
            let is_dev = dep["kind"].as_str() == Some("dev");
            if dep_name.starts_with("actix") || dep_name == "server" {
                problems.push(format!(
                    "{name} depends on {dep_name}: domain crates never see HTTP"
                ));
            }
            if members.contains(dep_name) && !is_dev && !allowed.contains(dep_name) {
                problems.push(format!("{name} depends on {dep_name}, outside the DAG"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn test_support_never_ships_in_the_server() {
    let meta = metadata();
    for package in meta["packages"].as_array().unwrap() {
        for dep in package["dependencies"].as_array().unwrap() {
            if dep["name"] == "llm-double" {
                assert_eq!(
                    dep["kind"].as_str(),
                    Some("dev"),
                    "{} depends on llm-double outside its tests",
                    package["name"]
                );
            }
        }
    }
}

#[test]
fn the_checker_sees_a_violation() {
    // Guards the test above against silently checking nothing.
    let rules = allowed_workspace_deps();
    assert!(!rules["identity"].contains("agents"));
    assert!(rules["chat-runtime"].contains("agents"));
    assert!(metadata()["packages"].as_array().unwrap().len() >= 12);
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') && name != "data" {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

fn workspace_sources() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["apps", "crates", "migrations", "xtask"] {
        rust_files(&root().join(dir), &mut files);
    }
    assert!(files.len() > 20, "found only {} files", files.len());
    files
}

#[test]
fn every_source_file_opens_with_a_module_doc() {
    let missing: Vec<_> = workspace_sources()
        .into_iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            !text.trim_start().starts_with("//!")
        })
        .collect();
    assert!(
        missing.is_empty(),
        "files without a `//!` paragraph: {missing:#?}"
    );
}

#[test]
fn no_test_is_ignored_or_serialised() {
    let banned = ["#[ignore", "#[should_panic", "#[serial"];
    let mut hits = Vec::new();
    for file in workspace_sources() {
        if file.ends_with("tidy.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for (n, line) in text.lines().enumerate() {
            if banned.iter().any(|b| line.trim_start().starts_with(b)) {
                hits.push(format!("{}:{}", file.display(), n + 1));
            }
        }
    }
    assert!(hits.is_empty(), "banned test attributes: {hits:#?}");
}

#[test]
fn every_member_inherits_the_workspace_lints() {
    let meta = metadata();
    let mut missing = Vec::new();
    for package in meta["packages"].as_array().unwrap() {
        let manifest = package["manifest_path"].as_str().unwrap();
        let text = std::fs::read_to_string(manifest).unwrap();
        if !text.contains("[lints]\nworkspace = true") {
            missing.push(manifest.to_owned());
        }
    }
    assert!(
        missing.is_empty(),
        "manifests without `[lints] workspace = true`: {missing:#?}"
    );
}

/// The names of the types that derive `ToSchema` in one source text (a `#[schema(as = …)]`
/// rename counts under its new name).
fn schema_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut pending = false;
    let mut renamed: Option<String> = None;
    for line in text.lines().map(str::trim_start) {
        if line.starts_with("#[derive(") && line.contains("ToSchema") {
            pending = true;
            renamed = None;
        } else if pending && line.starts_with("#[schema(as") {
            renamed = line
                .split('=')
                .nth(1)
                .map(|s| s.trim_end_matches(")]").trim().to_owned());
        } else if pending
            && let Some(rest) = line
                .strip_prefix("pub(crate) struct ")
                .or_else(|| line.strip_prefix("pub struct "))
                .or_else(|| line.strip_prefix("struct "))
                .or_else(|| line.strip_prefix("pub(crate) enum "))
                .or_else(|| line.strip_prefix("pub enum "))
                .or_else(|| line.strip_prefix("enum "))
        {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            names.push(renamed.take().unwrap_or(name));
            pending = false;
        }
    }
    names
}

#[test]
fn openapi_schema_names_are_unique() {
    // utoipa keys components by the type's bare name: two `ToSchema` types of one name in
    // different route files silently document one shape for both.
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut clashes = Vec::new();
    let mut files = Vec::new();
    rust_files(&root().join("apps/server/src"), &mut files);
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for name in schema_names(&text) {
            if let Some(first) = seen.insert(name.clone(), file.clone()) {
                clashes.push(format!(
                    "{name}: {} and {}",
                    first.display(),
                    file.display()
                ));
            }
        }
    }
    assert!(seen.len() > 50, "found only {} schemas", seen.len());
    assert!(clashes.is_empty(), "schema names used twice: {clashes:#?}");
}

#[test]
fn the_schema_name_check_sees_a_clash() {
    let text = "#[derive(Debug, Serialize, ToSchema)]\npub(crate) struct A {\n}\n#[derive(ToSchema)]\n#[allow(dead_code)]\nstruct B;\n#[derive(Deserialize, IntoParams)]\npub(crate) struct C {}\n";
    assert_eq!(schema_names(text), ["A", "B"]);
}
