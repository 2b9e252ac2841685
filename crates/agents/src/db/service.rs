//! `SeaOrmAgents`: agents as JSON documents with their grants.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use platform::db::{Budget, StampedCache, Topic};
use platform::{Actor, Page, PageRequest};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, SqlErr, TransactionTrait,
};
use serde_json::{Map, Value};

use providers::{ChatRequest, LlmClient, Providers};

use super::entities::{agent_grants, agents};
use crate::generate;
use crate::service::{Agent, AgentSaved, Agents, JsonPage};
use crate::{AgentConfig, AgentError, normalise};

pub struct SeaOrmAgents {
    db: platform::db::Db,
    providers: Arc<dyn Providers>,
    llm: LlmClient,
    max_prompt_chars: usize,
    max_per_user: u64,
    /// Answers of the two hot reads (every page of the web UI asks whether the caller has
    /// an agent; the agent list), trusted while no process has announced a change of an
    /// agent or a grant ([`Topic::Agents`]).
    cached: Cached,
    /// Told after each create and update (set once, after construction).
    saved: std::sync::OnceLock<Arc<dyn AgentSaved>>,
}

/// The list page a caller asked for: who (and whether as an admin), offset, size.
type PageKey = (String, bool, u64, u64);

struct Cached {
    has_agent: StampedCache<String, bool>,
    pages: StampedCache<PageKey, Arc<JsonPage>>,
}

impl Cached {
    fn new(db: &platform::db::Db) -> Self {
        Self {
            has_agent: StampedCache::new(db, Topic::Agents, Budget::default(), |_| 64),
            pages: StampedCache::new(db, Topic::Agents, Budget::default(), |page| {
                page.items.iter().map(|item| item.get().len() + 64).sum()
            }),
        }
    }

    /// After a committed change of agents or grants.
    async fn changed(&self) {
        // Both caches watch the same topic: one announcement drops both.
        self.pages.changed().await;
    }
}

/// Agents one user may own unless configured otherwise (`SAGE_MAX_AGENTS_PER_USER`).
pub const DEFAULT_MAX_AGENTS_PER_USER: u64 = 200;

/// What the caller may do with an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Manage,
    Use,
}

