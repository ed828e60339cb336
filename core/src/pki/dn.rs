//! Distinguished names, compared exactly: the subject a `[[clients]]` entry names (RFC 4514
//! text) against the subject of a verified certificate (DER).
//!
//! A DN is a multiset of RDNs, each RDN a set of `attribute=value` pairs:
//! - the order of the RDNs does not matter (`O=a, OU=b, CN=c` equals `CN=c,OU=b,O=a`, so
//!   both the RFC 4514 order and the `openssl -subj` order work), the order of the pairs
//!   inside a multi-valued RDN does not matter either;
//! - a multi-valued RDN (`CN=a+OU=b`) is one RDN and differs from two RDNs (`CN=a, OU=b`);
//! - repeated attributes are kept (`OU=x, OU=y` has two OUs; `OU=x, OU=x` differs from `OU=x`);
//! - attribute names are case-insensitive and known names equal their OIDs (`cn`, `CN`,
//!   `commonName` and `2.5.4.3` are one attribute); an unknown name is refused;
//! - values compare exactly (case and inner spaces count) after decoding: a PrintableString
//!   and a UTF8String with the same characters are equal; a value that does not decode
//!   (TeletexString, bad UTF-8, a character PrintableString cannot hold, a `#hex` value in
//!   the configuration) is refused, never matched.
//!
//! [`DistinguishedName::canonical`] escapes every character that could separate or start
//! anything (`\ , + " < > ; =`, a leading `#` or space, a trailing space, control
//! characters), so two different DNs never have the same canonical text.

use std::fmt;

use x509_parser::asn1_rs::Tag;
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

/// Why a DN cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DnError {
    /// The text is not RFC 4514.
    #[error("{0}")]
    Syntax(String),
    /// An attribute name nobody knows (give its OID instead, e.g. `2.5.4.45=…`).
    #[error(
        "unknown attribute `{0}` (known: CN, O, OU, C, ST, L, STREET, DC, UID, SERIALNUMBER, EMAILADDRESS, …, or a dotted OID)"
    )]
    UnknownAttribute(String),
    /// A certificate value that does not decode to text.
    #[error("attribute {0}: the value does not decode as text")]
    Undecodable(String),
}

/// One `attribute=value` pair: the attribute as its canonical short name or dotted OID.
type Ava = (String, String);

/// A distinguished name: a sorted multiset of RDNs, each a sorted set of pairs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DistinguishedName(Vec<Vec<Ava>>);

/// Known attributes: short name, OID, other accepted names (all uppercase).
const ATTRIBUTES: &[(&str, &str, &[&str])] = &[
    ("CN", "2.5.4.3", &["COMMONNAME"]),
    ("SN", "2.5.4.4", &["SURNAME"]),
    ("SERIALNUMBER", "2.5.4.5", &[]),
    ("C", "2.5.4.6", &["COUNTRYNAME"]),
    ("L", "2.5.4.7", &["LOCALITYNAME"]),
    ("ST", "2.5.4.8", &["STATEORPROVINCENAME", "S"]),
    ("STREET", "2.5.4.9", &["STREETADDRESS"]),
    ("O", "2.5.4.10", &["ORGANIZATIONNAME"]),
    ("OU", "2.5.4.11", &["ORGANIZATIONALUNITNAME"]),
    ("TITLE", "2.5.4.12", &[]),
    ("GIVENNAME", "2.5.4.42", &["GN"]),
    ("DNQUALIFIER", "2.5.4.46", &[]),
    ("PSEUDONYM", "2.5.4.65", &[]),
    ("ORGANIZATIONIDENTIFIER", "2.5.4.97", &[]),
    ("UID", "0.9.2342.19200300.100.1.1", &["USERID"]),
    ("DC", "0.9.2342.19200300.100.1.25", &["DOMAINCOMPONENT"]),
    ("EMAILADDRESS", "1.2.840.113549.1.9.1", &["E", "EMAIL"]),
];

