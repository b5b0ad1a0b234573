//! Counts and times GraphQL operations by name and outcome, and names the operation on
//! the request's log lines.

use std::time::Instant;

use async_graphql::Response;

use crate::telemetry::OperationNames;

/// Names the operation on the current span, for the log lines that follow: its name as
/// the client gave it, up to 64 bytes.
pub fn name_span(operation_name: Option<&str>) {
    let name = operation_name.unwrap_or("anonymous");
    let mut end = name.len().min(64);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    tracing::Span::current().record("operation", &name[..end]);
}

/// Records one executed operation named `name`, started at `started`, under its label in
/// `names`.
pub fn record(names: &OperationNames, name: Option<&str>, started: Instant, response: &Response) {
    let clean = response.errors.is_empty();
    let operation = names.label(name, clean);
    let outcome = if clean { "ok" } else { "error" };
    ::metrics::counter!(
        "graphql_operations_total",
        "operation" => operation.clone(),
        "outcome" => outcome
    )
    .increment(1);
    ::metrics::histogram!("graphql_operation_duration_seconds", "operation" => operation)
        .record(started.elapsed().as_secs_f64());
}
