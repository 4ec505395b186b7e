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
