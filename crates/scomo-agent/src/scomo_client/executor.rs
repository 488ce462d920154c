//! The executor: runs each operation step by step, journaling every step
//! before acting on it, and recovers operations after a restart.
//!
//! Recovery rules (what a restarted agent does with an operation found in
//! the journal at each step):
//!
//! | Step | On restart |
//! |---|---|
//! | `accepted` | ask for confirmation again, then go on |
//! | `confirmed` | start the work (download, install, remove, switch) |
//! | `downloading` | resume the `.part` file with `Range` + `If-Range` (a changed object restarts from 0) |
//! | `downloaded` | the package is complete and valid: go on to deliver or install |
//! | `delivering` | move the package into place if not yet moved, (re)write the Delivered entry |
//! | `staging` | discard the staging directory and extract again from the package |
//! | `committing` | roll forward: finish the remaining moves (each is idempotent), record the components |
//! | `activating` | run the hooks of the components not yet activated again |
//! | `rolling-back` | run the (idempotent) rollback again: new versions out, backups back, old states restored |
//! | `removing` | remove again (already-gone files are fine) |
//! | `switching` | run the activate/deactivate hook again |
//! | `finishing` | rewrite Status/State, queue the alert unless the outbox already knows the operation, delete the journal file |
//!
//! Lifecycle hooks and environment programs may thus run twice for one
//! operation after a crash; they must be idempotent.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use ed25519_dalek::VerifyingKey;
use omadm_tree::{Acl, Change, ChangeEvent, ChangeKind, ExecRequest, Format, Tree, Uri};
use omadm_wire::StatusCode;
use scomo::mo::{node, EntryKind, PrimitiveTarget};
use scomo::state::{DcState, DpState};
use scomo::{Primitive, ResultCode};
use tokio::sync::{mpsc, watch};

use super::config::ScomoConfig;
use super::confirm::confirm;
use super::download::{DlError, Downloader, Progress};
use super::env::archive::ArchiveEnv;
use super::env::command::CommandEnv;
use super::env::{env_name, ComponentCtx, EnvError, Envs, ExecEnv, StageRequest, ARCHIVE};
use super::journal::{
    CrashMode, Crasher, DownloadState, Failure, Halted, InstallState, Journal, OpRecord, Outcome,
    PlanItem, Step,
};
use super::mo::{self, EntryLeaves};
use super::outbox::Outbox;
use super::rules::{self, Phase};
use super::store::{
    file_key, has_room, present, remove_dir_atomically, remove_path, ComponentRecord, Counters,
    Inventory, Paths,
};
use super::tree_access::{with_tree, TreeAccess, TreeEdit, Via};
use super::verify::{self, Expected};
use super::ScomoError;
use crate::persist::sync_dir;

/// Everything the hooks and the executor share.
pub(crate) struct Shared {
    pub(crate) cfg: ScomoConfig,
    pub(crate) root: String,
    pub(crate) root_uri: Uri,
    pub(crate) acl: Acl,
    pub(crate) paths: Paths,
    journal: Journal,
    pub(crate) outbox: Outbox,
    pub(crate) crash: Crasher,
    envs: Envs,
    keys: Vec<VerifyingKey>,
    downloader: Downloader,
    state: Mutex<State>,
    install_lock: Mutex<()>,
    queue_tx: mpsc::UnboundedSender<u64>,
    pub(crate) queue_rx: Mutex<Option<mpsc::UnboundedReceiver<u64>>>,
    /// Number of operations in the journal.
    pub(crate) running: watch::Sender<usize>,
}

struct State {
    ops: BTreeMap<u64, OpRecord>,
    inventory: Inventory,
    counters: Counters,
}

/// Why a step did not complete.
enum Fail {
    /// A crash point fired: stop, touch nothing.
    Halt,
    /// Shutting down: stop, resume at next start.
    Stop,
}

impl From<Halted> for Fail {
    fn from(_: Halted) -> Fail {
        Fail::Halt
    }
}

/// What the blocking part of an operation asks for next.
enum Next {
    /// The async download step.
    Download,
    /// The operation is over.
    Done(Outcome),
}

/// The blocking context of a run.
struct Ctx<'a> {
    tree: &'a mut dyn TreeEdit,
    /// The caller already holds the install lock (synchronous Exec).
    lock_held: bool,
    stop: &'a dyn Fn() -> bool,
}

