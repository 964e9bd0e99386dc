//! People, their workspaces and their logins.

pub mod account_archive;
pub mod deletion;
pub mod email;
pub mod invitations;
pub mod password_reset;
pub mod sessions;
pub mod settings;
pub mod two_factor;
pub mod users;
pub mod workspaces;
