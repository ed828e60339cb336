//! One module per region, each implementing its published contract
//! (`shared/spec/regions/<region>.md`) and declaring its [`RegionSpec`] (`<module>::SPEC`).
//!
//! The `regions!` list below is the only place regions are enumerated: it declares the
//! modules, generates [`RegionId`] with [`RegionId::ALL`] and [`RegionId::spec`], and
//! [`REGIONS`]. Adding a region is one line here (see `docs/adding-a-region.md`).

use crate::spec::RegionSpec;

/// Declares the region modules, the [`RegionId`] enum and the [`REGIONS`] list from one
/// list of `Variant => module` lines (the module name is the region's API id).
macro_rules! regions {
    ($( $(#[$doc:meta])* $variant:ident => $module:ident, )*) => {
        $( pub mod $module; )*

        /// A code system that issues health statuses (one adapter each).
        #[derive(
            Clone,
            Copy,
            Debug,
            PartialEq,
            Eq,
            Hash,
            PartialOrd,
            Ord,
            serde::Serialize,
            serde::Deserialize,
            utoipa::ToSchema,
        )]
        #[serde(rename_all = "snake_case")]
        pub enum RegionId {
            $( $(#[$doc])* $variant, )*
        }

        impl RegionId {
            /// Every region, in the order of the spec's table.
            pub const ALL: [RegionId; [$(stringify!($variant)),*].len()] =
                [$(RegionId::$variant),*];

            /// The API id (`suzhou`, `suishen`, …): the module's name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( RegionId::$variant => stringify!($module), )*
                }
            }

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

regions! {
    /// 苏城码 Suzhou Code.
    Suzhou => suzhou,
    /// 随申码 Suishen Code (Shanghai).
    Suishen => suishen,
    /// 苏康码 Sukang Code (Jiangsu).
    Sukang => sukang,
    /// 徐州健康宝 Xuzhou Health Treasure (relays Sukang colours).
    Xuzhou => xuzhou,
    /// 杭州健康码 Hangzhou Health Code.
    Hangzhou => hangzhou,
    /// 湖州健康码 Huzhou Health Code.
    Huzhou => huzhou,
    /// 穗康码 Suikang Code (Guangzhou).
    Guangzhou => guangzhou,
    /// 粤康码 Yuekang Code (Guangdong).
    Guangdong => guangdong,
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

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
