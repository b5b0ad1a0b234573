//! Relay connections over keyset pages.

use async_graphql::connection::{Connection, CursorType, Edge};

use crate::{
    db::page::{Cursor, Keyed, Page},
    error::AppError,
};

/// The opaque cursor clients see.
pub struct PageCursor(pub Cursor);

impl CursorType for PageCursor {
    type Error = AppError;

    fn decode_cursor(s: &str) -> Result<Self, Self::Error> {
        Cursor::decode(s)
            .map(Self)
            .ok_or_else(|| AppError::bad_input("after", "after is not a valid cursor"))
    }

    fn encode_cursor(&self) -> String {
        self.0.encode()
    }
}

/// A connection of GraphQL nodes made from a page of rows.
pub fn connection<R: Keyed, N>(page: Page<R>, node: impl Fn(R) -> N) -> Connection<PageCursor, N>
where
    N: async_graphql::OutputType,
{
    let mut connection = Connection::new(page.has_previous, page.has_next);
    connection.edges = page
        .rows
        .into_iter()
        .map(|row| Edge::new(PageCursor(row.cursor()), node(row)))
        .collect();
    connection
}
