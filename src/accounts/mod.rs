//! People, their workspaces and their logins.

pub mod email;
pub mod sessions;
pub mod settings;
pub mod users;
pub mod workspaces;
