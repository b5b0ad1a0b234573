//! [`Parsed`]: the documents this instance parsed lately, by their text, so that a client
//! sending the same query again (as clients do: a page, then the next) is not parsed
//! again. Parsing took about a thirteenth of the server's CPU in a page of 20 posts.
//!
//! Bounded in count and in the size of what it keeps: only short documents are kept, and
//! when it is full an entry goes for each one added, so that a client sending a new
//! document every time costs a map insertion, never memory.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use async_graphql::parser::types::ExecutableDocument;

/// How many documents are kept.
const CAPACITY: usize = 256;
/// The longest document kept, in bytes of text.
const LONGEST: usize = 4096;

/// Recently parsed documents, by text.
#[derive(Default)]
pub struct Parsed {
    documents: Mutex<HashMap<Box<str>, Arc<ExecutableDocument>>>,
}

impl Parsed {
    /// The document parsed from `text`, if it was lately.
    pub fn get(&self, text: &str) -> Option<Arc<ExecutableDocument>> {
        if text.len() > LONGEST {
            return None;
        }
        self.documents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(text)
            .cloned()
    }

    /// Keeps `document`, parsed from `text`.
    pub fn keep(&self, text: &str, document: Arc<ExecutableDocument>) {
        if text.len() > LONGEST {
            return;
        }
        let mut documents = self.documents.lock().unwrap_or_else(|e| e.into_inner());
        if documents.len() >= CAPACITY
            && let Some(any) = documents.keys().next().cloned()
        {
            documents.remove(&any);
        }
        documents.insert(text.into(), document);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.documents.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Arc<ExecutableDocument> {
        Arc::new(async_graphql::parser::parse_query(text).unwrap())
    }

    #[test]
    fn a_document_is_found_by_its_exact_text() {
        let parsed = Parsed::default();
        let text = "{ me { id } }";
        parsed.keep(text, parse(text));
        assert!(parsed.get(text).is_some());
        assert!(parsed.get("{ me { id username } }").is_none());
        assert!(parsed.get("{ me { id } } ").is_none());
    }

    #[test]
    fn a_flood_of_new_documents_keeps_no_more_than_the_capacity() {
        let parsed = Parsed::default();
        for i in 0..CAPACITY * 4 {
            let text = format!("{{ a{i}: me {{ id }} }}");
            parsed.keep(&text, parse(&text));
            assert!(parsed.len() <= CAPACITY);
        }
        let long = format!("{{ me {{ id }} }} # {}", "x".repeat(LONGEST));
        parsed.keep(&long, parse(&long));
        assert!(parsed.get(&long).is_none());
    }
}
