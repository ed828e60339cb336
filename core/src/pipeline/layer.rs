//! The lookup pipeline's layers: each is one type implementing [`Layer`] — it gets the
//! question and the rest of the stack ([`Next`]) and decides whether, and how often, to
//! call it. [`LookupService`](super::LookupService) stacks them in one place, in front of
//! the routing to the region's adapter or to its peers, so every layer applies alike to
//! local and peer-served regions:
//!
//! ```text
//! fetch ─▶ Stats ─▶ StatusCache ─▶ route ─┬─▶ local: region guard (limits, breaker), retry, adapter
//!                                             └─▶ peers: per-peer limits and breaker, fail-over
//! ```

use async_trait::async_trait;
use hcgw_adapters::{RegionId, Subject};

use super::{Fetched, ForwardContext, LookupError};

/// The outcome of a fetch.
pub type FetchResult = Result<Fetched, LookupError>;

/// One question on its way down the stack.
#[derive(Clone, Copy, Debug)]
pub struct Ask<'a> {
    /// The region asked.
    pub region: RegionId,
    /// The subject, as the adapter takes it.
    pub subject: &'a Subject,
    /// On whose behalf, how far it has travelled, how long it may wait.
    pub ctx: &'a ForwardContext,
    /// The cache key (a keyed hash of region and subject; for peer-served regions with the
    /// acting role, since a peer answers with that role's view).
    pub key: &'a str,
}

/// The end of the stack: the routing to the region's adapter or its peers.
#[async_trait]
pub trait Route: Send + Sync {
    /// Asks the region (or its peers) without any layer.
    async fn route(&self, ask: &Ask<'_>) -> FetchResult;
}

/// A layer of the pipeline.
#[async_trait]
pub trait Layer: Send + Sync {
    /// Answers `ask`, calling `next` (the layers below and the route) as it sees fit: not
    /// at all (a cache hit), once, or again.
    async fn call(&self, ask: &Ask<'_>, next: Next<'_>) -> FetchResult;
}

/// The rest of the stack below a layer. Cheap to copy: a layer may run it more than once.
#[derive(Clone, Copy)]
pub struct Next<'a> {
    layers: &'a [&'a dyn Layer],
    route: &'a dyn Route,
}

impl<'a> Next<'a> {
    /// The whole stack `layers` in front of `route`.
    pub fn new(layers: &'a [&'a dyn Layer], route: &'a dyn Route) -> Self {
        Next { layers, route }
    }

    /// Runs the rest of the stack.
    pub async fn run(self, ask: &Ask<'_>) -> FetchResult {
        match self.layers.split_first() {
            Some((layer, rest)) => {
                layer
                    .call(
                        ask,
                        Next {
                            layers: rest,
                            route: self.route,
                        },
                    )
                    .await
            }
            None => self.route.route(ask).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use crate::error_code::ErrorCode;

    use super::*;

    struct Trace(&'static str, std::sync::Arc<Mutex<Vec<&'static str>>>);

    #[async_trait]
    impl Layer for Trace {
        async fn call(&self, ask: &Ask<'_>, next: Next<'_>) -> FetchResult {
            self.1.lock().unwrap().push(self.0);
            next.run(ask).await
        }
    }

    struct Twice;

    #[async_trait]
    impl Layer for Twice {
        async fn call(&self, ask: &Ask<'_>, next: Next<'_>) -> FetchResult {
            let _ = next.run(ask).await;
            next.run(ask).await
        }
    }

    struct Fails(std::sync::Arc<Mutex<Vec<&'static str>>>);

    #[async_trait]
    impl Route for Fails {
        async fn route(&self, _: &Ask<'_>) -> FetchResult {
            self.0.lock().unwrap().push("route");
            Err(LookupError::new(ErrorCode::RegionUnavailable, "down"))
        }
    }

    #[tokio::test]
    async fn layers_run_in_order_and_may_call_the_rest_again() {
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let (outer, inner) = (Trace("outer", seen.clone()), Trace("inner", seen.clone()));
        let layers: [&dyn Layer; 3] = [&outer, &Twice, &inner];
        let route = Fails(seen.clone());
        let subject = Subject::QrToken("t".into());
        let ctx = ForwardContext::direct(crate::config::Role::Platform, "shanghai");
        let ask = Ask {
            region: RegionId::Suzhou,
            subject: &subject,
            ctx: &ctx,
            key: "k",
        };
        let r = Next::new(&layers, &route).run(&ask).await;
        assert_eq!(r.unwrap_err().code, ErrorCode::RegionUnavailable);
        assert_eq!(
            *seen.lock().unwrap(),
            ["outer", "inner", "route", "inner", "route"]
        );
    }
}
