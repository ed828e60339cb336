//! hcgw: the federated health-code interoperability gateway — its transport half.
//!
//! The crates, top to bottom (dependencies run one way; `docs/architecture.md`):
//!
//! - `hcgw` (this crate): the HTTP API ([`api`]), the mTLS listener ([`server`], [`tls`],
//!   [`connections`]), the admin port ([`admin`], [`metrics`], [`status_page`]), the CLI
//!   ([`cli`]) and the demo ([`demo`]); [`state`] is what the handlers share and [`app`]
//!   wires a gateway together;
//! - `hcgw-core`: domain and policy — configuration, caller identity and roles, subjects,
//!   recognition, the lookup pipeline and its protection layers, routing to peers, audit
//!   (re-exported below under their usual names);
//! - `hcgw-adapters`: the regional contracts and the common status model;
//! - `hcgw-sim`: the region simulators (the `sim` feature).

pub mod admin;
pub mod api;
pub mod app;
pub mod cli;
pub mod connections;
#[cfg(feature = "sim")]
pub mod demo;
pub mod logging;
pub mod metrics;
pub mod proof;
pub mod server;
pub mod signals;
pub mod state;
pub mod status_page;
pub mod tls;

pub use hcgw_core::{
    audit, config, federation, hexfmt, identity, lookup, pki, protect, recognition, redact,
    registry, signing, stats, subject,
};
