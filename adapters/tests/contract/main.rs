//! Contract tests: every adapter against a mock of its region's published contract
//! (`shared/spec/regions/*.md`). One test binary; one module per region.
//! Fixtures are readable files under `adapters/tests/fixtures/<region>/`.

mod guangzhou;
mod suishen;
mod support;
