//! Magento as a [`Connector`]: product pages through the REST client, mapped to the neutral
//! model. Magento's JSON shapes do not leave this module.

use std::collections::{BTreeMap, HashMap};

use futures::FutureExt;
use futures::future::BoxFuture;
use magento::client::Call;
use magento::models::{AttributeValue, CustomAttribute, MediaGalleryEntry, Product};
use magento::{
    ConditionType, Filter, MagentoClient, MagentoError, ProductPage, SearchCriteria, SignatureForm,
    SortDirection, StoreScope,
};
use serde_json::{Map, Value, json};

use super::{AttributeScope, Connector, ConnectorError, PageQuery, PulledPage, PulledProduct};
use crate::catalog::content::{Content, MediaItem, STANDARD_FIELDS};

/// `ProductInterface`'s own fields (`$interfaceAttributes` of
/// `app/code/Magento/Catalog/Model/Product.php`). `getCustomAttributesCodes` subtracts them, so
/// `lib/internal/Magento/Framework/Model/AbstractExtensibleModel.php::filterCustomAttributes`
/// drops them from a save's `custom_attributes` without an error: they are written only as
/// the product's own fields, where `null` fails the required check of `name`. REST therefore
/// cannot give them back "Use Default Value" in a store view.
pub const INTERFACE_ATTRIBUTES: &[&str] = &[
    "sku",
    "name",
    "price",
    "weight",
    "status",
    "visibility",
    "attribute_set_id",
    "type_id",
    "created_at",
    "updated_at",
    "media_gallery",
    "tier_price",
];

pub fn is_interface_attribute(code: &str) -> bool {
    INTERFACE_ATTRIBUTES.contains(&code)
}

pub struct MagentoConnector {
    client: MagentoClient,
    /// Content attribute codes beyond the standard ones.
    extra_content: Vec<String>,
    form: Option<FormMemory>,
}

/// Where the signature rules the client learns are remembered for the store.
struct FormMemory {
    db: sqlx::PgPool,
    store_id: uuid::Uuid,
    known: std::sync::Mutex<Option<SignatureForm>>,
}

impl MagentoConnector {
    pub fn new(client: MagentoClient, extra_content: Vec<String>) -> MagentoConnector {
        MagentoConnector {
            client,
            extra_content,
            form: None,
        }
    }

    /// Records on the store the signature rules its calls end up accepted with, when they
    /// differ from `known` (what the store row says).
    pub fn remembering_form(
        mut self,
        db: sqlx::PgPool,
        store_id: uuid::Uuid,
        known: Option<SignatureForm>,
    ) -> MagentoConnector {
        self.form = Some(FormMemory {
            db,
            store_id,
            known: std::sync::Mutex::new(known),
        });
        self
    }

    /// After a call: the client switched rules on an invalid-signature 401 and the other
    /// rules were accepted (`MagentoClient::send`), so the store is told apart from now on.
    async fn remember_form(&self) {
        let Some(memory) = &self.form else {
            return;
        };
        let learned = self.client.signature_form();
        {
            let mut known = memory.known.lock().unwrap_or_else(|e| e.into_inner());
            if *known == Some(learned) {
                return;
            }
            *known = Some(learned);
        }
        if let Err(e) =
            crate::stores::set_signature_form(&memory.db, memory.store_id, learned).await
        {
            tracing::warn!(store_id = %memory.store_id, error = %e, "could not record the store's signature rules");
        }
    }

    async fn pull(&self, query: PageQuery) -> Result<PulledPage, ConnectorError> {
        let scope = StoreScope::parse(&query.scope)
            .map_err(|e| ConnectorError::Fatal(format!("store view {:?}: {e}", query.scope)))?;
        let mut criteria = SearchCriteria::new()
            .sort_by("entity_id", SortDirection::Asc)
            .page_size(query.page_size)
            .current_page(query.page);
        if let Some(since) = query.updated_since {
            criteria = criteria.filter(
                "updated_at",
                ConditionType::Gteq,
                since.format("%Y-%m-%d %H:%M:%S").to_string(),
            );
        }
        criteria
            .validate()
            .map_err(|e| map_error(MagentoError::InvalidRequest(e.to_string())))?;
        let body = self
            .client
            .send(&MagentoClient::product_list_call(&scope, &criteria))
            .await;
        self.remember_form().await;
        let body = body.map_err(map_error)?;
        let extra_content = self.extra_content.clone();
        let page_number = query.page;
        // Parsing and mapping a page of 300 products is CPU work of milliseconds: on the
        // blocking pool it runs beside the downloads and commits instead of stalling them.
        tokio::task::spawn_blocking(move || decode_page(&body, page_number, &extra_content))
            .await
            .map_err(|e| ConnectorError::Transient(format!("page decoding failed: {e}")))?
    }
}

