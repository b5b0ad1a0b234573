//! quire's integration tests: one binary, every story told through HTTP against the real
//! router, each run on SQLite and on PostgreSQL.

mod helpers;

mod accounts;
mod admin;
pub mod api_keys;
mod batching;
mod clients;
mod cluster;
pub mod commands;
mod connections;
mod cookies;
mod documents;
mod errors;
mod guards;
pub mod limits;
mod operations;
mod pagination;
mod persisted;
mod posts;
mod sessions;
mod sockets;
pub mod subscriptions;
mod takeover;
mod throttle;
mod tokens;
mod transactions;
mod transport;
