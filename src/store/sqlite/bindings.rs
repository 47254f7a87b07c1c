//! Certificate bindings (spec §4.2–§4.4): CLB BindSSL/UnbindSSL, the ALB default certificate,
//! ALB extension (SNI) certificates, and UpdateSSLBinding as one indexed UPDATE.

use super::lookup::{certificate_pk, listener, listener_on, load_balancer, ListenerRow};
use crate::model::{BindingRole, LbKind, Scope};
use crate::store::{BindingChange, BindingScope, StoreError, StoreResult};
use rusqlite::{params, Connection, OptionalExtension};

/// Reserves `count` consecutive bind sequence numbers and returns the first. A counter row (not
/// `MAX(seq)`) keeps numbers monotonic even after the most recent binding is deleted.
fn next_seq(conn: &Connection, count: usize) -> StoreResult<i64> {
    let count = i64::try_from(count).unwrap_or(i64::MAX);
    let last: i64 = conn
        .prepare_cached(
            "UPDATE counters SET value = value + ?1 WHERE name = 'binding_seq' RETURNING value",
        )?
        .query_row([count], |row| row.get(0))?;
    Ok(last - count + 1)
}

fn insert(
    conn: &Connection,
    ssl_pk: i64,
    listener_pk: i64,
    role: BindingRole,
    seq: i64,
) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO bindings (ssl_pk, listener_pk, role, seq) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![ssl_pk, listener_pk, role as i64, seq])?;
    Ok(())
}

/// The role of `ssl_pk` on a listener, if bound there.
fn role_on(conn: &Connection, listener_pk: i64, ssl_pk: i64) -> StoreResult<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT role FROM bindings WHERE listener_pk = ?1 AND ssl_pk = ?2")?
        .query_row([listener_pk, ssl_pk], |row| row.get(0))
        .optional()?)
}

fn not_https(listener: &ListenerRow) -> StoreError {
    StoreError::NotHttps(listener.id.clone())
}

