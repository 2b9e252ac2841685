//! The OpenAPI 3.1 document, generated from the handlers' annotations. Served at
//! `/openapi.json`, printed by `sage-server openapi`, and kept in the repository as
//! `docs/openapi.json` (a test checks the copy is current; `cargo xtask docs` refreshes it).

use utoipa::OpenApi;

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::routes::{
    agents, auth, chat, conversations, knowledge_base, llm_providers, mcp, oauth2, observability,
    oss, skills, system, tasks, tools, upstream, users, versions, workspaces,
};

/// The failure envelope of every `/api` route (see docs/errors.md).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Documentation only.
struct ErrorEnvelope {
    /// Equals the HTTP status.
    code: u16,
    message: String,
    /// Always null on failure.
    data: Option<String>,
    timestamp: f64,
    /// The stable error key.
    error_code: String,
    /// Field-level detail, or `{request_id}` on 5xx.
    error_detail: Option<serde_json::Value>,
}

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("sage_session"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sage Server",
        description = "The hosted backend of the Sage AI-agent platform. `/api/*` answers use the \
                       `BaseResponse` envelope `{code, message, data, timestamp}`; `/tasks/*` answer \
                       plain JSON; `/oauth2/*` answer RFC 6749 bodies; chat routes stream one JSON \
                       object per line.",
        license(name = "Apache-2.0")
    ),
    paths(
        system::active, system::health, system::ready, system::system_info, system::update_settings,
        versions::check, versions::latest, versions::list, versions::create, versions::import, versions::delete,
        oss::upload, oss::download,
        skills::list, skills::agent_available, skills::upload, skills::upload_batch, skills::import_url, skills::delete,
        skills::content, skills::update_content, skills::sync_to_agent, skills::sync_to_agent_workspaces,
        skills::sync_workspace,
        mcp::add, mcp::list, mcp::update, mcp::delete, mcp::refresh, mcp::toggle, mcp::preview,
        mcp::preview_draft, mcp::upsert_tool, mcp::delete_tool,
        knowledge_base::add, knowledge_base::update, knowledge_base::info, knowledge_base::retrieve,
        knowledge_base::list, knowledge_base::delete, knowledge_base::clear, knowledge_base::redo_all,
        knowledge_base::doc_list, knowledge_base::doc_info, knowledge_base::doc_info_query,
        knowledge_base::add_by_files, knowledge_base::doc_delete, knowledge_base::doc_redo,
        knowledge_base::task_process, knowledge_base::task_redo,
        upstream::start, upstream::start_default, upstream::link, upstream::callback,
        auth::send_code, auth::register, auth::login, auth::session, auth::providers, auth::logout, auth::refresh,
        users::user_options, users::change_password, users::update_profile, users::list_users, users::add_user, users::delete_user,
        users::get_config, users::update_config,
        llm_providers::verify, llm_providers::verify_capabilities, llm_providers::verify_capabilities_stored,
        llm_providers::verify_multimodal, llm_providers::list_providers, llm_providers::create_provider,
        llm_providers::update_provider, llm_providers::delete_provider,
        agents::list_agents, agents::default_prompt, agents::create_agent, agents::get_agent, agents::update_agent,
        agents::delete_agent, agents::get_grants, agents::set_grants, agents::auto_generate, agents::optimize_prompt,
        agents::abilities, agents::submit_auto_generate, agents::submit_optimize, agents::get_task,
        agents::cancel_task, workspaces::list_files, workspaces::download_file, workspaces::delete_file,
        workspaces::upload_file, workspaces::delete_workspace,
        observability::jaeger_login, observability::jaeger_auth, observability::jaeger_redirect,
        observability::metrics,
        chat::chat, chat::stream, chat::web_stream, chat::resume, chat::active_sessions,
        chat::interrupt, chat::tasks_status, chat::submit_questionnaire, chat::optimize_input,
        chat::optimize_input_stream,
        chat::inject_guidance, chat::list_guidance, chat::update_guidance, chat::delete_guidance,
        conversations::list, conversations::messages, conversations::shared_messages, conversations::title,
        conversations::delete, conversations::edit_last_user_message, conversations::rerun_stream,
        conversations::share, conversations::list_session_files, conversations::download_session_file,
        conversations::delete_session_file, conversations::download,
        conversations::usage_stats, conversations::token_stats,
        tools::list_tools, tools::exec_tool,
        tasks::list_one_time, tasks::get_one_time, tasks::create_one_time, tasks::update_one_time,
        tasks::delete_one_time, tasks::one_time_history, tasks::list_recurring, tasks::get_recurring,
        tasks::create_recurring, tasks::update_recurring, tasks::delete_recurring,
        tasks::toggle_recurring, tasks::recurring_history, tasks::spawn_due, tasks::due, tasks::claim,
        tasks::complete, tasks::fail, tasks::complete_recurring,
        oauth2::well_known_oauth, oauth2::well_known_openid, oauth2::metadata, oauth2::authorize,
        oauth2::consent, oauth2::token, oauth2::userinfo, oauth2::userinfo_post, oauth2::jwks, oauth2::revoke,
        oauth2::introspect,
    ),
    components(schemas(ErrorEnvelope)),
    modifiers(&Security),
    security(("session_cookie" = []), ("bearer" = [])),
    tags(
        (name = "system", description = "Liveness, health and system settings"),
        (name = "auth", description = "Registration, login, sessions and tokens (aliases under /api/user)"),
        (name = "users", description = "User administration and per-user configuration"),
        (name = "llm-provider", description = "OpenAI-compatible LLM providers (keys masked, owner-only)"),
        (name = "agent", description = "Agents: configurations, sharing, generation"),
        (name = "chat", description = "Chat runs: NDJSON streams, resume, interrupt, running sessions"),
        (name = "conversations", description = "History: list, messages, sharing, edit and re-run, downloads, usage statistics"),
        (name = "tools", description = "The tool catalogue and direct tool calls"),
        (name = "mcp", description = "MCP servers (streamable HTTP) whose tools agents use by name"),
        (name = "knowledge-base", description = "Knowledge bases: documents processed in the background into passages, full-text retrieval"),
        (name = "skills", description = "Skills (SKILL.md packages): the system's, each user's, and copies in agent workspaces"),
        (name = "planner", description = "One-time and recurring (cron) tasks and the worker's protocol; plain JSON, errors `{detail, code}`"),
        (name = "observability", description = "Jaeger gate and Prometheus metrics"),
        (name = "oauth2", description = "OAuth2 authorization server (RFC 6749, PKCE S256, OpenID Connect id_tokens); RFC 6749 bodies; the same routes under /api/oauth2"),
    )
)]
struct ApiDoc;

