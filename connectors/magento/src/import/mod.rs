//! Magento's native `catalog_product` import CSV, content columns only: an
//! "Add/Update" import of it changes the content and nothing else (empty cells are ignored).
//!
//! One default row per product (empty `store_view_code`) with its default values, then one
//! row per store view that overrides something, holding only the overrides. A view that must
//! show nothing where the default has a value gets Magento's empty-value constant. Image
//! labels need their image path in the same row, so a view's alt texts repeat the path.
//!
//! Url keys: Magento's importer (`app/code/Magento/CatalogImportExport/Model/Import/Product.php`,
//! `getUrlKey()` and `isNeedToChangeUrlKey()`, read in [`reading`]) builds a url key from the
//! row's `name` whenever the file has a `url_key` column and the row's cell is empty. A store
//! view that translates the name but inherits the url key would get a new url key (and new
//! URL rewrites) on import. So the column is written only when the export changes a url key
//! ([`Writer::new`]), and then every row with a name carries its effective url key; otherwise
//! it is left out ([`Writer::without_url_key`]) and the importer keeps every url key.

pub mod reading;

use std::collections::BTreeMap;
use std::io::Write;

/// What the writer needs of a product's content in one scope: field values by our names
/// (`meta_keyword`, not the column's `meta_keywords`) and its gallery.
pub trait ImportContent {
    fn field(&self, name: &str) -> Option<&str>;
    /// Nothing set in this scope (a store view that inherits everything gets no row).
    fn is_empty(&self) -> bool;
    fn images(&self) -> Vec<Image<'_>>;
}

/// A gallery entry as the writer reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image<'a> {
    pub entry_id: i64,
    /// The path in the store's media directory, e.g. `/t/e/tee.jpg`.
    pub file: &'a str,
    pub label: Option<&'a str>,
    pub position: Option<i64>,
    pub disabled: bool,
    /// `image`, `small_image`, `thumbnail`.
    pub roles: &'a [String],
}

/// Plain owned content, for callers without a model of their own (and the tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductContent {
    pub fields: BTreeMap<String, String>,
    pub images: Vec<OwnedImage>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedImage {
    pub entry_id: i64,
    pub file: String,
    pub label: Option<String>,
    pub position: Option<i64>,
    pub disabled: bool,
    pub roles: Vec<String>,
}

impl ImportContent for ProductContent {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
    fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.images.is_empty()
    }
    fn images(&self) -> Vec<Image<'_>> {
        self.images
            .iter()
            .map(|i| Image {
                entry_id: i.entry_id,
                file: &i.file,
                label: i.label.as_deref(),
                position: i.position,
                disabled: i.disabled,
                roles: &i.roles,
            })
            .collect()
    }
}

/// Magento clears a value only when a cell holds this; an empty cell is ignored.
pub const EMPTY_VALUE: &str = "__EMPTY__VALUE__";

/// Columns in Magento's export order (REFERENCE §7), the content subset.
pub const COLUMNS: &[&str] = &[
    "sku",
    "store_view_code",
    "name",
    "description",
    "short_description",
    "url_key",
    "meta_title",
    "meta_keywords",
    "meta_description",
    "base_image",
    "base_image_label",
    "small_image",
    "small_image_label",
    "thumbnail_image",
    "thumbnail_image_label",
    "additional_images",
    "additional_image_labels",
];

/// Our field names for Magento's column names where they differ.
fn field_of(column: &str) -> &str {
    match column {
        "meta_keywords" => "meta_keyword",
        other => other,
    }
}

const TEXT_COLUMNS: &[&str] = &[
    "name",
    "description",
    "short_description",
    "url_key",
    "meta_title",
    "meta_keywords",
    "meta_description",
];

/// First characters that make a spreadsheet read a cell as a formula (OWASP's "CSV injection").
const FORMULA_STARTS: [char; 4] = ['=', '+', '-', '@'];

/// A problem found while writing, reported in the export's summary.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Issue {
    pub sku: String,
    pub store_view: String,
    pub problem: String,
}

