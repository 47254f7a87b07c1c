//! The embedded SQLite backend of the store: connections, migrations and transactions; the SQL of
//! each resource family lives in its own file, and nothing above `store` sees any of it.
//!
//! One writer connection, owned by the writer thread (`writer.rs`), runs the mutating calls
//! inside `BEGIN IMMEDIATE … COMMIT` (the write lock is taken up front, so a call never fails
//! half-way on a lock upgrade, and another process such as the CLI simply waits up to
//! `busy_timeout`). Calls waiting when a transaction starts join it (group commit), each inside
//! its own savepoint: a failed call rolls back to its savepoint and changes nothing, and a call
//! returns only after the transaction holding its change has committed. Reads run on a small pool of reader connections inside a
//! deferred transaction: in WAL mode they see one consistent snapshot and never wait for the
//! writer.

mod accounts;
mod bindings;
mod certificates;
mod codec;
mod listeners;
mod load_balancers;
mod lookup;
mod views;
mod writer;

#[cfg(test)]
mod tests;

use crate::model::{Backend, Certificate, Credentials, LbKind, Listener, LoadBalancer, Scope};
use crate::secret::MasterKey;
use crate::store::{
    AddressPool, BackendPatch, BindingChange, BindingScope, CertificateMaterial, CertificateView,
    KeyRecord, ListenerPatch, ListenerView, LoadBalancerPatch, NewBackend, NewCertificate,
    NewListener, NewLoadBalancer, Page, Paging, Store, StoreError, StoreResult,
};
use anyhow::Context;
use rusqlite::{Connection, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use writer::WriterHandle;

/// Schema migrations in order; `PRAGMA user_version` counts how many are applied.
const MIGRATIONS: &[&str] = &[include_str!("../../../migrations/sqlite/0001_init.sql")];

/// Idle reader connections kept for reuse; more are opened on demand under load.
const IDLE_READERS: usize = 4;

/// How long a connection waits for another connection's (or process's) lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_millis(5000);

/// Distinct statements per connection are a few dozen; the default cache of 16 would thrash.
const STATEMENT_CACHE: usize = 128;

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        StoreError::Backend(error.into())
    }
}

/// The `Store` on one SQLite file.
pub struct SqliteStore {
    writer: WriterHandle,
    readers: Mutex<Vec<Connection>>,
    path: PathBuf,
    master: Arc<MasterKey>,
    pool: AddressPool,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Opens a connection with the pragmas every connection needs. `foreign_keys` and `synchronous`
/// are per connection; `journal_mode=WAL` is persistent, so setting it again is a cheap no-op.
fn connect(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open(path).with_context(|| format!("open {}", path.display()))?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    anyhow::ensure!(
        mode.eq_ignore_ascii_case("wal"),
        "{}: journal_mode is {mode}, WAL is required",
        path.display()
    );
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Applies the missing migrations in one `BEGIN IMMEDIATE` transaction. The version is read after
/// the write lock is held, so two processes opening a fresh file at once apply each migration once.
fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let applied: usize = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    anyhow::ensure!(
        applied <= MIGRATIONS.len(),
        "database schema version {applied} is newer than this binary knows ({})",
        MIGRATIONS.len()
    );
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        tx.execute_batch(sql)
            .with_context(|| format!("apply migration {}", index + 1))?;
    }
    if applied < MIGRATIONS.len() {
        tx.pragma_update(None, "user_version", MIGRATIONS.len())?;
        tracing::info!(
            from = applied,
            to = MIGRATIONS.len(),
            "migrated the store schema"
        );
    }
    tx.commit()?;
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database at `path`. Safe while another process
    /// has the same file open.
    pub fn open(path: &Path, master: MasterKey, pool: AddressPool) -> anyhow::Result<SqliteStore> {
        let mut writer = connect(path)?;
        migrate(&mut writer).with_context(|| format!("migrate {}", path.display()))?;
        Ok(SqliteStore {
            writer: WriterHandle::start(writer).context("start the writer thread")?,
            readers: Mutex::new(Vec::new()),
            path: path.to_path_buf(),
            master: Arc::new(master),
            pool,
        })
    }

    /// A poisoned lock only means another call panicked; its transaction was rolled back when the
    /// `Transaction` dropped during unwinding, so the connection is clean to use.
    fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
        mutex
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `body` as one atomic change on the writer thread (group commit, see `writer`).
    fn write<T: Send + 'static>(
        &self,
        body: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.writer.write(body)
    }

    /// Runs `body` on a reader connection inside one read transaction (one snapshot).
    fn read<T>(&self, body: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let idle = Self::lock(&self.readers).pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => {
                let conn = connect(&self.path).map_err(StoreError::Backend)?;
                // A reader must never write: a bug there fails loudly instead of racing the writer.
                conn.pragma_update(None, "query_only", "ON")?;
                conn
            }
        };
        let value = {
            let tx = conn.transaction()?;
            let value = body(&tx);
            // Ending a read-only transaction: rollback and commit are equivalent.
            tx.rollback()?;
            value
        };
        let mut readers = Self::lock(&self.readers);
        if readers.len() < IDLE_READERS {
            readers.push(conn);
        }
        value
    }
}