/// One write as the store would receive it: what a dry run shows.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct RemoteRequest {
    pub method: String,
    /// Path and query, e.g. `/rest/all/V1/products/TS-1`.
    pub path: String,
    #[schema(value_type = Object)]
    pub body: Option<Value>,
}

/// What a push writes in one scope: changed fields (`None`: in a store view, use the default
/// value again; in the default scope, clear it) and changed media entries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContentWrites {
    pub fields: std::collections::BTreeMap<String, Option<String>>,
    pub media: Vec<MediaItem>,
}

impl ContentWrites {
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.media.is_empty()
    }
}

/// Calls prepared for a store, sent one by one.
#[derive(Debug)]
pub struct PreparedCall {
    call: Call,
    /// A product save (which the bulk API can carry), not a gallery-entry update.
    product_save: bool,
}

/// How one operation of an asynchronous bulk ended (or not yet).
#[derive(Debug, Clone, PartialEq)]
pub enum BulkOutcome {
    Open,
    Complete,
    /// Worth submitting again.
    Retriable(String),
    Failed(String),
}

impl PreparedCall {
    /// The body of a product save, for the bulk API.
    pub fn product_save_body(&self) -> Option<&Value> {
        self.product_save
            .then_some(self.call.body.as_ref())
            .flatten()
    }

    pub fn describe(&self) -> RemoteRequest {
        RemoteRequest {
            method: self.call.method.to_string(),
            path: {
                let path = self.call.path_and_query();
                if path.starts_with('/') {
                    path
                } else {
                    format!("/{path}")
                }
            },
            body: self.call.body.clone(),
        }
    }
}

impl MagentoConnector {
    /// The scope of each of the attributes `codes` the store has, in one request
    /// (`GET /V1/products/attributes?searchCriteria…` with `attribute_code in …`, ACL
    /// `Magento_Catalog::attributes_attributes`). An attribute reported with a scope other than
    /// `global`, `website` or `store` is left out.
    pub async fn attribute_scopes(
        &self,
        codes: &[String],
    ) -> Result<BTreeMap<String, AttributeScope>, ConnectorError> {
        let mut out = BTreeMap::new();
        if codes.is_empty() {
            return Ok(out);
        }
        let criteria = SearchCriteria::new()
            .any_of([Filter::in_list("attribute_code", codes)])
            .page_size(u32::try_from(codes.len()).unwrap_or(u32::MAX))
            .current_page(1);
        let page = self
            .client
            .search_attributes(&StoreScope::All, &criteria)
            .await;
        self.remember_form().await;
        for item in page.map_err(map_error)?.items {
            let (Some(code), Some(scope)) = (item.value.attribute_code, item.value.scope) else {
                continue;
            };
            let scope = match scope.as_str() {
                "global" => AttributeScope::Global,
                "website" => AttributeScope::Website,
                "store" => AttributeScope::Store,
                _ => continue,
            };
            if codes.contains(&code) {
                out.insert(code, scope);
            }
        }
        Ok(out)
    }

