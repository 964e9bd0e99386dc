//! The platform-neutral catalog: products, their content, and versions of it.

pub mod content;
pub mod diff;
pub mod edits;
pub mod products;
pub mod versions;
