//! hcgw: the federated health-code interoperability gateway.
//!
//! The domain (status model, region adapters, QR detection) lives in the `hcgw-adapters`
//! crate; this crate is the gateway around it:
//!
//! - [`config`]: the TOML configuration and `check-config`;
//! - [`tls`], [`identity`], [`server`]: the mTLS listener, hot-reloaded certificates and
//!   CRLs, and the caller identity taken from the verified client certificate;
//!   [`connections`]: the listener's open connections, capped and re-verified at reloads;
//! - [`api`]: the HTTP API and its problem+json errors; [`admin`]: health, readiness,
//!   `/metrics` ([`metrics`]) and the status page ([`status_page`], [`stats`]);
//! - [`regions`]: the adapters of the regions served here; [`federation`]: forwarding to
//!   peer gateways;
//! - `demo`: the one-command demo (feature `sim`, default; the simulators are the
//!   `hcgw-sim` crate, and a build without the feature has none of their code);
//! - [`audit`]: the tamper-evident audit trail (hash-chained JSON lines) and its verifier;
//! - [`app`]: starting and stopping a gateway; [`cli`]: the `hcgw` command.

pub mod admin;
pub mod api;
pub mod app;
pub mod audit;
pub mod audit_hook;
pub mod cli;
pub mod config;
pub mod connections;
#[cfg(feature = "sim")]
pub mod demo;
pub mod federation;
pub mod hexfmt;
pub mod identity;
pub mod logging;
pub mod lookup;
pub mod metrics;
pub mod protect;
pub mod recognition;
pub mod redact;
pub mod regions;
pub mod server;
pub mod stats;
pub mod status_page;
pub mod subject;
pub mod tls;