/// Makes `ssl_id` the listener's primary certificate (the CLB certificate or the ALB default),
/// replacing the current one in place. Used by `create_listener` and `update_listener`.
///
/// If the certificate is already an SNI certificate of the same listener the call is refused with
/// `AlreadyBound`: silently promoting it would drop it from the SNI set, and keeping it twice is
/// what the product forbids ("a certificate can be bound to a listener only once").
pub(super) fn set_primary(
    conn: &Connection,
    scope: &Scope,
    listener: &ListenerRow,
    ssl_id: &str,
) -> StoreResult<()> {
    let ssl_pk = certificate_pk(conn, scope, ssl_id)?;
    if !listener.is_https() {
        return Err(not_https(listener));
    }
    let role = match listener.kind {
        LbKind::Clb => BindingRole::Clb,
        LbKind::Alb => BindingRole::AlbDefault,
    };
    let current: Option<(i64, i64)> = conn
        .prepare_cached(
            "SELECT pk, ssl_pk FROM bindings WHERE listener_pk = ?1 AND role IN (0, 1)",
        )?
        .query_row([listener.pk], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    match current {
        Some((_, bound)) if bound == ssl_pk => Ok(()),
        _ if role_on(conn, listener.pk, ssl_pk)?.is_some() => Err(StoreError::AlreadyBound {
            ssl_id: ssl_id.to_string(),
            listener_id: listener.id.clone(),
        }),
        Some((binding_pk, _)) => {
            let seq = next_seq(conn, 1)?;
            conn.prepare_cached("UPDATE bindings SET ssl_pk = ?1, seq = ?2 WHERE pk = ?3")?
                .execute([ssl_pk, seq, binding_pk])?;
            Ok(())
        }
        None => insert(conn, ssl_pk, listener.pk, role, next_seq(conn, 1)?),
    }
}

/// Drops every binding of a listener (it stopped being HTTPS, so no certificate may stay on it).
pub(super) fn clear(conn: &Connection, listener_pk: i64) -> StoreResult<()> {
    conn.prepare_cached("DELETE FROM bindings WHERE listener_pk = ?1")?
        .execute([listener_pk])?;
    Ok(())
}

pub(super) fn bind_clb(
    conn: &Connection,
    scope: &Scope,
    lb_id: &str,
    listener_id: &str,
    ssl_id: &str,
) -> StoreResult<()> {
    let listener = listener_on(conn, scope, LbKind::Clb, lb_id, listener_id)?;
    let ssl_pk = certificate_pk(conn, scope, ssl_id)?;
    if !listener.is_https() {
        return Err(not_https(&listener));
    }
    let existing: Option<String> = conn
        .prepare_cached(
            "SELECT c.id FROM bindings b JOIN certificates c ON c.pk = b.ssl_pk
             WHERE b.listener_pk = ?1 ORDER BY b.seq LIMIT 1",
        )?
        .query_row([listener.pk], |row| row.get(0))
        .optional()?;
    if let Some(existing) = existing {
        return Err(StoreError::VServerAlreadyBound { existing });
    }
    insert(
        conn,
        ssl_pk,
        listener.pk,
        BindingRole::Clb,
        next_seq(conn, 1)?,
    )
}

pub(super) fn unbind_clb(
    conn: &Connection,
    scope: &Scope,
    lb_id: &str,
    listener_id: &str,
    ssl_id: &str,
) -> StoreResult<()> {
    let listener = listener_on(conn, scope, LbKind::Clb, lb_id, listener_id)?;
    let ssl_pk = certificate_pk(conn, scope, ssl_id)?;
    let removed = conn
        .prepare_cached("DELETE FROM bindings WHERE listener_pk = ?1 AND ssl_pk = ?2")?
        .execute([listener.pk, ssl_pk])?;
    if removed == 0 {
        return Err(StoreError::NotBound {
            ssl_id: ssl_id.to_string(),
            listener_id: listener_id.to_string(),
        });
    }
    Ok(())
}

pub(super) fn add_sni(
    conn: &Connection,
    scope: &Scope,
    lb_id: &str,
    listener_id: &str,
    ssl_ids: &[String],
    limit: usize,
) -> StoreResult<()> {
    let listener = listener_on(conn, scope, LbKind::Alb, lb_id, listener_id)?;
    if !listener.is_https() {
        return Err(not_https(&listener));
    }
    let already_bound = |ssl_id: &str| StoreError::AlreadyBound {
        ssl_id: ssl_id.to_string(),
        listener_id: listener_id.to_string(),
    };
    let mut ssl_pks: Vec<i64> = Vec::with_capacity(ssl_ids.len());
    for ssl_id in ssl_ids {
        let ssl_pk = certificate_pk(conn, scope, ssl_id)?;
        if ssl_pks.contains(&ssl_pk) || role_on(conn, listener.pk, ssl_pk)?.is_some() {
            return Err(already_bound(ssl_id));
        }
        ssl_pks.push(ssl_pk);
    }
    let bound: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM bindings WHERE listener_pk = ?1 AND role = 2")?
        .query_row([listener.pk], |row| row.get(0))?;
    if usize::try_from(bound)
        .unwrap_or(usize::MAX)
        .saturating_add(ssl_pks.len())
        > limit
    {
        return Err(StoreError::Quota {
            what: "extension certificates per listener",
            limit,
        });
    }
    if ssl_pks.is_empty() {
        return Ok(());
    }
    // Request order is bind order: the last certificate named wins an SNI tie.
    let first_seq = next_seq(conn, ssl_pks.len())?;
    for (seq, ssl_pk) in (first_seq..).zip(ssl_pks) {
        insert(conn, ssl_pk, listener.pk, BindingRole::AlbSni, seq)?;
    }
    Ok(())
}

pub(super) fn delete_sni(
    conn: &Connection,
    scope: &Scope,
    lb_id: &str,
    listener_id: &str,
    ssl_ids: &[String],
) -> StoreResult<()> {
    let listener = listener_on(conn, scope, LbKind::Alb, lb_id, listener_id)?;
    let mut doomed: Vec<i64> = Vec::with_capacity(ssl_ids.len());
    for ssl_id in ssl_ids {
        let ssl_pk = certificate_pk(conn, scope, ssl_id)?;
        // Naming a certificate twice removes it once: the request's intent is a set.
        if doomed.contains(&ssl_pk) {
            continue;
        }
        match role_on(conn, listener.pk, ssl_pk)? {
            None => {
                return Err(StoreError::NotBound {
                    ssl_id: ssl_id.to_string(),
                    listener_id: listener_id.to_string(),
                })
            }
            Some(role) if role != BindingRole::AlbSni as i64 => {
                return Err(StoreError::DefaultCertificate(ssl_id.to_string()))
            }
            Some(_) => doomed.push(ssl_pk),
        }
    }
    let mut delete =
        conn.prepare_cached("DELETE FROM bindings WHERE listener_pk = ?1 AND ssl_pk = ?2")?;
    for ssl_pk in doomed {
        delete.execute([listener.pk, ssl_pk])?;
    }
    Ok(())
}

/// The listener filters of a replacement (`?4` is the load balancer's or listener's row key).
pub(super) const IN_PROJECT: &str = "";
pub(super) const ON_LOAD_BALANCER: &str =
    "AND listener_pk IN (SELECT pk FROM listeners WHERE lb_pk = ?4)";
pub(super) const ON_LISTENER: &str = "AND listener_pk = ?4";

/// The replacement statement: `?1` new certificate, `?2` seq, `?3` old certificate. It returns the
/// affected listener ids from the same pass, instead of a second query over the same rows.
pub(super) fn replace_sql(filter: &str) -> String {
    format!(
        "UPDATE bindings SET ssl_pk = ?1, seq = ?2 WHERE ssl_pk = ?3 {filter}
         RETURNING (SELECT id FROM listeners WHERE pk = bindings.listener_pk)"
    )
}

/// Where a replacement applies, as row keys.
enum Within {
    Project,
    LoadBalancer(i64),
    Listener(i64),
}

/// `UpdateSSLBinding`. Validation is a handful of index probes; the change itself is one
/// `UPDATE … WHERE ssl_pk = ? [AND listener scope]` over `bindings_ssl` (ssl_pk, listener_pk) or
/// `bindings_listener_ssl`, so its cost follows the number of bindings replaced, not the table size.
/// "New is already bound to an affected listener" is detected by the `bindings_listener_ssl` unique
/// index during that same UPDATE instead of by a probe per row beforehand; the statement then
/// aborts and the caller's transaction rolls back, so nothing changes.
pub(super) fn replace(
    conn: &Connection,
    scope: &Scope,
    old: &str,
    new: &str,
    within: &BindingScope,
) -> StoreResult<BindingChange> {
    let old_pk = certificate_pk(conn, scope, old)?;
    let new_pk = certificate_pk(conn, scope, new)?;
    let lb = within
        .lb_id
        .as_deref()
        .map(|lb_id| load_balancer(conn, scope, lb_id, None))
        .transpose()?;
    let listener = within
        .listener_id
        .as_deref()
        .map(|listener_id| listener(conn, scope, listener_id))
        .transpose()?;
    let target = match (lb, listener) {
        (Some(lb), Some(listener)) if listener.lb_pk != lb.pk => {
            return Err(StoreError::ListenerNotOnLb {
                listener_id: listener.id,
                lb_id: within.lb_id.clone().unwrap_or_default(),
            })
        }
        (_, Some(listener)) => Within::Listener(listener.pk),
        (Some(lb), None) => Within::LoadBalancer(lb.pk),
        // Bindings only ever join a certificate and a listener of the same project and region,
        // so every binding of `old` is inside the scope already.
        (None, None) => Within::Project,
    };
    if old_pk == new_pk {
        return Ok(BindingChange::default());
    }
    let seq = next_seq(conn, 1)?;
    let (filter, key) = match target {
        Within::Project => (IN_PROJECT, None),
        Within::LoadBalancer(lb_pk) => (ON_LOAD_BALANCER, Some(lb_pk)),
        Within::Listener(listener_pk) => (ON_LISTENER, Some(listener_pk)),
    };
    let mut statement = conn.prepare_cached(&replace_sql(filter))?;
    let rows = match key {
        Some(key) => statement
            .query_map(params![new_pk, seq, old_pk, key], |row| row.get(0))?
            .collect::<Result<Vec<String>, _>>(),
        None => statement
            .query_map(params![new_pk, seq, old_pk], |row| row.get(0))?
            .collect::<Result<Vec<String>, _>>(),
    };
    match rows {
        Ok(listener_ids) => Ok(BindingChange {
            replaced: listener_ids.len(),
            listener_ids,
            seq,
        }),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            Err(StoreError::AlreadyBound {
                ssl_id: new.to_string(),
                listener_id: conflicting_listener(conn, old_pk, new_pk, filter, key)?,
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// The first listener in the affected set that already has `new_pk`, to name in the error.
fn conflicting_listener(
    conn: &Connection,
    old_pk: i64,
    new_pk: i64,
    filter: &str,
    key: Option<i64>,
) -> StoreResult<String> {
    let sql = format!(
        "SELECT (SELECT id FROM listeners WHERE pk = bindings.listener_pk) FROM bindings
         WHERE ssl_pk = ?3 {filter}
           AND EXISTS (SELECT 1 FROM bindings n WHERE n.listener_pk = bindings.listener_pk
                       AND n.ssl_pk = ?1)
         ORDER BY listener_pk LIMIT 1"
    );
    let mut statement = conn.prepare_cached(&sql)?;
    // ?2 is unused here; binding it keeps the parameter numbering shared with the UPDATE.
    let found = match key {
        Some(key) => statement
            .query_row(params![new_pk, 0, old_pk, key], |row| row.get(0))
            .optional()?,
        None => statement
            .query_row(params![new_pk, 0, old_pk], |row| row.get(0))
            .optional()?,
    };
    Ok(found.unwrap_or_default())
}
