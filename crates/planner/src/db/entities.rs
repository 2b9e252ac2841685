//! Table models (crate-private).

pub(crate) mod recurring {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "planner_recurring_tasks")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub user_id: String,
        pub name: String,
        pub description: Option<String>,
        pub session_id: String,
        pub agent_id: String,
        pub cron_expression: String,
        pub timezone: String,
        pub enabled: bool,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        pub last_executed_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod tasks {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "planner_tasks")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub user_id: String,
        pub name: String,
        pub description: Option<String>,
        pub agent_id: String,
        pub session_id: String,
        pub execute_at: DateTimeUtc,
        pub timezone: String,
        pub status: String,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        pub completed_at: Option<DateTimeUtc>,
        pub retry_count: i32,
        pub max_retries: i32,
        pub recurring_task_id: Option<i64>,
        pub locked_until: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod history {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "planner_task_history")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub task_id: i64,
        pub executed_at: DateTimeUtc,
        pub status: String,
        pub response: Option<String>,
        pub error_message: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
