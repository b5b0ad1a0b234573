//! Counts and times GraphQL operations by name and outcome, and names the operation on
//! the request's log lines.

use std::time::Instant;

use async_graphql::Response;

use crate::telemetry::OperationNames;

/// Names the operation on the current span, for the log lines that follow, and returns
/// its label for the metrics.
pub fn name_span(names: &OperationNames, operation_name: Option<&str>) -> String {
    let operation = names.label(operation_name);
    tracing::Span::current().record("operation", operation.as_str());
    operation
}

/// Records one executed operation, started at `started`.
pub fn record(operation: String, started: Instant, response: &Response) {
    let outcome = if response.errors.is_empty() {
        "ok"
    } else {
        "error"
    };
    ::metrics::counter!(
        "graphql_operations_total",
        "operation" => operation.clone(),
        "outcome" => outcome
    )
    .increment(1);
    ::metrics::histogram!("graphql_operation_duration_seconds", "operation" => operation)
        .record(started.elapsed().as_secs_f64());
}
