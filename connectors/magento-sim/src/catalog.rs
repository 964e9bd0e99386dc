//! The generated catalog: deterministic by seed, with realistic flaws the simulator knows.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{Map, Value, json};

/// Content attributes a store view can override.
pub const VIEW_SCOPED: &[&str] = &[
    "name",
    "description",
    "short_description",
    "meta_title",
    "meta_keyword",
    "meta_description",
    "url_key",
];

#[derive(Debug, Clone)]
pub struct MediaEntry {
    pub id: i64,
    pub file: String,
    pub label: Option<String>,
    pub position: i64,
    pub disabled: bool,
    pub types: Vec<String>,
    /// Store-view label overrides.
    pub view_labels: HashMap<String, Option<String>>,
}

#[derive(Debug, Clone)]
pub struct SimProduct {
    pub id: i64,
    pub sku: String,
    pub type_id: String,
    pub price: f64,
    pub status: i64,
    pub visibility: i64,
    pub weight: f64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Default-scope attributes (`name` and custom attributes), only non-null ones.
    pub defaults: BTreeMap<String, Value>,
    /// Store-view overrides.
    pub views: HashMap<String, BTreeMap<String, Value>>,
    pub media: Vec<MediaEntry>,
    pub category_ids: Vec<String>,
    pub child_ids: Vec<i64>,
}

/// A flaw the generator planted on purpose: audits are checked against this list.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct PlantedFlaw {
    pub sku: String,
    /// `all` or a store view code.
    pub store_view: String,
    pub kind: String,
    pub field: String,
}

const ADJECTIVES: &[&str] = &[
    "Classic", "Organic", "Slim", "Vintage", "Premium", "Soft", "Bold", "Light", "Urban", "Cozy",
];
const NOUNS: &[&str] = &[
    "Tee", "Hoodie", "Jacket", "Sneaker", "Backpack", "Mug", "Lamp", "Scarf", "Watch", "Bottle",
];
const COLORS: &[&str] = &[
    "Red", "Blue", "Black", "White", "Green", "Grey", "Navy", "Olive",
];
const FR_NOUNS: &[&str] = &[
    "T-shirt",
    "Sweat",
    "Veste",
    "Basket",
    "Sac à dos",
    "Tasse",
    "Lampe",
    "Écharpe",
    "Montre",
    "Gourde",
];
const DE_NOUNS: &[&str] = &[
    "T-Shirt",
    "Kapuzenpulli",
    "Jacke",
    "Turnschuh",
    "Rucksack",
    "Becher",
    "Lampe",
    "Schal",
    "Uhr",
    "Flasche",
];

/// Text fields a store view in another language is expected to translate.
pub const TRANSLATED: &[&str] = &[
    "name",
    "description",
    "short_description",
    "meta_title",
    "meta_description",
];

fn translated_blurb(view: &str) -> &'static str {
    match view {
        "fr" => "un produit durable pour tous les jours, livraison rapide et retours gratuits.",
        _ => "ein langlebiges Produkt für jeden Tag, schneller Versand und kostenlose Rückgabe.",
    }
}

pub fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

fn odd_sku(i: usize, rng: &mut StdRng) -> String {
    match rng.random_range(0..5) {
        0 => format!("SKU {i} SPACE"),
        1 => format!("SKU+{i}+PLUS"),
        2 => format!("SKU#{i}"),
        3 => format!("SKU/{i}/SLASH"),
        _ => format!("SKU-ÜNÎ-{i}"),
    }
}

