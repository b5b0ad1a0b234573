//! Keyset pagination: lists are walked newest first by `(created_at, id)`, never with
//! OFFSET, so page 500 costs what page 1 costs and rows inserted during a walk neither
//! repeat nor shift the pages after them.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A position in a list: the sort key of the last row the client has seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cursor {
    /// When the row was created.
    pub created_at: DateTime<Utc>,
    /// The row's id, which breaks ties between rows created at the same instant.
    pub id: Uuid,
}

impl Cursor {
    /// The opaque string handed to clients.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "v1:{}:{}",
            self.created_at.timestamp_micros(),
            self.id.simple()
        ))
    }

    /// Reads a client's cursor; `None` when it is not one of ours.
    pub fn decode(text: &str) -> Option<Self> {
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(text).ok()?).ok()?;
        let mut parts = raw.splitn(3, ':');
        if parts.next()? != "v1" {
            return None;
        }
        let micros: i64 = parts.next()?.parse().ok()?;
        // Years 1 to 9999, which every engine can compare against.
        if !(-62_135_596_800_000_000..=253_402_300_799_999_999).contains(&micros) {
            return None;
        }
        let id = Uuid::try_parse(parts.next()?).ok()?;
        Some(Self {
            created_at: DateTime::from_timestamp_micros(micros)?,
            id,
        })
    }
}

/// A validated request for one page of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageRequest {
    /// How many rows to return.
    pub first: usize,
    /// Return rows after this position; `None` starts at the newest.
    pub after: Option<Cursor>,
}

impl PageRequest {
    /// The LIMIT to query with: one more row than asked, to learn whether there is a next
    /// page without counting.
    pub fn limit(&self) -> i64 {
        self.first as i64 + 1
    }
}

/// One page of rows, newest first.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The rows, at most `first` of them.
    pub rows: Vec<T>,
    /// Whether rows follow this page.
    pub has_next: bool,
    /// Whether the page started after a cursor.
    pub has_previous: bool,
}

impl<T> Page<T> {
    /// Trims the extra row fetched by [`PageRequest::limit`] and records whether it was there.
    pub fn from_rows(mut rows: Vec<T>, request: &PageRequest) -> Self {
        let has_next = rows.len() > request.first;
        rows.truncate(request.first);
        Self {
            rows,
            has_next,
            has_previous: request.after.is_some(),
        }
    }
}

/// Something listed by `(created_at, id)`.
pub trait Keyed {
    /// The row's position in its list.
    fn cursor(&self) -> Cursor;
}

/// `$start, $start+1, …` for an IN list of `n` values.
pub fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `($1, $2, $3), ($4, $5, $6), …`: `rows` groups of `columns` placeholders, for
/// multi-row INSERTs.
pub fn value_rows(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", placeholders(r * columns + 1, columns)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        let c = Cursor {
            created_at: crate::db::now(),
            id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        let far =
            URL_SAFE_NO_PAD.encode(format!("v1:-999999999999999999:{}", Uuid::nil().simple()));
        for junk in [
            "",
            "abc",
            "djE6MTox",
            &URL_SAFE_NO_PAD.encode("v2:1:x"),
            &far,
        ] {
            assert_eq!(Cursor::decode(junk), None, "{junk}");
        }
    }

    #[test]
    fn placeholders_are_numbered_from_start() {
        assert_eq!(placeholders(3, 3), "$3, $4, $5");
        assert_eq!(value_rows(2, 2), "($1, $2), ($3, $4)");
    }
}
