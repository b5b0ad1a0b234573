//! Refuses operations that would cost too much, before anything runs: too deep and too
//! costly (async-graphql's own checks, set up in [`super::schema`]) and too many aliases
//! (this extension), since aliases let one request repeat a field many times over.

use std::sync::Arc;

use async_graphql::{
    ErrorExtensionValues, Pos, ServerError, ServerResult, Variables,
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

fn aliases(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) => {
                usize::from(f.node.alias.is_some()) + aliases(&f.node.selection_set.node)
            }
            Selection::InlineFragment(i) => aliases(&i.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

/// Aliases in every operation and fragment of a document.
fn count(document: &ExecutableDocument) -> usize {
    let in_operations: usize = document
        .operations
        .iter()
        .map(|(_, op)| aliases(&op.node.selection_set.node))
        .sum();
    let in_fragments: usize = document
        .fragments
        .values()
        .map(|f| aliases(&f.node.selection_set.node))
        .sum();
    in_operations + in_fragments
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
        let found = count(&document);
        if found > self.0 {
            let mut error = ServerError::new(
                format!(
                    "the query uses {found} aliases; at most {} are allowed",
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
