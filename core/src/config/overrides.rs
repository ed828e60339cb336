//! Configuration overrides from the environment: `HCGW_<SECTION>__<KEY>=value` replaces
//! `key` in `[section]` of the file (`HCGW_GATEWAY__NAME`, `HCGW_REDIS__URL`,
//! `HCGW_AUDIT__DIR`; deeper tables with more `__`: `HCGW_REGIONS__SUZHOU__BASE_URL`).
//!
//! Names are matched in lowercase. A value replaces a string in the file as a string; any
//! other value is read as a TOML value (`true`, `5000`, `["a", "b"]`,
//! `{ file = "/run/secrets/k" }`) and, when it is not one, taken as a string. The result
//! goes through exactly the same checks as the file; a problem caused by an override names
//! its variable. Secrets stay references: an inline value for a secret field is refused as
//! in the file.

use super::load::Problem;

/// Prefix of override variables.
pub const PREFIX: &str = "HCGW_";
/// Separator between the levels of an override's path.
pub const SEPARATOR: &str = "__";

/// One override: the variable and the path in the configuration it replaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Override {
    /// The environment variable (`HCGW_GATEWAY__NAME`).
    pub variable: String,
    /// The path it replaces, lowercase (`["gateway", "name"]`).
    pub path: Vec<String>,
    /// The raw value.
    value: String,
}

impl Override {
    /// The path as problems show it (`gateway.name`).
    pub fn dotted(&self) -> String {
        self.path.join(".")
    }

    /// Whether `problem` concerns this override: it is at or below the overridden path, or
    /// it is an unknown section or field on the way to it.
    fn caused(&self, problem: &Problem) -> bool {
        let own = self.dotted();
        let below = |outer: &str, inner: &str| {
            inner
                .strip_prefix(outer)
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        };
        problem.path == own
            || below(&own, &problem.path)
            || (below(&problem.path, &own) && problem.message.contains("unknown"))
    }
}

/// The overrides among `vars`, sorted by variable name. Variables starting with
/// [`PREFIX`] but without [`SEPARATOR`] (`HCGW_CONFIG`, secret variables) are not
/// overrides and are ignored; malformed override names and non-UTF-8 values are problems.
pub fn from_vars(
    vars: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
    problems: &mut Vec<Problem>,
) -> Vec<Override> {
    let mut found = Vec::new();
    for (name, value) in vars {
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        if !rest.contains(SEPARATOR) {
            continue;
        }
        let path: Vec<String> = rest.split(SEPARATOR).map(str::to_lowercase).collect();
        let well_formed = path.iter().all(|s| {
            !s.is_empty()
                && !s.starts_with('_')
                && !s.ends_with('_')
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        });
        if !well_formed {
            problems.push(Problem::new(
                format!("${name}"),
                "malformed override name: expected HCGW_<SECTION>__<KEY> (letters, digits, single underscores)",
            ));
            continue;
        }
        let Some(value) = value.to_str() else {
            problems.push(Problem::new(
                format!("${name}"),
                "the value is not valid UTF-8",
            ));
            continue;
        };
        found.push(Override {
            variable: name.to_owned(),
            path,
            value: value.to_owned(),
        });
    }
    found.sort_by(|a, b| a.variable.cmp(&b.variable));
    found
}

/// The overrides in this process's environment.
pub fn from_process_env(problems: &mut Vec<Problem>) -> Vec<Override> {
    from_vars(std::env::vars_os(), problems)
}

/// Writes every override into `table`; an override that cannot be placed (its path goes
/// through a value that is not a table, such as the `[[clients]]` array) is a problem.
pub fn apply(table: &mut toml::Table, overrides: &[Override], problems: &mut Vec<Problem>) {
    for o in overrides {
        let (last, parents) = o.path.split_last().expect("at least two segments");
        match parent_table(table, parents) {
            Ok(here) => {
                let value = typed_value(&o.value, here.get(last));
                here.insert(last.clone(), value);
            }
            Err((depth, type_str)) => problems.push(Problem::new(
                o.path[..=depth].join("."),
                format!(
                    "cannot be overridden from the environment: it is {} {type_str}, not a table ({})",
                    article(type_str),
                    o.variable
                ),
            )),
        }
    }
}

