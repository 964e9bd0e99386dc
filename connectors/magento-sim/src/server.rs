//! The HTTP side: token endpoints, the REST API, media files.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::catalog::{MediaEntry, SimProduct, png_for};
use crate::search::{self, CriteriaError};
use crate::{Inner, RecordedWrite};

pub enum Fault {
    ServerError,
    TooMany(Option<u64>),
    Malformed,
}

pub fn router(inner: Arc<Inner>) -> Router {
    Router::new().fallback(handle).with_state(inner)
}

pub(crate) fn magento_error(status: StatusCode, message: &str, parameters: Value) -> Response {
    let mut body = json!({"message": message});
    if !parameters.is_null() {
        body["parameters"] = parameters;
    }
    (status, axum::Json(body)).into_response()
}

fn oauth_problem(status: u16, problem: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED);
    (
        status,
        format!("oauth_problem={}", crate::oauth::rawurlencode(problem)),
    )
        .into_response()
}

async fn handle(State(inner): State<Arc<Inner>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let method = parts.method.clone();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let auth = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);

    // Test and demo hook, not part of Magento: change a product as an admin would.
    if let Some(sku) = path.strip_prefix("/__sim/products/") {
        return admin_change(&inner, &method, &decode_segment(sku), &body);
    }
    if let Some(what) = path.strip_prefix("/__sim/")
        && method == Method::GET
    {
        return crate::inspect::answer(&inner, what);
    }
    if let Some(file) = path.strip_prefix("/media/catalog/product") {
        return ([(header::CONTENT_TYPE, "image/png")], png_for(file)).into_response();
    }
    match (method.as_str(), path.as_str()) {
        ("POST", "/oauth/token/request") => {
            return match inner.request_token(&host, &path, auth.as_deref()) {
                Ok((t, s)) => format!("oauth_token={t}&oauth_token_secret={s}").into_response(),
                Err((status, problem)) => oauth_problem(status, &problem),
            };
        }
        ("POST", "/oauth/token/access") => {
            return match inner.access_token(&host, &path, auth.as_deref()) {
                Ok((t, s)) => format!("oauth_token={t}&oauth_token_secret={s}").into_response(),
                Err((status, problem)) => oauth_problem(status, &problem),
            };
        }
        _ => {}
    }
    let Some(rest) = path.strip_prefix("/rest/") else {
        return magento_error(
            StatusCode::NOT_FOUND,
            "Request does not match any route.",
            Value::Null,
        );
    };

    inner.in_flight.fetch_add(1, Ordering::SeqCst);
    inner.count_request(method != Method::GET);
    let response = rest_call(
        &inner,
        &method,
        &host,
        &path,
        rest,
        &query,
        auth.as_deref(),
        &parts.headers,
        body,
    )
    .await;
    inner.in_flight.fetch_sub(1, Ordering::SeqCst);
    response
}

