//! An independent, deliberately small statement of when each contract's answer *may* be a
//! green, and when a green *may* pass: the necessary conditions, read from
//! `shared/spec/regions/*.md` and the issue-11 rules (duplicate keys at any depth, exact
//! JSON types, decision fields required with a listed value). The adapters may refuse more;
//! a green or a pass outside these conditions is a finding.

use hcgw_adapters::RegionId;
use hcgw_adapters::decode::RawAnswer;

use crate::tree::Tree;

/// How a region's answer is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// JSON.
    Json,
    /// Sukang's XML.
    Xml,
}

/// A field with the values it must have.
struct Field {
    path: &'static [&'static str],
    allowed: Vec<Tree>,
}

/// One contract's green, as far as the oracle needs it.
pub struct Contract {
    /// The region.
    pub region: RegionId,
    /// JSON or XML.
    pub format: Format,
    /// Accepted media types (`None`: checked before the body, outside the decode).
    media: Option<&'static [&'static str]>,
    /// Fields that must hold one of their values for any green (success code, colour).
    green: Vec<Field>,
    /// Fields that must hold one of their values for a pass (no action added).
    pass: Vec<Field>,
}

fn s(v: &str) -> Tree {
    Tree::Str(v.to_owned())
}

fn n(v: u64) -> Tree {
    Tree::Num(v.into())
}

fn field(path: &'static [&'static str], allowed: Vec<Tree>) -> Field {
    Field { path, allowed }
}

const JSON: &[&str] = &["application/json"];
const XML: &[&str] = &["application/xml", "text/xml"];

impl Contract {
    /// The contract of `region`.
    pub fn of(region: RegionId) -> Contract {
        let (format, media, green, pass) = match region {
            RegionId::Suzhou => (
                Format::Json,
                Some(JSON),
                vec![
                    field(&["retCode"], vec![s("0000")]),
                    field(&["data", "codeStatus"], vec![s("G"), s("GP")]),
                ],
                vec![],
            ),
            RegionId::Suishen => (
                Format::Json,
                Some(JSON),
                vec![
                    field(&["code"], vec![n(0)]),
                    field(&["data", "codeColor"], vec![n(0)]),
                ],
                vec![field(
                    &["data", "registration"],
                    vec![s("DONE"), s("NOT_APPLICABLE")],
                )],
            ),
            RegionId::Sukang => (
                Format::Xml,
                Some(XML),
                vec![
                    field(&["Response", "Code"], vec![s("0")]),
                    field(&["Response", "Data", "Mys"], vec![s("绿码")]),
                ],
                vec![field(&["Response", "Data", "Xxgx"], vec![s("0")])],
            ),
            RegionId::Xuzhou => (
                Format::Json,
                Some(JSON),
                vec![
                    field(&["errcode"], vec![n(0)]),
                    field(&["data", "skm", "color"], vec![s("GREEN")]),
                ],
                vec![
                    field(
                        &["data", "entryRegistration", "required"],
                        vec![Tree::Bool(false), Tree::Bool(true)],
                    ),
                    field(
                        &["data", "entryRegistration", "completed"],
                        vec![Tree::Bool(false), Tree::Bool(true)],
                    ),
                ],
            ),
            RegionId::Hangzhou => (
                Format::Json,
                Some(JSON),
                vec![
                    field(&["success"], vec![Tree::Bool(true)]),
                    field(&["result", "color"], vec![s("green")]),
                ],
                vec![],
            ),
            RegionId::Huzhou => (
                Format::Json,
                Some(JSON),
                vec![
                    field(&["status"], vec![n(200)]),
                    field(&["body", "qrColor"], vec![s("1")]),
                ],
                vec![],
            ),
            RegionId::Guangzhou => (
                Format::Json,
                None,
                vec![
                    field(&["errcode"], vec![n(0)]),
                    // `blue`: applied for in person, normal (a green by the contract).
                    field(&["code_info", "color"], vec![s("green"), s("blue")]),
                ],
                vec![],
            ),
            RegionId::Guangdong => (
                Format::Json,
                Some(JSON),
                vec![
                    field(&["errCode"], vec![s("0")]),
                    field(&["data", "codeStatus"], vec![s("1")]),
                ],
                vec![],
            ),
        };
        Contract {
            region,
            format,
            media,
            green,
            pass,
        }
    }

    /// The document of a body in this contract's format (`None`: not well-formed).
    pub fn parse(&self, body: &[u8]) -> Option<Tree> {
        match self.format {
            Format::Json => Tree::from_json(body),
            Format::Xml => Tree::from_xml(body),
        }
    }

    /// The body of a document in this contract's format.
    pub fn write(&self, doc: &Tree) -> Vec<u8> {
        match self.format {
            Format::Json => doc.to_json(),
            Format::Xml => doc.to_xml(),
        }
    }