pub struct Writer<W: Write> {
    csv: csv::Writer<W>,
    columns: Vec<&'static str>,
    /// Multi-value separator of the import (Magento's default `,`).
    separator: char,
    pub rows: u64,
    pub issues: Vec<Issue>,
    /// Cells a spreadsheet would run as formulas: not a problem for Magento's import (the cell
    /// stays exact), so kept apart from `issues` for strict exports, but worth telling whoever
    /// opens the file.
    pub spreadsheet_warnings: Vec<Issue>,
}

impl<W: Write> Writer<W> {
    /// Every column of [`COLUMNS`], `url_key` included: for an export that changes url keys.
    /// Every row with a name then carries its effective url key (the view's own, else the
    /// default's), so the importer never makes one from the name.
    pub fn new(out: W) -> Result<Writer<W>, csv::Error> {
        Writer::with_columns(out, COLUMNS.to_vec())
    }

    /// Without the `url_key` column: for an export that changes no url key. Magento's importer
    /// then keeps every product's url key, whatever the rows' names.
    pub fn without_url_key(out: W) -> Result<Writer<W>, csv::Error> {
        Writer::with_columns(
            out,
            COLUMNS
                .iter()
                .copied()
                .filter(|c| *c != "url_key")
                .collect(),
        )
    }

    fn with_columns(out: W, columns: Vec<&'static str>) -> Result<Writer<W>, csv::Error> {
        let mut csv = csv::WriterBuilder::new()
            .quote_style(csv::QuoteStyle::Necessary)
            .from_writer(out);
        csv.write_record(&columns)?;
        Ok(Writer {
            csv,
            columns,
            separator: ',',
            rows: 0,
            issues: Vec::new(),
            spreadsheet_warnings: Vec::new(),
        })
    }

    /// The header as written.
    pub fn columns(&self) -> &[&'static str] {
        &self.columns
    }

    fn has_url_key_column(&self) -> bool {
        self.columns.contains(&"url_key")
    }

    /// Writes a product: its default row, then a row per store view in `views` that differs.
    pub fn product<C: ImportContent>(
        &mut self,
        sku: &str,
        default: &C,
        views: &[(String, C)],
    ) -> Result<(), csv::Error> {
        let row = self.row(sku, "", default, None);
        self.write(sku, "", &row)?;
        for (code, overrides) in views {
            if overrides.is_empty() {
                continue;
            }
            let row = self.row(sku, code, overrides, Some(default));
            self.write(sku, code, &row)?;
        }
        Ok(())
    }

    fn write(&mut self, sku: &str, view: &str, row: &[String]) -> Result<(), csv::Error> {
        for (column, cell) in self.columns.iter().zip(row) {
            if let Some(first) = cell.chars().next().filter(|c| FORMULA_STARTS.contains(c)) {
                self.spreadsheet_warnings.push(Issue {
                    sku: sku.to_string(),
                    store_view: view.to_string(),
                    problem: format!(
                        "{column} starts with {first:?}: a spreadsheet opening this file may \
                         run it as a formula. The file keeps it exact for Magento's import; \
                         open it in a spreadsheet only as text"
                    ),
                });
            }
        }
        self.csv.write_record(row)?;
        self.rows += 1;
        Ok(())
    }

    fn row<C: ImportContent>(
        &mut self,
        sku: &str,
        view: &str,
        content: &C,
        default: Option<&C>,
    ) -> Vec<String> {
        let mut cells: BTreeMap<&str, String> = BTreeMap::new();
        cells.insert("sku", sku.to_string());
        cells.insert("store_view_code", view.to_string());
        for column in TEXT_COLUMNS {
            let field = field_of(column);
            match content.field(field) {
                Some(value) if value.is_empty() && default.is_some() => {
                    // The view shows nothing where the default has a value.
                    cells.insert(column, EMPTY_VALUE.to_string());
                }
                Some(value) => {
                    cells.insert(column, value.to_string());
                }
                None => {}
            }
        }
        if self.has_url_key_column() {
            self.carry_url_key(sku, view, content, default, &mut cells);
        }
        self.images(sku, view, content, &mut cells);
        self.columns
            .iter()
            .map(|c| cells.remove(c).unwrap_or_default())
            .collect()
    }

