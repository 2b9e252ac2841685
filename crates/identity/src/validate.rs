//! Input rules for accounts: usernames, e-mail addresses, passwords.

use crate::IdentityError;

/// Common passwords refused outright (a short list of the most used ones of 8+ characters).
const COMMON_PASSWORDS: &[&str] = &[
    "password",
    "password1",
    "password123",
    "12345678",
    "123456789",
    "1234567890",
    "qwerty123",
    "qwertyuiop",
    "iloveyou",
    "11111111",
    "00000000",
    "abc12345",
    "admin123",
    "administrator",
    "letmein1",
    "welcome1",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "dragon123",
    "passw0rd",
    "p@ssw0rd",
    "1q2w3e4r",
    "1qaz2wsx",
    "zaq12wsx",
    "qwerty12",
    "asdfghjk",
    "changeme",
    "trustno1",
    "superman",
    "michael1",
    "monkey123",
    "87654321",
    "12341234",
];

pub(crate) const MIN_PASSWORD: usize = 8;
pub(crate) const MAX_PASSWORD: usize = 128;

/// The longest avatar accepted (a URL, or a small `data:` URL), in characters.
pub(crate) const MAX_AVATAR: usize = 256 * 1024;

/// The longest login identifier (a username or an e-mail address) accepted.
pub(crate) const MAX_LOGIN_IDENTIFIER: usize = 254;

/// Refuses NUL and other control characters, which no name, address or identifier needs
/// (and which PostgreSQL refuses in text).
fn no_control(field: &'static str, text: &str) -> Result<(), IdentityError> {
    if text.chars().any(char::is_control) {
        return Err(IdentityError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// A login identifier, trimmed and lower-cased: at most 254 characters, no control
/// characters.
pub(crate) fn login_identifier(raw: &str) -> Result<String, IdentityError> {
    let ident = raw.trim();
    if ident.chars().count() > MAX_LOGIN_IDENTIFIER {
        return Err(IdentityError::invalid(
            "username_or_email",
            format!("must be at most {MAX_LOGIN_IDENTIFIER} characters"),
        ));
    }
    no_control("username_or_email", ident)?;
    Ok(ident.to_lowercase())
}

/// A username: 3 to 32 letters, digits, `_`, `.` or `-`.
pub(crate) fn username(raw: &str) -> Result<String, IdentityError> {
    let name = raw.trim();
    let len = name.chars().count();
    if !(3..=32).contains(&len) {
        return Err(IdentityError::invalid(
            "username",
            "must be 3 to 32 characters",
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err(IdentityError::invalid(
            "username",
            "may contain only letters, digits, `_`, `.` and `-`",
        ));
    }
    Ok(name.to_owned())
}

/// An e-mail address, trimmed and lower-cased.
pub(crate) fn email(field: &'static str, raw: &str) -> Result<String, IdentityError> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain
                    .split_once('.')
                    .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty())
                && !domain.ends_with('.')
        });
    if valid {
        Ok(email)
    } else {
        Err(IdentityError::invalid(
            field,
            "is not a valid e-mail address",
        ))
    }
}

/// A new password: 8 to 128 characters, not a common one, not the username.
pub(crate) fn password(
    field: &'static str,
    password: &str,
    username: &str,
) -> Result<(), IdentityError> {
    let len = password.chars().count();
    if len < MIN_PASSWORD {
        return Err(IdentityError::invalid(
            field,
            format!("must be at least {MIN_PASSWORD} characters"),
        ));
    }
    if len > MAX_PASSWORD {
        return Err(IdentityError::invalid(
            field,
            format!("must be at most {MAX_PASSWORD} characters"),
        ));
    }
    let lower = password.to_lowercase();
    if COMMON_PASSWORDS.contains(&lower.as_str()) {
        return Err(IdentityError::invalid(field, "is too common"));
    }
    if !username.is_empty() && lower == username.to_lowercase() {
        return Err(IdentityError::invalid(
            field,
            "must differ from the username",
        ));
    }
    Ok(())
}

/// An optional short text field (phone number, nickname).
pub(crate) fn optional_text(
    field: &'static str,
    raw: Option<&str>,
    max: usize,
) -> Result<Option<String>, IdentityError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(text) if text.chars().any(char::is_control) => Err(IdentityError::invalid(
            field,
            "must not contain control characters",
        )),
        Some(text) if text.chars().count() <= max => Ok(Some(text.to_owned())),
        Some(_) => Err(IdentityError::invalid(
            field,
            format!("must be at most {max} characters"),
        )),
    }
}

/// A language tag such as `en` or `zh-CN`: at most 16 letters, digits, `-` or `_`.
pub(crate) fn language(raw: &str) -> Result<String, IdentityError> {
    let tag = raw.trim();
    if tag.is_empty()
        || tag.len() > 16
        || !tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
    {
        return Err(IdentityError::invalid(
            "language",
            "must be a language tag such as `en` or `zh-CN`",
        ));
    }
    Ok(tag.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(e: IdentityError) -> &'static str {
        match e {
            IdentityError::Invalid { field, .. } => field,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn usernames() {
        assert_eq!(username("  alice_01 ").unwrap(), "alice_01");
        for bad in ["ab", "a b c", "alice@x", &"x".repeat(33), "名字名字"] {
            assert_eq!(field_of(username(bad).unwrap_err()), "username", "{bad}");
        }
    }

    #[test]
    fn emails() {
        assert_eq!(
            email("email", " Alice@Example.COM ").unwrap(),
            "alice@example.com"
        );
        for bad in [
            "",
            "alice",
            "alice@",
            "@x.io",
            "a@b",
            "a b@c.io",
            "a@b@c.io",
            "a@b.",
            "a\0b@c.io",
            "a@b\u{7}.io",
        ] {
            assert_eq!(field_of(email("email", bad).unwrap_err()), "email", "{bad}");
        }
    }

    #[test]
    fn login_identifiers_and_short_texts_refuse_control_characters() {
        assert_eq!(login_identifier(" Alice ").unwrap(), "alice");
        assert_eq!(login_identifier(&"a".repeat(254)).unwrap().len(), 254);
        for bad in ["ad\0min", "a\u{1b}b", &"a".repeat(255)] {
            assert_eq!(
                field_of(login_identifier(bad).unwrap_err()),
                "username_or_email",
                "{bad}"
            );
        }
        assert_eq!(
            field_of(optional_text("nickname", Some("Bo\0b"), 128).unwrap_err()),
            "nickname"
        );
        assert_eq!(
            optional_text("nickname", Some(" 小明 "), 128).unwrap(),
            Some("小明".to_owned())
        );
    }

    #[test]
    fn passwords() {
        assert!(password("password", "Tr0ub4dor&3x", "alice").is_ok());
        for bad in [
            "short",
            "password123",
            "PassWord1",
            &"x".repeat(129),
            "alice_long",
        ] {
            assert_eq!(
                field_of(password("password", bad, "alice_long").unwrap_err()),
                "password",
                "{bad}"
            );
        }
    }
}
