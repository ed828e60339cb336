//! Strict JSON: one pass from bytes straight into a typed value, refusing what
//! `serde_json` alone lets through.
//!
//! [`from_slice`] wraps `serde_json::Deserializer` in [`Strict`], a `Deserializer` adapter
//! that
//! - refuses a **duplicate key in any object at any depth** — in the fields the target type
//!   reads, in the fields it ignores (ignored values are walked, not skipped) and inside
//!   arrays and nested objects (`serde_json` silently keeps the last duplicate, so
//!   `"codeStatus":"R", … "codeStatus":"G"` would read as green);
//! - refuses an **array where the type has a struct** (`serde_json` reads a struct from a
//!   sequence of its fields, so `"data":["G"]` would read as a green);
//! - adds no coercion: `serde_json` already refuses a string for a number, a number for a
//!   string, a string for a boolean and `null` for a non-`Option` field.
//!
//! No crate published this (the ones found build a `serde_json::Value` first and convert it,
//! a second parse); the adapter is a thin forwarding layer, tested below.

use std::collections::HashSet;
use std::fmt;

use serde::de::value::StringDeserializer;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess,
    SeqAccess, VariantAccess, Visitor,
};

/// Parses `bytes` as one JSON document into `T` with the strict rules above (trailing
/// characters other than whitespace are refused too).
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = T::deserialize(Strict(&mut de))?;
    de.end()?;
    Ok(value)
}

/// Reads an already strictly parsed `serde_json::Value` (no duplicates left in it) into `T`,
/// still refusing an array where `T` has a struct.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, serde_json::Error> {
    T::deserialize(Strict(value))
}

/// A `Deserializer` adapter that refuses duplicate keys and arrays read as structs.
pub struct Strict<D>(pub D);

/// Forwards `deserialize_*` methods that take only a visitor.
macro_rules! forward_visitor_only {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            self.0.$method(Wrap(visitor))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Strict<D> {
    type Error = D::Error;

    forward_visitor_only! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
        deserialize_i64 deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32
        deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char
        deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
        deserialize_option deserialize_unit deserialize_seq deserialize_map
        deserialize_identifier
    }

    /// An ignored value is walked (`deserialize_any`), so duplicates inside it are found.
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(Wrap(visitor))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_unit_struct(name, Wrap(visitor))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_newtype_struct(name, Wrap(visitor))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple(len, Wrap(visitor))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple_struct(name, len, Wrap(visitor))
    }

    /// A struct is read from an object only: `deserialize_map` refuses an array.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(Wrap(visitor))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_enum(name, variants, Wrap(visitor))
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// A visitor whose nested maps, sequences, options and enums stay strict.
struct Wrap<V>(V);

/// Forwards `visit_*` methods of plain values.
macro_rules! forward_visit {
    ($($method:ident($ty:ty))*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.0.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    forward_visit! {
        visit_bool(bool) visit_i8(i8) visit_i16(i16) visit_i32(i32) visit_i64(i64)
        visit_i128(i128) visit_u8(u8) visit_u16(u16) visit_u32(u32) visit_u64(u64)
        visit_u128(u128) visit_f32(f32) visit_f64(f64) visit_char(char) visit_str(&str)
        visit_string(String) visit_bytes(&[u8]) visit_byte_buf(Vec<u8>)
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        self.0.visit_borrowed_str(v)
    }

    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
        self.0.visit_borrowed_bytes(v)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.visit_some(Strict(d))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.visit_newtype_struct(Strict(d))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.0.visit_seq(StrictSeq(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.visit_map(StrictMap {
            inner: map,
            seen: HashSet::new(),
        })
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.0.visit_enum(StrictEnum(data))
    }
}

/// A seed whose value is read strictly.
struct StrictSeed<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for StrictSeed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.0.deserialize(Strict(d))
    }
}