    /// A row with a name and an empty `url_key` cell gets a url key made from the name on
    /// import (see [`reading::url_key_on_import`]): write the effective one instead.
    fn carry_url_key<C: ImportContent>(
        &mut self,
        sku: &str,
        view: &str,
        content: &C,
        default: Option<&C>,
        cells: &mut BTreeMap<&'static str, String>,
    ) {
        let has_name = cells.get("name").is_some_and(|name| !name.is_empty());
        if !has_name || cells.get("url_key").is_some_and(|key| !key.is_empty()) {
            return;
        }
        let effective = content
            .field("url_key")
            .or_else(|| default.and_then(|d| d.field("url_key")))
            .filter(|key| !key.is_empty());
        match effective {
            Some(key) => {
                cells.insert("url_key", key.to_string());
            }
            None => self.issues.push(Issue {
                sku: sku.to_string(),
                store_view: view.to_string(),
                problem: "the row has a name but the product has no url key here: Magento's \
                          import will make one from the name"
                    .to_string(),
            }),
        }
    }

    /// Image columns: the role images and the rest as additional images, each with its label.
    /// In a view row only entries whose label the view overrides are written.
    fn images<C: ImportContent>(
        &mut self,
        sku: &str,
        view: &str,
        content: &C,
        cells: &mut BTreeMap<&'static str, String>,
    ) {
        let mut media: Vec<Image<'_>> = content
            .images()
            .into_iter()
            .filter(|m| !m.disabled)
            .collect();
        media.sort_by_key(|m| (m.position.unwrap_or(i64::MAX), m.entry_id));
        let mut additional = Vec::new();
        let mut labels = Vec::new();
        for item in media {
            let Some(path) = importable_path(item.file) else {
                self.issues.push(Issue {
                    sku: sku.to_string(),
                    store_view: view.to_string(),
                    problem: format!(
                        "image path {:?} has characters Magento's import refuses",
                        item.file
                    ),
                });
                continue;
            };
            let label = item.label.unwrap_or_default().to_string();
            if label.contains(self.separator) {
                // The importer splits `additional_image_labels` on the separator, so this
                // label would shift every label after it onto the wrong image.
                self.issues.push(Issue {
                    sku: sku.to_string(),
                    store_view: view.to_string(),
                    problem: format!(
                        "the label {label:?} of image {path:?} contains {:?}, Magento's \
                         multi-value separator: in additional_image_labels it is written \
                         with {:?} replaced by a space",
                        self.separator, self.separator
                    ),
                });
                labels.push(label.replace(self.separator, " "));
            } else {
                labels.push(label.clone());
            }
            additional.push(path.clone());
            for (role, column, label_column) in [
                ("image", "base_image", "base_image_label"),
                ("small_image", "small_image", "small_image_label"),
                ("thumbnail", "thumbnail_image", "thumbnail_image_label"),
            ] {
                if item.roles.iter().any(|r| r == role) {
                    cells.insert(column, path.clone());
                    cells.insert(label_column, label.clone());
                }
            }
        }
        if !additional.is_empty() {
            let sep = self.separator.to_string();
            cells.insert("additional_images", additional.join(&sep));
            cells.insert("additional_image_labels", labels.join(&sep));
        }
    }

    pub fn finish(self) -> Result<W, csv::Error> {
        self.csv
            .into_inner()
            .map_err(|e| csv::Error::from(std::io::Error::other(e.to_string())))
    }
}

/// Magento's gallery paths (`/t/e/tee.jpg`) relative to the import images directory.
pub fn import_path(file: &str) -> String {
    file.trim_start_matches('/').to_string()
}