/// The canonical name of an attribute given by name or OID.
fn attribute_by_name(name: &str) -> Result<String, DnError> {
    let upper = name.to_ascii_uppercase();
    for (short, oid, aliases) in ATTRIBUTES {
        if upper == *short || upper == *oid || aliases.contains(&upper.as_str()) {
            return Ok((*short).to_owned());
        }
    }
    let is_oid = upper.split('.').count() >= 2
        && upper
            .split('.')
            .all(|arc| !arc.is_empty() && arc.bytes().all(|b| b.is_ascii_digit()));
    if is_oid {
        Ok(upper)
    } else {
        Err(DnError::UnknownAttribute(name.to_owned()))
    }
}

/// The canonical name of a certificate attribute's OID.
fn attribute_by_oid(oid: &str) -> String {
    ATTRIBUTES
        .iter()
        .find(|(_, o, _)| *o == oid)
        .map_or_else(|| oid.to_owned(), |(short, _, _)| (*short).to_owned())
}

/// A value character: whether it was escaped (escaped spaces survive trimming).
#[derive(Clone, Copy)]
struct ValueChar {
    c: char,
    escaped: bool,
}

fn syntax(message: impl Into<String>) -> DnError {
    DnError::Syntax(message.into())
}

const EXAMPLE: &str = "e.g. `O=shanghai, OU=platform, CN=platform-shanghai`";

impl DistinguishedName {
    /// Parses RFC 4514 text: RDNs separated by `,`, the pairs of a multi-valued RDN by `+`,
    /// `\` escaping a special character (`\,`, `\+`, `\\`, `\"`, `\<`, `\>`, `\;`, `\=`,
    /// `\#`, `\ `) or giving a byte in hex (`\41`, UTF-8 sequences as `\E4\B8\8A`). Spaces
    /// around names, values and separators are ignored (escape a space to keep it).
    pub fn parse(text: &str) -> Result<Self, DnError> {
        let mut rdns: Vec<Vec<Ava>> = Vec::new();
        let mut rdn: Vec<Ava> = Vec::new();
        let mut chars = text.chars().peekable();
        if text.trim().is_empty() {
            return Err(syntax(format!("must not be empty ({EXAMPLE})")));
        }
        loop {
            // attribute name, up to `=`
            let mut name = String::new();
            loop {
                match chars.next() {
                    Some('=') => break,
                    Some(c @ (',' | '+' | '\\' | '"' | ';' | '<' | '>' | '#')) => {
                        return Err(syntax(format!(
                            "`{c}` in an attribute name: must be attribute=value pairs separated by commas, {EXAMPLE}"
                        )));
                    }
                    Some(c) => name.push(c),
                    None => {
                        return Err(syntax(format!(
                            "`{}` has no `=`: must be attribute=value pairs separated by commas, {EXAMPLE}",
                            name.trim()
                        )));
                    }
                }
            }
            let name = name.trim();
            if name.is_empty() {
                return Err(syntax("an attribute name is empty"));
            }
            let attribute = attribute_by_name(name)?;
            // value, up to an unescaped `,` or `+` or the end
            let mut value: Vec<ValueChar> = Vec::new();
            let mut bytes: Vec<u8> = Vec::new(); // pending hex-escaped bytes
            let flush = |bytes: &mut Vec<u8>, value: &mut Vec<ValueChar>| -> Result<(), DnError> {
                if bytes.is_empty() {
                    return Ok(());
                }
                let s = String::from_utf8(std::mem::take(bytes))
                    .map_err(|_| syntax("hex escapes that are not UTF-8"))?;
                value.extend(s.chars().map(|c| ValueChar { c, escaped: true }));
                Ok(())
            };
            let separator = loop {
                match chars.next() {
                    None => break None,
                    Some(c @ (',' | '+')) => break Some(c),
                    Some('\\') => match chars.next() {
                        Some(c @ ('\\' | ',' | '+' | '"' | '<' | '>' | ';' | '=' | '#' | ' ')) => {
                            flush(&mut bytes, &mut value)?;
                            value.push(ValueChar { c, escaped: true });
                        }
                        Some(h) if h.is_ascii_hexdigit() => {
                            let l = chars
                                .next()
                                .filter(char::is_ascii_hexdigit)
                                .ok_or_else(|| syntax("`\\` must be followed by a special character or two hex digits"))?;
                            let byte = u8::from_str_radix(&format!("{h}{l}"), 16)
                                .map_err(|_| syntax("bad hex escape"))?;
                            bytes.push(byte);
                        }
                        Some(_) | None => {
                            return Err(syntax(
                                "`\\` must be followed by a special character or two hex digits",
                            ));
                        }
                    },
                    Some(c @ ('"' | ';' | '<' | '>')) => {
                        return Err(syntax(format!(
                            "`{c}` in a value must be escaped (`\\{c}`)"
                        )));
                    }
                    Some(c) => {
                        flush(&mut bytes, &mut value)?;
                        value.push(ValueChar { c, escaped: false });
                    }
                }
            };
            flush(&mut bytes, &mut value)?;
            let value = trim_unescaped(&value);
            if value.is_empty() {
                return Err(syntax(format!("attribute {name} has an empty value")));
            }
            if value.first().is_some_and(|v| v.c == '#' && !v.escaped) {
                return Err(syntax(format!(
                    "attribute {name}: hex-encoded values (`#…`) are not accepted; write the text (a leading `#` as `\\#`)"
                )));
            }
            rdn.push((attribute, value.iter().map(|v| v.c).collect()));
            match separator {
                Some('+') => continue,
                Some(_) | None => {
                    rdns.push(finish_rdn(std::mem::take(&mut rdn))?);
                    if separator.is_none() {
                        break;
                    }
                    if chars.peek().is_none() || chars.clone().all(char::is_whitespace) {
                        return Err(syntax("a trailing `,`"));
                    }
                }
            }
        }
        rdns.sort();
        Ok(DistinguishedName(rdns))
    }

