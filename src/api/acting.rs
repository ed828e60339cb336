//! The acting identity of an API request, extracted from the verified client certificate
//! and the federation headers (the rules are in [`hcgw_core::identity::acting`]).

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;

pub use hcgw_core::identity::acting::{Acting, effective_role};

use super::ApiError;
use crate::state::AppState;

/// Extracts the acting identity of a request, or refuses it.
pub struct ActingOf(pub Acting);

impl<S> FromRequestParts<S> for ActingOf
where
    S: Send + Sync,
    Arc<AppState>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = super::known_caller(parts)?;
        let app = Arc::<AppState>::from_ref(state);
        Ok(ActingOf(Acting::from_headers(
            caller,
            &parts.headers,
            app.lookups.peers(),
        )?))
    }
}
