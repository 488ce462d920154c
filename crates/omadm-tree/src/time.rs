//! TStamp formatting: ISO 8601 basic format in UTC, `20010711T163817Z`
//! (`DM_TND` §7.7.8). Time is always passed in as unix seconds.

/// Formats unix seconds as `YYYYMMDDThhmmssZ`.
pub fn format_tstamp(unix_secs: u64) -> String {
    let days = unix_secs / 86_400;
    let secs = unix_secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's
/// `civil_from_days`, restricted to non-negative day counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(format_tstamp(0), "19700101T000000Z");
        // The TND example: 2001-07-11 16:38:17 UTC.
        assert_eq!(format_tstamp(994_869_497), "20010711T163817Z");
        assert_eq!(format_tstamp(951_782_400), "20000229T000000Z");
        assert_eq!(format_tstamp(4_102_444_799), "20991231T235959Z");
    }
}
