//! Counts and times GraphQL operations by name and outcome, and names the operation on
//! the request's log lines.

use std::{sync::Arc, time::Instant};

use async_graphql::{
    Response,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute},
};

use crate::telemetry::operation_label;

/// The extension factory.
pub struct OperationMetrics;

impl ExtensionFactory for OperationMetrics {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(OperationMetricsExtension)
    }
}

struct OperationMetricsExtension;

#[async_trait::async_trait]
impl Extension for OperationMetricsExtension {
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let operation = operation_label(operation_name);
        tracing::Span::current().record("operation", operation.as_str());
        let started = Instant::now();
        let response = next.run(ctx, operation_name).await;
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
        response
    }
}