/// Generates `count` products for `views` (besides the default scope). The flaws are exactly
/// what an audit with the default settings reports: the same (sku, scope, rule, field) set.
pub fn generate(
    count: usize,
    seed: u64,
    views: &[String],
    now: DateTime<Utc>,
) -> (Vec<SimProduct>, Vec<PlantedFlaw>) {
    let mut products = Vec::with_capacity(count);
    let mut flaws = Vec::new();
    let mut flaw = |sku: &str, view: &str, kind: &str, field: &str| {
        flaws.push(PlantedFlaw {
            sku: sku.into(),
            store_view: view.into(),
            kind: kind.into(),
            field: field.into(),
        });
    };
    let mut media_id = 1i64;
    for i in 0..count {
        let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(i as u64));
        let id = i as i64 + 1;
        let noun = rng.random_range(0..NOUNS.len());
        let adjective = ADJECTIVES[rng.random_range(0..ADJECTIVES.len())];
        let color = COLORS[rng.random_range(0..COLORS.len())];
        let sku = if rng.random_bool(0.03) {
            odd_sku(i, &mut rng)
        } else {
            format!("CD-{:06}", id)
        };
        let mut name = format!("{adjective} {color} {} {}", NOUNS[noun], id);
        if let Some(previous) = products.last().filter(|_| rng.random_bool(0.02)) {
            // Duplicate of the previous product's name: both carry the flaw.
            let previous: &SimProduct = previous;
            name = previous.defaults["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            flaw(&previous.sku, "all", "duplicate_name", "name");
            flaw(&sku, "all", "duplicate_name", "name");
        }
        // Disabled products are not audited for price and categories: nobody sees them.
        let enabled = !rng.random_bool(0.05);
        let mut defaults = BTreeMap::new();
        defaults.insert("name".to_string(), json!(name));
        let description_roll: f64 = rng.random();
        if description_roll < 0.08 {
            flaw(&sku, "all", "missing_description", "description");
        } else if description_roll < 0.12 {
            defaults.insert("description".into(), json!("Nice."));
            flaw(&sku, "all", "description_too_short", "description");
        } else if description_roll < 0.14 {
            defaults.insert(
                "description".into(),
                json!(
                    "<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt.</p>"
                ),
            );
            flaw(&sku, "all", "placeholder_text", "description");
        } else if description_roll < 0.16 {
            defaults.insert(
                "description".into(),
                json!(format!("<p onclick=\"track()\">The {name} in {color}, made for every day with durable materials and a relaxed fit.<script>alert(1)</script><p>Unclosed paragraph")),
            );
            flaw(&sku, "all", "unsafe_html", "description");
            flaw(&sku, "all", "broken_html", "description");
        } else {
            defaults.insert(
                "description".into(),
                json!(format!(
                    "<p>The {name} is made for every day: {adjective} design, durable materials and a fit that works.</p><ul><li>Colour: {color}</li><li>Care: machine wash</li></ul>"
                )),
            );
        }
        defaults.insert(
            "short_description".into(),
            json!(format!("{adjective} {color} {}", NOUNS[noun])),
        );
        let meta_roll: f64 = rng.random();
        if meta_roll < 0.05 {
            defaults.insert(
                "meta_title".into(),
                json!(format!(
                    "{name} | Buy the best {color} {} online today at our shop",
                    NOUNS[noun]
                )),
            );
            flaw(&sku, "all", "meta_title_too_long", "meta_title");
        } else if meta_roll < 0.15 {
            flaw(&sku, "all", "missing_meta_title", "meta_title");
        } else {
            defaults.insert("meta_title".into(), json!(name.clone()));
        }
        if rng.random_bool(0.1) {
            flaw(&sku, "all", "missing_meta_description", "meta_description");
        } else {
            defaults.insert(
                "meta_description".into(),
                json!(format!("Shop the {name}: {adjective} design in {color}, free returns and fast delivery.")),
            );
        }
        if rng.random_bool(0.02) {
            defaults.insert(
                "meta_keyword".into(),
                json!(format!(
                    "{0}, {0}, {0}, {0}, {0}, {0}, cheap {0}",
                    NOUNS[noun].to_lowercase()
                )),
            );
            flaw(&sku, "all", "keyword_stuffing", "meta_keyword");
        } else {
            defaults.insert(
                "meta_keyword".into(),
                json!(format!(
                    "{}, {}",
                    NOUNS[noun].to_lowercase(),
                    color.to_lowercase()
                )),
            );
        }
        let url_key = if rng.random_bool(0.02) {
            flaw(&sku, "all", "url_key_not_slug", "url_key");
            format!("{} {}", name, "Key")
        } else {
            format!("{}-{}", slug(&name), id)
        };
        defaults.insert("url_key".into(), json!(url_key));
        let no_category = rng.random_bool(0.02);
        let category_ids = if no_category {
            vec![]
        } else {
            vec![format!("{}", 3 + noun)]
        };
        if !category_ids.is_empty() {
            defaults.insert("category_ids".into(), json!(category_ids));
        }
        defaults.insert("tax_class_id".into(), json!("2"));
        let price = if rng.random_bool(0.02) {
            0.0
        } else {
            (rng.random_range(500..20000) as f64) / 100.0
        };
        // Configurable products take their price from their children.
        if price == 0.0 && enabled && i % 50 != 49 {
            flaw(&sku, "all", "price_zero", "price");
        }
        if no_category && enabled {
            flaw(&sku, "all", "no_category", "category_ids");
        }

        let mut media = Vec::new();
        if rng.random_bool(0.05) {
            flaw(&sku, "all", "no_images", "media");
        } else {
            for position in 1..=rng.random_range(1..=3) {
                let empty_label = rng.random_bool(0.1);
                if empty_label {
                    flaw(
                        &sku,
                        "all",
                        "missing_alt_text",
                        &format!("media.{media_id}"),
                    );
                }
                media.push(MediaEntry {
                    id: media_id,
                    file: format!("/c/d/{}-{position}.png", slug(&sku)),
                    label: (!empty_label).then(|| format!("{name} view {position}")),
                    position,
                    disabled: false,
                    types: if position == 1 {
                        vec!["image".into(), "small_image".into(), "thumbnail".into()]
                    } else {
                        vec![]
                    },
                    view_labels: HashMap::new(),
                });
                media_id += 1;
            }
        }

        let mut overrides = HashMap::new();
        for view in views {
            let local = match view.as_str() {
                "fr" => Some(FR_NOUNS[noun]),
                "de" => Some(DE_NOUNS[noun]),
                _ => None,
            };
            let Some(local) = local else { continue };
            let mut o = BTreeMap::new();
            if rng.random_bool(0.9) {
                let title = format!("{local} {color} {id}");
                o.insert(
                    "description".to_string(),
                    json!(format!(
                        "<p>{title} ({}) — {}</p>",
                        color.to_lowercase(),
                        translated_blurb(view)
                    )),
                );
                o.insert(
                    "short_description".to_string(),
                    json!(format!("{local} {color} {id}, {}", color.to_lowercase())),
                );
                o.insert(
                    "meta_description".to_string(),
                    json!(format!("{title}: {}", translated_blurb(view))),
                );
                o.insert("name".to_string(), json!(title.clone()));
                o.insert("meta_title".to_string(), json!(title));
            } else {
                // Left inheriting the default text although the view's locale differs.
                for field in TRANSLATED {
                    if defaults.contains_key(*field) {
                        flaw(&sku, view, "untranslated", field);
                    }
                }
            }
            if !o.is_empty() {
                overrides.insert(view.clone(), o);
            }
        }
        let age_days = rng.random_range(1..400);
        let created_at = now - Duration::days(age_days);
        let updated_at = created_at + Duration::hours(rng.random_range(0..(age_days * 24).max(1)));
        products.push(SimProduct {
            id,
            sku,
            type_id: if i % 50 == 49 {
                "configurable".into()
            } else {
                "simple".into()
            },
            price,
            status: if enabled { 1 } else { 2 },
            visibility: 4,
            weight: (rng.random_range(1..50) as f64) / 10.0,
            created_at,
            updated_at,
            defaults,
            views: overrides,
            media,
            category_ids,
            child_ids: Vec::new(),
        });
    }
    // Configurable products take the simple products before them as children.
    for i in 0..products.len() {
        if products[i].type_id == "configurable" {
            let children: Vec<i64> = products[i.saturating_sub(3)..i]
                .iter()
                .map(|p| p.id)
                .collect();
            products[i].child_ids = children;
        }
    }
    flaws.sort_by(|a, b| {
        (&a.sku, &a.store_view, &a.kind, &a.field).cmp(&(&b.sku, &b.store_view, &b.kind, &b.field))
    });
    flaws.dedup();
    (products, flaws)
}

