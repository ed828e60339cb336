//! hcgw: the federated health-code interoperability gateway.
//!
//! The domain (status model, region adapters, QR detection) lives in the `hcgw-adapters`
//! crate; this crate is the gateway around it: CLI, configuration, the mTLS listener and
//! caller identities, the HTTP API, and the region simulators.

pub mod net;
pub mod simulator;
