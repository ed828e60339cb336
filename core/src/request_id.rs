//! The request id of the request being handled: a task-local set by the HTTP front door
//! (`hcgw`'s `api::request_id`), read by the audit trail, problem bodies and the federation
//! client (which forwards it as `X-Request-Id`).

/// The header name.
pub const HEADER: &str = "x-request-id";

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The request id of the request being handled, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Runs `f` with `id` as the current request id.
pub async fn scope<F: std::future::Future>(id: String, f: F) -> F::Output {
    REQUEST_ID.scope(id, f).await
}

/// The id to use for a request: the caller's if sane (1–64 letters, digits, `-`, `_`, `.`),
/// else a fresh ULID.
pub fn choose(from_caller: Option<&str>) -> String {
    match from_caller {
        Some(id) if is_sane(id) => id.to_owned(),
        _ => ulid::Ulid::new().to_string(),
    }
}

fn is_sane(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_ids_are_kept_others_replaced() {
        assert_eq!(choose(Some("gate-12.abc_9")), "gate-12.abc_9");
        for bad in ["", "has space", "semi;colon", &"a".repeat(65), "张三"] {
            let id = choose(Some(bad));
            assert_ne!(id, bad);
            assert_eq!(id.len(), 26, "a ULID");
        }
    }

    #[tokio::test]
    async fn current_is_set_only_inside_its_scope() {
        assert_eq!(current(), None);
        assert_eq!(
            scope("r-1".into(), async { current() }).await.as_deref(),
            Some("r-1")
        );
    }
}
