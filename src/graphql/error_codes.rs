//! Gives every error a stable `extensions.code`, including the errors async-graphql
//! raises itself before or while executing an operation.

use async_graphql::{Response, ServerError, Value};

use super::persisted;
use crate::error::Code;

/// Adds `code` to `error` unless it has one.
pub fn with_code(mut error: ServerError, code: Code) -> ServerError {
    let ext = error.extensions.get_or_insert_with(Default::default);
    if ext.get("code").is_none() {
        ext.set("code", code.as_str());
    }
    error
}

/// A request that cannot run, refused before execution: its error, its code, and, when
/// a persisted query was the trouble, why (from which the HTTP edge picks a status).
#[derive(Debug)]
pub struct Unrunnable {
    /// The error to answer with, carrying `code`.
    pub error: Box<ServerError>,
    /// The error's code.
    pub code: Code,
    /// Why the persisted query or trusted document could not be used, if that is why.
    pub persisted: Option<persisted::Failure>,
}

impl Unrunnable {
    /// An error with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self::coded(ServerError::new(message, None), code)
    }

    /// `error`, given `code` unless it has one.
    pub fn coded(error: ServerError, code: Code) -> Self {
        Self {
            error: Box::new(with_code(error, code)),
            code,
            persisted: None,
        }
    }
}

impl From<persisted::Failure> for Unrunnable {
    fn from(failure: persisted::Failure) -> Self {
        Self {
            persisted: Some(failure.clone()),
            ..Self::new(failure.code(), failure.message())
        }
    }
}

/// Whether the executor got as far as executing the operation: then there is data, or
/// an error raised at a field (which has a path). An error before execution (validation,
/// variables, limits) has neither.
pub fn executed(response: &Response) -> bool {
    !matches!(response.data, Value::Null) || response.errors.iter().any(|e| !e.path.is_empty())
}

/// The most errors an answer from before execution lists. Validation reports every fault
/// it finds, and a document can be written to hold one in every few bytes (seventy
/// thousand unused variables fit in a megabyte, and their errors in ten); the rest are
/// counted in one last error.
pub const MAX_ERRORS: usize = 100;

/// Codes the errors the executor raised itself: those before execution failed
/// validation; any other uncoded error is unexpected, and labelled as such (resolvers
/// return application errors, which carry their code already). Before execution, at most
/// [`MAX_ERRORS`] are kept.
pub fn finish(response: &mut Response, executed: bool) {
    let code = if executed {
        Code::InternalServerError
    } else {
        Code::GraphqlValidationFailed
    };
    let mut errors = std::mem::take(&mut response.errors);
    if !executed && errors.len() > MAX_ERRORS {
        let left_out = errors.len() - MAX_ERRORS;
        errors.truncate(MAX_ERRORS);
        errors.push(ServerError::new(
            format!("{left_out} more errors like these were left out"),
            None,
        ));
    }
    response.errors = errors.into_iter().map(|e| with_code(e, code)).collect();
}
