//! Subscriptions: figures pushed over `/graphql/ws` as new lake versions
//! are served (a streaming commit publishes one every second under load).
//!
//! `kpisChanged(agencyId, asOf)` sends the agency's KPIs at once, then
//! again after each served version whose figures differ from the last ones
//! sent: a commit that touches other agencies, or other tenants, sends
//! nothing. The figures are computed by the server's [`Live`] hook, which
//! opens the caller's tenant's newest view and runs the same resolver code
//! as `Agency.kpis` under the server's query slots and deadline, so a
//! subscription is scoped and limited like any query.

use std::sync::Arc;

use async_graphql::{Context, ID, Result, Subscription};
use futures::future::BoxFuture;
use futures::{Stream, StreamExt};
use tokio::sync::watch;

use super::scalars::Date;
use super::schema::Kpis;

/// An agency's KPIs at a date on the caller's newest view; `None` when the
/// tenant has no such agency.
pub type KpisOnLatest = Arc<dyn Fn(String, Date) -> BoxFuture<'static, Result<Option<Kpis>>> + Send + Sync>;

/// What the server gives a subscription: the versions it serves, and the
/// caller's figures on the newest one.
#[derive(Clone)]
pub struct Live {
    pub versions: watch::Receiver<u64>,
    pub kpis: KpisOnLatest,
}

#[derive(Default)]
pub struct SubscriptionRoot;

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// The agency's KPIs now, and again after each lake version that
    /// changes them (none after a version that leaves them as they were).
    /// `asOf` defaults to the day of each push (UTC), so month and year
    /// to date roll over by themselves.
    async fn kpis_changed(
        &self,
        ctx: &Context<'_>,
        agency_id: ID,
        as_of: Option<Date>,
    ) -> Result<impl Stream<Item = Result<Kpis>> + use<>> {
        let live = ctx.data::<Live>()?.clone();
        let agency = agency_id.0;
        let today = || Date(chrono::Utc::now().date_naive());
        let first = (live.kpis)(agency.clone(), as_of.unwrap_or_else(today)).await?;
        let Some(first) = first else {
            return Err(super::errors::not_found(format!("no agency {agency}")));
        };
        let mut versions = live.versions;
        versions.mark_unchanged();
        let state = (versions, Some(first.clone()), agency, live.kpis);
        let later = futures::stream::unfold(state, move |(mut versions, last, agency, kpis)| async move {
            loop {
                // The server went away: the subscription ends.
                versions.changed().await.ok()?;
                match kpis(agency.clone(), as_of.unwrap_or_else(today)).await {
                    Ok(Some(k)) if Some(&k) != last.as_ref() => {
                        return Some((Ok(k.clone()), (versions, Some(k), agency, kpis)));
                    }
                    Ok(_) => continue,
                    // A refused push (no slot in time, deadline) is an error
                    // message; the subscription goes on.
                    Err(e) => return Some((Err(e), (versions, last, agency, kpis))),
                }
            }
        });
        Ok(futures::stream::once(async move { Ok(first) }).chain(later))
    }
}
