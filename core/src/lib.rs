//! # hcgw-core
//!
//! The gateway's domain and policy, free of HTTP server code (no axum, hyper or tower-http
//! among its dependencies; the regional contracts are in `hcgw-adapters` below it, the HTTP
//! API, TLS listener, admin port and CLI in `hcgw` above it):
//!
//! - [`ErrorCode`] ([`error_code`]): every problem code of the API, with its HTTP status (an
//!   adapter's [`hcgw_adapters::AdapterCode`] converts into it);
//! - [`config`]: the TOML configuration, its environment overrides and `check-config`;
//! - [`pki`]: PEM files and CRLs; [`identity`]: the caller identity taken from a verified
//!   client certificate, roles and the acting identity;
//! - [`subject`]: what a lookup is about and its keyed hash; [`recognition`]: the
//!   mutual-recognition policy;
//! - [`pipeline`]: the vocabulary of the lookup pipeline — its one error
//!   ([`pipeline::LookupError`]), [`pipeline::Fetched`], the [`pipeline::Layer`] trait;
//!   [`lookup`]: the pipeline itself ([`lookup::LookupService`]: validate → fetch → decide
//!   → audit);
//! - [`protect`]: the protection layers (status cache, per-caller quotas, per-region limits
//!   and circuit breakers, the Redis tier);
//! - [`registry`]: the regions served here and their adapters; [`federation`]: routing to
//!   peer gateways;
//! - [`audit`]: the tamper-evident audit trail; [`stats`]: recent figures per region;
//! - [`signing`]: the answer-signing key (answers and audit checkpoints);
//! - [`telemetry`]: the metrics the pipeline emits (the exporter lives in `hcgw`).

pub mod audit;
pub mod config;
pub mod error_code;
pub mod federation;
pub mod hexfmt;
pub mod identity;
pub mod lookup;
pub mod pipeline;
pub mod pki;
pub mod protect;
pub mod receipt;
pub mod recognition;
pub mod redact;
pub mod registry;
pub mod request_id;
pub mod signing;
pub mod stats;
pub mod subject;
pub mod telemetry;

pub use error_code::ErrorCode;
