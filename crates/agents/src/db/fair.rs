//! Fair claiming across users: due jobs are offered in order of their owner's latest claim
//! (never served first), oldest job first within one user. One user's backlog therefore
//! delays another user's job by at most the jobs already running.

use sea_orm::sea_query::{Alias, Expr, ExprTrait, NullOrdering, Query};
use sea_orm::{Order, QueryOrder, Select};

use super::entities::agent_jobs;

/// Orders `query` (over due jobs) fairly.
pub(super) fn fair_order(query: Select<agent_jobs::Entity>) -> Select<agent_jobs::Entity> {
    let served = Alias::new("served");
    let last_claim = Query::select()
        .expr(Expr::col((served.clone(), agent_jobs::Column::ClaimedAt)).max())
        .from_as(agent_jobs::Entity, served.clone())
        .and_where(
            Expr::col((served, agent_jobs::Column::UserId))
                .equals((agent_jobs::Entity, agent_jobs::Column::UserId)),
        )
        .to_owned();
    query
        .order_by_with_nulls(
            Expr::SubQuery(None, Box::new(last_claim.into())),
            Order::Asc,
            NullOrdering::First,
        )
        .order_by_asc(agent_jobs::Column::CreatedAt)
        .order_by_asc(agent_jobs::Column::Id)
}
