//! Load balancers of both families: address allocation from the pool, scoped listing, patching
//! and cascading delete (listeners, backends and bindings go with the load balancer).

use super::codec::{address_text, decode_attrs, encode_attrs, kind_at, limit_offset, now};
use super::lookup::{fresh_id, load_balancer, project_pk, require_project};
use crate::model::{LbKind, LoadBalancer, Scope};
use crate::store::{
    AddressPool, LoadBalancerPatch, NewLoadBalancer, Page, Paging, StoreError, StoreResult,
};
use rusqlite::{named_params, params, Connection, OptionalExtension, Row};

/// The columns `lb_from_row` reads, qualified with the alias `lb`.
pub(super) const LB_COLUMNS: &str =
    "lb.id, lb.kind, lb.name, lb.tag, lb.remark, lb.address, lb.attrs, lb.created_at";

/// Reads `LB_COLUMNS` starting at column `at`.
pub(super) fn lb_from_row(row: &Row<'_>, at: usize) -> rusqlite::Result<LoadBalancer> {
    Ok(LoadBalancer {
        id: row.get(at)?,
        kind: kind_at(row, at + 1)?,
        name: row.get(at + 2)?,
        tag: row.get(at + 3)?,
        remark: row.get(at + 4)?,
        address: address_text(row.get(at + 5)?),
        attrs: decode_attrs(&row.get::<_, String>(at + 6)?),
        created_at: row.get(at + 7)?,
    })
}

fn id_prefix(kind: LbKind) -> &'static str {
    match kind {
        LbKind::Clb => "ulb",
        LbKind::Alb => "alb",
    }
}

/// The lowest freed address of the pool, else the one above the highest in use; both are single
/// index probes, so allocation stays cheap with any number of load balancers. Only when the pool
/// is full that way (or the operator moved the pool since addresses were handed out) is there a
/// scan for gaps the free list does not know about.
fn allocate_address(conn: &Connection, pool: AddressPool) -> StoreResult<i64> {
    let first = i64::from(u32::from(pool.first));
    let end = (first + i64::from(pool.count)).min(1 << 32);
    let freed: Option<i64> = conn
        .prepare_cached(
            "SELECT address FROM free_addresses WHERE address >= ?1 AND address < ?2
             ORDER BY address LIMIT 1",
        )?
        .query_row([first, end], |row| row.get(0))
        .optional()?;
    if let Some(address) = freed {
        conn.prepare_cached("DELETE FROM free_addresses WHERE address = ?1")?
            .execute([address])?;
        return Ok(address);
    }
    let highest: Option<i64> = conn
        .prepare_cached(
            "SELECT address FROM load_balancers WHERE address >= ?1 AND address < ?2
             ORDER BY address DESC LIMIT 1",
        )?
        .query_row([first, end], |row| row.get(0))
        .optional()?;
    let next = highest.map_or(first, |address| address + 1);
    if next < end {
        return Ok(next);
    }
    let gap: Option<i64> = conn
        .prepare_cached(
            "SELECT ?1 WHERE NOT EXISTS (SELECT 1 FROM load_balancers WHERE address = ?1)
             UNION ALL
             SELECT * FROM (SELECT a.address + 1 FROM load_balancers a
                 WHERE a.address >= ?1 AND a.address + 1 < ?2
                   AND NOT EXISTS (SELECT 1 FROM load_balancers b WHERE b.address = a.address + 1)
                 ORDER BY a.address LIMIT 1)
             LIMIT 1",
        )?
        .query_row([first, end], |row| row.get(0))
        .optional()?;
    gap.filter(|_| first < end)
        .ok_or(StoreError::AddressPoolExhausted)
}

pub(super) fn create(
    conn: &Connection,
    scope: &Scope,
    pool: AddressPool,
    new: NewLoadBalancer,
) -> StoreResult<LoadBalancer> {
    let project_pk = require_project(conn, scope)?;
    let address = allocate_address(conn, pool)?;
    let id = fresh_id(conn, "load_balancers", id_prefix(new.kind))?;
    let created_at = now();
    conn.prepare_cached(
        "INSERT INTO load_balancers (id, kind, project_pk, region, name, tag, remark, address,
             attrs, created_at)
         VALUES (:id, :kind, :project_pk, :region, :name, :tag, :remark, :address, :attrs,
             :created_at)",
    )?
    .execute(named_params! {
        ":id": id,
        ":kind": new.kind.as_str(),
        ":project_pk": project_pk,
        ":region": scope.region,
        ":name": new.name,
        ":tag": new.tag,
        ":remark": new.remark,
        ":address": address,
        ":attrs": encode_attrs(&new.attrs),
        ":created_at": created_at,
    })?;
    Ok(LoadBalancer {
        id,
        kind: new.kind,
        name: new.name,
        tag: new.tag,
        remark: new.remark,
        address: address_text(address),
        created_at,
        attrs: new.attrs,
    })
}

