//! Identifier generation and validation.
//!
//! Ids that reach file paths or keys are validated here first, so a path is never built from an
//! unchecked string: only ASCII letters, digits, `_` and `-`, 1 to 64 characters.

use rand::Rng;

/// A version-4 UUID from the thread's CSPRNG: `Uuid::new_v4` asks the kernel for every one
/// (a system call per request id).
fn random_uuid() -> uuid::Uuid {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid()
}

/// A random 128-bit id as 32 lowercase hex digits (Sage's `uuid4().hex` form).
pub fn new_hex_id() -> String {
    random_uuid().simple().to_string()
}

/// A random UUID in its hyphenated form (Sage's `uuid4()` form, used for session ids).
pub fn new_uuid() -> String {
    random_uuid().to_string()
}

/// `prefix` followed by `hex_len` random lowercase hex digits, e.g. `agent_1a2b3c4d`.
pub fn new_prefixed_id(prefix: &str, hex_len: usize) -> String {
    let mut rng = rand::rng();
    let mut id = String::with_capacity(prefix.len() + hex_len);
    id.push_str(prefix);
    for _ in 0..hex_len {
        let digit: u32 = rng.random_range(0..16);
        id.push(char::from_digit(digit, 16).unwrap_or('0'));
    }
    id
}

/// A random secret token of `bytes` random bytes, hex encoded (session ids, refresh tokens).
pub fn new_secret_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(buf.as_mut_slice());
    hex::encode(buf)
}

/// Whether `id` is safe to use as a path segment or store key part.
pub fn is_safe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_have_their_documented_shapes() {
        let hex = new_hex_id();
        assert_eq!(hex.len(), 32);
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
        let agent = new_prefixed_id("agent_", 8);
        assert!(agent.starts_with("agent_"));
        assert_eq!(agent.len(), 14);
        assert_ne!(new_secret_token(16), new_secret_token(16));
        assert_eq!(new_secret_token(16).len(), 32);
        let id = uuid::Uuid::parse_str(&new_uuid()).unwrap();
        assert_eq!(id.get_version_num(), 4);
        assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
        assert_ne!(new_uuid(), new_uuid());
    }

    #[test]
    fn safe_ids_reject_path_tricks() {
        for good in ["agent_1a2b", "abc-DEF_123", "x"] {
            assert!(is_safe_id(good), "{good}");
        }
        let long = "a".repeat(65);
        for bad in ["", "..", "a/b", "a\\b", "a\0b", "a b", "é", long.as_str()] {
            assert!(!is_safe_id(bad), "{bad:?}");
        }
    }
}
