//! Sub-agents of fibre and team runs. A fibre run may create experts for its conversation
//! (`sys_spawn_agent`) and hand tasks to them or to its saved sub-agents
//! (`sys_delegate_task`); a team run hands tasks to its saved members
//! (`sys_team_delegate_task`). The tasks of one call run concurrently, each as a sub-agent run
//! in a child session `<parent>_sub_<hex>`: its lines join the parent's stream (and replay
//! log) naming the child session, its messages are stored in the parent conversation with
//! `metadata.sub_session_id` (outside the parent's own history), and its answer comes back as
//! the call's result. A task naming an earlier child session continues it. Sub-agents do not
//! delegate further.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use agents::{Agent, AgentMode};
use conversations::StoredMessage;
use platform::Actor;
use platform::pagination::PageRequest;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc::UnboundedSender;
use tooling::{Cancel, ToolOutput};

use crate::CustomSubAgent;
use crate::prompt;
use crate::run::{ChildEnd, Step, run_child};
use crate::runtime::{DEFAULT_PREFIX, Inner, Prepared, Runtime};

pub(crate) const SPAWN: &str = "sys_spawn_agent";
pub(crate) const DELEGATE: &str = "sys_delegate_task";
pub(crate) const TEAM_DELEGATE: &str = "sys_team_delegate_task";
/// The delegation tools: offered by mode, never from a tool list, never to a sub-agent.
pub(crate) const NAMES: [&str; 3] = [SPAWN, DELEGATE, TEAM_DELEGATE];

/// Saved sub-agents a run considers.
const MAX_SAVED: usize = 20;
/// Agents one conversation may spawn.
const MAX_SPAWNED: usize = 16;
/// Tasks of one delegation call.
const MAX_TASKS: usize = 8;
/// Sub-agent runs one parent run may start in all: each is a loop of model calls, so this
/// bounds what one request can cost.
const MAX_CHILD_RUNS: usize = 16;
const MAX_NAME_CHARS: usize = 64;
const MAX_DESCRIPTION_CHARS: usize = 500;
const MAX_PERSONA_CHARS: usize = 8_000;
const MAX_TASK_CHARS: usize = 16_000;

/// One agent a run may delegate to.
#[derive(Debug, Clone)]
pub(crate) struct SubAgent {
    pub id: String,
    pub name: String,
    pub description: String,
    /// A saved agent's configuration; `None` for one spawned in the conversation or defined
    /// in the request.
    pub saved: Option<Box<Agent>>,
    /// A spawned or request-defined agent's persona.
    pub persona: String,
    /// A request-defined agent's tools; `None`: the parent's.
    pub tools: Option<Vec<String>>,
}

/// Why a sub-agent's name, description or persona cannot be used (`None`: they can).
fn persona_problem(name: &str, description: &str, persona: &str) -> Option<String> {
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        Some(format!("`name` needs 1 to {MAX_NAME_CHARS} characters"))
    } else if description.chars().count() > MAX_DESCRIPTION_CHARS {
        Some(format!(
            "`description` takes at most {MAX_DESCRIPTION_CHARS} characters"
        ))
    } else if persona.is_empty() || persona.chars().count() > MAX_PERSONA_CHARS {
        Some(format!(
            "`system_prompt` needs 1 to {MAX_PERSONA_CHARS} characters"
        ))
    } else {
        None
    }
}

/// The request's `custom_sub_agents` as sub-agents (at most 20; names and ids unique; a
/// missing persona is the default prompt), or why one cannot be used.
pub(crate) fn custom_sub_agents(list: &[CustomSubAgent]) -> Result<Vec<SubAgent>, String> {
    if list.len() > MAX_SAVED {
        return Err(format!("at most {MAX_SAVED} custom sub-agents"));
    }
    let mut out: Vec<SubAgent> = Vec::new();
    for (i, c) in list.iter().enumerate() {
        let name = c.name.trim().to_owned();
        let description = c
            .description
            .as_deref()
            .unwrap_or_default()
            .trim()
            .to_owned();
        let persona = c
            .system_prompt
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .unwrap_or(DEFAULT_PREFIX)
            .to_owned();
        if let Some(problem) = persona_problem(&name, &description, &persona) {
            return Err(format!("sub-agent {}: {problem}", i + 1));
        }
        let id = match c
            .agent_id
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            Some(id) if platform::ids::is_safe_id(id) => id.to_owned(),
            Some(_) => {
                return Err(format!(
                    "sub-agent {}: `agent_id` takes 1 to 64 letters, digits, `_` or `-`",
                    i + 1
                ));
            }
            None => format!("custom_{}", i + 1),
        };
        if out
            .iter()
            .any(|o| o.id == id || o.name.eq_ignore_ascii_case(&name))
        {
            return Err(format!(
                "sub-agent {}: another one has the id `{id}` or the name `{name}`",
                i + 1
            ));
        }
        out.push(SubAgent {
            id,
            name,
            description,
            saved: None,
            persona,
            tools: c.available_tools.clone(),
        });
    }
    Ok(out)
}

