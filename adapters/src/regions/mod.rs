//! One module per region, each implementing its published contract
//! (`shared/spec/regions/<region>.md`).
pub mod guangzhou;
pub mod suishen;
