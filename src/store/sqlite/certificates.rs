//! Certificates: sealed storage, scoped listing with their bindings, rename, guarded delete and
//! the decrypted material the data plane asks for.

use super::codec::{decode_names, encode_names, kind_at, limit_offset, now, open_text, role_at};
use super::lookup::{certificate_pk, fresh_id, not_found, project_pk, require_project};
use crate::model::{Binding, Certificate, Scope};
use crate::secret::MasterKey;
use crate::store::{
    CertificateMaterial, CertificateView, NewCertificate, Page, Paging, Resource, StoreError,
    StoreResult,
};
use rusqlite::{named_params, params, Connection, OptionalExtension, Row};

/// AADs bind each sealed column to its certificate and purpose, so a sealed key cannot be passed
/// off as another certificate's key or as SSLContent.
fn content_aad(ssl_id: &str) -> String {
    format!("{ssl_id}/content")
}

fn key_aad(ssl_id: &str) -> String {
    format!("{ssl_id}/key")
}

pub(super) fn create(
    conn: &Connection,
    master: &MasterKey,
    scope: &Scope,
    new: NewCertificate,
) -> StoreResult<Certificate> {
    let project_pk = require_project(conn, scope)?;
    let id = fresh_id(conn, "certificates", "ssl")?;
    let created_at = now();
    let content_sealed = master.seal(&content_aad(&id), new.content.as_bytes());
    let key_sealed = master.seal(&key_aad(&id), new.key_pem.as_bytes());
    conn.prepare_cached(
        "INSERT INTO certificates (id, project_pk, region, name, content_sealed, key_sealed,
             chain_pem, hash_value, domains, dns_names, not_before, not_after, created_at)
         VALUES (:id, :project_pk, :region, :name, :content_sealed, :key_sealed, :chain_pem,
             :hash_value, :domains, :dns_names, :not_before, :not_after, :created_at)",
    )?
    .execute(named_params! {
        ":id": id,
        ":project_pk": project_pk,
        ":region": scope.region,
        ":name": new.name,
        ":content_sealed": content_sealed,
        ":key_sealed": key_sealed,
        ":chain_pem": new.chain_pem,
        ":hash_value": new.hash_value,
        ":domains": new.domains,
        ":dns_names": encode_names(&new.dns_names),
        ":not_before": new.not_before,
        ":not_after": new.not_after,
        ":created_at": created_at,
    })?;
    Ok(Certificate {
        id,
        name: new.name,
        hash_value: new.hash_value,
        domains: new.domains,
        dns_names: new.dns_names,
        not_before: new.not_before,
        not_after: new.not_after,
        created_at,
    })
}

const CERTIFICATE_COLUMNS: &str = "pk, id, name, hash_value, domains, dns_names, not_before, \
                                   not_after, created_at, content_sealed";

struct CertificateRow {
    pk: i64,
    certificate: Certificate,
    content_sealed: Vec<u8>,
}

fn certificate_row(row: &Row<'_>) -> rusqlite::Result<CertificateRow> {
    Ok(CertificateRow {
        pk: row.get(0)?,
        certificate: Certificate {
            id: row.get(1)?,
            name: row.get(2)?,
            hash_value: row.get(3)?,
            domains: row.get(4)?,
            dns_names: decode_names(&row.get::<_, String>(5)?),
            not_before: row.get(6)?,
            not_after: row.get(7)?,
            created_at: row.get(8)?,
        },
        content_sealed: row.get(9)?,
    })
}

