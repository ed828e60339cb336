//! The vocabulary of the lookup pipeline, below every module that takes part in it: the one
//! error ([`LookupError`]), what a layer passes on ([`Fetched`]), and the layer trait with
//! its stack ([`layer`]). The pipeline itself — validate, fetch, decide, audit — is
//! [`crate::lookup::LookupService`].

mod context;
mod error;
mod fetched;
pub mod layer;

pub use context::ForwardContext;
pub use error::{DEFAULT_RETRY_AFTER, LookupError};
pub use fetched::{Fetched, PeerProof};
pub use layer::{Ask, FetchResult, Layer, Next, Route};
