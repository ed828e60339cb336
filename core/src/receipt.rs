//! An audit receipt: the seq and hash of the audit record an answer was recorded as
//! (issue 15; docs/proofs.md "Receipts"). With it, the caller can later ask for the
//! record's inclusion proof (`GET /v1/audit/proof/{seq}`) and check it against a signed
//! tree head.

use serde::{Deserialize, Serialize};

/// The audit record of an answer: its `seq` and the lowercase hex SHA-256 of its line (the
/// chain hash `hcgw audit verify` computes, and the next record's `prev`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Receipt {
    /// The record's sequence number (from 1, monotonic across file rotation).
    pub seq: u64,
    /// Lowercase hex SHA-256 of the record's line, without its newline.
    pub hash: String,
}
