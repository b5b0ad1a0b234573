//! Refuses operations that would cost too much, before anything runs: too deep and too
//! costly (async-graphql's own checks, set up in [`super::schema`]) and too many aliases
//! (this extension), since aliases let one request repeat a field many times over.

use std::sync::Arc;

use async_graphql::{
    ErrorExtensionValues, Name, Pos, ServerError, ServerResult, Variables,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery},
    parser::types::{ExecutableDocument, Selection, SelectionSet},
};

use super::error_codes::VALIDATION_FAILED;

/// The extension factory: at most this many aliased fields in a document.
pub struct AliasLimit(pub usize);

impl ExtensionFactory for AliasLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AliasLimitExtension(self.0))
    }
}

struct AliasLimitExtension(usize);

/// Counts the aliases one operation executes, each fragment spread counted where it is
/// spread (as often as it is), and stops as soon as the count passes `limit`: spreading
/// can multiply a fragment many times over. A fragment spread within itself, which
/// validation refuses later, is not followed.
fn aliases(
    set: &SelectionSet,
    document: &ExecutableDocument,
    limit: usize,
    within: &mut Vec<Name>,
) -> usize {
    let mut found = 0;
    for item in &set.items {
        found += match &item.node {
            Selection::Field(f) => {
                usize::from(f.node.alias.is_some())
                    + aliases(
                        &f.node.selection_set.node,
                        document,
                        limit - found.min(limit),
                        within,
                    )
            }
            Selection::InlineFragment(i) => aliases(
                &i.node.selection_set.node,
                document,
                limit - found.min(limit),
                within,
            ),
            Selection::FragmentSpread(spread) => {
                let name = &spread.node.fragment_name.node;
                match document.fragments.get(name) {
                    Some(fragment) if !within.contains(name) => {
                        within.push(name.clone());
                        let n = aliases(
                            &fragment.node.selection_set.node,
                            document,
                            limit - found.min(limit),
                            within,
                        );
                        within.pop();
                        n
                    }
                    _ => 0,
                }
            }
        };
        if found > limit {
            break;
        }
    }
    found
}

/// The most aliases any operation of the document executes (past `limit`, any count
/// above it).
fn count(document: &ExecutableDocument, limit: usize) -> usize {
    document
        .operations
        .iter()
        .map(|(_, op)| {
            aliases(
                &op.node.selection_set.node,
                document,
                limit,
                &mut Vec::new(),
            )
        })
        .max()
        .unwrap_or(0)
}

#[async_trait::async_trait]
impl Extension for AliasLimitExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        if count(&document, self.0) > self.0 {
            let mut error = ServerError::new(
                format!(
                    "the operation uses more than {} aliases, the most allowed",
                    self.0
                ),
                Some(Pos { line: 1, column: 1 }),
            );
            let mut extensions = ErrorExtensionValues::default();
            extensions.set("code", VALIDATION_FAILED);
            error.extensions = Some(extensions);
            return Err(error);
        }
        Ok(document)
    }
}