/// What a fibre or team run may delegate to.
pub(crate) struct Delegation {
    team: bool,
    saved: Vec<SubAgent>,
    /// Spawned in the conversation (earlier runs' from its history, then this run's).
    spawned: Mutex<Vec<SubAgent>>,
    /// The tools a spawned agent gets: the parent's, without delegation.
    base_schemas: Vec<Value>,
    /// Sub-agent runs this run has started.
    started: std::sync::atomic::AtomicUsize,
}

/// Where a run's sub-agents come from: its agent's configuration, the request's ids and the
/// request's own (`custom_sub_agents`, already checked).
pub(crate) struct SubAgentChoice<'a> {
    pub agent: Option<&'a Agent>,
    pub requested: &'a [String],
    pub custom: Vec<SubAgent>,
}

impl Delegation {
    /// The sub-agents of a run in `mode` (none for `simple`; none for a team without
    /// members): the request's `custom` ones (checked by [`custom_sub_agents`]), then the
    /// request's ids, else the agent's `availableSubAgentIds`, else, unless its
    /// `subAgentSelectionMode` is `manual`, every agent the caller owns or was granted (never
    /// other users' agents), without the agent itself; only agents the caller may use.
    pub(crate) async fn plan(
        rt: &Runtime,
        actor: &Actor,
        mode: AgentMode,
        choice: SubAgentChoice<'_>,
        history: &[StoredMessage],
        base_schemas: Vec<Value>,
    ) -> Option<Delegation> {
        let SubAgentChoice {
            agent,
            requested,
            custom,
        } = choice;
        let team = match mode {
            AgentMode::Simple => return None,
            AgentMode::Fibre => false,
            AgentMode::Team => true,
        };
        let config = agent.map(|a| &a.config);
        let mut ids: Vec<String> = requested
            .iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        if ids.is_empty() {
            ids = config
                .map(|c| c.text_list("availableSubAgentIds"))
                .unwrap_or_default();
        }
        let manual = config
            .and_then(|c| c.0.get("subAgentSelectionMode"))
            .and_then(Value::as_str)
            == Some("manual");
        let mut found: Vec<Agent> = Vec::new();
        if ids.is_empty() && !manual {
            let mine = Actor::new(actor.user_id.clone(), false);
            let page = PageRequest::new(Some(1), Some(MAX_SAVED as u64 + 1)).unwrap_or_default();
            match rt.agents().list(&mine, page).await {
                Ok(page) => found = page.items,
                Err(e) => tracing::warn!(error = %e, "sub-agents could not be listed"),
            }
        } else {
            for id in ids.iter().take(MAX_SAVED) {
                if let Ok(a) = rt.agents().get(actor, id).await {
                    found.push(a);
                }
            }
        }
        let own = agent.map(|a| a.id.as_str());
        let mut saved: Vec<SubAgent> = custom;
        for a in found {
            if Some(a.id.as_str()) == own || saved.iter().any(|s| s.id == a.id) {
                continue;
            }
            saved.push(SubAgent {
                id: a.id.clone(),
                name: a.config.name().to_owned(),
                description: a
                    .config
                    .0
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                saved: Some(Box::new(a)),
                persona: String::new(),
                tools: None,
            });
        }
        saved.truncate(MAX_SAVED);
        if team && saved.is_empty() {
            return None;
        }
        let spawned = if team {
            Vec::new()
        } else {
            spawned_in(history)
        };
        Some(Delegation {
            team,
            saved,
            spawned: Mutex::new(spawned),
            base_schemas,
            started: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Whether `name` is one of this run's delegation tools.
    pub(crate) fn offers(&self, name: &str) -> bool {
        if self.team {
            name == TEAM_DELEGATE
        } else {
            name == SPAWN || name == DELEGATE
        }
    }

    fn spawned(&self) -> std::sync::MutexGuard<'_, Vec<SubAgent>> {
        self.spawned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn everyone(&self) -> Vec<SubAgent> {
        let mut all = self.saved.clone();
        all.extend(self.spawned().iter().cloned());
        all
    }

    /// A sub-agent by id, else by name (case-insensitive).
    fn find(&self, key: &str) -> Option<SubAgent> {
        let all = self.everyone();
        let key = key.trim();
        all.iter()
            .find(|a| a.id == key)
            .or_else(|| all.iter().find(|a| a.name.eq_ignore_ascii_case(key)))
            .cloned()
    }

    /// The tool schemas of the mode.
    pub(crate) fn schemas(&self, language: &str) -> Vec<Value> {
        let zh = language == "zh";
        let tasks = json!({
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_TASKS,
            "description": if zh {
                "任务列表，并发执行。每个任务交给一个子智能体；content 写清背景、要求和期望的返回内容。继续某个子智能体已有的子会话时填写其 session_id，新任务留空。"
            } else {
                "The tasks, run concurrently. Each goes to one sub-agent; `content` states the background, the requirements and what to return. Give `session_id` only to continue a sub-agent's earlier child session; leave it empty for new work."
            },
            "items": {
                "type": "object",
                "properties": {
                    "agent_id": {"type": "string", "description": if zh { "子智能体的 id（或名称）" } else { "The sub-agent's id (or name)" }},
                    "task_name": {"type": "string", "description": if zh { "任务的简短名称" } else { "A short name for the task" }},
                    "original_task": {"type": "string", "description": if zh { "用户最初的需求" } else { "The user's original request" }},
                    "content": {"type": "string", "description": if zh { "详细的任务说明" } else { "The detailed task" }},
                    "session_id": {"type": "string", "description": if zh { "可选：要继续的子会话 id（不要填当前会话的 id）" } else { "Optional: the child session to continue (never the current session's id)" }}
                },
                "required": ["agent_id", "content"]
            }
        });
        let delegate = |name: &str, en: &str, zh_text: &str| {
            json!({"type": "function", "function": {
                "name": name,
                "description": if zh { zh_text } else { en },
                "parameters": {"type": "object", "properties": {"tasks": tasks.clone()}, "required": ["tasks"]},
            }})
        };
        if self.team {
            return vec![delegate(
                TEAM_DELEGATE,
                "Hand concrete tasks to members of your team and wait for their results. Tasks in one call run concurrently; call again for tasks that depend on earlier results.",
                "把具体任务交给团队成员并等待结果。同一次调用中的任务并发执行；有依赖的任务请分多次调用。",
            )];
        }
        let spawn = json!({"type": "function", "function": {
            "name": SPAWN,
            "description": if zh {
                "创建一个新的子智能体：一位通用领域专家（如“Python 专家”），而不是只做一件事的执行者。创建后用 sys_delegate_task 给它分配任务。"
            } else {
                "Create a new sub-agent: a general-purpose domain expert (for example a Python expert), not a one-off executor of a single task. Then hand it tasks with sys_delegate_task."
            },
            "parameters": {"type": "object", "properties": {
                "name": {"type": "string", "maxLength": MAX_NAME_CHARS, "description": if zh { "一个亲切的人名式昵称，如“Eric”" } else { "A friendly personal name, such as 'Eric'" }},
                "description": {"type": "string", "maxLength": MAX_DESCRIPTION_CHARS, "description": if zh { "它的专业能力（一类任务，而非某个具体任务）" } else { "Its expertise (a class of tasks, not one task)" }},
                "system_prompt": {"type": "string", "maxLength": MAX_PERSONA_CHARS, "description": if zh { "它的角色设定：身份、能力范围、工作方式与限制；不要写具体任务" } else { "Its persona: role, capabilities, working style and limits; no concrete task" }}
            }, "required": ["name", "description", "system_prompt"]},
        }});
        vec![
            spawn,
            delegate(
                DELEGATE,
                "Hand concrete tasks to sub-agents (saved ones or those you spawned) and wait for their results. Tasks in one call run concurrently; call again for tasks that depend on earlier results.",
                "把具体任务交给子智能体（已有的或你创建的）并等待结果。同一次调用中的任务并发执行；有依赖的任务请分多次调用。",
            ),
        ]
    }

    /// The sub-agents, listed in the system prompt.
    pub(crate) fn prompt_section(&self, language: &str) -> String {
        let zh = language == "zh";
        let tool = if self.team { TEAM_DELEGATE } else { DELEGATE };
        let mut out = String::from("\n\n<sub_agents>\n");
        out.push_str(&if zh {
            format!("你可以用 {tool} 把任务交给以下子智能体，它们的结果会作为工具结果返回。")
        } else {
            format!(
                "You can hand tasks to these sub-agents with {tool}; their results come back as the tool's result."
            )
        });
        if !self.team {
            out.push_str(if zh {
                "需要其他专长时，用 sys_spawn_agent 创建新的子智能体。"
            } else {
                " When other expertise is needed, create a sub-agent with sys_spawn_agent."
            });
        }
        out.push('\n');
        for a in self.everyone() {
            out.push_str(&format!("- {} ({})", a.id, a.name));
            if !a.description.is_empty() {
                out.push_str(&format!(": {}", a.description));
            }
            out.push('\n');
        }
        out.push_str("</sub_agents>");
        out
    }

    /// A delegation call's arguments with every task's child session filled in (by the rule
    /// of [`parse_tasks`]); `None` for other calls and arguments it cannot read.
    pub(crate) fn with_sessions(
        &self,
        name: &str,
        arguments: &str,
        parent: &str,
    ) -> Option<String> {
        if name == SPAWN || !self.offers(name) {
            return None;
        }
        let mut args = match serde_json::from_str::<Value>(arguments) {
            Ok(Value::Object(map)) => map,
            _ => return None,
        };
        let mut list = task_list(&args)?;
        let mut taken: Vec<String> = Vec::new();
        for task in &mut list {
            let task = task.as_object_mut()?;
            let wanted = task
                .get("session_id")
                .and_then(Value::as_str)
                .map(str::trim)
                .unwrap_or_default();
            let session = session_for(wanted, parent, &taken);
            task.insert("session_id".into(), json!(session));
            taken.push(session);
        }
        args.insert("tasks".into(), Value::Array(list));
        serde_json::to_string(&args).ok()
    }

    /// Runs one delegation call: its output, and the sub-agents' model steps.
    pub(crate) async fn call(
        &self,
        inner: &Arc<Inner>,
        p: &Prepared,
        name: &str,
        arguments: &str,
        relay: UnboundedSender<Vec<u8>>,
        cancel: &Cancel,
    ) -> (ToolOutput, Vec<Step>) {
        let args = match serde_json::from_str::<Value>(arguments) {
            Ok(Value::Object(map)) => map,
            Ok(_) | Err(_) if arguments.trim().is_empty() => Map::new(),
            _ => return (failure("the arguments are not a JSON object"), Vec::new()),
        };
        if name == SPAWN {
            return (self.spawn(&args), Vec::new());
        }
        match parse_tasks(&args, &p.session_id) {
            Ok(tasks) => self.delegate(inner, p, tasks, relay, cancel).await,
            Err(reason) => (failure(&reason), Vec::new()),
        }
    }

    fn spawn(&self, args: &Map<String, Value>) -> ToolOutput {
        let text = |key: &str| {
            args.get(key)
                .and_then(Value::as_str)
                .map(str::trim)
                .unwrap_or_default()
                .to_owned()
        };
        let (name, description, persona) =
            (text("name"), text("description"), text("system_prompt"));
        if let Some(problem) = persona_problem(&name, &description, &persona) {
            return failure(&problem);
        }
        if let Some(existing) = self.find(&name) {
            return failure(&format!(
                "a sub-agent named {name} exists already (id {}); delegate to it",
                existing.id
            ));
        }
        let mut spawned = self.spawned();
        if spawned.len() >= MAX_SPAWNED {
            return failure(&format!(
                "a conversation may spawn at most {MAX_SPAWNED} sub-agents; delegate to one of them"
            ));
        }
        let id = format!("agent_{}", &platform::ids::new_hex_id()[..8]);
        spawned.push(SubAgent {
            id: id.clone(),
            name: name.clone(),
            description,
            saved: None,
            persona,
            tools: None,
        });
        ToolOutput {
            content: json!({"status": "success", "agent_id": id, "name": name,
                "message": format!("Agent spawned successfully. ID: {id}. Ready to receive messages.")}),
            is_error: false,
        }
    }

    async fn delegate(
        &self,
        inner: &Arc<Inner>,
        p: &Prepared,
        tasks: Vec<Task>,
        relay: UnboundedSender<Vec<u8>>,
        cancel: &Cancel,
    ) -> (ToolOutput, Vec<Step>) {
        // The parent's earlier steps are stored before its tools run, so this holds every
        // child session so far.
        let stored = inner
            .conversations
            .messages(&p.actor, &p.session_id)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(session_id = %p.session_id, error = %e, "child sessions could not be read");
                Vec::new()
            });
        let runs = tasks.into_iter().map(|task| {
            let relay = relay.clone();
            let stored = &stored;
            async move {
                let Some(sub) = self.find(&task.agent_id) else {
                    let known: Vec<String> = self
                        .everyone()
                        .iter()
                        .map(|a| format!("{} ({})", a.id, a.name))
                        .collect();
                    let reason = format!(
                        "there is no sub-agent {}; available: {}",
                        task.agent_id,
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    );
                    return (task.outcome(None, "failed", &reason), Vec::new());
                };
                let before = self
                    .started
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if before >= MAX_CHILD_RUNS {
                    let reason = format!(
                        "this run has handed out {MAX_CHILD_RUNS} tasks, the most one run may; \
                         finish with what the sub-agents answered"
                    );
                    return (task.outcome(Some(&sub), "failed", &reason), Vec::new());
                }
                let history: Vec<StoredMessage> = stored
                    .iter()
                    .filter(|m| m.sub_session() == Some(task.session_id.as_str()))
                    .cloned()
                    .collect();
                let child = match self.child(inner, p, &sub, &task, &history).await {
                    Ok(child) => child,
                    Err(reason) => {
                        return (task.outcome(Some(&sub), "failed", &reason), Vec::new());
                    }
                };
                let ChildEnd {
                    status,
                    result,
                    steps,
                } = run_child(inner, &child, relay, cancel).await;
                (task.outcome(Some(&sub), status, &result), steps)
            }
        });
        let done = futures_util::future::join_all(runs).await;
        let mut steps = Vec::new();
        let mut results = Vec::new();
        for (result, more) in done {
            results.push(result);
            steps.extend(more);
        }
        let all_failed = results.iter().all(|r| r["status"] != "success");
        (
            ToolOutput {
                content: json!({"status": if all_failed { "error" } else { "success" },
                                "results": results}),
                is_error: all_failed,
            },
            steps,
        )
    }

    /// The sub-agent's run of `task`: a saved agent with its own prompt, model (the caller's
    /// default unless the caller owns it) and tools; a spawned one with its persona and the
    /// parent's model and tools. Both work in the parent's workspace.
    async fn child(
        &self,
        inner: &Arc<Inner>,
        p: &Prepared,
        sub: &SubAgent,
        task: &Task,
        history: &[StoredMessage],
    ) -> Result<Prepared, String> {
        let rt = Runtime::from_inner(inner.clone());
        let (prefix, endpoint, tools, schemas, max_loop) = match &sub.saved {
            Some(agent) => {
                let config = &agent.config;
                let endpoint = rt
                    .endpoint(&p.actor, None, Some(agent.as_ref()))
                    .await
                    .map_err(|e| e.to_string())?;
                let (tools, schemas) =
                    sub_agent_tools(&rt, p, config.text_list("availableTools")).await?;
                let prefix = config
                    .0
                    .get("systemPrefix")
                    .and_then(Value::as_str)
                    .filter(|s| !s.trim().is_empty())
                    .unwrap_or(DEFAULT_PREFIX)
                    .to_owned();
                let max_loop = config
                    .0
                    .get("maxLoopCount")
                    .and_then(Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|n| *n > 0)
                    .unwrap_or(p.max_loop);
                (prefix, endpoint, tools, schemas, max_loop)
            }
            None => match &sub.tools {
                // A request-defined agent's own tools, those the caller may use.
                Some(wanted) => {
                    let (tools, schemas) = sub_agent_tools(&rt, p, wanted.clone()).await?;
                    (
                        sub.persona.clone(),
                        p.endpoint.clone(),
                        tools,
                        schemas,
                        p.max_loop,
                    )
                }
                None => (
                    sub.persona.clone(),
                    p.endpoint.clone(),
                    p.tools.clone(),
                    self.base_schemas.clone(),
                    p.max_loop,
                ),
            },
        };
        let mut context = Map::new();
        context.insert(
            "response_language".into(),
            json!(if p.language == "zh" { "zh-CN" } else { "en-US" }),
        );
        context.insert(
            "current_time".into(),
            json!(chrono::Utc::now().to_rfc2822()),
        );
        context.insert("session_id".into(), json!(task.session_id));
        context.insert("parent_session_id".into(), json!(p.session_id));
        let mut messages = vec![json!({"role": "system",
            "content": prompt::system_prompt(&prefix, &context)})];
        messages.extend(prompt::history(history));
        messages.push(json!({"role": "user", "content": task.content}));
        let task_message = StoredMessage {
            message_id: platform::ids::new_uuid(),
            role: "user".into(),
            message_type: "user_input".into(),
            content: json!(task.content),
            reasoning_content: None,
            tool_calls: None,
            tool_call_id: None,
            agent_name: None,
            metadata: json!({"delegated": true}),
            created_at: chrono::Utc::now(),
        };
        Ok(Prepared {
            actor: p.actor.clone(),
            source: p.source,
            session_id: p.session_id.clone(),
            run_id: p.run_id.clone(),
            agent_id: sub.id.clone(),
            line_agent_name: sub.name.clone(),
            endpoint,
            tool_schemas: schemas,
            tools,
            messages,
            new_messages: vec![task_message],
            max_loop,
            language: p.language.clone(),
            workspace: p.workspace.clone(),
            controls: prompt::Controls::default(),
            query: task.content.clone(),
            sub_session: Some(task.session_id.clone()),
            delegation: None,
        })
    }
}

/// A sub-agent's own tools among `wanted` (never delegation or skills), those the caller
/// may use, and their schemas.
async fn sub_agent_tools(
    rt: &Runtime,
    p: &Prepared,
    mut wanted: Vec<String>,
) -> Result<(tooling::Registry, Vec<Value>), String> {
    wanted.retain(|t| !NAMES.contains(&t.as_str()) && t != "load_skill");
    let tools = rt
        .tools_for(&p.actor, &wanted)
        .await
        .map_err(|e| e.to_string())?;
    let schemas = tools.schemas(&wanted, &p.language);
    Ok((tools, schemas))
}

/// One task of a delegation call, with its child session settled.
struct Task {
    agent_id: String,
    task_name: String,
    content: String,
    session_id: String,
}

impl Task {
    fn outcome(&self, sub: Option<&SubAgent>, status: &str, result: &str) -> Value {
        json!({"agent_id": sub.map_or(self.agent_id.as_str(), |s| s.id.as_str()),
               "agent_name": sub.map(|s| s.name.as_str()),
               "task_name": self.task_name, "session_id": self.session_id,
               "status": status, "result": result})
    }
}

/// The tasks of a call (a list, or a list sent as a JSON string). A task's `session_id` is
/// kept when it is a safe id other than the parent's and not taken by an earlier task of the
/// call; otherwise the task gets a new child session.
fn parse_tasks(args: &Map<String, Value>, parent: &str) -> Result<Vec<Task>, String> {
    let list = task_list(args).ok_or("`tasks` must be a list of tasks")?;
    if list.is_empty() || list.len() > MAX_TASKS {
        return Err(format!("`tasks` takes 1 to {MAX_TASKS} tasks"));
    }
    let mut tasks: Vec<Task> = Vec::new();
    for (i, t) in list.iter().enumerate() {
        let text = |key: &str| {
            t.get(key)
                .and_then(Value::as_str)
                .map(str::trim)
                .unwrap_or_default()
                .to_owned()
        };
        let (agent_id, content) = (text("agent_id"), text("content"));
        if agent_id.is_empty() {
            return Err(format!("task {i} has no `agent_id`"));
        }
        if content.is_empty() || content.chars().count() > MAX_TASK_CHARS {
            return Err(format!(
                "task {i} needs a `content` of 1 to {MAX_TASK_CHARS} characters"
            ));
        }
        let taken: Vec<String> = tasks.iter().map(|t| t.session_id.clone()).collect();
        let session_id = session_for(&text("session_id"), parent, &taken);
        let task_name = Some(text("task_name"))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| text("original_task"));
        tasks.push(Task {
            agent_id,
            task_name,
            content,
            session_id,
        });
    }
    Ok(tasks)
}

