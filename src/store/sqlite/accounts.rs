//! Accounts, projects and API keys: creation and the key lookup behind signature checks.

use super::codec::{now, open_text, random_private_key, random_public_key};
use super::lookup::{fresh_id, not_found};
use crate::model::Credentials;
use crate::secret::MasterKey;
use crate::store::{KeyRecord, Resource, StoreError, StoreResult};
use rusqlite::{params, Connection, OptionalExtension};

/// The AAD a private key is sealed under: binds the ciphertext to its public key, so swapping two
/// rows' sealed keys makes both fail to open instead of authenticating the wrong caller.
fn key_aad(public_key: &str) -> String {
    format!("key/{public_key}")
}

fn account_pk(conn: &Connection, name: &str) -> StoreResult<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT pk FROM accounts WHERE name = ?1")?
        .query_row([name], |row| row.get(0))
        .optional()?)
}

fn require_account(conn: &Connection, name: &str) -> StoreResult<i64> {
    account_pk(conn, name)?.ok_or_else(|| not_found(Resource::Account, name))
}

fn insert_project(
    conn: &Connection,
    account_pk: i64,
    name: &str,
    is_default: bool,
) -> StoreResult<String> {
    let id = fresh_id(conn, "projects", "org")?;
    conn.prepare_cached(
        "INSERT INTO projects (id, account_pk, name, is_default, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![id, account_pk, name, is_default, now()])?;
    Ok(id)
}

/// Inserts a key and returns its public and private halves.
fn insert_key(
    conn: &Connection,
    master: &MasterKey,
    account_pk: i64,
    is_main: bool,
) -> StoreResult<(String, String)> {
    let public_key = random_public_key();
    let private_key = random_private_key();
    let sealed = master.seal(&key_aad(&public_key), private_key.as_bytes());
    conn.prepare_cached(
        "INSERT INTO api_keys (public_key, account_pk, private_key_sealed, is_main, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![public_key, account_pk, sealed, is_main, now()])?;
    Ok((public_key, private_key))
}

fn default_project_id(conn: &Connection, account_pk: i64) -> StoreResult<String> {
    Ok(conn
        .prepare_cached("SELECT id FROM projects WHERE account_pk = ?1 AND is_default = 1")?
        .query_row([account_pk], |row| row.get(0))?)
}

pub(super) fn create_account(
    conn: &Connection,
    master: &MasterKey,
    name: &str,
) -> StoreResult<Credentials> {
    if account_pk(conn, name)?.is_some() {
        return Err(StoreError::AccountExists(name.to_string()));
    }
    conn.prepare_cached("INSERT INTO accounts (name, created_at) VALUES (?1, ?2)")?
        .execute(params![name, now()])?;
    let account_pk = conn.last_insert_rowid();
    let project_id = insert_project(conn, account_pk, "Default", true)?;
    let (public_key, private_key) = insert_key(conn, master, account_pk, true)?;
    Ok(Credentials {
        account_name: name.to_string(),
        public_key,
        private_key,
        project_id,
    })
}

pub(super) fn create_main_key(
    conn: &Connection,
    master: &MasterKey,
    account_name: &str,
) -> StoreResult<Credentials> {
    let account_pk = require_account(conn, account_name)?;
    let (public_key, private_key) = insert_key(conn, master, account_pk, true)?;
    Ok(Credentials {
        account_name: account_name.to_string(),
        public_key,
        private_key,
        project_id: default_project_id(conn, account_pk)?,
    })
}

pub(super) fn account_exists(conn: &Connection, name: &str) -> StoreResult<bool> {
    Ok(account_pk(conn, name)?.is_some())
}

pub(super) fn create_project(
    conn: &Connection,
    account_name: &str,
    project_name: &str,
) -> StoreResult<String> {
    let account_pk = require_account(conn, account_name)?;
    insert_project(conn, account_pk, project_name, false)
}

pub(super) fn create_sub_key(
    conn: &Connection,
    master: &MasterKey,
    account_name: &str,
    projects: &[String],
) -> StoreResult<Credentials> {
    let account_pk = require_account(conn, account_name)?;
    let mut project_pks = Vec::with_capacity(projects.len().max(1));
    if projects.is_empty() {
        project_pks.push(
            conn.prepare_cached(
                "SELECT pk FROM projects WHERE account_pk = ?1 AND is_default = 1",
            )?
            .query_row([account_pk], |row| row.get::<_, i64>(0))?,
        );
    }
    for project_id in projects {
        // Another account's project is refused exactly like an unknown one.
        let pk: i64 = conn
            .prepare_cached("SELECT pk FROM projects WHERE id = ?1 AND account_pk = ?2")?
            .query_row(params![project_id, account_pk], |row| row.get(0))
            .optional()?
            .ok_or_else(|| not_found(Resource::Project, project_id))?;
        if !project_pks.contains(&pk) {
            project_pks.push(pk);
        }
    }
    let (public_key, private_key) = insert_key(conn, master, account_pk, false)?;
    let mut grant = conn
        .prepare_cached("INSERT INTO api_key_projects (public_key, project_pk) VALUES (?1, ?2)")?;
    for pk in &project_pks {
        grant.execute(params![public_key, pk])?;
    }
    let (_, default_project) = key_projects(conn, &public_key, account_pk, false)?;
    Ok(Credentials {
        account_name: account_name.to_string(),
        public_key,
        private_key,
        project_id: default_project,
    })
}

/// The projects a key may use, in creation order, and the one it defaults to: the account's
/// default project when the key may use it, else the oldest granted project (a sub key limited to
/// other projects must not default to one it cannot touch).
fn key_projects(
    conn: &Connection,
    public_key: &str,
    account_pk: i64,
    is_main: bool,
) -> StoreResult<(Vec<String>, String)> {
    let mut statement = if is_main {
        conn.prepare_cached(
            // ?1 (the key) is bound but unused: main keys reach every project of the account.
            "SELECT id, is_default FROM projects WHERE account_pk = ?2 ORDER BY pk",
        )?
    } else {
        conn.prepare_cached(
            "SELECT p.id, p.is_default FROM api_key_projects g
             JOIN projects p ON p.pk = g.project_pk
             WHERE g.public_key = ?1 AND p.account_pk = ?2 ORDER BY p.pk",
        )?
    };
    let rows = statement
        .query_map(params![public_key, account_pk], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, bool>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let default = rows
        .iter()
        .find(|(_, is_default)| *is_default)
        .or_else(|| rows.first())
        .map(|(id, _)| id.clone())
        .unwrap_or_default();
    Ok((rows.into_iter().map(|(id, _)| id).collect(), default))
}

pub(super) fn lookup_key(
    conn: &Connection,
    master: &MasterKey,
    public_key: &str,
) -> StoreResult<Option<KeyRecord>> {
    let row = conn
        .prepare_cached(
            "SELECT k.account_pk, a.name, k.private_key_sealed, k.is_main FROM api_keys k
             JOIN accounts a ON a.pk = k.account_pk WHERE k.public_key = ?1",
        )?
        .query_row([public_key], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Vec<u8>>(2)?,
                row.get::<_, bool>(3)?,
            ))
        })
        .optional()?;
    let Some((account_pk, account_name, sealed, is_main)) = row else {
        return Ok(None);
    };
    let private_key = open_text(master, &key_aad(public_key), &sealed)?;
    let (projects, default_project) = key_projects(conn, public_key, account_pk, is_main)?;
    Ok(Some(KeyRecord {
        account_id: account_pk,
        account_name,
        private_key,
        is_main,
        default_project,
        projects,
    }))
}
