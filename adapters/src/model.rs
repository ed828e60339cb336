//! The common status model (`shared/spec/status-model.md`), with the JSON names of the
//! gateway's API.

use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

pub use crate::region_id::{RegionId, UnknownRegion};

/// The national three-colour scale, plus `unknown` when the gateway cannot be sure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Color {
    /// 绿码.
    Green,
    /// 黄码.
    Yellow,
    /// 红码.
    Red,
    /// Not determinable; never treated as green.
    Unknown,
}

/// What the colour means for movement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Free passage.
    Clear,
    /// Suzhou's 绿码待定: necessary work and living areas only.
    ClearRestricted,
    /// Home health monitoring, observation or further screening.
    Monitoring,
    /// Isolation, medical observation, case management.
    Quarantine,
    /// Not determinable.
    Unknown,
}

impl Level {
    /// The colour this level belongs to.
    pub fn color(self) -> Color {
        match self {
            Level::Clear | Level::ClearRestricted => Color::Green,
            Level::Monitoring => Color::Yellow,
            Level::Quarantine => Color::Red,
            Level::Unknown => Color::Unknown,
        }
    }
}

/// The normalised reason vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// 确诊病例.
    ConfirmedCase,
    /// 疑似病例.
    SuspectedCase,
    /// 无症状感染者.
    AsymptomaticInfection,
    /// 核酸阳性.
    NucleicAcidPositive,
    /// 密切接触者.
    CloseContact,
    /// 发热门诊留观.
    FeverClinicObservation,
    /// Household member of a fever-clinic observee.
    HouseholdOfObserved,
    /// Discharged, medical observation not yet over.
    RecoveredUnderObservation,
    /// Arrived from a high-risk area.
    HighRiskAreaArrival,
    /// Arrived from a medium-risk area.
    MediumRiskAreaArrival,
    /// Self-reported symptoms.
    SelfReportedSymptoms,
    /// Home quarantine.
    HomeQuarantine,
    /// Centralised quarantine.
    CentralizedQuarantine,
    /// Under medical management.
    UnderMedicalManagement,
    /// 谎报瞒报.
    FalseDeclaration,
    /// 与病例曾处于同一空间.
    SharedSpaceWithCase,
    /// 绿码待定: no residence permit, fixed address or legal work.
    NonresidentWithoutResidence,
    /// 绿码待定: tourist or short stay.
    ShortStayVisitor,
    /// On the region's whitelist.
    Whitelisted,
    /// Anything else, including region values with no mapping.
    OtherConcern,
}

/// What the holder must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The region asks the holder to refresh identity information.
    UpdateIdentity,
    /// Arrival registration is required or not yet done.
    RegisterOnArrival,
    /// An appeal (复核) is open.
    AppealPending,
    /// The region asks for a new declaration.
    Redeclare,
}

/// Identity document types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IdType {
    /// 居民身份证 (18 characters, GB 11643 check digit).
    ResidentId,
    /// Passport.
    Passport,
    /// 港澳居民来往内地通行证.
    HkMacaoPermit,
    /// 台湾居民来往大陆通行证.
    TaiwanPermit,
}

impl IdType {
    /// The API name (`resident_id`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            IdType::ResidentId => "resident_id",
            IdType::Passport => "passport",
            IdType::HkMacaoPermit => "hk_macao_permit",
            IdType::TaiwanPermit => "taiwan_permit",
        }
    }
}

impl fmt::Display for IdType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the region literally said, kept for audit and support.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Source {
    /// The raw colour value as sent.
    pub code: String,
    /// The region's own wording (e.g. 绿码待定).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// The holder, masked only.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Holder {
    /// `张*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_masked: Option<String>,
    /// The identity document type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_type: Option<IdType>,
    /// `3205**********123X`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_masked: Option<String>,
}

impl Holder {
    /// True when no field is known.
    pub fn is_empty(&self) -> bool {
        self.name_masked.is_none() && self.id_type.is_none() && self.id_masked.is_none()
    }
}

