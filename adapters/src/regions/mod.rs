//! One module per region, each implementing its published contract
//! (`shared/spec/regions/<region>.md`) and declaring its [`RegionSpec`] (`<module>::SPEC`).
//!
//! The modules are declared from the one list of regions
//! ([`crate::region_id::for_each_region`]), which also generates [`RegionId`]; here it
//! gives [`RegionId::spec`] and [`REGIONS`]. Adding a region is one line in that list (see
//! `docs/adding-a-region.md`).

use crate::spec::RegionSpec;

use crate::model::RegionId;

/// Declares the region modules, [`RegionId::spec`] and [`REGIONS`] from the list.
macro_rules! region_modules {
    ($( $(#[$doc:meta])* $variant:ident => $module:ident, )*) => {
        $( pub mod $module; )*

        impl RegionId {
            /// The region's [`RegionSpec`].
            pub fn spec(self) -> &'static RegionSpec {
                match self {
                    $( RegionId::$variant => &$module::SPEC, )*
                }
            }
        }

        /// Every region's spec, in the order of [`RegionId::ALL`].
        pub static REGIONS: &[&RegionSpec] = &[$(&$module::SPEC),*];
    };
}

crate::region_id::for_each_region!(region_modules);

/// Decodes a raw answer of `region` into its normalised status (its module's `decode`).
pub fn decode_answer(
    region: RegionId,
    answer: &crate::decode::RawAnswer,
    ctx: &crate::decode::DecodeContext<'_>,
) -> Result<crate::model::HealthStatus, crate::error::AdapterError> {
    (region.spec().decode)(answer, ctx)
}

impl RegionId {
    /// The issuing jurisdiction of this code system.
    pub fn jurisdiction(self) -> &'static str {
        self.spec().jurisdiction
    }

    /// The request rate the region publishes for the federation (requests per second).
    pub fn published_rate_per_s(self) -> u32 {
        self.spec().published_rate_per_s
    }

    /// The deadline the federation agreed for one call to the region.
    pub fn agreed_deadline(self) -> std::time::Duration {
        self.spec().agreed_deadline
    }

    /// The code system's own name, for people.
    pub fn display_name(self) -> &'static str {
        self.spec().display_name
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn an_alphabet_lists_exactly_the_characters_it_admits() {
        use crate::spec::Alphabet;
        for a in [
            Alphabet::LowerHex,
            Alphabet::Base64Url,
            Alphabet::UpperAlnum,
            Alphabet::Digits,
            Alphabet::Alnum,
        ] {
            let listed: HashSet<u8> = a.chars().iter().copied().collect();
            assert_eq!(listed.len(), a.chars().len(), "{a:?}: a character twice");
            for c in 0..=127u8 {
                assert_eq!(a.admits(c), listed.contains(&c), "{a:?}: {:?}", c as char);
            }
        }
    }

    #[test]
    fn every_region_has_one_consistent_spec() {
        assert_eq!(REGIONS.len(), RegionId::ALL.len());
        let mut ids = HashSet::new();
        let mut prefixes = HashSet::new();
        for (spec, id) in REGIONS.iter().zip(RegionId::ALL) {
            assert_eq!(spec.id, id, "REGIONS and ALL disagree");
            assert!(
                std::ptr::eq(id.spec(), *spec),
                "{id}: spec() is another spec"
            );
            assert!(ids.insert(id.as_str()), "{id}: id twice");
            assert!(prefixes.insert(spec.qr.prefix), "{id}: QR prefix twice");
            // The API id is the serde name and round-trips.
            assert_eq!(
                serde_json::to_value(id).unwrap(),
                serde_json::json!(id.as_str())
            );
            assert_eq!(id.as_str().parse::<RegionId>(), Ok(id));
            assert!(spec.published_rate_per_s > 0, "{id}");
            assert!(!spec.agreed_deadline.is_zero(), "{id}");
            assert!(!spec.display_name.is_empty(), "{id}");
            assert!(
                !spec.jurisdiction.is_empty()
                    && spec
                        .jurisdiction
                        .split('/')
                        .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_lowercase())),
                "{id}: jurisdiction {:?}",
                spec.jurisdiction
            );
            assert!(spec.qr.min_len <= spec.qr.max_len, "{id}");
            assert!(!spec.depends_on.contains(&id), "{id} depends on itself");
        }
    }

    #[test]
    fn every_qr_example_is_detected_as_its_region() {
        for spec in REGIONS {
            let d =
                crate::qr::detect(spec.qr.example).unwrap_or_else(|e| panic!("{}: {e}", spec.id));
            assert_eq!(d.region, spec.id);
            assert_eq!(crate::qr::qr_text(spec.id, &d.token), spec.qr.example);
        }
    }

    #[test]
    fn an_empty_auth_table_is_refused_at_the_table() {
        // Every region needs at least one credential.
        for spec in REGIONS {
            let e = (spec.parse_credentials)(serde_json::json!({}), std::path::Path::new("/b"))
                .err()
                .unwrap_or_else(|| panic!("{}: an empty auth table was accepted", spec.id));
            assert_eq!(e.path, ".", "{}", spec.id);
            assert!(e.message.contains("missing field"), "{}: {e:?}", spec.id);
        }
    }

    #[test]
    fn auth_tables_parse_with_paths_resolved_and_problems_located() {
        use crate::secret::SecretRef;
        use serde_json::json;
        use std::path::Path;
        let base = Path::new("/etc/hcgw");
        // An inline secret is refused at its field, without echoing the value.
        let e = (suzhou::SPEC.parse_credentials)(
            json!({"app_id": "x", "app_secret": "hunter2-inline"}),
            base,
        )
        .err()
        .unwrap();
        assert_eq!(e.path, "app_secret");
        assert!(!e.message.contains("hunter2"), "{e:?}");
        // Unknown fields are refused.
        let e = (huzhou::SPEC.parse_credentials)(json!({"token": {"env": "T"}, "tokn": 1}), base)
            .err()
            .unwrap();
        assert!(e.message.contains("tokn"), "{e:?}");
        // Relative paths are resolved against the configuration's directory.
        let c = (suishen::SPEC.parse_credentials)(
            json!({
                "client_id": "c",
                "client_secret": {"file": "secrets/s"},
                "signing_keys": [{"key_id": "k1", "public_key": "keys/k1.pem"}],
            }),
            base,
        )
        .unwrap();
        assert_eq!(
            c.secrets(),
            vec![(
                "client_secret",
                &SecretRef::File("/etc/hcgw/secrets/s".into())
            )]
        );
        assert_eq!(
            c.files(),
            vec![(
                "signing_keys[0].public_key".to_owned(),
                Path::new("/etc/hcgw/keys/k1.pem")
            )]
        );
        assert!(c.problems().is_empty());
        // Suishen needs at least one signing key.
        let c = (suishen::SPEC.parse_credentials)(
            json!({"client_id": "c", "client_secret": {"env": "S"}, "signing_keys": []}),
            base,
        )
        .unwrap();
        assert_eq!(c.problems().len(), 1);
        assert_eq!(c.problems()[0].0, "signing_keys");
        // Each constructor refuses another region's credentials.
        let e = (sukang::SPEC.build)(
            c.as_ref(),
            crate::upstream::UpstreamConfig::new(
                "http://127.0.0.1:1",
                std::time::Duration::from_secs(1),
            ),
            &Default::default(),
        )
        .err()
        .unwrap();
        assert!(e.contains("another region"), "{e}");
    }
}
