//! quire: a GraphQL API server for user accounts and posts, with authentication done
//! properly.
//!
//! Data flows one way: [`http`] → [`graphql`] resolvers → services ([`auth`]) →
//! repositories ([`db`]) → the database.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod events;
pub mod fleet;
pub mod graphql;
pub mod http;
pub mod posts;
pub mod seed;
pub mod telemetry;
