//! Running one GraphQL operation: what happens to a request around the executor, for
//! every transport.
//!
//! Before: its document is found (in full, or by hash), parsed once, held to the alias
//! limit, and the operation it selects is checked (it exists, its required variables
//! are given). After: errors get their codes, response fields go back in selection
//! order, a newly sent persisted query is remembered once it proved valid, and the
//! operation is counted and timed.
//!
//! None of this is an executor extension: an extension wraps the resolution of every
//! field of every response, which costs more than all of the above together.

use std::{sync::Arc, time::Instant};

use async_graphql::{
    Data, Request, Response,
    parser::types::{ExecutableDocument, OperationType},
};
use futures::{StreamExt, stream::BoxStream};

use super::{
    AppSchema,
    documents::{Documents, Unrunnable, operation_type},
    error_codes, field_order, limits, operations,
};

/// Prepares and runs operations against the schema.
#[derive(Clone)]
pub struct Runner {
    schema: AppSchema,
    documents: Arc<Documents>,
    max_aliases: usize,
}

/// A request ready for the executor.
pub struct Ready {
    /// The request, its document parsed; add per-request data to it.
    pub request: Request,
    /// The type of the operation it runs.
    pub ty: OperationType,
    /// The operation's name, given or found in the document.
    pub name: Option<String>,
    document: ExecutableDocument,
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
    /// A runner for `schema`, with `documents` and at most `max_aliases` aliases.
    pub fn new(schema: AppSchema, documents: Arc<Documents>, max_aliases: usize) -> Self {
        Self {
            schema,
            documents,
            max_aliases,
        }
    }

    /// Finds and parses the request's document and checks what can be checked before
    /// execution.
    pub fn prepare(&self, mut request: Request) -> Result<Ready, Unrunnable> {
        let resolved = self
            .documents
            .resolve(&request.query, &request.extensions.0)
            .map_err(|refusal| Unrunnable {
                status: Some(refusal.status()),
                ..Unrunnable::new(refusal.code(), refusal.message())
            })?;
        request.query = resolved.query;
        // Parsed once for the executor, and kept to put the response's fields in order.
        let document = request
            .parsed_query()
            .cloned()
            .map_err(|error| Unrunnable {
                error: Box::new(error_codes::with_code(error, error_codes::PARSE_FAILED)),
                status: None,
            })?;
        limits::check_aliases(&document, self.max_aliases).map_err(|error| Unrunnable {
            error: Box::new(error),
            status: None,
        })?;
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
        let label = operations::name_span(name.as_deref());
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
            operations::record(label, started, &response);
        }
        Ran { response, executed }
    }

    /// Runs a subscription: its responses, with their errors coded.
    pub fn subscribe(&self, ready: Ready, session: Arc<Data>) -> BoxStream<'static, Response> {
        let Ready { request, .. } = ready;
        self.schema
            .execute_stream_with_session_data(request, session)
            .map(|mut response| {
                let executed = error_codes::executed(&response);
                error_codes::finish(&mut response, executed);
                response
            })
            .boxed()
    }
}
