//! Mutual recognition (互认): which verifying jurisdiction honours which code system, and
//! the decision for a status (`recognition.md`). Pure domain code: no I/O, no clock of its
//! own (the caller passes "now").

use chrono::{DateTime, Duration, Utc};
use hcgw_adapters::{Action, Color, HealthStatus, Level, RegionId};
use serde::{Deserialize, Serialize};

use crate::config::AgreementEntry;
use crate::error_code::ErrorCode;

/// The basis id of the built-in rule that every jurisdiction recognises codes issued inside
/// itself (and, by inheritance, inside its parents).
pub const HOME_JURISDICTION: &str = "home-jurisdiction";

/// A status time this far in the future is not trusted (clock skew allowance).
pub const FUTURE_SKEW: Duration = Duration::minutes(10);

/// The decision for a gate or a platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Free passage.
    Pass,
    /// Necessary work and living areas only (Suzhou's 绿码待定).
    PassRestricted,
    /// Refuse passage.
    Deny,
    /// The code system is not recognised here: local registration / local code.
    RegisterLocally,
    /// A person must check (unknown, stale, or the status could not be obtained).
    ManualCheck,
}

impl Decision {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Pass => "pass",
            Decision::PassRestricted => "pass_restricted",
            Decision::Deny => "deny",
            Decision::RegisterLocally => "register_locally",
            Decision::ManualCheck => "manual_check",
        }
    }
}

/// The recognition block of a lookup or verify response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Recognition {
    /// The caller's jurisdiction.
    pub verifier: String,
    /// The issuing jurisdiction of the code system.
    pub issuer: String,
    /// Whether an agreement (or home jurisdiction) covers verifier × issuer.
    pub recognized: bool,
    /// The decision.
    pub decision: Decision,
    /// The agreement used, or `none`.
    pub basis: String,
    /// One sentence, no personal data.
    pub note: String,
    /// For `/v1/verify`: the error that kept the status from being obtained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<ErrorCode>,
}

/// One agreement in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Agreement {
    /// Its id, reported as `basis`.
    pub id: String,
    /// Verifying jurisdictions (with their sub-jurisdictions).
    pub members: Vec<String>,
    /// Code systems covered; `None`: those issued inside the members.
    pub code_systems: Option<Vec<RegionId>>,
    /// Code systems excluded.
    pub exclude_code_systems: Vec<RegionId>,
    /// Where it comes from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Whether `j` is `ancestor` or inside it (`jiangsu/suzhou` is inside `jiangsu`).
pub fn is_within(j: &str, ancestor: &str) -> bool {
    j == ancestor || (j.starts_with(ancestor) && j.as_bytes().get(ancestor.len()) == Some(&b'/'))
}

/// The ancestors of a jurisdiction, nearest first (`a/b/c` → `a/b`, `a`).
fn ancestors(j: &str) -> impl Iterator<Item = &str> {
    let mut cur = j;
    std::iter::from_fn(move || {
        let i = cur.rfind('/')?;
        cur = &cur[..i];
        Some(cur)
    })
}

impl Agreement {
    /// Whether this agreement makes `verifier` honour codes of `issuer`.
    pub fn covers(&self, verifier: &str, issuer: RegionId) -> bool {
        if self.exclude_code_systems.contains(&issuer) {
            return false;
        }
        let member = self.members.iter().any(|m| is_within(verifier, m));
        let code_system = match &self.code_systems {
            Some(list) => list.contains(&issuer),
            None => self
                .members
                .iter()
                .any(|m| is_within(issuer.jurisdiction(), m)),
        };
        member && code_system
    }
}

impl From<&AgreementEntry> for Agreement {
    fn from(e: &AgreementEntry) -> Self {
        Agreement {
            id: e.id.clone(),
            members: e.members.clone(),
            code_systems: e.code_systems.clone(),
            exclude_code_systems: e.exclude_code_systems.clone(),
            source: e.source.clone(),
        }
    }
}

/// The recognition policy: the agreements in force plus the home-jurisdiction rule.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    agreements: Vec<Agreement>,
}

impl Policy {
    /// A policy from configured agreements (in configuration order).
    pub fn new(agreements: Vec<Agreement>) -> Self {
        Policy { agreements }
    }

    /// The agreements in force (for `GET /v1/regions` and the status page).
    pub fn agreements(&self) -> &[Agreement] {
        &self.agreements
    }

