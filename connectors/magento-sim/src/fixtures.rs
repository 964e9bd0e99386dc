//! Products a test adds by hand, such as SKUs with characters that travel escaped in paths.

use serde_json::json;

use crate::MagentoSim;
use crate::catalog::{MediaEntry, SimProduct};

impl MagentoSim {
    /// Adds a simple product named `name` with one image (as if created in the admin); `false`
    /// when the SKU exists already.
    pub fn create_product(&self, sku: &str, name: &str) -> bool {
        let now = self.now();
        let mut catalog = self.inner.catalog.write().expect("catalog");
        if catalog.get(sku).is_some() {
            return false;
        }
        let id = catalog.next_id;
        catalog.next_id += 1;
        let media_id = self.inner.next_media_id(&mut catalog);
        let index = catalog.products.len();
        catalog.products.push(SimProduct {
            id,
            sku: sku.to_string(),
            type_id: "simple".into(),
            price: 10.0,
            status: 1,
            visibility: 4,
            weight: 1.0,
            created_at: now,
            updated_at: now,
            defaults: [
                ("name".to_string(), json!(name)),
                ("url_key".to_string(), json!(format!("hand-made-{id}"))),
            ]
            .into_iter()
            .collect(),
            views: Default::default(),
            media: vec![MediaEntry {
                id: media_id,
                file: format!("/h/a/hand-made-{id}.png"),
                label: None,
                position: 1,
                disabled: false,
                types: vec!["image".into()],
                view_labels: Default::default(),
            }],
            category_ids: Vec::new(),
            child_ids: Vec::new(),
        });
        catalog.by_sku.insert(sku.to_string(), index);
        true
    }
}