/// One region's answer, normalised.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HealthStatus {
    /// The code system that issued the status.
    pub region: RegionId,
    /// The national colour; `unknown` when not determinable.
    pub color: Color,
    /// What the colour means for movement.
    pub level: Level,
    /// The raw value and label the region sent.
    pub source: Source,
    /// Normalised reasons (may be empty).
    #[serde(default)]
    pub reasons: Vec<Reason>,
    /// Whether the code was applied for by someone else, when the region says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_applied: Option<bool>,
    /// When the region computed this status. Absent when the region did not say, which the
    /// recognition policy treats as stale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<DateTime<FixedOffset>>,
    /// When the gateway obtained it from the region.
    pub observed_at: DateTime<Utc>,
    /// End of isolation or observation, when the region sends one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine_until: Option<NaiveDate>,
    /// Masked holder data.
    #[serde(default, skip_serializing_if = "Holder::is_empty")]
    pub holder: Holder,
    /// What the holder must do.
    #[serde(default)]
    pub actions: Vec<Action>,
    /// The region says this status is provisional and may change soon (Huzhou's
    /// `locationOff`): the colour is kept, but the gateway caches it for at most the
    /// region's shortest TTL. Internal: never serialised on the API.
    #[serde(skip)]
    pub provisional: bool,
}

impl HealthStatus {
    /// A status whose colour and level are derived consistently from `level`: the one
    /// constructor adapters use, so colour and level can never disagree.
    pub fn new(region: RegionId, level: Level, source: Source) -> Self {
        HealthStatus {
            region,
            color: level.color(),
            level,
            source,
            reasons: Vec::new(),
            proxy_applied: None,
            as_of: None,
            observed_at: Utc::now(),
            quarantine_until: None,
            holder: Holder::default(),
            actions: Vec::new(),
            provisional: false,
        }
    }

    /// Makes the colour and level `unknown` (a decision field was missing, `null`,
    /// unlisted or contradictory): the status can no longer pass. The source is kept.
    pub fn make_unknown(&mut self) {
        self.level = Level::Unknown;
        self.color = Level::Unknown.color();
    }

    /// Adds a reason once.
    pub fn push_reason(&mut self, reason: Reason) {
        if !self.reasons.contains(&reason) {
            self.reasons.push(reason);
        }
    }

    /// Adds an action once.
    pub fn push_action(&mut self, action: Action) {
        if !self.actions.contains(&action) {
            self.actions.push(action);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_ids_round_trip_through_their_api_names() {
        for r in RegionId::ALL {
            assert_eq!(r.as_str().parse::<RegionId>(), Ok(r));
            assert_eq!(
                serde_json::to_string(&r).unwrap(),
                format!("\"{}\"", r.as_str())
            );
        }
        assert!("Suzhou".parse::<RegionId>().is_err());
        assert!("".parse::<RegionId>().is_err());
    }

    #[test]
    fn level_determines_colour() {
        assert_eq!(Level::Clear.color(), Color::Green);
        assert_eq!(Level::ClearRestricted.color(), Color::Green);
        assert_eq!(Level::Monitoring.color(), Color::Yellow);
        assert_eq!(Level::Quarantine.color(), Color::Red);
        assert_eq!(Level::Unknown.color(), Color::Unknown);
    }

    #[test]
    fn serde_names_follow_the_spec() {
        let names = |v: serde_json::Value| v.as_str().unwrap().to_owned();
        assert_eq!(
            names(serde_json::to_value(Level::ClearRestricted).unwrap()),
            "clear_restricted"
        );
        assert_eq!(
            names(serde_json::to_value(Reason::HouseholdOfObserved).unwrap()),
            "household_of_observed"
        );
        assert_eq!(
            names(serde_json::to_value(Reason::NonresidentWithoutResidence).unwrap()),
            "nonresident_without_residence"
        );
        assert_eq!(
            names(serde_json::to_value(Action::RegisterOnArrival).unwrap()),
            "register_on_arrival"
        );
        assert_eq!(
            names(serde_json::to_value(IdType::HkMacaoPermit).unwrap()),
            "hk_macao_permit"
        );
    }

    #[test]
    fn optional_fields_are_omitted_not_empty() {
        let mut s = HealthStatus::new(
            RegionId::Suzhou,
            Level::ClearRestricted,
            Source {
                code: "GP".into(),
                label: Some("绿码待定".into()),
            },
        );
        s.as_of = Some(chrono::DateTime::parse_from_rfc3339("2020-03-02T08:15:00+08:00").unwrap());
        let v = serde_json::to_value(&s).unwrap();
        let obj = v.as_object().unwrap();
        assert_eq!(obj["color"], "green");
        assert_eq!(obj["level"], "clear_restricted");
        assert_eq!(obj["as_of"], "2020-03-02T08:15:00+08:00");
        assert_eq!(obj["source"]["label"], "绿码待定");
        for absent in ["proxy_applied", "quarantine_until", "holder"] {
            assert!(
                !obj.contains_key(absent),
                "{absent} must be omitted when unknown"
            );
        }
        assert_eq!(obj["reasons"], serde_json::json!([]));
    }
}
