//! A secret value (credential, key) that never prints itself, and the reference to one in
//! configuration: always a file or an environment variable, never an inline value. The
//! deserializer refuses inline values *without echoing them* (serde's default "invalid
//! type" message would print the value).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// A secret: its `Debug` and `Display` show `[redacted]`, so it cannot reach a log by
/// accident. Read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where a secret comes from: `{ file = "path" }` or `{ env = "NAME" }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretRef {
    /// A file holding the secret (surrounding whitespace trimmed). Relative paths are
    /// relative to the configuration file's directory.
    File(PathBuf),
    /// An environment variable holding the secret.
    Env(String),
}

/// Why a secret cannot be read. Names the file or variable, never the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The file cannot be read.
    #[error("cannot read secret file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error kind.
        reason: String,
    },
    /// The variable is not set.
    #[error("environment variable {0} is not set")]
    EnvMissing(String),
    /// The secret is empty.
    #[error("the secret from {0} is empty")]
    Empty(String),
}

impl SecretRef {
    /// Makes a relative file path relative to `base`.
    pub fn resolve_against(&mut self, base: &Path) {
        if let SecretRef::File(p) = self
            && p.is_relative()
        {
            *p = base.join(&*p);
        }
    }

    /// Reads the secret.
    pub fn load(&self) -> Result<Secret, SecretError> {
        let (value, origin) = match self {
            SecretRef::File(path) => (
                std::fs::read_to_string(path).map_err(|e| SecretError::File {
                    path: path.clone(),
                    reason: e.kind().to_string(),
                })?,
                path.display().to_string(),
            ),
            SecretRef::Env(name) => (
                std::env::var(name).map_err(|_| SecretError::EnvMissing(name.clone()))?,
                format!("${name}"),
            ),
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(SecretError::Empty(origin));
        }
        Ok(Secret::new(value))
    }
}

const EXPECTED: &str = "a secret reference: { file = \"path\" } or { env = \"NAME\" }";
const INLINE: &str = "inline secrets are not allowed (the value is not shown): use { file = \"path\" } or { env = \"NAME\" }";

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SecretRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(EXPECTED)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<SecretRef, E> {
                Err(E::custom(INLINE))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<SecretRef, E> {
                Err(E::custom(INLINE))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<SecretRef, E> {
                Err(E::custom(INLINE))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<SecretRef, E> {
                Err(E::custom(INLINE))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<SecretRef, E> {
                Err(E::custom(INLINE))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretRef, A::Error> {
                let mut found: Option<SecretRef> = None;
                while let Some(key) = map.next_key::<String>()? {
                    let value: String = map
                        .next_value()
                        .map_err(|_| de::Error::custom("`file` and `env` take a string"))?;
                    let r = match key.as_str() {
                        "file" => SecretRef::File(PathBuf::from(value)),
                        "env" => SecretRef::Env(value),
                        _ => {
                            return Err(de::Error::custom(format!(
                                "unknown key `{key}` in {EXPECTED}"
                            )));
                        }
                    };
                    if found.replace(r).is_some() {
                        return Err(de::Error::custom("give exactly one of `file` or `env`"));
                    }
                }
                found.ok_or_else(|| de::Error::custom(EXPECTED))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_its_value() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }
}
