//! Reading the configuration file and collecting *every* problem, each with its path.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use hcgw_adapters::RegionId;
use serde::de::DeserializeOwned;

use super::overrides;
use super::validate;
use super::{
    AdminSection, AuditSection, BreakerSection, CacheSection, ClientEntry, Config,
    FederationSection, GatewaySection, LimitsSection, ListenerSection, PeerEntry,
    RecognitionSection, RedisSection, RegionEntry, TlsSection,
};

/// One problem in a configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Where: `clients[2].role`, `regions.suzhou.auth.app_secret`, `(syntax)`.
    pub path: String,
    /// What is wrong (never a secret value).
    pub message: String,
}

impl Problem {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file cannot be read.
    #[error("cannot read configuration file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file has problems (all of them listed).
    #[error("{} problem(s) in {}:\n{}", .problems.len(), .path.display(), .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

impl LoadError {
    /// The problems, if the file was readable.
    pub fn problems(&self) -> &[Problem] {
        match self {
            LoadError::Invalid { problems, .. } => problems,
            LoadError::Io { .. } => &[],
        }
    }
}

/// Loads and validates the configuration file at `path`, with the overrides from this
/// process's environment (`HCGW_<SECTION>__<KEY>`, see [`super::overrides`]).
pub fn load(path: &Path) -> Result<Config, LoadError> {
    load_effective(path).map(|(config, _)| config)
}

/// Like [`load`], and also the effective configuration as TOML for `check-config --print`:
/// the file with the environment's overrides applied (each listed in a comment at the top),
/// secrets redacted.
pub fn load_effective(path: &Path) -> Result<(Config, String), LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut problems = Vec::new();
    let found = overrides::from_process_env(&mut problems);
    let (config, table) = load_table(&text, path, &found, problems)?;
    let mut out = String::new();
    for o in &found {
        out.push_str(&format!("# {} from ${}\n", o.dotted(), o.variable));
    }
    if !found.is_empty() {
        out.push('\n');
    }
    out.push_str(
        &toml::to_string(&overrides::redacted(&table)).unwrap_or_else(|e| format!("# {e}\n")),
    );
    Ok((config, out))
}

/// Loads and validates configuration `text` as if read from `path` (no environment
/// overrides).
pub fn load_str(text: &str, path: &Path) -> Result<Config, LoadError> {
    load_table(text, path, &[], Vec::new()).map(|(config, _)| config)
}

/// Loads and validates configuration `text` as if read from `path`, with the overrides
/// among `vars` (as if they were the environment).
pub fn load_str_with_env(
    text: &str,
    path: &Path,
    vars: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> Result<Config, LoadError> {
    let mut problems = Vec::new();
    let found = overrides::from_vars(vars, &mut problems);
    load_table(text, path, &found, problems).map(|(config, _)| config)
}

/// The configuration and its table (file plus `found` overrides); `problems` holds those
/// found before (malformed override names).
fn load_table(
    text: &str,
    path: &Path,
    found: &[overrides::Override],
    mut problems: Vec<Problem>,
) -> Result<(Config, toml::Table), LoadError> {
    let invalid = |problems| LoadError::Invalid {
        path: path.to_owned(),
        problems,
    };
    let mut table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            let e: toml::de::Error = e;
            let line = e.span().map(|s| text[..s.start].lines().count().max(1));
            let at = line
                .map(|l| format!("(syntax, line {l})"))
                .unwrap_or_else(|| "(syntax)".into());
            problems.push(Problem::new(at, e.message().to_owned()));
            return Err(invalid(problems));
        }
    };
    overrides::apply(&mut table, found, &mut problems);
    const KNOWN: [&str; 17] = [
        "gateway",
        "listener",
        "admin",
        "tls",
        "clients",
        "regions",
        "recognition",
        "peers",
        "federation",
        "cache",
        "redis",
        "audit",
        "limits",
        "breaker",
        "access_log",
        "shutdown",
        "signing",
    ];
    for key in table.keys().filter(|k| !KNOWN.contains(&k.as_str())) {
        problems.push(Problem::new(
            key.clone(),
            format!("unknown section; known: {}", KNOWN.join(", ")),
        ));
    }
    let base = path.parent().unwrap_or(Path::new(".")).to_owned();

    let gateway: Option<GatewaySection> = required(&table, "gateway", &mut problems);
    let listener: Option<ListenerSection> = required(&table, "listener", &mut problems);
    let admin: Option<AdminSection> = optional(&table, "admin", &mut problems);
    let tls: Option<TlsSection> = required(&table, "tls", &mut problems);
    let cache: Option<CacheSection> = required(&table, "cache", &mut problems);
    let redis: Option<RedisSection> = optional(&table, "redis", &mut problems);
    let audit: Option<AuditSection> = required(&table, "audit", &mut problems);
    let limits: Option<LimitsSection> = optional(&table, "limits", &mut problems);
    let breaker: Option<BreakerSection> = optional(&table, "breaker", &mut problems);
    let access_log: Option<super::AccessLogSection> = optional(&table, "access_log", &mut problems);
    let shutdown: Option<super::ShutdownSection> = optional(&table, "shutdown", &mut problems);
    let signing: Option<super::SigningSection> = optional(&table, "signing", &mut problems);
    let recognition: Option<RecognitionSection> = optional(&table, "recognition", &mut problems);
    let clients: Vec<ClientEntry> = array(&table, "clients", &mut problems);
    let peers: Vec<PeerEntry> = array(&table, "peers", &mut problems);
    let federation: Option<FederationSection> = optional(&table, "federation", &mut problems);
    let mut regions = BTreeMap::new();
    match table.get("regions") {
        None => {}
        Some(toml::Value::Table(t)) => {
            for (key, value) in t {
                let path = format!("regions.{key}");
                let Ok(id) = key.parse::<RegionId>() else {
                    let known: Vec<_> = RegionId::ALL.iter().map(|r| r.as_str()).collect();
                    problems.push(Problem::new(
                        path,
                        format!("unknown region id; known: {}", known.join(", ")),
                    ));
                    continue;
                };
                if let Some(entry) = parse::<RegionEntry>(value.clone(), &path, &mut problems) {
                    regions.insert(id, entry);
                }
            }
        }
        Some(_) => problems.push(Problem::new(
            "regions",
            "must be a table of regions ([regions.<id>])",
        )),
    }

    let mut config = Config {
        source: path.to_owned(),
        gateway: gateway.unwrap_or_else(|| GatewaySection {
            name: String::new(),
            log_format: Default::default(),
            log_level: "info".into(),
        }),
        listener: listener.clone().unwrap_or(ListenerSection {
            max_body_bytes: 0,
            handshake_timeout_ms: 0,
            ..ListenerSection::with_defaults(([127, 0, 0, 1], 0).into())
        }),
        admin: admin.unwrap_or_default(),
        tls: tls.clone().unwrap_or(TlsSection {
            cert: PathBuf::new(),
            key: PathBuf::new(),
            client_ca: vec![],
            crls: vec![],
            revocation: Default::default(),
            reload_interval_ms: 0,
        }),
        clients,
        regions,
        recognition: recognition.unwrap_or_default(),
        peers,
        federation: federation.unwrap_or_default(),
        cache: cache.clone().unwrap_or(CacheSection {
            max_entries: 0,
            subject_key: super::SecretRef::Env(String::new()),
        }),
        redis: redis.unwrap_or_default(),
        audit: audit.clone().unwrap_or(AuditSection {
            dir: PathBuf::new(),
            strict: true,
            rotate_bytes: 0,
            fsync: Default::default(),
            queue_capacity: 0,
            rotate_daily: true,
            checkpoint_s: 60,
        }),
        limits: limits.unwrap_or_default(),
        breaker: breaker.unwrap_or_default(),
        access_log: access_log.unwrap_or_default(),
        shutdown: shutdown.unwrap_or_default(),
        signing,
    };
    resolve_paths(&mut config, &base);
    // Semantic checks run on every section that parsed, so one run reports everything.
    validate::validate(
        &config,
        validate::Parsed {
            gateway: table.contains_key("gateway")
                && !problems.iter().any(|p| p.path.starts_with("gateway")),
            listener: listener.is_some(),
            tls: tls.is_some(),
            cache: cache.is_some(),
            audit: audit.is_some(),
        },
        &mut problems,
    );
    overrides::attribute(&mut problems, found);
    if problems.is_empty() {
        Ok((config, table))
    } else {
        Err(invalid(problems))
    }
}