/// The methods the document declares for a concrete request path (`{param}` segments match
/// any one segment), for the `Allow` header of 405 answers.
pub(crate) fn allowed_methods(path: &str) -> Vec<String> {
    static ROUTES: std::sync::OnceLock<Vec<(Vec<String>, Vec<String>)>> =
        std::sync::OnceLock::new();
    let routes = ROUTES.get_or_init(|| {
        let doc = ApiDoc::openapi();
        let mut routes: Vec<(Vec<String>, Vec<String>)> = doc
            .paths
            .paths
            .iter()
            .map(|(template, item)| {
                let value = serde_json::to_value(item).unwrap_or_default();
                let methods = value
                    .as_object()
                    .map(|m| {
                        m.keys()
                            .filter(|k| {
                                matches!(
                                    k.as_str(),
                                    "get"
                                        | "post"
                                        | "put"
                                        | "delete"
                                        | "patch"
                                        | "head"
                                        | "options"
                                )
                            })
                            .map(|k| k.to_ascii_uppercase())
                            .collect()
                    })
                    .unwrap_or_default();
                (template.split('/').map(str::to_owned).collect(), methods)
            })
            .collect();
        routes.push((
            vec![String::new(), "openapi.json".into()],
            vec!["GET".into()],
        ));
        routes
    });
    let segments: Vec<&str> = path.split('/').collect();
    let mut out: Vec<String> = routes
        .iter()
        .filter(|(template, _)| {
            template.len() == segments.len()
                && template.iter().zip(&segments).all(|(t, s)| {
                    t == s || (t.starts_with('{') && t.ends_with('}') && !s.is_empty())
                })
        })
        .flat_map(|(_, methods)| methods.iter().cloned())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The document as pretty JSON.
pub fn document_json() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.to_pretty_json().unwrap_or_else(|_| "{}".to_owned())
}

/// Test helper: a generated file must equal what the code produces. A stale file is rewritten
/// and the test fails, so the fix is to commit the rewritten file (rust-analyzer's pattern).
#[cfg(test)]
pub(crate) fn ensure_file_contents(relative: &str, expected: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(relative);
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    if on_disk != expected {
        std::fs::write(&path, expected).unwrap();
        panic!("{relative} was stale and has been regenerated; commit it");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_and_lists_the_routes() {
        let doc: serde_json::Value = serde_json::from_str(&document_json()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        for path in ["/active", "/api/health", "/api/system/info"] {
            assert!(doc["paths"][path]["get"].is_object(), "{path} missing");
        }
    }

    #[test]
    fn allowed_methods_come_from_the_document() {
        assert_eq!(allowed_methods("/api/health"), vec!["GET"]);
        assert_eq!(
            allowed_methods("/api/agent/agent_123"),
            vec!["DELETE", "GET", "PUT"]
        );
        assert_eq!(allowed_methods("/api/user/config"), vec!["GET", "POST"]);
        assert!(allowed_methods("/nowhere").is_empty());
    }

    #[test]
    fn docs_openapi_json_is_current() {
        ensure_file_contents("docs/openapi.json", &format!("{}\n", document_json()));
    }
}