    /// The content type a region of this format sends.
    pub fn content_type(&self) -> &'static str {
        match self.format {
            Format::Json => "application/json; charset=utf-8",
            Format::Xml => "application/xml; charset=utf-8",
        }
    }

    /// `Ok` when `answer` may be a green of the contract; else why not (a finding kind).
    pub fn may_be_green(&self, answer: &RawAnswer) -> Result<Tree, String> {
        if let Some(media) = self.media {
            let ct = answer
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .map(|m| m.trim().to_ascii_lowercase());
            if !ct.is_some_and(|ct| media.contains(&ct.as_str())) {
                return Err("green-with-wrong-content-type".into());
            }
            if answer.status != 200 {
                return Err("green-with-http-status-not-200".into());
            }
        }
        let doc = self
            .parse(&answer.body)
            .ok_or("green-from-a-malformed-body")?;
        if self.has_duplicates(&doc) {
            return Err("green-with-duplicate-key".into());
        }
        check_fields(&doc, &self.green, "green-with")?;
        if self.region == RegionId::Suishen {
            // codeColor 0 with reason tags contradicts itself (the adapter's own rule).
            match doc.get(&["data", "reasonTags"]) {
                None | Some(Tree::Null) => {}
                Some(Tree::Arr(tags)) if tags.is_empty() => {}
                Some(_) => return Err("green-with-reason-tags".into()),
            }
        }
        Ok(doc)
    }

    /// `Ok` when `answer` may be a green that passes (no action that forces a manual
    /// check); else why not.
    pub fn may_pass(&self, answer: &RawAnswer) -> Result<(), String> {
        let doc = self.may_be_green(answer)?;
        check_fields(&doc, &self.pass, "pass-with")?;
        if self.region == RegionId::Xuzhou
            && doc.get(&["data", "entryRegistration", "required"]) == Some(&Tree::Bool(true))
            && doc.get(&["data", "entryRegistration", "completed"]) != Some(&Tree::Bool(true))
        {
            return Err("pass-with-registration-pending".into());
        }
        Ok(())
    }

    /// Duplicates that matter: any object key at any depth for JSON; for XML, a repeated
    /// element among the known ones (`Response`'s and `Data`'s children; the adapter ignores
    /// unknown elements and everything inside them).
    fn has_duplicates(&self, doc: &Tree) -> bool {
        match self.format {
            Format::Json => doc.has_duplicate_key(),
            Format::Xml => {
                let repeated = |t: Option<&Tree>| match t {
                    Some(Tree::Obj(pairs)) => pairs.iter().enumerate().any(|(i, (k, _))| {
                        SUKANG_KNOWN.contains(&k.as_str())
                            && pairs[..i].iter().any(|(k2, _)| k2 == k)
                    }),
                    _ => false,
                };
                repeated(Some(doc))
                    || repeated(first(doc, "Response"))
                    || repeated(first(doc, "Response").and_then(|r| first(r, "Data")))
            }
        }
    }
}

/// The elements Sukang's contract defines.
const SUKANG_KNOWN: &[&str] = &[
    "Response", "Code", "Msg", "Data", "Mys", "Gxsj", "Xm", "Zjlx", "Zjhm", "Gklx", "Xxgx",
];

fn first<'a>(t: &'a Tree, key: &str) -> Option<&'a Tree> {
    match t {
        Tree::Obj(pairs) => pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v),
        _ => None,
    }
}

fn check_fields(doc: &Tree, fields: &[Field], what: &str) -> Result<(), String> {
    for f in fields {
        let name = f.path.last().copied().unwrap_or("");
        match doc.get(f.path) {
            None => return Err(format!("{what}-{name}-missing")),
            Some(v) if !f.allowed.contains(v) => {
                return Err(format!("{what}-{name}-{}", kind_of(v)));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// A short name for the kind of a wrong value (keeps finding kinds few and stable).
fn kind_of(v: &Tree) -> &'static str {
    match v {
        Tree::Null => "null",
        Tree::Bool(_) => "retyped-bool",
        Tree::Num(_) => "retyped-number",
        Tree::Str(_) => "unlisted",
        Tree::Arr(_) => "retyped-array",
        Tree::Obj(_) => "retyped-object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    fn raw(ct: &'static str, body: &[u8]) -> RawAnswer {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
        RawAnswer {
            status: 200,
            headers,
            body: body.to_vec(),
        }
    }

    #[test]
    fn the_oracle_knows_a_green_from_the_rest() {
        let c = Contract::of(RegionId::Suzhou);
        let ok = raw(
            "application/json",
            br#"{"retCode":"0000","data":{"codeStatus":"G"}}"#,
        );
        assert!(c.may_pass(&ok).is_ok());
        let dup = raw(
            "application/json",
            br#"{"retCode":"0000","data":{"codeStatus":"R","codeStatus":"G"}}"#,
        );
        assert_eq!(
            c.may_be_green(&dup).unwrap_err(),
            "green-with-duplicate-key"
        );
        let typed = raw(
            "application/json",
            br#"{"retCode":0,"data":{"codeStatus":"G"}}"#,
        );
        assert_eq!(
            c.may_be_green(&typed).unwrap_err(),
            "green-with-retCode-retyped-number"
        );
        assert!(c.may_be_green(&raw("text/html", &ok.body)).is_err());
        let s = Contract::of(RegionId::Suishen);
        let no_reg = raw("application/json", br#"{"code":0,"data":{"codeColor":0}}"#);
        assert!(s.may_be_green(&no_reg).is_ok());
        assert_eq!(
            s.may_pass(&no_reg).unwrap_err(),
            "pass-with-registration-missing"
        );
        let x = Contract::of(RegionId::Sukang);
        let xml = "<Response><Code>0</Code><Data><Mys>绿码</Mys><Xxgx>0</Xxgx><Extra/><Extra/></Data></Response>";
        assert!(x.may_pass(&raw("text/xml", xml.as_bytes())).is_ok());
        let xml2 = "<Response><Code>0</Code><Data><Mys>红码</Mys><Mys>绿码</Mys></Data></Response>";
        assert_eq!(
            x.may_be_green(&raw("text/xml", xml2.as_bytes()))
                .unwrap_err(),
            "green-with-duplicate-key"
        );
    }
}
