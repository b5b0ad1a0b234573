//! The one application error type, and the one place that decides what a client sees.
//!
//! Every error reaching a client carries a stable `extensions.code`. Internal errors are
//! logged with their whole cause chain and the request id; the client gets only
//! "internal error" and that id, so SQL, file paths and library messages never leak.

use std::fmt;

use async_graphql::ErrorExtensions;

/// Every stable error code, shown to clients as `extensions.code`: those of the
/// application's errors ([`AppError::code`]), and those of requests refused before or
/// instead of running (malformed, too large, not allowed by the transport).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// `UNAUTHENTICATED`: no valid credentials, or the session has ended.
    Unauthenticated,
    /// `FORBIDDEN`: signed in, but not allowed to do this.
    Forbidden,
    /// `BAD_USER_INPUT`: an input value is invalid; `extensions.field` names it.
    BadUserInput,
    /// `NOT_FOUND`: the thing asked for does not exist, or is not the caller's.
    NotFound,
    /// `CONFLICT`: the request clashes with existing data, such as a taken email.
    Conflict,
    /// `RATE_LIMITED`: too many attempts; `extensions.retryAfter` says when to retry.
    RateLimited,
    /// `INTERNAL_SERVER_ERROR`: a fault in the server, whose details only the logs see.
    InternalServerError,
    /// `BAD_REQUEST`: the request is not a GraphQL request this server can run.
    BadRequest,
    /// `GRAPHQL_PARSE_FAILED`: the query text is not valid GraphQL.
    GraphqlParseFailed,
    /// `GRAPHQL_VALIDATION_FAILED`: the operation does not fit the schema or the limits.
    GraphqlValidationFailed,
    /// `INTROSPECTION_DISABLED`: `__schema` or `__type` asked of a server that hides them.
    IntrospectionDisabled,
    /// `PERSISTED_QUERY_NOT_FOUND`: the hash is unknown; send the text with it.
    PersistedQueryNotFound,
    /// `PERSISTED_QUERY_NOT_SUPPORTED`: automatic persisted queries are off.
    PersistedQueryNotSupported,
    /// `PERSISTED_QUERY_NOT_IN_LIST`: the operation is not among the trusted documents.
    PersistedQueryNotInList,
    /// `METHOD_NOT_ALLOWED`: a mutation sent with GET.
    MethodNotAllowed,
    /// `NOT_ACCEPTABLE`: the client accepts no media type this server answers in.
    NotAcceptable,
    /// `PAYLOAD_TOO_LARGE`: the body is larger than `QUIRE_MAX_BODY`.
    PayloadTooLarge,
    /// `UNSUPPORTED_MEDIA_TYPE`: a POST that is not JSON.
    UnsupportedMediaType,
    /// `SERVICE_UNAVAILABLE`: the server is too busy to take this now.
    ServiceUnavailable,
}

impl Code {
    /// The code as clients see it, such as `BAD_USER_INPUT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden => "FORBIDDEN",
            Self::BadUserInput => "BAD_USER_INPUT",
            Self::NotFound => "NOT_FOUND",
            Self::Conflict => "CONFLICT",
            Self::RateLimited => "RATE_LIMITED",
            Self::InternalServerError => "INTERNAL_SERVER_ERROR",
            Self::BadRequest => "BAD_REQUEST",
            Self::GraphqlParseFailed => "GRAPHQL_PARSE_FAILED",
            Self::GraphqlValidationFailed => "GRAPHQL_VALIDATION_FAILED",
            Self::IntrospectionDisabled => "INTROSPECTION_DISABLED",
            Self::PersistedQueryNotFound => "PERSISTED_QUERY_NOT_FOUND",
            Self::PersistedQueryNotSupported => "PERSISTED_QUERY_NOT_SUPPORTED",
            Self::PersistedQueryNotInList => "PERSISTED_QUERY_NOT_IN_LIST",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::NotAcceptable => "NOT_ACCEPTABLE",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Self::ServiceUnavailable => "SERVICE_UNAVAILABLE",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error from anywhere in the application.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The caller is not signed in, or their credentials are invalid.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// The caller is signed in but may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// An input value is invalid; `field` names it.
    #[error("{message}")]
    BadUserInput {
        /// The input field at fault, as the API names it (`newPassword`, say).
        field: &'static str,
        /// What is wrong with the value, for the user to read.
        message: String,
    },
    /// The thing asked for does not exist, or is not the caller's.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with existing data (a taken email, say).
    #[error("{message}")]
    Conflict {
        /// The input field at fault; `None` when a race leaves it unclear which.
        field: Option<&'static str>,
        /// What the request conflicts with, for the user to read.
        message: String,
    },
    /// Too many attempts; the client may try again after `retry_after` seconds.
    #[error("{message}")]
    RateLimited {
        /// What was limited.
        message: String,
        /// Seconds until a retry may succeed.
        retry_after: u64,
    },
    /// Something went wrong inside the server; never shown to the client.
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Attached to the GraphQL error of an [`AppError::RateLimited`] as its source, so that
/// the HTTP edge learns of the refusal and its wait from the error's type, not by reading
/// its code back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

/// Shorthand for results carrying an [`AppError`].
pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    /// A [`AppError::BadUserInput`] about `field`.
    pub fn bad_input(field: &'static str, message: impl Into<String>) -> Self {
        Self::BadUserInput {
            field,
            message: message.into(),
        }
    }

