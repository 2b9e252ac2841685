//! Configuration parsing: defaults, environment over file, one-line errors naming the setting.

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn error_of(pairs: &[(&str, &str)]) -> ConfigError {
    match Config::from_sources(env(pairs)) {
        Ok(_) => panic!("expected an error for {pairs:?}"),
        Err(e) => e,
    }
}

#[test]
fn no_configuration_gives_the_embedded_default() {
    let config = Config::from_sources(env(&[])).unwrap();
    assert_eq!(config.host, "127.0.0.1");
    assert_eq!(config.port, 8000);
    assert_eq!(config.data_dir, PathBuf::from("./data"));
    assert_eq!(config.auth_mode, AuthMode::Native);
    assert!(config.redis_url.is_none());
    assert!(!config.allow_registration);
    assert_eq!(config.login_page, "/sage/login");
    assert_eq!(config.stream_log_ttl, Duration::from_secs(3600));
    assert_eq!(
        config.effective_database_url(),
        "sqlite://./data/sage.db?mode=rwc"
    );
}

#[test]
fn settings_are_read_and_typed() {
    let config = Config::from_sources(env(&[
        ("SAGE_PORT", "0"),
        ("SAGE_DATA_DIR", "/tmp/x"),
        ("DATABASE_URL", "postgres://u@localhost/db"),
        ("REDIS_URL", "redis://127.0.0.1:6379/"),
        ("SAGE_AUTH_MODE", "trusted_proxy"),
        ("SAGE_ALLOW_REGISTRATION", "true"),
        ("SAGE_TRUSTED_PROXIES", "10.0.0.0/8, ::1"),
        ("SAGE_AUTH_PROVIDERS", r#"[{"id":"corp"}]"#),
        ("SAGE_DEFAULT_LLM_BASE_URL", "http://127.0.0.1:9/v1"),
        ("SAGE_DEFAULT_LLM_MODEL", "m"),
        ("SAGE_OUTBOUND_ALLOW", "loopback,private"),
        ("SAGE_LOG_FORMAT", "json"),
        ("SAGE_CORS_ORIGINS", "https://a.example, https://b.example"),
    ]))
    .unwrap();
    assert_eq!(config.port, 0);
    assert_eq!(config.redis_url.as_deref(), Some("redis://127.0.0.1:6379"));
    assert_eq!(config.auth_mode, AuthMode::TrustedProxy);
    assert!(config.allow_registration);
    assert_eq!(config.trusted_proxies.len(), 2);
    assert!(config.trusted_proxies[0].contains("10.1.2.3".parse().unwrap()));
    assert!(!config.trusted_proxies[0].contains("11.1.2.3".parse().unwrap()));
    assert!(config.trusted_proxies[1].contains("::1".parse().unwrap()));
    assert_eq!(config.auth_providers[0]["id"], "corp");
    assert_eq!(config.default_llm.as_ref().unwrap().model, "m");
    assert_eq!(config.outbound_allow, vec!["loopback", "private"]);
    assert_eq!(config.log_format, LogFormat::Json);
    assert_eq!(config.cors_origins.len(), 2);
    assert_eq!(config.effective_database_url(), "postgres://u@localhost/db");
}

#[test]
fn each_malformed_value_names_its_setting_in_one_line() {
    let cases: &[(&str, &str)] = &[
        ("SAGE_PORT", "eighty"),
        ("SAGE_PORT", "70000"),
        ("SAGE_AUTH_MODE", "ldap"),
        ("SAGE_ALLOW_REGISTRATION", "maybe"),
        ("SAGE_TRUSTED_PROXIES", "10.0.0.0/33"),
        ("SAGE_AUTH_PROVIDERS", "{not json"),
        ("SAGE_OAUTH2_CLIENTS", r#"{"a":1}"#),
        ("DATABASE_URL", "mysql://x"),
        ("REDIS_URL", "localhost:6379"),
        ("SAGE_STREAM_LOG_TTL_SECS", "-1"),
        ("SAGE_LOG_FORMAT", "xml"),
        ("SAGE_SECRET_KEY", "short"),
        ("SAGE_LOGIN_PAGE", "https://evil.example/login"),
        ("SAGE_HOST", "not a host"),
        ("SAGE_DEFAULT_LLM_MODEL", "m"),
    ];
    for (name, value) in cases {
        let err = error_of(&[(name, value)]);
        let line = err.to_string();
        assert!(
            line.contains(name)
                || (name.starts_with("SAGE_DEFAULT_LLM") && line.contains("SAGE_DEFAULT_LLM")),
            "{line}"
        );
        assert!(!line.contains('\n'), "{line}");
    }
}

#[test]
fn a_toml_file_is_read_and_the_environment_wins() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sage.toml");
    std::fs::write(
        &path,
        "port = 9100\nhost = \"0.0.0.0\"\nallow_registration = true\ntrusted_proxies = [\"127.0.0.1\"]\nauth_providers = [{ id = \"corp\" }]\nfuture_setting = 1\n",
    )
    .unwrap();
    let config = Config::from_sources(env(&[
        ("SAGE_CONFIG", path.to_str().unwrap()),
        ("SAGE_PORT", "9200"),
        ("SAGE_SOMETHING_NEW", "x"),
    ]))
    .unwrap();
    assert_eq!(config.port, 9200, "environment wins over the file");
    assert_eq!(config.host, "0.0.0.0");
    assert!(config.allow_registration);
    assert_eq!(config.trusted_proxies.len(), 1);
    assert_eq!(config.auth_providers[0]["id"], "corp");
    assert_eq!(config.warnings.len(), 2, "{:?}", config.warnings);
}

#[test]
fn a_broken_file_is_one_line_naming_sage_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sage.toml");
    std::fs::write(&path, "port = = 1\n").unwrap();
    let err = error_of(&[("SAGE_CONFIG", path.to_str().unwrap())]);
    assert_eq!(err.setting, "SAGE_CONFIG");
    assert!(!err.to_string().contains('\n'));
    let missing = error_of(&[("SAGE_CONFIG", "/nonexistent/sage.toml")]);
    assert_eq!(missing.setting, "SAGE_CONFIG");
}

