//! Who is calling, and what they may do.

pub mod api_keys;
pub mod caller;
pub mod login_limit;
pub mod password;
pub mod roles;
pub mod tokens;
pub mod totp;

pub use caller::{Access, Caller, PersonAccess, Principal, Resource};
pub use roles::{CanAdminister, CanEdit, CanOwn, CanRead, CanReview, Capability, Permission, Role};
