//! Identity numbers and names: the resident-id validator (GB 11643) and the masking rules
//! of `security.md` (name → first character or compound surname + `*`; numbers → first 4
//! and last 4 characters kept).

use chrono::{Datelike, NaiveDate, Utc};

/// Why a resident identity number is invalid. Never carries the number itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResidentIdError {
    /// Not 18 characters.
    #[error("a resident identity number has 18 characters")]
    Length,
    /// Not 17 digits followed by a digit or `X`.
    #[error("a resident identity number is 17 digits followed by a digit or X")]
    Characters,
    /// The first two digits are no province-level area code.
    #[error("the resident identity number's area code is not a province-level code")]
    AreaCode,
    /// Characters 7–14 are not a past calendar date from 1900 on.
    #[error("the resident identity number's date of birth is not a valid past date")]
    BirthDate,
    /// The GB 11643 check digit does not match.
    #[error("the resident identity number's check digit is wrong")]
    CheckDigit,
}

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK_CHARS: [u8; 11] = *b"10X98765432";

/// Province-level administrative division codes (GB/T 2260 first two digits).
const PROVINCE_CODES: [&str; 35] = [
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41",
    "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65", "71",
    "81", "82", "83",
];

/// The GB 11643 check character for the first 17 digits (which must be ASCII digits).
pub fn resident_id_check_char(first17: &[u8]) -> char {
    debug_assert_eq!(first17.len(), 17);
    let sum: u32 = first17
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    CHECK_CHARS[(sum % 11) as usize] as char
}

/// Validates a resident identity number and returns it normalised (trailing `x` → `X`).
pub fn validate_resident_id(raw: &str) -> Result<String, ResidentIdError> {
    validate_resident_id_on(raw, Utc::now().date_naive())
}

/// [`validate_resident_id`] with an explicit "today" (for the birth-date check).
pub fn validate_resident_id_on(raw: &str, today: NaiveDate) -> Result<String, ResidentIdError> {
    let bytes = raw.as_bytes();
    if raw.chars().count() != 18 {
        return Err(ResidentIdError::Length);
    }
    if bytes.len() != 18
        || !bytes[..17].iter().all(u8::is_ascii_digit)
        || !(bytes[17].is_ascii_digit() || bytes[17] == b'X' || bytes[17] == b'x')
    {
        return Err(ResidentIdError::Characters);
    }
    if !PROVINCE_CODES.contains(&&raw[..2]) {
        return Err(ResidentIdError::AreaCode);
    }
    let birth =
        NaiveDate::parse_from_str(&raw[6..14], "%Y%m%d").map_err(|_| ResidentIdError::BirthDate)?;
    if birth.year() < 1900 || birth > today {
        return Err(ResidentIdError::BirthDate);
    }
    let expected = resident_id_check_char(&bytes[..17]);
    if (bytes[17] as char).to_ascii_uppercase() != expected {
        return Err(ResidentIdError::CheckDigit);
    }
    Ok(raw.to_ascii_uppercase())
}

/// Common compound surnames (复姓), kept whole when masking a name.
const COMPOUND_SURNAMES: [&str; 40] = [
    "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒",
    "司空", "夏侯", "令狐", "轩辕", "端木", "独孤", "南宫", "西门", "百里", "呼延", "万俟", "澹台",
    "公冶", "太史", "申屠", "闻人", "赫连", "钟离", "濮阳", "淳于", "单于", "拓跋", "第五", "东郭",
    "左丘", "谷梁", "羊舌", "梁丘",
];

/// Masks a name for display: the surname (one character, or a compound surname such as
/// 欧阳) followed by `*`. `张三` → `张*`, `欧阳娜娜` → `欧阳*`, `JOHN SMITH` → `J*`.
pub fn mask_name(name: &str) -> String {
    let name = name.trim();
    if let Some(surname) = COMPOUND_SURNAMES
        .iter()
        .find(|s| name.starts_with(**s) && name.chars().count() > s.chars().count())
    {
        return format!("{surname}*");
    }
    let mut chars = name.chars();
    match (chars.next(), chars.next()) {
        (Some(first), Some(_)) => format!("{first}*"),
        _ => "*".to_owned(),
    }
}

/// Masks an identity number: the first 4 and last 4 characters are kept and each one in
/// between becomes `*` (`3205**********123X`); numbers of 8 characters or fewer keep only
/// their first and last character, and numbers of 2 or fewer are fully masked.
pub fn mask_id(number: &str) -> String {
    let chars: Vec<char> = number.trim().chars().collect();
    let n = chars.len();
    let keep = if n > 8 {
        4
    } else if n > 2 {
        1
    } else {
        0
    };
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| if i < keep || i >= n - keep { *c } else { '*' })
        .collect()
}

/// A value as the region sent it when the region masked it already (it contains `*`), else
/// masked here with `mask` ([`mask_name`] or [`mask_id`]).
pub fn keep_or_mask(value: &str, mask: fn(&str) -> String) -> String {
    if value.contains('*') {
        value.to_owned()
    } else {
        mask(value)
    }
}

