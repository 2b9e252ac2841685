//! `SeaOrmConversations`: conversation rows, messages in stream order, usage rows.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use platform::Actor;
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr, OnConflict, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, SqlErr, TransactionTrait,
};
use serde_json::{Value, json};

use super::entities::{conversation_counts, conversations, messages, token_usage};
use crate::ConversationError;
use crate::service::{
    Conversation, ConversationPage, Conversations, Dimension, EditedConversation, ListQuery,
    NewConversation, Recalled, SortBy, StoredMessage, TokenFigures, TokenGroup, TokenStats,
    TokenStatsQuery, UsageRecord,
};

/// Message types `recall` reads: what users said and what agents answered.
const RECALLED_TYPES: [&str; 5] = [
    "user_input",
    "do_subtask_result",
    "assistant_text",
    "final_answer",
    "normal",
];

/// Longest title a rename accepts, in characters.
const MAX_TITLE_CHARS: usize = 200;

pub struct SeaOrmConversations {
    db: platform::db::Db,
}

fn to_conversation(row: conversations::Model) -> Conversation {
    Conversation {
        session_id: row.session_id,
        user_id: row.user_id,
        agent_id: row.agent_id,
        agent_name: row.agent_name,
        title: row.title,
        created_at: row.created_at,
        updated_at: row.updated_at,
        message_count: to_u64(row.message_count.into()),
        user_count: to_u64(row.user_count.into()),
        agent_count: to_u64(row.agent_count.into()),
        shared: row.shared,
    }
}

fn to_message(m: messages::Model) -> StoredMessage {
    StoredMessage {
        message_id: m.message_id,
        role: m.role,
        message_type: m.message_type,
        content: parse(&m.content),
        reasoning_content: m.reasoning_content,
        tool_calls: m.tool_calls.as_deref().map(parse),
        tool_call_id: m.tool_call_id,
        agent_name: m.agent_name,
        metadata: parse(&m.metadata),
        created_at: m.created_at,
    }
}

/// (visible, from the user, from agents) among `messages`.
fn counts<'a>(messages: impl IntoIterator<Item = &'a StoredMessage>) -> (i32, i32, i32) {
    messages
        .into_iter()
        .filter(|m| !m.is_hidden())
        .fold((0, 0, 0), |(all, user, agent), m| {
            (
                all + 1,
                user + i32::from(m.role == "user"),
                agent + i32::from(m.role == "assistant"),
            )
        })
}

/// `content` with its text replaced: a string becomes `text`; in a list of parts the first
/// text part is replaced (one is put first when there is none).
fn replace_text(content: &Value, text: &str) -> Value {
    match content {
        Value::Array(parts) => {
            let mut parts = parts.clone();
            match parts.iter_mut().find(|p| p["type"] == "text") {
                Some(part) => part["text"] = json!(text),
                None => parts.insert(0, json!({"type": "text", "text": text})),
            }
            Value::Array(parts)
        }
        _ => json!(text),
    }
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn tool_names(tool_calls: &Value) -> impl Iterator<Item = String> + '_ {
    tool_calls
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["function"]["name"].as_str())
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
}

fn to_usage(u: token_usage::Model) -> UsageRecord {
    UsageRecord {
        session_id: u.session_id,
        user_id: u.user_id,
        agent_id: u.agent_id,
        request_source: u.request_source,
        model: u.model,
        input_tokens: to_u64(u.input_tokens),
        output_tokens: to_u64(u.output_tokens),
        total_tokens: to_u64(u.total_tokens),
        cached_tokens: to_u64(u.cached_tokens),
        reasoning_tokens: to_u64(u.reasoning_tokens),
        step_count: u32::try_from(u.step_count).unwrap_or(0),
        step_model_names: serde_json::from_str(&u.step_model_names).unwrap_or_default(),
        started_at: u.started_at,
        finished_at: u.finished_at,
    }
}

