//! Notifications: what happened that someone should know about, and telling them.
//!
//! An event ([`events`]) is written in the transaction of what caused it, with a task on the
//! `catalogd.notify` queue. The fan-out job ([`fan_out`]) turns it into webhook deliveries,
//! in-app notices and mail as each member's preferences say ([`preferences`]); it never runs
//! inside the request or job that raised the event. Mail ([`mail`]) is queued in a table and
//! sent by jobs on the `catalogd.mail` queue with retries and backoff, through SMTP or into
//! `.eml` files ([`transport`]). People who chose the daily digest for `review.ready` get one
//! mail a day ([`digest`]); every message carries a signed unsubscribe link ([`unsubscribe`]).
//! In the UI, the header lists a person's notices ([`notices`]) and the workspace's home page
//! says what needs attention ([`attention`]).

pub mod attention;
pub mod compose;
pub mod digest;
pub mod events;
pub mod fan_out;
pub mod job_events;
pub mod mail;
pub mod notices;
pub mod preferences;
pub mod transport;
pub mod unsubscribe;
pub mod workers;

pub use events::{EventKind, NewEvent};