pub(super) fn describe(
    conn: &Connection,
    master: &MasterKey,
    scope: &Scope,
    ssl_id: Option<&str>,
    paging: Paging,
) -> StoreResult<Page<CertificateView>> {
    let empty = Page {
        items: Vec::new(),
        total: 0,
    };
    let Some(project_pk) = project_pk(conn, scope)? else {
        return Ok(empty);
    };
    let (limit, offset) = limit_offset(paging);
    let (rows, total) = match ssl_id {
        Some(ssl_id) => {
            let row = conn
                .prepare_cached(&format!(
                    "SELECT {CERTIFICATE_COLUMNS} FROM certificates
                     WHERE id = ?1 AND project_pk = ?2 AND region = ?3"
                ))?
                .query_row(params![ssl_id, project_pk, scope.region], certificate_row)
                .optional()?;
            let total = usize::from(row.is_some());
            let rows = row
                .into_iter()
                .skip(paging.offset)
                .take(paging.limit)
                .collect();
            (rows, total)
        }
        None => {
            let total: i64 = conn
                .prepare_cached(
                    "SELECT COUNT(*) FROM certificates WHERE project_pk = ?1 AND region = ?2",
                )?
                .query_row(params![project_pk, scope.region], |row| row.get(0))?;
            let rows = conn
                .prepare_cached(&format!(
                    "SELECT {CERTIFICATE_COLUMNS} FROM certificates
                     WHERE project_pk = ?1 AND region = ?2 ORDER BY pk LIMIT ?3 OFFSET ?4"
                ))?
                .query_map(
                    params![project_pk, scope.region, limit, offset],
                    certificate_row,
                )?
                .collect::<Result<Vec<_>, _>>()?;
            (rows, usize::try_from(total).unwrap_or(0))
        }
    };
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        let content = open_text(
            master,
            &content_aad(&row.certificate.id),
            &row.content_sealed,
        )?;
        let bindings = bindings_of(conn, row.pk, &row.certificate.id)?;
        items.push(CertificateView {
            certificate: row.certificate,
            content,
            bindings,
        });
    }
    Ok(Page { items, total })
}

/// Every binding of one certificate, CLB and ALB, in bind order.
fn bindings_of(conn: &Connection, ssl_pk: i64, ssl_id: &str) -> StoreResult<Vec<Binding>> {
    let mut statement = conn.prepare_cached(
        "SELECT l.id, l.name, lb.id, lb.name, lb.kind, b.role, b.seq FROM bindings b
         JOIN listeners l ON l.pk = b.listener_pk
         JOIN load_balancers lb ON lb.pk = l.lb_pk
         WHERE b.ssl_pk = ?1 ORDER BY b.seq, b.pk",
    )?;
    let bindings = statement
        .query_map([ssl_pk], |row| {
            Ok(Binding {
                ssl_id: ssl_id.to_string(),
                listener_id: row.get(0)?,
                listener_name: row.get(1)?,
                lb_id: row.get(2)?,
                lb_name: row.get(3)?,
                lb_kind: kind_at(row, 4)?,
                role: role_at(row, 5)?,
                seq: row.get(6)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(bindings)
}

pub(super) fn rename(
    conn: &Connection,
    scope: &Scope,
    ssl_id: &str,
    name: &str,
) -> StoreResult<()> {
    let pk = certificate_pk(conn, scope, ssl_id)?;
    conn.prepare_cached("UPDATE certificates SET name = ?1 WHERE pk = ?2")?
        .execute(params![name, pk])?;
    Ok(())
}

pub(super) fn delete(conn: &Connection, scope: &Scope, ssl_id: &str) -> StoreResult<()> {
    let pk = certificate_pk(conn, scope, ssl_id)?;
    let bound: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM bindings WHERE ssl_pk = ?1)")?
        .query_row([pk], |row| row.get(0))?;
    if bound {
        return Err(StoreError::CertificateInUse(ssl_id.to_string()));
    }
    // ON DELETE RESTRICT is the backstop should a binding ever slip past the check above.
    match conn
        .prepare_cached("DELETE FROM certificates WHERE pk = ?1")?
        .execute([pk])
    {
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
        {
            Err(StoreError::CertificateInUse(ssl_id.to_string()))
        }
        other => other.map(drop).map_err(StoreError::from),
    }
}

pub(super) fn material(
    conn: &Connection,
    master: &MasterKey,
    ssl_id: &str,
) -> StoreResult<CertificateMaterial> {
    let (key_sealed, chain_pem): (Vec<u8>, String) = conn
        .prepare_cached("SELECT key_sealed, chain_pem FROM certificates WHERE id = ?1")?
        .query_row([ssl_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?
        .ok_or_else(|| not_found(Resource::Certificate, ssl_id))?;
    Ok(CertificateMaterial {
        chain_pem,
        key_pem: open_text(master, &key_aad(ssl_id), &key_sealed)?,
    })
}
