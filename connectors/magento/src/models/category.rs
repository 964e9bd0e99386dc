//! Categories (REFERENCE §4).

use super::lenient::magento_model;
use super::product::CustomAttribute;

magento_model! {
    /// A node of `GET /V1/categories` (the tree).
    pub struct CategoryTree {
        id: i64 => int,
        parent_id: i64 => int,
        name: String => string,
        is_active: bool => bool,
        position: i64 => int,
        level: i64 => int,
        product_count: i64 => int,
        children_data: Vec<CategoryTree> => list,
    }
}

magento_model! {
    /// A full category from `GET /V1/categories/{id}` or `/categories/list`.
    pub struct Category {
        id: i64 => int,
        parent_id: i64 => int,
        name: String => string,
        is_active: bool => bool,
        position: i64 => int,
        level: i64 => int,
        /// Comma-separated child ids.
        children: String => string,
        /// Ids from the root, e.g. `1/2/5`.
        path: String => string,
        include_in_menu: bool => bool,
        created_at: String => string,
        updated_at: String => string,
        custom_attributes: Vec<CustomAttribute> => list,
    }
}

impl CategoryTree {
    /// Depth-first walk over this node and its descendants.
    pub fn walk(&self) -> Vec<&CategoryTree> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(node) = stack.pop() {
            out.push(node);
            if let Some(children) = &node.children_data {
                stack.extend(children.iter().rev());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::FromMagento;
    use serde_json::json;

    #[test]
    fn walks_the_tree_in_order() {
        let tree = CategoryTree::from_value(json!({
            "id": 1, "name": "Root", "children_data": [
                {"id": 2, "name": "Default", "children_data": [{"id": 3, "name": "Men", "children_data": []}]},
                {"id": 4, "name": "Other", "children_data": []}
            ]
        }))
        .value;
        let ids: Vec<Option<i64>> = tree.walk().iter().map(|node| node.id).collect();
        assert_eq!(ids, vec![Some(1), Some(2), Some(3), Some(4)]);
    }
}
