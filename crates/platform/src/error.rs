//! The error kinds every domain error maps to. The server turns a kind into an HTTP status and
//! an envelope in one table (`server::error`); domain crates only say what went wrong.

use serde::Serialize;

/// What kind of failure an error is, independent of transport.
///
/// Each domain error enum implements `fn kind(&self) -> ErrorKind` as an exhaustive match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request is malformed in a way that is not about one field (400).
    BadRequest,
    /// No valid credentials (401).
    Unauthenticated,
    /// Authenticated, but not allowed (403).
    Forbidden,
    /// The resource does not exist or is not visible to the caller (404).
    NotFound,
    /// The route exists but not with this method (405).
    MethodNotAllowed,
    /// The resource exists in a state that forbids the change (409).
    Conflict,
    /// The request body exceeds its limit (413).
    PayloadTooLarge,
    /// The body's content type is not the one the route reads (415).
    UnsupportedMediaType,
    /// A field or value failed validation (422).
    Invalid,
    /// Too many requests; retry later (429).
    RateLimited,
    /// A bug or an unexpected failure on our side (500).
    Internal,
    /// An upstream service (LLM provider, MCP server, identity provider) failed (502).
    Upstream,
    /// A dependency of ours (database, Redis) is unavailable (503).
    Unavailable,
}

impl ErrorKind {
    /// Every kind, in status order; used to publish and test the error-code matrix.
    pub const ALL: [ErrorKind; 13] = [
        ErrorKind::BadRequest,
        ErrorKind::Unauthenticated,
        ErrorKind::Forbidden,
        ErrorKind::NotFound,
        ErrorKind::MethodNotAllowed,
        ErrorKind::Conflict,
        ErrorKind::PayloadTooLarge,
        ErrorKind::UnsupportedMediaType,
        ErrorKind::Invalid,
        ErrorKind::RateLimited,
        ErrorKind::Internal,
        ErrorKind::Upstream,
        ErrorKind::Unavailable,
    ];

    /// The HTTP status code of this kind; the envelope's `code` equals it.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::Unauthenticated => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::Conflict => 409,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::UnsupportedMediaType => 415,
            ErrorKind::Invalid => 422,
            ErrorKind::RateLimited => 429,
            ErrorKind::Internal => 500,
            ErrorKind::Upstream => 502,
            ErrorKind::Unavailable => 503,
        }
    }

    /// Server-side failures hide their details from clients.
    pub fn is_server_error(self) -> bool {
        self.status() >= 500
    }
}
