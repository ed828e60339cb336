//! 苏康码 Sukang Code (Jiangsu) (`shared/spec/regions/sukang.md`).
//!
//! `GET /skm/query?qr=` or `?zjlx=&zjhm=&xm=` over mutual TLS with Jiangsu's private CA
//! (the upstream's `tls` carries that CA and our client certificate); the answer is XML.
//! Decisions where the contract leaves room:
//! - Content type: `application/xml` or `text/xml` (RFC 7303 makes them equivalent); a
//!   `charset` other than UTF-8 is refused, and so is an XML declaration naming another
//!   encoding. Anything else → `upstream_invalid_response`.
//! - XML is read with a strict, small parser: a DOCTYPE anywhere, an entity other than the
//!   five predefined ones and character references, nesting deeper than
//!   [`MAX_DEPTH`], a root other than `<Response>`, a repeated known element, a known
//!   element with child elements, text outside the root, truncation or malformed markup →
//!   `upstream_invalid_response`. Unknown elements (and their content) are ignored.
//! - Values are compared exactly (no trimming, no case folding): `<Mys> 绿码</Mys>` is an
//!   unknown colour, never green.
//! - HTTP 5xx → `region_unavailable` (retryable) whatever the body; HTTP 401/403 →
//!   credentials refused; any other non-200 → `upstream_invalid_response`. `Code` 9001 is
//!   `region_unavailable` even with HTTP 200.
//! - A present but unparseable `Gxsj` → `upstream_invalid_response`. `Xxgx` decides an
//!   action and fails safe: only `0` omits `update_identity`; a missing, empty or unlisted
//!   `Xxgx` adds it (unlisted values are recorded as unmapped), so the status cannot pass.
//! - Any element repeated directly inside `<Response>` or `<Data>` (known or not) →
//!   `upstream_invalid_response`: a repeat is ambiguous, whichever copy a reader keeps.

use async_trait::async_trait;
use quick_xml::events::Event;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap};

use crate::adapter::{RegionAdapter, Subject};
use crate::decode::{DecodeContext, RawAnswer};
use crate::error::AdapterError;
use crate::identity::{keep_or_mask_present, mask_id, mask_name};
use crate::model::{Action, HealthStatus, Holder, IdType, Level, Reason, RegionId, Source};
use crate::time::parse_shanghai_local;
use crate::unmapped::record_unmapped;
use crate::upstream::{
    ClientBuildError, UpstreamConfig, build_client, has_media_type, read_body_limited,
    transport_error,
};

/// The query path of the Sukang API.
pub const QUERY_PATH: &str = "/skm/query";

/// Deepest element nesting accepted in an answer.
pub const MAX_DEPTH: usize = 8;

/// How to reach the Sukang API. The upstream's `tls` must carry Jiangsu's CA bundle and
/// our client certificate and key.
#[derive(Clone, Debug)]
pub struct SukangConfig {
    /// Base URL (`https://…`), deadline (contract: 2 s), body limit and mTLS material.
    pub upstream: UpstreamConfig,
}

/// The Sukang adapter.
#[derive(Debug)]
pub struct SukangAdapter {
    config: SukangConfig,
    client: reqwest::Client,
}

impl SukangAdapter {
    /// Builds the adapter and its mTLS client.
    pub fn new(config: SukangConfig) -> Result<Self, ClientBuildError> {
        let client = build_client(&config.upstream)?;
        Ok(SukangAdapter { config, client })
    }
}

/// The contract's `zjlx` for an identity type.
pub fn zjlx(id_type: IdType) -> &'static str {
    match id_type {
        IdType::ResidentId => "1",
        IdType::Passport => "2",
        IdType::HkMacaoPermit => "3",
        IdType::TaiwanPermit => "4",
    }
}

fn id_type_of(zjlx: &str) -> Option<IdType> {
    match zjlx {
        "1" => Some(IdType::ResidentId),
        "2" => Some(IdType::Passport),
        "3" => Some(IdType::HkMacaoPermit),
        "4" => Some(IdType::TaiwanPermit),
        _ => None,
    }
}

