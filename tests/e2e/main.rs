//! End-to-end tests of the gateway: real TLS handshakes with certificates from the dev PKI
//! script, real servers on real ports, the real `hcgw` binary where processes matter.
//! One test binary; one module per concern.

mod access_log;
mod audit;
mod cli_tools;
mod config_errors;
mod connections;
mod drain;
mod federation;
mod lookup;
mod mtls;
mod ops;
mod proofs;
mod protect;
mod reload;
mod shared_tier;
mod signing;
mod support;
mod world;
