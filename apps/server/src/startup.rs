//! Building and running the application: connections, migrations, stores, state, middleware
//! and routes, bound to a listener before anything is served.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use actix_cors::Cors;
use actix_web::dev::Server;
use actix_web::middleware::{Condition, from_fn};
use actix_web::{App, HttpServer, web};
use migration::{Migrator, MigratorTrait};
use platform::store::Stores;
use platform::{Config, StartError};

use crate::auth;
use crate::extract::{self, BodyLimits};
use crate::middleware;
use crate::routes;
use crate::state::AppState;

/// The connected services shared by the HTTP server and the operator CLI.
pub struct Services {
    pub db: platform::db::Db,
    pub stores: Stores,
    pub identity: Arc<identity::SeaOrmIdentity>,
    pub providers: Arc<providers::SeaOrmProviders>,
    pub agents: Arc<agents::SeaOrmAgents>,
    pub jobs: Arc<agents::SeaOrmJobs>,
    pub workspaces: agents::WorkspaceService,
    /// The per-user bucket of model calls.
    pub budget: platform::spend::ModelBudget,
    /// Deletes users and then their data in every service (and sweeps what is left).
    pub user_cleanup: Arc<crate::user_cleanup::UserCleanups>,
    pub chat: Arc<chat_runtime::Runtime>,
    pub conversations: Arc<dyn conversations::Conversations>,
    pub planner: Arc<planner::SeaOrmPlanner>,
    pub releases: Arc<releases::SeaOrmReleases>,
    pub blobs: platform::blobs::Blobs,
    pub skills: Arc<tooling::skills::FsSkills>,
    pub mcp: Arc<tooling::mcp::SeaOrmMcp>,
    pub knowledge: Arc<knowledge::SeaOrmKnowledge>,
    pub oauth: Arc<oauth_as::SeaOrmAuthorizationServer>,
    /// The OAuth2 clients of `SAGE_OAUTH2_CLIENTS`, registered at start.
    pub oauth_clients: Vec<oauth_as::ClientConfig>,
    pub session_max_age_secs: i64,
    /// What `/api/ready` checks.
    pub readiness: platform::readiness::Readiness,
}

/// The agent-job worker, the planner's worker (due tasks run through the chat runtime) and
/// knowledge ingestion, until `stopped` turns true.
fn spawn_workers(
    user_cleanup: &Arc<crate::user_cleanup::UserCleanups>,
    jobs: &Arc<agents::SeaOrmJobs>,
    knowledge: &Arc<knowledge::SeaOrmKnowledge>,
    planner: &Arc<planner::SeaOrmPlanner>,
    chat: &Arc<chat_runtime::Runtime>,
    config: &Config,
    stopped: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let tasks = Arc::new(planner::Worker::new(
        planner.clone(),
        Arc::new(crate::planner_glue::ChatTaskRunner {
            chat: chat.clone(),
            time_limit: config.task_time_limit,
        }),
        planner::WorkerSettings {
            poll: config.task_poll,
            ..planner::WorkerSettings::default()
        },
    ));
    let agent_jobs = tokio::spawn(jobs.clone().work(stopped.clone()));
    // Documents are claimed one at a time by each loop, so `SAGE_JOB_CONCURRENCY` loops
    // process that many side by side.
    let ingestion: Vec<_> = (0..config.job_concurrency.max(1))
        .map(|_| tokio::spawn(knowledge.clone().work(stopped.clone())))
        .collect();
    let sweep = tokio::spawn(
        user_cleanup
            .clone()
            .sweep_until(crate::user_cleanup::SWEEP_EVERY, stopped.clone()),
    );
    let tasks = tokio::spawn(tasks.work(stopped));
    tokio::spawn(async move {
        let _ = sweep.await;
        let _ = agent_jobs.await;
        for loop_ in ingestion {
            let _ = loop_.await;
        }
        let _ = tasks.await;
    })
}

impl Services {
    /// The background workers (agent jobs and planner tasks) until `stopped` turns true;
    /// `sage-server serve` runs them beside HTTP, `sage-server worker` alone.
    pub fn run_workers(
        &self,
        config: &Config,
        stopped: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        spawn_workers(
            &self.user_cleanup,
            &self.jobs,
            &self.knowledge,
            &self.planner,
            &self.chat,
            config,
            stopped,
        )
    }

