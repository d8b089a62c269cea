//! Every way a request can fail, mapped to its status, headers and JSON body in one place.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use serde_json::{Value, json};

use crate::domain::FieldErrors;
use crate::service::AccessError;

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECONDS: u32 = 2;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    #[error("authentication failed")]
    Unauthenticated,
    #[error("forbidden")]
    Forbidden,
    #[error("plan below PRO")]
    PlanTooLow,
    #[error("feature disabled")]
    FeatureDisabled,
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("request body not declared as JSON")]
    UnsupportedMediaType,
    #[error("request body is not a JSON object")]
    InvalidJson,
    /// Field errors, under the name of the resource (`sms_user_registration`, ...).
    #[error("field validation failed")]
    Validation {
        resource: &'static str,
        errors: FieldErrors,
    },
    #[error("bad query parameter")]
    BadQuery(&'static str),
    #[error("a backing service is unavailable")]
    Unavailable,
    #[error("bad Idempotency-Key header")]
    BadIdempotencyKey,
    #[error("the Idempotency-Key is in use by a running request")]
    IdempotencyInProgress,
    #[error("the Idempotency-Key was used with another body")]
    IdempotencyMismatch,
    #[error("the first request with the Idempotency-Key never finished")]
    IdempotencyUnknown,
    #[error("daily invitation limit reached")]
    DailyLimit { limit: u32, retry_after: u64 },
}

impl From<AccessError> for ApiError {
    fn from(error: AccessError) -> Self {
        match error {
            AccessError::Unauthenticated => ApiError::Unauthenticated,
            AccessError::Forbidden => ApiError::Forbidden,
            AccessError::PlanTooLow => ApiError::PlanTooLow,
            AccessError::FeatureDisabled => ApiError::FeatureDisabled,
            AccessError::DailyLimit { limit, retry_after } => {
                ApiError::DailyLimit { limit, retry_after }
            }
            AccessError::Store(_) => ApiError::Unavailable,
        }
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden | ApiError::PlanTooLow | ApiError::FeatureDisabled => {
                StatusCode::FORBIDDEN
            }
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::InvalidJson
            | ApiError::Validation { .. }
            | ApiError::BadIdempotencyKey
            | ApiError::BadQuery(_) => StatusCode::BAD_REQUEST,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::IdempotencyInProgress | ApiError::IdempotencyUnknown => StatusCode::CONFLICT,
            ApiError::IdempotencyMismatch => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::DailyLimit { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    pub fn body(&self) -> Value {
        let message = match self {
            ApiError::Validation { resource, errors } => return json!({ *resource: errors }),
            ApiError::BadQuery(message) => message,
            ApiError::DailyLimit { limit, .. } => {
                return json!({ "error": format!(
                    "This request would pass the project's limit of {limit} invitations per day. \
                     Nothing was sent; try again after midnight UTC."
                ) });
            }
            ApiError::BadIdempotencyKey => {
                "The Idempotency-Key header must be 1 to 255 printable ASCII characters."
            }
            ApiError::IdempotencyInProgress => {
                "A request with this Idempotency-Key is still being processed. Retry shortly."
            }
            ApiError::IdempotencyMismatch => {
                "This Idempotency-Key was already used with a different request body."
            }
            ApiError::IdempotencyUnknown => {
                "The first request with this Idempotency-Key stopped before it finished: \
                 some of its numbers may have been invited. It is not run again. Check the \
                 invitations listing, then send the numbers still missing with a new key."
            }
            ApiError::NotFound => "Not found.",
            ApiError::MethodNotAllowed { .. } => "Method not allowed.",
            ApiError::Unauthenticated => {
                "Authentication required: send 'Authorization: ApiKey <username>:<key>' \
                 or HTTP Basic credentials."
            }
            ApiError::Forbidden => {
                "You do not have permission to register mobile workers in this project."
            }
            ApiError::PlanTooLow => "Your current plan does not have access to this feature",
            ApiError::FeatureDisabled => {
                "Please first enable SMS mobile worker registration for your project."
            }
            ApiError::PayloadTooLarge => "Request body is larger than 1 MiB.",
            ApiError::UnsupportedMediaType => {
                "Send the request body as JSON, with 'Content-Type: application/json'."
            }
            ApiError::InvalidJson => "Request is not valid JSON.",
            ApiError::Unavailable => "The service is temporarily unavailable. Please retry.",
        };
        json!({ "error": message })
    }

    pub fn into_response(self) -> Response<Body> {
        let mut response = json_response(self.status(), &self.body());
        let headers = response.headers_mut();
        match self {
            ApiError::Unauthenticated => {
                // ApiKey alone: a Basic challenge would make a browser ask for and cache
                // credentials, which any other site's form could then send. Basic
                // credentials sent unasked are still read.
                headers.insert(
                    "www-authenticate",
                    "ApiKey realm=\"sms-registration\""
                        .parse()
                        .expect("a valid header value"),
                );
            }
            ApiError::MethodNotAllowed { allow } => {
                headers.insert("allow", allow.parse().expect("a valid header value"));
            }
            ApiError::Unavailable => {
                headers.insert("retry-after", RETRY_AFTER_SECONDS.into());
            }
            ApiError::IdempotencyInProgress => {
                headers.insert("retry-after", 1.into());
            }
            ApiError::DailyLimit { retry_after, .. } => {
                headers.insert("retry-after", retry_after.into());
            }
            _ => {}
        }
        response
    }
}

/// A JSON response; fields keep their declared order (`success_numbers` first). Never
/// stored by a cache or a browser: most list workers' phone numbers.
pub fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response<Body> {
    let text = serde_json::to_string(body).expect("response bodies serialise");
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(Body::Text(text))
        .expect("a response with a valid status and header")
}
