//! OAuth 1.0a as Magento verifies it (REFERENCE §1).

mod base_string;
mod credentials;
mod natural_order;
pub(crate) mod percent;
mod signature_method;
mod signer;
mod token_exchange;

#[cfg(test)]
mod rfc5849_examples;

pub use base_string::SignatureForm;
pub use credentials::{AccessCredentials, ConsumerCredentials, TokenPair};
pub use signature_method::SignatureMethod;
pub use signer::{ProtocolValues, Signer};
pub use token_exchange::{
    OAuthProblem, TokenExchange, TokenExchangeError, access_token, request_token,
};
