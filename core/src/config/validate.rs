//! Semantic checks of a parsed configuration: files readable and well-formed, secrets
//! present, values in range, references consistent. Every problem is collected.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::credentials::RegionAuth;
use super::{Config, Problem, Revocation, Role};
use crate::pki::{DistinguishedName, issuer_of, normalise_fingerprint};
use crate::pki::{crl, pem};

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
        revocation(c, problems);
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
        let given: Vec<_> = [
            ("fingerprint_sha256", &client.fingerprint_sha256),
            ("spki_sha256", &client.spki_sha256),
            ("subject", &client.subject),
        ]
        .into_iter()
        .filter_map(|(field, v)| v.as_deref().map(|v| (field, v)))
        .collect();
        // The issuer the entry is bound to (checked only when the CA bundles parsed).
        let issuer = if parsed.tls && (client.issuer.is_some() || client.subject.is_some()) {
            match issuer_of(client.issuer.as_deref(), &c.tls.client_ca) {
                Some(Ok(issuer)) => Some(crate::pki::fingerprint(issuer.der())),
                Some(Err(e)) => {
                    add(problems, &at("issuer"), e.to_string());
                    None
                }
                None => {
                    add(
                        problems,
                        &at("issuer"),
                        "required with `subject`: the CA bundles of tls.client_ca hold several CA certificates, so the subject alone does not say which operator may issue it; name the intermediate (PEM) that issues this client's certificate, or pin it with `fingerprint_sha256` / `spki_sha256`".into(),
                    );
                    None
                }
            }
        } else {
            None
        };
        match given.as_slice() {
            [] => add(
                problems,
                &format!("clients[{i}]"),
                "needs one of `fingerprint_sha256`, `spki_sha256` or `subject` (with its `issuer`)"
                    .into(),
            ),
            [(field, value)] if *field != "subject" => match normalise_fingerprint(value) {
                Some(fp) => {
                    let key = format!("{field}:{fp}:{}", issuer.as_deref().unwrap_or(""));
                    if let Some(j) = matchers.insert(key, i) {
                        add(
                            problems,
                            &at(field),
                            format!("same {field} as clients[{j}]"),
                        );
                    }
                }
                None => add(
                    problems,
                    &at(field),
                    "must be 64 hexadecimal characters (colons allowed)".into(),
                ),
            },
            [(_, s)] => match DistinguishedName::parse(s) {
                Ok(dn) => {
                    let key = format!("dn:{}:{}", dn.canonical(), issuer.as_deref().unwrap_or(""));
                    if let Some(j) = matchers.insert(key, i) {
                        add(
                            problems,
                            &at("subject"),
                            format!("same subject and issuer as clients[{j}]"),
                        );
                    }
                }
                Err(e) => add(problems, &at("subject"), e.to_string()),
            },
            several => add(
                problems,
                &format!("clients[{i}]"),
                format!(
                    "give one of `fingerprint_sha256`, `spki_sha256` or `subject`, not {}",
                    several
                        .iter()
                        .map(|(f, _)| format!("`{f}`"))
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
            ),
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
        if let Some(list) = &client.acts_for {
            if client.role != Role::Peer {
                add(
                    problems,
                    &at("acts_for"),
                    "only peers act on behalf of others".into(),
                );
            }
            if list.is_empty() {
                add(
                    problems,
                    &at("acts_for"),
                    "at least one jurisdiction (leave it out for the peer's own)".into(),
                );
            }
            let mut seen = HashSet::new();
            for (j, name) in list.iter().enumerate() {
                if !valid_jurisdiction(name) {
                    add(
                        problems,
                        &at(&format!("acts_for[{j}]")),
                        "must be lowercase names separated by `/`".into(),
                    );
                } else if !seen.insert(name.as_str()) {
                    add(
                        problems,
                        &at(&format!("acts_for[{j}]")),
                        format!("`{name}` listed twice"),
                    );
                }
            }
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
            for (field, message) in auth.problems() {
                sub.push(Problem::new(at(&format!("auth.{field}")), message));
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
        if peer.name.trim().is_empty() || !crate::config::valid_gateway_name(&peer.name) {
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
    access_log_and_shutdown(c, problems);
    signing(c, problems);
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
        match c.redis.entry_key.as_ref().map(|k| k.load()) {
            None => add(
                problems,
                "redis.entry_key",
                "required when redis.enabled: the key that authenticates cache entries in Redis ({ file = \"path\" } or { env = \"NAME\" })".into(),
            ),
            Some(Err(e)) => add(problems, "redis.entry_key", e.to_string()),
            Some(Ok(k)) if k.expose().len() < 16 => add(
                problems,
                "redis.entry_key",
                "must be at least 16 characters".into(),
            ),
            Some(Ok(k)) => {
                if parsed.cache
                    && c.cache
                        .subject_key
                        .load()
                        .is_ok_and(|s| s.expose() == k.expose())
                {
                    add(
                        problems,
                        "redis.entry_key",
                        "must differ from cache.subject_key".into(),
                    );
                }
            }
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
        if !(1..=86_400).contains(&c.audit.checkpoint_s) {
            add(
                problems,
                "audit.checkpoint_s",
                "must be between 1 and 86400 (seconds between signed tree heads)".into(),
            );
        }
    }
}

/// `tls.revocation` and `tls.crls`: enforced revocation needs CRLs, one per CA certificate
/// of the bundles, each with a nextUpdate; disabled revocation takes none.
fn revocation(c: &Config, problems: &mut Vec<Problem>) {
    let mut described = Vec::new();
    for (i, f) in c.tls.crls.iter().enumerate() {
        match crl::inspect(f) {
            Ok(crls) => {
                for info in &crls {
                    if info.next_update.is_none() {
                        add(
                            problems,
                            &format!("tls.crls[{i}]"),
                            format!(
                                "CRL of {} has no nextUpdate: hcgw cannot tell when it is stale",
                                info.issuer
                            ),
                        );
                    }
                }
                described.extend(crls);
            }
            Err(e) => add(problems, &format!("tls.crls[{i}]"), e.to_string()),
        }
    }
    match c.tls.revocation {
        Revocation::Disabled => {
            if !c.tls.crls.is_empty() {
                add(
                    problems,
                    "tls.revocation",
                    "is \"disabled\" but tls.crls lists CRLs: remove `revocation` to enforce them, or remove the CRLs".into(),
                );
            }
        }
        Revocation::Enforced if c.tls.crls.is_empty() => add(
            problems,
            "tls.crls",
            "no CRLs: revocation is enforced, so every CA of tls.client_ca needs its CRL here (e.g. crls = [\"crl/intermediate.crl.pem\", \"crl/root.crl.pem\"]); to run without revocation checking, set tls.revocation = \"disabled\" explicitly".into(),
        ),
        Revocation::Enforced => {
            for (i, bundle) in c.tls.client_ca.iter().enumerate() {
                let Ok(certs) = pem::load_certs(bundle) else {
                    continue;
                };
                for der in certs {
                    let Ok((_, cert)) =
                        <x509_parser::prelude::X509Certificate as x509_parser::prelude::FromDer<_>>::from_der(&der)
                    else {
                        continue;
                    };
                    let Ok(subject) = DistinguishedName::of_name(cert.subject()) else {
                        add(
                            problems,
                            &format!("tls.client_ca[{i}]"),
                            "a CA certificate's subject does not decode".into(),
                        );
                        continue;
                    };
                    if !described.iter().any(|d| d.issuer == subject) {
                        add(
                            problems,
                            &format!("tls.client_ca[{i}]"),
                            format!(
                                "CA `{subject}` has no CRL in tls.crls: add the CRL it publishes (revocation is enforced; certificates it issued would be refused as of unknown status), or set tls.revocation = \"disabled\""
                            ),
                        );
                    }
                }
            }
        }
    }
}

/// What `check-config` warns about in a valid configuration: revocation disabled, no
/// `[signing]` key (no signed tree heads), subject entries implicitly bound to a root, CRLs
/// past (or within two days of) their nextUpdate.
pub fn warnings(c: &Config) -> Vec<Problem> {
    let mut out = Vec::new();
    if c.signing.is_none() {
        add(
            &mut out,
            "signing",
            "no [signing] key: the audit log writes no signed tree heads, and /v1/audit/checkpoints/latest and /v1/audit/proof answer 404 (docs/proofs.md)".into(),
        );
    }
    if c.tls.revocation == Revocation::Disabled {
        add(
            &mut out,
            "tls.revocation",
            "REVOCATION CHECKING IS DISABLED: a revoked client certificate is accepted until it expires; configure the CAs' CRLs and remove this setting".into(),
        );
    }
    for (i, client) in c.clients.iter().enumerate() {
        if client.subject.is_none() || client.issuer.is_some() {
            continue;
        }
        if let Some(Ok(issuer)) = issuer_of(client.issuer.as_deref(), &c.tls.client_ca)
            && issuer.is_root()
        {
            add(
                &mut out,
                &format!("clients[{i}].issuer"),
                format!(
                    "not given: the entry is bound to the only CA of tls.client_ca, the root `{}`, so only certificates that root issues directly match; a client under an operator intermediate needs that intermediate in the bundle and as `issuer`",
                    issuer.subject()
                ),
            );
        }
    }
    let now = chrono::Utc::now().timestamp();
    for (i, f) in c.tls.crls.iter().enumerate() {
        for info in crl::inspect(f).unwrap_or_default() {
            let Some(t) = info.next_update else { continue };
            if t <= now {
                add(
                    &mut out,
                    &format!("tls.crls[{i}]"),
                    format!(
                        "CRL of {} passed its nextUpdate at {}: handshakes of certificates under that CA are refused and /readyz reports not ready until a fresh CRL is in place",
                        info.issuer,
                        crl::rfc3339(t)
                    ),
                );
            } else if t - now < 2 * 86_400 {
                add(
                    &mut out,
                    &format!("tls.crls[{i}]"),
                    format!(
                        "CRL of {} reaches its nextUpdate at {} (in less than two days): publish a fresh one",
                        info.issuer,
                        crl::rfc3339(t)
                    ),
                );
            }
        }
    }
    out
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

/// `[access_log]` and `[shutdown]`: values in range.
fn access_log_and_shutdown(c: &Config, problems: &mut Vec<Problem>) {
    if !(1..=1_000_000).contains(&c.access_log.sample_cache_hits) {
        add(
            problems,
            "access_log.sample_cache_hits",
            "must be between 1 (log every cached hit) and 1000000".into(),
        );
    }
    if c.shutdown.drain_s > 3600 {
        add(
            problems,
            "shutdown.drain_s",
            "must be between 0 and 3600 seconds".into(),
        );
    }
    if !(1..=3600).contains(&c.shutdown.grace_s) {
        add(
            problems,
            "shutdown.grace_s",
            "must be between 1 and 3600 seconds".into(),
        );
    }
}

/// `[signing]`: the key loads, its certificate is its own, every previous certificate holds
/// a usable public key.
fn signing(c: &Config, problems: &mut Vec<Problem>) {
    use crate::signing::{SigningKey, VerifyingKey};
    let Some(s) = &c.signing else { return };
    if let Err(e) = SigningKey::from_files(&s.key, &s.cert) {
        add(problems, "signing.key", e.to_string());
    }
    for (i, cert) in s.previous.iter().enumerate() {
        if let Err(e) = VerifyingKey::from_pem_file(cert) {
            add(problems, &format!("signing.previous[{i}]"), e.to_string());
        }
    }
}