    /// Reaches every external system before anything changes (so a bad setting or an
    /// unreachable service fails cleanly), then migrates when asked.
    pub async fn connect(config: &Config, migrate: bool) -> Result<Self, StartError> {
        let db = platform::db::connect(config).await?;
        let stores = match &config.redis_url {
            Some(url) => {
                Stores::redis(&platform::redis_conn::connect(url, &config.redis_prefix).await?)
            }
            None => Stores::in_memory(),
        };
        let secret = platform::secret::load_keys(
            &config.data_dir,
            config.secret_key.as_deref(),
            &config.secret_key_previous,
        )?;
        let policy = Arc::new(
            platform::outbound::OutboundPolicy::from_allow_list(&config.outbound_allow).map_err(
                |e| StartError::new(format!("invalid configuration: SAGE_OUTBOUND_ALLOW: {e}")),
            )?,
        );
        // Uploads and knowledge-base files: in the S3 bucket when configured (below `oss/`
        // and `knowledge/`), else in their own directories of the data dir.
        let (objects, blobs) = match &config.s3 {
            Some(s3) => {
                let bucket: Arc<dyn platform::objects::ObjectStore> = Arc::new(
                    platform::objects::S3Objects::new(s3)
                        .map_err(|e| StartError::new(format!("invalid configuration: {e}")))?,
                );
                let blobs = platform::blobs::Blobs::new(bucket.clone(), "oss/", &secret.current);
                (bucket, blobs)
            }
            None => (
                Arc::new(platform::objects::LocalObjects::new(
                    config.data_dir.join("objects"),
                )) as Arc<dyn platform::objects::ObjectStore>,
                platform::blobs::Blobs::new(
                    Arc::new(platform::objects::LocalObjects::new(
                        config.data_dir.join("oss"),
                    )),
                    "",
                    &secret.current,
                ),
            ),
        };
        let releases = Arc::new(releases::SeaOrmReleases::new(
            db.clone(),
            releases::Feed::new(config.releases_url.clone(), policy.clone()).map_err(|e| {
                StartError::new(format!("cannot build the release feed client: {e}"))
            })?,
        ));
        let llm = providers::LlmClient::new(policy.clone(), providers::ClientSettings::default())
            .map_err(|e| StartError::new(format!("cannot build the LLM client: {e}")))?;
        let providers = Arc::new(providers::SeaOrmProviders::new(
            db.clone(),
            platform::secret::Sealer::with_keys(&secret),
            llm.clone(),
            config.default_llm.clone(),
        ));
        let agents = Arc::new(
            agents::SeaOrmAgents::new(db.clone(), providers.clone(), llm.clone())
                .with_max_prompt_chars(config.max_prompt_chars)
                .with_quota(config.max_agents_per_user),
        );
        let conversations: Arc<dyn conversations::Conversations> =
            Arc::new(conversations::SeaOrmConversations::new(db.clone()));
        let workspace_dirs = agents::Workspaces::new(config.data_dir.join("workspaces"));
        let skills = Arc::new(
            tooling::skills::FsSkills::new(
                &config.data_dir,
                Arc::new(crate::skills_glue::AgentsForSkills {
                    agents: agents.clone(),
                    workspaces: workspace_dirs.clone(),
                }),
                policy.clone(),
            )
            .map_err(|e| StartError::new(format!("cannot build the skill downloader: {e}")))?
            .with_quota(usize::try_from(config.max_skills_per_user).unwrap_or(usize::MAX)),
        );
        agents.on_saved(Arc::new(crate::skills_glue::SkillsFollowAgents {
            skills: skills.clone(),
        }));
        let mcp = Arc::new(tooling::mcp::SeaOrmMcp::new(
            db.clone(),
            tooling::mcp::McpClient::new(policy.clone(), std::time::Duration::from_secs(60))
                .map_err(|e| StartError::new(format!("cannot build the MCP client: {e}")))?,
            platform::secret::Sealer::with_keys(&secret),
        ));
        let mut knowledge = knowledge::SeaOrmKnowledge::new(
            db.clone(),
            objects,
            &config.data_dir.join("knowledge").join("index"),
            knowledge::IngestSettings {
                poll: config.task_poll,
                max_per_user: config.max_knowledge_bases_per_user,
                max_docs_per_user: config.max_knowledge_docs_per_user,
                shutdown_grace: config.shutdown_timeout,
                ..knowledge::IngestSettings::default()
            },
        );
        if let Some(e) = &config.embedding {
            knowledge = knowledge.with_embedder(knowledge::Embedder::new(
                llm.clone(),
                providers::Endpoint {
                    base_url: e.base_url.clone(),
                    api_key: e.api_key.clone().unwrap_or_default(),
                    model: e.model.clone(),
                    supports_multimodal: false,
                },
            ));
        }
        let knowledge = Arc::new(knowledge);
        mcp.set_simulator(Arc::new(crate::anytool_glue::ModelSimulator {
            providers: providers.clone(),
            llm: llm.clone(),
        }));
        let zone = planner::parse_zone(&config.timezone)
            .map_err(|e| StartError::new(format!("invalid configuration: SAGE_TIMEZONE: {e}")))?;
        let planner = Arc::new(
            planner::SeaOrmPlanner::new(
                db.clone(),
                Arc::new(crate::planner_glue::VisibleAgents(agents.clone())),
            )
            .with_zone(zone)
            .with_lease(config.task_time_limit + std::time::Duration::from_secs(60))
            .with_quota(config.max_tasks_per_user),
        );
        // The shell tool exists only when enabled, and only where its sandbox can start.
        let shell: Vec<Arc<dyn tooling::Tool>> = if config.enable_shell_tool {
            let sandbox = tooling::shell::Shell::detect()
                .await
                .map_err(|e| StartError::new(format!("SAGE_ENABLE_SHELL_TOOL is set, but {e}")))?;
            vec![Arc::new(sandbox)]
        } else {
            Vec::new()
        };
        let chat = Arc::new(chat_runtime::Runtime::new(
            agents.clone(),
            providers.clone(),
            conversations.clone(),
            llm,
            tooling::Registry::builtin(tooling::Limits::default())
                .with(crate::task_tools::all(planner.clone()))
                .with(vec![chat_runtime::fetch_webpages(policy.clone()).map_err(
                    |e| StartError::new(format!("cannot build the web client: {e}")),
                )?])
                .with(shell),
            stores.kv.clone(),
            stores.logs.clone(),
            workspace_dirs.clone(),
            skills.clone(),
            mcp.clone(),
            knowledge.clone(),
            chat_runtime::RuntimeSettings {
                log_ttl: config.stream_log_ttl,
                disconnect_grace: config.stream_disconnect_grace,
                max_input_chars: config.max_prompt_chars,
                ..chat_runtime::RuntimeSettings::default()
            },
        ));
        let workspaces = agents::WorkspaceService::new(agents.clone(), workspace_dirs);
        let jobs = Arc::new(agents::SeaOrmJobs::new(
            db.clone(),
            agents.clone(),
            agents::JobSettings {
                lease: config.job_lease,
                retention: config.job_retention,
                concurrency: config.job_concurrency,
                max_unfinished_per_user: config.max_pending_jobs_per_user,
                max_input_chars: config.max_prompt_chars,
                shutdown_grace: config.shutdown_timeout,
                ..agents::JobSettings::default()
            },
        ));
        let mailer: Arc<dyn identity::Mailer> = match &config.smtp_url {
            Some(url) => {
                let from = config
                    .mail_from
                    .as_deref()
                    .unwrap_or("Sage <no-reply@localhost>");
                Arc::new(identity::SmtpMailer::new(url, from).map_err(StartError::new)?)
            }
            None => Arc::new(identity::LogMailer),
        };
        if migrate {
            run_migrations(&db).await?;
        }
        let identity_settings = identity::IdentitySettings {
            upstream_flow_ttl: config.upstream_flow_ttl,
            upstream_starts_per_ip_per_minute: config.upstream_starts_per_ip,
            sessions_in_kv: config.redis_url.is_some(),
            login_attempts_per_ip_per_minute: config.login_limit_per_ip,
            session_idle: config.session_idle,
            session_absolute: config.session_lifetime,
            access_token_ttl: config.access_token_ttl,
            ..identity::IdentitySettings::default()
        };
        let session_max_age_secs =
            i64::try_from(identity_settings.session_absolute.as_secs()).unwrap_or(i64::MAX);
        let identity = Arc::new(
            identity::SeaOrmIdentity::new(
                db.clone(),
                stores.kv.clone(),
                config,
                mailer,
                identity_settings,
            )
            .map_err(|e| StartError::new(format!("cannot start identity: {e}")))?,
        );
        let budget = platform::spend::ModelBudget::new(
            stores.kv.clone(),
            platform::spend::SpendLimits::from_config(config),
        );
        let oauth_clients = oauth_as::parse_clients(&config.oauth2_clients).map_err(|e| {
            StartError::new(format!("invalid configuration: SAGE_OAUTH2_CLIENTS: {e}"))
        })?;
        let oauth = Arc::new(oauth_as::SeaOrmAuthorizationServer::new(
            db.clone(),
            stores.kv.clone(),
            platform::secret::Sealer::with_keys(&secret),
            Arc::new(crate::oauth_glue::IdentityAccounts(identity.clone())),
            oauth_as::Settings {
                access_token_ttl: config.access_token_ttl,
                refresh_token_ttl: config.session_lifetime,
                ..oauth_as::Settings::default()
            },
        ));
        let user_cleanup = Arc::new(crate::user_cleanup::UserCleanups::new(
            identity.clone(),
            vec![
                oauth.clone(),
                chat.clone(),
                jobs.clone(),
                planner.clone(),
                agents.clone(),
                providers.clone(),
                Arc::new(workspaces.clone()),
                Arc::new(blobs.clone()),
                skills.clone(),
                mcp.clone(),
                knowledge.clone(),
            ],
        ));
        let readiness = platform::readiness::Readiness::new(
            db.clone(),
            config.redis_url.as_ref().map(|_| stores.kv.clone()),
            config.db_acquire_timeout,
        );
        Ok(Self {
            readiness,
            db,
            stores,
            identity,
            providers,
            agents,
            jobs,
            workspaces,
            budget,
            user_cleanup,
            chat,
            conversations,
            planner,
            releases,
            blobs,
            skills,
            mcp,
            knowledge,
            oauth,
            oauth_clients,
            session_max_age_secs,
        })
    }
}

