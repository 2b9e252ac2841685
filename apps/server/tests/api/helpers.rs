//! `TestApp`: the real application on a loopback port with a temporary data directory.

use std::sync::Once;

use platform::Config;
use sea_orm::ConnectionTrait;
use serde_json::Value;
use server::Application;
use tempfile::TempDir;

/// The first admin's password in every test app (username `admin`).
pub const ADMIN_PASSWORD: &str = "Adm1n-test-passphrase";

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    /// The server's database, for the few checks no route can make (data left behind).
    pub database_url: String,
    /// The configuration the server was built with (data dir, database, Redis prefix).
    pub config: Config,
    /// Kept so the temporary data directory lives as long as the server.
    _data_dir: TempDir,
}

static TRACING: Once = Once::new();

fn init_tracing() {
    if std::env::var("TEST_LOG").is_ok_and(|v| !v.is_empty() && v != "0") {
        TRACING.call_once(|| {
            let config = Config {
                log_filter: "debug".into(),
                ..Config::default()
            };
            let _ = platform::telemetry::init(&config);
        });
    }
}

fn env_url(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A fresh, uniquely named database on the server of `TEST_DATABASE_URL`.
pub async fn fresh_postgres(base_url: &str) -> String {
    let admin = platform::db::connect_url(base_url)
        .await
        .expect("TEST_DATABASE_URL must answer");
    let name = format!("sage_test_{}", platform::ids::new_hex_id());
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("create a test database");
    let without_query = base_url.split('?').next().unwrap_or(base_url);
    let (server, _) = without_query
        .rsplit_once('/')
        .expect("database URL with a path");
    format!("{server}/{name}")
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// Starts the server after `customise` adjusts the test configuration.
    pub async fn spawn_with(customise: impl FnOnce(&mut Config)) -> TestApp {
        init_tracing();
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config {
            port: 0,
            admin_password: Some(ADMIN_PASSWORD.to_owned()),
            // Tests reach the scripted LLM server and the OpenID Provider on loopback.
            outbound_allow: vec!["loopback".to_owned()],
            data_dir: data_dir.path().to_path_buf(),
            workers: 1,
            shutdown_timeout: std::time::Duration::from_secs(1),
            ..Config::default()
        };
        if let Some(url) = env_url("TEST_DATABASE_URL") {
            config.database_url = Some(fresh_postgres(&url).await);
        }
        if let Some(url) = env_url("TEST_REDIS_URL") {
            config.redis_url = Some(url);
            config.redis_prefix = format!("sage-test:{}:", platform::ids::new_hex_id());
        }
        customise(&mut config);
        let database_url = config.effective_database_url();
        let app = Application::build(config.clone())
            .await
            .expect("the application builds");
        let port = app.port();
        tokio::spawn(app.run_until_stopped());
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client");
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            client,
            database_url,
            config,
            _data_dir: data_dir,
        }
    }

    /// Starts another server (another process as far as state goes: its own caches and
    /// in-process stores) on the same data directory, database and Redis prefix, as a
    /// restart or a second replica would; returns its base URL.
    pub async fn another_server(&self) -> String {
        let app = Application::build(self.config.clone())
            .await
            .expect("the second application builds");
        let port = app.port();
        tokio::spawn(app.run_until_stopped());
        format!("http://127.0.0.1:{port}")
    }

    /// The environment that points the `sage-server` binary at this server's data.
    pub fn binary_env(&self) -> Vec<(String, String)> {
        let mut env = vec![(
            "SAGE_DATA_DIR".to_owned(),
            self.data_path().display().to_string(),
        )];
        if let Some(url) = &self.config.database_url {
            env.push(("DATABASE_URL".to_owned(), url.clone()));
        }
        if let Some(url) = &self.config.redis_url {
            env.push(("REDIS_URL".to_owned(), url.clone()));
            env.push((
                "SAGE_REDIS_PREFIX".to_owned(),
                self.config.redis_prefix.clone(),
            ));
        }
        env
    }

    /// A fresh client with its own cookie jar.
    pub fn new_client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client")
    }

    pub async fn post_json(
        &self,
        client: &reqwest::Client,
        path: &str,
        body: Value,
    ) -> reqwest::Response {
        client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("request sent")
    }

    /// Logs `client` in; returns the raw response.
    pub async fn login(
        &self,
        client: &reqwest::Client,
        username: &str,
        password: &str,
    ) -> reqwest::Response {
        self.post_json(
            client,
            "/api/auth/login",
            serde_json::json!({"username_or_email": username, "password": password}),
        )
        .await
    }

    /// A client logged in as the first admin.
    pub async fn admin(&self) -> reqwest::Client {
        let client = self.new_client();
        let response = self.login(&client, "admin", ADMIN_PASSWORD).await;
        assert_eq!(response.status(), 200, "admin login");
        client
    }

    /// Creates a user through the admin API and returns a client logged in as them, and the id.
    pub async fn user(&self, username: &str) -> (reqwest::Client, String) {
        let admin = self.admin().await;
        let password = format!("{username}-Secret-9");
        let created = envelope(
            self.post_json(
                &admin,
                "/api/user/add",
                serde_json::json!({"username": username, "password": password, "email": format!("{username}@example.com")}),
            )
            .await,
        )
        .await;
        let id = created["data"]["user_id"]
            .as_str()
            .expect("user id")
            .to_owned();
        let client = self.new_client();
        assert_eq!(self.login(&client, username, &password).await.status(), 200);
        (client, id)
    }

    /// The server's data directory.
    pub fn data_path(&self) -> &std::path::Path {
        self._data_dir.path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    /// Any method on any path, with no body.
    pub async fn call(&self, method: &str, path: &str) -> reqwest::Response {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        self.client
            .request(method, self.url(path))
            .send()
            .await
            .expect("request sent")
    }
}

/// Reads an `/api` envelope, checking its shape and that `code` equals the HTTP status.
pub async fn envelope(response: reqwest::Response) -> Value {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(body["code"], status, "envelope code equals status: {body}");
    assert!(body["message"].is_string(), "{body}");
    assert!(body["timestamp"].as_f64().is_some(), "{body}");
    assert!(body.get("data").is_some(), "{body}");
    if status != 200 {
        assert!(body["data"].is_null(), "{body}");
        assert!(body["error_code"].is_string(), "{body}");
    }
    body
}