    /// The subject of a DER certificate; an error when it cannot be parsed or a value does
    /// not decode.
    pub fn of_certificate(der: &[u8]) -> Result<Self, DnError> {
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|_| syntax("the certificate does not parse"))?;
        Self::of_name(cert.subject())
    }

    /// A parsed X.509 name.
    pub fn of_name(name: &X509Name<'_>) -> Result<Self, DnError> {
        let mut rdns = Vec::new();
        for rdn in name.iter() {
            let mut avas = Vec::new();
            for attr in rdn.iter() {
                let attribute = attribute_by_oid(&attr.attr_type().to_id_string());
                let any = attr.attr_value();
                let value = decode_value(any.tag(), any.data)
                    .ok_or_else(|| DnError::Undecodable(attribute.clone()))?;
                avas.push((attribute, value));
            }
            rdns.push(finish_rdn(avas)?);
        }
        rdns.sort();
        Ok(DistinguishedName(rdns))
    }

    /// A canonical text form (sorted RDNs and pairs, every special character escaped), for
    /// comparisons, maps and messages. Different DNs have different canonical forms.
    pub fn canonical(&self) -> String {
        self.0
            .iter()
            .map(|rdn| {
                rdn.iter()
                    .map(|(k, v)| format!("{k}={}", escape_value(v)))
                    .collect::<Vec<_>>()
                    .join("+")
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Sorts the pairs of one RDN; the same pair twice in one RDN is refused (an RDN is a set).
fn finish_rdn(mut avas: Vec<Ava>) -> Result<Vec<Ava>, DnError> {
    avas.sort();
    if avas.windows(2).any(|w| w[0] == w[1]) {
        return Err(syntax(
            "the same attribute=value twice in one multi-valued RDN",
        ));
    }
    Ok(avas)
}

/// Drops unescaped spaces at both ends.
fn trim_unescaped(value: &[ValueChar]) -> &[ValueChar] {
    let start = value
        .iter()
        .position(|v| v.escaped || !v.c.is_whitespace())
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|v| v.escaped || !v.c.is_whitespace())
        .map_or(start, |i| i + 1);
    &value[start..end.max(start)]
}

/// Text of a certificate attribute value by its ASN.1 string type; `None` when the type is
/// not a text type hcgw decodes or the bytes are not valid for it.
fn decode_value(tag: Tag, data: &[u8]) -> Option<String> {
    let text = match tag {
        Tag::Utf8String => String::from_utf8(data.to_vec()).ok()?,
        Tag::PrintableString => {
            let ok = data
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b" '()+,-./:=?".contains(b));
            ok.then(|| String::from_utf8(data.to_vec()).ok())??
        }
        Tag::Ia5String => data
            .is_ascii()
            .then(|| String::from_utf8(data.to_vec()).ok())??,
        Tag::NumericString => data
            .iter()
            .all(|b| b.is_ascii_digit() || *b == b' ')
            .then(|| String::from_utf8(data.to_vec()).ok())??,
        Tag::BmpString => {
            if !data.len().is_multiple_of(2) {
                return None;
            }
            let units: Vec<u16> = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()?
        }
        Tag::UniversalString => {
            if !data.len().is_multiple_of(4) {
                return None;
            }
            data.chunks_exact(4)
                .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect::<Option<String>>()?
        }
        _ => return None,
    };
    (!text.is_empty() && !text.contains('\0')).then_some(text)
}

/// RFC 4514 escaping of one value, plus hex escapes for control characters.
fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '\\' | ',' | '+' | '"' | '<' | '>' | ';' | '=' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\{b:02X}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

impl fmt::Display for DistinguishedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dn(text: &str) -> DistinguishedName {
        DistinguishedName::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn order_spacing_and_attribute_case_do_not_matter() {
        let a = dn("O=shanghai, OU=platform, CN=platform-shanghai");
        assert_eq!(a, dn("cn=platform-shanghai,ou=platform,o=shanghai"));
        assert_eq!(
            a,
            dn("commonName=platform-shanghai, 2.5.4.11=platform, O=shanghai")
        );
        assert_eq!(
            dn("O=guangdong/guangzhou,OU=checkpoint,CN=x").canonical(),
            "CN=x,O=guangdong/guangzhou,OU=checkpoint"
        );
        assert_ne!(a, dn("O=shanghai, OU=checkpoint, CN=platform-shanghai"));
    }

    #[test]
    fn values_compare_exactly() {
        assert_ne!(dn("CN=Platform"), dn("CN=platform"));
        assert_ne!(dn("CN=a b"), dn("CN=a  b"));
    }

    #[test]
    fn a_backslash_and_a_comma_are_distinct_escapes() {
        // `CN=a\\,OU=b` is CN `a\` and OU `b`; `CN=a\,OU=b` is one CN `a,OU=b`.
        let two = dn(r"CN=a\\,OU=b");
        let one = dn(r"CN=a\,OU=b");
        assert_ne!(two, one);
        assert_ne!(two.canonical(), one.canonical());
        assert_eq!(two, dn(r"OU=b, CN=a\5C"));
        assert_eq!(one.canonical(), r"CN=a\,OU\=b");
        assert_eq!(two.canonical(), r"CN=a\\,OU=b");
        assert_eq!(dn(r"CN=a\,OU\=b"), one);
    }

    #[test]
    fn every_special_character_escapes_and_round_trips() {
        for (text, value) in [
            (r"CN=a\+b", "a+b"),
            (r#"CN=a\"b"#, "a\"b"),
            (r"CN=a\<b\>", "a<b>"),
            (r"CN=a\;b", "a;b"),
            (r"CN=\#a", "#a"),
            (r"CN=a#b", "a#b"),
            (r"CN=\ a", " a"),
            (r"CN=a\ ", "a "),
            (r"CN=\41b", "Ab"),
            (r"CN=\e4\b8\8a\E6\B5\B7", "上海"),
            ("CN=上海", "上海"),
        ] {
            let parsed = dn(text);
            assert_eq!(
                parsed.0,
                vec![vec![("CN".to_owned(), value.to_owned())]],
                "{text}"
            );
            assert_eq!(dn(&format!("CN={}", escape_value(value))), parsed, "{text}");
        }
        // unescaped spaces at the ends are not part of the value, escaped ones are
        assert_eq!(dn("CN=  a  "), dn("CN=a"));
        assert_ne!(dn(r"CN=a\ "), dn("CN=a"));
        assert_eq!(dn(r"CN=\ a\ ").canonical(), r"CN=\ a\ ");
        assert_eq!(
            DistinguishedName(vec![vec![("CN".into(), "a\nb".into())]]).canonical(),
            r"CN=a\0Ab"
        );
    }

    #[test]
    fn a_multi_valued_rdn_differs_from_two_rdns() {
        let multi = dn("CN=a+OU=b, O=c");
        assert_eq!(multi, dn("O=c, OU=b+CN=a"));
        assert_ne!(multi, dn("CN=a, OU=b, O=c"));
        assert_eq!(multi.canonical(), "CN=a+OU=b,O=c");
        assert!(DistinguishedName::parse("CN=a+CN=a").is_err());
    }

    #[test]
    fn repeated_attributes_are_kept() {
        let two = dn("OU=x, OU=y, CN=a");
        assert_eq!(two, dn("CN=a, OU=y, OU=x"));
        assert_ne!(two, dn("OU=x, CN=a"));
        assert_ne!(dn("OU=x, OU=x, CN=a"), dn("OU=x, CN=a"));
    }

    #[test]
    fn bad_subjects_are_refused() {
        for bad in [
            "",
            "platform-shanghai",
            "CN=",
            "CN= ",
            "CN=a,",
            "CN=a, ",
            "=a",
            "CN=a\\",
            "CN=a\\x",
            "CN=a\\4",
            "CN=a\\FF",
            "CN=a;OU=b",
            "CN=a\"b",
            "CN=<a>",
            "CN=#0403616263",
            "FOO=a",
            "C N=a",
        ] {
            assert!(DistinguishedName::parse(bad).is_err(), "{bad:?} parsed");
        }
        assert!(matches!(
            DistinguishedName::parse("FOO=a"),
            Err(DnError::UnknownAttribute(_))
        ));
        assert_eq!(dn("1.2.3.4=a").canonical(), "1.2.3.4=a");
    }

    #[test]
    fn string_types_decode_by_value() {
        let utf8 = decode_value(Tag::Utf8String, b"jiangsu").unwrap();
        assert_eq!(
            decode_value(Tag::PrintableString, b"jiangsu").unwrap(),
            utf8
        );
        assert_eq!(decode_value(Tag::Ia5String, b"jiangsu").unwrap(), utf8);
        let bmp: Vec<u8> = "jiangsu"
            .encode_utf16()
            .flat_map(u16::to_be_bytes)
            .collect();
        assert_eq!(decode_value(Tag::BmpString, &bmp).unwrap(), utf8);
        let ucs4: Vec<u8> = "上海"
            .chars()
            .flat_map(|c| (c as u32).to_be_bytes())
            .collect();
        assert_eq!(decode_value(Tag::UniversalString, &ucs4).unwrap(), "上海");
        assert_eq!(
            decode_value(Tag::Utf8String, "上海".as_bytes()).unwrap(),
            "上海"
        );
        // values that do not decode are refused, never matched
        assert!(decode_value(Tag::Utf8String, b"\xff\xfe").is_none());
        assert!(decode_value(Tag::PrintableString, b"a@b").is_none());
        assert!(decode_value(Tag::PrintableString, "上".as_bytes()).is_none());
        assert!(decode_value(Tag::Ia5String, "上".as_bytes()).is_none());
        assert!(decode_value(Tag::NumericString, b"12a").is_none());
        assert!(decode_value(Tag::BmpString, b"\x00a\x00").is_none());
        assert!(decode_value(Tag::BmpString, b"\xd8\x00").is_none());
        assert!(decode_value(Tag::UniversalString, b"\x00\x11\x00\x00").is_none());
        assert!(decode_value(Tag::TeletexString, b"abc").is_none());
        assert!(decode_value(Tag::OctetString, b"abc").is_none());
        assert!(decode_value(Tag::Utf8String, b"a\0b").is_none());
        assert!(decode_value(Tag::Utf8String, b"").is_none());
    }
}
