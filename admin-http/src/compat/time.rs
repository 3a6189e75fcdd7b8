//! RFC 3339 times as the dialects render them (UTC, `Z`), from Unix milliseconds: one place for
//! every dialect, through `humantime`.

use std::time::{Duration, UNIX_EPOCH};

/// `2026-12-07T07:00:00Z`: second precision.
pub fn rfc3339_seconds(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// `2026-12-07T07:00:00.123Z`: millisecond precision.
pub fn rfc3339_millis(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_render_in_utc_with_the_asked_precision() {
        assert_eq!(rfc3339_seconds(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (a leap day in a century leap year), 12:34:56.789.
        let ms = 951_827_696_789;
        assert_eq!(rfc3339_seconds(ms), "2000-02-29T12:34:56Z");
        assert_eq!(rfc3339_millis(ms), "2000-02-29T12:34:56.789Z");
        assert_eq!(rfc3339_seconds(1_796_598_000_000), "2026-12-06T23:00:00Z");
    }
}
