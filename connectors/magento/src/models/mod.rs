//! Magento's JSON shapes, read leniently and written back unchanged
//! (unknown fields live in each model's `extra`).

mod attribute;
mod bulk;
mod category;
pub(crate) mod lenient;
mod media;
mod page;
mod product;
mod store;

pub use attribute::{Attribute, AttributeOption, FrontendLabel};
pub use bulk::{BulkAccepted, BulkOperation, BulkRequestItem, BulkStatus, OperationStatus};
pub use category::{Category, CategoryTree};
pub use lenient::{Fields, FromMagento, ParseWarning, Parsed};
pub use media::{ImageContent, MediaGalleryEntry, gallery_path};
pub(crate) use page::{PageSummary, summarize_raw_page};
pub use page::{ProductPage, SearchPage};
pub use product::{
    AttributeValue, CategoryLink, ConfigurableOptionValue, ConfigurableProductOption,
    CustomAttribute, Product, ProductExtensionAttributes, ProductLink, TierPrice,
    parse_magento_datetime,
};
pub use store::{StoreConfig, StoreGroup, StoreView, Website};
