//! `analyze_image`: the run's model (when it takes images) looks at an image of the workspace
//! and answers a question about it, for agents whose conversation carries no image itself.

use async_trait::async_trait;
use base64::Engine;
use providers::{ChatRequest, Endpoint, LlmClient};
use serde_json::{Value, json};
use tooling::{Tool, ToolContext, ToolError};

pub(crate) const TOOL_NAME: &str = "analyze_image";
/// Largest image sent.
const MAX_IMAGE_BYTES: u64 = 10 * 1024 * 1024;
const MAX_ANSWER_TOKENS: u32 = 1024;

/// The image types a model takes, by extension.
fn mime_of(path: &str) -> Option<&'static str> {
    let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        _ => return None,
    })
}

/// The tool for one run, on its model.
pub(crate) struct AnalyzeImage {
    pub llm: LlmClient,
    pub endpoint: Endpoint,
}

#[async_trait]
impl Tool for AnalyzeImage {
    fn name(&self) -> &str {
        TOOL_NAME
    }

    fn description(&self, language: &str) -> &str {
        if language == "zh" {
            "查看工作区中的一张图片（png、jpg、gif、webp，最大 10 MiB）并回答关于它的问题。"
        } else {
            "Look at an image in the workspace (png, jpg, gif or webp, up to 10 MiB) and answer a question about it."
        }
    }

    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {
            "image_path": {"type": "string", "description": "Path relative to the workspace"},
            "question": {"type": "string", "description": "What to find out (default: a detailed description)"}
        }, "required": ["image_path"]})
    }

    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        let path = args["image_path"]
            .as_str()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| ToolError::Invalid("`image_path` is required".into()))?
            .to_owned();
        let mime = mime_of(&path).ok_or_else(|| {
            ToolError::Invalid(format!("`{path}` is not a png, jpg, gif or webp image"))
        })?;
        let question = args["question"]
            .as_str()
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .unwrap_or(if ctx.language == "zh" {
                "请详细描述这张图片。"
            } else {
                "Describe this image in detail."
            })
            .to_owned();
        let (root, file) = (ctx.workspace.clone(), path.clone());
        let bytes = tokio::task::spawn_blocking(move || {
            tooling::read_workspace_file(&root, &file, MAX_IMAGE_BYTES)
        })
        .await
        .map_err(|e| ToolError::Failed(e.to_string()))??;
        let url = format!(
            "data:{mime};base64,{}",
            base64::engine::general_purpose::STANDARD.encode(&bytes)
        );
        let request = ChatRequest {
            messages: vec![json!({"role": "user", "content": [
                {"type": "text", "text": question},
                {"type": "image_url", "image_url": {"url": url}}
            ]})],
            max_tokens: Some(MAX_ANSWER_TOKENS),
            ..ChatRequest::default()
        };
        let answer = tokio::select! {
            biased;
            () = ctx.cancel.cancelled() => return Err(ToolError::Cancelled),
            r = self.llm.chat(&self.endpoint, &request) => r,
        }
        .map_err(|e| ToolError::Failed(format!("the model could not look at the image: {e}")))?;
        Ok(json!({"status": "success", "image_path": path, "analysis": answer.content}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_known_by_their_extension() {
        assert_eq!(mime_of("a/cat.PNG"), Some("image/png"));
        assert_eq!(mime_of("cat.jpeg"), Some("image/jpeg"));
        assert_eq!(mime_of("notes.txt"), None);
        assert_eq!(mime_of("noext"), None);
    }
}