/// The `tasks` of a call: a list, or a list sent as a JSON string.
fn task_list(args: &Map<String, Value>) -> Option<Vec<Value>> {
    match args.get("tasks")? {
        Value::Array(list) => Some(list.clone()),
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Array(list)) => Some(list),
            _ => None,
        },
        _ => None,
    }
}

/// A task's child session: the one it names when that is a safe id other than the parent's
/// and not `taken` by an earlier task of the call, else a new one.
fn session_for(wanted: &str, parent: &str, taken: &[String]) -> String {
    if platform::ids::is_safe_id(wanted) && wanted != parent && !taken.iter().any(|t| t == wanted) {
        wanted.to_owned()
    } else {
        child_session(parent)
    }
}

/// A new child session id: `<parent>_sub_<8 hex>`, within the 64 characters of an id.
fn child_session(parent: &str) -> String {
    let stem: String = parent.chars().take(64 - 13).collect();
    format!("{stem}_sub_{}", &platform::ids::new_hex_id()[..8])
}

/// The agents earlier runs of the conversation spawned: each successful `sys_spawn_agent`
/// call with its result's id.
fn spawned_in(history: &[StoredMessage]) -> Vec<SubAgent> {
    let results: HashMap<&str, Value> = history
        .iter()
        .filter(|m| m.role == "tool")
        .filter_map(|m| {
            let id = m.tool_call_id.as_deref()?;
            let value = serde_json::from_str::<Value>(m.content.as_str()?).ok()?;
            Some((id, value))
        })
        .collect();
    let mut out: Vec<SubAgent> = Vec::new();
    let calls = history
        .iter()
        .filter(|m| m.role == "assistant")
        .filter_map(|m| m.tool_calls.as_ref()?.as_array())
        .flatten()
        .filter(|c| c["function"]["name"] == SPAWN);
    for call in calls {
        let Some(result) = call["id"].as_str().and_then(|id| results.get(id)) else {
            continue;
        };
        let Some(id) = result["agent_id"]
            .as_str()
            .filter(|_| result["status"] == "success")
        else {
            continue;
        };
        let args: Value = call["function"]["arguments"]
            .as_str()
            .and_then(|a| serde_json::from_str(a).ok())
            .unwrap_or_default();
        let text = |key: &str| args[key].as_str().unwrap_or_default().to_owned();
        if out.len() < MAX_SPAWNED && !out.iter().any(|a| a.id == id) {
            out.push(SubAgent {
                id: id.to_owned(),
                name: text("name"),
                description: text("description"),
                saved: None,
                persona: text("system_prompt"),
                tools: None,
            });
        }
    }
    out
}

