//! Contract tests: every adapter against a mock of its region's published contract
//! (`shared/spec/regions/*.md`). One test binary; one module per region.
//! Fixtures are readable files under `adapters/tests/fixtures/<region>/`.

#[macro_use]
mod support;

mod fail_safe;
mod guangdong;
mod guangzhou;
mod hangzhou;
mod huzhou;
mod mtls_mock;
mod suishen;
mod sukang;
mod suzhou;
mod xuzhou;
