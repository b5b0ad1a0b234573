//! Fields that share a response name but differ: found first here, and reported once.
//!
//! async-graphql 7.2's `OverlappingFieldsCanBeMerged` rule looks at every selection set of
//! the document with the fragments spread at its level, and reports each conflict it
//! meets, in every set that reaches it. A fragment of two conflicting fields, reached
//! through thirty levels of inline fragments from a hundred places, makes thousands of
//! errors, each holding the fields' names: validation then builds gigabytes of messages
//! before anything can refuse the request. [`find`] walks the same sets with the same
//! rule (the same key, type condition and response name, and the same comparison of
//! names and arguments), in time bounded by what [`super::measure`] allowed, and refuses
//! the document at the first conflict; validation then finds none.

use std::collections::{HashMap, HashSet};

use async_graphql::{
    Positioned,
    parser::types::{ExecutableDocument, Field, Selection, SelectionSet},
};

use super::Exceeded;

/// Refuses `document` at its first pair of fields with one response name that differ in
/// name or arguments, within one type condition.
pub(super) fn find(document: &ExecutableDocument) -> Result<(), Exceeded> {
    for (_, operation) in document.operations.iter() {
        every_set(document, &operation.node.selection_set)?;
    }
    for fragment in document.fragments.values() {
        every_set(document, &fragment.node.selection_set)?;
    }
    Ok(())
}

/// Looks for conflicts in `set` and in every set within it, as validation visits them:
/// each where it is written, fragments not followed.
fn every_set(
    document: &ExecutableDocument,
    set: &Positioned<SelectionSet>,
) -> Result<(), Exceeded> {
    if set.node.items.is_empty() {
        return Ok(());
    }
    Level::default().find(document, None, &set.node)?;
    for item in &set.node.items {
        match &item.node {
            Selection::Field(field) => every_set(document, &field.node.selection_set)?,
            Selection::InlineFragment(inline) => every_set(document, &inline.node.selection_set)?,
            Selection::FragmentSpread(_) => {}
        }
    }
    Ok(())
}

/// The fields of one set's level, with the fragments spread there.
#[derive(Default)]
struct Level<'a> {
    outputs: HashMap<(Option<&'a str>, &'a str), &'a Positioned<Field>>,
    visited: HashSet<&'a str>,
}

impl<'a> Level<'a> {
    fn find(
        &mut self,
        document: &'a ExecutableDocument,
        on_type: Option<&'a str>,
        set: &'a SelectionSet,
    ) -> Result<(), Exceeded> {
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => {
                    let name = field.node.response_key().node.as_str();
                    self.add(on_type, name, field)?;
                }
                Selection::InlineFragment(inline) => {
                    let on_type = inline
                        .node
                        .type_condition
                        .as_ref()
                        .map(|c| c.node.on.node.as_str());
                    self.find(document, on_type, &inline.node.selection_set.node)?;
                }
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    if let Some(fragment) = document.fragments.get(name)
                        && self.visited.insert(name.as_str())
                    {
                        let on_type = Some(fragment.node.type_condition.node.on.node.as_str());
                        self.find(document, on_type, &fragment.node.selection_set.node)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn add(
        &mut self,
        on_type: Option<&'a str>,
        name: &'a str,
        field: &'a Positioned<Field>,
    ) -> Result<(), Exceeded> {
        let Some(earlier) = self.outputs.get(&(on_type, name)) else {
            self.outputs.insert((on_type, name), field);
            return Ok(());
        };
        let same =
            earlier.node.name.node == field.node.name.node
                && earlier.node.arguments.len() == field.node.arguments.len()
                && earlier.node.arguments.iter().all(|(argument, value)| {
                    field.node.get_argument(&argument.node) == Some(value)
                });
        if same {
            Ok(())
        } else {
            Err(Exceeded::Conflict(name.to_owned(), earlier.pos, field.pos))
        }
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::parse_query;

    use super::*;

    fn conflicts(query: &str) -> bool {
        find(&parse_query(query).unwrap()).is_err()
    }

    #[test]
    fn differing_fields_under_one_name_are_found() {
        assert!(conflicts("{ me { x: id x: username } }"));
        assert!(conflicts(
            "{ posts(first: 1) { __typename } posts(first: 2) { __typename } }"
        ));
        assert!(conflicts(
            "{ me { ...A ...B } } fragment A on User { x: id } fragment B on User { x: email }"
        ));
        assert!(conflicts(
            "{ me { ... { ... { ...A ...B } } } } \
             fragment A on User { x: id } fragment B on User { x: email }"
        ));
    }

    #[test]
    fn fields_that_agree_or_differ_by_type_condition_are_not() {
        assert!(!conflicts(
            "{ me { id id ...A } } fragment A on User { id }"
        ));
        assert!(!conflicts(
            "{ posts(first: 1) { __typename } posts(first: 1) { __typename } }"
        ));
        // Different type conditions are different keys, as validation has them.
        assert!(!conflicts(
            "{ me { ... on User { x: id } ... on Post { x: title } } }"
        ));
    }
}