// === impl Store ===

impl Store for SqliteStore {
    fn create_account(&self, name: &str) -> StoreResult<Credentials> {
        let (master, name) = (self.master.clone(), name.to_owned());
        self.write(move |conn| accounts::create_account(conn, &master, &name))
    }

    fn create_main_key(&self, account_name: &str) -> StoreResult<Credentials> {
        let (master, account) = (self.master.clone(), account_name.to_owned());
        self.write(move |conn| accounts::create_main_key(conn, &master, &account))
    }

    fn account_exists(&self, name: &str) -> StoreResult<bool> {
        self.read(|conn| accounts::account_exists(conn, name))
    }

    fn create_project(&self, account_name: &str, project_name: &str) -> StoreResult<String> {
        let (account, project) = (account_name.to_owned(), project_name.to_owned());
        self.write(move |conn| accounts::create_project(conn, &account, &project))
    }

    fn create_sub_key(&self, account_name: &str, projects: &[String]) -> StoreResult<Credentials> {
        let (master, account, projects) = (
            self.master.clone(),
            account_name.to_owned(),
            projects.to_vec(),
        );
        self.write(move |conn| accounts::create_sub_key(conn, &master, &account, &projects))
    }

    fn lookup_key(&self, public_key: &str) -> StoreResult<Option<KeyRecord>> {
        self.read(|conn| accounts::lookup_key(conn, &self.master, public_key))
    }

    fn create_certificate(&self, scope: &Scope, new: NewCertificate) -> StoreResult<Certificate> {
        let (master, scope) = (self.master.clone(), scope.clone());
        self.write(move |conn| certificates::create(conn, &master, &scope, new))
    }

    fn describe_certificates(
        &self,
        scope: &Scope,
        ssl_id: Option<&str>,
        paging: Paging,
    ) -> StoreResult<Page<CertificateView>> {
        self.read(|conn| certificates::describe(conn, &self.master, scope, ssl_id, paging))
    }

    fn rename_certificate(&self, scope: &Scope, ssl_id: &str, name: &str) -> StoreResult<()> {
        let (scope, ssl_id, name) = (scope.clone(), ssl_id.to_owned(), name.to_owned());
        self.write(move |conn| certificates::rename(conn, &scope, &ssl_id, &name))
    }

    fn delete_certificate(&self, scope: &Scope, ssl_id: &str) -> StoreResult<()> {
        let (scope, ssl_id) = (scope.clone(), ssl_id.to_owned());
        self.write(move |conn| certificates::delete(conn, &scope, &ssl_id))
    }

    fn certificate_material(&self, ssl_id: &str) -> StoreResult<CertificateMaterial> {
        self.read(|conn| certificates::material(conn, &self.master, ssl_id))
    }

    fn create_load_balancer(
        &self,
        scope: &Scope,
        new: NewLoadBalancer,
    ) -> StoreResult<LoadBalancer> {
        let (scope, pool) = (scope.clone(), self.pool);
        self.write(move |conn| load_balancers::create(conn, &scope, pool, new))
    }

    fn list_load_balancers(
        &self,
        scope: &Scope,
        kind: LbKind,
        ids: &[String],
        paging: Paging,
    ) -> StoreResult<Page<LoadBalancer>> {
        self.read(|conn| load_balancers::list(conn, scope, kind, ids, paging))
    }

    fn update_load_balancer(
        &self,
        scope: &Scope,
        kind: LbKind,
        lb_id: &str,
        patch: LoadBalancerPatch,
    ) -> StoreResult<()> {
        let (scope, lb_id) = (scope.clone(), lb_id.to_owned());
        self.write(move |conn| load_balancers::update(conn, &scope, kind, &lb_id, patch))
    }

    fn delete_load_balancer(
        &self,
        scope: &Scope,
        kind: LbKind,
        lb_id: &str,
    ) -> StoreResult<Vec<String>> {
        let (scope, lb_id) = (scope.clone(), lb_id.to_owned());
        self.write(move |conn| load_balancers::delete(conn, &scope, kind, &lb_id))
    }

    fn create_listener(
        &self,
        scope: &Scope,
        kind: LbKind,
        lb_id: &str,
        new: NewListener,
    ) -> StoreResult<Listener> {
        let (scope, lb_id) = (scope.clone(), lb_id.to_owned());
        self.write(move |conn| listeners::create(conn, &scope, kind, &lb_id, new))
    }

    fn list_listeners(
        &self,
        scope: &Scope,
        kind: LbKind,
        lb_id: Option<&str>,
        listener_id: Option<&str>,
        paging: Paging,
    ) -> StoreResult<Page<ListenerView>> {
        self.read(|conn| listeners::list(conn, scope, kind, lb_id, listener_id, paging))
    }