#[allow(clippy::too_many_arguments)]
async fn rest_call(
    inner: &Arc<Inner>,
    method: &Method,
    host: &str,
    path: &str,
    rest: &str,
    query: &str,
    auth: Option<&str>,
    _headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let (latency, fault) = inner.draw_fault();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match fault {
        Some(Fault::ServerError) => {
            return magento_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service temporarily unavailable",
                Value::Null,
            );
        }
        Some(Fault::TooMany(retry_after)) => {
            let mut response = magento_error(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests",
                Value::Null,
            );
            if let Some(secs) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, secs.into());
            }
            return response;
        }
        Some(Fault::Malformed) => {
            return (StatusCode::OK, "{\"items\": [ {\"id\": 1,").into_response();
        }
        None => {}
    }
    let segments: Vec<&str> = rest.split('/').collect();
    let decode = |route: &[&str]| route.iter().map(|s| decode_segment(s)).collect::<Vec<_>>();
    // `/rest[/<code>][/async[/bulk]]/V1/…`
    let (store_code, asynchronous, route): (Option<String>, Option<bool>, Vec<String>) =
        match segments.as_slice() {
            ["V1", route @ ..] => (None, None, decode(route)),
            ["async", "bulk", "V1", route @ ..] => (None, Some(true), decode(route)),
            ["async", "V1", route @ ..] => (None, Some(false), decode(route)),
            [code, "async", "bulk", "V1", route @ ..] => {
                (Some(code.to_string()), Some(true), decode(route))
            }
            [code, "async", "V1", route @ ..] => {
                (Some(code.to_string()), Some(false), decode(route))
            }
            [code, "V1", route @ ..] => (Some(code.to_string()), None, decode(route)),
            _ => {
                return magento_error(
                    StatusCode::NOT_FOUND,
                    "Request does not match any route.",
                    Value::Null,
                );
            }
        };
    // `/rest/V1` is the default store view; `all` is the default values; anything else must exist.
    let view: Option<String> = match store_code.as_deref() {
        None => Some("default".to_string()),
        Some("all") => None,
        Some(code) if inner.config.store_views.iter().any(|v| v == code) => Some(code.to_string()),
        Some(_) => {
            return magento_error(
                StatusCode::BAD_REQUEST,
                "The store that was requested wasn't found. Verify the store and try again.",
                Value::Null,
            );
        }
    };
    let route: Vec<&str> = route.iter().map(String::as_str).collect();
    // Magento matches the route first, then checks the caller against its ACL resource.
    let resource = crate::acl::resource(&route);
    match inner.authenticate(method.as_str(), host, path, query, auth, resource) {
        Ok(()) => {}
        Err(crate::Refused::Acl(resource)) => return crate::acl::refusal(resource),
        Err(crate::Refused::Oauth(message)) => {
            let status = StatusCode::from_u16(crate::oauth_status(&message))
                .unwrap_or(StatusCode::UNAUTHORIZED);
            return magento_error(status, &message, Value::Null);
        }
    }
    let params = crate::oauth::query_params(query);
    if inner.sku_faults.hits(&route, &params, &body) {
        return magento_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service temporarily unavailable",
            Value::Null,
        );
    }
    if let Some(bulk) = asynchronous {
        return crate::bulk::submit(inner, method, path, store_code, view, &route, bulk, &body);
    }
    let write = |body: &Value| {
        inner.record_write(RecordedWrite {
            method: method.to_string(),
            path: path.to_string(),
            store_code: store_code.clone(),
            body: body.clone(),
        })
    };
    match (method.as_str(), route.as_slice()) {
        ("GET", ["products"]) => list_products(inner, view.as_deref(), &params),
        ("GET", ["products", "attributes"]) => match search::parse(&params) {
            Ok(criteria) => axum::Json(crate::structure::attribute_list(&inner.config.attribute_scopes, &criteria)).into_response(),
            Err(CriteriaError::Missing) => magento_error(
                StatusCode::BAD_REQUEST,
                "\"%fieldName\" is required. Enter and try again.",
                json!({"fieldName": "searchCriteria"}),
            ),
            Err(e) => magento_error(StatusCode::BAD_REQUEST, &e.to_string(), Value::Null),
        },
        ("GET", ["products", "attributes", code]) => match crate::structure::attribute(code, &inner.config.attribute_scopes) {
            Some(a) => axum::Json(a).into_response(),
            None => magento_error(
                StatusCode::NOT_FOUND,
                "The attribute with a \"%1\" attributeCode doesn't exist. Verify the attribute and try again.",
                json!([code]),
            ),
        },
        ("GET", ["products", "attributes", code, "options"]) => match crate::structure::attribute_options(code, &inner.config.attribute_scopes) {
            Some(o) => axum::Json(o).into_response(),
            None => magento_error(
                StatusCode::NOT_FOUND,
                "The attribute with a \"%1\" attributeCode doesn't exist. Verify the attribute and try again.",
                json!([code]),
            ),
        },
        ("GET", ["products", sku]) => match inner.catalog.read().expect("catalog").get(sku) {
            Some(p) => axum::Json(p.to_json(view.as_deref())).into_response(),
            None => not_found_product(),
        },
        ("PUT" | "POST", ["products"] | ["products", _]) => {
            let Ok(body) = serde_json::from_slice::<Value>(&body) else {
                return magento_error(StatusCode::BAD_REQUEST, "Decoding error: syntax error", Value::Null);
            };
            write(&body);
            let url_sku = route.get(1).map(|s| s.to_string());
            save_product(inner, view.as_deref(), url_sku, body)
        }
        ("DELETE", ["products", sku]) => {
            write(&Value::Null);
            let mut catalog = inner.catalog.write().expect("catalog");
            match catalog.get(sku).map(|p| p.id) {
                Some(id) => {
                    catalog.deleted.insert(id);
                    axum::Json(json!(true)).into_response()
                }
                None => not_found_product(),
            }
        }
        ("GET", ["products", sku, "media"]) => match inner.catalog.read().expect("catalog").get(sku) {
            Some(p) => axum::Json(p.to_json(view.as_deref())["media_gallery_entries"].clone()).into_response(),
            None => not_found_product(),
        },
        ("GET", ["products", sku, "media", id]) => {
            let catalog = inner.catalog.read().expect("catalog");
            let Some(p) = catalog.get(sku) else { return not_found_product() };
            let entries = p.to_json(view.as_deref())["media_gallery_entries"].clone();
            match entries.as_array().and_then(|e| e.iter().find(|m| m["id"].as_i64().is_some_and(|v| v.to_string() == *id))) {
                Some(entry) => axum::Json(entry.clone()).into_response(),
                None => magento_error(StatusCode::NOT_FOUND, "The image doesn't exist. Verify and try again.", Value::Null),
            }
        }
        ("POST", ["products", sku, "media"]) => {
            let Ok(body) = serde_json::from_slice::<Value>(&body) else {
                return magento_error(StatusCode::BAD_REQUEST, "Decoding error: syntax error", Value::Null);
            };
            write(&body);
            let mut catalog = inner.catalog.write().expect("catalog");
            let id = inner.next_media_id(&mut catalog);
            let now = inner.now();
            let Some(product) = catalog.get_mut(sku) else { return not_found_product() };
            let entry = &body["entry"];
            let name = entry["content"]["name"].as_str().unwrap_or("image.png");
            // Magento stores every upload as a new file, even when the picture is the same.
            product.media.push(MediaEntry {
                id,
                file: format!("/u/p/{id}-{name}"),
                label: entry["label"].as_str().map(String::from),
                position: entry["position"].as_i64().unwrap_or(product.media.len() as i64 + 1),
                disabled: entry["disabled"].as_bool().unwrap_or(false),
                types: entry["types"].as_array().map(|t| t.iter().filter_map(|v| v.as_str().map(String::from)).collect()).unwrap_or_default(),
                view_labels: Default::default(),
            });
            product.updated_at = now;
            axum::Json(json!(id.to_string())).into_response()
        }
        ("PUT", ["products", sku, "media", id]) => {
            let Ok(body) = serde_json::from_slice::<Value>(&body) else {
                return magento_error(StatusCode::BAD_REQUEST, "Decoding error: syntax error", Value::Null);
            };
            write(&body);
            let now = inner.now();
            let mut catalog = inner.catalog.write().expect("catalog");
            let entry = &body["entry"];
            let loses_id = inner.config.media_file_quirk && entry["file"].as_str().is_some_and(|f| !f.is_empty());
            let new_id = if loses_id { inner.next_media_id(&mut catalog) } else { 0 };
            let Some(product) = catalog.get_mut(sku) else { return not_found_product() };
            let Some(index) = product.media.iter().position(|m| m.id.to_string() == *id) else {
                return magento_error(StatusCode::NOT_FOUND, "The image doesn't exist. Verify and try again.", Value::Null);
            };
            if loses_id {
                // 2.3's GalleryManagement::update drops the id of an entry that carries `file`,
                // so the save makes it a new gallery entry (magento/magento2#27147): the old
                // entry and its store-view labels are gone, the picture has a new id.
                let old = product.media.remove(index);
                product.media.push(MediaEntry {
                    id: new_id,
                    label: entry["label"].as_str().map(String::from),
                    position: entry["position"].as_i64().unwrap_or(old.position),
                    disabled: entry["disabled"].as_bool().unwrap_or(old.disabled),
                    view_labels: Default::default(),
                    ..old
                });
                product.updated_at = now;
                return axum::Json(json!(true)).into_response();
            }
            let media = &mut product.media[index];
            if let Some(label) = entry.get("label") {
                let label = label.as_str().map(String::from);
                match view.as_deref() {
                    None => media.label = label,
                    Some(v) => {
                        media.view_labels.insert(v.to_string(), label);
                    }
                }
            }
            if let Some(position) = entry["position"].as_i64() {
                media.position = position;
            }
            if let Some(disabled) = entry["disabled"].as_bool() {
                media.disabled = disabled;
            }
            product.updated_at = now;
            axum::Json(json!(true)).into_response()
        }
        ("DELETE", ["products", sku, "media", id]) => {
            write(&Value::Null);
            let mut catalog = inner.catalog.write().expect("catalog");
            let Some(product) = catalog.get_mut(sku) else { return not_found_product() };
            let before = product.media.len();
            product.media.retain(|m| m.id.to_string() != *id);
            if product.media.len() == before {
                return magento_error(StatusCode::NOT_FOUND, "The image doesn't exist. Verify and try again.", Value::Null);
            }
            axum::Json(json!(true)).into_response()
        }
        ("GET", ["categories"]) => axum::Json(crate::structure::tree()).into_response(),
        ("GET", ["categories", "list"]) => axum::Json(crate::structure::category_list()).into_response(),
        ("GET", ["categories", id]) => match id.parse().ok().and_then(crate::structure::category_json) {
            Some(c) => axum::Json(c).into_response(),
            None => magento_error(
                StatusCode::NOT_FOUND,
                "No such entity with %fieldName = %fieldValue",
                json!({"fieldName": "id", "fieldValue": id}),
            ),
        },
        ("GET", ["bulk", uuid, "status"]) => crate::bulk::status(inner, uuid, false),
        ("GET", ["bulk", uuid, "detailed-status"]) => crate::bulk::status(inner, uuid, true),
        ("GET", ["bulk", uuid, "operation-status", wanted]) => crate::bulk::count(inner, uuid, wanted),
        ("GET", ["store", "storeViews"]) => {
            let mut views = vec![json!({"id": 0, "code": "admin", "name": "Admin", "website_id": 0, "store_group_id": 0, "is_active": 1})];
            for (i, code) in inner.config.store_views.iter().enumerate() {
                views.push(json!({"id": i + 1, "code": code, "name": view_name(code), "website_id": 1, "store_group_id": 1, "is_active": 1}));
            }
            axum::Json(views).into_response()
        }
        ("GET", ["store", "storeConfigs"]) => {
            let wanted: Vec<&String> = params.iter().filter(|(k, _)| k.starts_with("storeCodes")).map(|(_, v)| v).collect();
            let configs: Vec<Value> = inner
                .config
                .store_views
                .iter()
                .enumerate()
                .filter(|(_, code)| wanted.is_empty() || wanted.contains(code))
                .map(|(i, code)| {
                    let base = inner.base_url.clone();
                    json!({"id": i + 1, "code": code, "website_id": 1, "locale": locale(code),
                        "base_currency_code": "EUR", "default_display_currency_code": "EUR", "timezone": "UTC",
                        "weight_unit": "kgs", "base_url": base, "base_link_url": base,
                        "base_static_url": format!("{base}static/"), "base_media_url": format!("{base}media/"),
                        "secure_base_url": base, "secure_base_link_url": base,
                        "secure_base_static_url": format!("{base}static/"), "secure_base_media_url": format!("{base}media/")})
                })
                .collect();
            axum::Json(configs).into_response()
        }
        ("GET", ["store", "websites"]) => axum::Json(json!([
            {"id": 0, "code": "admin", "name": "Admin", "default_group_id": 0},
            {"id": 1, "code": "base", "name": "Main Website", "default_group_id": 1}
        ]))
        .into_response(),
        ("GET", ["store", "storeGroups"]) => axum::Json(json!([
            {"id": 0, "website_id": 0, "root_category_id": 0, "default_store_id": 0, "name": "Default", "code": "default"},
            {"id": 1, "website_id": 1, "root_category_id": 2, "default_store_id": 1, "name": "Main Website Store", "code": "main_website_store"}
        ]))
        .into_response(),
        _ => magento_error(StatusCode::NOT_FOUND, "Request does not match any route.", Value::Null),
    }
}

