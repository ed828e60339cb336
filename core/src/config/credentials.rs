//! Each region's credentials as written in `[regions.<id>.auth]`: typed by the region's
//! adapter module (its `RegionSpec::parse_credentials`), with secrets by file or
//! environment variable, relative paths resolved against the configuration file.

use std::path::Path;

use hcgw_adapters::RegionId;
use hcgw_adapters::spec::Credentials;

use crate::config::{Problem, SecretRef};

/// The parsed credentials of one region.
pub struct RegionAuth {
    creds: Box<dyn Credentials>,
}

impl std::fmt::Debug for RegionAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RegionAuth([redacted])")
    }
}

impl RegionAuth {
    /// Parses `[regions.<id>.auth]`, recording problems with their paths.
    pub fn parse(
        region: RegionId,
        table: &toml::Table,
        base: &Path,
        problems: &mut Vec<Problem>,
    ) -> Option<Self> {
        let path = format!("regions.{region}.auth");
        let value = match serde_json::to_value(table) {
            Ok(v) => v,
            Err(_) => {
                problems.push(Problem::new(path, "cannot be read as a table"));
                return None;
            }
        };
        match (region.spec().parse_credentials)(value, base) {
            Ok(creds) => Some(RegionAuth { creds }),
            Err(e) => {
                let full = if e.path == "." || e.path.is_empty() {
                    path
                } else {
                    format!("{path}.{}", e.path)
                };
                problems.push(Problem::new(full, crate::redact::quoted_values(&e.message)));
                None
            }
        }
    }

    /// The region's credentials, for its constructor.
    pub fn credentials(&self) -> &dyn Credentials {
        self.creds.as_ref()
    }

    /// Every secret reference with its field name, for validation.
    pub fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        self.creds.secrets()
    }

    /// Every file the credentials need, with its field path.
    pub fn files(&self) -> Vec<(String, &Path)> {
        self.creds.files()
    }

    /// Further problems of the table: (field path, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        self.creds.problems()
    }
}