fn to_agent(row: agents::Model) -> Result<Agent, AgentError> {
    let config: Map<String, Value> = serde_json::from_str(&row.config).map_err(|e| {
        AgentError::Internal(anyhow::anyhow!(
            "agent {} has a corrupt configuration: {e}",
            row.id
        ))
    })?;
    Ok(Agent {
        id: row.id,
        user_id: row.user_id,
        config: AgentConfig(config),
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

fn name_taken(e: sea_orm::DbErr) -> AgentError {
    match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => AgentError::NameTaken,
        _ => e.into(),
    }
}

impl SeaOrmAgents {
    pub fn new(db: platform::db::Db, providers: Arc<dyn Providers>, llm: LlmClient) -> Self {
        Self {
            providers,
            llm,
            max_prompt_chars: crate::JobSettings::default().max_input_chars,
            max_per_user: DEFAULT_MAX_AGENTS_PER_USER,
            cached: Cached::new(&db),
            saved: std::sync::OnceLock::new(),
            db,
        }
    }

    /// The largest text, in characters, one request sends to the model
    /// (`SAGE_MAX_PROMPT_CHARS`); longer ones are refused before any model call.
    pub fn with_max_prompt_chars(mut self, max: usize) -> Self {
        self.max_prompt_chars = max;
        self
    }

    /// Sets how many agents one user may own (at least 1).
    pub fn with_quota(mut self, max_per_user: u64) -> Self {
        self.max_per_user = max_per_user.max(1);
        self
    }

    /// The hook told after each create and update (the first one set stays).
    pub fn on_saved(&self, hook: Arc<dyn AgentSaved>) {
        let _ = self.saved.set(hook);
    }

    async fn announce(&self, owner_id: &str, agent_id: &str, config: &AgentConfig, created: bool) {
        if let Some(hook) = self.saved.get() {
            hook.agent_saved(
                owner_id,
                agent_id,
                config.text_list("availableSkills"),
                created,
            )
            .await;
        }
    }

    fn check_input(&self, field: &str, messages: &[Value]) -> Result<(), AgentError> {
        platform::spend::check_input(field, generate::user_chars(messages), self.max_prompt_chars)?;
        Ok(())
    }

    /// One JSON-mode answer from the resolved provider.
    async fn ask(
        &self,
        actor: &Actor,
        provider_id: Option<&str>,
        messages: Vec<Value>,
    ) -> Result<String, AgentError> {
        let endpoint = self.providers.resolve(actor, provider_id).await?;
        let request = ChatRequest {
            messages,
            max_tokens: Some(4096),
            response_format: Some(serde_json::json!({"type": "json_object"})),
            ..ChatRequest::default()
        };
        let answer = self
            .llm
            .chat(&endpoint, &request)
            .await
            .map_err(AgentError::Llm)?;
        Ok(answer.content)
    }

    /// The agent and the caller's access to it; `NotFound` when the caller has none.
    async fn access(&self, actor: &Actor, id: &str) -> Result<(agents::Model, Access), AgentError> {
        if !platform::ids::is_safe_id(id) {
            return Err(AgentError::NotFound);
        }
        let row = agents::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await?
            .ok_or(AgentError::NotFound)?;
        if actor.is_admin || row.user_id == actor.user_id {
            return Ok((row, Access::Manage));
        }
        let granted = agent_grants::Entity::find_by_id((row.id.clone(), actor.user_id.clone()))
            .one(&self.db)
            .await?
            .is_some();
        if granted {
            Ok((row, Access::Use))
        } else {
            Err(AgentError::NotFound)
        }
    }

    async fn manage(&self, actor: &Actor, id: &str) -> Result<agents::Model, AgentError> {
        match self.access(actor, id).await? {
            (row, Access::Manage) => Ok(row),
            (_, Access::Use) => Err(AgentError::Forbidden),
        }
    }

    /// One list page read from the database (see [`Agents::list_json`]).
    async fn read_page(&self, actor: &Actor, page: PageRequest) -> Result<JsonPage, AgentError> {
        // One query: the page and, by a window function, the total over all pages.
        let rows = visible(actor)
            .select_only()
            .columns([
                agents::Column::Id,
                agents::Column::UserId,
                agents::Column::Config,
                agents::Column::CreatedAt,
                agents::Column::UpdatedAt,
            ])
            .column_as(sea_orm::sea_query::Expr::cust("COUNT(*) OVER ()"), "total")
            .order_by_desc(agents::Column::CreatedAt)
            .order_by_desc(agents::Column::Id)
            .offset(page.offset())
            .limit(page.page_size())
            .into_model::<ListedRow>()
            .all(&self.db)
            .await?;
        let total = match rows.first() {
            Some(row) => u64::try_from(row.total).unwrap_or(0),
            // Past the last page the window has no row to ride on.
            None if page.offset() > 0 => visible(actor).count(&self.db).await?,
            None => 0,
        };
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            match crate::config::dto_json(
                &row.id,
                &row.user_id,
                &row.created_at,
                &row.updated_at,
                &row.config,
            ) {
                Ok(json) => items.push(json),
                // One corrupt row is logged and skipped rather than failing the whole list.
                Err(e) => {
                    tracing::error!(agent = %row.id, error = %e, "skipping an unreadable agent")
                }
            }
        }
        Ok(Page { items, total })
    }

    async fn name_in_use(
        &self,
        owner: &str,
        name_key: &str,
        except: Option<&str>,
    ) -> Result<bool, AgentError> {
        let mut query = agents::Entity::find()
            .filter(agents::Column::UserId.eq(owner.to_owned()))
            .filter(agents::Column::NameKey.eq(name_key.to_owned()));
        if let Some(id) = except {
            query = query.filter(agents::Column::Id.ne(id.to_owned()));
        }
        Ok(query.count(&self.db).await? > 0)
    }
}

fn stored(config: &AgentConfig) -> Result<String, AgentError> {
    serde_json::to_string(&config.0).map_err(|e| AgentError::Internal(e.into()))
}

/// The agents `actor` may see: own and granted ones (admins: all).
fn visible(actor: &Actor) -> sea_orm::Select<agents::Entity> {
    let query = agents::Entity::find();
    if actor.is_admin {
        return query;
    }
    let granted = sea_orm::sea_query::Query::select()
        .column(agent_grants::Column::AgentId)
        .from(agent_grants::Entity)
        .and_where(agent_grants::Column::UserId.eq(actor.user_id.clone()))
        .to_owned();
    query.filter(
        Condition::any()
            .add(agents::Column::UserId.eq(actor.user_id.clone()))
            .add(agents::Column::Id.in_subquery(granted)),
    )
}

/// A row of the list page with the number of visible agents over all pages.
#[derive(Debug, sea_orm::FromQueryResult)]
struct ListedRow {
    id: String,
    user_id: String,
    config: String,
    created_at: chrono::DateTime<Utc>,
    updated_at: chrono::DateTime<Utc>,
    total: i64,
}

#[async_trait]
impl Agents for SeaOrmAgents {
    async fn list_json(
        &self,
        actor: &Actor,
        page: PageRequest,
    ) -> Result<Arc<JsonPage>, AgentError> {
        let key = (
            actor.user_id.clone(),
            actor.is_admin,
            page.offset(),
            page.page_size(),
        );
        self.cached
            .pages
            .get_or_fill(key, || async {
                Ok(Arc::new(self.read_page(actor, page).await?))
            })
            .await
    }

    async fn list(&self, actor: &Actor, page: PageRequest) -> Result<Page<Agent>, AgentError> {
        let query = visible(actor);
        let total = query.clone().count(&self.db).await?;
        let rows = if page.offset() >= total {
            Vec::new()
        } else {
            query
                .order_by_desc(agents::Column::CreatedAt)
                .order_by_desc(agents::Column::Id)
                .offset(page.offset())
                .limit(page.page_size())
                .all(&self.db)
                .await?
        };
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            // One corrupt row is logged and skipped rather than failing the whole list.
            match to_agent(row) {
                Ok(agent) => out.push(agent),
                Err(e) => tracing::error!(error = %e, "skipping an unreadable agent"),
            }
        }
        Ok(Page { items: out, total })
    }

    async fn create(
        &self,
        actor: &Actor,
        config: Map<String, Value>,
    ) -> Result<String, AgentError> {
        let config = normalise(&config)?;
        let owned = agents::Entity::find()
            .filter(agents::Column::UserId.eq(actor.user_id.clone()))
            .count(&self.db)
            .await?;
        if owned >= self.max_per_user {
            return Err(AgentError::QuotaExceeded {
                limit: self.max_per_user,
            });
        }
        let name_key = config.name().to_lowercase();
        if self.name_in_use(&actor.user_id, &name_key, None).await? {
            return Err(AgentError::NameTaken);
        }
        let id = platform::ids::new_prefixed_id("agent_", 12);
        let now = Utc::now();
        agents::ActiveModel {
            id: Set(id.clone()),
            user_id: Set(actor.user_id.clone()),
            name: Set(config.name().to_owned()),
            name_key: Set(name_key),
            is_default: Set(config.is_default()),
            config: Set(stored(&config)?),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&self.db)
        .await
        .map_err(name_taken)?;
        self.cached.changed().await;
        self.announce(&actor.user_id, &id, &config, true).await;
        Ok(id)
    }

    async fn get(&self, actor: &Actor, id: &str) -> Result<Agent, AgentError> {
        let (row, _) = self.access(actor, id).await?;
        to_agent(row)
    }

    async fn update(
        &self,
        actor: &Actor,
        id: &str,
        config: Map<String, Value>,
    ) -> Result<String, AgentError> {
        let row = self.manage(actor, id).await?;
        let config = normalise(&config)?;
        let name_key = config.name().to_lowercase();
        if self
            .name_in_use(&row.user_id, &name_key, Some(&row.id))
            .await?
        {
            return Err(AgentError::NameTaken);
        }
        let owner_id = row.user_id.clone();
        let mut active: agents::ActiveModel = row.into();
        active.name = Set(config.name().to_owned());
        active.name_key = Set(name_key);
        active.is_default = Set(config.is_default());
        active.config = Set(stored(&config)?);
        active.updated_at = Set(Utc::now());
        active.update(&self.db).await.map_err(|e| match e {
            // Deleted meanwhile (between the access check and the update).
            sea_orm::DbErr::RecordNotUpdated => AgentError::NotFound,
            other => name_taken(other),
        })?;
        self.cached.changed().await;
        self.announce(&owner_id, id, &config, false).await;
        Ok(id.to_owned())
    }

    async fn delete(&self, actor: &Actor, id: &str) -> Result<String, AgentError> {
        let row = self.manage(actor, id).await?;
        let txn = self.db.begin().await?;
        agent_grants::Entity::delete_many()
            .filter(agent_grants::Column::AgentId.eq(row.id.clone()))
            .exec(&txn)
            .await?;
        agents::Entity::delete_by_id(row.id.clone())
            .exec(&txn)
            .await?;
        txn.commit().await?;
        self.cached.changed().await;
        Ok(row.id)
    }

    async fn grants(&self, actor: &Actor, id: &str) -> Result<Vec<String>, AgentError> {
        let row = self.manage(actor, id).await?;
        let users: Vec<String> = agent_grants::Entity::find()
            .filter(agent_grants::Column::AgentId.eq(row.id))
            .order_by_asc(agent_grants::Column::UserId)
            .select_only()
            .column(agent_grants::Column::UserId)
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(users)
    }

    async fn set_grants(
        &self,
        actor: &Actor,
        id: &str,
        user_ids: Vec<String>,
    ) -> Result<Vec<String>, AgentError> {
        let row = self.manage(actor, id).await?;
        let mut wanted = BTreeSet::new();
        for user in user_ids {
            let user = user.trim().to_owned();
            if !platform::ids::is_safe_id(&user) {
                return Err(AgentError::invalid(
                    "user_ids",
                    format!("`{user}` is not a user id"),
                ));
            }
            if user != row.user_id {
                wanted.insert(user);
            }
        }
        if wanted.len() > 1000 {
            return Err(AgentError::invalid("user_ids", "at most 1000 users"));
        }
        let txn = self.db.begin().await?;
        agent_grants::Entity::delete_many()
            .filter(agent_grants::Column::AgentId.eq(row.id.clone()))
            .exec(&txn)
            .await?;
        let now = Utc::now();
        if !wanted.is_empty() {
            agent_grants::Entity::insert_many(wanted.iter().map(|user| {
                agent_grants::ActiveModel {
                    agent_id: Set(row.id.clone()),
                    user_id: Set(user.clone()),
                    created_at: Set(now),
                }
            }))
            .exec(&txn)
            .await?;
        }
        txn.commit().await?;
        self.cached.changed().await;
        Ok(wanted.into_iter().collect())
    }

    async fn auto_generate(
        &self,
        actor: &Actor,
        description: &str,
        tools: Vec<String>,
        language: crate::Language,
    ) -> Result<Value, AgentError> {
        let description = description.trim();
        if description.is_empty() {
            return Err(AgentError::invalid("agent_description", "is required"));
        }
        let messages = generate::draft_messages(description, &tools, language);
        self.check_input("agent_description", &messages)?;
        let output = self.ask(actor, None, messages).await?;
        generate::draft(&output, &tools)
    }

    async fn optimize_prompt(
        &self,
        actor: &Actor,
        original: &str,
        goal: &str,
        language: crate::Language,
    ) -> Result<Value, AgentError> {
        if original.trim().is_empty() {
            return Err(AgentError::invalid("original_prompt", "is required"));
        }
        let messages = generate::optimize_messages(original, goal, language);
        self.check_input("original_prompt", &messages)?;
        let output = self.ask(actor, None, messages).await?;
        generate::optimized(&output, original, goal)
    }

    async fn abilities(
        &self,
        actor: &Actor,
        agent_id: &str,
        context: &str,
        language: crate::Language,
    ) -> Result<Value, AgentError> {
        platform::spend::check_input("context", context.chars().count(), self.max_prompt_chars)?;
        let agent = to_agent(self.access(actor, agent_id).await?.0)?;
        // The agent's provider belongs to its owner; a grantee uses their own.
        let provider = (agent.user_id == actor.user_id)
            .then(|| agent.config.provider_id())
            .flatten();
        let messages = generate::ability_messages(&agent.config.0, context, language);
        // The agent's own texts count too: its system prompt may be long.
        self.check_input("agent_id", &messages)?;
        let output = self.ask(actor, provider, messages).await?;
        generate::abilities(&output)
    }

    async fn has_agent(&self, actor: &Actor) -> Result<bool, AgentError> {
        self.cached
            .has_agent
            .get_or_fill(actor.user_id.clone(), || async {
                Ok(agents::Entity::find()
                    .select_only()
                    .column(agents::Column::Id)
                    .filter(agents::Column::UserId.eq(actor.user_id.clone()))
                    .into_tuple::<String>()
                    .one(&self.db)
                    .await?
                    .is_some())
            })
            .await
    }
}

/// A deleted user's agents are deleted with their grants, and grants to the user end.
#[async_trait]
impl platform::UserCleanup for SeaOrmAgents {
    async fn user_deleted(&self, user_id: &str) -> Result<(), platform::actor::CleanupError> {
        let owned: Vec<String> = agents::Entity::find()
            .filter(agents::Column::UserId.eq(user_id.to_owned()))
            .select_only()
            .column(agents::Column::Id)
            .into_tuple()
            .all(&self.db)
            .await?;
        let txn = self.db.begin().await?;
        agent_grants::Entity::delete_many()
            .filter(
                Condition::any()
                    .add(agent_grants::Column::UserId.eq(user_id.to_owned()))
                    .add(agent_grants::Column::AgentId.is_in(owned)),
            )
            .exec(&txn)
            .await?;
        agents::Entity::delete_many()
            .filter(agents::Column::UserId.eq(user_id.to_owned()))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        self.cached.changed().await;
        Ok(())
    }
}
