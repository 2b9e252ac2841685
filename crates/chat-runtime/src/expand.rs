//! `tool_expand_tools`: Sage offers a model only a suggested subset of an agent's tools and
//! lets it ask for more by name. Here every tool the agent may use is offered at every step,
//! so there is never anything to expand; the tool answers which of the names are already
//! offered and which the agent may not use, in Sage's shape, so agents configured with it
//! work unchanged.

use async_trait::async_trait;
use serde_json::{Value, json};
use tooling::{Tool, ToolContext, ToolError};

pub(crate) const TOOL_NAME: &str = "tool_expand_tools";
const MAX_NAMES: usize = 64;

/// The run's offered tools (their names, this one and the mode's delegation tools included).
pub(crate) struct ExpandTools {
    pub offered: Vec<String>,
}

#[async_trait]
impl Tool for ExpandTools {
    fn name(&self) -> &str {
        TOOL_NAME
    }

    fn description(&self, language: &str) -> &str {
        if language == "zh" {
            "扩展当前可见的工具集：按准确的工具名请求；只能扩展到当前智能体允许使用的工具。"
        } else {
            "Expand the tools visible to this request by exact tool names, within the tools the agent is allowed to use."
        }
    }

    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {
            "tool_names": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_NAMES,
                           "description": "Exact tool names to expand"}
        }, "required": ["tool_names"]})
    }

    async fn call(&self, _ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        let mut requested: Vec<String> = match &args["tool_names"] {
            Value::String(one) => vec![one.clone()],
            Value::Array(list) => list
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => return Err(ToolError::Invalid("`tool_names` is a list of names".into())),
        };
        requested = requested
            .into_iter()
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .take(MAX_NAMES)
            .collect();
        let mut seen = std::collections::HashSet::new();
        requested.retain(|n| seen.insert(n.clone()));
        let (already, invalid): (Vec<String>, Vec<String>) = requested
            .into_iter()
            .partition(|n| self.offered.contains(n));
        Ok(json!({
            "success": false,
            "expanded_tools": [],
            "invalid_tools": invalid,
            "already_selected_tools": already,
            "available_expandable_tools": [],
            "message": "Every tool this agent may use is offered already; call it directly.",
        }))
    }
}
