//! Relay connections over keyset pages: the page arguments a client sends (`first`,
//! `after`) checked and turned into a [`PageRequest`], and a page of rows turned into a
//! connection.

use async_graphql::connection::{Connection, CursorType, Edge};

use crate::{
    db::page::{Cursor, Keyed, Page, PageRequest},
    error::{AppError, AppResult},
};

/// The most rows a client may ask for at once.
pub const MAX_PAGE: usize = 100;
/// The page size when the client does not say.
pub const DEFAULT_PAGE: usize = 20;

/// Checks `first` (0 to [`MAX_PAGE`]) and `after` (a cursor this server issued).
pub fn page_request(first: Option<i32>, after: Option<&str>) -> AppResult<PageRequest> {
    let first = match first {
        None => DEFAULT_PAGE,
        Some(n) if n < 0 => {
            return Err(AppError::bad_input("first", "first must not be negative"));
        }
        Some(n) if n as usize > MAX_PAGE => {
            return Err(AppError::bad_input(
                "first",
                format!("first must be at most {MAX_PAGE}"),
            ));
        }
        Some(n) => n as usize,
    };
    let after = after.map(after_cursor).transpose()?;
    Ok(PageRequest { first, after })
}

fn after_cursor(text: &str) -> AppResult<Cursor> {
    Cursor::decode(text).ok_or_else(|| AppError::bad_input("after", "after is not a valid cursor"))
}

/// The opaque cursor clients see.
pub struct PageCursor(pub Cursor);

impl CursorType for PageCursor {
    type Error = AppError;

    fn decode_cursor(s: &str) -> Result<Self, Self::Error> {
        after_cursor(s).map(Self)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_are_bounded() {
        assert_eq!(page_request(None, None).unwrap().first, 20);
        assert_eq!(page_request(Some(100), None).unwrap().first, 100);
        assert!(page_request(Some(101), None).is_err());
        assert!(page_request(Some(-1), None).is_err());
        assert!(page_request(None, Some("nope")).is_err());
    }
}
