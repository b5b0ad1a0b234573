//! Refuses operations that would cost too much, before anything runs: too deep and too
//! costly (async-graphql's own checks, set up in [`super::schema`]) and too many aliases
//! ([`check_aliases`]), since aliases let one request repeat a field many times over.

use async_graphql::{
    Name, Pos, ServerError,
    parser::types::{ExecutableDocument, Selection, SelectionSet},
};

use super::error_codes::{VALIDATION_FAILED, with_code};

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

/// Refuses a document with more than `limit` aliased fields in an operation.
pub fn check_aliases(document: &ExecutableDocument, limit: usize) -> Result<(), ServerError> {
    if count(document, limit) <= limit {
        return Ok(());
    }
    let error = ServerError::new(
        format!("the operation uses more than {limit} aliases, the most allowed"),
        Some(Pos { line: 1, column: 1 }),
    );
    Err(with_code(error, VALIDATION_FAILED))
}
