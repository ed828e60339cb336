//! Semantic checks of a parsed configuration: files readable and well-formed, secrets
//! present, values in range, references consistent. Every problem is collected.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::{Config, Problem, Role};
use crate::identity::{DistinguishedName, normalise_fingerprint};
use crate::regions::auth::RegionAuth;
use crate::tls::pem;

/// Which required sections parsed (semantic checks skip the others).
pub(super) struct Parsed {
    pub gateway: bool,
    pub listener: bool,
    pub tls: bool,
    pub cache: bool,
    pub audit: bool,
}

pub(super) fn validate(c: &Config, parsed: Parsed, problems: &mut Vec<Problem>) {
    if parsed.gateway {
        if c.gateway.name.trim().is_empty() {
            add(problems, "gateway.name", "must not be empty".into());
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&c.gateway.log_level) {
            add(
                problems,
                "gateway.log_level",
                format!("not a valid tracing filter: {e}"),
            );
        }
    }
    if parsed.listener {
        if !(1024..=64 * 1024 * 1024).contains(&c.listener.max_body_bytes) {
            add(
                problems,
                "listener.max_body_bytes",
                "must be between 1024 and 67108864".into(),
            );
        }
        if !(100..=120_000).contains(&c.listener.handshake_timeout_ms) {
            add(
                problems,
                "listener.handshake_timeout_ms",
                "must be between 100 and 120000".into(),
            );
        }
        validate_connection_limits(&c.listener, problems);
        if c.listener.addr == c.admin.addr && c.listener.addr.port() != 0 {
            add(
                problems,
                "admin.addr",
                "must differ from listener.addr".into(),
            );
        }
    }
    if parsed.tls {
        check_file(
            &c.tls.cert,
            "tls.cert",
            |f| pem::load_certs(f).map(drop),
            problems,
        );
        check_file(
            &c.tls.key,
            "tls.key",
            |f| pem::load_key(f).map(drop),
            problems,
        );
        if c.tls.client_ca.is_empty() {
            add(
                problems,
                "tls.client_ca",
                "at least one CA bundle is required (client certificates are mandatory)".into(),
            );
        }
        for (i, f) in c.tls.client_ca.iter().enumerate() {
            check_file(
                f,
                &format!("tls.client_ca[{i}]"),
                |f| pem::load_certs(f).map(drop),
                problems,
            );
        }
        for (i, f) in c.tls.crls.iter().enumerate() {
            check_file(
                f,
                &format!("tls.crls[{i}]"),
                |f| pem::load_crls(f).map(drop),
                problems,
            );
        }
        if c.tls.reload_interval_ms < 100 {
            add(
                problems,
                "tls.reload_interval_ms",
                "must be at least 100".into(),
            );
        }
    }

    let mut names = HashSet::new();
    let mut matchers: HashMap<String, usize> = HashMap::new();
    for (i, client) in c.clients.iter().enumerate() {
        let at = |f: &str| format!("clients[{i}].{f}");
        if client.name.trim().is_empty() {
            add(problems, &at("name"), "must not be empty".into());
        } else if !names.insert(client.name.clone()) {
            add(
                problems,
                &at("name"),
                format!("duplicate client name `{}`", client.name),
            );
        }
        if !valid_jurisdiction(&client.jurisdiction) {
            add(
                problems,
                &at("jurisdiction"),
                "must be lowercase names separated by `/` (e.g. `guangdong/guangzhou`)".into(),
            );
        }
        match (&client.fingerprint_sha256, &client.subject) {
            (None, None) => add(
                problems,
                &format!("clients[{i}]"),
                "needs `fingerprint_sha256` or `subject`".into(),
            ),
            (Some(_), Some(_)) => add(
                problems,
                &format!("clients[{i}]"),
                "give either `fingerprint_sha256` or `subject`, not both".into(),
            ),
            (Some(fp), None) => match normalise_fingerprint(fp) {
                Some(fp) => {
                    if let Some(j) = matchers.insert(format!("fp:{fp}"), i) {
                        add(
                            problems,
                            &at("fingerprint_sha256"),
                            format!("same certificate as clients[{j}]"),
                        );
                    }
                }
                None => add(
                    problems,
                    &at("fingerprint_sha256"),
                    "must be 64 hexadecimal characters (colons allowed)".into(),
                ),
            },
            (None, Some(s)) => match DistinguishedName::parse(s) {
                Ok(dn) => {
                    if let Some(j) = matchers.insert(format!("dn:{}", dn.canonical()), i) {
                        add(
                            problems,
                            &at("subject"),
                            format!("same subject as clients[{j}]"),
                        );
                    }
                }
                Err(e) => add(problems, &at("subject"), e),
            },
        }
        match (client.role, client.max_on_behalf_of) {
            (Role::Peer, None) => add(
                problems,
                &at("max_on_behalf_of"),
                "required for peers (platform or checkpoint)".into(),
            ),
            (Role::Peer, Some(Role::Peer | Role::Ops)) => add(
                problems,
                &at("max_on_behalf_of"),
                "a peer acts on behalf of platform or checkpoint callers only".into(),
            ),
            (Role::Platform | Role::Checkpoint | Role::Ops, Some(_)) => add(
                problems,
                &at("max_on_behalf_of"),
                "only peers act on behalf of others".into(),
            ),
            _ => {}
        }
        if client.rate_limit_per_s == Some(0) {
            add(
                problems,
                &at("rate_limit_per_s"),
                "must be at least 1".into(),
            );
        }
    }

    for (id, r) in &c.regions {
        let at = |f: &str| format!("regions.{id}.{f}");
        if !(r.base_url.starts_with("http://") || r.base_url.starts_with("https://"))
            || reqwest::Url::parse(&r.base_url).is_err()
        {
            add(
                problems,
                &at("base_url"),
                "must be an http:// or https:// URL".into(),
            );
        }
        if let Some(d) = r.deadline_ms
            && !(50..=30_000).contains(&d)
        {
            add(
                problems,
                &at("deadline_ms"),
                "must be between 50 and 30000".into(),
            );
        }
        if let Some(rate) = r.rate_limit_per_s {
            let published = id.published_rate_per_s();
            if rate == 0 || rate > published {
                add(
                    problems,
                    &at("rate_limit_per_s"),
                    format!("must be between 1 and the region's published limit of {published}/s"),
                );
            }
        }
        if r.max_concurrency == 0 || r.max_concurrency > 10_000 {
            add(
                problems,
                &at("max_concurrency"),
                "must be between 1 and 10000".into(),
            );
        }
        if r.max_status_age_s == 0 {
            add(
                problems,
                &at("max_status_age_s"),
                "must be at least 1".into(),
            );
        }
        if !(1024..=16 * 1024 * 1024).contains(&r.max_body_bytes) {
            add(
                problems,
                &at("max_body_bytes"),
                "must be between 1024 and 16777216".into(),
            );
        }
        for (name, v) in [
            ("green_s", r.ttl.green_s),
            ("yellow_s", r.ttl.yellow_s),
            ("red_s", r.ttl.red_s),
            ("unknown_s", r.ttl.unknown_s),
            ("not_found_s", r.ttl.not_found_s),
        ] {
            if v > 3600 {
                add(
                    problems,
                    &at(&format!("ttl.{name}")),
                    "must be at most 3600 seconds".into(),
                );
            }
        }
        if r.queue_ms > 10_000 {
            add(problems, &at("queue_ms"), "must be at most 10000".into());
        }
        if let Some(b) = &r.breaker {
            breaker(problems, &at("breaker"), b);
        }
        let mut sub = Vec::new();
        if let Some(auth) = RegionAuth::parse(*id, &r.auth, c.base_dir(), &mut sub) {
            for (field, secret) in auth.secrets() {
                if let Err(e) = secret.load() {
                    sub.push(Problem::new(at(&format!("auth.{field}")), e.to_string()));
                }
            }
            for (field, file) in auth.files() {
                if !file.is_file() {
                    sub.push(Problem::new(
                        at(&format!("auth.{field}")),
                        format!("file {} not found", file.display()),
                    ));
                }
            }
            if let RegionAuth::Suishen(a) = &auth
                && a.signing_keys.is_empty()
            {
                sub.push(Problem::new(
                    at("auth.signing_keys"),
                    "at least one key is required",
                ));
            }
        }
        problems.extend(sub);
    }

    let mut agreement_ids = HashSet::new();
    for (i, a) in c.recognition.agreements.iter().enumerate() {
        let at = |f: &str| format!("recognition.agreements[{i}].{f}");
        if a.id.trim().is_empty() || !agreement_ids.insert(a.id.clone()) {
            add(problems, &at("id"), "must be a non-empty, unique id".into());
        }
        if a.members.is_empty() {
            add(
                problems,
                &at("members"),
                "at least one member jurisdiction".into(),
            );
        }
        for (j, m) in a.members.iter().enumerate() {
            if !valid_jurisdiction(m) {
                add(
                    problems,
                    &at(&format!("members[{j}]")),
                    "must be lowercase names separated by `/`".into(),
                );
            }
        }
    }
    for (i, j) in c.recognition.jurisdictions.iter().enumerate() {
        if !valid_jurisdiction(j) {
            add(
                problems,
                &format!("recognition.jurisdictions[{i}]"),
                "must be lowercase names separated by `/`".into(),
            );
        }
    }

    let mut peer_names = HashSet::new();
    for (i, peer) in c.peers.iter().enumerate() {
        let at = |f: &str| format!("peers[{i}].{f}");
        if !peer_names.insert(peer.name.clone()) {
            add(problems, &at("name"), "duplicate peer name".into());
        }
        if !peer.url.starts_with("https://") || reqwest::Url::parse(&peer.url).is_err() {
            add(
                problems,
                &at("url"),
                "must be an https:// URL (peers are called over mTLS)".into(),
            );
        }
        if peer.regions.is_empty() {
            add(problems, &at("regions"), "at least one region".into());
        }
        for r in &peer.regions {
            if c.regions.get(r).is_some_and(|e| e.enabled) {
                add(
                    problems,
                    &at("regions"),
                    format!(
                        "{r} is served locally; a region is served locally or by peers, not both"
                    ),
                );
            }
        }
        check_file(
            &peer.ca,
            &at("ca"),
            |f| pem::load_certs(f).map(drop),
            problems,
        );
        check_file(
            &peer.client_cert,
            &at("client_cert"),
            |f| pem::load_certs(f).map(drop),
            problems,
        );
        check_file(
            &peer.client_key,
            &at("client_key"),
            |f| pem::load_key(f).map(drop),
            problems,
        );
        if let Some(fp) = &peer.pinned_sha256
            && normalise_fingerprint(fp).is_none()
        {
            add(
                problems,
                &at("pinned_sha256"),
                "must be 64 hexadecimal characters".into(),
            );
        }
        if !(50..=30_000).contains(&peer.deadline_ms) {
            add(
                problems,
                &at("deadline_ms"),
                "must be between 50 and 30000".into(),
            );
        }
        if peer.name.trim().is_empty() || !crate::federation::valid_gateway_name(&peer.name) {
            add(
                problems,
                &at("name"),
                "1 to 64 letters, digits, `.`, `_` or `-`".into(),
            );
        } else if parsed.gateway && peer.name == c.gateway.name {
            add(
                problems,
                &at("name"),
                "a gateway is not its own peer (gateway.name)".into(),
            );
        }
        if !(1..=100_000).contains(&peer.rate_limit_per_s) {
            add(
                problems,
                &at("rate_limit_per_s"),
                "must be between 1 and 100000".into(),
            );
        }
        if !(1..=10_000).contains(&peer.max_concurrency) {
            add(
                problems,
                &at("max_concurrency"),
                "must be between 1 and 10000".into(),
            );
        }
        let host = reqwest::Url::parse(&peer.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned));
        if let Some(name) = peer.server_name.as_deref().or(host.as_deref())
            && rustls_pki_types::ServerName::try_from(name.trim_matches(['[', ']'])).is_err()
        {
            add(
                problems,
                &at("server_name"),
                "must be a DNS name or IP address".into(),
            );
        }
        let mut seen = HashSet::new();
        for r in &peer.regions {
            if !seen.insert(*r) {
                add(problems, &at("regions"), format!("{r} listed twice"));
            }
        }
    }
    if !(1..=8).contains(&c.federation.max_hops) {
        add(
            problems,
            "federation.max_hops",
            "must be between 1 and 8".into(),
        );
    }
    if c.federation.circuit_failures == 0 {
        add(
            problems,
            "federation.circuit_failures",
            "must be at least 1".into(),
        );
    }
    if !(100..=600_000).contains(&c.federation.circuit_open_ms) {
        add(
            problems,
            "federation.circuit_open_ms",
            "must be between 100 and 600000".into(),
        );
    }

    if parsed.cache {
        if c.cache.max_entries == 0 {
            add(problems, "cache.max_entries", "must be at least 1".into());
        }
        match c.cache.subject_key.load() {
            Ok(k) if k.expose().len() < 16 => add(
                problems,
                "cache.subject_key",
                "must be at least 16 characters".into(),
            ),
            Ok(_) => {}
            Err(e) => add(problems, "cache.subject_key", e.to_string()),
        }
    }
    breaker(problems, "breaker", &c.breaker);
    for (name, v) in [
        ("platform_per_s", c.limits.platform_per_s),
        ("checkpoint_per_s", c.limits.checkpoint_per_s),
        ("peer_per_s", c.limits.peer_per_s),
        ("ops_per_s", c.limits.ops_per_s),
        ("burst_s", c.limits.burst_s),
    ] {
        if !(1..=1_000_000).contains(&v) {
            add(
                problems,
                &format!("limits.{name}"),
                "must be between 1 and 1000000".into(),
            );
        }
    }
    if !(c.redis.local_share > 0.0 && c.redis.local_share <= 1.0) {
        add(
            problems,
            "redis.local_share",
            "must be above 0 and at most 1".into(),
        );
    }
    if c.redis.enabled {
        match &c.redis.url {
            Some(u) if u.starts_with("redis://") || u.starts_with("rediss://") => {}
            _ => add(
                problems,
                "redis.url",
                "required when redis.enabled: redis://host:port or rediss://…".into(),
            ),
        }
    }
    if parsed.audit {
        if c.audit.rotate_bytes < 64 * 1024 {
            add(
                problems,
                "audit.rotate_bytes",
                "must be at least 65536".into(),
            );
        }
        if c.audit.dir.as_os_str().is_empty() {
            add(problems, "audit.dir", "must not be empty".into());
        }
        if c.audit.queue_capacity == 0 {
            add(
                problems,
                "audit.queue_capacity",
                "must be at least 1".into(),
            );
        }
    }
}