#[test]
fn a_toml_value_of_the_wrong_type_names_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sage.toml");
    std::fs::write(&path, "port = \"high\"\n").unwrap();
    let err = error_of(&[("SAGE_CONFIG", path.to_str().unwrap())]);
    assert_eq!(err.setting, "SAGE_PORT");
}

#[test]
fn proxy_and_upstream_settings_have_safe_defaults() {
    let config = Config::from_sources(env(&[])).unwrap();
    assert!(
        !config.trusted_proxy_admins,
        "admins by header only when opted in"
    );
    assert_eq!(config.upstream_starts_per_ip, 20);
    let config = Config::from_sources(env(&[
        ("SAGE_TRUSTED_PROXY_ADMINS", "true"),
        ("SAGE_UPSTREAM_STARTS_PER_IP", "5"),
    ]))
    .unwrap();
    assert!(config.trusted_proxy_admins);
    assert_eq!(config.upstream_starts_per_ip, 5);
    let err = error_of(&[("SAGE_UPSTREAM_STARTS_PER_IP", "many")]);
    assert!(err.to_string().contains("SAGE_UPSTREAM_STARTS_PER_IP"));
}

#[test]
fn oauth_mode_requires_a_public_url() {
    let err = error_of(&[("SAGE_AUTH_MODE", "oauth")]);
    assert_eq!(err.setting, "SAGE_PUBLIC_URL");
    let config = Config::from_sources(env(&[
        ("SAGE_AUTH_MODE", "oauth"),
        ("SAGE_PUBLIC_URL", "https://sage.example"),
    ]))
    .unwrap();
    assert_eq!(config.auth_mode, AuthMode::OAuth);
}

#[test]
fn spend_limits_have_defaults_and_are_read() {
    let defaults = Config::from_sources(env(&[])).unwrap();
    assert_eq!(defaults.max_prompt_chars, 64_000);
    assert_eq!(defaults.model_calls_per_minute, 30);
    assert_eq!(defaults.model_calls_burst, 30);
    assert_eq!(defaults.max_pending_jobs_per_user, 20);
    assert_eq!(defaults.job_concurrency, 4);
    let config = Config::from_sources(env(&[
        ("SAGE_MAX_PROMPT_CHARS", "1000"),
        ("SAGE_MODEL_CALLS_PER_MINUTE", "0"),
        ("SAGE_MODEL_CALLS_BURST", "5"),
        ("SAGE_MAX_PENDING_JOBS_PER_USER", "3"),
        ("SAGE_JOB_CONCURRENCY", "1"),
    ]))
    .unwrap();
    assert_eq!(config.max_prompt_chars, 1000);
    assert_eq!(config.model_calls_per_minute, 0, "0 turns the limit off");
    assert_eq!(config.model_calls_burst, 5);
    assert_eq!(config.max_pending_jobs_per_user, 3);
    assert_eq!(config.job_concurrency, 1);
    for name in [
        "SAGE_MAX_PROMPT_CHARS",
        "SAGE_MODEL_CALLS_PER_MINUTE",
        "SAGE_MODEL_CALLS_BURST",
        "SAGE_MAX_PENDING_JOBS_PER_USER",
        "SAGE_JOB_CONCURRENCY",
    ] {
        assert_eq!(error_of(&[(name, "-1")]).setting, name);
    }
}