/// Magento urldecodes each path segment: `+` becomes a space, `%2F` a slash.
fn decode_segment(segment: &str) -> String {
    let spaced = segment.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

fn view_name(code: &str) -> String {
    match code {
        "default" => "Default Store View".into(),
        "fr" => "Français".into(),
        "de" => "Deutsch".into(),
        other => other.to_string(),
    }
}

fn locale(code: &str) -> &'static str {
    match code {
        "fr" => "fr_FR",
        "de" => "de_DE",
        "es" => "es_ES",
        "it" => "it_IT",
        "nl" => "nl_NL",
        _ => "en_US",
    }
}

pub(crate) fn not_found_product() -> Response {
    magento_error(
        StatusCode::NOT_FOUND,
        "The product that was requested doesn't exist. Verify the product and try again.",
        Value::Null,
    )
}

fn list_products(
    inner: &Arc<Inner>,
    view: Option<&str>,
    params: &BTreeMap<String, String>,
) -> Response {
    let criteria = match search::parse(params) {
        Ok(c) => c,
        Err(CriteriaError::Missing) => {
            return magento_error(
                StatusCode::BAD_REQUEST,
                "\"%fieldName\" is required. Enter and try again.",
                json!({"fieldName": "searchCriteria"}),
            );
        }
        Err(e) => return magento_error(StatusCode::BAD_REQUEST, &e.to_string(), Value::Null),
    };
    let page_size = match (criteria.page_size, inner.config.input_limits) {
        (Some(n), true) if n > inner.config.maximum_page_size => {
            return magento_error(
                StatusCode::BAD_REQUEST,
                "Maximum SearchCriteria pageSize is %max",
                json!({"max": inner.config.maximum_page_size}),
            );
        }
        (Some(n), _) if n > 0 => Some(n),
        (_, true) => Some(20),
        _ => None,
    };
    let catalog = inner.catalog.read().expect("catalog");
    let hits = match search::sku_keys(&criteria) {
        Some(skus) => {
            let mut found: Vec<&SimProduct> = skus.iter().filter_map(|s| catalog.get(s)).collect();
            // In catalog (id) order, as the scan would find them.
            found.sort_by_key(|p| p.id);
            found.dedup_by_key(|p| p.id);
            search::select(found.into_iter(), view, &criteria)
        }
        None => search::select(catalog.live(), view, &criteria),
    };
    let total = hits.len() as u64;
    let items: Vec<&SimProduct> = match page_size {
        None => hits,
        Some(size) => {
            let pages = total.div_ceil(size).max(1);
            let mut page = criteria.current_page;
            if page > pages && inner.config.legacy_last_page {
                page = pages;
            }
            let step = size.saturating_sub(inner.config.page_overlap).max(1);
            let start = ((page - 1) * step) as usize;
            hits.into_iter().skip(start).take(size as usize).collect()
        }
    };
    let mut search_criteria = json!({"filter_groups": []});
    if let Some(size) = page_size {
        search_criteria["page_size"] = json!(size);
        search_criteria["current_page"] = json!(criteria.current_page);
    }
    let body = json!({
        "items": items.iter().map(|p| p.to_json(view)).collect::<Vec<_>>(),
        "search_criteria": search_criteria,
        "total_count": total,
    });
    axum::Json(body).into_response()
}