fn failure(reason: &str) -> ToolOutput {
    ToolOutput {
        content: json!({"status": "error", "error": reason}),
        is_error: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_keep_a_fresh_child_session_and_refuse_the_parents() {
        let args = json!({"tasks": [
            {"agent_id": "a", "content": "one", "session_id": "s1_sub_1"},
            {"agent_id": "b", "content": "two", "session_id": "s1_sub_1"},
            {"agent_id": "c", "content": "three", "session_id": "s1"},
            {"agent_id": "d", "content": "four", "session_id": "../x"}
        ]});
        let tasks = parse_tasks(args.as_object().unwrap(), "s1").unwrap();
        assert_eq!(tasks[0].session_id, "s1_sub_1");
        for t in &tasks[1..] {
            assert!(t.session_id.starts_with("s1_sub_"), "{}", t.session_id);
            assert_ne!(t.session_id, "s1_sub_1");
        }
        let long = "x".repeat(64);
        assert!(child_session(&long).len() <= 64);
        assert!(platform::ids::is_safe_id(&child_session(&long)));
        for bad in [
            json!({}),
            json!({"tasks": []}),
            json!({"tasks": [{"content": "no agent"}]}),
            json!({"tasks": [{"agent_id": "a"}]}),
            json!({"tasks": (0..9).map(|_| json!({"agent_id": "a", "content": "c"})).collect::<Vec<_>>()}),
        ] {
            assert!(
                parse_tasks(bad.as_object().unwrap(), "s1").is_err(),
                "{bad}"
            );
        }
        let as_text = json!({"tasks": "[{\"agent_id\": \"a\", \"content\": \"c\"}]"});
        assert_eq!(
            parse_tasks(as_text.as_object().unwrap(), "s1")
                .unwrap()
                .len(),
            1
        );
    }
}