fn resolve_paths(config: &mut Config, base: &Path) {
    let fix = |p: &mut PathBuf| {
        if p.is_relative() && !p.as_os_str().is_empty() {
            *p = base.join(&*p);
        }
    };
    fix(&mut config.tls.cert);
    fix(&mut config.tls.key);
    config.tls.client_ca.iter_mut().for_each(fix);
    config.tls.crls.iter_mut().for_each(fix);
    for client in &mut config.clients {
        if let Some(issuer) = &mut client.issuer {
            fix(issuer);
        }
    }
    for peer in &mut config.peers {
        fix(&mut peer.ca);
        fix(&mut peer.client_cert);
        fix(&mut peer.client_key);
    }
    config.cache.subject_key.resolve_against(base);
    if let Some(key) = &mut config.redis.entry_key {
        key.resolve_against(base);
    }
    fix(&mut config.audit.dir);
    if let Some(signing) = &mut config.signing {
        fix(&mut signing.key);
        fix(&mut signing.cert);
        signing.previous.iter_mut().for_each(fix);
    }
}

/// Deserializes one value, recording a problem with its full path on failure.
pub(crate) fn parse<T: DeserializeOwned>(
    value: toml::Value,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => Some(v),
        Err(e) => {
            let inner = e.path().to_string();
            let full = if inner == "." || inner.is_empty() {
                path.to_owned()
            } else {
                format!("{path}.{inner}")
            };
            problems.push(Problem::new(
                full,
                crate::redact::quoted_values(&e.into_inner().to_string()),
            ));
            None
        }
    }
}

fn required<T: DeserializeOwned>(
    table: &toml::Table,
    key: &str,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    match table.get(key) {
        Some(v) => parse(v.clone(), key, problems),
        None => {
            problems.push(Problem::new(key, "missing section"));
            None
        }
    }
}

fn optional<T: DeserializeOwned>(
    table: &toml::Table,
    key: &str,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    table.get(key).and_then(|v| parse(v.clone(), key, problems))
}

fn array<T: DeserializeOwned>(
    table: &toml::Table,
    key: &str,
    problems: &mut Vec<Problem>,
) -> Vec<T> {
    match table.get(key) {
        None => Vec::new(),
        Some(toml::Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, v)| parse(v.clone(), &format!("{key}[{i}]"), problems))
            .collect(),
        Some(_) => {
            problems.push(Problem::new(
                key,
                format!("must be an array of tables ([[{key}]])"),
            ));
            Vec::new()
        }
    }
}
