//! Lowercase hex of digests on the request path (`hex::encode` builds its string one
//! `char` at a time; this writes into a buffer of the right size at once).

/// Lowercase hex of `bytes`.
pub fn lower(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    hex::encode_to_slice(bytes, &mut out).expect("the buffer is twice the input");
    String::from_utf8(out).expect("hex digits are ASCII")
}

#[cfg(test)]
mod tests {
    #[test]
    fn matches_hex_encode() {
        for input in [&b""[..], b"\x00\xff\x10", b"hcgw audit line"] {
            assert_eq!(super::lower(input), hex::encode(input));
        }
    }
}
