//! The registry: which tools exist, their schemas, and running one call within its limits.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::builtin;
use crate::tool::{Tool, ToolContext, ToolError, ToolOutput};

/// Limits of every call.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub time_limit: Duration,
    /// Largest output, in bytes of its JSON text; longer output is cut and marked.
    pub output_cap: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            time_limit: Duration::from_secs(60),
            output_cap: 64 * 1024,
        }
    }
}

/// One tool as the catalogue shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolInfo {
    pub name: String,
    pub description: String,
    /// The JSON schema of the arguments.
    pub parameters: Value,
    /// Whether it changes files.
    pub writes: bool,
    /// The built-in MCP server it belongs to (see [`Tool::builtin_server`]).
    pub builtin_server: Option<&'static str>,
}

/// The tools a deployment offers.
#[derive(Clone)]
pub struct Registry {
    tools: BTreeMap<String, Arc<dyn Tool>>,
    limits: Limits,
}

impl Registry {
    /// The built-in tools.
    pub fn builtin(limits: Limits) -> Self {
        let mut tools: BTreeMap<String, Arc<dyn Tool>> = BTreeMap::new();
        for tool in builtin::all() {
            tools.insert(tool.name().to_owned(), tool);
        }
        Self { tools, limits }
    }

    /// This registry with `extra` tools added (a run's MCP tools); a name already taken
    /// keeps its tool.
    pub fn with(&self, extra: Vec<Arc<dyn Tool>>) -> Self {
        let mut tools = self.tools.clone();
        for tool in extra {
            tools.entry(tool.name().to_owned()).or_insert(tool);
        }
        Self {
            tools,
            limits: self.limits,
        }
    }

    pub fn names(&self) -> Vec<&str> {
        self.tools.keys().map(String::as_str).collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tools.contains_key(name)
    }

    /// OpenAI `tools` entries for the named tools that exist, in the order given.
    pub fn schemas(&self, names: &[String], language: &str) -> Vec<Value> {
        let mut seen = Vec::new();
        names
            .iter()
            .filter_map(|n| self.tools.get(n.as_str()))
            .filter(|t| {
                let fresh = !seen.contains(&t.name());
                seen.push(t.name());
                fresh
            })
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.name(),
                    "description": t.description(language),
                    "parameters": t.parameters(),
                }})
            })
            .collect()
    }

    /// Every tool with its description in `language` and its schema, in name order.
    pub fn catalogue(&self, language: &str) -> Vec<ToolInfo> {
        self.tools
            .values()
            .map(|t| ToolInfo {
                name: t.name().to_owned(),
                description: t.description(language).to_owned(),
                parameters: t.parameters(),
                writes: t.writes(),
                builtin_server: t.builtin_server(),
            })
            .collect()
    }

    /// Whether `name` changes files; `None` when there is no such tool.
    pub fn writes(&self, name: &str) -> Option<bool> {
        self.tools.get(name).map(|t| t.writes())
    }

    /// Runs `name` with `args` (a JSON object) within the time limit, its output capped.
    pub async fn call(
        &self,
        ctx: &ToolContext,
        name: &str,
        args: Value,
    ) -> Result<Value, ToolError> {
        let tool = self
            .tools
            .get(name)
            .ok_or_else(|| ToolError::Unknown(name.to_owned()))?;
        if ctx.cancel.is_cancelled() {
            return Err(ToolError::Cancelled);
        }
        let limit = tool.time_limit().unwrap_or(self.limits.time_limit);
        let content = tokio::select! {
            biased;
            () = ctx.cancel.cancelled() => Err(ToolError::Cancelled),
            r = tokio::time::timeout(limit, tool.call(ctx, args)) => {
                r.unwrap_or(Err(ToolError::TimedOut(limit.as_secs())))
            }
        }?;
        Ok(cap(content, self.limits.output_cap))
    }

    /// Runs `name` with the raw argument text the model produced. Never fails: unknown
    /// tools, bad arguments, errors, time-outs and cancellation become error outputs.
    pub async fn run(&self, ctx: &ToolContext, name: &str, arguments: &str) -> ToolOutput {
        let result = match parse_arguments(arguments) {
            Err(e) if self.tools.contains_key(name) => Err(e),
            Err(_) => Err(ToolError::Unknown(name.to_owned())),
            Ok(args) => self.call(ctx, name, args).await,
        };
        match result {
            Ok(content) => ToolOutput {
                content,
                is_error: false,
            },
            Err(e) => ToolOutput {
                content: json!({"status": "error", "error": e.to_string()}),
                is_error: true,
            },
        }
    }
}

fn parse_arguments(text: &str) -> Result<Value, ToolError> {
    if text.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(ToolError::Invalid(
            "the arguments must be a JSON object".into(),
        )),
        Err(e) => Err(ToolError::Invalid(format!(
            "the arguments are not JSON: {e}"
        ))),
    }
}

/// Output over the cap becomes its JSON text cut at the cap, marked as truncated.
fn cap(content: Value, limit: usize) -> Value {
    let text = content.to_string();
    if text.len() <= limit {
        return content;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    json!({"status": "success", "truncated": true, "output_bytes": text.len(), "output": &text[..end]})
}
