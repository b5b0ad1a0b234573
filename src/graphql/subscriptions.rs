//! Subscriptions, served over WebSocket: new posts, and the votes of one post.
//!
//! Events come from the application's event bus, by topic (new posts, one post's
//! changes), and are sent only to subscribers who may see them: a draft goes to nobody but
//! its author.

use async_graphql::{
    Context, ID, Result, Subscription,
    parser::types::{DocumentOperations, ExecutableDocument, Selection, SelectionSet},
};
use futures::{Stream, StreamExt, future};

use super::{
    context::{auth, identity, parse_id, posts},
    guards::SignedIn,
    types::Post,
};
use crate::{
    error::AppError,
    events::{Event, Topic},
};

/// The subscription root.
#[derive(Default)]
pub struct SubscriptionRoot;

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// Each post as it is published: written as published, or a draft published later.
    #[graphql(guard = "SignedIn")]
    async fn post_created(&self, ctx: &Context<'_>) -> impl Stream<Item = Post> + use<> {
        auth(ctx)
            .events
            .subscribe(Topic::NewPosts)
            .filter_map(|event| {
                future::ready(match event {
                    Event::PostPublished(row) if row.published => Some(Post::from((*row).clone())),
                    _ => None,
                })
            })
    }

    /// The post with id `id` as it is now, then each time its vote count changes. A
    /// draft can be followed by its author alone: NOT_FOUND for anyone else, as when
    /// there is no such post. The subscription ends when the post is deleted, or becomes
    /// a draft the caller did not write.
    #[graphql(guard = "SignedIn")]
    async fn post_voted(&self, ctx: &Context<'_>, id: ID) -> Result<impl Stream<Item = Post>> {
        let post_id = parse_id("id", &id)?;
        let viewer = identity(ctx).await?.user.id;
        let posts = posts(ctx);
        // Subscribed before the post is read, so that no change after the reading is
        // missed.
        let events = auth(ctx).events.subscribe(Topic::Post(post_id));
        let Some(row) = posts.for_subscriber(viewer, post_id).await? else {
            return Err(AppError::NotFound("no such post".to_owned()).into());
        };
        let count = row.vote_count;
        let current = Post::from(row);
        let changes = events
            .filter_map(move |event| {
                future::ready(match event {
                    Event::PostChanged { post_id: p, now } if p == post_id => Some(now),
                    _ => None,
                })
            })
            .scan(count, move |last, now| {
                let next = match now {
                    // Deleted, or a draft the caller may no longer see: nothing more.
                    None => None,
                    Some(row) if !row.visible_to(viewer, false) => None,
                    Some(row) if row.vote_count != *last => {
                        *last = row.vote_count;
                        Some(Some(Post::from((*row).clone())))
                    }
                    Some(_) => Some(None),
                };
                future::ready(next)
            })
            .filter_map(future::ready);
        Ok(futures::stream::once(future::ready(current)).chain(changes))
    }
}

/// The subscriptions whose first message is the current state rather than a change.
const STARTING_WITH_THE_CURRENT_STATE: &[&str] = &["postVoted"];

/// Whether the operation named `name` in `document` subscribes to a field whose first
/// message is the current state: a subscriber joining one already running is then sent
/// its latest message first.
pub fn starts_with_current_state(document: &ExecutableDocument, name: Option<&str>) -> bool {
    let operation = match (&document.operations, name) {
        (DocumentOperations::Single(op), _) => Some(op),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name),
        (DocumentOperations::Multiple(ops), None) => ops.values().next(),
    };
    operation.is_some_and(|op| selects_current_state(document, &op.node.selection_set.node, 0))
}

fn selects_current_state(document: &ExecutableDocument, set: &SelectionSet, depth: usize) -> bool {
    // Root fields only; fragments there are followed, within the nesting limit.
    depth <= super::limits::MAX_NESTING
        && set.items.iter().any(|item| match &item.node {
            Selection::Field(field) => {
                STARTING_WITH_THE_CURRENT_STATE.contains(&field.node.name.node.as_str())
            }
            Selection::InlineFragment(inline) => {
                selects_current_state(document, &inline.node.selection_set.node, depth + 1)
            }
            Selection::FragmentSpread(spread) => document
                .fragments
                .get(&spread.node.fragment_name.node)
                .is_some_and(|f| {
                    selects_current_state(document, &f.node.selection_set.node, depth + 1)
                }),
        })
}