    /// A [`AppError::Conflict`] about `field`.
    pub fn conflict(field: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            field: Some(field),
            message: message.into(),
        }
    }

    /// An [`AppError::Internal`] wrapping `err`, whose message only the logs see.
    pub fn internal(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Internal(err.into())
    }

    /// The stable code clients see for this error.
    pub fn code(&self) -> Code {
        match self {
            Self::Unauthenticated(_) => Code::Unauthenticated,
            Self::Forbidden(_) => Code::Forbidden,
            Self::BadUserInput { .. } => Code::BadUserInput,
            Self::NotFound(_) => Code::NotFound,
            Self::Conflict { .. } => Code::Conflict,
            Self::RateLimited { .. } => Code::RateLimited,
            Self::Internal(_) => Code::InternalServerError,
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> Self {
        Self::internal(err)
    }
}

impl From<sqlx::migrate::MigrateError> for AppError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        Self::internal(err)
    }
}

tokio::task_local! {
    /// The id of the HTTP request being served, for error messages and logs.
    pub static REQUEST_ID: String;
}

/// The current request id, if this task is serving a request.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(|id| id.clone()).ok()
}

/// Formats an error and all its sources on one line, skipping a source whose message
/// its parent already quotes.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let message = s.to_string();
        if !out.contains(&message) {
            out.push_str(": ");
            out.push_str(&message);
        }
        source = s.source();
    }
    out
}

impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        let code = err.code();
        match err {
            AppError::Internal(cause) => {
                let request_id = current_request_id();
                tracing::error!(
                    request_id = request_id.as_deref(),
                    error = %chain(cause.as_ref()),
                    "internal error"
                );
                let message = match &request_id {
                    Some(id) => format!("internal error (request id {id})"),
                    None => "internal error".to_owned(),
                };
                async_graphql::Error::new(message).extend_with(|_, e| {
                    e.set("code", code.as_str());
                    if let Some(id) = &request_id {
                        e.set("requestId", id.as_str());
                    }
                })
            }
            AppError::BadUserInput { field, message } => async_graphql::Error::new(message)
                .extend_with(|_, e| {
                    e.set("code", code.as_str());
                    e.set("field", field);
                }),
            AppError::Conflict {
                field: Some(field),
                message,
            } => async_graphql::Error::new(message).extend_with(|_, e| {
                e.set("code", code.as_str());
                e.set("field", field);
            }),
            AppError::RateLimited {
                message,
                retry_after,
            } => {
                let mut error = async_graphql::Error::new(message).extend_with(|_, e| {
                    e.set("code", code.as_str());
                    e.set("retryAfter", retry_after);
                });
                error.source = Some(std::sync::Arc::new(RetryAfter(retry_after)));
                error
            }
            other => async_graphql::Error::new(other.to_string())
                .extend_with(|_, e| e.set("code", code.as_str())),
        }
    }
}