/// Sums runs; sessions are counted once each (runs of deleted conversations have none).
#[derive(Default)]
struct Tally {
    figures: TokenFigures,
    sessions: BTreeSet<String>,
}

impl Tally {
    fn add(&mut self, u: &UsageRecord) {
        let f = &mut self.figures;
        f.run_count += 1;
        f.input_tokens += u.input_tokens;
        f.output_tokens += u.output_tokens;
        f.total_tokens += u.total_tokens;
        f.cached_tokens += u.cached_tokens;
        f.reasoning_tokens += u.reasoning_tokens;
        f.model_call_count += u64::from(u.step_count);
        if !u.session_id.is_empty() {
            self.sessions.insert(u.session_id.clone());
        }
    }

    fn done(mut self) -> TokenFigures {
        self.figures.session_count = self.sessions.len() as u64;
        self.figures
    }
}

fn json_text(value: &Value) -> Result<String, ConversationError> {
    serde_json::to_string(value).map_err(|e| ConversationError::Internal(e.into()))
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::String(text.to_owned()))
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl SeaOrmConversations {
    pub fn new(db: platform::db::Db) -> Self {
        Self { db }
    }

    /// The row when the caller may see it.
    async fn visible(
        &self,
        actor: &Actor,
        session_id: &str,
    ) -> Result<conversations::Model, ConversationError> {
        if !platform::ids::is_safe_id(session_id) {
            return Err(ConversationError::NotFound);
        }
        let row = conversations::Entity::find_by_id(session_id.to_owned())
            .one(&self.db)
            .await?
            .ok_or(ConversationError::NotFound)?;
        if actor.is_admin || row.user_id == actor.user_id {
            Ok(row)
        } else {
            Err(ConversationError::NotFound)
        }
    }
}

/// Adds `by` to the owner's conversation count (within the transaction that opens or deletes).
async fn count_conversations(
    txn: &sea_orm::DatabaseTransaction,
    owner: &str,
    by: i64,
) -> Result<(), sea_orm::DbErr> {
    use conversation_counts::Column as N;
    conversation_counts::Entity::insert(conversation_counts::ActiveModel {
        user_id: Set(owner.to_owned()),
        total: Set(Ord::max(by, 0)),
    })
    .on_conflict(
        OnConflict::column(N::UserId)
            .value(
                N::Total,
                Expr::col((conversation_counts::Entity, N::Total)).add(by),
            )
            .to_owned(),
    )
    .exec_without_returning(txn)
    .await?;
    Ok(())
}

#[async_trait]
impl Conversations for SeaOrmConversations {
    async fn open(
        &self,
        actor: &Actor,
        new: NewConversation,
    ) -> Result<Conversation, ConversationError> {
        if !platform::ids::is_safe_id(&new.session_id) {
            return Err(ConversationError::NotFound);
        }
        match self.visible(actor, &new.session_id).await {
            Ok(row) => return Ok(to_conversation(row)),
            Err(ConversationError::NotFound) => {}
            Err(e) => return Err(e),
        }
        let now = Utc::now();
        // The row and its owner's count, together.
        let txn = self.db.begin().await?;
        let inserted = conversations::ActiveModel {
            session_id: Set(new.session_id.clone()),
            user_id: Set(actor.user_id.clone()),
            agent_id: Set(new.agent_id),
            agent_name: Set(new.agent_name),
            title: Set(new.title),
            created_at: Set(now),
            updated_at: Set(now),
            message_count: Set(0),
            user_count: Set(0),
            agent_count: Set(0),
            shared: Set(false),
        }
        .insert(&txn)
        .await;
        match inserted {
            Ok(row) => {
                count_conversations(&txn, &row.user_id, 1).await?;
                txn.commit().await?;
                Ok(to_conversation(row))
            }
            // Someone else's session id (or a concurrent first run): answer as the row says.
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => self
                .visible(actor, &new.session_id)
                .await
                .map(to_conversation),
            Err(e) => Err(e.into()),
        }
    }

