//! `searchCriteria` for Magento's list endpoints (REFERENCE §2.1).
//!
//! Filters inside one group are OR-ed, groups are AND-ed. Rendering produces
//! indexed keys (`searchCriteria[filter_groups][0][filters][0][field]`); the
//! signer sorts them in PHP natural order, so indexes of 10 and more are fine.

use std::fmt;

use thiserror::Error;

use crate::query::QueryPairs;

/// Magento's `condition_type` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConditionType {
    Eq,
    Neq,
    Gt,
    Gteq,
    Lt,
    Lteq,
    Moreq,
    /// `%` is the wildcard; it is percent-encoded like any other character.
    Like,
    Nlike,
    /// Comma-separated list.
    In,
    Nin,
    Finset,
    Nfinset,
    From,
    To,
    Null,
    Notnull,
}

impl ConditionType {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::Eq => "eq",
            ConditionType::Neq => "neq",
            ConditionType::Gt => "gt",
            ConditionType::Gteq => "gteq",
            ConditionType::Lt => "lt",
            ConditionType::Lteq => "lteq",
            ConditionType::Moreq => "moreq",
            ConditionType::Like => "like",
            ConditionType::Nlike => "nlike",
            ConditionType::In => "in",
            ConditionType::Nin => "nin",
            ConditionType::Finset => "finset",
            ConditionType::Nfinset => "nfinset",
            ConditionType::From => "from",
            ConditionType::To => "to",
            ConditionType::Null => "null",
            ConditionType::Notnull => "notnull",
        }
    }
}

impl fmt::Display for ConditionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `field <condition> value` test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub field: String,
    pub value: String,
    pub condition: ConditionType,
}

impl Filter {
    pub fn new(
        field: impl Into<String>,
        condition: ConditionType,
        value: impl Into<String>,
    ) -> Self {
        Filter {
            field: field.into(),
            value: value.into(),
            condition,
        }
    }

    pub fn eq(field: impl Into<String>, value: impl Into<String>) -> Self {
        Filter::new(field, ConditionType::Eq, value)
    }