/// A built server, bound and ready to run.
pub struct Application {
    port: u16,
    server: Server,
    stop_workers: tokio::sync::watch::Sender<bool>,
    worker: tokio::task::JoinHandle<()>,
}

impl Application {
    /// Connects to the database (running migrations when configured) and Redis when
    /// configured, loads or creates the secret, and binds the listener. Every failure is a
    /// one-line [`StartError`].
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let started_at = Instant::now();
        config
            .validate()
            .map_err(|e| StartError::new(e.to_string()))?;
        let Services {
            identity,
            providers,
            agents,
            jobs,
            workspaces,
            budget,
            user_cleanup,
            chat,
            conversations,
            planner,
            releases,
            blobs,
            skills,
            mcp,
            knowledge,
            oauth,
            oauth_clients,
            session_max_age_secs,
            readiness,
            ..
        } = Services::connect(&config, config.migrate_on_start).await?;
        bootstrap_admin(identity.as_ref()).await?;
        {
            use oauth_as::AuthorizationServer;
            oauth
                .sync_clients(&oauth_clients)
                .await
                .map_err(|e| StartError::new(format!("cannot register the OAuth2 clients: {e}")))?;
        }

        if config.plain_http_cookies_off_loopback() {
            tracing::warn!(
                host = %config.host,
                "serving session cookies without Secure on a non-loopback address: they cross \
                 the network in clear text unless TLS ends in front of this server; set \
                 SAGE_PUBLIC_URL to the https address (or SAGE_COOKIE_SECURE=true)"
            );
        }
        let listener = TcpListener::bind((config.host.as_str(), config.port)).map_err(|e| {
            StartError::new(format!(
                "cannot listen on {}:{}: {e}",
                config.host, config.port
            ))
        })?;
        let port = listener
            .local_addr()
            .map_err(|e| StartError::new(format!("cannot read the bound address: {e}")))?
            .port();