    async fn get(
        &self,
        actor: &Actor,
        session_id: &str,
    ) -> Result<Conversation, ConversationError> {
        self.visible(actor, session_id).await.map(to_conversation)
    }

    async fn messages(
        &self,
        actor: &Actor,
        session_id: &str,
    ) -> Result<Vec<StoredMessage>, ConversationError> {
        let row = self.visible(actor, session_id).await?;
        let rows = messages::Entity::find()
            .filter(messages::Column::SessionId.eq(row.session_id))
            .order_by_asc(messages::Column::Position)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(to_message).collect())
    }

    async fn append(
        &self,
        actor: &Actor,
        session_id: &str,
        new_messages: Vec<StoredMessage>,
    ) -> Result<(), ConversationError> {
        let row = self.visible(actor, session_id).await?;
        if new_messages.is_empty() {
            return Ok(());
        }
        let (all, user, agent) = counts(&new_messages);
        let txn = self.db.begin().await?;
        // Write first: on SQLite the transaction takes the write lock here (waiting out other
        // writers in the busy timeout) instead of failing to upgrade a read snapshot later.
        conversations::Entity::update_many()
            .col_expr(conversations::Column::UpdatedAt, Expr::value(Utc::now()))
            .col_expr(
                conversations::Column::MessageCount,
                Expr::col(conversations::Column::MessageCount).add(all),
            )
            .col_expr(
                conversations::Column::UserCount,
                Expr::col(conversations::Column::UserCount).add(user),
            )
            .col_expr(
                conversations::Column::AgentCount,
                Expr::col(conversations::Column::AgentCount).add(agent),
            )
            .filter(conversations::Column::SessionId.eq(row.session_id.clone()))
            .exec(&txn)
            .await?;
        let count = messages::Entity::find()
            .filter(messages::Column::SessionId.eq(row.session_id.clone()))
            .count(&txn)
            .await?;
        let start = i32::try_from(count).unwrap_or(i32::MAX);
        let mut models = Vec::with_capacity(new_messages.len());
        for (i, m) in new_messages.into_iter().enumerate() {
            models.push(messages::ActiveModel {
                session_id: Set(row.session_id.clone()),
                position: Set(start.saturating_add(i32::try_from(i).unwrap_or(i32::MAX))),
                message_id: Set(m.message_id),
                role: Set(m.role),
                message_type: Set(m.message_type),
                content: Set(json_text(&m.content)?),
                reasoning_content: Set(m.reasoning_content),
                tool_calls: Set(m.tool_calls.as_ref().map(json_text).transpose()?),
                tool_call_id: Set(m.tool_call_id),
                agent_name: Set(m.agent_name),
                metadata: Set(json_text(&m.metadata)?),
                created_at: Set(m.created_at),
            });
        }
        messages::Entity::insert_many(models).exec(&txn).await?;
        txn.commit().await?;
        Ok(())
    }

    async fn record_usage(
        &self,
        actor: &Actor,
        usage: UsageRecord,
    ) -> Result<(), ConversationError> {
        let row = self.visible(actor, &usage.session_id).await?;
        token_usage::ActiveModel {
            id: Set(platform::ids::new_hex_id()),
            session_id: Set(row.session_id),
            user_id: Set(row.user_id),
            agent_id: Set(usage.agent_id),
            request_source: Set(usage.request_source),
            model: Set(usage.model),
            input_tokens: Set(to_i64(usage.input_tokens)),
            output_tokens: Set(to_i64(usage.output_tokens)),
            total_tokens: Set(to_i64(usage.total_tokens)),
            cached_tokens: Set(to_i64(usage.cached_tokens)),
            reasoning_tokens: Set(to_i64(usage.reasoning_tokens)),
            step_count: Set(i32::try_from(usage.step_count).unwrap_or(i32::MAX)),
            step_model_names: Set(json_text(&Value::from(usage.step_model_names))?),
            started_at: Set(usage.started_at),
            finished_at: Set(usage.finished_at),
        }
        .insert(&self.db)
        .await?;
        Ok(())
    }

    async fn usage(
        &self,
        actor: &Actor,
        session_id: &str,
    ) -> Result<Vec<UsageRecord>, ConversationError> {
        let row = self.visible(actor, session_id).await?;
        let rows = token_usage::Entity::find()
            .filter(token_usage::Column::SessionId.eq(row.session_id))
            .order_by_asc(token_usage::Column::StartedAt)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(to_usage).collect())
    }

    async fn list(
        &self,
        actor: &Actor,
        query: ListQuery,
    ) -> Result<ConversationPage, ConversationError> {
        use conversations::Column as C;
        let mut select = conversations::Entity::find();
        let owner = if !actor.is_admin {
            Some(actor.user_id.as_str())
        } else {
            query.user_id.as_deref().filter(|u| !u.is_empty())
        };
        if let Some(owner) = owner {
            select = select.filter(C::UserId.eq(owner));
        }
        let searched = query.search.as_deref().is_some_and(|s| !s.is_empty());
        let filtered = searched || query.agent_id.as_deref().is_some_and(|a| !a.is_empty());
        if let Some(agent) = query.agent_id.as_deref().filter(|a| !a.is_empty()) {
            select = select.filter(C::AgentId.eq(agent));
        }
        if let Some(search) = query.search.as_deref().filter(|s| !s.is_empty()) {
            let pattern = platform::db::contains_pattern(search);
            // PostgreSQL's LIKE minds case: it compares lowered text, as its trigram indexes
            // hold it. SQLite's LIKE ignores ASCII case and its lower() folds nothing else, so
            // the plain comparison matches the same rows at a third of the cost.
            let lowered = self.db.get_database_backend() == DbBackend::Postgres;
            let like = |col: C| {
                let text = if lowered {
                    Expr::expr(Func::lower(Expr::col(col)))
                } else {
                    Expr::col(col)
                };
                text.like(LikeExpr::new(pattern.clone()).escape('\\'))
            };
            select = select.filter(Condition::any().add(like(C::Title)).add(like(C::SessionId)));
        }
        let counted = select.clone();
        select = match query.sort_by {
            SortBy::Date => select
                .order_by_desc(C::UpdatedAt)
                .order_by_desc(C::SessionId),
            SortBy::Title => select.order_by_asc(C::Title).order_by_asc(C::SessionId),
            SortBy::Messages => select
                .order_by_desc(C::MessageCount)
                .order_by_desc(C::UpdatedAt)
                .order_by_desc(C::SessionId),
        };
        let size = query.page_size.clamp(1, 100);
        let select = select
            .offset(
                Ord::max(query.page, 1)
                    .saturating_sub(1)
                    .saturating_mul(size),
            )
            .limit(size);
        // The page and its total at once (each on its own pooled connection). One owner's
        // unfiltered total is the count kept beside the rows. A search is planned for its
        // pattern (`Db::custom_plans`).
        let planned = || async {
            match searched {
                true => self.db.custom_plans().await,
                false => Ok(None),
            }
        };
        let rows = async {
            match planned().await? {
                Some(txn) => {
                    let rows = select.all(&txn).await?;
                    txn.commit().await?;
                    Ok(rows)
                }
                None => select.all(&self.db).await,
            }
        };
        let total = async {
            match owner {
                Some(owner) if !filtered => Ok(conversation_counts::Entity::find_by_id(owner)
                    .one(&self.db)
                    .await?
                    .map_or(0, |c| u64::try_from(c.total).unwrap_or(0))),
                _ => match planned().await? {
                    Some(txn) => {
                        let total = counted.count(&txn).await?;
                        txn.commit().await?;
                        Ok(total)
                    }
                    None => counted.count(&self.db).await,
                },
            }
        };
        let (rows, total) = tokio::try_join!(rows, total)?;
        Ok(ConversationPage {
            items: rows.into_iter().map(to_conversation).collect(),
            total,
        })
    }

    async fn rename(
        &self,
        actor: &Actor,
        session_id: &str,
        title: &str,
    ) -> Result<Conversation, ConversationError> {
        let row = self.visible(actor, session_id).await?;
        let title = title.trim();
        if title.is_empty() {
            return Err(ConversationError::Invalid {
                field: "title",
                reason: "is required".into(),
            });
        }
        if title.chars().count() > MAX_TITLE_CHARS || title.chars().any(char::is_control) {
            return Err(ConversationError::Invalid {
                field: "title",
                reason: format!("use at most {MAX_TITLE_CHARS} characters, no control characters"),
            });
        }
        let mut active: conversations::ActiveModel = row.into();
        active.title = Set(title.to_owned());
        Ok(to_conversation(active.update(&self.db).await?))
    }

    async fn delete(&self, actor: &Actor, session_id: &str) -> Result<(), ConversationError> {
        let row = self.visible(actor, session_id).await?;
        let txn = self.db.begin().await?;
        messages::Entity::delete_many()
            .filter(messages::Column::SessionId.eq(row.session_id.clone()))
            .exec(&txn)
            .await?;
        token_usage::Entity::update_many()
            .col_expr(token_usage::Column::SessionId, Expr::value(""))
            .filter(token_usage::Column::SessionId.eq(row.session_id.clone()))
            .exec(&txn)
            .await?;
        let deleted = conversations::Entity::delete_by_id(row.session_id)
            .exec(&txn)
            .await?;
        if deleted.rows_affected > 0 {
            count_conversations(&txn, &row.user_id, -1).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    async fn remove_user(&self, user_id: &str) -> Result<Vec<String>, ConversationError> {
        use conversations::Column as C;
        let owned = || {
            Query::select()
                .column(C::SessionId)
                .from(conversations::Entity)
                .and_where(Expr::col(C::UserId).eq(user_id))
                .to_owned()
        };
        let txn = self.db.begin().await?;
        let ids: Vec<String> = conversations::Entity::find()
            .filter(C::UserId.eq(user_id.to_owned()))
            .select_only()
            .column(C::SessionId)
            .into_tuple()
            .all(&txn)
            .await?;
        messages::Entity::delete_many()
            .filter(messages::Column::SessionId.in_subquery(owned()))
            .exec(&txn)
            .await?;
        token_usage::Entity::update_many()
            .col_expr(token_usage::Column::SessionId, Expr::value(""))
            .filter(token_usage::Column::SessionId.in_subquery(owned()))
            .exec(&txn)
            .await?;
        conversations::Entity::delete_many()
            .filter(C::UserId.eq(user_id.to_owned()))
            .exec(&txn)
            .await?;
        conversation_counts::Entity::delete_many()
            .filter(conversation_counts::Column::UserId.eq(user_id.to_owned()))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(ids)
    }

    async fn set_shared(
        &self,
        actor: &Actor,
        session_id: &str,
        shared: bool,
    ) -> Result<Conversation, ConversationError> {
        let row = self.visible(actor, session_id).await?;
        if row.user_id != actor.user_id {
            return Err(ConversationError::NotFound);
        }
        let mut active: conversations::ActiveModel = row.into();
        active.shared = Set(shared);
        Ok(to_conversation(active.update(&self.db).await?))
    }

    async fn shared(
        &self,
        session_id: &str,
    ) -> Result<(Conversation, Vec<StoredMessage>), ConversationError> {
        if !platform::ids::is_safe_id(session_id) {
            return Err(ConversationError::NotFound);
        }
        let row = conversations::Entity::find_by_id(session_id.to_owned())
            .one(&self.db)
            .await?
            .filter(|r| r.shared)
            .ok_or(ConversationError::NotFound)?;
        let rows = messages::Entity::find()
            .filter(messages::Column::SessionId.eq(row.session_id.clone()))
            .order_by_asc(messages::Column::Position)
            .all(&self.db)
            .await?;
        Ok((
            to_conversation(row),
            rows.into_iter().map(to_message).collect(),
        ))
    }

    async fn edit_last_user_message(
        &self,
        actor: &Actor,
        session_id: &str,
        content: &str,
    ) -> Result<EditedConversation, ConversationError> {
        if content.trim().is_empty() {
            return Err(ConversationError::Invalid {
                field: "content",
                reason: "is required".into(),
            });
        }
        let row = self.visible(actor, session_id).await?;
        let txn = self.db.begin().await?;
        let rows = messages::Entity::find()
            .filter(messages::Column::SessionId.eq(row.session_id.clone()))
            .order_by_asc(messages::Column::Position)
            .all(&txn)
            .await?;
        let stored: Vec<(i32, StoredMessage)> = rows
            .into_iter()
            .map(|m| (m.position, to_message(m)))
            .collect();
        let (position, last) = stored
            .iter()
            .rev()
            .find(|(_, m)| m.role == "user" && !m.is_hidden() && m.sub_session().is_none())
            .cloned()
            .ok_or(ConversationError::NoUserMessage)?;
        let mut edited = last;
        edited.content = replace_text(&edited.content, content);
        messages::Entity::delete_many()
            .filter(messages::Column::SessionId.eq(row.session_id.clone()))
            .filter(messages::Column::Position.gt(position))
            .exec(&txn)
            .await?;
        messages::Entity::update_many()
            .col_expr(
                messages::Column::Content,
                Expr::value(json_text(&edited.content)?),
            )
            .filter(messages::Column::SessionId.eq(row.session_id.clone()))
            .filter(messages::Column::Position.eq(position))
            .exec(&txn)
            .await?;
        let kept: Vec<&StoredMessage> = stored
            .iter()
            .filter(|(p, _)| *p <= position)
            .map(|(_, m)| m)
            .collect();
        let (all, user, agent) = counts(kept.iter().copied());
        let title = crate::title_from(&text_of(&edited.content)).unwrap_or(row.title.clone());
        let mut active: conversations::ActiveModel = row.into();
        active.title = Set(title);
        active.message_count = Set(all);
        active.user_count = Set(user);
        active.agent_count = Set(agent);
        active.updated_at = Set(Utc::now());
        let updated = active.update(&txn).await?;
        txn.commit().await?;
        Ok(EditedConversation {
            conversation: to_conversation(updated),
            message_count: kept.len() as u64,
            last_user_message: edited,
        })
    }

    async fn tool_usage(
        &self,
        actor: &Actor,
        since: DateTime<Utc>,
        agent_id: Option<&str>,
    ) -> Result<BTreeMap<String, u64>, ConversationError> {
        use conversations::Column as C;
        let mut sessions = Query::select();
        sessions
            .column(C::SessionId)
            .from(conversations::Entity)
            .and_where(Expr::col(C::UserId).eq(actor.user_id.clone()))
            .and_where(Expr::col(C::UpdatedAt).gte(since));
        if let Some(agent) = agent_id.filter(|a| !a.is_empty()) {
            sessions.and_where(Expr::col(C::AgentId).eq(agent));
        }
        let calls: Vec<Option<String>> = messages::Entity::find()
            .select_only()
            .column(messages::Column::ToolCalls)
            .filter(messages::Column::SessionId.in_subquery(sessions.to_owned()))
            .filter(messages::Column::MessageType.eq("tool_call"))
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut usage = BTreeMap::new();
        for text in calls.into_iter().flatten() {
            for name in tool_names(&parse(&text)) {
                *usage.entry(name).or_insert(0) += 1;
            }
        }
        Ok(usage)
    }

    async fn recall(
        &self,
        actor: &Actor,
        terms: &[String],
        except_session: &str,
        limit: u64,
    ) -> Result<Vec<Recalled>, ConversationError> {
        use conversations::Column as C;
        let terms: Vec<&String> = terms.iter().filter(|t| !t.trim().is_empty()).collect();
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let mut sessions = Query::select();
        sessions
            .column(C::SessionId)
            .from(conversations::Entity)
            .and_where(Expr::col(C::UserId).eq(actor.user_id.clone()))
            .and_where(Expr::col(C::SessionId).ne(except_session));
        // As the list's search: PostgreSQL compares lowered text, SQLite's LIKE ignores case.
        let lowered = self.db.get_database_backend() == DbBackend::Postgres;
        let mut select = messages::Entity::find()
            .filter(messages::Column::SessionId.in_subquery(sessions.to_owned()))
            .filter(messages::Column::MessageType.is_in(RECALLED_TYPES));
        for term in terms {
            let text = if lowered {
                Expr::expr(Func::lower(Expr::col(messages::Column::Content)))
            } else {
                Expr::col(messages::Column::Content)
            };
            let pattern = platform::db::contains_pattern(term.trim());
            select = select.filter(text.like(LikeExpr::new(pattern).escape('\\')));
        }
        // Hidden messages are dropped after reading, so read a little more than asked.
        let rows = select
            .order_by_desc(messages::Column::CreatedAt)
            .limit(limit.saturating_mul(2))
            .all(&self.db)
            .await?;
        let found: Vec<(String, StoredMessage)> = rows
            .into_iter()
            .map(|row| (row.session_id.clone(), to_message(row)))
            .filter(|(_, m)| !m.is_hidden())
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .collect();
        let ids: BTreeSet<String> = found.iter().map(|(s, _)| s.clone()).collect();
        let titles: BTreeMap<String, String> = conversations::Entity::find()
            .filter(C::SessionId.is_in(ids))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|c| (c.session_id, c.title))
            .collect();
        Ok(found
            .into_iter()
            .map(|(session_id, message)| Recalled {
                title: titles.get(&session_id).cloned().unwrap_or_default(),
                session_id,
                message,
            })
            .collect())
    }

    async fn token_stats(
        &self,
        actor: &Actor,
        query: TokenStatsQuery,
    ) -> Result<TokenStats, ConversationError> {
        use token_usage::Column as T;
        let mut select = token_usage::Entity::find();
        let user = if actor.is_admin {
            query.user_id.clone().filter(|u| !u.is_empty())
        } else {
            Some(actor.user_id.clone())
        };
        if let Some(user) = user {
            select = select.filter(T::UserId.eq(user));
        }
        if let Some(agent) = query.agent_id.as_deref().filter(|a| !a.is_empty()) {
            select = select.filter(T::AgentId.eq(agent));
        }
        if let Some(session) = query.session_id.as_deref().filter(|s| !s.is_empty()) {
            select = select.filter(T::SessionId.eq(session));
        }
        if let Some(source) = query.request_source.as_deref().filter(|s| !s.is_empty()) {
            select = select.filter(T::RequestSource.eq(source));
        }
        if let Some(from) = query.from {
            select = select.filter(T::StartedAt.gte(from));
        }
        if let Some(until) = query.until {
            select = select.filter(T::StartedAt.lt(until));
        }
        let rows = select.all(&self.db).await?;
        let mut summary = Tally::default();
        let mut groups: BTreeMap<String, Tally> = BTreeMap::new();
        for usage in rows.into_iter().map(to_usage) {
            summary.add(&usage);
            let key = match query.dimension {
                Dimension::Agent => usage.agent_id.clone(),
                Dimension::User => usage.user_id.clone(),
                Dimension::Session if usage.session_id.is_empty() => continue,
                Dimension::Session => usage.session_id.clone(),
            };
            groups.entry(key).or_default().add(&usage);
        }
        let mut items: Vec<TokenGroup> = groups
            .into_iter()
            .map(|(key, tally)| TokenGroup {
                key,
                figures: tally.done(),
            })
            .collect();
        items.sort_by(|a, b| {
            b.figures
                .total_tokens
                .cmp(&a.figures.total_tokens)
                .then_with(|| a.key.cmp(&b.key))
        });
        Ok(TokenStats {
            summary: summary.done(),
            items,
        })
    }
}
