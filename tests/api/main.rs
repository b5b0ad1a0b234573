//! quire's integration tests: one binary, every story told through HTTP against the real
//! router, each run on SQLite and on PostgreSQL.

mod helpers;

mod accounts;
mod admin;
pub mod api_keys;
mod batching;
mod clients;
pub mod commands;
mod cookies;
mod errors;
mod guards;
mod limits;
mod operations;
mod pagination;
mod persisted;
mod posts;
mod sessions;
mod subscriptions;
mod throttle;
mod tokens;
mod transactions;
mod transport;
