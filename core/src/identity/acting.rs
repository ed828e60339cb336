//! The role and jurisdiction a request acts with. For every caller but a peer it is the
//! caller's own; a peer gateway acts on behalf of its caller (`X-Hcgw-On-Behalf-Of:
//! <role>:<jurisdiction>`), never above its configured `max_on_behalf_of`, and only for the
//! jurisdictions of its `acts_for` (default: its own and their sub-jurisdictions; any other
//! is `403 forbidden`).

use std::sync::Arc;

use http::HeaderMap;

use crate::config::Role;
use crate::federation::{self, ForwardContext, ON_BEHALF_OF, Peers};
use crate::identity::Caller;
use crate::pipeline::LookupError;

/// Who a request acts as.
#[derive(Clone, Debug)]
pub struct Acting {
    /// The authenticated caller (for peers: the peer gateway).
    pub caller: Arc<Caller>,
    /// The effective role (decides the endpoints and the fields shown).
    pub role: Role,
    /// The effective jurisdiction (the verifier of recognition decisions).
    pub jurisdiction: String,
    /// `role:jurisdiction` when a peer forwarded the request.
    pub on_behalf_of: Option<String>,
    /// Gateway-to-gateway hops taken so far (`X-Hcgw-Hops` of a peer; 0 otherwise).
    pub hops: u32,
    /// Gateways passed before this one (`X-Hcgw-Via` of a peer; empty otherwise).
    pub via: Vec<String>,
}

/// Privilege order for capping: a checkpoint sees less than a platform.
fn rank(role: Role) -> u8 {
    match role {
        Role::Checkpoint => 1,
        Role::Platform => 2,
        Role::Peer | Role::Ops => 0,
    }
}

/// The role a peer may act as: the claimed one, capped at its maximum.
pub fn cap(claimed: Role, max: Role) -> Role {
    if rank(claimed) > rank(max) {
        max
    } else {
        claimed
    }
}

/// The role and jurisdiction claimed by an `X-Hcgw-On-Behalf-Of` value.
fn parse_claim(value: &str) -> Result<(Role, &str), LookupError> {
    let (role, jurisdiction) = value
        .split_once(':')
        .ok_or_else(|| LookupError::invalid("X-Hcgw-On-Behalf-Of must be <role>:<jurisdiction>"))?;
    let claimed = match role {
        "platform" => Role::Platform,
        "checkpoint" => Role::Checkpoint,
        _ => {
            return Err(LookupError::forbidden(
                "a peer acts on behalf of platform or checkpoint callers only",
            ));
        }
    };
    if !crate::config::valid_jurisdiction(jurisdiction) {
        return Err(LookupError::invalid(
            "X-Hcgw-On-Behalf-Of: invalid jurisdiction",
        ));
    }
    Ok((claimed, jurisdiction))
}

/// The role a request of `caller` acts with — [`Acting::resolve`]'s role, without building
/// the acting identity (for the metrics label).
pub fn effective_role(caller: &Caller, on_behalf_of: Option<&str>) -> Result<Role, LookupError> {
    if caller.role != Role::Peer {
        return Ok(caller.role);
    }
    let max = caller.max_on_behalf_of.unwrap_or(Role::Checkpoint);
    match on_behalf_of {
        None => Ok(max),
        Some(value) => parse_claim(value).map(|(claimed, _)| cap(claimed, max)),
    }
}

impl Acting {
    /// The acting identity for `caller` given the on-behalf-of header value.
    pub fn resolve(
        caller: impl Into<Arc<Caller>>,
        on_behalf_of: Option<&str>,
    ) -> Result<Acting, LookupError> {
        let caller = caller.into();
        if caller.role != Role::Peer {
            let (role, jurisdiction) = (caller.role, caller.jurisdiction.clone());
            return Ok(Acting {
                caller,
                role,
                jurisdiction,
                on_behalf_of: None,
                hops: 0,
                via: Vec::new(),
            });
        }
        let max = caller.max_on_behalf_of.unwrap_or(Role::Checkpoint);
        let Some(value) = on_behalf_of else {
            // A peer calling for itself acts at its maximum, in its own jurisdiction.
            let jurisdiction = caller.jurisdiction.clone();
            return Ok(Acting {
                caller,
                role: max,
                jurisdiction,
                on_behalf_of: None,
                hops: 0,
                via: Vec::new(),
            });
        };
        let (claimed, jurisdiction) = parse_claim(value)?;
        let role = cap(claimed, max);
        if role != claimed {
            tracing::warn!(peer = %caller.name, claimed = claimed.as_str(), capped = role.as_str(), "peer claimed a role above its maximum; capped");
        }
        Ok(Acting {
            on_behalf_of: Some(format!("{}:{jurisdiction}", role.as_str())),
            jurisdiction: jurisdiction.to_owned(),
            role,
            caller,
            hops: 0,
            via: Vec::new(),
        })
    }

    /// On whose behalf and how far: what a forwarded lookup carries.
    pub fn forward_context(&self) -> ForwardContext {
        ForwardContext {
            role: self.role,
            jurisdiction: self.jurisdiction.clone(),
            hops: self.hops,
            via: self.via.clone(),
            patience: None,
            purpose: None,
        }
    }

