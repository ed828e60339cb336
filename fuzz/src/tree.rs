//! A document tree that keeps what `serde_json::Value` throws away: the order of keys and
//! duplicate keys. Parsed from JSON (every key kept, in order) or from Sukang's XML
//! (elements as keys, text as strings), mutated by [`crate::mutate`], and written back as
//! JSON or XML byte for byte as the tree says (duplicates included).

use std::fmt::Write as _;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value with ordered, possibly repeated keys.
#[derive(Clone, Debug, PartialEq)]
pub enum Tree {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, as serde_json read it.
    Num(serde_json::Number),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<Tree>),
    /// An object: every (key, value) pair in document order, duplicates kept.
    Obj(Vec<(String, Tree)>),
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Tree;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<Tree, E> {
                Ok(Tree::Null)
            }
            fn visit_none<E>(self) -> Result<Tree, E> {
                Ok(Tree::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Tree, D::Error> {
                Tree::deserialize(d)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Tree, E> {
                Ok(Tree::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Tree, E> {
                Ok(Tree::Num(n.into()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Tree, E> {
                Ok(Tree::Num(n.into()))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Tree, E> {
                serde_json::Number::from_f64(n)
                    .map(Tree::Num)
                    .ok_or_else(|| E::custom("not a finite number"))
            }
            fn visit_str<E>(self, s: &str) -> Result<Tree, E> {
                Ok(Tree::Str(s.to_owned()))
            }
            fn visit_string<E>(self, s: String) -> Result<Tree, E> {
                Ok(Tree::Str(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Tree, A::Error> {
                let mut items = Vec::new();
                while let Some(v) = a.next_element()? {
                    items.push(v);
                }
                Ok(Tree::Arr(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Tree, A::Error> {
                let mut pairs = Vec::new();
                while let Some((k, v)) = a.next_entry::<String, Tree>()? {
                    pairs.push((k, v));
                }
                Ok(Tree::Obj(pairs))
            }
        }
        d.deserialize_any(V)
    }
}

impl Tree {
    /// Parses JSON keeping every key (order and duplicates); `None` when not JSON.
    pub fn from_json(bytes: &[u8]) -> Option<Tree> {
        serde_json::from_slice(bytes).ok()
    }

    /// Whether some object at any depth has the same key twice.
    pub fn has_duplicate_key(&self) -> bool {
        match self {
            Tree::Arr(items) => items.iter().any(Tree::has_duplicate_key),
            Tree::Obj(pairs) => {
                pairs
                    .iter()
                    .enumerate()
                    .any(|(i, (k, _))| pairs[..i].iter().any(|(k2, _)| k2 == k))
                    || pairs.iter().any(|(_, v)| v.has_duplicate_key())
            }
            _ => false,
        }
    }

    /// The value at `path` (object keys), when each key on the way is there exactly once.
    pub fn get(&self, path: &[&str]) -> Option<&Tree> {
        let mut node = self;
        for key in path {
            let Tree::Obj(pairs) = node else { return None };
            let mut found = pairs.iter().filter(|(k, _)| k == key);
            let (_, v) = found.next()?;
            if found.next().is_some() {
                return None;
            }
            node = v;
        }
        Some(node)
    }

    /// The string at `path`, if it is one.
    pub fn str_at(&self, path: &[&str]) -> Option<&str> {
        match self.get(path)? {
            Tree::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Written as compact JSON, keys in tree order, duplicates included.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = String::new();
        self.write_json(&mut out);
        out.into_bytes()
    }

    fn write_json(&self, out: &mut String) {
        match self {
            Tree::Null => out.push_str("null"),
            Tree::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Tree::Num(n) => out.push_str(&n.to_string()),
            Tree::Str(s) => out.push_str(&serde_json::Value::String(s.clone()).to_string()),
            Tree::Arr(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write_json(out);
                }
                out.push(']');
            }
            Tree::Obj(pairs) => {
                out.push('{');
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::String(k.clone()).to_string());
                    out.push(':');
                    v.write_json(out);
                }
                out.push('}');
            }
        }
    }

    /// Parses XML into a tree: the root element as the only key of an object, each element
    /// with child elements as an object (children in order, repeats kept), each element
    /// with only text as a string (entities resolved; text beside child elements is
    /// dropped). `None` when quick-xml refuses it or when there is a DOCTYPE.
    pub fn from_xml(bytes: &[u8]) -> Option<Tree> {
        use quick_xml::events::Event;
        let mut reader = quick_xml::Reader::from_reader(bytes);
        reader.config_mut().trim_text(true);
        // (name, children, text) of each open element.
        type Open = (String, Vec<(String, Tree)>, String);
        let mut stack: Vec<Open> = vec![(String::new(), Vec::new(), String::new())];
        let close = |stack: &mut Vec<Open>| -> Option<()> {
            let (name, children, text) = stack.pop()?;
            // Text beside child elements is ignored, as the Sukang adapter ignores it.
            let node = if children.is_empty() {
                Tree::Str(text)
            } else {
                Tree::Obj(children)
            };
            stack.last_mut()?.1.push((name, node));
            Some(())
        };
        let mut buf = Vec::new();
        loop {
            match reader.read_event_into(&mut buf).ok()? {
                Event::Start(e) => {
                    let name = String::from_utf8(e.name().as_ref().to_vec()).ok()?;
                    stack.push((name, Vec::new(), String::new()));
                }
                Event::Empty(e) => {
                    let name = String::from_utf8(e.name().as_ref().to_vec()).ok()?;
                    stack.last_mut()?.1.push((name, Tree::Str(String::new())));
                }
                Event::End(_) => {
                    if stack.len() < 2 {
                        return None;
                    }
                    close(&mut stack)?;
                }
                Event::Text(t) => {
                    let text = t.unescape().ok()?;
                    if stack.len() < 2 {
                        return None;
                    }
                    stack.last_mut()?.2.push_str(&text);
                }
                Event::CData(c) => {
                    if stack.len() < 2 {
                        return None;
                    }
                    let text = std::str::from_utf8(&c).ok()?.to_owned();
                    stack.last_mut()?.2.push_str(&text);
                }
                Event::DocType(_) => return None,
                Event::Eof => break,
                _ => {}
            }
            buf.clear();
        }
        if stack.len() != 1 {
            return None;
        }
        let (_, roots, _) = stack.pop()?;
        (roots.len() == 1).then_some(Tree::Obj(roots))
    }

    /// Written as XML (with an XML declaration): objects as child elements in order,
    /// strings as escaped text, numbers and booleans as their JSON text, `null` as an empty
    /// element, arrays as the element repeated once per item.
    pub fn to_xml(&self) -> Vec<u8> {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
        if let Tree::Obj(pairs) = self {
            for (k, v) in pairs {
                write_xml_element(k, v, &mut out);
            }
        }
        out.into_bytes()
    }
}

fn write_xml_element(name: &str, value: &Tree, out: &mut String) {
    let name: String = name
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .collect();
    let name = if name.is_empty() {
        "X".to_owned()
    } else {
        name
    };
    match value {
        Tree::Arr(items) => {
            for item in items {
                write_xml_element(&name, item, out);
            }
        }
        Tree::Null => {
            let _ = write!(out, "<{name}/>");
        }
        Tree::Obj(pairs) => {
            let _ = write!(out, "<{name}>");
            for (k, v) in pairs {
                write_xml_element(k, v, out);
            }
            let _ = write!(out, "</{name}>");
        }
        Tree::Bool(b) => {
            let _ = write!(out, "<{name}>{b}</{name}>");
        }
        Tree::Num(n) => {
            let _ = write!(out, "<{name}>{n}</{name}>");
        }
        Tree::Str(s) => {
            let _ = write!(
                out,
                "<{name}>{}</{name}>",
                quick_xml::escape::escape(s.as_str())
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keeps_order_and_duplicates() {
        let t = Tree::from_json(br#"{"b":1,"a":{"x":"R","x":"G"}}"#).unwrap();
        assert!(t.has_duplicate_key());
        assert_eq!(t.to_json(), br#"{"b":1,"a":{"x":"R","x":"G"}}"#.to_vec());
        assert_eq!(
            t.get(&["a", "x"]),
            None,
            "a repeated key is no single value"
        );
        assert_eq!(t.str_at(&["b"]), None);
        let u = Tree::from_json(br#"{"b":1,"a":{"x":"R"}}"#).unwrap();
        assert!(!u.has_duplicate_key());
        assert_eq!(u.str_at(&["a", "x"]), Some("R"));
    }

    #[test]
    fn xml_round_trips_through_the_tree() {
        let xml = "<?xml version=\"1.0\"?><Response><Code>0</Code><Data><Mys>&#x7EFF;码</Mys>\
                   <Mys>红码</Mys><Empty/></Data></Response>";
        let t = Tree::from_xml(xml.as_bytes()).unwrap();
        assert!(t.has_duplicate_key());
        assert_eq!(t.str_at(&["Response", "Code"]), Some("0"));
        let back = Tree::from_xml(&t.to_xml()).unwrap();
        assert_eq!(back, t);
        assert!(Tree::from_xml(b"<!DOCTYPE x><Response/>").is_none());
        assert_eq!(
            Tree::from_xml(b"<A>text<B>1</B></A>"),
            Tree::from_xml(b"<A><B>1</B></A>")
        );
        assert!(Tree::from_xml(b"<A>1</A><B>2</B>").is_none());
    }
}
