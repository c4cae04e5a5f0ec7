//! Showing a bad input back to whoever sent it, bounded.
//!
//! Error messages quote what was wrong so the author can find it, but the input may be
//! megabytes (a manifest field holding a whole object, an environment variable): the message
//! quotes the start of it and says how long it really is, so an error can never be larger than
//! the limits downstream of it (a record, a log line).

use std::fmt::Display;

/// The most bytes of a bad value an error message quotes.
pub const EXCERPT_BYTES: usize = 96;

/// `value` rendered whole when short, else its first [`EXCERPT_BYTES`] bytes (cut on a char
/// boundary) followed by `… (N bytes)`.
pub fn excerpt(value: &impl Display) -> String {
    let s = value.to_string();
    if s.len() <= EXCERPT_BYTES {
        return s;
    }
    let mut cut = EXCERPT_BYTES;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… ({} bytes)", &s[..cut], s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_shown_whole_and_long_ones_cut_with_their_length() {
        assert_eq!(excerpt(&"host:80"), "host:80");
        let long = "é".repeat(1000);
        let shown = excerpt(&long);
        assert!(shown.ends_with("… (2000 bytes)"), "{shown}");
        assert!(shown.len() <= EXCERPT_BYTES + 20, "{}", shown.len());
        assert!(shown.starts_with("éé"));
    }
}
