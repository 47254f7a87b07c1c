//! Listeners (CLB VServers, ALB listeners) and their backends/targets: creation with port
//! uniqueness and the optional default certificate, listing, patching and cascading delete.

use super::bindings;
use super::codec::{decode_attrs, encode_attrs, limit_offset, now};
use super::lookup::{
    fresh_id, listener, listener_on, load_balancer, not_found, project_pk, ListenerRow,
};
use super::views::{self, Selection};
use crate::model::{Backend, LbKind, Listener, Scope};
use crate::store::{
    BackendPatch, ListenerPatch, ListenerView, NewBackend, NewListener, Page, Paging, Resource,
    StoreError, StoreResult,
};
use rusqlite::{named_params, params, Connection, OptionalExtension};

fn listener_prefix(kind: LbKind) -> &'static str {
    match kind {
        LbKind::Clb => "vserver",
        LbKind::Alb => "als",
    }
}

fn backend_prefix(kind: LbKind) -> &'static str {
    match kind {
        LbKind::Clb => "backend",
        LbKind::Alb => "rs",
    }
}

/// Protocols are compared as `HTTPS`; storing them upper-case keeps every comparison exact.
fn normalize_protocol(protocol: &str) -> String {
    protocol.to_ascii_uppercase()
}

pub(super) fn create(
    conn: &Connection,
    scope: &Scope,
    kind: LbKind,
    lb_id: &str,
    new: NewListener,
) -> StoreResult<Listener> {
    let lb = load_balancer(conn, scope, lb_id, Some(kind))?;
    // Checked before the insert so the error can name the listener holding the port; the unique
    // index `listeners_port` still backs it up.
    let holder: Option<String> = conn
        .prepare_cached("SELECT id FROM listeners WHERE lb_pk = ?1 AND port = ?2")?
        .query_row(params![lb.pk, new.port], |row| row.get(0))
        .optional()?;
    if let Some(listener_id) = holder {
        return Err(StoreError::PortInUse {
            port: new.port,
            listener_id,
        });
    }
    let id = fresh_id(conn, "listeners", listener_prefix(kind))?;
    let protocol = normalize_protocol(&new.protocol);
    let created_at = now();
    conn.prepare_cached(
        "INSERT INTO listeners (id, lb_pk, name, protocol, port, attrs, created_at)
         VALUES (:id, :lb_pk, :name, :protocol, :port, :attrs, :created_at)",
    )?
    .execute(named_params! {
        ":id": id,
        ":lb_pk": lb.pk,
        ":name": new.name,
        ":protocol": protocol,
        ":port": new.port,
        ":attrs": encode_attrs(&new.attrs),
        ":created_at": created_at,
    })?;
    if let Some(ssl_id) = &new.default_certificate {
        let row = ListenerRow {
            pk: conn.last_insert_rowid(),
            id: id.clone(),
            lb_pk: lb.pk,
            kind,
            protocol: protocol.clone(),
        };
        bindings::set_primary(conn, scope, &row, ssl_id)?;
    }
    Ok(Listener {
        id,
        lb_id: lb_id.to_string(),
        kind,
        name: new.name,
        protocol,
        port: new.port,
        created_at,
        attrs: new.attrs,
    })
}

pub(super) fn list(
    conn: &Connection,
    scope: &Scope,
    kind: LbKind,
    lb_id: Option<&str>,
    listener_id: Option<&str>,
    paging: Paging,
) -> StoreResult<Page<ListenerView>> {
    let (pks, total) = match (listener_id, lb_id) {
        (Some(listener_id), _) => {
            let found = listener(conn, scope, listener_id)?;
            if found.kind != kind {
                return Err(not_found(Resource::Listener, listener_id));
            }
            let pks: Vec<i64> = std::iter::once(found.pk)
                .skip(paging.offset)
                .take(paging.limit)
                .collect();
            (pks, 1)
        }
        (None, Some(lb_id)) => {
            let lb = load_balancer(conn, scope, lb_id, Some(kind))?;
            let total: i64 = conn
                .prepare_cached("SELECT COUNT(*) FROM listeners WHERE lb_pk = ?1")?
                .query_row([lb.pk], |row| row.get(0))?;
            let (limit, offset) = limit_offset(paging);
            let pks = conn
                .prepare_cached(
                    "SELECT pk FROM listeners WHERE lb_pk = ?1 ORDER BY pk LIMIT ?2 OFFSET ?3",
                )?
                .query_map([lb.pk, limit, offset], |row| row.get(0))?
                .collect::<Result<Vec<i64>, _>>()?;
            (pks, usize::try_from(total).unwrap_or(0))
        }
        // Neither given: every listener of the family in the scope.
        (None, None) => {
            let Some(project_pk) = project_pk(conn, scope)? else {
                return Ok(Page {
                    items: Vec::new(),
                    total: 0,
                });
            };
            let all = conn
                .prepare_cached(
                    "SELECT l.pk FROM listeners l JOIN load_balancers lb ON lb.pk = l.lb_pk
                     WHERE lb.project_pk = ?1 AND lb.region = ?2 AND lb.kind = ?3
                     ORDER BY l.pk",
                )?
                .query_map(params![project_pk, scope.region, kind.as_str()], |row| {
                    row.get(0)
                })?
                .collect::<Result<Vec<i64>, _>>()?;
            let total = all.len();
            (
                all.into_iter()
                    .skip(paging.offset)
                    .take(paging.limit)
                    .collect(),
                total,
            )
        }
    };
    Ok(Page {
        items: views::load(conn, Selection::Pks(&pks))?,
        total,
    })
}

