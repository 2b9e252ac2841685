//! The table of route families. Each family file opens with `configure`, then its handlers,
//! then its DTOs. Literal segments are registered before `{param}` segments.

use actix_web::web;

pub(crate) mod agents;
pub(crate) mod auth;
pub(crate) mod chat;
pub(crate) mod conversations;
pub(crate) mod knowledge_base;
pub(crate) mod llm_providers;
pub(crate) mod mcp;
pub(crate) mod oauth2;
pub(crate) mod observability;
pub(crate) mod oss;
pub(crate) mod skills;
pub(crate) mod system;
pub(crate) mod tasks;
pub(crate) mod tools;
pub(crate) mod upstream;
pub(crate) mod users;
pub(crate) mod versions;
pub(crate) mod workspaces;

/// Every route of the application.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/active").route(web::get().to(system::active)))
        .service(web::resource("/openapi.json").route(web::get().to(system::openapi_document)))
        .service(
            web::scope("/api")
                .configure(system::configure)
                .configure(versions::configure)
                .configure(oss::configure)
                .configure(auth::configure)
                .configure(users::configure)
                .configure(llm_providers::configure)
                .configure(agents::configure)
                .configure(chat::configure)
                .configure(conversations::configure)
                .configure(tools::configure)
                .configure(skills::configure)
                .configure(mcp::configure)
                .configure(knowledge_base::configure)
                .configure(observability::configure)
                .configure(oauth2::configure_api),
        )
        .configure(oauth2::configure_root)
        .configure(tasks::configure);
}
