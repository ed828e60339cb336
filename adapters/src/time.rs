//! Time conversions: every region's own format to RFC 3339 with the right offset.
//! Regions that send a local time without offset mean Asia/Shanghai, which has been UTC+8
//! without daylight saving since 1991, so a fixed offset is exact for the dates involved.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// The Asia/Shanghai offset (+08:00).
pub fn shanghai() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("valid offset")
}

/// Parses a local Asia/Shanghai time in the given `chrono` format (e.g.
/// `%Y-%m-%d %H:%M:%S`, `%Y/%m/%d %H:%M:%S`, `%Y%m%d%H%M%S`).
pub fn parse_shanghai_local(value: &str, format: &str) -> Option<DateTime<FixedOffset>> {
    let naive = NaiveDateTime::parse_from_str(value, format).ok()?;
    shanghai().from_local_datetime(&naive).single()
}

/// Parses an RFC 3339 time with its own offset.
pub fn parse_rfc3339(value: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(value).ok()
}

/// Epoch milliseconds (UTC) shown in Asia/Shanghai time.
pub fn from_epoch_millis(ms: i64) -> Option<DateTime<FixedOffset>> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.with_timezone(&shanghai()))
}

/// Epoch seconds (UTC) shown in Asia/Shanghai time.
pub fn from_epoch_seconds(s: i64) -> Option<DateTime<FixedOffset>> {
    Utc.timestamp_opt(s, 0)
        .single()
        .map(|t| t.with_timezone(&shanghai()))
}

/// Parses a `yyyy-MM-dd` date.
pub fn parse_date(value: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_formats_get_the_shanghai_offset() {
        let t = parse_shanghai_local("2020-03-02 08:15:00", "%Y-%m-%d %H:%M:%S").unwrap();
        assert_eq!(t.to_rfc3339(), "2020-03-02T08:15:00+08:00");
        let t = parse_shanghai_local("2020/02/16 09:00:00", "%Y/%m/%d %H:%M:%S").unwrap();
        assert_eq!(t.to_rfc3339(), "2020-02-16T09:00:00+08:00");
        let t = parse_shanghai_local("20220401100000", "%Y%m%d%H%M%S").unwrap();
        assert_eq!(t.to_rfc3339(), "2022-04-01T10:00:00+08:00");
        assert!(parse_shanghai_local("2020-02-30 08:15:00", "%Y-%m-%d %H:%M:%S").is_none());
        assert!(parse_shanghai_local("2020-03-02T08:15:00", "%Y-%m-%d %H:%M:%S").is_none());
    }

    #[test]
    fn epochs_are_utc_shown_in_shanghai_time() {
        assert_eq!(
            from_epoch_millis(1583210112000).unwrap().to_rfc3339(),
            "2020-03-03T12:35:12+08:00"
        );
        assert_eq!(
            from_epoch_seconds(1585000000).unwrap().to_rfc3339(),
            "2020-03-24T05:46:40+08:00"
        );
    }

    #[test]
    fn rfc3339_keeps_its_offset() {
        assert_eq!(
            parse_rfc3339("2022-03-18T21:13:06+08:00")
                .unwrap()
                .to_rfc3339(),
            "2022-03-18T21:13:06+08:00"
        );
        assert!(parse_rfc3339("2022-03-18 21:13:06").is_none());
    }
}
