//! Success responses of the `/api` family: the legacy `BaseResponse` envelope.

use actix_web::body::BoxBody;
use actix_web::{HttpRequest, HttpResponse, Responder, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{AppError, timestamp};

/// The `BaseResponse` envelope: `code` equals the HTTP status; on failure `data` is null and
/// `error_detail` may name the fields at fault.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Envelope<T: Serialize + ToSchema> {
    pub code: u16,
    pub message: String,
    pub data: Option<T>,
    pub timestamp: f64,
    /// On failure: the stable error key (see docs/errors.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<serde_json::Value>,
}

/// A successful `/api` answer carrying `T` as `data`.
#[derive(Debug)]
pub(crate) struct ApiOk<T>(pub T);

impl<T: Serialize + ToSchema> ApiOk<T> {
    /// The envelope as a response, for handlers that add cookies or headers.
    pub fn into_response(self) -> HttpResponse {
        let envelope = Envelope {
            code: 200,
            message: "success".to_owned(),
            data: Some(self.0),
            timestamp: timestamp(),
            error_code: None,
            error_detail: None,
        };
        // Written into one buffer sized for a small answer: most envelopes fit without a
        // reallocation (`HttpResponse::json` grows an empty string several times).
        let mut body = Vec::with_capacity(256);
        match serde_json::to_writer(&mut body, &envelope) {
            Ok(()) => HttpResponse::Ok()
                .content_type("application/json")
                .body(body),
            Err(e) => AppError::internal(e).error_response(),
        }
    }
}

/// What `/api` handlers return.
pub(crate) type ApiResult<T> = Result<ApiOk<T>, AppError>;

impl<T: Serialize + ToSchema> Responder for ApiOk<T> {
    type Body = BoxBody;

    fn respond_to(self, _: &HttpRequest) -> HttpResponse {
        self.into_response()
    }
}
