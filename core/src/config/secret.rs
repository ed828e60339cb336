//! Secrets in configuration: always a reference to a file or an environment variable,
//! never an inline value. The type lives in `hcgw_adapters::secret` (region credentials
//! use it); re-exported here so the configuration keeps naming it.

pub use hcgw_adapters::secret::{SecretError, SecretRef};

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    struct T {
        #[allow(dead_code)]
        s: SecretRef,
    }

    #[test]
    fn file_and_env_references_parse() {
        let t: T = toml::from_str("s = { file = \"a/b\" }").unwrap();
        assert_eq!(t.s, SecretRef::File("a/b".into()));
        let t: T = toml::from_str("s = { env = \"X\" }").unwrap();
        assert_eq!(t.s, SecretRef::Env("X".into()));
    }

    #[test]
    fn inline_values_are_refused_without_being_echoed() {
        // The loader deserializes from parsed values (no source snippet in messages).
        let from_value = |text: &str| T::deserialize(toml::Value::Table(text.parse().unwrap()));
        for text in [
            "s = \"hunter2-inline\"",
            "s = 123456789",
            "s = { value = \"hunter2-inline\" }",
        ] {
            let e = from_value(text).unwrap_err().to_string();
            assert!(!e.contains("hunter2") && !e.contains("123456789"), "{e}");
        }
        assert!(toml::from_str::<T>("s = { file = \"a\", env = \"B\" }").is_err());
        assert!(toml::from_str::<T>("s = {}").is_err());
    }

    #[test]
    fn load_reads_and_trims_and_reports_without_value() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::write(&p, "  topsecret\n").unwrap();
        assert_eq!(
            SecretRef::File(p.clone()).load().unwrap().expose(),
            "topsecret"
        );
        std::fs::write(&p, "\n").unwrap();
        assert!(matches!(
            SecretRef::File(p).load(),
            Err(SecretError::Empty(_))
        ));
        assert!(matches!(
            SecretRef::Env("HCGW_TEST_SURELY_UNSET".into()).load(),
            Err(SecretError::EnvMissing(_))
        ));
    }
}