/// The `[listener]` bounds on connections after the handshake: each in its range, the
/// per-client caps within the overall one.
fn validate_connection_limits(l: &super::ListenerSection, problems: &mut Vec<Problem>) {
    let ranges: [(&str, u64, u64, u64); 11] = [
        (
            "header_read_timeout_ms",
            l.header_read_timeout_ms,
            100,
            120_000,
        ),
        ("idle_timeout_ms", l.idle_timeout_ms, 100, 3_600_000),
        (
            "max_connection_age_s",
            l.max_connection_age_s,
            1,
            7 * 86_400,
        ),
        ("close_grace_ms", l.close_grace_ms, 0, 600_000),
        ("max_connections", l.max_connections as u64, 1, 1_000_000),
        (
            "max_connections_per_client",
            l.max_connections_per_client as u64,
            1,
            1_000_000,
        ),
        (
            "max_connections_per_unknown_client",
            l.max_connections_per_unknown_client as u64,
            0,
            1_000_000,
        ),
        (
            "http2_max_concurrent_streams",
            u64::from(l.http2_max_concurrent_streams),
            1,
            10_000,
        ),
        (
            "http2_max_header_list_bytes",
            u64::from(l.http2_max_header_list_bytes),
            1024,
            1024 * 1024,
        ),
        (
            "http2_max_pending_accept_reset_streams",
            l.http2_max_pending_accept_reset_streams as u64,
            1,
            10_000,
        ),
        (
            "http2_max_local_error_reset_streams",
            l.http2_max_local_error_reset_streams as u64,
            1,
            100_000,
        ),
    ];
    for (field, value, min, max) in ranges {
        if !(min..=max).contains(&value) {
            add(
                problems,
                &format!("listener.{field}"),
                format!("must be between {min} and {max}"),
            );
        }
    }
    for (field, value) in [
        ("max_connections_per_client", l.max_connections_per_client),
        (
            "max_connections_per_unknown_client",
            l.max_connections_per_unknown_client,
        ),
    ] {
        if value > l.max_connections {
            add(
                problems,
                &format!("listener.{field}"),
                format!(
                    "must not exceed listener.max_connections ({})",
                    l.max_connections
                ),
            );
        }
    }
}

