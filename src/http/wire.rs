//! GraphQL over HTTP on the wire: which media type a client accepts, how a request is
//! read from a JSON body or from the URL, and how a response is written.
//!
//! A request that is not a well-formed GraphQL request (not JSON, no `query`, variables
//! that are not an object, …) is refused here with 400 and an error naming the part at
//! fault, before any GraphQL work.

use std::collections::{BTreeMap, HashMap};

use async_graphql::{Request, ServerError, Value, Variables};
use axum::{
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::error::Code;

/// The media type of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/graphql-response+json`: the status says whether the request could
    /// be executed (4xx when it failed before execution).
    GraphQLResponse,
    /// `application/json`: 200 for every well-formed request, as older clients expect.
    Json,
}

/// One media range of an `Accept` header.
struct Range {
    media: String,
    q: f32,
}

/// The media ranges of the request's `Accept` headers, lower-cased.
fn accept(headers: &HeaderMap) -> Vec<Range> {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|range| {
            let mut parts = range.split(';');
            let media = parts.next()?.trim().to_ascii_lowercase();
            if media.is_empty() {
                return None;
            }
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
                .and_then(|(_, q)| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            Some(Range { media, q })
        })
        .collect()
}

/// How much a client wants one media type: the `q` of the most specific range that
/// matches it, whether that range names it, and where it stands.
#[derive(Clone, Copy)]
struct Preference {
    q: f32,
    named: bool,
    position: usize,
}

impl Preference {
    /// Orders preferences: by `q`, then named over wildcard, then earlier first.
    fn rank(self) -> (u32, bool, std::cmp::Reverse<usize>) {
        (
            (self.q * 1000.0) as u32,
            self.named,
            std::cmp::Reverse(self.position),
        )
    }
}

fn preference(ranges: &[Range], media: &str) -> Preference {
    let main = media.split('/').next().unwrap_or("");
    let mut best: Option<(u8, Preference)> = None;
    for (position, range) in ranges.iter().enumerate() {
        let specificity = if range.media == media {
            3
        } else if range.media.strip_suffix("/*") == Some(main) {
            2
        } else if range.media == "*/*" {
            1
        } else {
            continue;
        };
        if best.is_none_or(|(s, _)| specificity > s) {
            let named = specificity == 3;
            best = Some((
                specificity,
                Preference {
                    q: range.q,
                    named,
                    position,
                },
            ));
        }
    }
    best.map_or(
        Preference {
            q: 0.0,
            named: false,
            position: usize::MAX,
        },
        |(_, p)| p,
    )
}

/// Whether a browser asks for a page: `text/html` named, and preferred at least as much
/// as JSON.
pub fn wants_html(headers: &HeaderMap) -> bool {
    let ranges = accept(headers);
    let html = preference(&ranges, "text/html");
    let json = preference(&ranges, "application/json")
        .q
        .max(preference(&ranges, "application/graphql-response+json").q);
    html.named && html.q > 0.0 && html.q >= json
}

/// The client accepts neither response media type.
#[derive(Debug)]
pub struct NotAcceptable;

impl Format {
    /// The media type to answer in, from the `Accept` header: the supported type the
    /// client prefers most (by `q`, then named over matched by a wildcard, then by order);
    /// `application/json` when only a wildcard matches, or with no header at all.
    pub fn negotiate(headers: &HeaderMap) -> Result<Self, NotAcceptable> {
        let ranges = accept(headers);
        if ranges.is_empty() {
            return Ok(Self::Json);
        }
        let graphql = preference(&ranges, "application/graphql-response+json");
        let json = preference(&ranges, "application/json");
        match (graphql, json) {
            (g, j) if g.q <= 0.0 && j.q <= 0.0 => Err(NotAcceptable),
            (g, j) if g.rank() > j.rank() => Ok(Self::GraphQLResponse),
            _ => Ok(Self::Json),
        }
    }

    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::GraphQLResponse => "application/graphql-response+json; charset=utf-8",
            Self::Json => "application/json; charset=utf-8",
        })
    }
}

/// A request refused as a whole before any GraphQL work: its status, code and reason.
/// Every whole-request refusal of the HTTP edge (malformed, too large, not JSON, from a
/// foreign origin, no place for a socket) is one of these, answered with the same body:
/// `{"errors": [{"message", "extensions": {"code"}}]}`.
#[derive(Debug)]
pub struct Refusal {
    /// The HTTP status.
    pub status: StatusCode,
    /// The error's `extensions.code`.
    pub code: Code,
    /// What is wrong, naming the part of the request at fault.
    pub message: String,
}

impl Refusal {
    /// A refusal with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: Code, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 BAD_REQUEST.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Code::BadRequest, message)
    }

    /// The refusal as a response in `format`.
    pub fn into_response(self, format: Format) -> Response {
        let body = serde_json::json!({
            "errors": [{ "message": self.message, "extensions": { "code": self.code.as_str() } }]
        });
        json(self.status, format, body.to_string())
    }
}

