//! Magento's web API ACL: every route names the resource an integration must be granted
//! (`<resources>` in each module's `etc/webapi.xml`), checked by
//! `app/code/Magento/Webapi/Controller/Rest/RequestValidator.php::checkPermissions` once the
//! OAuth credentials were accepted. A refusal is a 401 whose message is a template with the
//! route's resources as `%resources` (`lib/internal/Magento/Framework/Webapi/ErrorProcessor.php`
//! renders `AuthorizationException` as 401), the same status as a rejected token.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

pub const REFUSAL: &str = "The consumer isn't authorized to access %resources.";

/// Product routes, media included (`app/code/Magento/Catalog/etc/webapi.xml`).
pub const PRODUCTS: &str = "Magento_Catalog::products";
/// Bulk status routes (`app/code/Magento/AsynchronousOperations/etc/webapi.xml`).
pub const BULK_STATUS: &str =
    "Magento_AsynchronousOperations::system_magento_logging_bulk_operations";

/// The resource a route needs; `None` for the `anonymous` store routes
/// (`app/code/Magento/Store/etc/webapi.xml`). Asynchronous routes need the resource of the
/// synchronous route they carry.
pub fn resource(route: &[&str]) -> Option<&'static str> {
    match route {
        ["store", ..] => None,
        ["bulk", ..] => Some(BULK_STATUS),
        ["products", "attributes", ..] => Some("Magento_Catalog::attributes_attributes"),
        ["products", ..] => Some(PRODUCTS),
        ["categories", ..] => Some("Magento_Catalog::categories"),
        _ => Some(PRODUCTS),
    }
}

/// Magento's answer to a call whose route needs `resource`.
pub(crate) fn refusal(resource: &str) -> Response {
    crate::server::magento_error(
        StatusCode::UNAUTHORIZED,
        REFUSAL,
        json!({"resources": resource}),
    )
}
