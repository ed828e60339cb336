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
    tags((name = "lookup", description = "Statuses and recognition decisions"), (name = "regions", description = "Regions, agreements and identity"), (name = "ops", description = "Operations (the ops role)"), (name = "audit", description = "Signed tree heads of the audit log and proofs (docs/proofs.md)")),
)]
pub struct ApiDoc;

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
}
