//! QR detection: the raw scanned text → the issuing region and its token, from each
//! region contract's QR format. Strict: no trimming, no case folding; anything else,
//! including near-misses, oversize text and control characters, is unrecognised.

use crate::model::RegionId;
use crate::regions::REGIONS;

/// Longest QR text accepted (gateway-api.md).
pub const MAX_QR_BYTES: usize = 512;

/// A recognised QR code: the region and the token to send it.
#[derive(Clone, PartialEq, Eq)]
pub struct DetectedQr {
    /// The issuing region.
    pub region: RegionId,
    /// The token part (what the region's API takes).
    pub token: String,
}

impl std::fmt::Debug for DetectedQr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DetectedQr({}, [redacted])", self.region)
    }
}

/// Why a QR text was not recognised. All map to `unrecognized_qr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QrError {
    /// Longer than [`MAX_QR_BYTES`].
    #[error("the QR text is longer than 512 bytes")]
    TooLong,
    /// Contains control characters.
    #[error("the QR text contains control characters")]
    ControlCharacters,
    /// Matches no region's format.
    #[error("the QR text matches no region's format")]
    Unrecognized,
}

/// Detects the issuing region of a scanned QR text, from each region's
/// [`QrFormat`](crate::spec::QrFormat) in [`REGIONS`].
pub fn detect(text: &str) -> Result<DetectedQr, QrError> {
    if text.len() > MAX_QR_BYTES {
        return Err(QrError::TooLong);
    }
    if text.chars().any(char::is_control) {
        return Err(QrError::ControlCharacters);
    }
    REGIONS
        .iter()
        .find_map(|spec| {
            spec.qr.token_of(text).map(|token| DetectedQr {
                region: spec.id,
                token: token.to_owned(),
            })
        })
        .ok_or(QrError::Unrecognized)
}

/// The QR text a region would print for `token` (used by simulators and tests).
pub fn qr_text(region: RegionId, token: &str) -> String {
    format!("{}{token}", region.spec().qr.prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The examples of the region files.
    const EXAMPLES: [(&str, RegionId, &str); 8] = [
        (
            "SCM:5f2b9c0e8d7a41b3a6c2e9f0d1b4a7c8",
            RegionId::Suzhou,
            "5f2b9c0e8d7a41b3a6c2e9f0d1b4a7c8",
        ),
        (
            "ssm://v1/Qm9vdHN0cmFwLXRva2VuLTAwMDAwMDAx",
            RegionId::Suishen,
            "Qm9vdHN0cmFwLXRva2VuLTAwMDAwMDAx",
        ),
        (
            "SKM|7Q2KX9D4M1PZ8R6T3V5W0Y1A",
            RegionId::Sukang,
            "7Q2KX9D4M1PZ8R6T3V5W0Y1A",
        ),
        (
            "XZJKB:0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f",
            RegionId::Xuzhou,
            "0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f",
        ),
        (
            "HZJKM120200211000000012345",
            RegionId::Hangzhou,
            "20200211000000012345",
        ),
        (
            "HUZJKM-9a8b7c6d5e4f3a2b1c0d9e8f",
            RegionId::Huzhou,
            "9a8b7c6d5e4f3a2b1c0d9e8f",
        ),
        (
            "SUIKANG/a1B2c3D4e5F6g7H8i9J0k1L2m3N4",
            RegionId::Guangzhou,
            "a1B2c3D4e5F6g7H8i9J0k1L2m3N4",
        ),
        (
            "YKM:Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg",
            RegionId::Guangdong,
            "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg",
        ),
    ];

    #[test]
    fn detects_every_region_example() {
        for (text, region, token) in EXAMPLES {
            let d = detect(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!((d.region, d.token.as_str()), (region, token));
            assert_eq!(qr_text(region, token), text);
        }
    }

    #[test]
    fn near_misses_are_unrecognized() {
        for (text, _, _) in EXAMPLES {
            // Guangdong's published example is one shorter than its stated length.
            let (longer, shorter) = if text.starts_with("YKM:") {
                (format!("{text}00"), text[..text.len() - 2].to_owned())
            } else {
                (format!("{text}0"), text[..text.len() - 1].to_owned())
            };
            let mut near = vec![
                longer,             // one character too many
                shorter,            // one too few
                format!(" {text}"), // padded
                format!("{text} "),
                text.replacen(':', ";", 1),              // wrong separator
                format!("{}!", &text[..text.len() - 1]), // wrong alphabet
            ];
            // Case folding matters only where the alphabet or the prefix is single-case.
            if !text.starts_with("SUIKANG/") && !text.starts_with("YKM:") {
                near.push(text.to_uppercase());
            }
            if !text.starts_with("ssm://") {
                near.push(text.to_lowercase());
            }
            near.retain(|n| n != text);
            for n in near {
                assert!(detect(&n).is_err(), "{n:?} must not be recognised");
            }
        }
        for text in [
            "",
            "SCM:",
            "https://example.com/",
            "SCM:5F2B9C0E8D7A41B3A6C2E9F0D1B4A7C8",
            "ssm://v2/Qm9vdHN0cmFwLXRva2VuLTAwMDAwMDAx",
            "SKM|7q2kx9d4m1pz8r6t3v5w0y1a",
            "HZJKM220200211000000012345",
            "YKM:Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1H_",
            "YKM:Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1H",
            "YKM:Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg12",
        ] {
            assert_eq!(detect(text), Err(QrError::Unrecognized), "{text:?}");
        }
    }

    #[test]
    fn control_characters_and_oversize_are_refused() {
        assert_eq!(
            detect("SCM:5f2b9c0e8d7a41b3a6c2e9f0d1b4a7c8\n"),
            Err(QrError::ControlCharacters)
        );
        assert_eq!(
            detect("SCM:5f2b9c0e8d7a41b3\u{0}a6c2e9f0d1b4a7c8"),
            Err(QrError::ControlCharacters)
        );
        assert_eq!(detect(&"A".repeat(513)), Err(QrError::TooLong));
        assert_eq!(detect(&"A".repeat(512)), Err(QrError::Unrecognized));
        // Multi-byte text of more than 512 bytes.
        assert_eq!(detect(&"码".repeat(200)), Err(QrError::TooLong));
    }

    #[test]
    fn debug_hides_the_token() {
        let d = detect(EXAMPLES[0].0).unwrap();
        assert!(!format!("{d:?}").contains("5f2b"));
    }
}
