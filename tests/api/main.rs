//! Black-box tests of the HTTP API against a real PostgreSQL.

mod helpers;

mod accounts;
mod api_keys;
mod audits;
mod catalog_fixtures;
mod cli;
mod enrich;
mod enrich_providers;
mod errors;
mod exports;
mod isolation;
mod ops;
mod products;
mod review;
mod schedules;
mod secrets;
mod stores;
mod sync;