    /// The product as `scope` shows it now; `None` when the store no longer has it.
    pub async fn read_product(
        &self,
        scope: &str,
        sku: &str,
    ) -> Result<Option<PulledProduct>, ConnectorError> {
        let store_scope = parse_scope(scope)?;
        let read = self.client.get_product(&store_scope, sku).await;
        self.remember_form().await;
        match read {
            Ok(parsed) => {
                let warnings = parsed
                    .warnings
                    .iter()
                    .map(|w| format!("{}: {}", w.path, w.message))
                    .collect();
                Ok(to_pulled(parsed.value, &self.extra_content, warnings))
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(map_error(e)),
        }
    }

    /// The products of `scope` with these SKUs, as the scope shows them now: one request per
    /// list of SKUs (`sku in …`, see [`magento::client::sku_lists`]) and a single read for each
    /// SKU no list can carry. Every SKU asked for comes back with what was found (`None`: the
    /// store has no such product) or why it could not be read; when a list fails, its SKUs are
    /// read alone.
    pub async fn read_products(
        &self,
        scope: &str,
        skus: &[&str],
    ) -> HashMap<String, Result<Option<PulledProduct>, ConnectorError>> {
        let mut out = HashMap::with_capacity(skus.len());
        let store_scope = match parse_scope(scope) {
            Ok(s) => s,
            Err(e) => {
                for sku in skus {
                    out.insert(sku.to_string(), Err(e.clone()));
                }
                return out;
            }
        };
        let lists = magento::client::sku_lists(skus.iter().copied());
        let mut alone = lists.alone;
        // The lists side by side, each its own task so that their answers are parsed on every
        // core; the client's limiters keep the store's pace.
        let tasks = lists.lists.iter().map(|list| {
            let client = self.client.clone();
            let scope = store_scope.clone();
            let extra = self.extra_content.clone();
            let list: Vec<String> = list.iter().map(|sku| sku.to_string()).collect();
            tokio::spawn(async move {
                let skus: Vec<&str> = list.iter().map(String::as_str).collect();
                let mut found = client.get_products_by_sku(&scope, &skus).await?;
                Ok::<_, magento::MagentoError>(
                    list.iter()
                        .map(|sku| {
                            let product = found.remove(sku).and_then(|parsed| {
                                let warnings = parsed
                                    .warnings
                                    .iter()
                                    .map(|w| format!("{}: {}", w.path, w.message))
                                    .collect();
                                to_pulled(parsed.value, &extra, warnings)
                            });
                            (sku.clone(), product)
                        })
                        .collect::<Vec<_>>(),
                )
            })
        });
        let answers = futures::future::join_all(tasks).await;
        for (list, answer) in lists.lists.into_iter().zip(answers) {
            match answer {
                Ok(Ok(found)) => {
                    for (sku, product) in found {
                        out.insert(sku, Ok(product));
                    }
                }
                Ok(Err(e)) => match map_error(e) {
                    e @ ConnectorError::NeedsReauth(_) => {
                        for sku in list {
                            out.insert(sku.to_string(), Err(e.clone()));
                        }
                    }
                    // One product the store cannot answer for fails the list: each SKU is read
                    // alone, so only that product's read fails.
                    _ => alone.extend(list),
                },
                // The task did not finish (the runtime is shutting down): read them alone.
                Err(_) => alone.extend(list),
            }
        }
        // Concurrently: the client's limiters keep the store's pace.
        let reads = alone.iter().map(|sku| self.read_product(scope, sku));
        for (sku, read) in alone.iter().zip(futures::future::join_all(reads).await) {
            out.insert(sku.to_string(), read);
        }
        out
    }

    /// The calls that write `writes` in `scope` and nothing else: one product save with only
    /// the changed attributes at the scope's own URL (`/rest/all/V1` for default values, so no
    /// store view gains an override), and one update per changed gallery entry. The gallery
    /// never travels inside the product save: there an omitted id duplicates an image and an
    /// empty list deletes them all.
    pub fn content_calls(
        &self,
        scope: &str,
        sku: &str,
        writes: &ContentWrites,
    ) -> Result<Vec<PreparedCall>, ConnectorError> {
        let store_scope = parse_scope(scope)?;
        let mut calls = Vec::new();
        if !writes.fields.is_empty() {
            let mut product = Product {
                sku: Some(sku.to_string()),
                ..Product::default()
            };
            let mut custom = Vec::new();
            for (field, value) in &writes.fields {
                if is_interface_attribute(field) {
                    // Inside custom_attributes Magento would drop it without a word.
                    match (field.as_str(), value) {
                        ("name", Some(name)) => product.name = Some(name.clone()),
                        (_, None) => {
                            return Err(ConnectorError::Fatal(format!(
                                "`{field}` cannot be set back to \"Use Default Value\" over Magento's REST API: it is a product field, not a custom attribute"
                            )));
                        }
                        _ => {
                            return Err(ConnectorError::Fatal(format!(
                                "`{field}` is a product field Magento does not take as content"
                            )));
                        }
                    }
                    continue;
                }
                let value = match value {
                    Some(v) => AttributeValue::Text(v.clone()),
                    None => AttributeValue::Other(Value::Null),
                };
                custom.push(CustomAttribute::new(field.clone(), value));
            }
            if !custom.is_empty() {
                product.custom_attributes = Some(custom);
            }
            let body = serde_json::json!({"product": serde_json::to_value(&product)
                .map_err(|e| ConnectorError::Fatal(format!("product does not serialise: {e}")))?});
            calls.push(PreparedCall {
                call: MagentoClient::product_save_call(&store_scope, sku, body),
                product_save: true,
            });
        }
        for item in &writes.media {
            let entry = MediaGalleryEntry {
                id: Some(item.entry_id),
                media_type: Some("image".into()),
                label: item.label.clone(),
                position: item.position,
                disabled: Some(item.disabled),
                types: Some(item.roles.clone()),
                ..MediaGalleryEntry::default()
            };
            let call = MagentoClient::media_update_call(&store_scope, sku, item.entry_id, &entry)
                .map_err(map_error)?;
            calls.push(PreparedCall {
                call,
                product_save: false,
            });
        }
        Ok(calls)
    }

    /// Submits product saves in `scope` as one asynchronous bulk
    /// (`PUT /rest/<scope>/async/bulk/V1/products/bySku`); returns the bulk's uuid and, per
    /// item in order, the message of an item Magento refused to schedule.
    pub async fn submit_product_saves(
        &self,
        scope: &str,
        bodies: Vec<Value>,
    ) -> Result<(String, Vec<Option<String>>), ConnectorError> {
        let store_scope = parse_scope(scope)?;
        let count = bodies.len();
        let accepted = self
            .client
            .submit_bulk(
                &store_scope,
                reqwest::Method::PUT,
                magento::scope::Route::new().lit("products/bySku"),
                bodies,
            )
            .await
            .map_err(map_error)?
            .value;
        let uuid = accepted.bulk_uuid.ok_or_else(|| {
            ConnectorError::Transient("Magento answered without a bulk uuid".into())
        })?;
        let mut refused = vec![None; count];
        for item in accepted.request_items.unwrap_or_default() {
            if item.status.as_deref() == Some("rejected")
                && let Some(slot) = item
                    .id
                    .and_then(|id| usize::try_from(id).ok())
                    .and_then(|i| refused.get_mut(i))
            {
                *slot = Some(
                    item.error_message
                        .unwrap_or_else(|| "Magento refused to schedule the operation".into()),
                );
            }
        }
        Ok((uuid, refused))
    }

    /// Each operation's outcome, in submission order (Magento numbers a bulk's operations in
    /// the order of its request items).
    pub async fn bulk_outcomes(&self, uuid: &str) -> Result<Vec<BulkOutcome>, ConnectorError> {
        let status = self
            .client
            .bulk_detailed_status(uuid)
            .await
            .map_err(map_error)?
            .value;
        let mut operations = status.operations_list.unwrap_or_default();
        operations.sort_by_key(|op| op.id.unwrap_or(i64::MAX));
        Ok(operations
            .into_iter()
            .map(|op| {
                let message = op
                    .result_message
                    .clone()
                    .unwrap_or_else(|| "the operation failed".into());
                match op.status {
                    Some(1) => BulkOutcome::Complete,
                    Some(2) => BulkOutcome::Retriable(message),
                    Some(3) | Some(5) => BulkOutcome::Failed(message),
                    _ => BulkOutcome::Open,
                }
            })
            .collect())
    }

    pub async fn send(&self, call: &PreparedCall) -> Result<(), ConnectorError> {
        let sent = self.client.send(&call.call).await;
        self.remember_form().await;
        sent.map_err(map_error)?;
        Ok(())
    }
}

fn parse_scope(scope: &str) -> Result<StoreScope, ConnectorError> {
    StoreScope::parse(scope)
        .map_err(|e| ConnectorError::Fatal(format!("store view {scope:?}: {e}")))
}

fn decode_page(
    body: &[u8],
    page_number: u32,
    extra_content: &[String],
) -> Result<PulledPage, ConnectorError> {
    let page = ProductPage::parse(body, page_number).map_err(map_error)?;
    let mut out = PulledPage {
        total_count: page.total_count,
        ..Default::default()
    };
    for parsed in page.items {
        let warnings = parsed
            .warnings
            .iter()
            .map(|w| format!("{}: {}", w.path, w.message))
            .collect();
        match to_pulled(parsed.value, extra_content, warnings) {
            Some(product) => out.products.push(product),
            None => out.skipped += 1,
        }
    }
    Ok(out)
}

impl Connector for MagentoConnector {
    fn pull_page(&self, query: PageQuery) -> BoxFuture<'_, Result<PulledPage, ConnectorError>> {
        self.pull(query).boxed()
    }
}

