//! Listener views (listener + load balancer + bindings + backends) for `Describe*` and the data
//! plane, loaded with three set-wise queries however many listeners are asked for.
//!
//! The bind order in a view is sorted here rather than in SQL: per listener the lists are short,
//! and the queries then need no ORDER BY over the whole table.

use super::codec::{decode_attrs, role_at};
use super::load_balancers::{lb_from_row, LB_COLUMNS};
use crate::model::{Backend, Binding, BindingRole, Listener};
use crate::store::{ListenerView, StoreResult};
use rusqlite::{Connection, Row};
use std::collections::HashMap;

/// Which listeners to load.
pub(super) enum Selection<'a> {
    /// Every listener in the store (data plane start-up and full resync).
    All,
    /// These row keys; unknown keys are skipped.
    Pks(&'a [i64]),
}

/// A list of keys as one JSON array parameter, read back with `json_each`: one statement text and
/// one query whatever the number of keys (10 or 100,000), where an `IN (?, ?, …)` list would need
/// a statement per length or one query per chunk.
pub(super) fn json_keys(keys: &[i64]) -> String {
    let mut out = String::with_capacity(keys.len() * 8 + 2);
    out.push('[');
    for (at, key) in keys.iter().enumerate() {
        if at > 0 {
            out.push(',');
        }
        out.push_str(&key.to_string());
    }
    out.push(']');
    out
}

/// Like `json_keys`, for text ids (escaped, since ids come from requests).
pub(super) fn json_ids(ids: &[String]) -> String {
    let mut out = String::with_capacity(ids.iter().map(|id| id.len() + 3).sum::<usize>() + 2);
    out.push('[');
    for (at, id) in ids.iter().enumerate() {
        if at > 0 {
            out.push(',');
        }
        out.push('"');
        for ch in id.chars() {
            match ch {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push(']');
    out
}

const LISTENER_COLUMNS: &str = "l.pk, l.id, l.name, l.protocol, l.port, l.attrs, l.created_at";

fn view_from_row(row: &Row<'_>) -> rusqlite::Result<(i64, ListenerView)> {
    let lb = lb_from_row(row, 7)?;
    Ok((
        row.get(0)?,
        ListenerView {
            listener: Listener {
                id: row.get(1)?,
                lb_id: lb.id.clone(),
                kind: lb.kind,
                name: row.get(2)?,
                protocol: row.get(3)?,
                port: row.get(4)?,
                attrs: decode_attrs(&row.get::<_, String>(5)?),
                created_at: row.get(6)?,
            },
            lb,
            bindings: Vec::new(),
            backends: Vec::new(),
        },
    ))
}

/// A binding row before it is dressed with its listener's names.
struct BindingRow {
    listener_pk: i64,
    ssl_id: String,
    role: BindingRole,
    seq: i64,
    pk: i64,
}

fn binding_from_row(row: &Row<'_>) -> rusqlite::Result<BindingRow> {
    Ok(BindingRow {
        listener_pk: row.get(0)?,
        ssl_id: row.get(1)?,
        role: role_at(row, 2)?,
        seq: row.get(3)?,
        pk: row.get(4)?,
    })
}

fn backend_from_row(row: &Row<'_>) -> rusqlite::Result<(i64, i64, Backend)> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        Backend {
            id: row.get(2)?,
            listener_id: String::new(),
            ip: row.get(3)?,
            port: row.get(4)?,
            weight: row.get(5)?,
            enabled: row.get(6)?,
            attrs: decode_attrs(&row.get::<_, String>(7)?),
            created_at: row.get(8)?,
        },
    ))
}

/// Listener views in creation order, each with its bindings (default/CLB first, then SNI in bind
/// order) and backends (creation order).
pub(super) fn load(conn: &Connection, selection: Selection<'_>) -> StoreResult<Vec<ListenerView>> {
    let listeners_sql = format!(
        "SELECT {LISTENER_COLUMNS}, {LB_COLUMNS} FROM listeners l
         JOIN load_balancers lb ON lb.pk = l.lb_pk"
    );
    let bindings_sql = "SELECT b.listener_pk, c.id, b.role, b.seq, b.pk FROM bindings b
                        JOIN certificates c ON c.pk = b.ssl_pk";
    let backends_sql = "SELECT listener_pk, pk, id, ip, port, weight, enabled, attrs, created_at
                        FROM backends";
    let (mut views, bindings, backends) = match selection {
        Selection::All => (
            conn.prepare_cached(&listeners_sql)?
                .query_map([], view_from_row)?
                .collect::<Result<Vec<_>, _>>()?,
            conn.prepare_cached(bindings_sql)?
                .query_map([], binding_from_row)?
                .collect::<Result<Vec<_>, _>>()?,
            conn.prepare_cached(backends_sql)?
                .query_map([], backend_from_row)?
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Selection::Pks(pks) => {
            // Distinct keys, or a listener's bindings would be loaded once per repetition.
            let mut keys = pks.to_vec();
            keys.sort_unstable();
            keys.dedup();
            let keys = json_keys(&keys);
            (
                conn.prepare_cached(&format!(
                    "{listeners_sql} WHERE l.pk IN (SELECT value FROM json_each(?1))"
                ))?
                .query_map([&keys], view_from_row)?
                .collect::<Result<Vec<_>, _>>()?,
                conn.prepare_cached(&format!(
                    "{bindings_sql} WHERE b.listener_pk IN (SELECT value FROM json_each(?1))"
                ))?
                .query_map([&keys], binding_from_row)?
                .collect::<Result<Vec<_>, _>>()?,
                conn.prepare_cached(&format!(
                    "{backends_sql} WHERE listener_pk IN (SELECT value FROM json_each(?1))"
                ))?
                .query_map([&keys], backend_from_row)?
                .collect::<Result<Vec<_>, _>>()?,
            )
        }
    };
    views.sort_by_key(|(pk, _)| *pk);
    let index: HashMap<i64, usize> = views
        .iter()
        .enumerate()
        .map(|(at, (pk, _))| (*pk, at))
        .collect();

    let mut bindings = bindings;
    bindings.sort_by_key(|b| (b.listener_pk, b.role == BindingRole::AlbSni, b.seq, b.pk));
    for row in bindings {
        let Some(&at) = index.get(&row.listener_pk) else {
            continue;
        };
        let view = &mut views[at].1;
        view.bindings.push(Binding {
            ssl_id: row.ssl_id,
            listener_id: view.listener.id.clone(),
            listener_name: view.listener.name.clone(),
            lb_id: view.lb.id.clone(),
            lb_name: view.lb.name.clone(),
            lb_kind: view.lb.kind,
            role: row.role,
            seq: row.seq,
        });
    }

    let mut backends = backends;
    backends.sort_by_key(|(listener_pk, pk, _)| (*listener_pk, *pk));
    for (listener_pk, _, mut backend) in backends {
        let Some(&at) = index.get(&listener_pk) else {
            continue;
        };
        let view = &mut views[at].1;
        backend.listener_id = view.listener.id.clone();
        view.backends.push(backend);
    }
    Ok(views.into_iter().map(|(_, view)| view).collect())
}