        let workers = if config.workers == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            config.workers
        };
        let shutdown_timeout = config.shutdown_timeout.as_secs();
        let limits = web::Data::new(BodyLimits {
            json: config.max_json_bytes,
            read_timeout: config.body_read_timeout,
        });
        // Uploads are received into files here; leftovers of a crash are removed.
        let upload_dir = extract::prepare_upload_dir(&config.data_dir)
            .map_err(|e| StartError::new(format!("cannot prepare the upload directory: {e}")))?;
        let cors_origins = config.cors_origins.clone();
        let http2_cleartext = config.http2_cleartext;
        // The in-process workers stop claiming at SIGINT/SIGTERM (while HTTP drains), and are
        // waited for, with their own grace period, before the process ends.
        let (stop_workers, workers_stopped) = tokio::sync::watch::channel(false);
        let worker = spawn_workers(
            &user_cleanup,
            &jobs,
            &knowledge,
            &planner,
            &chat,
            &config,
            workers_stopped,
        );
        let state = web::Data::new(AppState {
            config: Arc::new(config),
            started_at,
            identity,
            providers,
            agents,
            jobs,
            workspaces,
            budget,
            user_cleanup,
            tools: chat.clone(),
            chat,
            conversations,
            planner,
            oauth,
            releases,
            blobs,
            skills,
            mcp,
            knowledge,
            session_max_age_secs,
            readiness,
        });
        let on_signal = stop_workers.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = on_signal.send(true);
        });

        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(limits.clone())
                .app_data(upload_dir.clone())
                .app_data(
                    web::JsonConfig::default()
                        .limit(limits.json)
                        .error_handler(extract::json_error),
                )
                .app_data(web::QueryConfig::default().error_handler(extract::query_error))
                .app_data(web::PathConfig::default().error_handler(extract::path_error))
                .app_data(web::PayloadConfig::default().limit(limits.json))
                .configure(routes::configure)
                .wrap(from_fn(auth::authenticate))
                .wrap(Condition::new(
                    !cors_origins.is_empty(),
                    cors(&cors_origins),
                ))
                .wrap(from_fn(middleware::request_context))
        })
        .workers(workers)
        // Stream lines are small writes: without TCP_NODELAY, Nagle's algorithm holds each one
        // back until the client's delayed ACK (tens of milliseconds per relayed chunk).
        .tcp_nodelay(true)
        .shutdown_timeout(shutdown_timeout);
        // HTTP/1.1; with `SAGE_HTTP2_CLEARTEXT` also cleartext HTTP/2 with prior knowledge
        // (a proxy in front may then carry many streams over one connection to a replica).
        let server = if http2_cleartext {
            server.listen_auto_h2c(listener)
        } else {
            server.listen(listener)
        }
        .map_err(|e| StartError::new(format!("cannot start the HTTP server: {e}")))?
        .run();

        Ok(Self {
            port,
            server,
            stop_workers,
            worker,
        })
    }

    /// The bound port (useful with `SAGE_PORT=0`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT or SIGTERM, then lets in-flight requests and running jobs finish
    /// (each up to `SAGE_SHUTDOWN_TIMEOUT_SECS`); jobs still running are handed back.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        let _ = self.stop_workers.send(true);
        let _ = self.worker.await;
        result
    }
}

