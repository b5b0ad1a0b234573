//! Gives every error a stable `extensions.code`, including the errors async-graphql
//! raises itself before or while executing an operation.

use async_graphql::{Response, ServerError, Value};

use crate::error::Code;

/// The query text is not valid GraphQL.
pub const PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
/// The operation does not fit the schema.
pub const VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";

/// Adds `code` to `error` unless it has one.
pub fn with_code(mut error: ServerError, code: &str) -> ServerError {
    let ext = error.extensions.get_or_insert_with(Default::default);
    if ext.get("code").is_none() {
        ext.set("code", code);
    }
    error
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
        Code::InternalServerError.as_str()
    } else {
        VALIDATION_FAILED
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
