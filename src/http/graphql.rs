//! `POST /graphql` and `GET /graphql`: GraphQL over HTTP, and GraphiQL for browsers.

use async_graphql::http::GraphiQLSource;
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::{
    extract::{FromRequest, Request, State},
    http::{HeaderMap, header},
    response::{Html, IntoResponse, Response},
};

use super::{AppState, request_id::RequestId};
use crate::{
    auth::{Caller, ClientInfo},
    error::REQUEST_ID,
};

/// Executes a GraphQL request sent as a POST body.
pub async fn post(
    State(state): State<AppState>,
    axum::Extension(RequestId(id)): axum::Extension<RequestId>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> GraphQLResponse {
    execute(&state, id, &headers, request.into_inner()).await
}

/// Serves GraphiQL to browsers, and executes a GraphQL request sent in the URL otherwise.
pub async fn get(State(state): State<AppState>, request: Request) -> Response {
    let headers = request.headers().clone();
    if wants_html(&headers) {
        return Html(
            GraphiQLSource::build()
                .endpoint("/graphql")
                .title("quire GraphiQL")
                .finish(),
        )
        .into_response();
    }
    let id = request
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0)
        .unwrap_or_else(uuid::Uuid::new_v4);
    match GraphQLRequest::<async_graphql_axum::rejection::GraphQLRejection>::from_request(
        request, &state,
    )
    .await
    {
        Ok(request) => execute(&state, id, &headers, request.into_inner())
            .await
            .into_response(),
        Err(rejection) => rejection.into_response(),
    }
}

async fn execute(
    state: &AppState,
    request_id: uuid::Uuid,
    headers: &HeaderMap,
    request: async_graphql::Request,
) -> GraphQLResponse {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let client = ClientInfo {
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    let request = request
        .data(Caller::from_authorization(authorization))
        .data(client);
    REQUEST_ID
        .scope(request_id, state.schema.execute(request))
        .await
        .into()
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}
