//! `Runtime`: resolution of a request into a run, and the session-level operations.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agents::{AgentMode, Agents, Workspaces};
use async_trait::async_trait;
use conversations::{Conversations, NewConversation, StoredMessage};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use platform::Actor;
use platform::store::{KvStore, LogStore};
use providers::{Endpoint, LlmClient, ProviderError, Providers};
use serde_json::{Value, json};
use tooling::Registry;

use crate::tools::AGENTLESS_WORKSPACE;

use crate::hub::{ActiveSession, Hub};
use crate::service::{ChatRuntime, LineStream, RunRequest, Source, StartedRun};
use crate::{ChatError, prompt, run, wire};

/// Timing of the runtime.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// How long a finished run's log stays resumable (`SAGE_STREAM_LOG_TTL_SECS`).
    pub log_ttl: Duration,
    /// How often a run checks for an interrupt (any replica) and a departed client.
    pub poll_interval: Duration,
    /// Longest wait for a web-stream re-entry to take the session from the run it stops.
    pub takeover_wait: Duration,
    /// Tool calls of one step run at most this many at a time.
    pub tool_concurrency: usize,
    /// Largest text, in characters, one request sends to the model (`SAGE_MAX_PROMPT_CHARS`):
    /// the new messages and any system prompt override of a run, the draft and history of an
    /// input optimisation.
    pub max_input_chars: usize,
    /// How long a `/api/chat` or `/api/stream` run goes on after its client went, waiting
    /// for a resume (`SAGE_STREAM_DISCONNECT_GRACE_SECS`); zero stops it at once.
    pub disconnect_grace: Duration,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        Self {
            log_ttl: Duration::from_secs(3600),
            poll_interval: Duration::from_millis(200),
            takeover_wait: Duration::from_secs(10),
            tool_concurrency: 4,
            max_input_chars: 64_000,
            disconnect_grace: Duration::from_secs(10),
        }
    }
}

pub(crate) struct Inner {
    pub agents: Arc<dyn Agents>,
    pub providers: Arc<dyn Providers>,
    pub conversations: Arc<dyn Conversations>,
    pub llm: LlmClient,
    pub tools: Registry,
    pub hub: Hub,
    pub workspaces: Workspaces,
    /// The agent's skills are copied into the run's workspace and shown to the model.
    pub skills: Arc<dyn tooling::skills::Skills>,
    /// The caller's MCP servers, whose tools an agent names like built-ins.
    pub mcp: Arc<dyn tooling::mcp::McpServers>,
    /// Knowledge bases the agent or the request names become `search_knowledge_base`.
    pub knowledge: Arc<dyn knowledge::KnowledgeBases>,
    pub settings: RuntimeSettings,
}

/// The chat runtime over the platform stores.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

/// Everything a run needs, resolved before it starts.
pub(crate) struct Prepared {
    pub actor: Actor,
    pub source: Source,
    pub session_id: String,
    pub run_id: String,
    pub agent_id: String,
    /// The `agent_name` of the run's lines.
    pub line_agent_name: String,
    pub endpoint: Endpoint,
    pub tool_schemas: Vec<Value>,
    /// The built-ins and the caller's MCP tools.
    pub tools: Registry,
    pub messages: Vec<Value>,
    pub new_messages: Vec<StoredMessage>,
    pub max_loop: u32,
    pub language: String,
    pub workspace: PathBuf,
    /// What the leading tags of the user's message asked for.
    pub controls: prompt::Controls,
    /// What `active_sessions` shows: the first new message, or the re-run user message.
    pub query: String,
    /// A sub-agent's run: the child session its lines name and its stored messages carry
    /// (`session_id` is then the parent's, whose log and conversation it writes to).
    pub sub_session: Option<String>,
    /// The sub-agents a fibre or team run may delegate to.
    pub delegation: Option<Arc<crate::delegation::Delegation>>,
}

impl Prepared {
    /// The `session_id` of the run's lines.
    pub(crate) fn line_session(&self) -> &str {
        self.sub_session.as_deref().unwrap_or(&self.session_id)
    }
}

pub(crate) const DEFAULT_PREFIX: &str = "You are a helpful assistant.";

