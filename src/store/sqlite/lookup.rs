//! Resolving ids inside a scope: every lookup joins the owning project and filters by account,
//! project and region, so a resource elsewhere is indistinguishable from an absent one.

use super::codec::kind_at;
use crate::model::{LbKind, Scope};
use crate::store::{Resource, StoreError, StoreResult};
use rusqlite::{named_params, Connection, OptionalExtension};

pub(super) fn not_found(kind: Resource, id: &str) -> StoreError {
    StoreError::NotFound {
        kind,
        id: id.to_string(),
    }
}

/// The row key of the scope's project, if the account owns it.
pub(super) fn project_pk(conn: &Connection, scope: &Scope) -> StoreResult<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT pk FROM projects WHERE id = ?1 AND account_pk = ?2")?
        .query_row(
            rusqlite::params![scope.project_id, scope.account_id],
            |row| row.get(0),
        )
        .optional()?)
}

/// Creating something in a project the account does not own is refused as `NotFound(Project)`.
pub(super) fn require_project(conn: &Connection, scope: &Scope) -> StoreResult<i64> {
    project_pk(conn, scope)?.ok_or_else(|| not_found(Resource::Project, &scope.project_id))
}

/// A certificate's row key by id, in scope.
pub(super) const CERTIFICATE_BY_ID: &str =
    "SELECT c.pk FROM certificates c JOIN projects p ON p.pk = c.project_pk
     WHERE c.id = :id AND c.region = :region AND p.id = :project AND p.account_pk = :account";

pub(super) fn certificate_pk(conn: &Connection, scope: &Scope, ssl_id: &str) -> StoreResult<i64> {
    conn.prepare_cached(CERTIFICATE_BY_ID)?
        .query_row(
            named_params! {
                ":id": ssl_id,
                ":region": scope.region,
                ":project": scope.project_id,
                ":account": scope.account_id,
            },
            |row| row.get(0),
        )
        .optional()?
        .ok_or_else(|| not_found(Resource::Certificate, ssl_id))
}

/// A load balancer in scope.
pub(super) struct LbRow {
    pub pk: i64,
    pub kind: LbKind,
    pub address: i64,
}

/// `kind` given: a load balancer of the other family is `NotFound` too (an `ulb-` id where an
/// ALB is expected must not be acted on).
pub(super) fn load_balancer(
    conn: &Connection,
    scope: &Scope,
    lb_id: &str,
    kind: Option<LbKind>,
) -> StoreResult<LbRow> {
    let row = conn
        .prepare_cached(
            "SELECT lb.pk, lb.kind, lb.address FROM load_balancers lb
             JOIN projects p ON p.pk = lb.project_pk
             WHERE lb.id = :id AND lb.region = :region AND p.id = :project
               AND p.account_pk = :account",
        )?
        .query_row(
            named_params! {
                ":id": lb_id,
                ":region": scope.region,
                ":project": scope.project_id,
                ":account": scope.account_id,
            },
            |row| {
                Ok(LbRow {
                    pk: row.get(0)?,
                    kind: kind_at(row, 1)?,
                    address: row.get(2)?,
                })
            },
        )
        .optional()?;
    match row {
        Some(found) if kind.is_none_or(|wanted| wanted == found.kind) => Ok(found),
        _ => Err(not_found(Resource::LoadBalancer, lb_id)),
    }
}

/// A listener in scope, with what the binding rules need to know about it.
pub(super) struct ListenerRow {
    pub pk: i64,
    pub id: String,
    pub lb_pk: i64,
    pub kind: LbKind,
    pub protocol: String,
}

impl ListenerRow {
    pub fn is_https(&self) -> bool {
        self.protocol == "HTTPS"
    }
}

/// A listener by id, in scope.
pub(super) const LISTENER_BY_ID: &str = "SELECT l.pk, l.lb_pk, lb.kind, l.protocol FROM listeners l
     JOIN load_balancers lb ON lb.pk = l.lb_pk
     JOIN projects p ON p.pk = lb.project_pk
     WHERE l.id = :id AND lb.region = :region AND p.id = :project AND p.account_pk = :account";

/// A listener of either family in scope.
pub(super) fn listener(
    conn: &Connection,
    scope: &Scope,
    listener_id: &str,
) -> StoreResult<ListenerRow> {
    let row = conn
        .prepare_cached(LISTENER_BY_ID)?
        .query_row(
            named_params! {
                ":id": listener_id,
                ":region": scope.region,
                ":project": scope.project_id,
                ":account": scope.account_id,
            },
            |row| {
                Ok(ListenerRow {
                    pk: row.get(0)?,
                    id: listener_id.to_string(),
                    lb_pk: row.get(1)?,
                    kind: kind_at(row, 2)?,
                    protocol: row.get(3)?,
                })
            },
        )
        .optional()?;
    row.ok_or_else(|| not_found(Resource::Listener, listener_id))
}

/// A listener addressed as "`listener_id` on `lb_id`": the load balancer must be of `kind` in
/// scope (`NotFound(LoadBalancer)`), the listener must exist in scope (`NotFound(Listener)`) and
/// sit on that load balancer (`ListenerNotOnLb`).
pub(super) fn listener_on(
    conn: &Connection,
    scope: &Scope,
    kind: LbKind,
    lb_id: &str,
    listener_id: &str,
) -> StoreResult<ListenerRow> {
    let lb = load_balancer(conn, scope, lb_id, Some(kind))?;
    let found = listener(conn, scope, listener_id)?;
    if found.lb_pk != lb.pk {
        return Err(StoreError::ListenerNotOnLb {
            listener_id: listener_id.to_string(),
            lb_id: lb_id.to_string(),
        });
    }
    Ok(found)
}

/// The public id of a fresh row: ids are random, so a clash is astronomically rare but would be a
/// constraint error deep in an insert; drawing again here keeps that path out of every caller.
pub(super) fn fresh_id(
    conn: &Connection,
    table: &'static str,
    prefix: &str,
) -> StoreResult<String> {
    let sql = format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE id = ?1)");
    let mut statement = conn.prepare_cached(&sql)?;
    loop {
        let id = crate::model::new_id(prefix);
        let taken: bool = statement.query_row([&id], |row| row.get(0))?;
        if !taken {
            return Ok(id);
        }
    }
}
