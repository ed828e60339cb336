//! One module per region, each implementing its published contract
//! (`shared/spec/regions/<region>.md`).

pub mod guangdong;
pub mod guangzhou;
pub mod hangzhou;
pub mod huzhou;
pub mod suishen;
pub mod sukang;
pub mod suzhou;
pub mod xuzhou;