impl Shared {
    pub(crate) fn open(
        data_dir: &Path,
        cfg: ScomoConfig,
        crash: CrashMode,
        extra_envs: Vec<(String, Arc<dyn ExecEnv>)>,
    ) -> Result<Shared, ScomoError> {
        cfg.validate()?;
        let paths = Paths::new(data_dir);
        let io_err = |what: &str, e: io::Error| ScomoError::Io {
            what: what.to_owned(),
            source: e,
        };
        paths
            .create_dirs()
            .map_err(|e| io_err(&paths.base.display().to_string(), e))?;
        let inventory =
            Inventory::load(&paths.inventory_file()).map_err(|e| io_err("inventory.json", e))?;
        let mut counters =
            Counters::load(&paths.counters_file()).map_err(|e| io_err("counters.json", e))?;
        let journal = Journal::new(paths.ops_dir());
        let ops = journal.load_all().map_err(|e| io_err("ops/", e))?;
        if let Some(max) = ops.iter().map(|o| o.id).max() {
            counters.next_op_id = counters.next_op_id.max(max + 1);
        }
        let outbox = Outbox::open(paths.outbox_file()).map_err(|e| io_err("outbox.json", e))?;
        let mut envs = Envs::default();
        envs.insert(
            ARCHIVE,
            Arc::new(ArchiveEnv::new(
                cfg.max_extracted_bytes,
                cfg.max_archive_entries,
                std::time::Duration::from_secs(cfg.hook_timeout_secs),
            )),
        );
        for e in &cfg.environments {
            envs.insert(
                &e.env_type,
                Arc::new(CommandEnv::new(
                    e.clone(),
                    std::time::Duration::from_secs(cfg.hook_timeout_secs),
                )),
            );
        }
        for (name, env) in extra_envs {
            envs.insert(&name, env);
        }
        let downloader = Downloader::new(&cfg).map_err(|reason| ScomoError::Config {
            key: "scomo.download_ca_cert".into(),
            reason,
        })?;
        let root_uri = Uri::parse(&cfg.root).map_err(|e| ScomoError::Config {
            key: "scomo.root".into(),
            reason: e.to_string(),
        })?;
        let acl = Acl::parse(&cfg.root_acl).map_err(|e| ScomoError::Config {
            key: "scomo.root_acl".into(),
            reason: e.to_string(),
        })?;
        let (queue_tx, queue_rx) = mpsc::unbounded_channel();
        let n = ops.len();
        let shared = Shared {
            root: cfg.root.clone(),
            keys: cfg.verifying_keys(),
            cfg,
            root_uri,
            acl,
            journal,
            outbox,
            crash: Crasher::new(crash),
            envs,
            downloader,
            state: Mutex::new(State {
                ops: ops.into_iter().map(|o| (o.id, o)).collect(),
                inventory,
                counters,
            }),
            install_lock: Mutex::new(()),
            queue_tx,
            queue_rx: Mutex::new(Some(queue_rx)),
            running: watch::Sender::new(n),
            paths,
        };
        shared.clean_orphans();
        Ok(shared)
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_install(&self) -> MutexGuard<'_, ()> {
        self.install_lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The deployed components.
    pub(crate) fn inventory(&self) -> Vec<ComponentRecord> {
        self.lock_state()
            .inventory
            .components
            .values()
            .cloned()
            .collect()
    }

    /// Ids of the operations in the journal.
    pub(crate) fn op_ids(&self) -> Vec<u64> {
        self.lock_state().ops.keys().copied().collect()
    }

    fn op(&self, id: u64) -> Option<OpRecord> {
        self.lock_state().ops.get(&id).cloned()
    }

    /// Whether an operation holds `(kind, name)`.
    fn busy(&self, kind: EntryKind, name: &str) -> bool {
        self.lock_state()
            .ops
            .values()
            .any(|o| o.locks.iter().any(|(k, n)| *k == kind && n == name))
    }

    /// Removes what no operation and no inventory record accounts for:
    /// staging, backup and partial downloads of finished operations, the
    /// trash, and component directories that are not installed.
    fn clean_orphans(&self) {
        let st = self.lock_state();
        let ids: HashSet<String> = st.ops.keys().map(|i| i.to_string()).collect();
        let planned: HashSet<String> = st
            .ops
            .values()
            .flat_map(|o| match &o.step {
                Step::Committing(i)
                | Step::Activating(i)
                | Step::RollingBack { install: i, .. } => {
                    i.plan.iter().map(|p| p.record.id.clone()).collect()
                }
                _ => Vec::new(),
            })
            .collect();
        for dir in [self.paths.staging_root(), self.paths.backup_root()] {
            for name in dir_names(&dir) {
                if !ids.contains(&name) {
                    let _ = remove_path(&dir.join(&name));
                }
            }
        }
        for name in dir_names(&self.paths.downloads_dir()) {
            let id = name.split('.').next().unwrap_or_default();
            if !ids.contains(id) {
                let _ = remove_path(&self.paths.downloads_dir().join(&name));
            }
        }
        for name in dir_names(&self.paths.trash_dir()) {
            let _ = remove_path(&self.paths.trash_dir().join(&name));
        }
        for name in dir_names(&self.paths.components) {
            if !st.inventory.components.contains_key(&name) && !planned.contains(&name) {
                tracing::warn!(component = %name, "removing a component directory that is not in the inventory");
                let _ = remove_dir_atomically(
                    &self.paths.components.join(&name),
                    &self.paths.trash_dir(),
                );
            }
        }
    }

    // ---- the tree --------------------------------------------------------------------

    /// Creates the MO and makes the tree agree with the journal and the
    /// inventory: Deployed mirrors the inventory, entries with an operation
    /// show its phase, stale "progressing" values without one go back to
    /// IDLE; package files of vanished Delivered entries are deleted.
    pub(crate) fn install_mo(&self, tree: &mut Tree) -> Result<(), ScomoError> {
        let tree_err = |e: omadm_tree::TreeError| ScomoError::Tree(e.to_string());
        mo::install(tree, &self.root, &self.acl).map_err(tree_err)?;
        let (records, ops) = {
            let st = self.lock_state();
            (
                st.inventory
                    .components
                    .values()
                    .cloned()
                    .collect::<Vec<_>>(),
                st.ops.values().cloned().collect::<Vec<_>>(),
            )
        };
        mo::reflect_deployed(tree, &self.root, &records).map_err(tree_err)?;
        let mut locked = HashSet::new();
        for op in &ops {
            locked.extend(op.locks.iter().cloned());
            if !matches!(op.step, Step::Finishing(_)) {
                let v = rules::progress_status(op.primitive, op.step.phase(op.primitive));
                mo::set_status(tree, &self.root, op.primitive.entry_kind(), &op.entry, v)
                    .map_err(tree_err)?;
            }
        }
        for kind in [
            EntryKind::Download,
            EntryKind::Delivered,
            EntryKind::Deployed,
        ] {
            for name in mo::entries(tree, &self.root, kind) {
                if locked.contains(&(kind, name.clone())) {
                    continue;
                }
                if mo::status(tree, &self.root, kind, &name)
                    .is_some_and(|s| rules::is_progressing(kind, s))
                {
                    mo::set_status(tree, &self.root, kind, &name, 10).map_err(tree_err)?;
                }
            }
        }
        // Package files whose Delivered entry is gone.
        let mut keep: HashSet<String> = mo::entries(tree, &self.root, EntryKind::Delivered)
            .iter()
            .map(|n| format!("{}.pkg", file_key(n)))
            .collect();
        for op in &ops {
            if let Step::Delivering { name } = &op.step {
                keep.insert(format!("{}.pkg", file_key(name)));
            }
        }
        for name in dir_names(&self.paths.packages_dir()) {
            if !keep.contains(&name) {
                let _ = remove_path(&self.paths.packages_dir().join(&name));
            }
        }
        Ok(())
    }

    // ---- hooks -----------------------------------------------------------------------

    /// An Exec on a primitive: validate, journal, then run now (synchronous
    /// configuration) or queue (202).
    pub(crate) fn exec(&self, tree: &mut Tree, req: &ExecRequest<'_>) -> StatusCode {
        if self.crash.is_dead() {
            return StatusCode::COMMAND_FAILED;
        }
        let Some(target) = PrimitiveTarget::parse(&self.root, &req.path.to_string()) else {
            return StatusCode::COMMAND_NOT_ALLOWED;
        };
        let p = target.primitive;
        let kind = p.entry_kind();
        if self.busy(kind, &target.entry) {
            return StatusCode::CONFLICT;
        }
        let leaves = if kind == EntryKind::Deployed {
            EntryLeaves::default()
        } else {
            EntryLeaves::read(tree, &self.root, kind, &target.entry)
        };
        match kind {
            EntryKind::Download if leaves.pkg_url.is_none() => {
                return StatusCode::INCOMPLETE_COMMAND
            }
            EntryKind::Delivered
                if p != Primitive::RemoveDelivered
                    && !present(&self.paths.package_file(&target.entry)) =>
            {
                return StatusCode::INCOMPLETE_COMMAND
            }
            EntryKind::Deployed
                if !self
                    .lock_state()
                    .inventory
                    .components
                    .contains_key(&target.entry) =>
            {
                return StatusCode::NOT_FOUND
            }
            _ => {}
        }
        let Ok(id) = self.alloc_id() else {
            return StatusCode::COMMAND_FAILED;
        };
        let mut rec = OpRecord {
            id,
            primitive: p,
            source_uri: p.uri(&self.root, &target.entry),
            entry: target.entry.clone(),
            correlator: req.correlator.map(str::to_owned),
            server_id: req.server_id.to_owned(),
            sync: false,
            leaves,
            locks: vec![(kind, target.entry.clone())],
            step: Step::Accepted,
        };
        if let Err(e) = self.journal.save(&rec) {
            tracing::error!(error = %e, "cannot journal a SCOMO operation");
            return StatusCode::COMMAND_FAILED;
        }
        self.lock_state().ops.insert(id, rec.clone());
        self.running.send_replace(self.lock_state().ops.len());
        if self.crash.point(rec.step.name()).is_err() {
            return StatusCode::COMMAND_FAILED;
        }
        let _ = mo::set_status(
            tree,
            &self.root,
            kind,
            &rec.entry,
            rules::progress_status(p, rec.step.phase(p)),
        );
        tracing::info!(op = id, primitive = %p, entry = %rec.entry, "SCOMO operation accepted");
        if self.cfg.is_sync(p) {
            if let Ok(guard) = self.install_lock.try_lock() {
                rec.sync = true;
                let never = || false;
                let mut edit: &mut Tree = tree;
                let mut cx = Ctx {
                    tree: &mut edit,
                    lock_held: true,
                    stop: &never,
                };
                let r = self.advance(&mut rec, &mut cx);
                drop(guard);
                return match r {
                    Ok(Next::Done(o)) if o.result.is_success() => StatusCode::OK,
                    Ok(Next::Done(o)) => StatusCode(o.result.0),
                    Ok(Next::Download) | Err(Fail::Stop) => {
                        let _ = self.queue_tx.send(id);
                        StatusCode::ACCEPTED
                    }
                    Err(Fail::Halt) => StatusCode::COMMAND_FAILED,
                };
            }
        }
        let _ = self.queue_tx.send(id);
        StatusCode::ACCEPTED
    }

    fn alloc_id(&self) -> io::Result<u64> {
        let mut st = self.lock_state();
        let id = st.counters.next_op_id.max(1);
        let next = Counters { next_op_id: id + 1 };
        next.save(&self.paths.counters_file())?;
        st.counters = next;
        Ok(id)
    }

    /// Vetoes server changes to busy entries (409), renames of entries
    /// (405), and pushed packages that are too large (413) or do not fit
    /// (420).
    pub(crate) fn check_change(&self, change: &Change<'_>) -> Result<(), StatusCode> {
        let Some(loc) = mo::locate(&self.root_uri, change.path) else {
            return Ok(());
        };
        if loc.kind == EntryKind::Deployed {
            return Ok(());
        }
        if self.busy(loc.kind, &loc.entry) {
            return Err(StatusCode::CONFLICT);
        }
        if matches!(change.kind, ChangeKind::Rename(_)) {
            return Err(StatusCode::COMMAND_NOT_ALLOWED);
        }
        if loc.kind == EntryKind::Delivered
            && loc.rest.len() == 1
            && loc.rest.first().is_some_and(|r| r == node::DATA)
            && matches!(change.kind, ChangeKind::Add | ChangeKind::Replace)
        {
            let size = change.value.map_or(0, <[u8]>::len) as u64;
            if size > self.cfg.max_package_bytes {
                return Err(StatusCode::REQUEST_ENTITY_TOO_LARGE);
            }
            if !has_room(&self.paths.base, size, self.cfg.reserved_space_bytes) {
                return Err(StatusCode::DEVICE_FULL);
            }
        }
        Ok(())
    }

    /// A new Download or Delivered entry gets its device-owned nodes.
    pub(crate) fn after_change(&self, tree: &mut Tree, ev: &ChangeEvent) -> Result<(), StatusCode> {
        let Some(loc) = mo::locate(&self.root_uri, &ev.path) else {
            return Ok(());
        };
        if ev.kind == ChangeKind::Add && loc.rest.is_empty() && loc.kind != EntryKind::Deployed {
            mo::init_entry(tree, &self.root, loc.kind, &loc.entry)
                .map_err(|_| StatusCode::COMMAND_FAILED)?;
        }
        Ok(())
    }

    /// Committed changes: a pushed `Data` value goes to the package file
    /// (the tree keeps it empty: Data has no Get), a deleted Delivered
    /// entry takes its package file along.
    pub(crate) fn changed(&self, tree: &mut Tree, ev: &ChangeEvent) {
        let Some(loc) = mo::locate(&self.root_uri, &ev.path) else {
            return;
        };
        if loc.kind != EntryKind::Delivered {
            return;
        }
        let file = self.paths.package_file(&loc.entry);
        if ev.kind == ChangeKind::Delete && loc.rest.is_empty() {
            if let Err(e) = remove_path(&file) {
                tracing::warn!(error = %e, file = %file.display(), "cannot delete a package file");
            }
            return;
        }
        let is_data = loc.rest.len() == 1 && loc.rest.first().is_some_and(|r| r == node::DATA);
        if !is_data || !matches!(ev.kind, ChangeKind::Add | ChangeKind::Replace) {
            return;
        }
        let data_path = ev.path.to_string();
        let result = match tree.value(&data_path) {
            Some([]) | None => remove_path(&file),
            Some(v) => crate::persist::write_atomic(&file, v),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, file = %file.display(), "cannot store a pushed package");
            let _ = remove_path(&file);
        }
        let _ = tree.set_leaf(&data_path, Vec::new(), Format::Bin);
        let _ = mo::set_status(tree, &self.root, EntryKind::Delivered, &loc.entry, 10);
        let _ = mo::set_dp_state(tree, &self.root, &loc.entry, DpState::Delivered);
    }