impl Runtime {
    /// The runtime a run's parts call back into (sub-agents resolve their model and tools).
    pub(crate) fn from_inner(inner: Arc<Inner>) -> Self {
        Self { inner }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn new(
        agents: Arc<dyn Agents>,
        providers: Arc<dyn Providers>,
        conversations: Arc<dyn Conversations>,
        llm: LlmClient,
        tools: Registry,
        kv: Arc<dyn KvStore>,
        logs: Arc<dyn LogStore>,
        workspaces: Workspaces,
        skills: Arc<dyn tooling::skills::Skills>,
        mcp: Arc<dyn tooling::mcp::McpServers>,
        knowledge: Arc<dyn knowledge::KnowledgeBases>,
        settings: RuntimeSettings,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                agents,
                providers,
                conversations,
                llm,
                tools,
                hub: Hub::new(kv, logs),
                workspaces,
                skills,
                mcp,
                knowledge,
                settings,
            }),
        }
    }

    /// Request `provider_id` (the caller's own) → the agent's provider (when the caller owns
    /// the agent; a grantee uses their own) → the caller's default → the deployment default.
    pub(crate) async fn endpoint(
        &self,
        actor: &Actor,
        requested: Option<&str>,
        agent: Option<&agents::Agent>,
    ) -> Result<Endpoint, ChatError> {
        let providers = &self.inner.providers;
        if let Some(id) = requested {
            return Ok(providers.resolve(actor, Some(id)).await?);
        }
        let agent_provider = agent
            .filter(|a| a.user_id == actor.user_id)
            .and_then(|a| a.config.provider_id())
            .filter(|p| !p.is_empty());
        if let Some(id) = agent_provider {
            match providers.resolve(actor, Some(id)).await {
                Err(ProviderError::NotFound) => {}
                other => return Ok(other?),
            }
        }
        Ok(providers.resolve(actor, None).await?)
    }

    pub(crate) fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    pub(crate) fn conversations(&self) -> &dyn Conversations {
        self.inner.conversations.as_ref()
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.inner.tools
    }

    pub(crate) fn mcp(&self) -> &dyn tooling::mcp::McpServers {
        self.inner.mcp.as_ref()
    }

    /// The built-ins, and the caller's MCP tools when `wanted` names a tool no built-in has.
    pub(crate) async fn tools_for(
        &self,
        actor: &Actor,
        wanted: &[String],
    ) -> Result<Registry, ChatError> {
        let builtin = &self.inner.tools;
        if wanted.iter().all(|name| builtin.contains(name)) {
            return Ok(builtin.clone());
        }
        match self.inner.mcp.tools_for(&actor.user_id).await {
            Ok(extra) => Ok(builtin.with(extra)),
            Err(e) => {
                tracing::warn!(error = %e, "the caller's MCP tools could not be read");
                Ok(builtin.clone())
            }
        }
    }

    pub(crate) fn agent_service(&self) -> &dyn Agents {
        self.inner.agents.as_ref()
    }

    pub(crate) fn workspaces(&self) -> Workspaces {
        self.inner.workspaces.clone()
    }

    pub(crate) fn takeover_wait(&self) -> Duration {
        self.inner.settings.takeover_wait
    }

    pub(crate) fn agents(&self) -> &dyn Agents {
        self.inner.agents.as_ref()
    }

    pub(crate) fn llm(&self) -> LlmClient {
        self.inner.llm.clone()
    }

    /// `SAGE_MAX_PROMPT_CHARS`: the most characters one request sends to the model.
    pub(crate) fn max_input_chars(&self) -> usize {
        self.inner.settings.max_input_chars
    }

    /// The input cap, checked once per run before anything is locked or written. (The
    /// per-user bucket of model calls is taken by the route, one token per run, as for every
    /// model-calling route.)
    fn admit(&self, _actor: &Actor, request: &RunRequest) -> Result<(), ChatError> {
        let chars: usize = request
            .messages
            .iter()
            .map(|m| prompt::text_of(&m.content).chars().count())
            .sum::<usize>()
            + request
                .system_prefix
                .as_deref()
                .map_or(0, |p| p.chars().count());
        platform::spend::check_input("messages", chars, self.max_input_chars())?;
        Ok(())
    }

    async fn prepare(&self, actor: &Actor, request: &RunRequest) -> Result<Prepared, ChatError> {
        let inner = &self.inner;
        let custom =
            crate::delegation::custom_sub_agents(&request.custom_sub_agents).map_err(|reason| {
                ChatError::Invalid {
                    field: "custom_sub_agents",
                    reason,
                }
            })?;
        // The request's own MCP servers answer before anything is stored.
        let extra_tools =
            crate::extra_mcp::tools(inner.mcp.as_ref(), request.extra_mcp_config.as_ref()).await?;
        let messages: Vec<_> = request
            .messages
            .iter()
            .filter(|m| !prompt::text_of(&m.content).trim().is_empty() || m.content.is_array())
            .collect();
        let rerun = request.source == Source::Rerun;
        let session_id = match request.session_id.as_deref() {
            Some(id) if platform::ids::is_safe_id(id) => Some(id.to_owned()),
            Some(_) => {
                return Err(ChatError::Invalid {
                    field: "session_id",
                    reason: "use 1 to 64 letters, digits, `_` or `-`".into(),
                });
            }
            None => None,
        };
        // `/api/chat` without messages takes the session's pending guidance as its input
        // (the first step drains it); every other case needs a message.
        let mut pending_guidance = None;
        if messages.is_empty() && !rerun {
            if request.source == Source::Chat
                && let Some(sid) = &session_id
                && inner.conversations.get(actor, sid).await.is_ok()
            {
                let pending = crate::guidance::list(inner.hub.kv().as_ref(), sid).await?;
                pending_guidance = pending.first().map(|g| g.content.clone());
            }
            if pending_guidance.is_none() {
                return Err(ChatError::MessagesRequired);
            }
        }
        let session_id = session_id.unwrap_or_else(platform::ids::new_uuid);
        // A re-run continues an existing conversation, with its agent unless one is named.
        let existing = if rerun {
            Some(inner.conversations.get(actor, &session_id).await?)
        } else {
            None
        };
        let agent_id = request.agent_id.clone().or_else(|| {
            existing
                .as_ref()
                .map(|c| c.agent_id.clone())
                .filter(|a| a != AGENTLESS_WORKSPACE)
        });
        let agent = match agent_id.as_deref() {
            Some(id) => Some(inner.agents.get(actor, id).await?),
            None => None,
        };
        let config = agent.as_ref().map(|a| &a.config.0);
        let max_loop = request
            .max_loop_count
            .or_else(|| {
                config
                    .and_then(|c| c.get("maxLoopCount"))
                    .and_then(Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok())
            })
            .filter(|n| *n > 0)
            .ok_or(ChatError::MaxLoopRequired)?;
        let mode = request
            .agent_mode
            .as_deref()
            .or_else(|| {
                config
                    .and_then(|c| c.get("agentMode"))
                    .and_then(Value::as_str)
            })
            .and_then(AgentMode::parse)
            .unwrap_or(AgentMode::Simple);
        let line_agent_name = match mode {
            AgentMode::Simple => "SimpleAgent",
            AgentMode::Fibre => "FibreAgent",
            AgentMode::Team => "TeamAgent",
        }
        .to_owned();

        // System context: the agent's under the request's keys; the agent's language wins.
        let mut context = config
            .and_then(|c| c.get("systemContext"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let agent_language = context.get("response_language").cloned();
        for (k, v) in &request.system_context {
            context.insert(k.clone(), v.clone());
        }
        if let Some(l) = agent_language {
            context.insert("response_language".into(), l);
        }
        let language = prompt::language_of(
            context.get("response_language").and_then(Value::as_str),
            &request.language,
        );
        context
            .entry("response_language".to_owned())
            .or_insert_with(|| json!(if language == "zh" { "zh-CN" } else { "en-US" }));
        context.insert(
            "current_time".into(),
            json!(chrono::Utc::now().to_rfc2822()),
        );
        context.insert("session_id".into(), json!(session_id));

        let prefix = request
            .system_prefix
            .clone()
            .filter(|p| !p.trim().is_empty())
            .or_else(|| {
                config
                    .and_then(|c| c.get("systemPrefix"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .filter(|p| !p.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_PREFIX.to_owned());

        // Tools: the request's list, else the agent's; only those that exist (the delegation
        // tools follow the mode instead, below).
        let wanted: Vec<String> = request.available_tools.clone().unwrap_or_else(|| {
            agent
                .as_ref()
                .map(|a| a.config.text_list("availableTools"))
                .unwrap_or_default()
        });

        let endpoint = self
            .endpoint(actor, request.provider_id.as_deref(), agent.as_ref())
            .await?;

        let agent_id = agent
            .as_ref()
            .map_or_else(|| AGENTLESS_WORKSPACE.to_owned(), |a| a.id.clone());
        let agent_name = agent
            .as_ref()
            .map_or_else(|| "Sage".to_owned(), |a| a.config.name().to_owned());
        let first_text = match messages.first() {
            Some(m) => prompt::text_of(&prompt::strip_control_tags(&m.content)),
            None => pending_guidance.clone().unwrap_or_default(),
        };
        let controls = messages
            .iter()
            .rev()
            .find(|m| m.role != "assistant")
            .map(|m| prompt::controls_of(&m.content))
            .unwrap_or_default();
        let title = conversations::title_from(&first_text)
            .unwrap_or_else(|| prompt::new_title(&language).to_owned());
        inner
            .conversations
            .open(
                actor,
                NewConversation {
                    session_id: session_id.clone(),
                    agent_id: agent_id.clone(),
                    agent_name,
                    title,
                },
            )
            .await?;
        // A session id made here is a new conversation: it has no history to read.
        // Sub-agents' messages are stored here too, outside the conversation's own history.
        let stored: Vec<StoredMessage> = if request.session_id.is_some() {
            inner
                .conversations
                .messages(actor, &session_id)
                .await?
                .into_iter()
                .filter(|m| m.sub_session().is_none())
                .collect()
        } else {
            Vec::new()
        };
        let last_user = stored
            .iter()
            .rev()
            .find(|m| m.role == "user" && !m.is_hidden())
            .map(|m| prompt::text_of(&m.content));
        if rerun && last_user.is_none() && messages.is_empty() {
            return Err(ChatError::NoUserMessage);
        }

        let mut llm_messages = vec![json!({"role": "system",
            "content": prompt::system_prompt(&prefix, &context)})];
        llm_messages.extend(prompt::history(&stored));
        let now = chrono::Utc::now();
        let mut new_messages = Vec::new();
        for m in &messages {
            let role = if matches!(m.role.as_str(), "user" | "assistant") {
                m.role.as_str()
            } else {
                "user"
            };
            let content = prompt::strip_control_tags(&m.content);
            llm_messages.push(json!({"role": role, "content": content}));
            new_messages.push(StoredMessage {
                message_id: m
                    .message_id
                    .clone()
                    .filter(|id| platform::ids::is_safe_id(id))
                    .unwrap_or_else(platform::ids::new_uuid),
                role: role.to_owned(),
                message_type: if role == "user" {
                    "user_input"
                } else {
                    "assistant_text"
                }
                .to_owned(),
                content,
                reasoning_content: None,
                tool_calls: None,
                tool_call_id: None,
                agent_name: None,
                metadata: json!({}),
                created_at: now,
            });
        }
        prompt::fit_for_model(&mut llm_messages, endpoint.supports_multimodal);
        let workspace = inner.workspaces.root_of(&actor.user_id, &agent_id)?;
        std::fs::create_dir_all(&workspace).map_err(|e| ChatError::Internal(e.into()))?;

        // Skills: the agent's are copied in (from its owner's, else the system's), and every
        // skill the workspace holds is offered with `load_skill` (which only exists then).
        let skill_names = agent
            .as_ref()
            .map(|a| a.config.text_list("availableSkills"))
            .unwrap_or_default();
        let owner = agent.as_ref().map_or(&actor.user_id, |a| &a.user_id);
        let requested: Vec<String> = request
            .available_skills
            .iter()
            .flatten()
            .take(64)
            .cloned()
            .collect();
        let prepared = match inner
            .skills
            .prepare_run(owner, workspace.clone(), skill_names)
            .await
        {
            // The request's own additions come from the caller's skills.
            Ok(_) if !requested.is_empty() => {
                inner
                    .skills
                    .prepare_run(&actor.user_id, workspace.clone(), requested)
                    .await
            }
            other => other,
        };
        let skills = match prepared {
            Ok(skills) => skills,
            Err(e) => {
                tracing::warn!(error = %e, "the agent's skills could not be prepared");
                Vec::new()
            }
        };
        let mut wanted = wanted;
        wanted.retain(|t| t != "load_skill");
        if !skills.is_empty() {
            // As Sage: skills come with the tools to read and run them (the shell only where
            // the deployment enables it).
            for tool in ["load_skill", "file_read", tooling::shell::TOOL_NAME] {
                if !wanted.iter().any(|t| t == tool) {
                    wanted.push(tool.to_owned());
                }
            }
            prompt::extend_system(
                &mut llm_messages,
                &prompt::skills_section(&skills, &language),
            );
        }
        let mut tools = self.tools_for(actor, &wanted).await?;
        // Knowledge bases: the agent's searched as its owner, the request's as the caller.
        let mut bases: Vec<(String, Actor)> = Vec::new();
        if let Some(a) = agent.as_ref() {
            let owner = Actor::new(a.user_id.clone(), false);
            bases.extend(
                a.config
                    .text_list("availableKnowledgeBases")
                    .into_iter()
                    .map(|id| (id, owner.clone())),
            );
        }
        bases.extend(
            request
                .available_knowledge_bases
                .iter()
                .flatten()
                .take(crate::knowledge::MAX_BASES)
                .map(|id| (id.clone(), actor.clone())),
        );
        if !bases.is_empty()
            && let Some(search) =
                crate::knowledge::KnowledgeSearch::resolve(inner.knowledge.clone(), bases).await
        {
            prompt::extend_system(&mut llm_messages, &search.prompt_section(&language));
            wanted.retain(|t| t != crate::knowledge::TOOL_NAME);
            wanted.push(crate::knowledge::TOOL_NAME.to_owned());
            tools = tools.with(vec![Arc::new(search)]);
        }
        // An agent with user memory recalls the caller's other conversations.
        wanted.retain(|t| t != crate::memory::TOOL_NAME);
        let user_memory = config
            .and_then(|c| c.get("memoryType"))
            .and_then(Value::as_str)
            == Some("user");
        if user_memory {
            wanted.push(crate::memory::TOOL_NAME.to_owned());
            tools = tools.with(vec![Arc::new(crate::memory::MemorySearch {
                conversations: inner.conversations.clone(),
                actor: actor.clone(),
                session_id: session_id.clone(),
            })]);
        }
        // Images in the workspace, for a model that takes them.
        if endpoint.supports_multimodal && wanted.iter().any(|t| t == crate::vision::TOOL_NAME) {
            tools = tools.with(vec![Arc::new(crate::vision::AnalyzeImage {
                llm: inner.llm.clone(),
                endpoint: endpoint.clone(),
            })]);
        }
        // The request's MCP tools, except names the run has already (a built-in stays itself).
        let extra_tools: Vec<_> = extra_tools
            .into_iter()
            .filter(|t| !tools.contains(t.name()) && !crate::delegation::NAMES.contains(&t.name()))
            .collect();
        for t in &extra_tools {
            if !wanted.iter().any(|w| w == t.name()) {
                wanted.push(t.name().to_owned());
            }
        }
        tools = tools.with(extra_tools);
        wanted.retain(|t| !crate::delegation::NAMES.contains(&t.as_str()));
        // Sage's tool expansion, for agents that list it: everything is offered already. It
        // joins after the mode's delegation tools, which it reports as offered too.
        let expand = wanted.iter().any(|t| t == crate::expand::TOOL_NAME);
        wanted.retain(|t| t != crate::expand::TOOL_NAME);
        let mut tool_schemas = tools.schemas(&wanted, &language);
        let choice = crate::delegation::SubAgentChoice {
            agent: agent.as_ref(),
            requested: request
                .available_sub_agent_ids
                .as_deref()
                .unwrap_or_default(),
            custom,
        };
        let delegation = crate::delegation::Delegation::plan(
            self,
            actor,
            mode,
            choice,
            &stored,
            tool_schemas.clone(),
        )
        .await;
        if let Some(d) = &delegation {
            tool_schemas.extend(d.schemas(&language));
            prompt::extend_system(&mut llm_messages, &d.prompt_section(&language));
        }
        if expand {
            let mut offered: Vec<String> = tool_schemas
                .iter()
                .filter_map(|s| s["function"]["name"].as_str().map(str::to_owned))
                .collect();
            offered.push(crate::expand::TOOL_NAME.to_owned());
            tools = tools.with(vec![Arc::new(crate::expand::ExpandTools { offered })]);
            tool_schemas.extend(tools.schemas(&[crate::expand::TOOL_NAME.to_owned()], &language));
        }
        Ok(Prepared {
            actor: actor.clone(),
            source: request.source,
            session_id,
            run_id: platform::ids::new_hex_id(),
            agent_id,
            line_agent_name,
            endpoint,
            tool_schemas,
            tools,
            messages: llm_messages,
            new_messages,
            max_loop,
            language,
            workspace,
            controls,
            query: messages
                .first()
                .map(|m| prompt::text_of(&m.content))
                .or_else(|| pending_guidance.clone())
                .or(last_user)
                .unwrap_or_default(),
            sub_session: None,
            delegation: delegation.map(Arc::new),
        })
    }

    /// Takes the session; a web-stream stops the run holding it first.
    async fn lock(&self, prepared: &Prepared) -> Result<(), ChatError> {
        let hub = &self.inner.hub;
        let (sid, rid) = (&prepared.session_id, &prepared.run_id);
        if hub.try_lock(sid, rid).await? {
            return Ok(());
        }
        if !prepared.source.survives_client() {
            return Err(ChatError::SessionRunning);
        }
        if let Some(holder) = hub.holder(sid).await? {
            hub.request_interrupt(sid, &holder).await?;
        }
        let deadline = tokio::time::Instant::now() + self.inner.settings.takeover_wait;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(25)).await;
            if hub.try_lock(sid, rid).await? {
                return Ok(());
            }
        }
        Err(ChatError::SessionRunning)
    }
}

#[async_trait]
impl ChatRuntime for Runtime {
    async fn start(&self, actor: &Actor, request: RunRequest) -> Result<StartedRun, ChatError> {
        self.admit(actor, &request)?;
        // A re-run acts as the conversation's owner (an admin may re-run anyone's).
        let owner;
        let actor = if request.source == Source::Rerun {
            let id = request.session_id.as_deref().unwrap_or_default();
            let conversation = self.inner.conversations.get(actor, id).await?;
            owner = Actor::new(conversation.user_id, actor.is_admin);
            &owner
        } else {
            actor
        };
        let prepared = self.prepare(actor, &request).await?;
        self.lock(&prepared).await?;
        let query = prepared.query.clone();
        let now = wire::now();
        let begun = self
            .inner
            .hub
            .begin(ActiveSession {
                session_id: prepared.session_id.clone(),
                created_at: now,
                is_completed: false,
                status: "running".into(),
                last_activity: now,
                query,
                user_id: actor.user_id.clone(),
                run_id: prepared.run_id.clone(),
            })
            .await;
        if let Err(e) = begun {
            let _ = self
                .inner
                .hub
                .finish(&prepared.session_id, &prepared.run_id, Duration::ZERO)
                .await;
            return Err(e.into());
        }
        let session_id = prepared.session_id.clone();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(run::drive(self.inner.clone(), prepared, tx));
        let lines = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|line| (line, rx))
        })
        .boxed();
        Ok(StartedRun { session_id, lines })
    }

    async fn resume(
        &self,
        actor: &Actor,
        session_id: &str,
        last_index: u64,
    ) -> Result<LineStream, ChatError> {
        let hub = &self.inner.hub;
        self.inner.conversations.get(actor, session_id).await?;
        if let Some(run_id) = hub.holder(session_id).await? {
            hub.mark_resumed(session_id, &run_id).await?;
        }
        let mut reader = hub.read(session_id, last_index).await?;
        // A run that has begun but not written its first line yet.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while reader.is_none()
            && tokio::time::Instant::now() < deadline
            && hub.running_session(session_id).await?.is_some()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
            reader = hub.read(session_id, last_index).await?;
        }
        Ok(match reader {
            Some(reader) => reader
                .take_while(|e| std::future::ready(e.is_ok()))
                .filter_map(|e| std::future::ready(e.ok().map(|e| e.data)))
                .boxed(),
            None => {
                let line = wire::line(&wire::StreamEnd::fallback(session_id));
                futures_util::stream::iter([line]).boxed()
            }
        })
    }

    async fn interrupt(&self, actor: &Actor, session_id: &str) -> Result<bool, ChatError> {
        self.inner.conversations.get(actor, session_id).await?;
        let hub = &self.inner.hub;
        match hub.holder(session_id).await? {
            Some(run_id) => {
                hub.request_interrupt(session_id, &run_id).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn tasks_status(&self, actor: &Actor, session_id: &str) -> Result<Vec<Value>, ChatError> {
        self.inner.conversations.get(actor, session_id).await?;
        let tasks = tooling::todos::load(self.inner.hub.kv().as_ref(), session_id).await?;
        Ok(tasks
            .into_iter()
            .enumerate()
            .map(|(i, t)| json!({"index": i + 1, "id": t["id"], "name": t["name"], "status": t["status"]}))
            .collect())
    }

    async fn submit_questionnaire(
        &self,
        actor: &Actor,
        questionnaire_id: &str,
        answers: serde_json::Map<String, Value>,
        is_auto_submit: bool,
    ) -> Result<(), ChatError> {
        use tooling::questionnaire::blocking;
        if !blocking::valid_id(questionnaire_id) {
            return Err(ChatError::Invalid {
                field: "questionnaire_id",
                reason: "use letters, digits, `_`, `-`, `.` or `:` (at most 128)".into(),
            });
        }
        let kv = self.inner.hub.kv();
        match blocking::submit(
            kv.as_ref(),
            &actor.user_id,
            questionnaire_id,
            answers,
            is_auto_submit,
        )
        .await?
        {
            blocking::Submitted::Kept => Ok(()),
            blocking::Submitted::AlreadyWaiting => Err(ChatError::QuestionnaireAnswered),
            blocking::Submitted::TooLarge => Err(ChatError::Invalid {
                field: "answers",
                reason: format!("at most {} bytes of JSON", blocking::MAX_ANSWER_BYTES),
            }),
        }
    }

    async fn active_sessions(&self, actor: &Actor) -> Result<Vec<ActiveSession>, ChatError> {
        let all = self.inner.hub.running().await?;
        Ok(all
            .into_iter()
            .filter(|s| actor.is_admin || s.user_id == actor.user_id)
            .collect())
    }

    async fn inject_guidance(
        &self,
        actor: &Actor,
        session_id: &str,
        content: &str,
        guidance_id: Option<String>,
        metadata: Value,
    ) -> Result<String, ChatError> {
        self.inner.conversations.get(actor, session_id).await?;
        if content.trim().is_empty() {
            return Err(ChatError::Invalid {
                field: "content",
                reason: "is required".into(),
            });
        }
        if self.inner.hub.holder(session_id).await?.is_none() {
            return Err(ChatError::SessionNotRunning);
        }
        let id = guidance_id
            .filter(|g| platform::ids::is_safe_id(g))
            .unwrap_or_else(platform::ids::new_uuid);
        let item = crate::Guidance {
            guidance_id: id.clone(),
            content: content.to_owned(),
            metadata: if metadata.is_object() {
                metadata
            } else {
                json!({})
            },
            created_at: wire::now(),
        };
        crate::guidance::push(self.inner.hub.kv().as_ref(), session_id, &item).await?;
        Ok(id)
    }

    async fn guidance(
        &self,
        actor: &Actor,
        session_id: &str,
    ) -> Result<Vec<crate::Guidance>, ChatError> {
        self.inner.conversations.get(actor, session_id).await?;
        Ok(crate::guidance::list(self.inner.hub.kv().as_ref(), session_id).await?)
    }

    async fn update_guidance(
        &self,
        actor: &Actor,
        session_id: &str,
        guidance_id: &str,
        content: &str,
    ) -> Result<(), ChatError> {
        self.inner.conversations.get(actor, session_id).await?;
        if content.trim().is_empty() {
            return Err(ChatError::Invalid {
                field: "content",
                reason: "is required".into(),
            });
        }
        let kv = self.inner.hub.kv();
        if crate::guidance::update(kv.as_ref(), session_id, guidance_id, content).await? {
            Ok(())
        } else {
            Err(ChatError::GuidanceNotFound)
        }
    }

    async fn delete_guidance(
        &self,
        actor: &Actor,
        session_id: &str,
        guidance_id: &str,
    ) -> Result<(), ChatError> {
        self.inner.conversations.get(actor, session_id).await?;
        let kv = self.inner.hub.kv();
        if crate::guidance::remove(kv.as_ref(), session_id, guidance_id).await? {
            Ok(())
        } else {
            Err(ChatError::GuidanceNotFound)
        }
    }

    async fn optimize_input(
        &self,
        actor: &Actor,
        request: crate::OptimizeRequest,
    ) -> Result<Value, ChatError> {
        self.optimize_once(actor, request).await
    }

    async fn optimize_input_stream(
        &self,
        actor: &Actor,
        request: crate::OptimizeRequest,
    ) -> Result<LineStream, ChatError> {
        self.optimize_streamed(actor, request).await
    }

    async fn conversation(
        &self,
        actor: &Actor,
        session_id: &str,
    ) -> Result<crate::ConversationView, ChatError> {
        self.view(actor, session_id).await
    }

    async fn shared_conversation(
        &self,
        session_id: &str,
    ) -> Result<crate::ConversationView, ChatError> {
        self.shared_view(session_id).await
    }

    async fn delete_conversation(&self, actor: &Actor, session_id: &str) -> Result<(), ChatError> {
        self.delete(actor, session_id).await
    }

    async fn edit_last_user_message(
        &self,
        actor: &Actor,
        session_id: &str,
        content: &str,
    ) -> Result<conversations::EditedConversation, ChatError> {
        self.edit(actor, session_id, content).await
    }

    async fn delete_session_file(
        &self,
        actor: &Actor,
        session_id: &str,
        path: &str,
        missing_ok: bool,
    ) -> Result<(), ChatError> {
        self.delete_file(actor, session_id, path, missing_ok).await
    }

    async fn session_files(
        &self,
        actor: &Actor,
        session_id: &str,
        dir: &str,
        max_depth: u32,
    ) -> Result<crate::SessionFiles, ChatError> {
        self.list_files(actor, session_id, dir, max_depth).await
    }

    async fn download_session_file(
        &self,
        actor: &Actor,
        session_id: &str,
        path: &str,
    ) -> Result<agents::Download, ChatError> {
        self.download_file(actor, session_id, path).await
    }

    async fn download_session(
        &self,
        actor: &Actor,
        session_id: &str,
    ) -> Result<crate::SessionDownload, ChatError> {
        self.download(actor, session_id).await
    }

    fn watch_active_sessions(&self, actor: &Actor) -> BoxStream<'static, Vec<ActiveSession>> {
        let runtime = self.clone();
        let actor = actor.clone();
        let every = self
            .inner
            .settings
            .poll_interval
            .max(Duration::from_millis(100));
        futures_util::stream::unfold(
            (runtime, actor, None::<Vec<ActiveSession>>),
            move |(runtime, actor, last)| async move {
                loop {
                    if last.is_some() {
                        tokio::time::sleep(every).await;
                    }
                    let Ok(now) = runtime.active_sessions(&actor).await else {
                        if last.is_none() {
                            return Some((Vec::new(), (runtime, actor, Some(Vec::new()))));
                        }
                        continue;
                    };
                    let ids = |l: &Vec<ActiveSession>| {
                        l.iter().map(|s| s.session_id.clone()).collect::<Vec<_>>()
                    };
                    if last.as_ref().map(ids) != Some(ids(&now)) {
                        return Some((now.clone(), (runtime, actor, Some(now))));
                    }
                }
            },
        )
        .boxed()
    }
}