/// [`keep_or_mask`] for a field the region may leave out or blank: `None` then.
pub fn keep_or_mask_present(value: Option<String>, mask: fn(&str) -> String) -> Option<String> {
    value
        .filter(|v| !v.trim().is_empty())
        .map(|v| keep_or_mask(&v, mask))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
    }

    /// Builds a valid id from its first 17 digits.
    fn with_check(first17: &str) -> String {
        format!("{first17}{}", resident_id_check_char(first17.as_bytes()))
    }

    #[test]
    fn accepts_published_examples() {
        // The GB 11643 standard's own example, and a lowercase x normalised.
        assert_eq!(
            validate_resident_id_on("11010519491231002X", today()).unwrap(),
            "11010519491231002X"
        );
        assert_eq!(
            validate_resident_id_on("11010519491231002x", today()).unwrap(),
            "11010519491231002X"
        );
        assert_eq!(
            validate_resident_id_on("440524188001010014", today()),
            Err(ResidentIdError::BirthDate)
        );
        let id = with_check("32050119900307123");
        assert_eq!(validate_resident_id_on(&id, today()).unwrap(), id);
    }

    #[test]
    fn rejects_wrong_length() {
        assert_eq!(
            validate_resident_id_on("", today()),
            Err(ResidentIdError::Length)
        );
        assert_eq!(
            validate_resident_id_on("1101051949123100", today()),
            Err(ResidentIdError::Length)
        );
        assert_eq!(
            validate_resident_id_on("11010519491231002X1", today()),
            Err(ResidentIdError::Length)
        );
        // 18 characters of which one is multi-byte: still 18 chars, wrong characters.
        assert_eq!(
            validate_resident_id_on("11010519491231002十", today()),
            Err(ResidentIdError::Characters)
        );
    }

    #[test]
    fn rejects_bad_characters() {
        assert_eq!(
            validate_resident_id_on("1101051949123100XX", today()),
            Err(ResidentIdError::Characters)
        );
        assert_eq!(
            validate_resident_id_on("11010519491231002Y", today()),
            Err(ResidentIdError::Characters)
        );
        assert_eq!(
            validate_resident_id_on(" 1010519491231002X", today()),
            Err(ResidentIdError::Characters)
        );
    }

    #[test]
    fn rejects_unknown_area_codes() {
        assert_eq!(
            validate_resident_id_on(&with_check("00010519491231002"), today()),
            Err(ResidentIdError::AreaCode)
        );
        assert_eq!(
            validate_resident_id_on(&with_check("99010519491231002"), today()),
            Err(ResidentIdError::AreaCode)
        );
    }

    #[test]
    fn rejects_impossible_or_future_birth_dates() {
        for first17 in [
            "32050119900230123", // 30 February
            "32050119901301123", // month 13
            "32050118991231123", // before 1900
            "32050120991231123", // in the future
            "32050120000000123", // day 0
        ] {
            assert_eq!(
                validate_resident_id_on(&with_check(first17), today()),
                Err(ResidentIdError::BirthDate),
                "{first17}"
            );
        }
        // 29 February of a leap year is fine.
        assert!(validate_resident_id_on(&with_check("32050120000229123"), today()).is_ok());
    }

    #[test]
    fn rejects_every_wrong_check_digit() {
        let first17 = "32050119900307123";
        let right = resident_id_check_char(first17.as_bytes());
        for c in "0123456789X".chars().filter(|c| *c != right) {
            assert_eq!(
                validate_resident_id_on(&format!("{first17}{c}"), today()),
                Err(ResidentIdError::CheckDigit),
                "{c}"
            );
        }
    }

    #[test]
    fn errors_never_echo_the_number() {
        let msg = validate_resident_id_on("32050119900307123Y", today())
            .unwrap_err()
            .to_string();
        assert!(!msg.contains("3205"));
    }

    #[test]
    fn masks_single_and_two_character_surnames() {
        assert_eq!(mask_name("张三"), "张*");
        assert_eq!(mask_name("李小龙"), "李*");
        assert_eq!(mask_name("王"), "*");
        assert_eq!(mask_name(""), "*");
        assert_eq!(mask_name("JOHN SMITH"), "J*");
    }

    #[test]
    fn masks_compound_surnames_whole() {
        assert_eq!(mask_name("欧阳娜娜"), "欧阳*");
        assert_eq!(mask_name("司马光"), "司马*");
        assert_eq!(mask_name("诸葛亮"), "诸葛*");
        assert_eq!(mask_name("上官婉儿"), "上官*");
        // A name that is only a compound surname keeps its first character only.
        assert_eq!(mask_name("欧阳"), "欧*");
        // 欧 alone is an ordinary surname.
        assert_eq!(mask_name("欧小明"), "欧*");
    }

    #[test]
    fn masks_identity_numbers() {
        assert_eq!(mask_id("32050119900307123X"), "3205**********123X");
        assert_eq!(mask_id("E12345678"), "E123*5678");
        assert_eq!(mask_id("H1234567"), "H******7");
        assert_eq!(mask_id("AB"), "**");
        assert_eq!(mask_id(""), "");
    }

    #[test]
    fn a_value_the_region_masked_is_kept_and_any_other_is_masked() {
        assert_eq!(keep_or_mask("张*", mask_name), "张*");
        assert_eq!(keep_or_mask("张三", mask_name), "张*");
        assert_eq!(keep_or_mask("3205**8X", mask_id), "3205**8X");
        assert_eq!(
            keep_or_mask("32050219900101123X", mask_id),
            "3205**********123X"
        );
        // No `*` of its own: masked, however short.
        assert_eq!(keep_or_mask("", mask_name), "*");
        assert_eq!(
            keep_or_mask_present(Some("王五".into()), mask_name).as_deref(),
            Some("王*")
        );
        assert_eq!(
            keep_or_mask_present(Some("王*".into()), mask_name).as_deref(),
            Some("王*")
        );
        assert_eq!(keep_or_mask_present(Some("  ".into()), mask_name), None);
        assert_eq!(keep_or_mask_present(None, mask_id), None);
    }
}