    /// Refuses the request unless the effective role is allowed.
    pub fn require(&self, allowed: &[Role]) -> Result<(), LookupError> {
        if allowed.contains(&self.role)
            || (self.caller.role == Role::Peer && allowed.contains(&Role::Peer))
        {
            Ok(())
        } else {
            Err(LookupError::forbidden(format!(
                "the {} role may not use this endpoint",
                self.role.as_str()
            )))
        }
    }
}

impl Acting {
    /// The acting identity of a request of `caller` with these headers: the on-behalf-of
    /// claim, and for a peer its hop headers, checked against this gateway's name, the hop
    /// limit and the peer's `acts_for`.
    pub fn from_headers(
        caller: Arc<Caller>,
        headers: &HeaderMap,
        peers: &Peers,
    ) -> Result<Acting, LookupError> {
        let is_peer = caller.role == Role::Peer;
        let mut acting = Acting::resolve(caller, header(headers, ON_BEHALF_OF)?)?;
        if is_peer {
            // Only a peer's hop headers count; anyone else is a first hop.
            acting.hops = federation::parse_hops(header(headers, federation::HOPS)?)?;
            acting.via = federation::parse_via(header(headers, federation::VIA)?)?;
            if let Err(e) = federation::check_entry(
                peers.own_name(),
                peers.max_hops(),
                acting.hops,
                &acting.via,
            ) {
                tracing::warn!(peer = %acting.caller.name, hops = acting.hops, via = ?acting.via, "forwarded request refused: {}", e.detail);
                return Err(e);
            }
            // After the loop checks: a request that came back is a loop, whoever it acts for.
            if !peers.may_act_for(&acting.caller.name, &acting.jurisdiction) {
                tracing::warn!(peer = %acting.caller.name, jurisdiction = %acting.jurisdiction, "peer acting for a jurisdiction outside its acts_for; refused");
                return Err(LookupError::forbidden(format!(
                    "peer {} may not act for jurisdiction {} (acts_for)",
                    acting.caller.name, acting.jurisdiction
                )));
            }
        }
        Ok(acting)
    }
}

/// A header's value; a value that is not ASCII is `invalid_request`.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, LookupError> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map_err(|_| LookupError::invalid(format!("{name}: not ASCII")))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::federation::covers;

    fn peer(max: Role) -> Caller {
        Caller {
            name: "hcgw-jiangsu".into(),
            role: Role::Peer,
            jurisdiction: "jiangsu".into(),
            fingerprint: String::new(),
            max_on_behalf_of: Some(max),
        }
    }

    #[test]
    fn peers_act_on_behalf_capped_at_their_maximum() {
        let a = Acting::resolve(peer(Role::Checkpoint), Some("platform:shanghai")).unwrap();
        assert_eq!(
            (a.role, a.jurisdiction.as_str()),
            (Role::Checkpoint, "shanghai")
        );
        assert_eq!(a.on_behalf_of.as_deref(), Some("checkpoint:shanghai"));
        let a =
            Acting::resolve(peer(Role::Platform), Some("checkpoint:guangdong/guangzhou")).unwrap();
        assert_eq!(
            (a.role, a.jurisdiction.as_str()),
            (Role::Checkpoint, "guangdong/guangzhou")
        );
        assert!(Acting::resolve(peer(Role::Platform), Some("ops:x")).is_err());
        assert!(Acting::resolve(peer(Role::Platform), Some("platform")).is_err());
        assert!(Acting::resolve(peer(Role::Platform), Some("platform:Not Valid")).is_err());
    }

    #[test]
    fn effective_role_is_the_role_resolve_gives() {
        let platform = Caller {
            role: Role::Platform,
            max_on_behalf_of: None,
            ..peer(Role::Platform)
        };
        let callers = [peer(Role::Checkpoint), peer(Role::Platform), platform];
        let headers = [
            None,
            Some("platform:shanghai"),
            Some("checkpoint:guangdong/guangzhou"),
            Some("ops:x"),
            Some("platform"),
            Some("platform:Not Valid"),
        ];
        for caller in &callers {
            for header in headers {
                let resolved = Acting::resolve(caller.clone(), header).map(|a| a.role);
                let effective = effective_role(caller, header);
                assert_eq!(
                    resolved.as_ref().ok(),
                    effective.as_ref().ok(),
                    "{:?} with {header:?}",
                    caller.role
                );
                assert_eq!(resolved.is_err(), effective.is_err());
            }
        }
    }

    #[test]
    fn a_grant_covers_its_jurisdiction_and_those_below_it_only() {
        let grants = vec!["shanghai".to_owned(), "jiangsu/suzhou".to_owned()];
        for (j, ok) in [
            ("shanghai", true),
            ("shanghai/pudong", true),
            ("jiangsu/suzhou", true),
            ("jiangsu/suzhou/gusu", true),
            ("jiangsu", false),
            ("jiangsu/xuzhou", false),
            ("shanghai2", false),
            ("shanghaix/pudong", false),
            ("guangdong", false),
        ] {
            assert_eq!(covers(&grants, j), ok, "{j}");
        }
        assert!(!covers(&[], "shanghai"));
    }

    #[test]
    fn only_peers_may_act_on_behalf_of_others() {
        let platform = Caller {
            role: Role::Platform,
            max_on_behalf_of: None,
            ..peer(Role::Platform)
        };
        let a = Acting::resolve(platform, Some("checkpoint:guangdong")).unwrap();
        assert_eq!(
            (a.role, a.jurisdiction.as_str(), a.on_behalf_of),
            (Role::Platform, "jiangsu", None)
        );
    }
}