/// The table at `path` (made where missing), or the depth and type of the first value on
/// the way that is not a table.
fn parent_table<'t>(
    table: &'t mut toml::Table,
    path: &[String],
) -> Result<&'t mut toml::Table, (usize, &'static str)> {
    let mut here = table;
    for (i, segment) in path.iter().enumerate() {
        let entry = here
            .entry(segment.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match entry {
            toml::Value::Table(t) => here = t,
            other => return Err((i, other.type_str())),
        }
    }
    Ok(here)
}

fn article(type_str: &str) -> &'static str {
    if type_str.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// The TOML value of `raw`: a string where the file has a string, else the TOML value it
/// spells, else a string.
fn typed_value(raw: &str, in_file: Option<&toml::Value>) -> toml::Value {
    if matches!(in_file, Some(toml::Value::String(_))) {
        return toml::Value::String(raw.to_owned());
    }
    match format!("v = {raw}").parse::<toml::Table>() {
        Ok(mut t) if t.len() == 1 => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_owned())),
        _ => toml::Value::String(raw.to_owned()),
    }
}

/// Marks every problem caused by an override with the variable that set it, so the user
/// knows to look in the environment rather than in the file.
pub fn attribute(problems: &mut [Problem], overrides: &[Override]) {
    for p in problems {
        if let Some(o) = overrides.iter().rev().find(|o| o.caused(p))
            && !p.message.contains(&o.variable)
        {
            p.message = format!("{} (set by environment variable {})", p.message, o.variable);
        }
    }
}

/// The configuration table for printing: redis URL passwords and any inline value under a
/// secret-looking key replaced by `<redacted>` (inline secrets are refused by validation;
/// this is a second guard).
pub fn redacted(table: &toml::Table) -> toml::Table {
    let mut out = table.clone();
    redact_table(&mut out);
    out
}

fn redact_table(t: &mut toml::Table) {
    for (key, value) in t.iter_mut() {
        match value {
            toml::Value::Table(inner) => redact_table(inner),
            toml::Value::Array(items) => {
                for item in items {
                    if let toml::Value::Table(inner) = item {
                        redact_table(inner);
                    }
                }
            }
            toml::Value::String(s) => {
                if key == "url" {
                    *s = redact_url_password(s);
                } else if secret_looking(key) {
                    *s = "<redacted>".into();
                }
            }
            _ => {}
        }
    }
}

fn secret_looking(key: &str) -> bool {
    [
        "secret", "password", "token", "appcode", "api_key", "paas_id",
    ]
    .iter()
    .any(|s| key.contains(s))
}

