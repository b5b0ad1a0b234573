//! Running one GraphQL operation: what happens to a request around the executor, for
//! every transport.
//!
//! Before: its document is found (in full, or by hash), parsed once (or found among those
//! parsed lately, [`super::parsed`]), measured with its
//! fragments expanded and held to the limits on selections, aliases and nesting
//! ([`super::limits`]), and the operation it selects is checked (it exists, its required
//! variables are given). After: errors get their codes, response fields go back in selection
//! order, a newly sent persisted query is remembered once it proved valid, and the
//! operation is counted and timed.
//!
//! None of this is an executor extension: an extension wraps the resolution of every
//! field of every response, which costs more than all of the above together.

use std::{sync::Arc, time::Instant};

use async_graphql::{
    Data, Request, Response, Value, Variables,
    parser::types::{DocumentOperations, ExecutableDocument, OperationType},
};
use futures::{StreamExt, stream::BoxStream};

use super::{
    AppSchema,
    error_codes::{self, Unrunnable},
    fanout::{Fanout, Key, Viewer},
    field_order, introspection, limits, operations,
    parsed::Parsed,
    persisted::Documents,
    subscriptions,
};
use crate::{config::Limits, error::Code, telemetry::OperationNames};

/// Prepares and runs operations against the schema.
#[derive(Clone)]
pub struct Runner {
    schema: AppSchema,
    /// The same schema with the lower complexity limit of subscriptions, which run again
    /// for every event.
    subscriptions: AppSchema,
    documents: Arc<Documents>,
    /// The operation names that get metric series of their own.
    operation_names: Arc<OperationNames>,
    /// The subscriptions' shared executions.
    fanout: Arc<Fanout>,
    max_nodes: usize,
    max_aliases: usize,
    /// Whether `__schema` and `__type` may be asked for.
    introspection: bool,
    /// The documents parsed lately.
    parsed: Arc<Parsed>,
}

/// A request ready for the executor.
pub struct Ready {
    /// The request, its document parsed; add per-request data to it.
    pub request: Request,
    /// The type of the operation it runs.
    pub ty: OperationType,
    /// The operation's name, given or found in the document.
    pub name: Option<String>,
    document: Arc<ExecutableDocument>,
    register: Option<String>,
}

/// What the executor answered, and whether it got as far as executing.
pub struct Ran {
    /// The response, finished.
    pub response: Response,
    /// False when the request failed before execution (validation, variables).
    pub executed: bool,
}

impl Runner {
    /// A runner for `schema` (and `subscriptions`, the schema for subscriptions), with
    /// `documents`, the limits on documents, and room for `metric_names` operation names
    /// in the metrics besides those of the trusted documents; `introspection` says whether
    /// documents may ask for the schema.
    pub fn new(
        schema: AppSchema,
        subscriptions: AppSchema,
        documents: Arc<Documents>,
        limits: &Limits,
        metric_names: usize,
        introspection: bool,
    ) -> Self {
        Self {
            schema,
            subscriptions,
            operation_names: Arc::new(OperationNames::new(
                metric_names,
                documents.operation_names(),
            )),
            documents,
            fanout: Arc::default(),
            max_nodes: limits.max_nodes,
            max_aliases: limits.max_aliases,
            introspection,
            parsed: Arc::default(),
        }
    }

    /// Finds and parses the request's document and checks what can be checked before
    /// execution.
    pub fn prepare(&self, mut request: Request) -> Result<Ready, Unrunnable> {
        let resolved = self
            .documents
            .resolve(&request.query, &request.extensions.0)
            .map_err(Unrunnable::from)?;
        request.query = resolved.query;
        // Parsed once for the executor, and kept to put the response's fields in order;
        // not at all when the same text was parsed lately.
        let document = match self.parsed.get(&request.query) {
            Some(document) => {
                request.set_parsed_query(ExecutableDocument::clone(&document));
                document
            }
            None => {
                // Before the parser sees it, and before anything else walks it: see
                // `limits`.
                limits::check_text(&request.query)
                    .map_err(|error| Unrunnable::coded(error, Code::GraphqlParseFailed))?;
                let document = Arc::new(
                    request
                        .parsed_query()
                        .cloned()
                        .map_err(|error| Unrunnable::coded(error, Code::GraphqlParseFailed))?,
                );
                self.parsed.keep(&request.query, document.clone());
                document
            }
        };
        limits::check(
            &document,
            &request.variables,
            self.max_nodes,
            self.max_aliases,
        )
        .map_err(|error| Unrunnable::coded(error, Code::GraphqlValidationFailed))?;
        if !self.introspection {
            introspection::refuse(&document)?;
        }
        let (ty, name) = operation_type(
            &document,
            request.operation_name.as_deref(),
            &request.variables,
        )?;
        Ok(Ready {
            request,
            ty,
            name,
            document,
            register: resolved.register,
        })
    }