/// [`import_path`] when it has letters, digits, `_ - . /` only (REFERENCE §7) and no way out
/// of the directory (no `..`, no empty segment, so nothing absolute; no `\`): what Magento's
/// own uploader produces ([`crate::models::gallery_path`]). Both the CSV's image columns and a
/// ZIP's `images/` entries are named by it, so neither can point outside the import directory.
pub fn importable_path(file: &str) -> Option<String> {
    let path = import_path(file);
    crate::models::gallery_path(&path).is_some().then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(pairs: &[(&str, &str)]) -> ProductContent {
        ProductContent {
            fields: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            images: vec![],
        }
    }

    fn read(bytes: &[u8]) -> Vec<csv::StringRecord> {
        csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(bytes)
            .records()
            .map(|r| r.unwrap())
            .collect()
    }

    #[test]
    fn nasty_values_read_back_exactly() {
        let nasty = [
            "Quote \" inside, and a comma",
            "Line one\nLine two\r\nthree",
            "<p class=\"x\">HTML &amp; entities</p>",
            "Emoji 🧣 and עברית right-to-left",
            ",,,",
            "\"",
            "trailing space ",
        ];
        let mut w = Writer::new(Vec::new()).unwrap();
        for (i, value) in nasty.iter().enumerate() {
            let c = content(&[
                ("name", value),
                ("description", value),
                ("meta_keyword", value),
            ]);
            w.product(&format!("SKU-{i}"), &c, &[]).unwrap();
        }
        let bytes = w.finish().unwrap();
        let rows = read(&bytes);
        assert_eq!(rows[0].iter().collect::<Vec<_>>(), COLUMNS);
        for (i, value) in nasty.iter().enumerate() {
            let row = &rows[i + 1];
            assert_eq!(&row[0], format!("SKU-{i}"));
            assert_eq!(&row[2], *value, "name");
            assert_eq!(&row[3], *value, "description");
            assert_eq!(&row[7], *value, "meta_keywords");
        }
    }

    #[test]
    fn formula_like_cells_stay_exact_and_are_reported_for_spreadsheets() {
        let default = content(&[
            ("name", "=HYPERLINK(\"http://x.example\",\"Tee\")"),
            ("description", "- cotton\n- wool"),
            ("meta_title", "a = b, + c"),
        ]);
        let french = content(&[("meta_keyword", "@SUM(A1)"), ("name", "+33 Tee")]);
        let mut w = Writer::without_url_key(Vec::new()).unwrap();
        w.product("-SKU", &default, &[("fr".to_string(), french)])
            .unwrap();
        assert!(w.issues.is_empty(), "{:?}", w.issues);
        let mut flagged: Vec<(String, String)> = w
            .spreadsheet_warnings
            .iter()
            .map(|i| {
                let column = i.problem.split_whitespace().next().unwrap().to_string();
                (i.store_view.clone(), column)
            })
            .collect();
        flagged.sort();
        let expected = [
            ("", "description"),
            ("", "name"),
            ("", "sku"),
            ("fr", "meta_keywords"),
            ("fr", "name"),
            ("fr", "sku"),
        ];
        assert_eq!(
            flagged,
            expected.map(|(v, c)| (v.to_string(), c.to_string()))
        );
        assert!(w.spreadsheet_warnings.iter().all(|i| i.sku == "-SKU"));
        let rows = read(&w.finish().unwrap());
        assert_eq!(&rows[1][2], "=HYPERLINK(\"http://x.example\",\"Tee\")");
        assert_eq!(&rows[1][3], "- cotton\n- wool");
        assert_eq!(&rows[2][2], "+33 Tee");
    }

    #[test]
    fn only_paths_inside_the_import_directory_are_importable() {
        assert_eq!(
            importable_path("/t/e/tee.jpg").as_deref(),
            Some("t/e/tee.jpg")
        );
        assert_eq!(
            importable_path("t/e/tee-2_b.png").as_deref(),
            Some("t/e/tee-2_b.png")
        );
        for hostile in [
            "/../../etc/cron.d/x.jpg",
            "/t/../../x.jpg",
            "..",
            "/t/e/..",
            "t\\..\\x.jpg",
            "C:/x.jpg",
            "/t//x.jpg",
            "/t/e/x.jpg?v=1",
            "",
        ] {
            assert_eq!(importable_path(hostile), None, "{hostile:?}");
        }
    }

    #[test]
    fn view_rows_hold_overrides_and_clear_with_the_empty_constant() {
        let default = content(&[
            ("name", "Tee"),
            ("description", "Soft"),
            ("meta_title", "Tee"),
        ]);
        let french = content(&[("name", "T-shirt"), ("meta_title", "")]);
        let german = ProductContent::default();
        let mut w = Writer::new(Vec::new()).unwrap();
        w.product(
            "TS-1",
            &default,
            &[("fr".into(), french), ("de".into(), german)],
        )
        .unwrap();
        assert_eq!(w.rows, 2, "a view without overrides has no row");
        let rows = read(&w.finish().unwrap());
        let fr = &rows[2];
        assert_eq!(&fr[1], "fr");
        assert_eq!(&fr[2], "T-shirt");
        assert_eq!(
            &fr[3], "",
            "an inherited description stays empty: ignored on import"
        );
        assert_eq!(&fr[6], EMPTY_VALUE);
    }

    #[test]
    fn images_keep_their_roles_labels_and_paths() {
        let mut c = content(&[("name", "Tee"), ("url_key", "tee")]);
        c.images = vec![
            OwnedImage {
                entry_id: 2,
                file: "/t/e/tee-back.jpg".into(),
                label: Some("Back, left".into()),
                position: Some(2),
                disabled: false,
                roles: vec![],
            },
            OwnedImage {
                entry_id: 1,
                file: "/t/e/tee.jpg".into(),
                label: Some("Front".into()),
                position: Some(1),
                disabled: false,
                roles: vec!["image".into(), "small_image".into(), "thumbnail".into()],
            },
            OwnedImage {
                entry_id: 3,
                file: "/t/e/bad name.jpg".into(),
                label: None,
                position: Some(3),
                disabled: false,
                roles: vec![],
            },
        ];
        let mut w = Writer::new(Vec::new()).unwrap();
        w.product("TS-1", &c, &[]).unwrap();
        let problems: Vec<&str> = w.issues.iter().map(|i| i.problem.as_str()).collect();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("\"Back, left\"") && problems[0].contains("separator"),
            "a label holding the separator is reported: {problems:?}"
        );
        assert!(
            problems[1].contains("bad name.jpg"),
            "a path with a space is reported, not written: {problems:?}"
        );
        let rows = read(&w.finish().unwrap());
        let row = &rows[1];
        let col = |name: &str| &row[COLUMNS.iter().position(|c| *c == name).unwrap()];
        assert_eq!(col("base_image"), "t/e/tee.jpg");
        assert_eq!(col("base_image_label"), "Front");
        assert_eq!(col("thumbnail_image"), "t/e/tee.jpg");
        assert_eq!(col("additional_images"), "t/e/tee.jpg,t/e/tee-back.jpg");
        assert_eq!(col("additional_image_labels"), "Front,Back  left");
    }

    /// Every row as Magento's importer would apply its url key (`reading`), keyed by
    /// (sku, store view).
    fn url_keys_on_import(bytes: &[u8]) -> Vec<(String, String, Option<String>)> {
        let rows = read(bytes);
        let header: Vec<&str> = rows[0].iter().collect();
        rows[1..]
            .iter()
            .map(|row| {
                let cells: Vec<&str> = row.iter().collect();
                (
                    row[0].to_string(),
                    row[1].to_string(),
                    reading::url_key_on_import(&header, &cells, true),
                )
            })
            .collect()
    }

    #[test]
    fn translated_names_keep_their_url_keys_on_import() {
        let default = content(&[("name", "Red tee"), ("url_key", "red-tee")]);
        let french = content(&[("name", "T-shirt rouge")]);
        let german = content(&[("name", "Rotes T-Shirt"), ("url_key", "rotes-t-shirt")]);
        let views = [("fr".to_string(), french), ("de".to_string(), german)];

        // Nothing changes a url key: the column is left out and the importer keeps them all.
        let mut w = Writer::without_url_key(Vec::new()).unwrap();
        assert!(!w.columns().contains(&"url_key"));
        w.product("TS-1", &default, &views).unwrap();
        let applied = url_keys_on_import(&w.finish().unwrap());
        assert_eq!(applied.len(), 3);
        assert!(
            applied.iter().all(|(_, _, key)| key.is_none()),
            "{applied:?}"
        );

        // With the column, each named row carries its effective key: the importer sets each
        // row's key to what the store already shows.
        let mut w = Writer::new(Vec::new()).unwrap();
        w.product("TS-1", &default, &views).unwrap();
        assert!(w.issues.is_empty(), "{:?}", w.issues);
        let applied = url_keys_on_import(&w.finish().unwrap());
        assert_eq!(
            applied,
            vec![
                ("TS-1".into(), "".into(), Some("red-tee".into())),
                ("TS-1".into(), "fr".into(), Some("red-tee".into())),
                ("TS-1".into(), "de".into(), Some("rotes-t-shirt".into())),
            ]
        );
    }

    #[test]
    fn a_named_row_without_any_url_key_is_reported() {
        let default = content(&[("name", "Red tee")]);
        let mut w = Writer::new(Vec::new()).unwrap();
        w.product("TS-1", &default, &[]).unwrap();
        assert_eq!(w.issues.len(), 1);
        assert!(
            w.issues[0].problem.contains("from the name"),
            "{:?}",
            w.issues
        );
        // A view row without a name needs no url key.
        let mut w = Writer::new(Vec::new()).unwrap();
        let default = content(&[("name", "Red tee"), ("url_key", "red-tee")]);
        w.product(
            "TS-1",
            &default,
            &[("fr".into(), content(&[("description", "Doux")]))],
        )
        .unwrap();
        let applied = url_keys_on_import(&w.finish().unwrap());
        assert_eq!(applied[1], ("TS-1".into(), "fr".into(), None));
    }

    fn text() -> impl proptest::strategy::Strategy<Value = String> {
        // Any text, weighted towards what breaks CSV: quotes, separators, newlines, HTML.
        proptest::prop_oneof![
            ".{0,40}",
            "[\",\"\r\n<>&;|= a-zé🧣\u{202e}]{0,40}",
            proptest::strategy::Just(String::new()),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(256))]
        #[test]
        fn every_text_cell_reads_back_exactly(
            name in text(),
            description in text(),
            meta_title in text(),
            meta_keyword in text(),
            view_name in proptest::option::of(text()),
        ) {
            proptest::prop_assume!(![&name, &description, &meta_title, &meta_keyword]
                .iter()
                .any(|v| v.as_str() == EMPTY_VALUE));
            let default = content(&[
                ("name", &name),
                ("description", &description),
                ("meta_title", &meta_title),
                ("meta_keyword", &meta_keyword),
            ]);
            let views = match &view_name {
                Some(v) => vec![("fr".to_string(), content(&[("name", v)]))],
                None => vec![],
            };
            let mut w = Writer::new(Vec::new()).unwrap();
            w.product("SKU,\"1\"", &default, &views).unwrap();
            let bytes = w.finish().unwrap();
            let rows = read(&bytes);
            proptest::prop_assert_eq!(rows.len(), 2 + views.len());
            let column = |name: &str| COLUMNS.iter().position(|c| *c == name).unwrap();
            let row = &rows[1];
            proptest::prop_assert_eq!(&row[column("sku")], "SKU,\"1\"");
            proptest::prop_assert_eq!(&row[column("name")], name.as_str());
            proptest::prop_assert_eq!(&row[column("description")], description.as_str());
            proptest::prop_assert_eq!(&row[column("meta_title")], meta_title.as_str());
            proptest::prop_assert_eq!(&row[column("meta_keywords")], meta_keyword.as_str());
            if let Some(v) = view_name {
                let view_row = &rows[2];
                proptest::prop_assert_eq!(&view_row[column("store_view_code")], "fr");
                // An empty override clears the inherited value with Magento's constant.
                let expected = if v.is_empty() { EMPTY_VALUE.to_string() } else { v };
                proptest::prop_assert_eq!(&view_row[column("name")], expected.as_str());
                proptest::prop_assert_eq!(&view_row[column("description")], "");
            }
        }
    }
}