    /// The basis on which `verifier` honours `issuer`'s codes: its own home jurisdiction
    /// first, then the configured agreements in order, then the home jurisdiction of its
    /// parents (a sub-jurisdiction inherits its parent's agreements).
    pub fn basis(&self, verifier: &str, issuer: RegionId) -> Option<&str> {
        if is_within(issuer.jurisdiction(), verifier) {
            return Some(HOME_JURISDICTION);
        }
        if let Some(a) = self.agreements.iter().find(|a| a.covers(verifier, issuer)) {
            return Some(&a.id);
        }
        ancestors(verifier)
            .any(|p| is_within(issuer.jurisdiction(), p))
            .then_some(HOME_JURISDICTION)
    }

    /// The decision for `status` (recognition.md, first matching row wins).
    pub fn decide(
        &self,
        verifier: &str,
        status: &HealthStatus,
        max_status_age: Duration,
        now: DateTime<Utc>,
    ) -> Recognition {
        let issuer = status.region;
        let basis = self.basis(verifier, issuer);
        let recognized = basis.is_some();
        let make = |decision: Decision, note: String| Recognition {
            verifier: verifier.to_owned(),
            issuer: issuer.jurisdiction().to_owned(),
            recognized,
            decision,
            basis: basis.unwrap_or("none").to_owned(),
            note,
            cause: None,
        };
        let consistent = status.color == status.level.color();
        if status.color == Color::Unknown || !consistent {
            return make(
                Decision::ManualCheck,
                "Colour could not be determined: check manually. 颜色无法确定，请人工核验。".into(),
            );
        }
        match status.as_of {
            None => {
                return make(
                    Decision::ManualCheck,
                    "The region did not say when the status was computed: check manually.".into(),
                );
            }
            Some(t) if now.signed_duration_since(t.with_timezone(&Utc)) > max_status_age => {
                return make(Decision::ManualCheck, "Stale status (older than the region's maximum age): check manually. 状态已过时。".into());
            }
            Some(t) if t.with_timezone(&Utc).signed_duration_since(now) > FUTURE_SKEW => {
                return make(
                    Decision::ManualCheck,
                    "Status time is in the future: check manually.".into(),
                );
            }
            Some(_) => {}
        }
        let Some(basis_id) = basis else {
            return make(
                Decision::RegisterLocally,
                format!(
                    "{} is not recognised in {verifier}: register locally. 不在互认范围内，请按本地政策登记。",
                    issuer.display_name()
                ),
            );
        };
        match (status.color, status.level) {
            (Color::Red, _) => make(Decision::Deny, "Red code: no passage. 红码，禁止通行。".into()),
            (Color::Yellow, _) => make(Decision::Deny, "Yellow code: no passage. 黄码，禁止通行。".into()),
            (Color::Green, Level::ClearRestricted) => make(
                Decision::PassRestricted,
                format!("Green pending (绿码待定) under {basis_id}: necessary work and living areas only."),
            ),
            (Color::Green, Level::Clear)
                if status.actions.iter().any(|a| matches!(a, Action::RegisterOnArrival | Action::UpdateIdentity)) =>
            {
                make(Decision::ManualCheck, "Green code, but arrival registration or an identity update is pending: check manually.".into())
            }
            (Color::Green, Level::Clear) => make(Decision::Pass, format!("Green code recognised under {basis_id}: pass. 绿码，通行。")),
            _ => make(Decision::ManualCheck, "Inconsistent status: check manually.".into()),
        }
    }

