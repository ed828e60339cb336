//! One pure entry point per region from a raw answer (HTTP status, headers, body) to the
//! normalised status (each region module's `decode`, named by its spec), and
//! [`crate::regions::decode_answer`] dispatching on the region. No network and no
//! logic of its own: each function composes the region module's own pure steps
//! (`parse_answer` + `normalise`, or `interpret`) exactly as its adapter does after the
//! body is read. It exists so that fuzzing and property tests exercise the same code as
//! the adapters (see `fuzz/`).
//!
//! Two regions read part of the answer in async code that takes a live response, and are
//! covered as follows:
//! - Suishen: [`decode_suishen`] repeats the order of `SuishenAdapter::send` (an empty
//!   body is refused, then the SM2 signature over the raw bytes is checked with the given
//!   [`SignatureVerifier`], then the media type) before `interpret`. There is no
//!   unverified path: callers that fuzz Suishen sign each body with a key of their own.
//! - Guangzhou: the HTTP status and media type are checked in the adapter's `checked_body`
//!   before the body is read; [`decode_guangzhou`] covers the body (`interpret`) only.
//!
//! An access token refused inside the answer (Suishen 40101, Guangzhou 40001/42001), which
//! the adapters answer with one token refresh and one retry, decodes as
//! `region_unavailable` with refused credentials.

use chrono::{DateTime, Utc};
use http::{HeaderMap, StatusCode};

use crate::error::AdapterError;
use crate::model::IdType;
use crate::sm2_signature::SignatureVerifier;

/// A region's answer as it arrived: HTTP status, headers and the raw body bytes.
#[derive(Clone, Debug, Default)]
pub struct RawAnswer {
    /// The HTTP status code (any `u16`; one that is no HTTP status is refused).
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body, byte for byte.
    pub body: Vec<u8>,
}

/// What decoding needs besides the answer itself.
#[derive(Clone, Copy, Debug)]
pub struct DecodeContext<'a> {
    /// The time the answer is judged at (bounds plausible timestamps, quota waits).
    pub now: DateTime<Utc>,
    /// The identity type asked for (`None` for a QR lookup).
    pub id_type: Option<IdType>,
    /// The keys Suishen answers must be signed with (required for Suishen).
    pub suishen_keys: Option<&'a SignatureVerifier>,
}

pub(crate) fn http_status(answer: &RawAnswer) -> Result<StatusCode, AdapterError> {
    StatusCode::from_u16(answer.status)
        .map_err(|_| AdapterError::invalid_response("not an HTTP status code"))
}

pub(crate) fn token_refused() -> AdapterError {
    AdapterError::credentials_refused("the region refused the access token")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Color;
    use crate::model::RegionId;
    use crate::regions::{decode_answer, suishen};
    use http::HeaderValue;
    use http::header::CONTENT_TYPE;

    fn fixture(region: RegionId, name: &str) -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(region.as_str())
            .join(name);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn answer(content_type: &'static str, body: Vec<u8>) -> RawAnswer {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        RawAnswer {
            status: 200,
            headers,
            body,
        }
    }

    fn ctx() -> DecodeContext<'static> {
        DecodeContext {
            now: Utc::now(),
            id_type: None,
            suishen_keys: None,
        }
    }

    #[test]
    fn every_unsigned_region_decodes_its_green_and_red_fixtures() {
        for (region, ext, ct) in [
            (RegionId::Suzhou, "json", "application/json"),
            (RegionId::Sukang, "xml", "application/xml"),
            (RegionId::Xuzhou, "json", "application/json"),
            (RegionId::Hangzhou, "json", "application/json"),
            (RegionId::Huzhou, "json", "application/json"),
            (RegionId::Guangzhou, "json", "application/json"),
            (RegionId::Guangdong, "json", "application/json"),
        ] {
            for (name, color) in [("green", Color::Green), ("red", Color::Red)] {
                let a = answer(ct, fixture(region, &format!("{name}.{ext}")));
                let s = decode_answer(region, &a, &ctx())
                    .unwrap_or_else(|e| panic!("{region} {name}: {e}"));
                assert_eq!((s.region, s.color), (region, color), "{region} {name}");
            }
        }
    }

    #[test]
    fn suishen_needs_keys_and_a_valid_signature() {
        use base64::Engine;
        let body = fixture(RegionId::Suishen, "green.json");
        let a = answer("application/json", body.clone());
        assert!(decode_answer(RegionId::Suishen, &a, &ctx()).is_err());

        let ec = openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::SM2).unwrap(),
        )
        .unwrap();
        let signer = suishen::sm2::SigningKey::from_pem(&ec.private_key_to_pem().unwrap()).unwrap();
        let keys =
            SignatureVerifier::new(&[("k1".into(), ec.public_key_to_pem().unwrap())]).unwrap();
        let with_keys = DecodeContext {
            suishen_keys: Some(&keys),
            ..ctx()
        };
        // Unsigned: refused.
        let e = decode_answer(RegionId::Suishen, &a, &with_keys).unwrap_err();
        assert!(matches!(e, AdapterError::InvalidResponse(_)), "{e:?}");
        // Signed: green.
        let mut signed = a.clone();
        let sig = base64::engine::general_purpose::STANDARD.encode(signer.sign(&body).unwrap());
        signed
            .headers
            .insert(suishen::KEY_ID_HEADER, HeaderValue::from_static("k1"));
        signed.headers.insert(
            suishen::SIGNATURE_HEADER,
            HeaderValue::from_str(&sig).unwrap(),
        );
        let s = decode_answer(RegionId::Suishen, &signed, &with_keys).unwrap();
        assert_eq!(s.color, Color::Green);
        // One byte changed after signing: refused.
        let mut tampered = signed.clone();
        tampered.body[0] = b' ';
        assert!(decode_answer(RegionId::Suishen, &tampered, &with_keys).is_err());
    }

    #[test]
    fn a_status_that_is_no_http_status_is_refused() {
        let mut a = answer("application/json", fixture(RegionId::Suzhou, "green.json"));
        a.status = 1000;
        let e = decode_answer(RegionId::Suzhou, &a, &ctx()).unwrap_err();
        assert!(matches!(e, AdapterError::InvalidResponse(_)), "{e:?}");
    }
}