pub fn format_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

impl SimProduct {
    /// The effective value of an attribute in `view` (`None` = default scope).
    pub fn value(&self, view: Option<&str>, code: &str) -> Option<&Value> {
        view.and_then(|v| self.views.get(v))
            .and_then(|o| o.get(code))
            .or_else(|| self.defaults.get(code))
    }

    /// The product as Magento's REST API shows it in `view` (`None` = `/rest/all`).
    pub fn to_json(&self, view: Option<&str>) -> Value {
        let mut custom = Vec::new();
        let mut codes: Vec<&String> = self.defaults.keys().collect();
        if let Some(o) = view.and_then(|v| self.views.get(v)) {
            codes.extend(o.keys());
        }
        codes.sort();
        codes.dedup();
        for code in codes {
            if code == "name" {
                continue;
            }
            if let Some(value) = self.value(view, code).filter(|v| !v.is_null()) {
                custom.push(json!({"attribute_code": code, "value": value}));
            }
        }
        let media: Vec<Value> = self
            .media
            .iter()
            .map(|m| {
                let label = view
                    .and_then(|v| m.view_labels.get(v))
                    .cloned()
                    .unwrap_or_else(|| m.label.clone());
                json!({"id": m.id, "media_type": "image", "label": label, "position": m.position,
                       "disabled": m.disabled, "types": m.types, "file": m.file})
            })
            .collect();
        let mut ext = Map::new();
        ext.insert("website_ids".into(), json!([1]));
        ext.insert(
            "category_links".into(),
            json!(
                self.category_ids
                    .iter()
                    .map(|c| json!({"position": 0, "category_id": c}))
                    .collect::<Vec<_>>()
            ),
        );
        if self.type_id == "configurable" {
            ext.insert("configurable_product_links".into(), json!(self.child_ids));
            ext.insert("configurable_product_options".into(), json!([]));
        }
        json!({
            "id": self.id,
            "sku": self.sku,
            "name": self.value(view, "name"),
            "attribute_set_id": 4,
            "price": self.price,
            "status": self.status,
            "visibility": self.visibility,
            "type_id": self.type_id,
            "created_at": format_time(self.created_at),
            "updated_at": format_time(self.updated_at),
            "weight": self.weight,
            "extension_attributes": ext,
            "product_links": [],
            "options": [],
            "media_gallery_entries": media,
            "tier_prices": [],
            "custom_attributes": custom,
        })
    }
}

/// A tiny valid PNG (1×1, one colour from the file name), served for every image.
pub fn png_for(file: &str) -> Vec<u8> {
    // A 1×1 RGB picture; a text chunk naming the file makes each file's bytes (and hash) distinct.
    let mut png = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    let chunk = |png: &mut Vec<u8>, kind: &[u8], data: &[u8]| {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc_input = kind.to_vec();
        crc_input.extend_from_slice(data);
        png.extend_from_slice(&crc_input);
        png.extend_from_slice(&crc32(&crc_input).to_be_bytes());
    };
    chunk(&mut png, b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0]);
    let mut text = b"Title\0".to_vec();
    text.extend_from_slice(file.as_bytes());
    chunk(&mut png, b"tEXt", &text);
    // zlib stream of one scanline: filter byte 0, then RGB #cc3366.
    chunk(
        &mut png,
        b"IDAT",
        &[
            0x78, 0x9c, 0x63, 0x38, 0x63, 0x9c, 0x06, 0x00, 0x03, 0x34, 0x01, 0x66,
        ],
    );
    chunk(&mut png, b"IEND", &[]);
    png
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                0xEDB8_8320 ^ (crc >> 1)
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