/// The query parameters for a subject, not yet encoded.
pub fn query_for(subject: &Subject) -> Vec<(&'static str, String)> {
    match subject {
        Subject::QrToken(t) => vec![("qr", t.clone())],
        Subject::Identity(i) => vec![
            ("zjlx", zjlx(i.id_type).to_owned()),
            ("zjhm", i.id_number.clone()),
            ("xm", i.name.clone()),
        ],
    }
}

/// Percent-encodes a query value: every byte but the RFC 3986 unreserved characters
/// becomes `%XX` (UTF-8), so a space is `%20`, never `+`.
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The query string for a subject (`qr=…` or `zjlx=…&zjhm=…&xm=…`), percent-encoded.
pub fn query_string(subject: &Subject) -> String {
    query_for(subject)
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The fields of an answer the adapter reads; everything else is ignored.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SukangAnswer {
    /// `<Code>`.
    pub code: Option<String>,
    /// `<RetryAfter>` (seconds, with code 1003).
    pub retry_after: Option<String>,
    /// Whether `<Data>` was present.
    pub has_data: bool,
    /// `<Data><Mys>` colour.
    pub mys: Option<String>,
    /// `<Data><Gxsj>` local update time.
    pub gxsj: Option<String>,
    /// `<Data><Xm>` masked name.
    pub xm: Option<String>,
    /// `<Data><Zjlx>` document type.
    pub zjlx: Option<String>,
    /// `<Data><Zjhm>` masked number.
    pub zjhm: Option<String>,
    /// `<Data><Gklx>` control type.
    pub gklx: Option<String>,
    /// `<Data><Xxgx>` must update information.
    pub xxgx: Option<String>,
}

impl SukangAnswer {
    fn slot(&mut self, path: &[String]) -> Option<&mut Option<String>> {
        let names: Vec<&str> = path.iter().map(String::as_str).collect();
        match names.as_slice() {
            ["Response", "Code"] => Some(&mut self.code),
            ["Response", "RetryAfter"] => Some(&mut self.retry_after),
            ["Response", "Data", leaf] => match *leaf {
                "Mys" => Some(&mut self.mys),
                "Gxsj" => Some(&mut self.gxsj),
                "Xm" => Some(&mut self.xm),
                "Zjlx" => Some(&mut self.zjlx),
                "Zjhm" => Some(&mut self.zjhm),
                "Gklx" => Some(&mut self.gklx),
                "Xxgx" => Some(&mut self.xxgx),
                _ => None,
            },
            _ => None,
        }
    }
}

fn bad(detail: &'static str) -> AdapterError {
    AdapterError::invalid_response(detail)
}

/// Parses a Sukang XML answer strictly (see the module documentation).
pub fn parse_xml(body: &[u8]) -> Result<SukangAnswer, AdapterError> {
    let text = std::str::from_utf8(body).map_err(|_| bad("body is not UTF-8"))?;
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    reader.config_mut().expand_empty_elements = true;
    let mut answer = SukangAnswer::default();
    let mut path: Vec<String> = Vec::new();
    // The known leaf being filled, if any.
    let mut in_leaf = false;
    let mut seen_root = false;
    // The children already seen of `<Response>` (depth 2) and of `<Response><Data>` (depth 3).
    let mut response_children: std::collections::HashSet<String> = Default::default();
    let mut data_children: std::collections::HashSet<String> = Default::default();
    loop {
        let event = reader.read_event().map_err(|_| bad("malformed XML"))?;
        match event {
            Event::DocType(_) => return Err(bad("DOCTYPE in the answer")),
            Event::Decl(d) => {
                if let Some(enc) = d.encoding() {
                    let enc = enc.map_err(|_| bad("malformed XML declaration"))?;
                    if !enc.eq_ignore_ascii_case(b"utf-8") {
                        return Err(bad("XML encoding is not UTF-8"));
                    }
                }
            }
            Event::Start(e) => {
                if in_leaf {
                    return Err(bad("element inside a value element"));
                }
                if path.is_empty() && seen_root {
                    return Err(bad("more than one root element"));
                }
                let name = std::str::from_utf8(e.local_name().as_ref())
                    .map_err(|_| bad("element name is not UTF-8"))?
                    .to_owned();
                if path.is_empty() {
                    if name != "Response" {
                        return Err(bad("root element is not Response"));
                    }
                    seen_root = true;
                }
                let repeated = match path.as_slice() {
                    [root] if root == "Response" => !response_children.insert(name.clone()),
                    [root, data] if root == "Response" && data == "Data" => {
                        !data_children.insert(name.clone())
                    }
                    _ => false,
                };
                if repeated {
                    return Err(bad("repeated element"));
                }
                path.push(name);
                if path.len() > MAX_DEPTH {
                    return Err(bad("XML nested too deep"));
                }
                if path.len() == 2 && path[1] == "Data" {
                    if answer.has_data {
                        return Err(bad("repeated Data element"));
                    }
                    answer.has_data = true;
                }
                if let Some(slot) = answer.slot(&path) {
                    if slot.is_some() {
                        return Err(bad("repeated element"));
                    }
                    *slot = Some(String::new());
                    in_leaf = true;
                }
            }
            Event::End(_) => {
                path.pop();
                in_leaf = false;
            }
            Event::Empty(_) => unreachable!("expand_empty_elements is on"),
            Event::Text(t) => {
                let value = t.unescape().map_err(|_| bad("unknown entity"))?;
                if path.is_empty() {
                    if !value.trim().is_empty() {
                        return Err(bad("text outside the root element"));
                    }
                } else if in_leaf
                    && let Some(Some(slot)) = answer.slot(&path) {
                        slot.push_str(&value);
                    }
            }
            Event::CData(c) => {
                if path.is_empty() {
                    return Err(bad("text outside the root element"));
                }
                if in_leaf {
                    let value = std::str::from_utf8(&c).map_err(|_| bad("CDATA not UTF-8"))?;
                    if let Some(Some(slot)) = answer.slot(&path) {
                        slot.push_str(value);
                    }
                }
            }
            Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if !path.is_empty() || !seen_root {
        return Err(bad("truncated XML"));
    }
    Ok(answer)
}

/// The level of a `Mys` value; unlisted values are unknown.
pub fn level_of(mys: &str) -> Level {
    match mys {
        "绿码" => Level::Clear,
        "黄码" => Level::Monitoring,
        "红码" => Level::Quarantine,
        _ => Level::Unknown,
    }
}

/// The reason of a `Gklx` value: `Ok(None)` for 无, `Err(())` for unlisted values.
#[allow(clippy::result_unit_err)]
pub fn reason_of(gklx: &str) -> Result<Option<Reason>, ()> {
    match gklx {
        "集中隔离医学观察" => Ok(Some(Reason::CentralizedQuarantine)),
        "居家健康监测" => Ok(Some(Reason::HomeQuarantine)),
        "风险排查" | "核酸检测" => Ok(Some(Reason::OtherConcern)),
        "无" => Ok(None),
        _ => Err(()),
    }
}

/// Maps a parsed answer to a status or the contract's error (no network). `requested` is
/// the identity type asked for (`None` for a QR lookup).
pub fn normalise(
    answer: SukangAnswer,
    requested: Option<IdType>,
) -> Result<HealthStatus, AdapterError> {
    let region = RegionId::Sukang;
    match answer.code.as_deref() {
        Some("0") => {}
        Some("1001") => return Err(AdapterError::SubjectNotFound),
        Some("1002") => return Err(AdapterError::TokenExpired),
        Some("1003") => {
            let retry_after = answer
                .retry_after
                .as_deref()
                .and_then(|s| s.parse::<u64>().ok())
                .map(|s| std::time::Duration::from_secs(s.min(86_400)));
            return Err(AdapterError::RateLimited { retry_after });
        }
        Some("1004") => {
            // Only meaningful for identity lookups; for a QR lookup it breaks the contract.
            return Err(match requested {
                Some(t) => AdapterError::UnsupportedIdType(t),
                None => bad("1004 for a QR lookup"),
            });
        }
        Some("9001") => return Err(AdapterError::unavailable_retryable("9001")),
        Some(_) => return Err(bad("unknown Code")),
        None => return Err(bad("answer without Code")),
    }
    if !answer.has_data {
        return Err(bad("success without Data"));
    }
    let mys = answer.mys.ok_or_else(|| bad("Data without Mys"))?;
    let level = level_of(&mys);
    if level == Level::Unknown {
        record_unmapped(region, "Mys", &mys);
    }
    let mut status = HealthStatus::new(
        region,
        level,
        Source {
            code: mys.clone(),
            label: (level != Level::Unknown).then_some(mys),
        },
    );
    if let Some(gklx) = answer.gklx.as_deref() {
        match reason_of(gklx) {
            Ok(Some(r)) => status.push_reason(r),
            Ok(None) => {}
            Err(()) => {
                record_unmapped(region, "Gklx", gklx);
                status.push_reason(Reason::OtherConcern);
            }
        }
    }
    // Fail safe: only an explicit `0` means "nothing to update".
    match answer.xxgx.as_deref() {
        Some("0") => {}
        Some("1") | None => status.push_action(Action::UpdateIdentity),
        Some(other) => {
            record_unmapped(region, "Xxgx", other);
            status.push_action(Action::UpdateIdentity);
        }
    }
    if let Some(t) = answer.gxsj.as_deref() {
        status.as_of = Some(
            parse_shanghai_local(t, "%Y-%m-%d %H:%M:%S")
                .ok_or_else(|| bad("Gxsj is not yyyy-MM-dd HH:mm:ss"))?,
        );
    }
    status.holder = Holder {
        name_masked: keep_or_mask_present(answer.xm, mask_name),
        id_type: answer.zjlx.as_deref().and_then(id_type_of),
        id_masked: keep_or_mask_present(answer.zjhm, mask_id),
    };
    Ok(status)
}

/// Whether the content type is an XML one with a UTF-8 (or no) charset.
pub fn is_xml_utf8(headers: &HeaderMap) -> bool {
    if !(has_media_type(headers, "application/xml") || has_media_type(headers, "text/xml")) {
        return false;
    }
    let Some(ct) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    ct.split(';').skip(1).all(|param| {
        let mut kv = param.splitn(2, '=');
        let key = kv.next().unwrap_or("").trim();
        let value = kv.next().unwrap_or("").trim().trim_matches('"');
        !key.eq_ignore_ascii_case("charset")
            || value.eq_ignore_ascii_case("utf-8")
            || value.eq_ignore_ascii_case("utf8")
    })
}

/// Interprets a whole HTTP answer (status, headers, body) per the contract (no network).
/// `requested` is the identity type asked for (`None` for a QR lookup).
pub fn interpret(
    requested: Option<IdType>,
    http: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<HealthStatus, AdapterError> {
    match http.as_u16() {
        200 => {}
        401 | 403 => return Err(AdapterError::credentials_refused("HTTP 401/403")),
        500..=599 => return Err(AdapterError::unavailable_retryable("HTTP 5xx")),
        _ => return Err(bad("unexpected HTTP status")),
    }
    if !is_xml_utf8(headers) {
        return Err(bad("content type is not UTF-8 XML"));
    }
    normalise(parse_xml(body)?, requested)
}

#[async_trait]
impl RegionAdapter for SukangAdapter {
    fn region(&self) -> RegionId {
        RegionId::Sukang
    }

    async fn status(&self, subject: &Subject) -> Result<HealthStatus, AdapterError> {
        let up = &self.config.upstream;
        let resp = self
            .client
            .get(format!("{}?{}", up.url(QUERY_PATH), query_string(subject)))
            .send()
            .await
            .map_err(|e| transport_error(&e, up.deadline))?;
        let http = resp.status();
        let headers = resp.headers().clone();
        let body = read_body_limited(resp, up.max_body_bytes, up.deadline).await?;
        interpret(subject.id_type(), http, &headers, &body)
    }
}

/// Sukang's credentials (`[regions.sukang.auth]`): mTLS with a private CA.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SukangAuth {
    /// The region's server CA bundle.
    pub ca: std::path::PathBuf,
    /// Our client certificate chain for the region.
    pub client_cert: std::path::PathBuf,
    /// Its key (a secret: keep the file private).
    pub client_key: std::path::PathBuf,
}

impl crate::spec::Credentials for SukangAuth {
    fn resolve(&mut self, base: &std::path::Path) {
        crate::spec::resolve_path(&mut self.ca, base);
        crate::spec::resolve_path(&mut self.client_cert, base);
        crate::spec::resolve_path(&mut self.client_key, base);
    }
    fn secrets(&self) -> Vec<(&'static str, &crate::secret::SecretRef)> {
        Vec::new()
    }
    fn files(&self) -> Vec<(String, &std::path::Path)> {
        vec![
            ("ca".into(), self.ca.as_path()),
            ("client_cert".into(), self.client_cert.as_path()),
            ("client_key".into(), self.client_key.as_path()),
        ]
    }
}

/// The adapter's constructor (the spec's `build`).
fn build(
    creds: &dyn crate::spec::Credentials,
    upstream: crate::upstream::UpstreamConfig,
    _built: &crate::spec::BuiltAdapters,
) -> Result<std::sync::Arc<dyn RegionAdapter>, String> {
    let a = crate::spec::downcast::<SukangAuth>(creds)?;
    let mut upstream = upstream;
    upstream.tls = crate::spec::mtls(&a.ca, &a.client_cert, &a.client_key)?;
    let adapter = SukangAdapter::new(SukangConfig { upstream }).map_err(|e| e.to_string())?;
    Ok(std::sync::Arc::new(adapter))
}

/// The pure decoding of a raw answer (for fuzzing): Sukang: `interpret` (HTTP status, XML media type, strict XML, normalise).
pub fn decode(
    answer: &RawAnswer,
    ctx: &DecodeContext<'_>,
) -> Result<HealthStatus, AdapterError> {
    interpret(
        ctx.id_type,
        crate::decode::http_status(answer)?,
        &answer.headers,
        &answer.body,
    )
}

/// 苏康码 Sukang Code's spec: what the gateway knows of the region besides its protocol.
pub static SPEC: crate::spec::RegionSpec = crate::spec::RegionSpec {
    id: RegionId::Sukang,
    jurisdiction: "jiangsu",
    published_rate_per_s: 300,
    agreed_deadline: std::time::Duration::from_secs(2),
    display_name: "苏康码 Sukang Code",
    qr: crate::spec::QrFormat {
        prefix: "SKM|",
        min_len: 24,
        max_len: 24,
        alphabet: crate::spec::Alphabet::UpperAlnum,
        example: "SKM|7Q2KX9D4M1PZ8R6T3V5W0Y1A",
    },
    depends_on: &[],
    parse_credentials: crate::spec::parse_credentials::<SukangAuth>,
    build,
    decode,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Color;
    use reqwest::header::HeaderValue;

    const EXAMPLE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Code>0</Code>
  <Msg>成功</Msg>
  <Data>
    <Mys>黄码</Mys>
    <Gxsj>2022-03-18 21:13:06</Gxsj>
    <Xm>王*</Xm>
    <Zjlx>1</Zjlx>
    <Zjhm>3203**********5678</Zjhm>
    <Gklx>居家健康监测</Gklx>
    <Xxgx>0</Xxgx>
  </Data>
</Response>"#;

    fn xml_headers(ct: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
        h
    }

    fn run(xml: &str) -> Result<HealthStatus, AdapterError> {
        interpret(
            Some(IdType::Passport),
            StatusCode::OK,
            &xml_headers("application/xml; charset=utf-8"),
            xml.as_bytes(),
        )
    }

    #[test]
    fn the_spec_example_normalises() {
        let s = run(EXAMPLE).unwrap();
        assert_eq!((s.color, s.level), (Color::Yellow, Level::Monitoring));
        assert_eq!(s.reasons, vec![Reason::HomeQuarantine]);
        assert!(s.actions.is_empty());
        assert_eq!(s.as_of.unwrap().to_rfc3339(), "2022-03-18T21:13:06+08:00");
        assert_eq!(s.holder.name_masked.as_deref(), Some("王*"));
        assert_eq!(s.holder.id_type, Some(IdType::ResidentId));
        assert_eq!(s.source.code, "黄码");
    }

    #[test]
    fn order_does_not_matter_and_unknown_elements_are_ignored() {
        let xml = "<Response><Data><Extra><Deep>x</Deep></Extra><Xxgx>1</Xxgx><Mys>绿码</Mys>\
                   <Gklx>无</Gklx></Data><Msg/><Code>0</Code></Response>";
        let s = run(xml).unwrap();
        assert_eq!(s.color, Color::Green);
        assert_eq!(s.actions, vec![Action::UpdateIdentity]);
        assert!(s.reasons.is_empty());
    }

    #[test]
    fn hostile_or_broken_xml_is_refused() {
        let doctype = "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x \"绿码\">]>\
                       <Response><Code>0</Code><Data><Mys>&x;</Mys></Data></Response>";
        let deep = format!(
            "<Response><Code>0</Code><Data><Mys>绿码</Mys></Data>{}{}</Response>",
            "<a>".repeat(10),
            "</a>".repeat(10)
        );
        for (name, xml) in [
            ("doctype", doctype),
            (
                "entity",
                "<Response><Code>0</Code><Data><Mys>&x;</Mys></Data></Response>",
            ),
            ("deep", deep.as_str()),
            ("truncated", "<Response><Code>0</Code><Data><Mys>绿码</Mys>"),
            (
                "two roots",
                "<Response><Code>0</Code></Response><Response/>",
            ),
            (
                "wrong root",
                "<Answer><Code>0</Code><Data><Mys>绿码</Mys></Data></Answer>",
            ),
            (
                "repeated",
                "<Response><Code>0</Code><Data><Mys>红码</Mys><Mys>绿码</Mys></Data></Response>",
            ),
            (
                "nested leaf",
                "<Response><Code>0</Code><Data><Mys><b/>绿码</Mys></Data></Response>",
            ),
            (
                "gbk",
                "<?xml version=\"1.0\" encoding=\"GBK\"?><Response><Code>0</Code><Data><Mys>绿码</Mys></Data></Response>",
            ),
            (
                "mismatched",
                "<Response><Code>0</Code><Data><Mys>绿码</Data></Mys></Response>",
            ),
            ("no data", "<Response><Code>0</Code></Response>"),
        ] {
            let e = run(xml).unwrap_err();
            assert_eq!(
                e.code(),
                crate::AdapterCode::UpstreamInvalidResponse,
                "{name}"
            );
        }
        assert!(
            interpret(
                None,
                StatusCode::OK,
                &xml_headers("application/xml"),
                b"<Response>\xff</Response>"
            )
            .is_err()
        );
    }

    #[test]
    fn query_values_are_percent_encoded_utf8() {
        let s = Subject::Identity(crate::adapter::Identity {
            id_type: IdType::Passport,
            id_number: "E1234".into(),
            name: "JOHN SMITH+王".into(),
        });
        assert_eq!(
            query_string(&s),
            "zjlx=2&zjhm=E1234&xm=JOHN%20SMITH%2B%E7%8E%8B"
        );
        assert_eq!(query_string(&Subject::QrToken("AB12".into())), "qr=AB12");
    }

    #[test]
    fn content_types() {
        assert!(is_xml_utf8(&xml_headers("application/xml")));
        assert!(is_xml_utf8(&xml_headers("text/xml; charset=UTF-8")));
        assert!(!is_xml_utf8(&xml_headers("application/xml; charset=gbk")));
        assert!(!is_xml_utf8(&xml_headers("application/json")));
        assert!(!is_xml_utf8(&HeaderMap::new()));
    }

    #[test]
    fn codes_map() {
        let code = |c: &str, extra: &str| {
            run(&format!(
                "<Response><Code>{c}</Code><Msg>x</Msg>{extra}</Response>"
            ))
            .unwrap_err()
        };
        assert_eq!(code("1001", "").code(), crate::AdapterCode::SubjectNotFound);
        assert_eq!(code("1002", "").code(), crate::AdapterCode::TokenExpired);
        let e = code("1003", "<RetryAfter>12</RetryAfter>");
        assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(12)));
        assert_eq!(code("1004", "").code(), crate::AdapterCode::UnsupportedIdType);
        assert!(code("9001", "").is_retryable());
        assert_eq!(
            code("7", "").code(),
            crate::AdapterCode::UpstreamInvalidResponse
        );
    }
}