/// Resolves at SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Applies pending migrations; `sage-server migrate` calls this alone.
pub async fn run_migrations(db: &platform::db::Db) -> Result<(), StartError> {
    Migrator::up(db.primary(), None)
        .await
        .map_err(|e| StartError::new(format!("database migration failed: {e}")))
}

/// Creates the first admin when no user exists; a generated password is logged once.
async fn bootstrap_admin(identity: &dyn identity::Identity) -> Result<(), StartError> {
    match identity.ensure_first_admin().await {
        Ok(Some(admin)) => {
            match admin.generated_password {
                Some(password) => tracing::warn!(
                    username = %admin.username,
                    "created the first admin with a generated password (shown once): {password}"
                ),
                None => tracing::info!(username = %admin.username, "created the first admin"),
            }
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(e) => Err(StartError::new(format!(
            "cannot create the first admin: {e}"
        ))),
    }
}

/// CORS from `SAGE_CORS_ORIGINS`: `*` allows any origin without credentials; a list allows
/// those origins with credentials.
fn cors(origins: &[String]) -> Cors {
    let base = Cors::default()
        .allow_any_method()
        .allow_any_header()
        .expose_headers(["x-request-id"])
        .max_age(3600);
    if origins.iter().any(|o| o == "*") {
        base.allow_any_origin().send_wildcard()
    } else {
        origins
            .iter()
            .fold(base, |cors, origin| cors.allowed_origin(origin))
            .supports_credentials()
    }
}
