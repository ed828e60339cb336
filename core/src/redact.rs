//! Keeping personal data and secrets out of messages: parser errors (serde, toml) quote the
//! offending value, which may be an identity number, a name or a secret typed in the wrong
//! place.

/// Cuts every quoted value (`"…"` or `` `…` ``) longer than a short keyword to its first three
/// characters, so no identity number, name, token or secret is echoed whole; expected
/// keywords (`pretty`, `resident_id`) stay readable.
pub fn quoted_values(msg: &str) -> String {
    let mut out = String::new();
    let mut rest = msg.trim();
    while let Some(i) = rest.find(['"', '`']) {
        let quote = rest[i..].chars().next().unwrap_or('"');
        out.push_str(&rest[..=i]);
        rest = &rest[i + 1..];
        let Some(j) = rest.find(quote) else { break };
        let inner = &rest[..j];
        if inner.chars().count() > 12 || !inner.is_ascii() {
            out.extend(inner.chars().take(if inner.is_ascii() { 3 } else { 0 }));
            out.push('…');
        } else {
            out.push_str(inner);
        }
        out.push(quote);
        rest = &rest[j + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::quoted_values;

    #[test]
    fn long_or_non_ascii_values_are_cut() {
        assert_eq!(
            quoted_values("invalid value \"supersecretvalue\", expected x"),
            "invalid value \"sup…\", expected x"
        );
        assert_eq!(
            quoted_values("unknown variant `INLINE-SECRET-4d3c2b1a`, expected `pretty` or `json`"),
            "unknown variant `INL…`, expected `pretty` or `json`"
        );
        assert_eq!(
            quoted_values("invalid type: integer `320501199003071234`, expected a string"),
            "invalid type: integer `320…`, expected a string"
        );
        assert_eq!(
            quoted_values("invalid type: string \"张三\", expected x"),
            "invalid type: string \"…\", expected x"
        );
        assert_eq!(quoted_values("unterminated \"abc"), "unterminated \"abc");
    }
}
