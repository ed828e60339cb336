//! # hcgw-adapters
//!
//! The domain half of hcgw, free of the gateway's transport code:
//!
//! - [`model`]: the common status model every region is normalised to (`status-model.md`);
//! - [`identity`]: resident-id validation (GB 11643) and masking of names and numbers;
//! - [`error`]: the typed [`AdapterError`] adapters return and its [`AdapterCode`] (the
//!   gateway's complete list of codes is `hcgw_core::ErrorCode`);
//! - [`adapter`]: the [`RegionAdapter`] trait and the [`Subject`] of a lookup;
//! - [`upstream`]: shared plumbing for calling regions (HTTP clients, TLS, size-limited bodies);
//! - [`strict_json`]: one strict pass from JSON bytes to typed answers (duplicate keys refused);
//! - [`time`]: conversions from each region's time format to RFC 3339;
//! - [`token`]: the single-flight access-token cache of regions with tokens;
//! - [`region_id`]: [`RegionId`] and the one list of regions it is generated from;
//! - [`spec`]: the [`RegionSpec`] each region declares;
//! - [`regions`]: one module per region, each implementing its published contract;
//! - [`sm2_signature`]: Suishen's SM2 response signatures;
//! - [`decode`]: one pure function per region from a raw answer to a status (for fuzzing);
//! - [`spec`]: the [`RegionSpec`] of each region (id, jurisdiction, rate, deadline, QR
//!   format, credentials, constructor), listed once in [`regions::REGIONS`].

pub mod adapter;
pub mod decode;
pub mod error;
pub mod identity;
pub mod model;
pub mod qr;
pub mod region_id;
pub mod regions;
pub mod secret;
pub mod sm2_signature;
pub mod spec;
pub mod strict_json;
pub mod time;
pub mod token;
pub mod unmapped;
pub mod upstream;

pub use adapter::{RegionAdapter, Subject};
pub use error::{AdapterCode, AdapterError};
pub use model::{Action, Color, HealthStatus, Holder, IdType, Level, Reason, RegionId, Source};
pub use secret::{Secret, SecretRef};
pub use spec::RegionSpec;