/// `redis://user:pw@host/0` → `redis://user:<redacted>@host/0`.
fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &rest[..at];
    let user = userinfo.split_once(':').map(|(u, _)| u).unwrap_or(userinfo);
    format!("{scheme}://{user}:<redacted>{}", &rest[at..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn vars(list: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        list.iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn only_prefixed_names_with_a_separator_are_overrides() {
        let mut problems = vec![];
        let found = from_vars(
            vars(&[
                ("HCGW_GATEWAY__NAME", "a"),
                ("HCGW_CONFIG", "/etc/hcgw.toml"),
                ("HCGW_SUISHEN_CLIENT_SECRET", "s"),
                ("PATH", "/bin"),
                ("HCGW_REGIONS__SUZHOU__BASE_URL", "http://x"),
            ]),
            &mut problems,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let paths: Vec<_> = found.iter().map(Override::dotted).collect();
        assert_eq!(paths, ["gateway.name", "regions.suzhou.base_url"]);
    }

    #[test]
    fn malformed_names_are_problems_naming_the_variable() {
        for name in [
            "HCGW_GATEWAY__",
            "HCGW___NAME",
            "HCGW_GATEWAY___NAME",
            "HCGW_A-B__C",
        ] {
            let mut problems = vec![];
            let found = from_vars(vars(&[(name, "x")]), &mut problems);
            assert!(found.is_empty(), "{name}");
            assert_eq!(problems.len(), 1, "{name}");
            assert_eq!(problems[0].path, format!("${name}"));
        }
    }

    #[test]
    fn values_keep_the_type_of_the_file_or_read_as_toml() {
        let mut table: toml::Table = "[gateway]\nname = \"a\"\n[audit]\nstrict = true\n"
            .parse()
            .unwrap();
        let mut problems = vec![];
        let o = from_vars(
            vars(&[
                ("HCGW_GATEWAY__NAME", "123"),
                ("HCGW_AUDIT__STRICT", "false"),
                ("HCGW_AUDIT__ROTATE_BYTES", "1000"),
                ("HCGW_AUDIT__DIR", "/var/lib/hcgw/audit"),
                ("HCGW_CACHE__SUBJECT_KEY", "{ file = \"/run/secrets/k\" }"),
                ("HCGW_REDIS__URL", "redis://r:6379\nenabled = true"),
            ]),
            &mut problems,
        );
        apply(&mut table, &o, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(table["gateway"]["name"].as_str(), Some("123"));
        assert_eq!(table["audit"]["strict"].as_bool(), Some(false));
        assert_eq!(table["audit"]["rotate_bytes"].as_integer(), Some(1000));
        assert_eq!(table["audit"]["dir"].as_str(), Some("/var/lib/hcgw/audit"));
        assert_eq!(
            table["cache"]["subject_key"]["file"].as_str(),
            Some("/run/secrets/k")
        );
        // A value that would smuggle in a second key stays one string.
        assert_eq!(
            table["redis"]["url"].as_str(),
            Some("redis://r:6379\nenabled = true")
        );
        assert!(table["redis"].get("enabled").is_none());
    }

    #[test]
    fn an_override_through_an_array_is_a_problem() {
        let mut table: toml::Table = "[[clients]]\nname = \"a\"\n".parse().unwrap();
        let mut problems = vec![];
        let o = from_vars(vars(&[("HCGW_CLIENTS__NAME", "b")]), &mut problems);
        apply(&mut table, &o, &mut problems);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, "clients");
        assert!(problems[0].message.contains("HCGW_CLIENTS__NAME"));
    }

    #[test]
    fn problems_under_an_override_name_its_variable() {
        let mut problems = vec![];
        let o = from_vars(vars(&[("HCGW_GATEWAY__NAME", "")]), &mut problems);
        let mut found = vec![
            Problem::new("gateway.name", "must not be empty"),
            Problem::new("gateway.names", "other"),
            Problem::new("audit.dir", "other"),
        ];
        let mut unknown = from_vars(vars(&[("HCGW_GATEWAY__NAMEE", "x")]), &mut problems);
        unknown.extend(from_vars(vars(&[("HCGW_NOPE__X", "x")]), &mut problems));
        let o: Vec<_> = o.into_iter().chain(unknown).collect();
        found.push(Problem::new(
            "gateway",
            "unknown field `namee`, expected one of …",
        ));
        found.push(Problem::new("nope", "unknown section; known: …"));
        found.push(Problem::new("gateway", "missing field `name`"));
        attribute(&mut found, &o);
        assert!(
            found[3]
                .message
                .ends_with("(set by environment variable HCGW_GATEWAY__NAMEE)")
        );
        assert!(
            found[4]
                .message
                .ends_with("(set by environment variable HCGW_NOPE__X)")
        );
        assert!(!found[5].message.contains("HCGW_"));
        assert!(
            found[0]
                .message
                .ends_with("(set by environment variable HCGW_GATEWAY__NAME)")
        );
        assert!(!found[1].message.contains("HCGW_"));
        assert!(!found[2].message.contains("HCGW_"));
    }

    #[test]
    fn printing_redacts_passwords_and_inline_secret_values() {
        let table: toml::Table = r#"
[redis]
url = "redis://hcgw:pa55word@redis:6379/0"
[regions.suzhou.auth]
app_id = "hcgw"
app_secret = "inline"
[cache]
subject_key = { file = "/run/secrets/k" }
"#
        .parse()
        .unwrap();
        let text = toml::to_string(&redacted(&table)).unwrap();
        assert!(
            !text.contains("pa55word") && !text.contains("inline"),
            "{text}"
        );
        assert!(
            text.contains("redis://hcgw:<redacted>@redis:6379/0"),
            "{text}"
        );
        assert!(text.contains("app_id = \"hcgw\""), "{text}");
        assert!(text.contains("/run/secrets/k"), "{text}");
        assert_eq!(redact_url_password("redis://r:6379/0"), "redis://r:6379/0");
        assert_eq!(
            redact_url_password("redis://:pw@r:6379"),
            "redis://:<redacted>@r:6379"
        );
    }
}
