//! The default system-prompt template shown when a user creates an agent, in English and
//! Chinese.

/// The language of generated and template text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    En,
    Zh,
}

impl Language {
    /// From a language tag or an `Accept-Language` value: `zh*` is Chinese, else English.
    pub fn from_tag(tag: &str) -> Option<Language> {
        let first = tag
            .split(',')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if first.starts_with("zh") {
            Some(Language::Zh)
        } else if first.starts_with("en") {
            Some(Language::En)
        } else {
            None
        }
    }
}

const EN: &str = "# Role
You are {agent_name}, a capable and careful assistant.

# Goals
- Understand what the user wants before acting; ask a short question when the request is ambiguous.
- Use the available tools when they give a better answer than memory alone, and say what you did.
- Keep answers accurate, concise and structured; cite sources when you used them.

# Constraints
- Never invent facts, tool results or file contents.
- Respect the user's data: do not reveal secrets or personal information.
- When a task cannot be done, say why and suggest the next best step.

# Output
Answer in the user's language. Use Markdown for lists, tables and code.
";

const ZH: &str = "# 角色
你是 {agent_name}，一位能干且严谨的助手。

# 目标
- 先理解用户的真实需求；请求含糊时先提出简短的澄清问题。
- 当工具能给出更好的答案时使用工具，并说明你做了什么。
- 回答准确、简洁、有条理；使用了资料时注明来源。

# 约束
- 不要编造事实、工具结果或文件内容。
- 尊重用户数据：不得泄露密钥或个人信息。
- 无法完成任务时说明原因，并给出下一步建议。

# 输出
使用用户的语言回答。列表、表格和代码使用 Markdown。
";

/// The template with `{agent_name}` filled in.
pub fn default_system_prompt(language: Language, agent_name: &str) -> String {
    let template = match language {
        Language::En => EN,
        Language::Zh => ZH,
    };
    template.replace("{agent_name}", agent_name)
}
