//! Route coverage against the endpoint index of the Sage HTTP API reference
//! (`fixtures/spec/endpoints.tsv`). Every (method, path) pair is called anonymously with
//! sample path parameters. A pair is routed when the answer is not routing's own
//! `route.not_found`/`route.method_not_allowed`. The test prints how many pairs are routed;
//! it fails when a path is routed but refuses the spec's method, and when a pair of a family
//! that has landed (`STRICT`) is not routed.

use std::collections::BTreeMap;

use crate::helpers::TestApp;

pub(crate) fn spec_endpoints() -> Vec<(String, String)> {
    endpoints()
}

pub(crate) fn sample_path(path: &str) -> String {
    sample(path)
}

/// Families that must be fully routed: exact paths, or prefixes ending in `/`.
const STRICT: &[&str] = &[
    "/active",
    "/api/health",
    "/api/ready",
    "/api/system/info",
    "/api/system/update_settings",
    "/api/system/version",
    "/api/system/version/",
    "/api/oss/",
    "/api/skills",
    "/api/skills/",
    "/api/mcp/",
    "/api/knowledge-base/",
    "/api/auth/register/send-code",
    "/api/auth/register",
    "/api/auth/login",
    "/api/auth/session",
    "/api/auth/providers",
    "/api/auth/logout",
    "/api/auth/upstream/",
    "/api/user/",
    "/api/llm-provider/",
    "/api/agent/",
    "/api/observability/",
    "/api/chat",
    "/api/chat/",
    "/api/stream",
    "/api/web-stream",
    "/api/stream/",
    "/api/sessions/",
    "/api/conversations",
    "/api/conversations/",
    "/api/share/",
    "/api/system/agent/usage-stats",
    "/api/token-usage/",
    "/api/tools",
    "/api/tools/",
    "/tasks/",
    "/oauth2/",
    "/api/oauth2/",
    "/.well-known/",
];

/// Compatibility aliases of documented `/api/auth/*` routes.
const ALIASES: &[&str] = &[
    "/api/user/register/send-code",
    "/api/user/register",
    "/api/user/login",
    "/api/user/auth-providers",
    "/api/user/oauth/login/{provider_id}",
    "/api/user/oauth/login",
    "/api/user/oauth/callback/{provider_id}",
    "/api/user/logout",
    "/api/user/check_login",
    // `/oauth2/*` is documented; `/api/oauth2/*` serves the same handlers.
    "/api/oauth2/metadata",
    "/api/oauth2/authorize",
    "/api/oauth2/token",
    "/api/oauth2/userinfo",
];

/// Routes the Sage web UI calls that the endpoint index does not list; walked like the index
/// (here and by the gate test) and required to be routed and documented.
const EXTRA: &[(&str, &str)] = &[
    ("PUT", "/api/user/profile"),
    ("POST", "/api/conversations/{session_id}/share"),
    ("POST", "/api/sessions/{session_id}/file_workspace"),
    ("GET", "/api/sessions/{session_id}/file_workspace/download"),
    ("DELETE", "/api/sessions/{session_id}/file_workspace/delete"),
    ("GET", "/api/sessions/{session_id}/download"),
    ("POST", "/api/token-usage/stats"),
    ("GET", "/api/knowledge-base/doc/info"),
    ("POST", "/api/skills/upload-batch"),
    ("POST", "/api/mcp/anytool/preview-draft"),
    ("POST", "/api/mcp/anytool/tool"),
    ("DELETE", "/api/mcp/anytool/tool/{tool_name}"),
    ("POST", "/api/questionnaires/{questionnaire_id}/submit"),
];

const ANY_METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH"];

