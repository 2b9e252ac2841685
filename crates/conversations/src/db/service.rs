//! `SeaOrmConversations`: conversation rows, messages in stream order, usage rows.

use async_trait::async_trait;
use chrono::Utc;
use platform::Actor;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, Set, SqlErr, TransactionTrait,
};
use serde_json::Value;

use super::entities::{conversations, messages, token_usage};
use crate::ConversationError;
use crate::service::{Conversation, Conversations, NewConversation, StoredMessage, UsageRecord};

pub struct SeaOrmConversations {
    db: DatabaseConnection,
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
    pub fn new(db: DatabaseConnection) -> Self {
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
        let inserted = conversations::ActiveModel {
            session_id: Set(new.session_id.clone()),
            user_id: Set(actor.user_id.clone()),
            agent_id: Set(new.agent_id),
            agent_name: Set(new.agent_name),
            title: Set(new.title),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&self.db)
        .await;
        match inserted {
            Ok(row) => Ok(to_conversation(row)),
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
        Ok(rows
            .into_iter()
            .map(|m| StoredMessage {
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
            })
            .collect())
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
        let txn = self.db.begin().await?;
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
        let mut touched: conversations::ActiveModel = row.into();
        touched.updated_at = Set(Utc::now());
        touched.update(&txn).await?;
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
        Ok(rows
            .into_iter()
            .map(|u| UsageRecord {
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
            })
            .collect())
    }
}