    fn update_listener(
        &self,
        scope: &Scope,
        kind: LbKind,
        lb_id: &str,
        listener_id: &str,
        patch: ListenerPatch,
    ) -> StoreResult<()> {
        let (scope, lb_id, listener_id) = (scope.clone(), lb_id.to_owned(), listener_id.to_owned());
        self.write(move |conn| listeners::update(conn, &scope, kind, &lb_id, &listener_id, patch))
    }

    fn delete_listener(
        &self,
        scope: &Scope,
        kind: LbKind,
        lb_id: &str,
        listener_id: &str,
    ) -> StoreResult<()> {
        let (scope, lb_id, listener_id) = (scope.clone(), lb_id.to_owned(), listener_id.to_owned());
        self.write(move |conn| listeners::delete(conn, &scope, kind, &lb_id, &listener_id))
    }

    fn add_backends(
        &self,
        scope: &Scope,
        kind: LbKind,
        lb_id: &str,
        listener_id: &str,
        new: Vec<NewBackend>,
    ) -> StoreResult<Vec<Backend>> {
        let (scope, lb_id, listener_id) = (scope.clone(), lb_id.to_owned(), listener_id.to_owned());
        self.write(move |conn| {
            listeners::add_backends(conn, &scope, kind, &lb_id, &listener_id, new)
        })
    }

    fn remove_backends(
        &self,
        scope: &Scope,
        kind: LbKind,
        lb_id: &str,
        listener_id: &str,
        backend_ids: &[String],
    ) -> StoreResult<()> {
        let (scope, lb_id, listener_id) = (scope.clone(), lb_id.to_owned(), listener_id.to_owned());
        let backend_ids = backend_ids.to_vec();
        self.write(move |conn| {
            listeners::remove_backends(conn, &scope, kind, &lb_id, &listener_id, &backend_ids)
        })
    }

    fn update_backends(
        &self,
        scope: &Scope,
        kind: LbKind,
        lb_id: &str,
        listener_id: &str,
        patches: Vec<BackendPatch>,
    ) -> StoreResult<()> {
        let (scope, lb_id, listener_id) = (scope.clone(), lb_id.to_owned(), listener_id.to_owned());
        self.write(move |conn| {
            listeners::update_backends(conn, &scope, kind, &lb_id, &listener_id, patches)
        })
    }

    fn bind_clb(
        &self,
        scope: &Scope,
        lb_id: &str,
        listener_id: &str,
        ssl_id: &str,
    ) -> StoreResult<()> {
        let (scope, lb_id, listener_id, ssl_id) = (
            scope.clone(),
            lb_id.to_owned(),
            listener_id.to_owned(),
            ssl_id.to_owned(),
        );
        self.write(move |conn| bindings::bind_clb(conn, &scope, &lb_id, &listener_id, &ssl_id))
    }

    fn unbind_clb(
        &self,
        scope: &Scope,
        lb_id: &str,
        listener_id: &str,
        ssl_id: &str,
    ) -> StoreResult<()> {
        let (scope, lb_id, listener_id, ssl_id) = (
            scope.clone(),
            lb_id.to_owned(),
            listener_id.to_owned(),
            ssl_id.to_owned(),
        );
        self.write(move |conn| bindings::unbind_clb(conn, &scope, &lb_id, &listener_id, &ssl_id))
    }

    fn add_sni(
        &self,
        scope: &Scope,
        lb_id: &str,
        listener_id: &str,
        ssl_ids: &[String],
        limit: usize,
    ) -> StoreResult<()> {
        let (scope, lb_id, listener_id, ssl_ids) = (
            scope.clone(),
            lb_id.to_owned(),
            listener_id.to_owned(),
            ssl_ids.to_vec(),
        );
        self.write(move |conn| {
            bindings::add_sni(conn, &scope, &lb_id, &listener_id, &ssl_ids, limit)
        })
    }

    fn delete_sni(
        &self,
        scope: &Scope,
        lb_id: &str,
        listener_id: &str,
        ssl_ids: &[String],
    ) -> StoreResult<()> {
        let (scope, lb_id, listener_id, ssl_ids) = (
            scope.clone(),
            lb_id.to_owned(),
            listener_id.to_owned(),
            ssl_ids.to_vec(),
        );
        self.write(move |conn| bindings::delete_sni(conn, &scope, &lb_id, &listener_id, &ssl_ids))
    }

    fn replace_certificate(
        &self,
        scope: &Scope,
        old: &str,
        new: &str,
        within: &BindingScope,
    ) -> StoreResult<BindingChange> {
        let (scope, old, new, within) = (
            scope.clone(),
            old.to_owned(),
            new.to_owned(),
            within.clone(),
        );
        self.write(move |conn| bindings::replace(conn, &scope, &old, &new, &within))
    }

    fn dataplane_listeners(&self, ids: Option<&[String]>) -> StoreResult<Vec<ListenerView>> {
        self.read(|conn| listeners::dataplane(conn, ids))
    }
}
