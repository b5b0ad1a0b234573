//! The GraphQL schema: roots, types, guards, loaders and the extensions that shape
//! errors. Each concern contributes a part of the query and mutation roots; the
//! subscription root is its own.

pub mod accounts;
pub mod connection;
pub mod context;
pub mod error_codes;
pub mod fanout;
pub mod field_order;
pub mod guards;
pub mod introspection;
pub mod limits;
pub mod loaders;
pub mod operations;
pub mod parsed;
pub mod persisted;
pub mod posts;
pub mod runner;
pub mod subscriptions;
pub mod types;
pub mod users;

use async_graphql::{MergedObject, Schema, SchemaBuilder};

use subscriptions::SubscriptionRoot;

use crate::{
    auth::Auth,
    config::{Exposure, Limits},
    posts::Posts,
};

/// Read operations. Every query needs a signed-in caller.
#[derive(MergedObject, Default)]
pub struct Query(accounts::AccountQuery, users::UserQuery, posts::PostQuery);

/// Write operations: accounts and sessions, user administration, posts and votes.
#[derive(MergedObject, Default)]
pub struct Mutation(
    accounts::AccountMutation,
    users::UserMutation,
    posts::PostMutation,
);

/// The schema type served by quire.
pub type AppSchema = Schema<Query, Mutation, SubscriptionRoot>;

fn builder() -> SchemaBuilder<Query, Mutation, SubscriptionRoot> {
    Schema::build(Query::default(), Mutation::default(), SubscriptionRoot)
}

/// Builds the schema with the services its resolvers use, the limits on operations, and
/// introspection and suggestions only where they are wanted. `max_complexity` is the
/// limit's own, or the lower one of subscriptions.
pub fn schema(
    auth: Auth,
    posts: Posts,
    limits: &Limits,
    max_complexity: usize,
    exposure: &Exposure,
) -> AppSchema {
    let mut builder = builder();
    if !exposure.introspection {
        builder = builder.disable_introspection().disable_suggestions();
    }
    builder
        .limit_depth(limits.max_depth)
        .limit_complexity(max_complexity)
        .data(auth)
        .data(posts)
        .finish()
}

/// The schema in SDL, as checked in at `schema.graphql`.
pub fn sdl() -> String {
    builder().finish().sdl()
}