struct StrictSeq<A>(A);

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for StrictSeq<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(StrictSeed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

/// An object's entries; remembers its keys and refuses a repeat.
struct StrictMap<A> {
    inner: A,
    seen: HashSet<String>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for StrictMap<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        // JSON keys are strings: read it as one, remember it, then hand it to the seed.
        let Some(key) = self.inner.next_key::<String>()? else {
            return Ok(None);
        };
        if self.seen.contains(&key) {
            return Err(de::Error::custom(duplicate_key_message(&key)));
        }
        let deserializer: StringDeserializer<A::Error> = key.clone().into_deserializer();
        self.seen.insert(key);
        seed.deserialize(deserializer).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.inner.next_value_seed(StrictSeed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// The message of a duplicate key: names the key only when it looks like a field name
/// (short ASCII identifier), so a key made of personal data is never echoed.
fn duplicate_key_message(key: &str) -> String {
    let field_like = !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if field_like {
        format!("duplicate key `{key}`")
    } else {
        "duplicate key".to_owned()
    }
}

struct StrictEnum<A>(A);

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for StrictEnum<A> {
    type Error = A::Error;
    type Variant = StrictVariant<A::Variant>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), A::Error> {
        self.0
            .variant_seed(seed)
            .map(|(v, access)| (v, StrictVariant(access)))
    }
}

struct StrictVariant<A>(A);

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for StrictVariant<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.0.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.0.newtype_variant_seed(StrictSeed(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.0.tuple_variant(len, Wrap(visitor))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.0.struct_variant(fields, Wrap(visitor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Data {
        code_status: String,
        #[serde(default)]
        reasons: Option<Vec<String>>,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct Envelope {
        code: i64,
        #[serde(default)]
        data: Option<Data>,
    }

    fn parse(json: &str) -> Result<Envelope, serde_json::Error> {
        from_slice(json.as_bytes())
    }

    #[test]
    fn a_valid_answer_parses() {
        let e = parse(r#"{"code":0,"data":{"codeStatus":"G","reasons":["A"]},"extra":[1,{}]}"#)
            .unwrap();
        assert_eq!(e.data.unwrap().code_status, "G");
        assert!(parse(r#"{"code":0,"data":null}"#).unwrap().data.is_none());
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        for json in [
            r#"{"code":0,"code":1}"#,
            r#"{"code":0,"data":{"codeStatus":"R","codeStatus":"G"}}"#,
            // In fields the type ignores, inside arrays and nested objects.
            r#"{"code":0,"extra":1,"extra":2}"#,
            r#"{"code":0,"extra":{"a":1,"a":1}}"#,
            r#"{"code":0,"extra":[{"a":1},{"b":[{"c":1,"c":2}]}]}"#,
            r#"{"code":0,"data":{"codeStatus":"G","x":{"y":{"z":1,"z":1}}}}"#,
        ] {
            let e = parse(json).unwrap_err();
            assert!(e.to_string().contains("duplicate key"), "{json}: {e}");
        }
        // Also into an untyped value.
        assert!(from_slice::<serde_json::Value>(br#"[{"a":1,"a":2}]"#).is_err());
        assert!(from_slice::<serde_json::Value>(br#"[{"a":1},{"a":2}]"#).is_ok());
    }

    #[test]
    fn the_message_never_echoes_an_odd_key() {
        let e = from_slice::<serde_json::Value>(r#"{"张三":1,"张三":2}"#.as_bytes()).unwrap_err();
        assert!(!e.to_string().contains("张三"), "{e}");
        let e = from_slice::<serde_json::Value>(br#"{"codeStatus":1,"codeStatus":2}"#).unwrap_err();
        assert!(e.to_string().contains("`codeStatus`"), "{e}");
    }

    #[test]
    fn arrays_are_not_read_as_structs() {
        assert!(parse(r#"{"code":0,"data":["G"]}"#).is_err());
        assert!(parse(r#"[0,{"codeStatus":"G"}]"#).is_err());
    }

    #[test]
    fn no_lenient_coercions() {
        for json in [
            r#"{"code":"0"}"#,
            r#"{"code":0.0}"#,
            r#"{"code":null}"#,
            r#"{"code":true}"#,
            r#"{"code":0,"data":{"codeStatus":1}}"#,
            r#"{"code":0,"data":{"codeStatus":null}}"#,
            r#"{"code":0,"data":{}}"#,
            r#"{"code":0,"data":{"codeStatus":"G","reasons":"A"}}"#,
            r#"{"code":0} trailing"#,
            r#"{"code":18446744073709551616}"#,
        ] {
            assert!(parse(json).is_err(), "{json}");
        }
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Flag {
            on: bool,
        }
        assert!(from_slice::<Flag>(br#"{"on":"true"}"#).is_err());
        assert!(from_slice::<Flag>(br#"{"on":1}"#).is_err());
        assert!(from_slice::<Flag>(br#"{"on":true}"#).unwrap().on);
    }

    #[test]
    fn values_are_read_into_structs_from_objects_only() {
        let v: serde_json::Value = from_slice(br#"{"code":0,"data":{"codeStatus":"G"}}"#).unwrap();
        assert_eq!(from_value::<Envelope>(v).unwrap().code, 0);
        assert!(from_value::<Envelope>(serde_json::json!([0, null])).is_err());
        assert!(from_value::<Envelope>(serde_json::json!({"code": 0, "data": ["G"]})).is_err());
    }

    #[test]
    fn enums_and_maps_stay_strict() {
        #[derive(Deserialize, Debug)]
        #[serde(tag = "t")]
        #[allow(dead_code)]
        enum Tagged {
            A { x: i64 },
        }
        assert!(from_slice::<Tagged>(br#"{"t":"A","x":1}"#).is_ok());
        assert!(from_slice::<Tagged>(br#"{"t":"A","x":1,"x":2}"#).is_err());
        assert!(from_slice::<Tagged>(br#"{"t":"A","t":"A","x":1}"#).is_err());
        let m: std::collections::HashMap<String, i64> = from_slice(br#"{"a":1,"b":2}"#).unwrap();
        assert_eq!(m.len(), 2);
        assert!(from_slice::<std::collections::HashMap<String, i64>>(br#"{"a":1,"a":2}"#).is_err());
    }
}