    /// `/v1/verify` when the status could not be obtained: `manual_check` with the cause.
    pub fn unavailable(&self, verifier: &str, region: RegionId, cause: ErrorCode) -> Recognition {
        let basis = self.basis(verifier, region);
        Recognition {
            verifier: verifier.to_owned(),
            issuer: region.jurisdiction().to_owned(),
            recognized: basis.is_some(),
            decision: Decision::ManualCheck,
            basis: basis.unwrap_or("none").to_owned(),
            note: format!(
                "The status could not be obtained ({cause}): check manually. 无法获取状态，请人工核验。"
            ),
            cause: Some(cause),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hcgw_adapters::Source;

    /// The spec's default agreements, as shipped in config/.
    fn defaults() -> Policy {
        let a =
            |id: &str, members: &[&str], cs: Option<Vec<RegionId>>, ex: Vec<RegionId>| Agreement {
                id: id.into(),
                members: members.iter().map(|s| s.to_string()).collect(),
                code_systems: cs,
                exclude_code_systems: ex,
                source: None,
            };
        Policy::new(vec![
            a(
                "yrd-mutual-recognition",
                &["shanghai", "jiangsu", "zhejiang", "anhui"],
                None,
                vec![RegionId::Xuzhou],
            ),
            a("guangdong-interop", &["guangdong"], None, vec![]),
            a(
                "xuzhou-within-jiangsu",
                &["jiangsu"],
                Some(vec![RegionId::Xuzhou]),
                vec![],
            ),
        ])
    }

    fn now() -> DateTime<Utc> {
        "2022-04-01T12:00:00Z".parse().unwrap()
    }

    fn status(region: RegionId, level: Level) -> HealthStatus {
        let mut s = HealthStatus::new(
            region,
            level,
            Source {
                code: "x".into(),
                label: None,
            },
        );
        s.as_of = Some((now() - Duration::hours(1)).fixed_offset());
        s
    }

    fn decide(verifier: &str, s: &HealthStatus) -> Recognition {
        defaults().decide(verifier, s, Duration::hours(24), now())
    }

    #[test]
    fn jurisdiction_inheritance() {
        assert!(is_within("jiangsu/suzhou", "jiangsu"));
        assert!(is_within("jiangsu", "jiangsu"));
        assert!(!is_within("jiangsux", "jiangsu"));
        assert!(!is_within("jiangsu", "jiangsu/suzhou"));
        assert_eq!(ancestors("a/b/c").collect::<Vec<_>>(), vec!["a/b", "a"]);
    }

    #[test]
    fn every_default_agreement_covers_what_the_spec_says() {
        let p = defaults();
        // Yangtze River Delta: Shanghai honours Jiangsu, Zhejiang (and their cities).
        for issuer in [
            RegionId::Suzhou,
            RegionId::Sukang,
            RegionId::Hangzhou,
            RegionId::Huzhou,
        ] {
            assert_eq!(
                p.basis("shanghai", issuer),
                Some("yrd-mutual-recognition"),
                "{issuer}"
            );
        }
        assert_eq!(
            p.basis("zhejiang/hangzhou", RegionId::Suishen),
            Some("yrd-mutual-recognition")
        );
        assert_eq!(
            p.basis("anhui", RegionId::Sukang),
            Some("yrd-mutual-recognition")
        );
        // Guangdong interop: Guangzhou and Guangdong scan each other.
        assert_eq!(
            p.basis("guangdong/guangzhou", RegionId::Guangdong),
            Some("guangdong-interop")
        );
        assert_eq!(
            p.basis("guangdong", RegionId::Guangzhou),
            Some(HOME_JURISDICTION)
        );
        // Home jurisdiction.
        assert_eq!(
            p.basis("shanghai", RegionId::Suishen),
            Some(HOME_JURISDICTION)
        );
        assert_eq!(
            p.basis("jiangsu", RegionId::Suzhou),
            Some(HOME_JURISDICTION)
        );
        assert_eq!(
            p.basis("guangdong/guangzhou", RegionId::Guangzhou),
            Some(HOME_JURISDICTION)
        );
        // No agreement across the two groups.
        assert_eq!(p.basis("shanghai", RegionId::Guangzhou), None);
        assert_eq!(p.basis("guangdong", RegionId::Suishen), None);
        assert_eq!(p.basis("beijing", RegionId::Suishen), None);
    }

    #[test]
    fn xuzhou_inside_and_outside_jiangsu() {
        let p = defaults();
        assert_eq!(
            p.basis("jiangsu", RegionId::Xuzhou),
            Some(HOME_JURISDICTION)
        );
        assert_eq!(
            p.basis("jiangsu/suzhou", RegionId::Xuzhou),
            Some("xuzhou-within-jiangsu")
        );
        assert_eq!(
            p.basis("jiangsu/xuzhou", RegionId::Xuzhou),
            Some(HOME_JURISDICTION)
        );
        for outside in [
            "shanghai",
            "zhejiang",
            "zhejiang/hangzhou",
            "anhui",
            "guangdong",
        ] {
            assert_eq!(p.basis(outside, RegionId::Xuzhou), None, "{outside}");
            assert_eq!(
                decide(outside, &status(RegionId::Xuzhou, Level::Clear)).decision,
                Decision::RegisterLocally
            );
        }
        assert_eq!(
            decide("jiangsu/suzhou", &status(RegionId::Xuzhou, Level::Clear)).decision,
            Decision::Pass
        );
    }

    #[test]
    fn decision_table_row_by_row() {
        let green = status(RegionId::Suzhou, Level::Clear);
        // Row: colour unknown → manual_check (even where no agreement applies).
        let unknown = status(RegionId::Guangzhou, Level::Unknown);
        assert_eq!(decide("shanghai", &unknown).decision, Decision::ManualCheck);
        assert_eq!(
            decide("guangdong", &unknown).decision,
            Decision::ManualCheck
        );
        // Row: stale → manual_check.
        let mut stale = green.clone();
        stale.as_of = Some((now() - Duration::hours(25)).fixed_offset());
        assert_eq!(decide("shanghai", &stale).decision, Decision::ManualCheck);
        let mut no_time = green.clone();
        no_time.as_of = None;
        assert_eq!(decide("shanghai", &no_time).decision, Decision::ManualCheck);
        let mut future = green.clone();
        future.as_of = Some((now() + Duration::hours(1)).fixed_offset());
        assert_eq!(decide("shanghai", &future).decision, Decision::ManualCheck);
        // Row: no agreement → register_locally (for every colour).
        for level in [Level::Clear, Level::Monitoring, Level::Quarantine] {
            let r = decide("shanghai", &status(RegionId::Guangdong, level));
            assert_eq!(
                (r.decision, r.recognized, r.basis.as_str()),
                (Decision::RegisterLocally, false, "none")
            );
        }
        // Rows: red, yellow → deny.
        assert_eq!(
            decide("shanghai", &status(RegionId::Suzhou, Level::Quarantine)).decision,
            Decision::Deny
        );
        assert_eq!(
            decide("shanghai", &status(RegionId::Suzhou, Level::Monitoring)).decision,
            Decision::Deny
        );
        // Row: green clear_restricted → pass_restricted.
        assert_eq!(
            decide(
                "shanghai",
                &status(RegionId::Suzhou, Level::ClearRestricted)
            )
            .decision,
            Decision::PassRestricted
        );
        // Row: green clear with register_on_arrival or update_identity → manual_check.
        for action in [Action::RegisterOnArrival, Action::UpdateIdentity] {
            let mut s = green.clone();
            s.push_action(action);
            assert_eq!(
                decide("shanghai", &s).decision,
                Decision::ManualCheck,
                "{action:?}"
            );
        }
        // Other actions do not block a pass.
        let mut appeal = green.clone();
        appeal.push_action(Action::AppealPending);
        assert_eq!(decide("shanghai", &appeal).decision, Decision::Pass);
        // Row: green clear → pass, with its basis.
        let r = decide("shanghai", &green);
        assert_eq!(
            (
                r.decision,
                r.recognized,
                r.basis.as_str(),
                r.issuer.as_str()
            ),
            (
                Decision::Pass,
                true,
                "yrd-mutual-recognition",
                "jiangsu/suzhou"
            )
        );
        assert!(!r.note.is_empty());
    }

    #[test]
    fn an_inconsistent_status_from_a_peer_is_never_a_pass() {
        let mut s = status(RegionId::Suzhou, Level::Clear);
        s.level = Level::Unknown; // colour says green, level says unknown
        assert_eq!(decide("shanghai", &s).decision, Decision::ManualCheck);
        let mut s = status(RegionId::Suzhou, Level::Quarantine);
        s.color = Color::Green; // a green colour on a quarantine level
        assert_eq!(decide("shanghai", &s).decision, Decision::ManualCheck);
    }

    #[test]
    fn unavailable_status_is_a_manual_check_with_its_cause() {
        let r = defaults().unavailable("shanghai", RegionId::Suishen, ErrorCode::RegionTimeout);
        assert_eq!(
            (r.decision, r.cause),
            (Decision::ManualCheck, Some(ErrorCode::RegionTimeout))
        );
        assert!(r.recognized);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["cause"], "region_timeout");
        assert_eq!(json["decision"], "manual_check");
    }

    #[test]
    fn configuration_can_add_agreements_without_code() {
        let mut agreements = defaults().agreements().to_vec();
        agreements.push(Agreement {
            id: "all-provinces".into(),
            members: vec!["shanghai".into(), "guangdong".into()],
            code_systems: Some(RegionId::ALL.to_vec()),
            exclude_code_systems: vec![RegionId::Xuzhou],
            source: None,
        });
        let p = Policy::new(agreements);
        assert_eq!(
            p.basis("shanghai", RegionId::Guangzhou),
            Some("all-provinces")
        );
        assert_eq!(p.basis("guangdong", RegionId::Xuzhou), None);
    }
}