/// Patches a listener. A listener that stops being HTTPS loses its certificates (only HTTPS
/// listeners carry any); `default_certificate` then is refused with `NotHttps`.
pub(super) fn update(
    conn: &Connection,
    scope: &Scope,
    kind: LbKind,
    lb_id: &str,
    listener_id: &str,
    patch: ListenerPatch,
) -> StoreResult<()> {
    let mut row = listener_on(conn, scope, kind, lb_id, listener_id)?;
    let attrs = if patch.attrs.is_empty() {
        None
    } else {
        let current: String = conn
            .prepare_cached("SELECT attrs FROM listeners WHERE pk = ?1")?
            .query_row([row.pk], |r| r.get(0))?;
        let mut merged = decode_attrs(&current);
        merged.extend(patch.attrs);
        Some(encode_attrs(&merged))
    };
    if let Some(protocol) = &patch.protocol {
        row.protocol = normalize_protocol(protocol);
    }
    conn.prepare_cached(
        "UPDATE listeners SET name = COALESCE(?1, name), protocol = ?2,
             attrs = COALESCE(?3, attrs)
         WHERE pk = ?4",
    )?
    .execute(params![patch.name, row.protocol, attrs, row.pk])?;
    if !row.is_https() {
        bindings::clear(conn, row.pk)?;
    }
    if let Some(ssl_id) = &patch.default_certificate {
        bindings::set_primary(conn, scope, &row, ssl_id)?;
    }
    Ok(())
}

pub(super) fn delete(
    conn: &Connection,
    scope: &Scope,
    kind: LbKind,
    lb_id: &str,
    listener_id: &str,
) -> StoreResult<()> {
    let row = listener_on(conn, scope, kind, lb_id, listener_id)?;
    // Backends and bindings follow through ON DELETE CASCADE.
    conn.prepare_cached("DELETE FROM listeners WHERE pk = ?1")?
        .execute([row.pk])?;
    Ok(())
}

pub(super) fn add_backends(
    conn: &Connection,
    scope: &Scope,
    kind: LbKind,
    lb_id: &str,
    listener_id: &str,
    new: Vec<NewBackend>,
) -> StoreResult<Vec<Backend>> {
    let row = listener_on(conn, scope, kind, lb_id, listener_id)?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO backends (id, listener_pk, ip, port, weight, enabled, attrs, created_at)
         VALUES (:id, :listener_pk, :ip, :port, :weight, :enabled, :attrs, :created_at)",
    )?;
    let created_at = now();
    let mut added = Vec::with_capacity(new.len());
    for backend in new {
        let id = fresh_id(conn, "backends", backend_prefix(kind))?;
        insert.execute(named_params! {
            ":id": id,
            ":listener_pk": row.pk,
            ":ip": backend.ip,
            ":port": backend.port,
            ":weight": backend.weight,
            ":enabled": backend.enabled,
            ":attrs": encode_attrs(&backend.attrs),
            ":created_at": created_at,
        })?;
        added.push(Backend {
            id,
            listener_id: listener_id.to_string(),
            ip: backend.ip,
            port: backend.port,
            weight: backend.weight,
            enabled: backend.enabled,
            created_at,
            attrs: backend.attrs,
        });
    }
    Ok(added)
}

pub(super) fn remove_backends(
    conn: &Connection,
    scope: &Scope,
    kind: LbKind,
    lb_id: &str,
    listener_id: &str,
    backend_ids: &[String],
) -> StoreResult<()> {
    let row = listener_on(conn, scope, kind, lb_id, listener_id)?;
    let mut delete =
        conn.prepare_cached("DELETE FROM backends WHERE id = ?1 AND listener_pk = ?2")?;
    let mut seen: Vec<&str> = Vec::with_capacity(backend_ids.len());
    for id in backend_ids {
        // Naming a backend twice removes it once.
        if seen.contains(&id.as_str()) {
            continue;
        }
        seen.push(id);
        if delete.execute(params![id, row.pk])? == 0 {
            return Err(not_found(Resource::Backend, id));
        }
    }
    Ok(())
}

pub(super) fn update_backends(
    conn: &Connection,
    scope: &Scope,
    kind: LbKind,
    lb_id: &str,
    listener_id: &str,
    patches: Vec<BackendPatch>,
) -> StoreResult<()> {
    let row = listener_on(conn, scope, kind, lb_id, listener_id)?;
    for patch in patches {
        let current: String = conn
            .prepare_cached("SELECT attrs FROM backends WHERE id = ?1 AND listener_pk = ?2")?
            .query_row(params![patch.id, row.pk], |r| r.get(0))
            .optional()?
            .ok_or_else(|| not_found(Resource::Backend, &patch.id))?;
        let attrs = (!patch.attrs.is_empty()).then(|| {
            let mut merged = decode_attrs(&current);
            merged.extend(patch.attrs);
            encode_attrs(&merged)
        });
        conn.prepare_cached(
            "UPDATE backends SET port = COALESCE(?1, port), weight = COALESCE(?2, weight),
                 enabled = COALESCE(?3, enabled), attrs = COALESCE(?4, attrs)
             WHERE id = ?5 AND listener_pk = ?6",
        )?
        .execute(params![
            patch.port,
            patch.weight,
            patch.enabled,
            attrs,
            patch.id,
            row.pk
        ])?;
    }
    Ok(())
}

/// `ids` given: those listeners (unknown ones skipped); else every listener in the store.
pub(super) fn dataplane(
    conn: &Connection,
    ids: Option<&[String]>,
) -> StoreResult<Vec<ListenerView>> {
    match ids {
        None => views::load(conn, Selection::All),
        Some(ids) => {
            let pks = conn
                .prepare_cached(
                    "SELECT pk FROM listeners WHERE id IN (SELECT value FROM json_each(?1))",
                )?
                .query_map([views::json_ids(ids)], |row| row.get::<_, i64>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            views::load(conn, Selection::Pks(&pks))
        }
    }
}
