//! The OpenAPI 3 document, generated from the code (utoipa) and kept in the repository as
//! `docs/openapi.json`; a test fails when the two drift (`HCGW_UPDATE_OPENAPI=1 cargo test
//! openapi` rewrites the file).

use axum::Json;
use utoipa::OpenApi;

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "hcgw — federated health-code interoperability gateway",
        description = "Every endpoint is served over HTTPS with a client certificate (mTLS). Errors are RFC 9457 problem+json.",
        version = "1",
    ),
    paths(
        super::endpoints::lookup,
        super::endpoints::batch,
        super::endpoints::verify,
        super::regions,
        super::whoami,
        super::metrics,
        super::signing::signing_keys,
        super::audit::latest,
        super::audit::proof,
        super::audit::consistency,
        serve,
    ),
    components(schemas(super::problem::Problem, crate::subject::SubjectIn)),
    modifiers(&SignedAnswers),
    tags((name = "lookup", description = "Statuses and recognition decisions"), (name = "regions", description = "Regions, agreements and identity"), (name = "ops", description = "Operations (the ops role)"), (name = "audit", description = "Signed tree heads of the audit log and proofs (docs/proofs.md)")),
)]
pub struct ApiDoc;

/// Adds the three signature headers (docs/proofs.md) to every response of the routes whose
/// answers are signed ([`super::signing::is_signed_route`]).
struct SignedAnswers;

impl utoipa::Modify for SignedAnswers {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{RefOr, header::HeaderBuilder};
        let headers = [
            (
                "Content-Digest",
                "RFC 9530: `sha-256=:<base64 SHA-256 of the body>:`",
            ),
            (
                "Signature-Input",
                "RFC 9421: `hcgw=(\"@status\" \"content-digest\" \"content-type\" \"x-request-id\");created=…;keyid=\"<RFC 7638 thumbprint>\";alg=\"ecdsa-p256-sha256\"` (or `ed25519`)",
            ),
            (
                "Signature",
                "RFC 9421: `hcgw=:<base64 signature>:`, by the key `keyid` names (GET /v1/signing-keys)",
            ),
        ];
        for (path, item) in doc.paths.paths.iter_mut() {
            if !super::signing::is_signed_route(path) {
                continue;
            }
            let Some(op) = item.post.as_mut() else {
                continue;
            };
            for resp in op.responses.responses.values_mut() {
                if let RefOr::T(r) = resp {
                    for (name, description) in headers {
                        r.headers.insert(
                            name.to_owned(),
                            HeaderBuilder::new().description(Some(description)).build(),
                        );
                    }
                }
            }
        }
    }
}

/// The document as pretty JSON (what `docs/openapi.json` holds).
pub fn document() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_default() + "\n"
}

/// `GET /v1/openapi.json` (all roles).
#[utoipa::path(get, path = "/v1/openapi.json", tag = "regions", responses((status = 200, description = "This document")))]
pub async fn serve() -> Json<serde_json::Value> {
    Json(serde_json::to_value(ApiDoc::openapi()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #[test]
    fn checked_in_document_matches_the_code() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
        let generated = super::document();
        if std::env::var_os("HCGW_UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == generated,
            "docs/openapi.json is out of date: run `HCGW_UPDATE_OPENAPI=1 cargo test openapi` and commit it"
        );
    }

    #[test]
    fn every_response_of_the_signed_routes_and_only_those_documents_the_signature() {
        let doc: serde_json::Value = serde_json::from_str(&super::document()).unwrap();
        let mut signed = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for (status, resp) in op["responses"].as_object().unwrap() {
                    let has = ["Content-Digest", "Signature-Input", "Signature"]
                        .map(|h| resp["headers"].get(h).is_some());
                    let want = crate::api::signing::is_signed_route(path);
                    assert_eq!(has, [want; 3], "{method} {path} {status}");
                    signed += usize::from(want);
                }
            }
        }
        assert!(
            signed >= 7,
            "the lookup, batch and verify responses: {signed}"
        );
    }
}