pub fn map_error(e: MagentoError) -> ConnectorError {
    if let Some(resource) = e.missing_permission() {
        return ConnectorError::PermissionMissing {
            resource: resource.to_string(),
            message: e.to_string(),
        };
    }
    if let Some(max) = e.max_page_size() {
        return ConnectorError::PageSizeLimit { max };
    }
    match e {
        MagentoError::Unauthorized { .. } => ConnectorError::NeedsReauth(e.to_string()),
        MagentoError::RateLimited { .. }
        | MagentoError::Server { .. }
        | MagentoError::Timeout(_)
        | MagentoError::Connection(_)
        | MagentoError::InvalidResponse(_) => ConnectorError::Transient(e.to_string()),
        MagentoError::NotFound { .. }
        | MagentoError::Rejected { .. }
        | MagentoError::InvalidRequest(_)
        | MagentoError::InvalidConfig(_)
        // Neither an address the policy refuses nor an answer past its cap changes on retry.
        | MagentoError::Refused(_)
        | MagentoError::TooLarge { .. } => ConnectorError::Fatal(e.to_string()),
    }
}

fn text_of(value: &AttributeValue) -> Option<String> {
    match value {
        AttributeValue::Text(s) => Some(s.clone()),
        AttributeValue::Other(Value::Number(n)) => Some(n.to_string()),
        AttributeValue::Other(Value::Bool(b)) => Some(b.to_string()),
        _ => None,
    }
}

