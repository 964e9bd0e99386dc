//! catalogd: keeps Magento 2 product catalogs in good shape.
//!
//! `main.rs` only calls [`cli::run`]; everything else lives here so tests and the demo build
//! exactly the application the binary runs.

pub mod accounts;
pub mod app;
pub mod audit_log;
pub mod audits;
pub mod auth;
pub mod bench;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod connector;
pub mod crypto;
pub mod db;
pub mod demo;
pub mod enrich;
pub mod error;
pub mod exports;
pub mod http;
pub mod jobs;
pub mod media;
pub mod notify;
pub mod pagination;
pub mod push;
pub mod retention;
pub mod review;
pub mod schedules;
pub mod secrets;
pub mod state;
pub mod storage;
pub mod stores;
pub mod sync;
pub mod telemetry;
pub mod web;
pub mod webhooks;
