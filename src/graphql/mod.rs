//! The GraphQL API: one schema, answered from a tenant's view of the
//! current snapshot. The HTTP layer puts an `Arc<TenantView>` for the
//! caller's tenant into every request; resolvers can reach data only
//! through it, so none of them can forget the tenant scope. Next to it:
//! the caller's `Principal` (permissions of mutations) and the
//! `ReportStore` (saved reports, also per tenant).

pub mod commissions;
pub mod errors;
pub mod live;
pub mod loaders;
pub mod models;
pub mod reports;
pub mod scalars;
pub mod schema;

use std::sync::Arc;

use async_graphql::{Context, MergedObject, Schema};

use crate::query::view::TenantView;

/// The query root: analytics fields, reports and the models' outputs.
#[derive(MergedObject)]
#[graphql(name = "Query")]
pub struct QueryRoot(schema::Query, reports::ReportsQuery, models::ModelsQuery, commissions::CommissionsQuery);

/// The mutation root (saved reports, the commission engine).
#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(reports::ReportsMutation, commissions::CommissionsMutation);

pub type CipSchema = Schema<QueryRoot, MutationRoot, live::SubscriptionRoot>;

/// Limits on the shape of a query.
#[derive(Debug, Clone, Copy)]
pub struct ShapeLimits {
    pub max_depth: usize,
    pub max_complexity: usize,
}

impl Default for ShapeLimits {
    fn default() -> Self {
        ShapeLimits { max_depth: 12, max_complexity: 2_000 }
    }
}

pub fn build_schema(limits: ShapeLimits) -> CipSchema {
    Schema::build(
        QueryRoot(schema::Query, reports::ReportsQuery, models::ModelsQuery, commissions::CommissionsQuery),
        MutationRoot::default(),
        live::SubscriptionRoot,
    )
    .limit_depth(limits.max_depth)
    .limit_complexity(limits.max_complexity)
    .finish()
}

/// The SDL clients see (`schema.graphql` must equal it).
pub fn sdl() -> String {
    build_schema(ShapeLimits::default()).sdl()
}

/// The caller's tenant view; present in every request the server executes.
pub(crate) fn view<'a>(ctx: &Context<'a>) -> &'a Arc<TenantView> {
    ctx.data_unchecked::<Arc<TenantView>>()
}
