//! The GraphQL schema: roots, types and the extensions that shape errors.

pub mod context;
pub mod error_codes;
pub mod mutation;
pub mod query;
pub mod types;

use async_graphql::{EmptySubscription, Schema, SchemaBuilder};

pub use mutation::Mutation;
pub use query::Query;

use crate::auth::Auth;

/// The schema type served by quire.
pub type AppSchema = Schema<Query, Mutation, EmptySubscription>;

fn builder() -> SchemaBuilder<Query, Mutation, EmptySubscription> {
    Schema::build(Query, Mutation, EmptySubscription).extension(error_codes::ErrorCodes)
}

/// Builds the schema with the services its resolvers use.
pub fn schema(auth: Auth) -> AppSchema {
    builder().data(auth).finish()
}

/// The schema in SDL, as checked in at `schema.graphql`.
pub fn sdl() -> String {
    builder().finish().sdl()
}
