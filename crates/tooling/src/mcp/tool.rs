//! One tool of a registered MCP server, called through the client.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Endpoint, McpClient, ToolDef};
use crate::tool::{Tool, ToolContext, ToolError};

pub(crate) struct McpTool {
    pub client: McpClient,
    pub endpoint: Endpoint,
    pub server: String,
    pub def: ToolDef,
}

#[async_trait]
impl Tool for McpTool {
    fn name(&self) -> &str {
        &self.def.name
    }
    fn description(&self, _language: &str) -> &str {
        &self.def.description
    }
    fn parameters(&self) -> Value {
        self.def.input_schema.clone()
    }
    async fn call(&self, _ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        let result = self
            .client
            .call_tool(&self.endpoint, &self.def.name, args)
            .await
            .map_err(|e| ToolError::Failed(format!("{}: {e}", self.server)))?;
        let text: Vec<&str> = result["content"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(|c| c["type"] == "text")
            .filter_map(|c| c["text"].as_str())
            .collect();
        if result["isError"] == true {
            return Err(ToolError::Failed(text.join("\n")));
        }
        Ok(json!({"server": self.server, "content": result["content"], "text": text.join("\n")}))
    }
}
