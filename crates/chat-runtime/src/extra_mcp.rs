//! `extra_mcp_config`: MCP servers a request attaches to its run. Unlike Sage, which registers
//! them in its global tool manager for everyone, they exist only for this run: each is
//! connected (through the outbound policy, like a registered server) before anything is
//! stored, and its tools join the run's (a built-in's name keeps the built-in).

use std::sync::Arc;

use serde_json::Value;
use tooling::Tool;
use tooling::mcp::Endpoint;

use crate::ChatError;

/// Servers one request may attach.
const MAX_SERVERS: usize = 4;
/// Tools they may add in all.
const MAX_TOOLS: usize = 64;
const MAX_URL_BYTES: usize = 2048;

fn invalid(reason: String) -> ChatError {
    ChatError::Invalid {
        field: "extra_mcp_config",
        reason,
    }
}

/// The servers of `config` (`null`, `{}` or absent: none), each with where it answers.
fn servers(config: Option<&Value>) -> Result<Vec<(String, Endpoint)>, ChatError> {
    let map = match config {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(invalid("must be an object of servers by name".into())),
    };
    if map.len() > MAX_SERVERS {
        return Err(invalid(format!("at most {MAX_SERVERS} servers")));
    }
    let mut out = Vec::new();
    for (name, server) in map {
        if !platform::ids::is_safe_id(name) {
            return Err(invalid(format!(
                "server names take 1 to 64 letters, digits, `_` or `-`, not `{name}`"
            )));
        }
        let text = |key: &str| {
            server
                .get(key)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        let (url, sse) = match (text("streamable_http_url").or(text("url")), text("sse_url")) {
            (Some(url), _) => (url, false),
            (None, Some(url)) => (url, true),
            (None, None) if server.get("command").is_some() => {
                return Err(invalid(format!(
                    "`{name}`: servers run as commands (stdio) are not started here; give its `url`"
                )));
            }
            (None, None) => {
                return Err(invalid(format!(
                    "`{name}` needs `streamable_http_url`, `url` or `sse_url`"
                )));
            }
        };
        if url.len() > MAX_URL_BYTES || !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(invalid(format!(
                "`{name}`: the address must be an http(s) URL of at most {MAX_URL_BYTES} bytes"
            )));
        }
        out.push((
            name.clone(),
            Endpoint {
                url: url.to_owned(),
                api_key: text("api_key").map(str::to_owned),
                sse,
            },
        ));
    }
    Ok(out)
}

/// Connects to every server of `config` and returns their tools; a server that cannot be
/// reached, or a config that cannot be read, refuses the request.
pub(crate) async fn tools(
    mcp: &dyn tooling::mcp::McpServers,
    config: Option<&Value>,
) -> Result<Vec<Arc<dyn Tool>>, ChatError> {
    let servers = servers(config)?;
    let connected = futures_util::future::join_all(
        servers
            .iter()
            .map(|(name, endpoint)| mcp.connect(name, endpoint.clone())),
    )
    .await;
    let mut tools = Vec::new();
    for ((name, _), result) in servers.iter().zip(connected) {
        let found = result.map_err(|e| invalid(format!("`{name}` did not answer: {e}")))?;
        tools.extend(found);
    }
    if tools.len() > MAX_TOOLS {
        return Err(invalid(format!(
            "the servers offer {} tools; at most {MAX_TOOLS} may join a run",
            tools.len()
        )));
    }
    Ok(tools)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_each_transport_and_refuses_what_it_cannot_reach() {
        assert!(servers(None).unwrap().is_empty());
        assert!(servers(Some(&json!(null))).unwrap().is_empty());
        let found = servers(Some(&json!({
            "docs": {"streamable_http_url": "http://127.0.0.1:9/mcp", "api_key": "k"},
            "old": {"sse_url": "https://example.com/sse"},
            "plain": {"url": "http://127.0.0.1:9/mcp", "api_key": ""}
        })))
        .unwrap();
        assert_eq!(found.len(), 3);
        let by = |n: &str| &found.iter().find(|(name, _)| name == n).unwrap().1;
        assert_eq!(by("docs").api_key.as_deref(), Some("k"));
        assert!(!by("docs").sse && by("old").sse);
        assert_eq!(by("plain").api_key, None);

        for (config, wanted) in [
            (json!([]), "object"),
            (json!({"a": {"command": "npx", "args": ["x"]}}), "stdio"),
            (json!({"a": {}}), "needs"),
            (json!({"a": {"url": "file:///etc/passwd"}}), "http(s)"),
            (json!({"bad name": {"url": "http://x"}}), "server names"),
            (
                json!({"a": {"url": "http://x"}, "b": {"url": "http://x"}, "c": {"url": "http://x"},
                       "d": {"url": "http://x"}, "e": {"url": "http://x"}}),
                "at most",
            ),
        ] {
            match servers(Some(&config)) {
                Err(ChatError::Invalid { reason, .. }) => {
                    assert!(reason.contains(wanted), "{config}: {reason}")
                }
                other => panic!("{config}: {other:?}"),
            }
        }
    }
}
