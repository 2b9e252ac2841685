//! Knowledge bases in a run: the agent's `availableKnowledgeBases` (searched as the agent's
//! owner: granting an agent grants its bases) and a request's `available_knowledge_bases`
//! (the caller's own) become one tool, `search_knowledge_base`, which the model calls with a
//! query (and optionally one base's id).

use std::sync::Arc;

use async_trait::async_trait;
use knowledge::{KnowledgeBase, KnowledgeBases};
use platform::Actor;
use serde_json::{Value, json};
use tooling::{Tool, ToolContext, ToolError};

pub(crate) const TOOL_NAME: &str = "search_knowledge_base";
/// Passages one call returns at most.
const MAX_TOP_K: u64 = 10;
/// Bases one run may search.
pub(crate) const MAX_BASES: usize = 16;

/// The bases of one run, each with the actor it is searched as.
pub(crate) struct KnowledgeSearch {
    service: Arc<dyn KnowledgeBases>,
    bases: Vec<(KnowledgeBase, Actor)>,
}

impl KnowledgeSearch {
    /// Resolves the ids each actor may search (unknown or foreign ones are left out); `None`
    /// when no base remains.
    pub(crate) async fn resolve(
        service: Arc<dyn KnowledgeBases>,
        wanted: Vec<(String, Actor)>,
    ) -> Option<Self> {
        let mut bases: Vec<(KnowledgeBase, Actor)> = Vec::new();
        for (id, actor) in wanted {
            if bases.len() >= MAX_BASES || bases.iter().any(|(b, _)| b.id == id) {
                continue;
            }
            match service.get(&actor, &id).await {
                Ok(base) => bases.push((base, actor)),
                Err(knowledge::KnowledgeError::NotFound) => {}
                Err(e) => {
                    tracing::warn!(kdb_id = %id, error = %e, "a knowledge base could not be read")
                }
            }
        }
        (!bases.is_empty()).then_some(Self { service, bases })
    }

    /// The system prompt's list of the bases.
    pub(crate) fn prompt_section(&self, language: &str) -> String {
        let mut out = String::from(if language == "zh" {
            "\n\n<knowledge_bases>\n回答前可用 search_knowledge_base 在以下知识库中检索资料（kdb_id 可选）：\n"
        } else {
            "\n\n<knowledge_bases>\nBefore answering, search these knowledge bases with search_knowledge_base (kdb_id is optional):\n"
        });
        for (base, _) in &self.bases {
            out.push_str(&format!("- {} (kdb_id {})", base.name, base.id));
            if !base.intro.is_empty() {
                out.push_str(&format!(": {}", base.intro));
            }
            out.push('\n');
        }
        out.push_str("</knowledge_bases>");
        out
    }
}

#[async_trait]
impl Tool for KnowledgeSearch {
    fn name(&self) -> &str {
        TOOL_NAME
    }

    fn description(&self, language: &str) -> &str {
        if language == "zh" {
            "在可用的知识库中全文检索，返回最相关的段落及其来源文档。"
        } else {
            "Full-text search in the available knowledge bases; returns the most relevant passages with their source documents."
        }
    }

    fn parameters(&self) -> Value {
        let ids: Vec<&str> = self.bases.iter().map(|(b, _)| b.id.as_str()).collect();
        json!({
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What to look for"},
                "kdb_id": {"type": "string", "enum": ids, "description": "Only this knowledge base (default: all)"},
                "top_k": {"type": "integer", "minimum": 1, "maximum": MAX_TOP_K, "description": "Passages to return (default 5)"}
            },
            "required": ["query"]
        })
    }

    async fn call(&self, _ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        let query = args["query"]
            .as_str()
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .ok_or_else(|| ToolError::Invalid("`query` is required".into()))?;
        let top_k = args["top_k"].as_u64().unwrap_or(5).clamp(1, MAX_TOP_K);
        let only = args["kdb_id"].as_str().filter(|id| !id.is_empty());
        if let Some(id) = only
            && !self.bases.iter().any(|(b, _)| b.id == id)
        {
            return Err(ToolError::Invalid(format!(
                "`{id}` is not one of the available knowledge bases"
            )));
        }
        let mut results = Vec::new();
        for (base, actor) in self
            .bases
            .iter()
            .filter(|(b, _)| only.is_none_or(|id| b.id == id))
        {
            let (_, hits) = self
                .service
                .retrieve(actor, &base.id, query, top_k)
                .await
                .map_err(|e| ToolError::Failed(e.to_string()))?;
            results.extend(
                hits.into_iter()
                    .map(|h| (base.name.clone(), base.id.clone(), h)),
            );
        }
        results.sort_by(|a, b| b.2.score.total_cmp(&a.2.score));
        results.truncate(usize::try_from(top_k).unwrap_or(5));
        Ok(json!({
            "results": results
                .into_iter()
                .map(|(name, id, h)| json!({
                    "knowledge_base": name,
                    "kdb_id": id,
                    "document": h.path,
                    "title": h.title,
                    "content": h.content,
                    "score": h.score,
                }))
                .collect::<Vec<_>>()
        }))
    }
}
