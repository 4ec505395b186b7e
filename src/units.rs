//! Units of the report: milliseconds to the microsecond, seconds to the
//! millisecond. Rounding at the source keeps the JSON free of float noise
//! such as `10044.240127000001`.

use std::time::Duration;

/// Milliseconds, with microsecond precision.
pub fn millis(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

/// Seconds, with millisecond precision.
pub fn secs(d: Duration) -> f64 {
    d.as_millis() as f64 / 1000.0
}

/// A count with thousands separators: `1,510,466`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands_are_separated() {
        assert_eq!(super::thousands(0), "0");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(1_510_466), "1,510,466");
    }
}
