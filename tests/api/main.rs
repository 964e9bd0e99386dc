//! Black-box tests of the HTTP API against a real PostgreSQL.

mod helpers;

mod account_limits;
mod accounts;
mod api_keys;
mod audits;
mod catalog_fixtures;
mod cli;
mod enrich;
mod enrich_providers;
mod errors;
mod exports;
mod faults;
mod hostile_stores;
mod invitations;
mod isolation;
mod layers;
mod magento_quirks;
mod notifications;
mod ops;
mod privacy;
mod products;
mod promises;
mod push_pace;
mod push_verification;
mod review;
mod s3_server;
mod scale_out;
mod schedules;
mod schema_conformance;
mod secrets;
mod storage;
mod stores;
mod sync;
mod web;
mod webhooks;
