//! [`RegionId`], generated from the one list of regions ([`for_each_region`]): the only
//! place regions are enumerated. The list also declares the region modules and their
//! [`crate::regions::REGIONS`] (in `regions/mod.rs`), so this module sits below the model
//! and the region modules, which name `RegionId`.

use std::fmt;
use std::str::FromStr;

/// Calls `$callback! { Variant => module, … }` with the one list of regions (`Variant` the
/// `RegionId` variant, `module` the region's module under `regions/` and its API id).
/// Adding a region is one line here (see `docs/adding-a-region.md`).
macro_rules! for_each_region {
    ($callback:ident) => {
        $callback! {
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
    };
}
pub(crate) use for_each_region;

/// Generates [`RegionId`] from the list.
macro_rules! region_id {
    ($( $(#[$doc:meta])* $variant:ident => $module:ident, )*) => {
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
        }
    };
}

for_each_region!(region_id);

impl fmt::Display for RegionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an unknown region id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown region id")]
pub struct UnknownRegion;

impl FromStr for RegionId {
    type Err = UnknownRegion;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RegionId::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or(UnknownRegion)
    }
}
