//! Each region's credentials as written in `[regions.<id>.auth]`: typed, with secrets by
//! file or environment variable, relative paths resolved against the configuration file.

use std::path::{Path, PathBuf};

use hcgw_adapters::RegionId;
use serde::Deserialize;

use crate::config::{Problem, SecretRef};

/// Suzhou: HMAC request signing.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuzhouAuth {
    /// `X-SCM-AppId`.
    pub app_id: String,
    /// The HMAC key.
    pub app_secret: SecretRef,
}

/// One of Suishen's published SM2 keys.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKey {
    /// `X-Suishen-Key-Id`.
    pub key_id: String,
    /// The SM2 public key (PEM).
    pub public_key: PathBuf,
}

/// Suishen: OAuth2 client credentials and the response-signing keys.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuishenAuth {
    /// OAuth2 client id.
    pub client_id: String,
    /// OAuth2 client secret.
    pub client_secret: SecretRef,
    /// The region's published keys (two during a rotation).
    pub signing_keys: Vec<SigningKey>,
}

/// A region reached over mTLS with a private CA (Sukang).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MtlsAuth {
    /// The region's server CA bundle.
    pub ca: PathBuf,
    /// Our client certificate chain for the region.
    pub client_cert: PathBuf,
    /// Its key (a secret: keep the file private).
    pub client_key: PathBuf,
}

/// Xuzhou: API key, optional fallback to Sukang.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XuzhouAuth {
    /// `X-Api-Key`.
    pub api_key: SecretRef,
    /// Fall back to Sukang for identity lookups when Xuzhou is unavailable.
    #[serde(default)]
    pub fallback_to_sukang: bool,
}

/// Hangzhou: APPCODE.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HangzhouAuth {
    /// `Authorization: APPCODE …`.
    pub appcode: SecretRef,
}

/// Huzhou: static bearer token.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HuzhouAuth {
    /// `Authorization: Bearer …`.
    pub token: SecretRef,
}

/// Guangzhou: access token from appid and secret.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuangzhouAuth {
    /// The app id.
    pub appid: String,
    /// The app secret.
    pub secret: SecretRef,
}

/// Guangdong: mTLS plus the paas id header.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuangdongAuth {
    /// Guangdong's server CA bundle.
    pub ca: PathBuf,
    /// Our client certificate chain.
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
    /// `X-Yss-Paasid`.
    pub paas_id: SecretRef,
}

/// The credentials of one region.
#[derive(Clone, Debug)]
pub enum RegionAuth {
    /// suzhou.
    Suzhou(SuzhouAuth),
    /// suishen.
    Suishen(SuishenAuth),
    /// sukang.
    Sukang(MtlsAuth),
    /// xuzhou.
    Xuzhou(XuzhouAuth),
    /// hangzhou.
    Hangzhou(HangzhouAuth),
    /// huzhou.
    Huzhou(HuzhouAuth),
    /// guangzhou.
    Guangzhou(GuangzhouAuth),
    /// guangdong.
    Guangdong(GuangdongAuth),
}

fn fix(p: &mut PathBuf, base: &Path) {
    if p.is_relative() {
        *p = base.join(&*p);
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
        let value = toml::Value::Table(table.clone());
        use crate::config::parse_value as parse;
        let mut auth = match region {
            RegionId::Suzhou => RegionAuth::Suzhou(parse(value, &path, problems)?),
            RegionId::Suishen => RegionAuth::Suishen(parse(value, &path, problems)?),
            RegionId::Sukang => RegionAuth::Sukang(parse(value, &path, problems)?),
            RegionId::Xuzhou => RegionAuth::Xuzhou(parse(value, &path, problems)?),
            RegionId::Hangzhou => RegionAuth::Hangzhou(parse(value, &path, problems)?),
            RegionId::Huzhou => RegionAuth::Huzhou(parse(value, &path, problems)?),
            RegionId::Guangzhou => RegionAuth::Guangzhou(parse(value, &path, problems)?),
            RegionId::Guangdong => RegionAuth::Guangdong(parse(value, &path, problems)?),
        };
        auth.resolve(base);
        Some(auth)
    }

    fn resolve(&mut self, base: &Path) {
        match self {
            RegionAuth::Suzhou(a) => a.app_secret.resolve_against(base),
            RegionAuth::Suishen(a) => {
                a.client_secret.resolve_against(base);
                a.signing_keys
                    .iter_mut()
                    .for_each(|k| fix(&mut k.public_key, base));
            }
            RegionAuth::Sukang(a) => {
                fix(&mut a.ca, base);
                fix(&mut a.client_cert, base);
                fix(&mut a.client_key, base);
            }
            RegionAuth::Xuzhou(a) => a.api_key.resolve_against(base),
            RegionAuth::Hangzhou(a) => a.appcode.resolve_against(base),
            RegionAuth::Huzhou(a) => a.token.resolve_against(base),
            RegionAuth::Guangzhou(a) => a.secret.resolve_against(base),
            RegionAuth::Guangdong(a) => {
                fix(&mut a.ca, base);
                fix(&mut a.client_cert, base);
                fix(&mut a.client_key, base);
                a.paas_id.resolve_against(base);
            }
        }
    }

    /// Every secret reference with its field name, for validation.
    pub fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
        match self {
            RegionAuth::Suzhou(a) => vec![("app_secret", &a.app_secret)],
            RegionAuth::Suishen(a) => vec![("client_secret", &a.client_secret)],
            RegionAuth::Sukang(_) => vec![],
            RegionAuth::Xuzhou(a) => vec![("api_key", &a.api_key)],
            RegionAuth::Hangzhou(a) => vec![("appcode", &a.appcode)],
            RegionAuth::Huzhou(a) => vec![("token", &a.token)],
            RegionAuth::Guangzhou(a) => vec![("secret", &a.secret)],
            RegionAuth::Guangdong(a) => vec![("paas_id", &a.paas_id)],
        }
    }

    /// Every file the credentials need, with its field path.
    pub fn files(&self) -> Vec<(String, &Path)> {
        match self {
            RegionAuth::Suishen(a) => a
                .signing_keys
                .iter()
                .enumerate()
                .map(|(i, k)| {
                    (
                        format!("signing_keys[{i}].public_key"),
                        k.public_key.as_path(),
                    )
                })
                .collect(),
            RegionAuth::Sukang(MtlsAuth {
                ca,
                client_cert,
                client_key,
            })
            | RegionAuth::Guangdong(GuangdongAuth {
                ca,
                client_cert,
                client_key,
                ..
            }) => vec![
                ("ca".into(), ca.as_path()),
                ("client_cert".into(), client_cert.as_path()),
                ("client_key".into(), client_key.as_path()),
            ],
            _ => vec![],
        }
    }
}
