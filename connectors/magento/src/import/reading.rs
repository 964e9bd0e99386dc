//! How Magento's importer reads the url key of a row: a model of
//! `app/code/Magento/CatalogImportExport/Model/Import/Product.php` (2.4), so that tests can read
//! an export the way an "Add/Update" import would apply it.
//!
//! In `_saveProducts()` each row goes through `getUrlKey()`:
//!
//! ```text
//! if (!empty($rowData[URL_KEY]))                         → trim(strtolower($rowData[URL_KEY]))
//! elseif (!empty($rowData[COL_NAME])
//!         && (array_key_exists(URL_KEY, $rowData)        ← the column exists, even empty
//!             || !$this->isSkuExist($sku)))              → $this->productUrl->formatUrlKey(name)
//! else                                                   → ''
//! ```
//!
//! and the result is written to the row's store when the cell was filled, or when
//! `isNeedToChangeUrlKey()` says so (a non-empty result, or a new SKU); an empty result on an
//! existing product changes nothing (empty cells arrive as `null` and empty values are not
//! saved). `formatUrlKey()` is `Magento\Framework\Filter\TranslitUrl::filter`: transliterate,
//! replace every run of characters other than `0-9a-z` (case-insensitive) with `-`, lower-case,
//! trim `-`.

/// The url key the importer writes for a row (`None`: the row leaves the url key alone).
/// `columns` is the file's header, `row` the row's cells in that order; `product_exists` is
/// whether the SKU is already in the store.
pub fn url_key_on_import(columns: &[&str], row: &[&str], product_exists: bool) -> Option<String> {
    let cell = |name: &str| {
        columns
            .iter()
            .position(|c| *c == name)
            .and_then(|i| row.get(i).copied())
            .filter(|value| !value.is_empty())
    };
    if let Some(key) = cell("url_key") {
        return Some(php_trim(&key.to_ascii_lowercase()).to_string()).filter(|k| !k.is_empty());
    }
    let name = cell("name")?;
    if columns.contains(&"url_key") || !product_exists {
        Some(format_url_key(name)).filter(|k| !k.is_empty())
    } else {
        None
    }
}

/// `Magento\Catalog\Model\Product\Url::formatUrlKey` (`TranslitUrl::filter`).
pub fn format_url_key(name: &str) -> String {
    let transliterated: String = name.chars().flat_map(transliterate).collect();
    let mut out = String::with_capacity(transliterated.len());
    let mut in_run = false;
    for c in transliterated.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
            in_run = false;
        } else if !in_run {
            out.push('-');
            in_run = true;
        }
    }
    out.trim_matches('-').to_string()
}

/// `Magento\Framework\Filter\Translit`'s table for Latin letters with diacritics; other
/// characters outside ASCII have no transliteration and are dropped, as `iconv`'s
/// `//TRANSLIT//IGNORE` does with what it cannot convert.
fn transliterate(c: char) -> Vec<char> {
    if c.is_ascii() {
        return vec![c];
    }
    let ascii = match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => "a",
        'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' => "A",
        'æ' => "ae",
        'Æ' => "AE",
        'ç' => "c",
        'Ç' => "C",
        'è' | 'é' | 'ê' | 'ë' => "e",
        'È' | 'É' | 'Ê' | 'Ë' => "E",
        'ì' | 'í' | 'î' | 'ï' => "i",
        'Ì' | 'Í' | 'Î' | 'Ï' => "I",
        'ñ' => "n",
        'Ñ' => "N",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' => "o",
        'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' => "O",
        'œ' => "oe",
        'Œ' => "OE",
        'ù' | 'ú' | 'û' | 'ü' => "u",
        'Ù' | 'Ú' | 'Û' | 'Ü' => "U",
        'ý' | 'ÿ' => "y",
        'Ý' => "Y",
        'ß' => "ss",
        _ => "",
    };
    ascii.chars().collect()
}

/// PHP's `trim()` with its default characters.
fn php_trim(text: &str) -> &str {
    text.trim_matches([' ', '\t', '\n', '\r', '\0', '\x0B'])
}

#[cfg(test)]
mod tests {
    use super::*;

    const WITH: &[&str] = &["sku", "store_view_code", "name", "url_key"];
    const WITHOUT: &[&str] = &["sku", "store_view_code", "name"];

    #[test]
    fn an_empty_url_key_cell_makes_a_key_from_the_name() {
        assert_eq!(
            url_key_on_import(WITH, &["TS-1", "fr", "T-shirt rouge", ""], true),
            Some("t-shirt-rouge".to_string())
        );
        assert_eq!(
            url_key_on_import(WITH, &["TS-1", "fr", "T-shirt", "Red-Tee "], true),
            Some("red-tee".to_string())
        );
    }

    #[test]
    fn without_the_column_an_existing_product_keeps_its_key() {
        assert_eq!(
            url_key_on_import(WITHOUT, &["TS-1", "fr", "T-shirt rouge"], true),
            None
        );
        // A new SKU gets one from its name either way.
        assert_eq!(
            url_key_on_import(WITHOUT, &["TS-2", "", "Tee"], false),
            Some("tee".to_string())
        );
        assert_eq!(url_key_on_import(WITH, &["TS-1", "fr", "", ""], true), None);
    }

    #[test]
    fn names_are_transliterated_like_translit_url() {
        assert_eq!(format_url_key("Écharpe d'été — 100 %"), "echarpe-d-ete-100");
        assert_eq!(format_url_key("Straße / Größe"), "strasse-grosse");
        assert_eq!(format_url_key("Шарф"), "");
    }
}