fn raw_of(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::Text(s) => Value::String(s.clone()),
        AttributeValue::List(items) => json!(items),
        AttributeValue::Other(v) => v.clone(),
    }
}

/// Maps one Magento product to the neutral model; `None` when it has no SKU to key it by.
fn to_pulled(
    product: Product,
    extra_content: &[String],
    mut warnings: Vec<String>,
) -> Option<PulledProduct> {
    let sku = product.sku.clone().filter(|s| !s.is_empty())?;
    let mut content = Content::default();
    if let Some(name) = &product.name {
        content.fields.insert("name".into(), name.clone());
    }
    let is_content =
        |code: &str| STANDARD_FIELDS.contains(&code) || extra_content.iter().any(|c| c == code);
    let mut attributes = Map::new();
    for attribute in product.custom_attributes.iter().flatten() {
        let code = attribute.attribute_code.as_str();
        if is_content(code) {
            match text_of(&attribute.value) {
                Some(text) => {
                    content.fields.insert(code.to_string(), text);
                }
                None => warnings.push(format!(
                    "custom_attributes.{code}: not text, ignored as content"
                )),
            }
        } else {
            attributes.insert(code.to_string(), raw_of(&attribute.value));
        }
    }
    for entry in product.media_gallery_entries.iter().flatten() {
        let (Some(entry_id), Some(file)) = (entry.id, entry.file.clone()) else {
            warnings.push("media_gallery_entries: an entry without id or file was ignored".into());
            continue;
        };
        content.media.push(MediaItem {
            entry_id,
            file,
            label: entry.label.clone(),
            position: entry.position,
            disabled: entry.disabled.unwrap_or(false),
            roles: entry.types.clone().unwrap_or_default(),
        });
    }
    content
        .media
        .sort_by_key(|m| (m.position.unwrap_or(i64::MAX), m.entry_id));

    let mut put = |key: &str, value: Option<Value>| {
        if let Some(v) = value {
            attributes.insert(key.to_string(), v);
        }
    };
    put("price", product.price.map(|p| json!(p)));
    put(
        "status",
        product
            .status
            .map(|s| json!(if s == 1 { "enabled" } else { "disabled" })),
    );
    put("visibility", product.visibility.map(|v| json!(v)));
    put(
        "attribute_set_id",
        product.attribute_set_id.map(|v| json!(v)),
    );
    put("weight", product.weight.map(|v| json!(v)));
    put("created_at", product.created_at.clone().map(Value::String));
    if let Some(ext) = &product.extension_attributes {
        put("website_ids", ext.website_ids.clone().map(|v| json!(v)));
        put(
            "category_links",
            ext.category_links.as_ref().map(|links| {
                json!(
                    links
                        .iter()
                        .filter_map(|l| l.category_id.clone())
                        .collect::<Vec<_>>()
                )
            }),
        );
        put(
            "child_ids",
            ext.configurable_product_links.clone().map(|v| json!(v)),
        );
    }
    Some(PulledProduct {
        remote_id: product.id,
        updated_at: product.updated_at_utc(),
        type_id: product.type_id.clone(),
        sku,
        content,
        attributes,
        warnings,
    })
}