fn endpoints() -> Vec<(String, String)> {
    let text = include_str!("../../../../fixtures/spec/endpoints.tsv");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .flat_map(|l| {
            let (method, path) = l.split_once('\t').expect("method<TAB>path");
            let methods: Vec<&str> = if method == "ANY" {
                ANY_METHODS.to_vec()
            } else {
                vec![method]
            };
            methods
                .into_iter()
                .map(|m| (m.to_owned(), path.to_owned()))
                .collect::<Vec<_>>()
        })
        .chain(
            EXTRA
                .iter()
                .map(|(m, p)| ((*m).to_owned(), (*p).to_owned())),
        )
        .collect()
}

/// `{agent_id}` → `sample-agent_id`, so parameters are one plain segment.
fn sample(path: &str) -> String {
    path.split('/')
        .map(
            |seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => format!("sample-{name}"),
                None => seg.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

fn is_strict(path: &str) -> bool {
    STRICT
        .iter()
        .any(|s| path == *s || (s.ends_with('/') && path.starts_with(s)))
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Routed,
    NotRouted,
    WrongMethod,
}

async fn outcome(app: &TestApp, client: &reqwest::Client, method: &str, path: &str) -> Outcome {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let response = client
        .request(method, app.url(&sample(path)))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    // An event stream never ends by itself; its answer is proof enough of a route.
    let streaming = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if streaming {
        return Outcome::Routed;
    }
    let body = response.text().await.unwrap_or_default();
    let routing_error = |key: &str| {
        serde_json::from_str::<serde_json::Value>(&body)
            .map(|v| v["error_code"] == key)
            .unwrap_or(body == "Not Found" || body == "Method Not Allowed")
    };
    match status {
        404 if routing_error("route.not_found") => Outcome::NotRouted,
        405 if routing_error("route.method_not_allowed") => Outcome::WrongMethod,
        _ => Outcome::Routed,
    }
}

#[tokio::test]
async fn every_spec_endpoint_is_routed_with_its_method() {
    let app = TestApp::spawn().await;
    // Called as an admin, so the authentication gate never hides routing's answer.
    let admin = app.admin().await;
    let pairs = endpoints();
    assert!(pairs.len() >= 140, "the endpoint index is incomplete");
    let mut by_outcome: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut failures = Vec::new();
    for (method, path) in &pairs {
        // Logging out ends a session, so logout routes get a session of their own.
        let client = if path.ends_with("/logout") {
            app.admin().await
        } else {
            admin.clone()
        };
        let result = outcome(&app, &client, method, path).await;
        let label = format!("{method} {path}");
        match result {
            Outcome::Routed => by_outcome.entry("routed").or_default().push(label),
            Outcome::NotRouted if is_strict(path) => failures.push(format!("{label}: not routed")),
            Outcome::NotRouted => by_outcome.entry("not yet routed").or_default().push(label),
            Outcome::WrongMethod => failures.push(format!("{label}: routed with another method")),
        }
    }
    // Every routed spec endpoint is in the OpenAPI document (aliases of documented routes and
    // the Jaeger catch-all excepted), so the document cannot silently fall behind the router.
    let doc: serde_json::Value = admin
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let template = |p: &str| {
        p.split('/')
            .map(|seg| if seg.starts_with('{') { "{}" } else { seg })
            .collect::<Vec<_>>()
            .join("/")
    };
    let documented: std::collections::BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            let path = template(path);
            item.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_ascii_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    for label in by_outcome.get("routed").into_iter().flatten() {
        let (method, path) = label.split_once(' ').unwrap();
        let alias = ALIASES.contains(&path);
        if alias || path == "/api/observability/jaeger/{full_path}" {
            continue;
        }
        if !documented.contains(&(method.to_owned(), template(path))) {
            failures.push(format!("{label}: routed but missing from /openapi.json"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let routed = by_outcome.get("routed").map_or(0, Vec::len);
    println!(
        "route coverage: {routed} of {} (method, path) pairs routed",
        pairs.len()
    );
    assert!(
        failures.is_empty(),
        "route coverage failures:\n{}",
        failures.join("\n")
    );
    assert!(routed >= STRICT.len());
}