    /// Executes a query or mutation.
    pub async fn execute(&self, ready: Ready) -> Ran {
        let Ready {
            request,
            name,
            document,
            register,
            ..
        } = ready;
        operations::name_span(name.as_deref());
        // Only a text sent with its hash is kept, to be remembered if it proves valid.
        let register = register.map(|hash| (hash, request.query.clone()));
        let started = Instant::now();
        let mut response = self.schema.execute(request).await;
        let executed = error_codes::executed(&response);
        error_codes::finish(&mut response, executed);
        if executed {
            field_order::reorder_response(&mut response, &document, name.as_deref());
            if let Some((hash, text)) = register {
                self.documents.remember(hash, &text);
            }
            operations::record(&self.operation_names, name.as_deref(), started, &response);
        }
        Ran { response, executed }
    }

    /// Runs a subscription for `viewer`: its responses, with their errors coded. Every
    /// subscription with the same document, operation and variables for the same viewer
    /// shares one execution (see [`super::fanout`]).
    pub fn subscribe(
        &self,
        ready: Ready,
        session: Arc<Data>,
        viewer: Viewer,
    ) -> BoxStream<'static, Response> {
        let Ready {
            request,
            document,
            name,
            ..
        } = ready;
        let variables = serde_json::to_string(&request.variables).unwrap_or_default();
        let key = Key::new(&request.query, name.as_deref(), &variables, viewer);
        let replay = subscriptions::starts_with_current_state(&document, name.as_deref());
        let schema = self.subscriptions.clone();
        self.fanout.join(key, replay, move || {
            schema
                .execute_stream_with_session_data(request, session)
                .map(|mut response| {
                    let executed = error_codes::executed(&response);
                    error_codes::finish(&mut response, executed);
                    response
                })
                .boxed()
        })
    }
}

/// The type and name of the operation a request selects from its document, or why it
/// cannot run: no operation is selected, or a required variable has no value (which the
/// executor would only find out once running).
pub fn operation_type(
    document: &ExecutableDocument,
    name: Option<&str>,
    variables: &Variables,
) -> Result<(OperationType, Option<String>), Unrunnable> {
    let unknown = |name: &str| {
        Unrunnable::new(
            Code::BadRequest,
            format!("the document has no operation named \"{name}\""),
        )
    };
    let (operation, name) = match (&document.operations, name) {
        (DocumentOperations::Single(op), None) => (op, None),
        (DocumentOperations::Single(_), Some(name)) => return Err(unknown(name)),
        (DocumentOperations::Multiple(ops), Some(name)) => (
            ops.get(name).ok_or_else(|| unknown(name))?,
            Some(name.to_owned()),
        ),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops
            .iter()
            .next()
            .map(|(name, op)| (op, Some(name.to_string())))
            .ok_or_else(|| Unrunnable::new(Code::BadRequest, "the document holds no operation"))?,
        (DocumentOperations::Multiple(_), None) => {
            return Err(Unrunnable::new(
                Code::BadRequest,
                "the document holds several operations: name one in operationName",
            ));
        }
    };
    for definition in &operation.node.variable_definitions {
        let definition = &definition.node;
        let given = variables
            .get(&definition.name.node)
            .is_some_and(|v| *v != Value::Null);
        if !definition.var_type.node.nullable && definition.default_value.is_none() && !given {
            return Err(Unrunnable::new(
                Code::GraphqlValidationFailed,
                format!(
                    "Variable \"${}\" of required type \"{}\" was not provided.",
                    definition.name.node, definition.var_type.node
                ),
            ));
        }
    }
    Ok((operation.node.ty, name))
}