/// The test hook `/__sim/products/<sku>`: an admin's change or deletion.
fn admin_change(inner: &Arc<Inner>, method: &Method, sku: &str, body: &Bytes) -> Response {
    let changed = match method.as_str() {
        "DELETE" => crate::delete_product(inner, sku),
        "POST" | "PUT" => {
            let Ok(body) = serde_json::from_slice::<Value>(body) else {
                return magento_error(StatusCode::BAD_REQUEST, "body must be JSON", Value::Null);
            };
            // `"mass_action": true` is the admin's "Update attributes", which leaves
            // `updated_at` alone.
            let touch = if body["mass_action"].as_bool() == Some(true) {
                crate::Touch::Nothing
            } else {
                crate::Touch::UpdatedAt
            };
            crate::update_product(
                inner,
                sku,
                body["store_view"].as_str(),
                body["changes"].clone(),
                touch,
            )
        }
        _ => {
            return magento_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "use POST or DELETE",
                Value::Null,
            );
        }
    };
    if changed {
        axum::Json(json!(true)).into_response()
    } else {
        not_found_product()
    }
}

/// PUT/POST of a product: an upsert written at the URL's scope as each attribute's scope puts
/// it ([`crate::scopes::write`]). Only attributes whose value differs from what the scope shows
/// now are written, so sending the effective value creates no store-view override; `null`
/// removes a store-view override. Interface attributes inside `custom_attributes` are dropped.
pub(crate) fn save_product(
    inner: &Arc<Inner>,
    view: Option<&str>,
    url_sku: Option<String>,
    body: Value,
) -> Response {
    let product = &body["product"];
    let Some(sku) = url_sku.or_else(|| product["sku"].as_str().map(String::from)) else {
        return magento_error(
            StatusCode::BAD_REQUEST,
            "The \"sku\" attribute value is empty. Set the attribute and try again.",
            Value::Null,
        );
    };
    let now = inner.now();
    let mut catalog = inner.catalog.write().expect("catalog");
    let mut changes: Vec<(String, Value)> = Vec::new();
    if let Some(name) = product.get("name") {
        // `name` is required: emptying it fails validation before anything is saved
        // (`app/code/Magento/Eav/Model/Entity/Attribute/Backend/AbstractBackend.php::validate`).
        if name.is_null() || name.as_str().is_some_and(|n| n.trim().is_empty()) {
            return magento_error(
                StatusCode::BAD_REQUEST,
                "The \"%1\" attribute value is empty. Set the attribute and try again.",
                json!(["Product Name"]),
            );
        }
        changes.push(("name".into(), name.clone()));
    }
    for attribute in product["custom_attributes"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(code) = attribute["attribute_code"].as_str()
            && !crate::scopes::INTERFACE_ATTRIBUTES.contains(&code)
        {
            changes.push((code.to_string(), attribute["value"].clone()));
        }
    }
    // url_key must stay unique within the store view.
    if let Some((_, key)) = changes.iter().find(|(c, _)| c == "url_key")
        && let Some(key) = key.as_str()
    {
        let clash = catalog
            .live()
            .any(|p| p.sku != sku && p.value(view, "url_key").and_then(Value::as_str) == Some(key));
        if clash {
            return magento_error(
                StatusCode::BAD_REQUEST,
                "URL key for specified store already exists.",
                Value::Null,
            );
        }
    }
    if catalog.get(&sku).is_none() {
        let id = catalog.next_id;
        catalog.next_id += 1;
        let index = catalog.products.len();
        catalog.products.push(SimProduct {
            id,
            sku: sku.clone(),
            type_id: product["type_id"].as_str().unwrap_or("simple").to_string(),
            price: product["price"].as_f64().unwrap_or(0.0),
            status: product["status"].as_i64().unwrap_or(1),
            visibility: product["visibility"].as_i64().unwrap_or(4),
            weight: product["weight"].as_f64().unwrap_or(0.0),
            created_at: now,
            updated_at: now,
            defaults: Default::default(),
            views: Default::default(),
            media: Vec::new(),
            category_ids: Vec::new(),
            child_ids: Vec::new(),
        });
        catalog.by_sku.insert(sku.clone(), index);
        // Creation writes every value to the default scope.
        let created = catalog.get_mut(&sku).expect("just inserted");
        for (code, value) in changes {
            if !value.is_null() {
                created.defaults.insert(code, value);
            }
        }
        return axum::Json(created.to_json(view)).into_response();
    }
    let mut next_media_id = catalog.next_media_id;
    let target = catalog.get_mut(&sku).expect("checked above");
    for (code, value) in changes {
        let scope = inner.attribute_scope(&code);
        crate::scopes::write(target, view, scope, inner.website_views(), code, value);
    }
    if let Some(price) = product["price"].as_f64() {
        target.price = price;
    }
    if let Some(status) = product["status"].as_i64() {
        target.status = status;
    }
    // Magento's gallery semantics on save: omitted leaves images alone, [] removes them all.
    if let Some(entries) = product
        .get("media_gallery_entries")
        .and_then(Value::as_array)
    {
        let mut kept = Vec::new();
        for entry in entries {
            match entry["id"]
                .as_i64()
                .and_then(|id| target.media.iter().find(|m| m.id == id).cloned())
            {
                Some(existing) => kept.push(existing),
                None => {
                    // Entries without an id are new uploads, even when the picture exists.
                    let id = next_media_id;
                    next_media_id += 1;
                    kept.push(MediaEntry {
                        id,
                        file: entry["file"].as_str().unwrap_or("/n/e/new.png").to_string(),
                        label: entry["label"].as_str().map(String::from),
                        position: entry["position"].as_i64().unwrap_or(0),
                        disabled: false,
                        types: Vec::new(),
                        view_labels: Default::default(),
                    });
                }
            }
        }
        target.media = kept;
    }
    target.updated_at = now;
    let answer = target.to_json(view);
    catalog.next_media_id = next_media_id;
    axum::Json(answer).into_response()
}
