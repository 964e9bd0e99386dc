//! Whatever a store answers, reading it never panics, and a product we read is written back
//! and read again as the same product (nothing lost or invented).

#![no_main]

use libfuzzer_sys::fuzz_target;
use magento::models::{FromMagento, Product, ProductPage};

fuzz_target!(|data: &[u8]| {
    if let Ok(page) = ProductPage::parse(data, 1) {
        for item in page.items {
            round_trip(&item.value);
        }
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        round_trip(&Product::from_value(value).value);
    }
});

fn round_trip(product: &Product) {
    let written = serde_json::to_value(product).expect("a product we read serialises");
    let again = Product::from_value(written);
    assert_eq!(&again.value, product);
}