#[test]
fn the_body_read_timeout_is_a_positive_number_of_seconds() {
    let default = Config::from_sources(env(&[])).unwrap();
    assert_eq!(default.body_read_timeout, Duration::from_secs(30));
    let set = Config::from_sources(env(&[("SAGE_BODY_READ_TIMEOUT_SECS", "5")])).unwrap();
    assert_eq!(set.body_read_timeout, Duration::from_secs(5));
    let zero = Config::from_sources(env(&[("SAGE_BODY_READ_TIMEOUT_SECS", "0")])).unwrap();
    assert_eq!(
        zero.body_read_timeout,
        Duration::from_secs(30),
        "0 means unset"
    );
    assert!(
        error_of(&[("SAGE_BODY_READ_TIMEOUT_SECS", "soon")])
            .to_string()
            .contains("SAGE_BODY_READ_TIMEOUT_SECS")
    );
}

#[test]
fn operational_limits_have_defaults_and_are_read() {
    let defaults = Config::from_sources(env(&[])).unwrap();
    assert_eq!(defaults.max_agents_per_user, 200);
    assert_eq!(defaults.db_connect_timeout, Duration::from_millis(1000));
    assert_eq!(defaults.db_acquire_timeout, Duration::from_millis(1500));
    assert!(defaults.secret_key_previous.is_empty());
    let old1 = "o".repeat(32);
    let old2 = "p".repeat(40);
    let config = Config::from_sources(env(&[
        ("SAGE_MAX_AGENTS_PER_USER", "5"),
        ("SAGE_DB_CONNECT_TIMEOUT_MS", "250"),
        ("SAGE_DB_ACQUIRE_TIMEOUT_MS", "400"),
        ("SAGE_SECRET_KEY_PREVIOUS", &format!("{old1}, {old2}")),
    ]))
    .unwrap();
    assert_eq!(config.max_agents_per_user, 5);
    assert_eq!(config.db_connect_timeout, Duration::from_millis(250));
    assert_eq!(config.db_acquire_timeout, Duration::from_millis(400));
    assert_eq!(config.secret_key_previous, vec![old1, old2]);
    assert_eq!(
        error_of(&[("SAGE_DB_ACQUIRE_TIMEOUT_MS", "soon")]).setting,
        "SAGE_DB_ACQUIRE_TIMEOUT_MS"
    );
    assert_eq!(
        error_of(&[("SAGE_SECRET_KEY_PREVIOUS", "short")]).setting,
        "SAGE_SECRET_KEY_PREVIOUS"
    );
    assert_eq!(
        error_of(&[("SAGE_MAX_AGENTS_PER_USER", "-1")]).setting,
        "SAGE_MAX_AGENTS_PER_USER"
    );
}

#[test]
fn cookies_are_secure_on_https_or_when_asked() {
    let plain = Config::from_sources(env(&[])).unwrap();
    assert!(!plain.secure_cookies());
    assert!(
        !plain.plain_http_cookies_off_loopback(),
        "loopback needs no warning"
    );
    let exposed = Config::from_sources(env(&[("SAGE_HOST", "0.0.0.0")])).unwrap();
    assert!(exposed.plain_http_cookies_off_loopback());
    let https = Config::from_sources(env(&[
        ("SAGE_HOST", "0.0.0.0"),
        ("SAGE_PUBLIC_URL", "https://sage.example"),
    ]))
    .unwrap();
    assert!(https.secure_cookies());
    assert!(!https.plain_http_cookies_off_loopback());
    let forced = Config::from_sources(env(&[
        ("SAGE_HOST", "0.0.0.0"),
        ("SAGE_COOKIE_SECURE", "true"),
    ]))
    .unwrap();
    assert!(forced.secure_cookies());
    let off = Config::from_sources(env(&[
        ("SAGE_PUBLIC_URL", "https://sage.example"),
        ("SAGE_COOKIE_SECURE", "false"),
    ]))
    .unwrap();
    assert!(!off.secure_cookies(), "an explicit false wins");
    assert_eq!(
        error_of(&[("SAGE_COOKIE_SECURE", "maybe")]).setting,
        "SAGE_COOKIE_SECURE"
    );
}