fn add(problems: &mut Vec<Problem>, path: &str, message: String) {
    problems.push(Problem::new(path, message));
}

fn check_file<F, E>(file: &Path, path: &str, check: F, problems: &mut Vec<Problem>)
where
    F: FnOnce(&Path) -> Result<(), E>,
    E: std::fmt::Display,
{
    if let Err(e) = check(file) {
        add(problems, path, e.to_string());
    }
}

/// `shanghai`, `guangdong/guangzhou`: lowercase ASCII names joined by `/`.
pub(crate) fn valid_jurisdiction(j: &str) -> bool {
    !j.is_empty()
        && j.split('/').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// Checks one breaker section (`[breaker]` or `[regions.<id>.breaker]`).
fn breaker(problems: &mut Vec<Problem>, at: &str, b: &crate::config::BreakerSection) {
    if b.consecutive_failures == 0 {
        add(
            problems,
            &format!("{at}.consecutive_failures"),
            "must be at least 1".into(),
        );
    }
    if !(b.failure_ratio > 0.0 && b.failure_ratio <= 1.0) {
        add(
            problems,
            &format!("{at}.failure_ratio"),
            "must be above 0 and at most 1".into(),
        );
    }
    if b.window_calls == 0 || b.window_calls > 10_000 {
        add(
            problems,
            &format!("{at}.window_calls"),
            "must be between 1 and 10000".into(),
        );
    }
    if b.min_calls == 0 || b.min_calls > b.window_calls {
        add(
            problems,
            &format!("{at}.min_calls"),
            "must be between 1 and window_calls".into(),
        );
    }
    if !(1..=3600).contains(&b.open_s) {
        add(
            problems,
            &format!("{at}.open_s"),
            "must be between 1 and 3600".into(),
        );
    }
    if !(1..=100).contains(&b.half_open_probes) {
        add(
            problems,
            &format!("{at}.half_open_probes"),
            "must be between 1 and 100".into(),
        );
    }
}
