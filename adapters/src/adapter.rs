//! The adapter trait every region implements, and the subject of a lookup.

use std::fmt;

use async_trait::async_trait;

use crate::error::AdapterError;
use crate::model::{HealthStatus, IdType, RegionId};

/// A person's identity as a region is asked for it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    /// The document type.
    pub id_type: IdType,
    /// The document number (a resident id is already validated and normalised).
    pub id_number: String,
    /// The holder's name as on the document.
    pub name: String,
}

/// What to look up: a QR token (the region-specific part of the scanned text, without its
/// prefix) or an identity. Its `Debug` never shows the token, number or name.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// The token part of a QR text (e.g. the 32 hex characters after `SCM:`).
    QrToken(String),
    /// An identity document and name.
    Identity(Identity),
}

impl Subject {
    /// The identity type, for identity lookups.
    pub fn id_type(&self) -> Option<IdType> {
        match self {
            Subject::QrToken(_) => None,
            Subject::Identity(i) => Some(i.id_type),
        }
    }
}

impl fmt::Debug for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::QrToken(_) => f.write_str("Subject::QrToken([redacted])"),
            Subject::Identity(i) => write!(f, "Subject::Identity({}, [redacted])", i.id_type),
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({}, [redacted])", self.id_type)
    }
}

/// One region's adapter: asks the region, verifies its answer, and normalises it to the
/// common status model. Implementations never return a green the region did not send:
/// unknown values become `unknown`, broken answers become errors.
#[async_trait]
pub trait RegionAdapter: Send + Sync + 'static {
    /// The region this adapter serves.
    fn region(&self) -> RegionId;

    /// Whether the region serves this identity type at all (checked before any call).
    fn supports_id_type(&self, id_type: IdType) -> bool {
        let _ = id_type;
        true
    }

    /// Asks the region for the subject's status, normalised (the one call of an adapter).
    async fn status(&self, subject: &Subject) -> Result<HealthStatus, AdapterError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_personal_data() {
        let s = Subject::Identity(Identity {
            id_type: IdType::ResidentId,
            id_number: "11010519491231002X".into(),
            name: "张三".into(),
        });
        let d = format!("{s:?}");
        assert!(!d.contains("1101") && !d.contains("张"), "{d}");
        let q = format!("{:?}", Subject::QrToken("5f2b9c0e8d7a41b3".into()));
        assert!(!q.contains("5f2b"), "{q}");
    }
}
