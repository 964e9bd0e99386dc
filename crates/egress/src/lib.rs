//! Outbound HTTP under one policy, for every request catalogd sends to a place a tenant or
//! an operator named: Magento stores (API, token exchange, discovery, media), AI providers,
//! webhooks.
//!
//! - **Where**: public addresses, plus the ranges the operator allows (`[egress] allow`).
//!   Loopback, private, link-local, unique-local, multicast, unspecified, shared and
//!   reserved addresses — and the IPv6 forms that lead to them — are refused at connect
//!   time: names are resolved and filtered by the client's resolver, URLs holding an
//!   address are refused before connecting, and every connection is checked again on its
//!   socket's peer address. A refusal names the setting that would allow it.
//! - **No redirects**: a 3xx is an answer, never followed.
//! - **Bounded reads**: a body can only be read with a cap ([`BodyLimit`]), chunk by chunk,
//!   failing as soon as it passes the cap.
//! - **Nothing echoed**: [`ErrorAnswer::summary`] describes an answer (status, content type,
//!   size) without repeating it.

mod address;
mod body;
mod client;
mod connect;
mod policy;

pub use address::{AddressClass, classify};
pub use body::{BodyLimit, ERROR_ANSWER, ErrorAnswer, ReadError, Response, summary};
pub use client::{ClientBuilder, HttpClient, SendError};
pub use policy::{Cidr, CidrError, Policy, Refusal, SETTING};
