//! Keeps response fields in the order the query asked for them.
//!
//! The GraphQL specification asks that a response's fields follow the order of the
//! selection set ("Serialized Map Ordering"), which people reading responses, snapshot
//! tests and diffs rely on. The executor resolves sibling fields concurrently and records
//! them as they finish, so this extension keeps the parsed document and, after execution,
//! rebuilds each object of the response in selection order (following fragments and
//! aliases). It moves values and never copies them.

use std::sync::{Arc, Mutex};

use async_graphql::{
    Name, Response, ServerResult, Value, Variables,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery},
    indexmap::IndexMap,
    parser::types::{DocumentOperations, ExecutableDocument, Selection, SelectionSet},
};

/// The extension factory.
pub struct FieldOrder;

impl ExtensionFactory for FieldOrder {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(FieldOrderExtension::default())
    }
}

/// One request's state: the document it parsed.
#[derive(Default)]
struct FieldOrderExtension {
    document: Mutex<Option<ExecutableDocument>>,
}

#[async_trait::async_trait]
impl Extension for FieldOrderExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        *self.document.lock().unwrap_or_else(|e| e.into_inner()) = Some(document.clone());
        Ok(document)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut response = next.run(ctx, operation_name).await;
        let document = self
            .document
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(document) = document {
            let operation = match &document.operations {
                DocumentOperations::Single(op) => Some(op),
                DocumentOperations::Multiple(ops) => match operation_name {
                    Some(name) => ops.get(name),
                    None if ops.len() == 1 => ops.values().next(),
                    None => None,
                },
            };
            if let Some(op) = operation {
                let data = std::mem::take(&mut response.data);
                response.data = reorder(data, &op.node.selection_set.node, &document);
            }
        }
        response
    }
}

/// `value` with every object's keys in the order `set` selects them.
fn reorder(value: Value, set: &SelectionSet, document: &ExecutableDocument) -> Value {
    match value {
        Value::Object(mut fields) => {
            let mut ordered = IndexMap::with_capacity(fields.len());
            collect(&mut ordered, &mut fields, set, document);
            // Anything the walk did not place (none is expected) keeps its place at the end.
            ordered.extend(fields);
            Value::Object(ordered)
        }
        Value::List(items) => Value::List(
            items
                .into_iter()
                .map(|item| reorder(item, set, document))
                .collect(),
        ),
        other => other,
    }
}

fn collect(
    ordered: &mut IndexMap<Name, Value>,
    fields: &mut IndexMap<Name, Value>,
    set: &SelectionSet,
    document: &ExecutableDocument,
) {
    for selection in &set.items {
        match &selection.node {
            Selection::Field(field) => {
                let key = &field.node.response_key().node;
                if let Some(value) = fields.swap_remove(key) {
                    let value = reorder(value, &field.node.selection_set.node, document);
                    ordered.insert(key.clone(), value);
                }
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node) {
                    collect(ordered, fields, &fragment.node.selection_set.node, document);
                }
            }
            Selection::InlineFragment(inline) => {
                collect(ordered, fields, &inline.node.selection_set.node, document);
            }
        }
    }
}
