//! The public summary of how people can log in, for `GET /api/system/info` and
//! `GET /api/auth/providers`. Built from configuration; secrets of upstream providers never
//! appear in it.

use platform::{AuthMode, Config};
use serde_json::Value;

/// One login option as the web UI shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginProvider {
    pub id: String,
    /// `native` or `oidc`.
    pub kind: String,
    pub name: String,
    pub button_text: String,
    pub description: String,
    pub icon: String,
}

impl LoginProvider {
    /// The password form, listed first whenever password login exists.
    pub fn native() -> Self {
        Self {
            id: "native".into(),
            kind: "native".into(),
            name: "Account and password".into(),
            button_text: "Sign in with account and password".into(),
            description: "Use your Sage account and password.".into(),
            icon: "key-round".into(),
        }
    }
}

/// What the login page needs to know about the deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthOverview {
    pub mode: AuthMode,
    pub providers: Vec<LoginProvider>,
    pub allow_registration: bool,
}

/// Upstream provider ids are reduced to `[a-z0-9-]`, as Sage does.
pub(crate) fn normalise_id(raw: &str) -> String {
    raw.trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .trim_matches('-')
        .to_owned()
}

fn text(entry: &Value, field: &str) -> Option<String> {
    entry
        .get(field)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

impl AuthOverview {
    /// The overview for a configuration; `allow_registration` is the current system setting.
    pub fn new(config: &Config, allow_registration: bool) -> Self {
        let mut providers = Vec::new();
        if config.auth_mode != AuthMode::OAuth {
            providers.push(LoginProvider::native());
        }
        if config.auth_mode == AuthMode::OAuth {
            for entry in config.auth_providers.as_array().into_iter().flatten() {
                let enabled = entry
                    .get("enabled")
                    .and_then(Value::as_bool)
                    .unwrap_or(true);
                let Some(id) = text(entry, "id").map(|id| normalise_id(&id)) else {
                    continue;
                };
                let kind = text(entry, "type").unwrap_or_else(|| "oidc".into());
                if !enabled || id.is_empty() || kind == "native" {
                    continue;
                }
                let name = text(entry, "name").unwrap_or_else(|| id.clone());
                providers.push(LoginProvider {
                    button_text: text(entry, "button_text")
                        .unwrap_or_else(|| format!("Sign in with {name}")),
                    description: text(entry, "description").unwrap_or_default(),
                    icon: text(entry, "icon").unwrap_or_default(),
                    id,
                    kind,
                    name,
                });
            }
        }
        Self {
            mode: config.auth_mode,
            providers,
            // Registration is a native-mode feature only.
            allow_registration: allow_registration && config.auth_mode == AuthMode::Native,
        }
    }

    pub fn has_local_auth(&self) -> bool {
        self.mode != AuthMode::OAuth
    }

    pub fn has_oauth_auth(&self) -> bool {
        self.providers.iter().any(|p| p.kind != "native")
    }

    /// Only admins may use the password form (trusted-proxy deployments).
    pub fn native_login_admin_only(&self) -> bool {
        self.mode == AuthMode::TrustedProxy
    }

    pub fn default_provider(&self) -> Option<&LoginProvider> {
        self.providers.first()
    }

    /// The first upstream provider's name, for single-provider login buttons.
    pub fn oauth_provider_name(&self) -> Option<&str> {
        self.providers
            .iter()
            .find(|p| p.kind != "native")
            .map(|p| p.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mode: &str, providers: &str) -> Config {
        Config::from_sources([
            ("SAGE_AUTH_MODE".to_owned(), mode.to_owned()),
            ("SAGE_AUTH_PROVIDERS".to_owned(), providers.to_owned()),
            (
                "SAGE_PUBLIC_URL".to_owned(),
                "https://sage.example".to_owned(),
            ),
        ])
        .unwrap()
    }

    #[test]
    fn native_mode_offers_the_password_form_only() {
        let overview = AuthOverview::new(&config("native", r#"[{"id":"corp"}]"#), true);
        assert_eq!(overview.providers, vec![LoginProvider::native()]);
        assert!(overview.allow_registration);
        assert!(overview.has_local_auth() && !overview.has_oauth_auth());
        assert!(!overview.native_login_admin_only());
    }

    #[test]
    fn oauth_mode_lists_enabled_upstream_providers_without_secrets() {
        let overview = AuthOverview::new(
            &config(
                "oauth",
                r#"[{"id":"Corp SSO","name":"Corp","client_secret":"s3cret"},
                    {"id":"off","enabled":false},{"name":"no id"}]"#,
            ),
            true,
        );
        assert_eq!(overview.providers.len(), 1);
        let corp = &overview.providers[0];
        assert_eq!(corp.id, "corp-sso");
        assert_eq!(corp.kind, "oidc");
        assert_eq!(corp.button_text, "Sign in with Corp");
        assert!(!overview.allow_registration);
        assert!(!overview.has_local_auth() && overview.has_oauth_auth());
        assert_eq!(overview.oauth_provider_name(), Some("Corp"));
        assert!(!format!("{overview:?}").contains("s3cret"));
    }

    #[test]
    fn trusted_proxy_mode_keeps_password_login_for_admins() {
        let overview = AuthOverview::new(&config("trusted_proxy", "[]"), true);
        assert!(overview.native_login_admin_only());
        assert!(!overview.allow_registration);
        assert_eq!(
            overview.default_provider().map(|p| p.id.as_str()),
            Some("native")
        );
    }
}