    // ---- the async driver --------------------------------------------------------------

    /// Runs operation `id` to its end (or to a stop / halt).
    pub(crate) async fn drive(
        self: Arc<Self>,
        tree: Arc<dyn TreeAccess>,
        id: u64,
        cancel: watch::Receiver<bool>,
    ) {
        let Some(mut rec) = self.op(id) else {
            return;
        };
        loop {
            if *cancel.borrow() {
                return;
            }
            let shared = Arc::clone(&self);
            let t = Arc::clone(&tree);
            let c = cancel.clone();
            let joined = tokio::task::spawn_blocking(move || {
                let stop = move || *c.borrow();
                let mut via = Via(&*t);
                let mut cx = Ctx {
                    tree: &mut via,
                    lock_held: false,
                    stop: &stop,
                };
                let r = shared.advance(&mut rec, &mut cx);
                (r, rec)
            })
            .await;
            let (r, back) = match joined {
                Ok(v) => v,
                Err(e) => {
                    tracing::error!(op = id, error = %e, "SCOMO operation task failed");
                    return;
                }
            };
            rec = back;
            match r {
                Ok(Next::Download) => {
                    if self
                        .download(&mut rec, &tree, cancel.clone())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Ok(Next::Done(o)) => {
                    tracing::info!(op = id, result = %o.result, reason = %o.reason, "SCOMO operation finished");
                    return;
                }
                Err(_) => return,
            }
        }
    }

    /// The download step: fetch, validate, install-notify; ends in
    /// `downloaded` or `finishing` (failure).
    async fn download(
        &self,
        rec: &mut OpRecord,
        tree: &Arc<dyn TreeAccess>,
        cancel: watch::Receiver<bool>,
    ) -> Result<(), Fail> {
        let mut via = Via(&**tree);
        let mut st = match &rec.step {
            Step::Downloading(s) => s.clone(),
            _ => {
                let s = DownloadState {
                    url: rec.leaves.pkg_url.clone().unwrap_or_default(),
                    dd: None,
                    object_url: None,
                    validator: None,
                    total: None,
                    content_type: None,
                };
                self.enter(rec, Step::Downloading(s.clone()), &mut via)?;
                s
            }
        };
        let part = self.paths.part_file(rec.id);
        let result = {
            let crash = &self.crash;
            let checkpoint = move |p: &str| crash.point(p);
            let journal_rec = &mut *rec;
            let mut journal = |s: &DownloadState| {
                journal_rec.step = Step::Downloading(s.clone());
                self.save(journal_rec)
            };
            let mut progress = Progress {
                journal: &mut journal,
                checkpoint: &checkpoint,
                cancel,
            };
            self.downloader.fetch(&mut st, &part, &mut progress).await
        };
        rec.step = Step::Downloading(st.clone());
        let notify_uri = st.dd.as_ref().and_then(|d| d.install_notify_uri.clone());
        let fetched = match result {
            Ok(f) => f,
            Err(DlError::Halted) => return Err(Fail::Halt),
            Err(DlError::Stopped) => return Err(Fail::Stop),
            Err(DlError::Fail(df, why)) => {
                if let Some(uri) = &notify_uri {
                    self.downloader.notify(uri, df.notify).await;
                }
                let _ = remove_path(&part);
                let f = Failure {
                    code: df.result,
                    reason: why,
                    phase: Phase::Download,
                };
                let o = self.failure(rec, f, false);
                return self.enter(rec, Step::Finishing(o), &mut via);
            }
        };
        let expected = Expected {
            sha256: rec.leaves.sha256.clone(),
            signature: rec.leaves.signature.clone(),
        };
        let verdict = verify::check(
            &fetched.digest,
            &expected,
            self.cfg.require_sha256,
            &self.keys,
        );
        let failure = match verdict {
            Err(why) => {
                if let Some(uri) = &notify_uri {
                    self.downloader
                        .notify(uri, rules::DownloadFailure::invalid().notify)
                        .await;
                }
                Some((ResultCode::PACKAGE_VALIDATION_FAILED, why))
            }
            Ok(()) => match &notify_uri {
                Some(uri)
                    if !self
                        .downloader
                        .notify(uri, scomo::dlota::InstallStatus::SUCCESS)
                        .await =>
                {
                    Some((
                        ResultCode::DOWNLOAD_FAILED,
                        "install-notify was not acknowledged".to_owned(),
                    ))
                }
                _ => None,
            },
        };
        if let Some((code, reason)) = failure {
            let _ = remove_path(&part);
            let f = Failure {
                code,
                reason,
                phase: Phase::Download,
            };
            let o = self.failure(rec, f, false);
            return self.enter(rec, Step::Finishing(o), &mut via);
        }
        self.enter(
            rec,
            Step::Downloaded {
                sha256: verify::hex(&fetched.digest),
                size: fetched.size,
            },
            &mut via,
        )
    }

    // ---- journaling --------------------------------------------------------------------

    /// Persists the record (and its in-memory copy). Refused once a Halt
    /// point fired.
    fn save(&self, rec: &OpRecord) -> Result<(), Halted> {
        if self.crash.is_dead() {
            return Err(Halted);
        }
        if let Err(e) = self.journal.save(rec) {
            // Going on keeps the device working; the step just is not
            // crash-safe.
            tracing::error!(op = rec.id, error = %e, "cannot journal a SCOMO step");
        }
        self.lock_state().ops.insert(rec.id, rec.clone());
        Ok(())
    }

    /// Journals `step`, shows its phase on the entry, then fires its crash
    /// point.
    fn enter(&self, rec: &mut OpRecord, step: Step, tree: &mut dyn TreeEdit) -> Result<(), Fail> {
        rec.step = step;
        self.save(rec)?;
        if !matches!(rec.step, Step::Finishing(_)) {
            let v = rules::progress_status(rec.primitive, rec.step.phase(rec.primitive));
            let (root, kind, entry) = (&self.root, rec.primitive.entry_kind(), &rec.entry);
            with_tree(tree, |t| mo::set_status(t, root, kind, entry, v));
        }
        self.crash.point(rec.step.name())?;
        Ok(())
    }

    /// Changes the inventory (persisted) and mirrors it into the tree.
    fn update_inventory(
        &self,
        tree: &mut dyn TreeEdit,
        f: impl FnOnce(&mut Inventory),
    ) -> Result<(), Halted> {
        if self.crash.is_dead() {
            return Err(Halted);
        }
        let records: Vec<ComponentRecord> = {
            let mut st = self.lock_state();
            let mut inv = st.inventory.clone();
            f(&mut inv);
            if let Err(e) = inv.save(&self.paths.inventory_file()) {
                tracing::error!(error = %e, "cannot save the component inventory");
            }
            st.inventory = inv;
            st.inventory.components.values().cloned().collect()
        };
        let root = &self.root;
        with_tree(tree, |t| {
            if let Err(e) = mo::reflect_deployed(t, root, &records) {
                tracing::error!(error = %e, "cannot mirror the inventory into the tree");
            }
        });
        Ok(())
    }

    fn component(&self, id: &str) -> Option<ComponentRecord> {
        self.lock_state().inventory.components.get(id).cloned()
    }

    // ---- the blocking state machine --------------------------------------------------

    /// Runs steps until the operation ends or needs the async download.
    fn advance(&self, rec: &mut OpRecord, cx: &mut Ctx<'_>) -> Result<Next, Fail> {
        let mut guard: Option<MutexGuard<'_, ()>> = None;
        loop {
            if self.crash.is_dead() {
                return Err(Fail::Halt);
            }
            if (cx.stop)() && !matches!(rec.step, Step::Finishing(_)) {
                return Err(Fail::Stop);
            }
            let needs_lock = matches!(
                rec.step,
                Step::Staging { .. }
                    | Step::Committing(_)
                    | Step::Activating(_)
                    | Step::RollingBack { .. }
                    | Step::Removing
                    | Step::Switching
            );
            if needs_lock && guard.is_none() && !cx.lock_held {
                guard = Some(self.lock_install());
            }
            match rec.step.clone() {
                Step::Accepted => match confirm(&self.cfg, rec) {
                    Ok(()) => self.enter(rec, Step::Confirmed, cx.tree)?,
                    Err(why) => {
                        let phase = rec.step.phase(rec.primitive);
                        let f = Failure {
                            code: ResultCode::USER_CANCELLED,
                            reason: why,
                            phase,
                        };
                        let kept = rec.primitive.entry_kind() != EntryKind::Download;
                        let o = self.failure(rec, f, kept);
                        self.enter(rec, Step::Finishing(o), cx.tree)?;
                    }
                },
                Step::Confirmed => match rec.primitive {
                    Primitive::Download
                    | Primitive::DownloadInstall
                    | Primitive::DownloadInstallInactive => {
                        let env = rec.leaves.env_type.clone();
                        if rec.primitive.installs().is_some()
                            && self.envs.get(env.as_deref()).is_none()
                        {
                            let f = Failure {
                                code: ResultCode::UNSUPPORTED_ENVIRONMENT,
                                reason: format!("unknown EnvType {:?}", env.unwrap_or_default()),
                                phase: Phase::Install,
                            };
                            let o = self.failure(rec, f, false);
                            self.enter(rec, Step::Finishing(o), cx.tree)?;
                        } else {
                            return Ok(Next::Download);
                        }
                    }
                    Primitive::Install | Primitive::InstallInactive => {
                        let package = self.paths.package_file(&rec.entry);
                        self.enter(
                            rec,
                            Step::Staging {
                                package,
                                keep_package: true,
                            },
                            cx.tree,
                        )?;
                    }
                    Primitive::RemoveDelivered | Primitive::RemoveDeployed => {
                        self.enter(rec, Step::Removing, cx.tree)?;
                    }
                    Primitive::Activate | Primitive::Deactivate => {
                        self.enter(rec, Step::Switching, cx.tree)?;
                    }
                },
                Step::Downloading(_) => return Ok(Next::Download),
                Step::Downloaded { .. } => {
                    if rec.primitive == Primitive::Download {
                        let name = self.delivered_name(rec, cx.tree);
                        self.enter(rec, Step::Delivering { name }, cx.tree)?;
                    } else {
                        let package = self.paths.part_file(rec.id);
                        self.enter(
                            rec,
                            Step::Staging {
                                package,
                                keep_package: false,
                            },
                            cx.tree,
                        )?;
                    }
                }
                Step::Delivering { name } => {
                    let o = self.deliver(rec, &name, cx.tree);
                    self.enter(rec, Step::Finishing(o), cx.tree)?;
                }
                Step::Staging {
                    package,
                    keep_package,
                } => {
                    let next = self.stage(rec, &package, keep_package)?;
                    self.enter(rec, next, cx.tree)?;
                }
                Step::Committing(inst) => {
                    let next = self.commit(rec, inst, cx.tree)?;
                    self.enter(rec, next, cx.tree)?;
                }
                Step::Activating(inst) => {
                    let next = self.activate_all(rec, inst, cx.tree)?;
                    self.enter(rec, next, cx.tree)?;
                }
                Step::RollingBack { install, failure } => {
                    self.rollback(rec.id, &install, cx.tree)?;
                    let kept = install.keep_package && present(&install.package);
                    let o = self.failure(rec, failure, kept);
                    self.enter(rec, Step::Finishing(o), cx.tree)?;
                }
                Step::Removing => {
                    let o = self.remove(rec, cx.tree)?;
                    self.enter(rec, Step::Finishing(o), cx.tree)?;
                }
                Step::Switching => {
                    let o = self.switch(rec, cx.tree)?;
                    self.enter(rec, Step::Finishing(o), cx.tree)?;
                }
                Step::Finishing(o) => {
                    drop(guard.take());
                    self.finish(rec, &o, cx.tree)?;
                    return Ok(Next::Done(o));
                }
            }
        }
    }

    /// The outcome of a failure.
    fn failure(&self, rec: &OpRecord, f: Failure, data_kept: bool) -> Outcome {
        tracing::warn!(op = rec.id, primitive = %rec.primitive, code = %f.code, reason = %f.reason, "SCOMO operation failed");
        Outcome {
            result: f.code,
            status: Some(rules::failure_status(rec.primitive, f.phase, data_kept)),
            dp_state: None,
            targets: Vec::new(),
            identifier: Some(self.identifier(rec)),
            reason: f.reason,
        }
    }

    /// The report's Identifier when no component results: the component
    /// ID for Deployed entries, else the PkgID (or the entry name).
    fn identifier(&self, rec: &OpRecord) -> String {
        if rec.primitive.entry_kind() == EntryKind::Deployed || rec.leaves.pkg_id.is_empty() {
            rec.entry.clone()
        } else {
            rec.leaves.pkg_id.clone()
        }
    }

    fn deployed_uri(&self, id: &str) -> String {
        EntryKind::Deployed.entry_uri(&self.root, id)
    }

    /// A free Delivered entry name for a downloaded package.
    fn delivered_name(&self, rec: &OpRecord, tree: &mut dyn TreeEdit) -> String {
        let root = &self.root;
        let base = rec.entry.clone();
        with_tree(tree, |t| {
            let mut name = base.clone();
            let mut n = 1u32;
            while t.exists(EntryKind::Delivered.entry_uri(root, &name))
                || self.busy(EntryKind::Delivered, &name)
                || present(&self.paths.package_file(&name))
            {
                n += 1;
                name = format!("{base}-{n}");
            }
            name
        })
        .unwrap_or(base)
    }

    /// Download: the package becomes `Inventory/Delivered/<name>`.
    fn deliver(&self, rec: &OpRecord, name: &str, tree: &mut dyn TreeEdit) -> Outcome {
        let src = self.paths.part_file(rec.id);
        let dst = self.paths.package_file(name);
        if present(&src) {
            if let Err(e) =
                fs::rename(&src, &dst).and_then(|()| sync_dir(&self.paths.packages_dir()))
            {
                let f = Failure {
                    code: ResultCode::DOWNLOAD_FAILED,
                    reason: format!("cannot store the package: {e}"),
                    phase: Phase::Downloaded,
                };
                let _ = remove_path(&src);
                return self.failure(rec, f, false);
            }
        } else if !present(&dst) {
            let f = Failure {
                code: ResultCode::DOWNLOAD_FAILED,
                reason: "the downloaded package is gone".into(),
                phase: Phase::Downloaded,
            };
            return self.failure(rec, f, false);
        }
        let root = &self.root;
        let leaves = &rec.leaves;
        with_tree(tree, |t| {
            let r = leaves.write_delivered(t, root, name).and_then(|()| {
                mo::set_status(t, root, EntryKind::Delivered, name, 10)?;
                mo::set_dp_state(t, root, name, DpState::Delivered)
            });
            if let Err(e) = r {
                tracing::error!(error = %e, "cannot create the Delivered entry");
            }
        });
        Outcome {
            result: ResultCode::SUCCESSFUL,
            reason: String::new(),
            status: rules::success_status(rec.primitive),
            dp_state: None,
            targets: vec![(
                Some(EntryKind::Delivered.entry_uri(&self.root, name)),
                Some(self.identifier(rec)),
            )],
            identifier: None,
        }
    }

    /// Staging: validate (Install*), pick the environment, extract or
    /// install, and plan the commit. Failures end the operation with
    /// nothing installed.
    fn stage(&self, rec: &mut OpRecord, package: &Path, keep: bool) -> Result<Step, Fail> {
        let staging = self.paths.staging_dir(rec.id);
        let fail = |rec: &OpRecord, code: ResultCode, reason: String| -> Result<Step, Fail> {
            let _ = remove_path(&staging);
            if !keep {
                let _ = remove_path(package);
            }
            let f = Failure {
                code,
                reason,
                phase: Phase::Install,
            };
            Ok(Step::Finishing(self.failure(
                rec,
                f,
                keep && present(package),
            )))
        };
        if !present(package) {
            return fail(
                rec,
                ResultCode::INSTALL_FAILED,
                "the package data is missing".into(),
            );
        }
        if !rec.primitive.downloads() {
            let digest = match verify::sha256_file(package) {
                Ok(d) => d,
                Err(e) => return fail(rec, ResultCode::INSTALL_FAILED, e.to_string()),
            };
            let expected = Expected {
                sha256: rec.leaves.sha256.clone(),
                signature: rec.leaves.signature.clone(),
            };
            if let Err(why) = verify::check(&digest, &expected, self.cfg.require_sha256, &self.keys)
            {
                return fail(rec, ResultCode::PACKAGE_VALIDATION_FAILED, why);
            }
        }
        let env_type = env_name(rec.leaves.env_type.as_deref());
        let Some(env) = self.envs.get(Some(&env_type)) else {
            return fail(
                rec,
                ResultCode::UNSUPPORTED_ENVIRONMENT,
                format!("unknown EnvType {env_type:?}"),
            );
        };
        if let Err(e) = remove_path(&staging).and_then(|()| fs::create_dir_all(&staging)) {
            return fail(rec, ResultCode::INSTALL_FAILED, e.to_string());
        }
        let reserve = self.cfg.reserved_space_bytes;
        let base = self.paths.base.clone();
        let room = move |n: u64| has_room(&base, n, reserve);
        let crash = &self.crash;
        let mut checkpoint = || crash.point("extracting").map_err(|_| EnvError::Interrupted);
        let mut req = StageRequest {
            package,
            staging: &staging,
            pkg_id: &rec.leaves.pkg_id,
            env_type: &env_type,
            install_params: rec.leaves.install_params.as_deref(),
            room: &room,
            checkpoint: &mut checkpoint,
        };
        let staged = match env.stage(&mut req) {
            Ok(s) => s,
            Err(EnvError::Interrupted) => return Err(Fail::Halt),
            Err(EnvError::Failed { code, reason }) => return fail(rec, code, reason),
        };
        let mut seen = HashSet::new();
        for c in &staged {
            if scomo::manifest::check_id("component id", &c.id).is_err()
                || !seen.insert(c.id.clone())
            {
                return fail(
                    rec,
                    ResultCode::INSTALL_FAILED,
                    format!("bad or duplicate component id {:?}", c.id),
                );
            }
            if let Some(other) =
                self.lock_state().ops.values().find(|o| {
                    o.id != rec.id && o.locks.contains(&(EntryKind::Deployed, c.id.clone()))
                })
            {
                return fail(
                    rec,
                    ResultCode::INSTALL_FAILED,
                    format!("component {} is busy with operation {}", c.id, other.id),
                );
            }
        }
        let pkg_id_ref = Some(rec.leaves.pkg_id.clone()).filter(|s| !s.is_empty());
        let plan: Vec<PlanItem> = staged
            .into_iter()
            .map(|c| PlanItem {
                previous: self.component(&c.id),
                staged: c.staged,
                record: ComponentRecord {
                    id: c.id,
                    name: c.name,
                    version: c.version,
                    description: c.description,
                    pkg_id_ref: pkg_id_ref.clone(),
                    env_type: env_type.clone(),
                    state: DcState::Inactive,
                    activate: c.activate,
                    deactivate: c.deactivate,
                    install_params: rec.leaves.install_params.clone(),
                },
            })
            .collect();
        for item in &plan {
            rec.locks
                .push((EntryKind::Deployed, item.record.id.clone()));
        }
        Ok(Step::Committing(InstallState {
            package: package.to_owned(),
            keep_package: keep,
            active: rec.primitive.installs() == Some(DcState::Active),
            plan,
            committed: 0,
            activated: Vec::new(),
        }))
    }

    /// Committing: each component replaces its previous version (stopped,
    /// moved to the backup) and is recorded, inactive.
    fn commit(
        &self,
        rec: &mut OpRecord,
        mut inst: InstallState,
        tree: &mut dyn TreeEdit,
    ) -> Result<Step, Fail> {
        while inst.committed < inst.plan.len() {
            let Some(item) = inst.plan.get(inst.committed).cloned() else {
                break;
            };
            if let Err(reason) = self.commit_item(rec.id, &item, tree)? {
                return Ok(Step::RollingBack {
                    install: inst,
                    failure: Failure {
                        code: ResultCode::INSTALL_FAILED,
                        reason,
                        phase: Phase::Install,
                    },
                });
            }
            inst.committed += 1;
            rec.step = Step::Committing(inst.clone());
            self.save(rec)?;
            self.crash.point("commit-component")?;
        }
        if inst.active {
            Ok(Step::Activating(inst))
        } else {
            self.cleanup_install(rec.id, &inst);
            Ok(Step::Finishing(self.install_success(rec, &inst)))
        }
    }

    fn commit_item(
        &self,
        op: u64,
        item: &PlanItem,
        tree: &mut dyn TreeEdit,
    ) -> Result<Result<(), String>, Fail> {
        let id = &item.record.id;
        let target = self.paths.component_dir(id);
        // 1. Stop the running previous version (archive: its files are
        // about to move; a command environment handled it in its install).
        if let Some(cur) = self.component(id).filter(|c| c.state == DcState::Active) {
            if item.previous.is_some() && item.staged {
                if let Some(env) = self.envs.get(Some(&cur.env_type)) {
                    let trash = self.paths.trash_dir();
                    let ctx = ComponentCtx {
                        record: &cur,
                        dir: &target,
                        trash: &trash,
                    };
                    if let Err(e) = env.deactivate(&ctx) {
                        return Ok(Err(format!(
                            "cannot stop the previous version of {id}: {e}"
                        )));
                    }
                }
                self.update_inventory(tree, |inv| {
                    if let Some(c) = inv.components.get_mut(id) {
                        c.state = DcState::Inactive;
                    }
                })?;
            }
        }
        // 2. Swap the directories (each move is idempotent).
        if item.staged {
            let staged = self.paths.staging_dir(op).join(id);
            let backup = self.paths.backup_dir(op).join(id);
            let r = (|| -> io::Result<()> {
                if present(&staged) {
                    if present(&target) {
                        if present(&backup) {
                            remove_path(&target)?;
                        } else {
                            fs::create_dir_all(self.paths.backup_dir(op))?;
                            fs::rename(&target, &backup)?;
                        }
                    }
                    fs::rename(&staged, &target)?;
                    sync_dir(&self.paths.components)?;
                }
                Ok(())
            })();
            if let Err(e) = r {
                return Ok(Err(format!("cannot move {id} into place: {e}")));
            }
        }
        // 3. Record it.
        let record = item.record.clone();
        self.update_inventory(tree, |inv| {
            inv.components.insert(record.id.clone(), record);
        })?;
        Ok(Ok(()))
    }

    /// Activating: run each new component's activation.
    fn activate_all(
        &self,
        rec: &mut OpRecord,
        mut inst: InstallState,
        tree: &mut dyn TreeEdit,
    ) -> Result<Step, Fail> {
        for item in inst.plan.clone() {
            let id = &item.record.id;
            if inst.activated.contains(id) {
                continue;
            }
            let current = self.component(id).unwrap_or_else(|| item.record.clone());
            if let Err(reason) = self.run_env(&current, |env, ctx| env.activate(ctx)) {
                return Ok(Step::RollingBack {
                    install: inst,
                    failure: Failure {
                        code: ResultCode::INSTALL_FAILED,
                        reason: format!("activation of {id} failed: {reason}"),
                        phase: Phase::Install,
                    },
                });
            }
            self.update_inventory(tree, |inv| {
                if let Some(c) = inv.components.get_mut(id) {
                    c.state = DcState::Active;
                }
            })?;
            inst.activated.push(id.clone());
            rec.step = Step::Activating(inst.clone());
            self.save(rec)?;
            self.crash.point("activate-component")?;
        }
        self.cleanup_install(rec.id, &inst);
        Ok(Step::Finishing(self.install_success(rec, &inst)))
    }

    fn install_success(&self, rec: &OpRecord, inst: &InstallState) -> Outcome {
        Outcome {
            result: ResultCode::SUCCESSFUL,
            reason: String::new(),
            status: rules::success_status(rec.primitive),
            dp_state: (rec.primitive.entry_kind() == EntryKind::Delivered)
                .then_some(DpState::Installed),
            targets: inst
                .plan
                .iter()
                .map(|i| {
                    (
                        Some(self.deployed_uri(&i.record.id)),
                        Some(i.record.id.clone()),
                    )
                })
                .collect(),
            identifier: None,
        }
    }

    /// Removes the staging and backup directories, and the package unless
    /// it belongs to a Delivered entry.
    fn cleanup_install(&self, op: u64, inst: &InstallState) {
        let _ = remove_path(&self.paths.backup_dir(op));
        let _ = remove_path(&self.paths.staging_dir(op));
        if !inst.keep_package {
            let _ = remove_path(&inst.package);
        }
    }

    /// Runs an environment action on an installed component.
    fn run_env(
        &self,
        record: &ComponentRecord,
        f: impl FnOnce(&dyn ExecEnv, &ComponentCtx<'_>) -> Result<(), EnvError>,
    ) -> Result<(), String> {
        let env = self
            .envs
            .get(Some(&record.env_type))
            .ok_or_else(|| format!("environment {:?} is not configured", record.env_type))?;
        let dir = self.paths.component_dir(&record.id);
        let trash = self.paths.trash_dir();
        let ctx = ComponentCtx {
            record,
            dir: &dir,
            trash: &trash,
        };
        f(env.as_ref(), &ctx).map_err(|e| e.to_string())
    }

    /// Undoes an install, whatever part of it happened: stops what was
    /// activated, puts back the previous versions (or removes the new
    /// components), restores the inventory and restarts what ran before.
    fn rollback(&self, op: u64, inst: &InstallState, tree: &mut dyn TreeEdit) -> Result<(), Fail> {
        for item in inst.plan.iter().rev() {
            let id = &item.record.id;
            // Stop the new version if it runs.
            if let Some(cur) = self.component(id) {
                let is_new = same_component(&cur, &item.record);
                if is_new && cur.state == DcState::Active {
                    if let Err(e) = self.run_env(&cur, |env, ctx| env.deactivate(ctx)) {
                        tracing::warn!(component = %id, error = %e, "rollback: cannot stop the new version");
                    }
                    self.update_inventory(tree, |inv| {
                        if let Some(c) = inv.components.get_mut(id) {
                            c.state = DcState::Inactive;
                        }
                    })?;
                }
            }
            let target = self.paths.component_dir(id);
            let staged = self.paths.staging_dir(op).join(id);
            let backup = self.paths.backup_dir(op).join(id);
            if item.staged {
                let r = (|| -> io::Result<()> {
                    if present(&backup) {
                        remove_dir_atomically(&target, &self.paths.trash_dir())?;
                        fs::rename(&backup, &target)?;
                        sync_dir(&self.paths.components)?;
                    } else if item.previous.is_none() && !present(&staged) {
                        remove_dir_atomically(&target, &self.paths.trash_dir())?;
                    }
                    Ok(())
                })();
                if let Err(e) = r {
                    tracing::error!(component = %id, error = %e, "rollback: cannot restore the directory");
                }
            } else if item.previous.is_none() {
                if let Some(cur) = self
                    .component(id)
                    .filter(|c| same_component(c, &item.record))
                {
                    if let Err(e) = self.run_env(&cur, |env, ctx| env.remove(ctx)) {
                        tracing::warn!(component = %id, error = %e, "rollback: cannot remove the new component");
                    }
                }
            }
            // Put the previous record back (stopped), or forget the new one.
            let is_previous = match (self.component(id), &item.previous) {
                (Some(c), Some(p)) => same_component(&c, p),
                _ => false,
            };
            if !is_previous {
                let prev = item.previous.clone();
                self.update_inventory(tree, |inv| match prev {
                    Some(mut p) => {
                        p.state = DcState::Inactive;
                        inv.components.insert(p.id.clone(), p);
                    }
                    None => {
                        inv.components.remove(id);
                    }
                })?;
            }
            // Restart the previous version if it was running.
            if let Some(p) = item
                .previous
                .as_ref()
                .filter(|p| p.state == DcState::Active)
            {
                if self
                    .component(id)
                    .is_some_and(|c| c.state == DcState::Inactive)
                {
                    match self.run_env(p, |env, ctx| env.activate(ctx)) {
                        Ok(()) => self.update_inventory(tree, |inv| {
                            if let Some(c) = inv.components.get_mut(id) {
                                c.state = DcState::Active;
                            }
                        })?,
                        Err(e) => tracing::warn!(
                            component = %id, error = %e,
                            "rollback: cannot restart the previous version"
                        ),
                    }
                }
            }
        }
        self.cleanup_install(op, inst);
        Ok(())
    }

    /// Removing a Delivered package or a Deployed component.
    fn remove(&self, rec: &OpRecord, tree: &mut dyn TreeEdit) -> Result<Outcome, Fail> {
        let fail = |reason: String| {
            self.failure(
                rec,
                Failure {
                    code: ResultCode::REMOVE_FAILED,
                    reason,
                    phase: Phase::Remove,
                },
                true,
            )
        };
        if rec.primitive == Primitive::RemoveDelivered {
            if let Err(e) = remove_path(&self.paths.package_file(&rec.entry)) {
                return Ok(fail(e.to_string()));
            }
            let (root, entry) = (&self.root, &rec.entry);
            with_tree(tree, |t| {
                let uri = EntryKind::Delivered.entry_uri(root, entry);
                if t.exists(&uri) {
                    if let Err(e) = t.delete(&uri) {
                        tracing::error!(error = %e, "cannot delete the Delivered entry");
                    }
                }
            });
        } else if let Some(cur) = self.component(&rec.entry) {
            if cur.state == DcState::Active {
                if let Err(e) = self.run_env(&cur, |env, ctx| env.deactivate(ctx)) {
                    return Ok(fail(format!("cannot stop {}: {e}", cur.id)));
                }
                self.update_inventory(tree, |inv| {
                    if let Some(c) = inv.components.get_mut(&cur.id) {
                        c.state = DcState::Inactive;
                    }
                })?;
            }
            if let Err(e) = self.run_env(&cur, |env, ctx| env.remove(ctx)) {
                return Ok(fail(e));
            }
            self.update_inventory(tree, |inv| {
                inv.components.remove(&cur.id);
            })?;
        }
        Ok(Outcome {
            result: ResultCode::SUCCESSFUL,
            reason: String::new(),
            status: None,
            dp_state: None,
            targets: Vec::new(),
            identifier: Some(self.identifier(rec)),
        })
    }

    /// Activating or deactivating a Deployed component.
    fn switch(&self, rec: &OpRecord, tree: &mut dyn TreeEdit) -> Result<Outcome, Fail> {
        let (want, code) = if rec.primitive == Primitive::Activate {
            (DcState::Active, ResultCode::ACTIVATE_FAILED)
        } else {
            (DcState::Inactive, ResultCode::DEACTIVATE_FAILED)
        };
        let fail = |reason: String| {
            self.failure(
                rec,
                Failure {
                    code,
                    reason,
                    phase: Phase::Switch,
                },
                true,
            )
        };
        let Some(cur) = self.component(&rec.entry) else {
            return Ok(fail("the component is not installed".into()));
        };
        // Already there: success, no change (SCOMO.md §4.2).
        if cur.state != want {
            let r = if want == DcState::Active {
                self.run_env(&cur, |env, ctx| env.activate(ctx))
            } else {
                self.run_env(&cur, |env, ctx| env.deactivate(ctx))
            };
            if let Err(e) = r {
                return Ok(fail(e));
            }
            self.update_inventory(tree, |inv| {
                if let Some(c) = inv.components.get_mut(&cur.id) {
                    c.state = want;
                }
            })?;
        }
        Ok(Outcome {
            result: ResultCode::SUCCESSFUL,
            reason: String::new(),
            status: rules::success_status(rec.primitive),
            dp_state: None,
            targets: vec![(Some(self.deployed_uri(&cur.id)), Some(cur.id.clone()))],
            identifier: None,
        })
    }

    /// Finishing: apply the outcome to the tree, queue the report (once),
    /// forget the operation.
    fn finish(&self, rec: &OpRecord, o: &Outcome, tree: &mut dyn TreeEdit) -> Result<(), Fail> {
        if self.crash.is_dead() {
            return Err(Fail::Halt);
        }
        let records = self.inventory();
        let (root, kind, entry) = (&self.root, rec.primitive.entry_kind(), &rec.entry);
        with_tree(tree, |t| {
            let r = (|| {
                if let Some(s) = o.status {
                    mo::set_status(t, root, kind, entry, s)?;
                }
                if let Some(dp) = o.dp_state {
                    mo::set_dp_state(t, root, entry, dp)?;
                }
                mo::reflect_deployed(t, root, &records)
            })();
            if let Err(e) = r {
                tracing::error!(error = %e, "cannot write an operation's outcome into the tree");
            }
        });
        if !rec.sync {
            let report = rules::report(
                rec.correlator.clone(),
                &rec.source_uri,
                o.result,
                &o.targets,
                o.identifier.clone(),
            );
            if let Err(e) = self.outbox.push(Some(rec.id), report) {
                tracing::error!(op = rec.id, error = %e, "cannot queue the operation's alert");
            }
            self.crash.point("reported")?;
        }
        if let Err(e) = self.journal.remove(rec.id) {
            tracing::error!(op = rec.id, error = %e, "cannot delete a finished journal entry");
        }
        let n = {
            let mut st = self.lock_state();
            st.ops.remove(&rec.id);
            st.ops.len()
        };
        self.running.send_replace(n);
        Ok(())
    }
}

/// The same component version (everything but the state).
fn same_component(a: &ComponentRecord, b: &ComponentRecord) -> bool {
    ComponentRecord {
        state: DcState::Inactive,
        ..a.clone()
    } == ComponentRecord {
        state: DcState::Inactive,
        ..b.clone()
    }
}

/// Names in a directory (empty if it cannot be read).
fn dir_names(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}
