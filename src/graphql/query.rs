//! The query root.

use async_graphql::{Context, Object, Result};

use super::{
    context::{auth, identity},
    types::{Session, User},
};

/// The query root.
#[derive(Default)]
pub struct Query;

/// Read operations. Every query needs a signed-in caller.
#[Object]
impl Query {
    /// The signed-in caller.
    async fn me(&self, ctx: &Context<'_>) -> Result<User> {
        Ok(identity(ctx).await?.user.clone().into())
    }

    /// The caller's active sessions, newest first.
    async fn sessions(&self, ctx: &Context<'_>) -> Result<Vec<Session>> {
        let who = identity(ctx).await?;
        let rows = auth(ctx).sessions(who).await?;
        Ok(rows
            .into_iter()
            .map(|row| Session::new(row, who.session_id))
            .collect())
    }
}