pub(super) fn list(
    conn: &Connection,
    scope: &Scope,
    kind: LbKind,
    ids: &[String],
    paging: Paging,
) -> StoreResult<Page<LoadBalancer>> {
    let Some(project_pk) = project_pk(conn, scope)? else {
        return Ok(Page {
            items: Vec::new(),
            total: 0,
        });
    };
    if ids.is_empty() {
        let total: i64 = conn
            .prepare_cached(
                "SELECT COUNT(*) FROM load_balancers
                 WHERE project_pk = ?1 AND region = ?2 AND kind = ?3",
            )?
            .query_row(params![project_pk, scope.region, kind.as_str()], |row| {
                row.get(0)
            })?;
        let (limit, offset) = limit_offset(paging);
        let rows = conn
            .prepare_cached(&format!(
                "SELECT {LB_COLUMNS} FROM load_balancers lb
                 WHERE lb.project_pk = ?1 AND lb.region = ?2 AND lb.kind = ?3
                 ORDER BY lb.pk LIMIT ?4 OFFSET ?5"
            ))?
            .query_map(
                params![project_pk, scope.region, kind.as_str(), limit, offset],
                |row| lb_from_row(row, 0),
            )?
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Page {
            items: rows,
            total: usize::try_from(total).unwrap_or(0),
        });
    }
    // Explicit ids: few by nature (request parameters), so one probe each, then creation order.
    let mut statement = conn.prepare_cached(&format!(
        "SELECT lb.pk, {LB_COLUMNS} FROM load_balancers lb
         WHERE lb.id = ?1 AND lb.project_pk = ?2 AND lb.region = ?3 AND lb.kind = ?4"
    ))?;
    let mut found = Vec::new();
    for id in ids {
        let row = statement
            .query_row(
                params![id, project_pk, scope.region, kind.as_str()],
                |row| Ok((row.get::<_, i64>(0)?, lb_from_row(row, 1)?)),
            )
            .optional()?;
        if let Some((pk, lb)) = row {
            if !found.iter().any(|(seen, _)| *seen == pk) {
                found.push((pk, lb));
            }
        }
    }
    found.sort_by_key(|(pk, _)| *pk);
    let total = found.len();
    let items = found
        .into_iter()
        .skip(paging.offset)
        .take(paging.limit)
        .map(|(_, lb)| lb)
        .collect();
    Ok(Page { items, total })
}

pub(super) fn update(
    conn: &Connection,
    scope: &Scope,
    kind: LbKind,
    lb_id: &str,
    patch: LoadBalancerPatch,
) -> StoreResult<()> {
    let lb = load_balancer(conn, scope, lb_id, Some(kind))?;
    let attrs = if patch.attrs.is_empty() {
        None
    } else {
        let current: String = conn
            .prepare_cached("SELECT attrs FROM load_balancers WHERE pk = ?1")?
            .query_row([lb.pk], |row| row.get(0))?;
        let mut merged = decode_attrs(&current);
        merged.extend(patch.attrs);
        Some(encode_attrs(&merged))
    };
    conn.prepare_cached(
        "UPDATE load_balancers SET name = COALESCE(?1, name), tag = COALESCE(?2, tag),
             remark = COALESCE(?3, remark), attrs = COALESCE(?4, attrs)
         WHERE pk = ?5",
    )?
    .execute(params![patch.name, patch.tag, patch.remark, attrs, lb.pk])?;
    Ok(())
}

pub(super) fn delete(
    conn: &Connection,
    scope: &Scope,
    kind: LbKind,
    lb_id: &str,
) -> StoreResult<Vec<String>> {
    let lb = load_balancer(conn, scope, lb_id, Some(kind))?;
    let listener_ids = conn
        .prepare_cached("SELECT id FROM listeners WHERE lb_pk = ?1 ORDER BY pk")?
        .query_map([lb.pk], |row| row.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    // Listeners, their backends and bindings follow through ON DELETE CASCADE.
    conn.prepare_cached("DELETE FROM load_balancers WHERE pk = ?1")?
        .execute([lb.pk])?;
    conn.prepare_cached("INSERT OR IGNORE INTO free_addresses (address) VALUES (?1)")?
        .execute([lb.address])?;
    Ok(listener_ids)
}
