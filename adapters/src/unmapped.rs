//! Region values with no mapping (an unlisted reason code, an unknown colour): counted
//! and logged without personal data, so that mappings can be completed.

use crate::model::RegionId;

/// The metric counting unmapped upstream values, labelled by region and field only.
pub const UNMAPPED_METRIC: &str = "hcgw_upstream_unmapped_values_total";

/// Records that `region` sent a `field` value (e.g. `reasonCodes`) with no mapping. The
/// value is logged only as a short, sanitised excerpt (ASCII letters, digits, `_`, `-`;
/// at most 32 characters), never as a metric label.
pub fn record_unmapped(region: RegionId, field: &'static str, value: &str) {
    metrics::counter!(UNMAPPED_METRIC, "region" => region.as_str(), "field" => field).increment(1);
    tracing::warn!(
        region = region.as_str(),
        field,
        value = %sanitise(value),
        "unmapped upstream value"
    );
}

/// Keeps only characters that cannot carry a name or number of any length.
fn sanitise(value: &str) -> String {
    let s: String = value
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(32)
        .collect();
    if s.is_empty() {
        "<non-ascii>".to_owned()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sanitise_drops_non_ascii_and_truncates() {
        assert_eq!(super::sanitise("NEW_CODE"), "NEW_CODE");
        assert_eq!(super::sanitise("张三"), "<non-ascii>");
        assert_eq!(super::sanitise(&"A".repeat(100)).len(), 32);
    }
}
