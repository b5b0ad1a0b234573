//! Running a connection's subscriptions: each one's document found and checked to be a
//! subscription, held to the connection's and the account's counts, and joined to the
//! execution it shares with every subscription like it ([`crate::graphql::fanout`]).

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use async_graphql::{Data, Executor, Response, ServerError, parser::types::OperationType};
use futures::{StreamExt, future, stream::BoxStream};

use crate::{
    error::Code,
    graphql::{context::CredentialBudget, error_codes::Unrunnable, fanout::Viewer, runner::Ready},
    http::AppState,
};

/// Runs subscriptions for one connection: finds each one's document, checks that it is a
/// subscription, and gives it a loader of its own.
#[derive(Clone)]
pub(super) struct SubscriptionExecutor {
    pub(super) state: AppState,
    /// How many subscriptions of the connection are running.
    pub(super) active: Arc<AtomicUsize>,
}

/// The most subscriptions one connection may run at once.
const MAX_SUBSCRIPTIONS: usize = 100;

/// Counts a running subscription until it is dropped.
struct Running(Arc<AtomicUsize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl SubscriptionExecutor {
    fn prepare(&self, request: async_graphql::Request) -> Result<Ready, ServerError> {
        match self.state.runner.prepare(request) {
            Ok(ready) if ready.ty == OperationType::Subscription => Ok(ready),
            Ok(_) => Err(*Unrunnable::new(
                Code::BadRequest,
                "only subscriptions run over WebSocket; send queries and mutations over HTTP",
            )
            .error),
            Err(unrunnable) => Err(*unrunnable.error),
        }
    }
}

impl Executor for SubscriptionExecutor {
    async fn execute(&self, _request: async_graphql::Request) -> Response {
        let error = ServerError::new("only subscriptions run over WebSocket", None);
        Response::from_errors(vec![error])
    }

    fn execute_stream(
        &self,
        request: async_graphql::Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        if self.active.fetch_add(1, Ordering::AcqRel) >= MAX_SUBSCRIPTIONS {
            self.active.fetch_sub(1, Ordering::AcqRel);
            let error = *Unrunnable::new(
                Code::BadRequest,
                format!("a connection may run at most {MAX_SUBSCRIPTIONS} subscriptions at once"),
            )
            .error;
            return futures::stream::once(future::ready(Response::from_errors(vec![error])))
                .boxed();
        }
        let running = Running(self.active.clone());
        let refused = |error: ServerError| {
            futures::stream::once(future::ready(Response::from_errors(vec![error]))).boxed()
        };
        let session = session_data.unwrap_or_default();
        // Set at `connection_init`, which comes before any subscription.
        let viewer = session
            .get(&std::any::TypeId::of::<Viewer>())
            .and_then(|viewer| viewer.downcast_ref::<Viewer>().copied());
        let Some(viewer) = viewer else {
            return refused(ServerError::new("the connection is not initialised", None));
        };
        let Some(mine) = self.state.sockets.subscribe(viewer.user_id) else {
            return refused(
                *Unrunnable::new(
                    Code::BadRequest,
                    format!(
                        "an account may run at most {} subscriptions at once",
                        self.state.sockets.subscriptions_per_user()
                    ),
                )
                .error,
            );
        };
        match self.prepare(request) {
            Ok(mut ready) => {
                let data = &mut ready.request.data;
                data.insert(self.state.stream_loader.clone());
                data.insert(CredentialBudget::default());
                self.state
                    .runner
                    .subscribe(ready, session, viewer)
                    .map(move |response| {
                        let _counted = (&running, &mine);
                        response
                    })
                    .boxed()
            }
            Err(error) => refused(error),
        }
    }
}