/// 406, for a client that accepts no type this server can answer in.
pub fn not_acceptable() -> Response {
    let mut response = Refusal::new(
        StatusCode::NOT_ACCEPTABLE,
        Code::NotAcceptable,
        "this server answers in application/graphql-response+json or application/json; \
         accept one of them",
    )
    .into_response(Format::Json);
    response.headers_mut().insert(header::VARY, vary());
    response
}

/// Responses differ by `Accept`, so caches must key on it.
pub fn vary() -> HeaderValue {
    HeaderValue::from_static("Accept")
}

/// The requests in a POST body: one JSON object, or an array of them (a batch), with
/// whether it was a batch.
pub fn from_body(body: &[u8], max_batch: usize) -> Result<(Vec<Request>, bool), Refusal> {
    let json: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Refusal::bad_request(format!("the request body is not valid JSON: {e}")))?;
    match json {
        serde_json::Value::Array(entries) => {
            if entries.is_empty() {
                return Err(Refusal::bad_request("the batch holds no operations"));
            }
            if entries.len() > max_batch {
                return Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    Code::GraphqlValidationFailed,
                    format!(
                        "a batch may hold at most {max_batch} operations; this one holds {}",
                        entries.len()
                    ),
                ));
            }
            let requests = entries
                .into_iter()
                .enumerate()
                .map(|(i, entry)| request(entry, &format!("batch entry {i}: ")))
                .collect::<Result<_, _>>()?;
            Ok((requests, true))
        }
        single => Ok((vec![request(single, "")?], false)),
    }
}

/// The request in the URL of a GET: `query`, `operationName`, and `variables` and
/// `extensions` as JSON text.
pub fn from_url(query_string: Option<&str>) -> Result<Request, Refusal> {
    let mut fields = serde_json::Map::new();
    for (name, value) in form_urlencoded::parse(query_string.unwrap_or("").as_bytes()) {
        let value = match name.as_ref() {
            "query" | "operationName" => serde_json::Value::String(value.into_owned()),
            "variables" | "extensions" => serde_json::from_str(&value).map_err(|e| {
                Refusal::bad_request(format!("the {name} parameter is not valid JSON: {e}"))
            })?,
            _ => continue,
        };
        if fields.insert(name.clone().into_owned(), value).is_some() {
            return Err(Refusal::bad_request(format!(
                "the {name} parameter appears more than once"
            )));
        }
    }
    request(serde_json::Value::Object(fields), "")
}

/// One request from its JSON form; `context` prefixes errors (the batch entry).
fn request(json: serde_json::Value, context: &str) -> Result<Request, Refusal> {
    let refuse = |why: &str| Refusal::bad_request(format!("{context}{why}"));
    let serde_json::Value::Object(mut fields) = json else {
        return Err(refuse("a GraphQL request must be a JSON object"));
    };
    let query = match fields.remove("query") {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(q)) => q,
        Some(_) => return Err(refuse("query must be a string")),
    };
    let operation_name = match fields.remove("operationName") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(name)) => Some(name),
        Some(_) => return Err(refuse("operationName must be a string")),
    };
    let variables = match fields.remove("variables") {
        None | Some(serde_json::Value::Null) => Variables::default(),
        Some(v @ serde_json::Value::Object(_)) => Variables::from_json(v),
        Some(_) => return Err(refuse("variables must be an object")),
    };
    let extensions: HashMap<String, Value> = match fields.remove("extensions") {
        None | Some(serde_json::Value::Null) => HashMap::new(),
        Some(serde_json::Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| Value::from_json(v).map(|v| (k, v)))
            .collect::<Result<_, _>>()
            .map_err(|_| refuse("extensions must be an object"))?,
        Some(_) => return Err(refuse("extensions must be an object")),
    };
    if query.is_empty() && !extensions.contains_key("persistedQuery") {
        return Err(refuse(
            "the request has no query: send the operation's text in \"query\"",
        ));
    }
    let mut request = Request::new(query).variables(variables);
    request.operation_name = operation_name;
    request.extensions.0 = extensions;
    Ok(request)
}

/// One GraphQL response as sent: `data` only when execution began.
#[derive(Serialize)]
struct Body<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a Value>,
    #[serde(skip_serializing_if = "<[ServerError]>::is_empty")]
    errors: &'a [ServerError],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    extensions: &'a BTreeMap<String, Value>,
}

/// A response ready to be written: what the executor answered, and whether it got as
/// far as executing.
pub struct Outcome {
    /// The GraphQL response.
    pub response: async_graphql::Response,
    /// False when the request failed before execution.
    pub executed: bool,
}

impl Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Body {
            data: self.executed.then_some(&self.response.data),
            errors: &self.response.errors,
            extensions: &self.response.extensions,
        }
        .serialize(serializer)
    }
}

/// `body` as a JSON response in `format`. Answers depend on who asks, so no shared
/// cache may keep them.
pub fn json(status: StatusCode, format: Format, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, format.content_type());
    headers.insert(header::VARY, vary());
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    response
}
