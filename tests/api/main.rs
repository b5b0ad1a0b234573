//! quire's integration tests: one binary, every story told through HTTP against the real
//! router, each run on SQLite and on PostgreSQL.

mod helpers;

mod accounts;
mod commands;
mod errors;
mod sessions;
mod tokens;