    /// `in` with the values joined by commas (Magento's list syntax).
    pub fn in_list<I, S>(field: impl Into<String>, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let joined = values
            .into_iter()
            .map(|value| value.as_ref().to_owned())
            .collect::<Vec<_>>()
            .join(",");
        Filter::new(field, ConditionType::In, joined)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortDirection {
    Asc,
    Desc,
}

impl SortDirection {
    fn as_str(self) -> &'static str {
        match self {
            SortDirection::Asc => "ASC",
            SortDirection::Desc => "DESC",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortOrder {
    pub field: String,
    pub direction: SortDirection,
}

/// A search request: AND-ed groups of OR-ed filters, sort orders, paging.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchCriteria {
    pub filter_groups: Vec<Vec<Filter>>,
    pub sort_orders: Vec<SortOrder>,
    pub page_size: Option<u32>,
    pub current_page: Option<u32>,
}

/// Criteria Magento would answer with a 400.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SearchCriteriaError {
    #[error("sort field {0:?} may only contain letters, digits and underscores")]
    InvalidSortField(String),
    #[error("filter field must not be empty")]
    EmptyFilterField,
    #[error("filter group {0} has no filters")]
    EmptyFilterGroup(usize),
}

impl SearchCriteria {
    pub fn new() -> Self {
        SearchCriteria::default()
    }

    /// Adds a group with one filter (AND-ed with the other groups).
    pub fn filter(
        mut self,
        field: impl Into<String>,
        condition: ConditionType,
        value: impl Into<String>,
    ) -> Self {
        self.filter_groups
            .push(vec![Filter::new(field, condition, value)]);
        self
    }

    /// Adds a group whose filters are OR-ed.
    pub fn any_of(mut self, filters: impl IntoIterator<Item = Filter>) -> Self {
        self.filter_groups.push(filters.into_iter().collect());
        self
    }

    pub fn sort_by(mut self, field: impl Into<String>, direction: SortDirection) -> Self {
        self.sort_orders.push(SortOrder {
            field: field.into(),
            direction,
        });
        self
    }

    pub fn page_size(mut self, page_size: u32) -> Self {
        self.page_size = Some(page_size);
        self
    }

    pub fn current_page(mut self, current_page: u32) -> Self {
        self.current_page = Some(current_page);
        self
    }

    /// Checks what Magento validates (sort fields `[A-Za-z0-9_]+`) and what
    /// would silently change meaning (empty groups or fields).
    pub fn validate(&self) -> Result<(), SearchCriteriaError> {
        for sort in &self.sort_orders {
            let valid = !sort.field.is_empty()
                && sort
                    .field
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(SearchCriteriaError::InvalidSortField(sort.field.clone()));
            }
        }
        for (index, group) in self.filter_groups.iter().enumerate() {
            if group.is_empty() {
                return Err(SearchCriteriaError::EmptyFilterGroup(index));
            }
            if group.iter().any(|filter| filter.field.is_empty()) {
                return Err(SearchCriteriaError::EmptyFilterField);
            }
        }
        Ok(())
    }

    /// The unencoded `searchCriteria[…]` pairs. Magento requires at least one
    /// `searchCriteria` parameter, so empty criteria render `currentPage=1`
    /// (Magento's own default).
    pub fn to_query_pairs(&self) -> QueryPairs {
        let mut query = QueryPairs::new();
        for (group_index, group) in self.filter_groups.iter().enumerate() {
            for (filter_index, filter) in group.iter().enumerate() {
                let prefix = format!(
                    "searchCriteria[filter_groups][{group_index}][filters][{filter_index}]"
                );
                query.push(format!("{prefix}[field]"), filter.field.as_str());
                query.push(format!("{prefix}[value]"), filter.value.as_str());
                query.push(
                    format!("{prefix}[condition_type]"),
                    filter.condition.as_str(),
                );
            }
        }
        for (index, sort) in self.sort_orders.iter().enumerate() {
            query.push(
                format!("searchCriteria[sortOrders][{index}][field]"),
                sort.field.as_str(),
            );
            query.push(
                format!("searchCriteria[sortOrders][{index}][direction]"),
                sort.direction.as_str(),
            );
        }
        if let Some(page_size) = self.page_size {
            query.push("searchCriteria[pageSize]", page_size.to_string());
        }
        match self.current_page {
            Some(page) => query.push("searchCriteria[currentPage]", page.to_string()),
            None if query.is_empty() => query.push("searchCriteria[currentPage]", "1"),
            None => {}
        }
        query
    }

    /// The encoded query string.
    pub fn to_query_string(&self) -> String {
        self.to_query_pairs().encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_reference_example() {
        let criteria = SearchCriteria::new()
            .filter("updated_at", ConditionType::Gt, "2024-05-01 00:00:00")
            .sort_by("entity_id", SortDirection::Asc)
            .page_size(200)
            .current_page(1);
        let rendered: Vec<String> = criteria
            .to_query_string()
            .split('&')
            .map(str::to_owned)
            .collect();
        assert_eq!(
            rendered,
            vec![
                "searchCriteria%5Bfilter_groups%5D%5B0%5D%5Bfilters%5D%5B0%5D%5Bfield%5D=updated_at",
                "searchCriteria%5Bfilter_groups%5D%5B0%5D%5Bfilters%5D%5B0%5D%5Bvalue%5D=2024-05-01%2000%3A00%3A00",
                "searchCriteria%5Bfilter_groups%5D%5B0%5D%5Bfilters%5D%5B0%5D%5Bcondition_type%5D=gt",
                "searchCriteria%5BsortOrders%5D%5B0%5D%5Bfield%5D=entity_id",
                "searchCriteria%5BsortOrders%5D%5B0%5D%5Bdirection%5D=ASC",
                "searchCriteria%5BpageSize%5D=200",
                "searchCriteria%5BcurrentPage%5D=1",
            ]
        );
    }

    #[test]
    fn or_groups_and_hostile_values() {
        let criteria = SearchCriteria::new().any_of([
            Filter::eq("sku", "A B+C=D&E[1]"),
            Filter::new("name", ConditionType::Like, "%tee%"),
        ]);
        let pairs = criteria.to_query_pairs();
        assert_eq!(
            pairs.pairs(),
            &[
                (
                    "searchCriteria[filter_groups][0][filters][0][field]".to_owned(),
                    "sku".to_owned()
                ),
                (
                    "searchCriteria[filter_groups][0][filters][0][value]".to_owned(),
                    "A B+C=D&E[1]".to_owned()
                ),
                (
                    "searchCriteria[filter_groups][0][filters][0][condition_type]".to_owned(),
                    "eq".to_owned()
                ),
                (
                    "searchCriteria[filter_groups][0][filters][1][field]".to_owned(),
                    "name".to_owned()
                ),
                (
                    "searchCriteria[filter_groups][0][filters][1][value]".to_owned(),
                    "%tee%".to_owned()
                ),
                (
                    "searchCriteria[filter_groups][0][filters][1][condition_type]".to_owned(),
                    "like".to_owned()
                ),
            ]
        );
        let encoded = pairs.encode();
        assert!(encoded.contains("=A%20B%2BC%3DD%26E%5B1%5D&"));
        assert!(encoded.contains("=%25tee%25&"));
    }

    #[test]
    fn in_lists_are_comma_joined() {
        let criteria =
            SearchCriteria::new().any_of([Filter::in_list("entity_id", ["1", "2", "3"])]);
        assert!(
            criteria
                .to_query_string()
                .contains("%5Bvalue%5D=1%2C2%2C3&")
        );
    }

    #[test]
    fn empty_criteria_still_send_a_search_criteria_parameter() {
        assert_eq!(
            SearchCriteria::new().to_query_string(),
            "searchCriteria%5BcurrentPage%5D=1"
        );
    }

    #[test]
    fn indexes_of_ten_and_more_render_plainly() {
        let criteria = (0..12).fold(SearchCriteria::new(), |criteria, i| {
            criteria.filter(format!("f{i}"), ConditionType::Eq, i.to_string())
        });
        let pairs = criteria.to_query_pairs();
        assert_eq!(
            pairs.pairs()[33].0,
            "searchCriteria[filter_groups][11][filters][0][field]"
        );
        assert_eq!(pairs.pairs()[33].1, "f11");
    }

    #[test]
    fn validation_matches_magentos_rules() {
        assert_eq!(
            SearchCriteria::new()
                .sort_by("entity_id; DROP", SortDirection::Asc)
                .validate(),
            Err(SearchCriteriaError::InvalidSortField(
                "entity_id; DROP".to_owned()
            ))
        );
        assert_eq!(
            SearchCriteria::new().any_of([]).validate(),
            Err(SearchCriteriaError::EmptyFilterGroup(0))
        );
        assert!(
            SearchCriteria::new()
                .sort_by("created_at", SortDirection::Desc)
                .validate()
                .is_ok()
        );
    }
}
