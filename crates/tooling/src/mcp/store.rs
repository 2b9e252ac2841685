//! [`McpServers`] over SeaORM (table `mcp_servers`; API keys sealed with the server secret).

use std::sync::Arc;

use chrono::Utc;
use platform::db::Db;
use platform::secret::{ResealReport, Sealer, mask, reseal_rows};
use platform::{Actor, Clock, SystemClock};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::anytool::{self, AnyToolDef};
use super::tool::McpTool;
use super::{
    ANYTOOL, Endpoint, McpClient, McpError, McpServer, McpServers, NewMcpServer, Simulator, ToolDef,
};

pub(crate) mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "mcp_servers")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub user_id: String,
        pub name: String,
        pub protocol: String,
        pub url: String,
        pub api_key_sealed: Option<String>,
        pub description: String,
        pub disabled: bool,
        /// The tools as a JSON array of `{name, description, input_schema}` (an AnyTool
        /// server: its tool definitions).
        pub tools: String,
        /// An AnyTool server's model settings (a JSON object; `{}` otherwise).
        pub simulator: String,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

const MAX_NAME_CHARS: usize = 64;
const MAX_URL_CHARS: usize = 2048;
const MAX_DESCRIPTION_CHARS: usize = 2000;
const MAX_KEY_CHARS: usize = 4096;

/// A write refused by the unique (user, name) index is [`McpError::Exists`] (two adds or
/// renames racing for one name).
fn name_taken(e: sea_orm::DbErr) -> McpError {
    if matches!(
        e.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    ) {
        McpError::Exists
    } else {
        McpError::from(e)
    }
}

pub struct SeaOrmMcp {
    db: Db,
    client: McpClient,
    sealer: Sealer,
    clock: Arc<dyn Clock>,
    /// Plays AnyTool tools (set once, after construction: it needs the model providers).
    simulator: std::sync::OnceLock<Arc<dyn Simulator>>,
}

/// The protocol column of an AnyTool server.
const ANYTOOL_PROTOCOL: &str = "anytool";

fn check_name(name: &str) -> Result<String, McpError> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name
            .chars()
            .any(|c| c.is_control() || c == '/' || c == '\\')
    {
        return Err(McpError::invalid(
            "name",
            format!("must be 1 to {MAX_NAME_CHARS} characters, without `/`"),
        ));
    }
    Ok(name.to_owned())
}

