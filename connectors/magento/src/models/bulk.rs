//! Asynchronous and bulk API answers (REFERENCE §5).

use super::lenient::magento_model;

magento_model! {
    /// The 202 answer to an async or bulk submission.
    pub struct BulkAccepted {
        bulk_uuid: String => string,
        request_items: Vec<BulkRequestItem> => list,
        /// `true` when some items were rejected at scheduling time.
        errors: bool => bool,
    }
}

magento_model! {
    /// One submitted item: `accepted` or `rejected` (with an error).
    pub struct BulkRequestItem {
        id: i64 => int,
        data_hash: String => string,
        status: String => string,
        error_message: String => string,
        error_code: i64 => int,
    }
}

magento_model! {
    /// `GET /V1/bulk/{uuid}/status` and `/detailed-status`.
    pub struct BulkStatus {
        bulk_id: String => string,
        bulk_uuid: String => string,
        description: String => string,
        start_time: String => string,
        user_id: i64 => int,
        user_type: i64 => int,
        operation_count: i64 => int,
        operations_list: Vec<BulkOperation> => list,
    }
}

magento_model! {
    /// One operation of a bulk; detailed status adds the topic and data.
    pub struct BulkOperation {
        id: i64 => int,
        bulk_uuid: String => string,
        topic_name: String => string,
        /// See [`OperationStatus`].
        status: i64 => int,
        result_message: String => string,
        error_code: i64 => int,
        serialized_data: String => string,
        result_serialized_data: String => string,
    }
}

/// `Magento\Framework\Bulk\OperationInterface` statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationStatus {
    Complete,
    RetriablyFailed,
    NotRetriablyFailed,
    /// Queued; stays so forever when no consumer runs.
    Open,
    Rejected,
}

impl OperationStatus {
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            1 => Some(OperationStatus::Complete),
            2 => Some(OperationStatus::RetriablyFailed),
            3 => Some(OperationStatus::NotRetriablyFailed),
            4 => Some(OperationStatus::Open),
            5 => Some(OperationStatus::Rejected),
            _ => None,
        }
    }

    pub fn code(self) -> i64 {
        match self {
            OperationStatus::Complete => 1,
            OperationStatus::RetriablyFailed => 2,
            OperationStatus::NotRetriablyFailed => 3,
            OperationStatus::Open => 4,
            OperationStatus::Rejected => 5,
        }
    }

    pub fn is_finished(self) -> bool {
        !matches!(self, OperationStatus::Open)
    }
}

impl BulkOperation {
    pub fn operation_status(&self) -> Option<OperationStatus> {
        self.status.and_then(OperationStatus::from_code)
    }
}

impl BulkStatus {
    /// True once no operation is open.
    pub fn is_finished(&self) -> bool {
        self.operations_list.as_ref().is_some_and(|operations| {
            operations.iter().all(|operation| {
                operation
                    .operation_status()
                    .is_some_and(OperationStatus::is_finished)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::FromMagento;
    use serde_json::json;

    #[test]
    fn reads_the_accepted_answer() {
        let parsed = BulkAccepted::from_value(json!({
            "bulk_uuid": "799a59c0-09ca-4d60-b432-2953986c1c38",
            "request_items": [{"id": 0, "data_hash": "abc", "status": "accepted"},
                              {"id": 1, "data_hash": "def", "status": "rejected", "error_message": "bad", "error_code": 1}],
            "errors": true
        }));
        assert!(parsed.is_clean(), "{:?}", parsed.warnings);
        let items = parsed.value.request_items.unwrap_or_default();
        assert_eq!(items[1].status.as_deref(), Some("rejected"));
        assert_eq!(parsed.value.errors, Some(true));
    }

    #[test]
    fn finished_means_no_open_operation() {
        let status = BulkStatus::from_value(
            json!({"operations_list": [{"id": 1, "status": 1}, {"id": 2, "status": 4}]}),
        )
        .value;
        assert!(!status.is_finished());
        let status = BulkStatus::from_value(
            json!({"operations_list": [{"id": 1, "status": 1}, {"id": 2, "status": 3}]}),
        )
        .value;
        assert!(status.is_finished());
        assert_eq!(
            OperationStatus::from_code(5).map(OperationStatus::code),
            Some(5)
        );
    }
}