/// A server's settings, checked and trimmed (empty key = none).
fn check(new: NewMcpServer) -> Result<NewMcpServer, McpError> {
    let name = check_name(&new.name)?;
    let url = new.url.trim().to_owned();
    if url.len() > MAX_URL_CHARS
        || !(url.starts_with("http://") || url.starts_with("https://"))
        || reqwest::Url::parse(&url).is_err()
    {
        return Err(McpError::invalid(
            if new.sse {
                "sse_url"
            } else {
                "streamable_http_url"
            },
            "must be an http(s) URL of the server's MCP endpoint",
        ));
    }
    if new.description.chars().count() > MAX_DESCRIPTION_CHARS || new.description.contains('\0') {
        return Err(McpError::invalid(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    let api_key = new
        .api_key
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty());
    if api_key
        .as_ref()
        .is_some_and(|k| k.len() > MAX_KEY_CHARS || k.contains(['\n', '\r', '\0']))
    {
        return Err(McpError::invalid("api_key", "must be one line"));
    }
    Ok(NewMcpServer {
        name,
        url,
        api_key,
        sse: new.sse,
        description: new.description,
        anytool: None,
    })
}

impl SeaOrmMcp {
    pub fn new(db: Db, client: McpClient, sealer: Sealer) -> Self {
        Self {
            db,
            client,
            sealer,
            clock: Arc::new(SystemClock),
            simulator: std::sync::OnceLock::new(),
        }
    }

    /// The model that plays AnyTool tools (the first one set stays).
    pub fn set_simulator(&self, simulator: Arc<dyn Simulator>) {
        let _ = self.simulator.set(simulator);
    }

    fn simulator(&self) -> Result<&Arc<dyn Simulator>, McpError> {
        self.simulator.get().ok_or(McpError::NoModel)
    }

    /// The caller's AnyTool server, created (empty) on first use.
    async fn anytool_row(&self, user_id: &str) -> Result<entity::Model, McpError> {
        let find = || {
            entity::Entity::find()
                .filter(entity::Column::UserId.eq(user_id))
                .filter(entity::Column::Name.eq(ANYTOOL))
                .one(&self.db)
        };
        if let Some(row) = find().await? {
            return Ok(row);
        }
        let now = self.clock.now();
        let row = entity::ActiveModel {
            id: Set(platform::ids::new_hex_id()),
            user_id: Set(user_id.to_owned()),
            name: Set(ANYTOOL.to_owned()),
            protocol: Set(ANYTOOL_PROTOCOL.to_owned()),
            url: Set(String::new()),
            api_key_sealed: Set(None),
            description: Set("Built-in AnyTool MCP server".to_owned()),
            disabled: Set(false),
            tools: Set("[]".to_owned()),
            simulator: Set("{}".to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
        };
        match row.insert(&self.db).await.map_err(name_taken) {
            Ok(row) => Ok(row),
            // Another request created it meanwhile.
            Err(McpError::Exists) => find().await?.ok_or(McpError::NotFound),
            Err(e) => Err(e),
        }
    }

    /// Stores an AnyTool server's definitions (and settings when given).
    async fn save_anytool(
        &self,
        row: entity::Model,
        definitions: &[AnyToolDef],
        simulator: Option<serde_json::Value>,
        description: Option<String>,
    ) -> Result<entity::Model, McpError> {
        if row.protocol != ANYTOOL_PROTOCOL {
            return Err(McpError::invalid(
                "kind",
                format!("`{}` is not an AnyTool server", row.name),
            ));
        }
        let mut active: entity::ActiveModel = row.into();
        active.tools =
            Set(serde_json::to_string(definitions).map_err(|e| McpError::Internal(e.into()))?);
        if let Some(simulator) = simulator {
            active.simulator = Set(simulator.to_string());
        }
        if let Some(description) = description {
            active.description = Set(description);
        }
        active.updated_at = Set(self.clock.now());
        Ok(active.update(&self.db).await?)
    }

    fn definitions(row: &entity::Model) -> Vec<AnyToolDef> {
        if row.protocol == ANYTOOL_PROTOCOL {
            serde_json::from_str(&row.tools).unwrap_or_default()
        } else {
            Vec::new()
        }
    }

    fn endpoint(&self, row: &entity::Model) -> Endpoint {
        Endpoint {
            sse: row.protocol == "sse",
            url: row.url.clone(),
            api_key: row
                .api_key_sealed
                .as_deref()
                .and_then(|s| self.sealer.open(s).ok()),
        }
    }

    fn view(&self, row: entity::Model) -> McpServer {
        let key = self.endpoint(&row).api_key.unwrap_or_default();
        let anytool = row.protocol == ANYTOOL_PROTOCOL;
        let definitions = Self::definitions(&row);
        let tools = if anytool {
            definitions
                .iter()
                .map(|d| ToolDef {
                    name: d.name.clone(),
                    description: d.description.clone(),
                    input_schema: d.parameters.clone(),
                })
                .collect()
        } else {
            serde_json::from_str(&row.tools).unwrap_or_default()
        };
        McpServer {
            kind: if anytool { "anytool" } else { "external" },
            simulator: serde_json::from_str(&row.simulator)
                .unwrap_or_else(|_| serde_json::json!({})),
            definitions,
            api_key_masked: if key.is_empty() {
                String::new()
            } else {
                mask(&key)
            },
            tools,
            name: row.name,
            user_id: row.user_id,
            protocol: row.protocol,
            url: row.url,
            description: row.description,
            disabled: row.disabled,
            created_at: row.created_at,
        }
    }

    /// The caller's server of that name.
    async fn own(&self, actor: &Actor, name: &str) -> Result<entity::Model, McpError> {
        let name = check_name(name).map_err(|_| McpError::NotFound)?;
        entity::Entity::find()
            .filter(entity::Column::UserId.eq(&actor.user_id))
            .filter(entity::Column::Name.eq(name))
            .one(&self.db)
            .await?
            .ok_or(McpError::NotFound)
    }

    /// Re-encrypts every stored server key still sealed under a previous secret key
    /// (`sage-server admin reseal`); a row changed meanwhile is left alone.
    pub async fn reseal(&self) -> Result<ResealReport, McpError> {
        let rows: Vec<(String, Option<String>)> = entity::Entity::find()
            .select_only()
            .column(entity::Column::Id)
            .column(entity::Column::ApiKeySealed)
            .into_tuple()
            .all(&self.db)
            .await?;
        let rows = rows
            .into_iter()
            .filter_map(|(id, sealed)| Some((id, sealed?)))
            .collect();
        reseal_rows(
            &self.sealer,
            "MCP server",
            rows,
            |id, old, new| async move {
                let updated = entity::Entity::update_many()
                    .col_expr(entity::Column::ApiKeySealed, Expr::value(new))
                    .filter(entity::Column::Id.eq(id))
                    .filter(entity::Column::ApiKeySealed.eq(old))
                    .exec(&self.db)
                    .await?;
                Ok(updated.rows_affected)
            },
        )
        .await
    }
}

#[async_trait::async_trait]
impl McpServers for SeaOrmMcp {
    async fn add(&self, actor: &Actor, new: NewMcpServer) -> Result<McpServer, McpError> {
        if let Some(anytool) = new.anytool {
            // Adding AnyTool sets up (or replaces) the caller's one AnyTool server.
            let definitions = anytool::normalize_all(&anytool.tools)?;
            let simulator = anytool::normalize_simulator(anytool.simulator.as_ref())?;
            let row = self.anytool_row(&actor.user_id).await?;
            let description = Some(new.description).filter(|d| !d.trim().is_empty());
            let row = self
                .save_anytool(row, &definitions, Some(simulator), description)
                .await?;
            return Ok(self.view(row));
        }
        let new = check(new)?;
        if new.name == ANYTOOL {
            return Err(McpError::Exists);
        }
        if self.own(actor, &new.name).await.is_ok() {
            return Err(McpError::Exists);
        }
        let endpoint = Endpoint {
            url: new.url.clone(),
            api_key: new.api_key.clone(),
            sse: new.sse,
        };
        let tools = self.client.list_tools(&endpoint).await?;
        let now = self.clock.now();
        let row = entity::ActiveModel {
            id: Set(platform::ids::new_hex_id()),
            user_id: Set(actor.user_id.clone()),
            name: Set(new.name),
            protocol: Set(if new.sse { "sse" } else { "streamable_http" }.into()),
            url: Set(new.url),
            api_key_sealed: Set(new.api_key.map(|k| self.sealer.seal(&k))),
            description: Set(new.description),
            disabled: Set(false),
            tools: Set(serde_json::to_string(&tools).map_err(|e| McpError::Internal(e.into()))?),
            simulator: Set("{}".to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
        };
        let row = row.insert(&self.db).await.map_err(name_taken)?;
        Ok(self.view(row))
    }

    async fn list(&self, actor: &Actor) -> Result<Vec<McpServer>, McpError> {
        // Every user has an AnyTool server, as in Sage.
        self.anytool_row(&actor.user_id).await?;
        let mut query = entity::Entity::find();
        if !actor.is_admin {
            query = query.filter(entity::Column::UserId.eq(&actor.user_id));
        }
        let rows = query
            .order_by_asc(entity::Column::Name)
            .order_by_asc(entity::Column::UserId)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(|r| self.view(r)).collect())
    }

    async fn delete(&self, actor: &Actor, name: &str) -> Result<(), McpError> {
        let row = self.own(actor, name).await?;
        if row.protocol == ANYTOOL_PROTOCOL {
            return Err(McpError::AnyToolFixed);
        }
        entity::Entity::delete_by_id(row.id).exec(&self.db).await?;
        Ok(())
    }

    async fn update(
        &self,
        actor: &Actor,
        name: &str,
        new: NewMcpServer,
    ) -> Result<McpServer, McpError> {
        let row = self.own(actor, name).await?;
        if row.protocol == ANYTOOL_PROTOCOL {
            let Some(anytool) = new.anytool else {
                return Err(McpError::invalid("kind", "AnyTool stays an AnyTool server"));
            };
            if !new.name.trim().is_empty() && new.name.trim() != ANYTOOL {
                return Err(McpError::AnyToolFixed);
            }
            let definitions = anytool::normalize_all(&anytool.tools)?;
            let simulator = anytool::normalize_simulator(anytool.simulator.as_ref())?;
            let description = Some(new.description).filter(|d| !d.trim().is_empty());
            let row = self
                .save_anytool(row, &definitions, Some(simulator), description)
                .await?;
            return Ok(self.view(row));
        }
        if new.anytool.is_some() {
            return Err(McpError::invalid(
                "kind",
                "a remote server cannot become an AnyTool server",
            ));
        }
        let new = check(new)?;
        if new.name != row.name && (new.name == ANYTOOL || self.own(actor, &new.name).await.is_ok())
        {
            return Err(McpError::Exists);
        }
        // An empty key keeps the stored one (the list shows it masked).
        let api_key = new.api_key.clone().or_else(|| self.endpoint(&row).api_key);
        let endpoint = Endpoint {
            url: new.url.clone(),
            api_key: api_key.clone(),
            sse: new.sse,
        };
        let tools = self.client.list_tools(&endpoint).await?;
        let mut active: entity::ActiveModel = row.into();
        active.name = Set(new.name);
        active.url = Set(new.url);
        active.protocol = Set(if new.sse { "sse" } else { "streamable_http" }.into());
        active.api_key_sealed = Set(api_key.map(|k| self.sealer.seal(&k)));
        active.description = Set(new.description);
        active.tools =
            Set(serde_json::to_string(&tools).map_err(|e| McpError::Internal(e.into()))?);
        active.updated_at = Set(self.clock.now());
        let row = active.update(&self.db).await.map_err(name_taken)?;
        Ok(self.view(row))
    }

    async fn preview(
        &self,
        actor: &Actor,
        name: &str,
        tool: &str,
        arguments: serde_json::Value,
    ) -> Result<serde_json::Value, McpError> {
        let row = self.own(actor, name).await?;
        if row.protocol == ANYTOOL_PROTOCOL {
            let def = Self::definitions(&row)
                .into_iter()
                .find(|d| d.name == tool)
                .ok_or(McpError::ToolNotFound)?;
            let settings = serde_json::from_str(&row.simulator).unwrap_or_default();
            return anytool::simulate(
                self.simulator()?.as_ref(),
                &actor.user_id,
                &row.name,
                &def,
                arguments,
                &settings,
            )
            .await;
        }
        let tools: Vec<ToolDef> = serde_json::from_str(&row.tools).unwrap_or_default();
        if !tools.iter().any(|t| t.name == tool) {
            return Err(McpError::invalid(
                "tool_name",
                format!("`{tool}` is not a tool of this server"),
            ));
        }
        if !arguments.is_object() {
            return Err(McpError::invalid("arguments", "must be a JSON object"));
        }
        self.client
            .call_tool(&self.endpoint(&row), tool, arguments)
            .await
    }

    async fn refresh(&self, actor: &Actor, name: &str) -> Result<bool, McpError> {
        let row = self.own(actor, name).await?;
        if row.protocol == ANYTOOL_PROTOCOL {
            // Its tools are its definitions: nothing to ask.
            return Ok(true);
        }
        let tools = match self.client.list_tools(&self.endpoint(&row)).await {
            Ok(tools) => tools,
            Err(McpError::Server(reason)) => {
                tracing::warn!(server = %row.name, %reason, "MCP refresh failed");
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        let text = serde_json::to_string(&tools).map_err(|e| McpError::Internal(e.into()))?;
        entity::Entity::update_many()
            .col_expr(entity::Column::Tools, Expr::value(text))
            .col_expr(entity::Column::UpdatedAt, Expr::value(self.clock.now()))
            .filter(entity::Column::Id.eq(row.id))
            .exec(&self.db)
            .await?;
        Ok(true)
    }

    async fn toggle(
        &self,
        actor: &Actor,
        name: &str,
        disabled: Option<bool>,
    ) -> Result<bool, McpError> {
        let row = self.own(actor, name).await?;
        let disabled = disabled.unwrap_or(!row.disabled);
        entity::Entity::update_many()
            .col_expr(entity::Column::Disabled, Expr::value(disabled))
            .col_expr(entity::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(entity::Column::Id.eq(row.id))
            .exec(&self.db)
            .await?;
        Ok(disabled)
    }

    async fn connect(
        &self,
        name: &str,
        endpoint: Endpoint,
    ) -> Result<Vec<Arc<dyn crate::Tool>>, McpError> {
        let defs = self.client.list_tools(&endpoint).await?;
        Ok(defs
            .into_iter()
            .map(|def| {
                Arc::new(McpTool {
                    client: self.client.clone(),
                    endpoint: endpoint.clone(),
                    server: name.to_owned(),
                    def,
                }) as Arc<dyn crate::Tool>
            })
            .collect())
    }

    async fn tools_for(&self, user_id: &str) -> Result<Vec<Arc<dyn crate::Tool>>, McpError> {
        let rows = entity::Entity::find()
            .filter(entity::Column::UserId.eq(user_id))
            .filter(entity::Column::Disabled.eq(false))
            .order_by_asc(entity::Column::Name)
            .all(&self.db)
            .await?;
        let mut out: Vec<Arc<dyn crate::Tool>> = Vec::new();
        for row in rows {
            if row.protocol == ANYTOOL_PROTOCOL {
                let Some(simulator) = self.simulator.get() else {
                    continue;
                };
                let settings: serde_json::Value =
                    serde_json::from_str(&row.simulator).unwrap_or_default();
                for def in Self::definitions(&row) {
                    out.push(Arc::new(anytool::AnyTool {
                        simulator: simulator.clone(),
                        user_id: row.user_id.clone(),
                        server: row.name.clone(),
                        def,
                        settings: settings.clone(),
                    }));
                }
                continue;
            }
            let endpoint = self.endpoint(&row);
            let defs: Vec<ToolDef> = serde_json::from_str(&row.tools).unwrap_or_default();
            for def in defs {
                out.push(Arc::new(McpTool {
                    client: self.client.clone(),
                    endpoint: endpoint.clone(),
                    server: row.name.clone(),
                    def,
                }));
            }
        }
        Ok(out)
    }

    async fn anytool_upsert(
        &self,
        actor: &Actor,
        definition: serde_json::Value,
        original: Option<&str>,
    ) -> Result<String, McpError> {
        let next = anytool::normalize(&definition)?;
        let row = self.anytool_row(&actor.user_id).await?;
        let original = original.map(str::trim).filter(|o| !o.is_empty());
        let mut definitions = Self::definitions(&row);
        match original {
            Some(original) => {
                let at = definitions
                    .iter()
                    .position(|d| d.name == original)
                    .ok_or(McpError::ToolNotFound)?;
                if next.name != original && definitions.iter().any(|d| d.name == next.name) {
                    return Err(McpError::invalid(
                        "tool_definition.name",
                        format!("`{}` exists", next.name),
                    ));
                }
                definitions[at] = next.clone();
            }
            None => {
                if definitions.iter().any(|d| d.name == next.name) {
                    return Err(McpError::invalid(
                        "tool_definition.name",
                        format!("`{}` exists", next.name),
                    ));
                }
                if definitions.len() >= anytool::MAX_TOOLS {
                    return Err(McpError::invalid(
                        "tools",
                        format!("at most {} tools", anytool::MAX_TOOLS),
                    ));
                }
                definitions.push(next.clone());
            }
        }
        self.save_anytool(row, &definitions, None, None).await?;
        Ok(next.name)
    }

    async fn anytool_delete(&self, actor: &Actor, tool: &str) -> Result<(), McpError> {
        let row = self.anytool_row(&actor.user_id).await?;
        let mut definitions = Self::definitions(&row);
        let before = definitions.len();
        definitions.retain(|d| d.name != tool.trim());
        if definitions.len() == before {
            return Err(McpError::ToolNotFound);
        }
        self.save_anytool(row, &definitions, None, None).await?;
        Ok(())
    }

    async fn anytool_preview_draft(
        &self,
        actor: &Actor,
        definition: serde_json::Value,
        arguments: serde_json::Value,
        simulator: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, McpError> {
        let def = anytool::normalize(&definition)?;
        let settings = anytool::normalize_simulator(simulator.as_ref())?;
        anytool::simulate(
            self.simulator()?.as_ref(),
            &actor.user_id,
            "draft",
            &def,
            arguments,
            &settings,
        )
        .await
    }
}

/// A deleted user's servers go with them.
#[async_trait::async_trait]
impl platform::UserCleanup for SeaOrmMcp {
    async fn user_deleted(&self, user_id: &str) -> Result<(), platform::actor::CleanupError> {
        entity::Entity::delete_many()
            .filter(entity::Column::UserId.eq(user_id))
            .exec(&self.db)
            .await?;
        Ok(())
    }
}
