//! The processing engine: user Python plugins run inside the server, fired by WAL flushes,
//! schedules and HTTP requests (ENGINE.md).
//!
//! This crate owns the embedded CPython interpreter (pyo3) and the threads that run it, the
//! plugin API (`influxdb3_local`, `LineBuilder`, the plugin cache; mostly in `runtime.py`),
//! plugin files and their hot reload, the running triggers (start, stop, error behaviour,
//! schedules), the plugin test runs, the plugins' virtual environment and package installs,
//! and the engine's log ring.
//!
//! It must not reach into storage, SQL or HTTP: trigger *definitions* live in the catalog
//! (`gnomon-catalog`, changed by the server's configure endpoints), durable writes arrive
//! through [`WalFeed`] (a write-buffer observer), and everything a plugin asks of the
//! database goes through the [`PluginHost`] trait, which the server implements. The engine
//! only *follows* the catalog: [`ProcessingEngine::reconcile`] starts and stops triggers to
//! match it.

mod error;
mod host;
mod logs;
mod packages;
mod plugin_files;
mod plugin_test;
mod python;
mod schedule;
mod triggers;
mod wal_feed;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gnomon_catalog::{Catalog, PluginType, TriggerDefinition, TriggerSpecification};
use parking_lot::{Mutex, RwLock};
use tokio::sync::OnceCell;

pub use error::EngineError;
pub use host::PluginHost;
pub use logs::{LogLevel, LogRecord, LogRing};
pub use packages::PackageManager;
pub use plugin_files::PluginFileInfo;
pub use plugin_test::{ScheduleTestRequest, TestResponse, WalTestRequest};
pub use wal_feed::WalFeed;

use plugin_files::PluginDir;
use python::PythonPool;
use triggers::RunningTrigger;

/// The default of `--plugin-repo`.
pub const DEFAULT_PLUGIN_REPO: &str =
    "https://raw.githubusercontent.com/influxdata/influxdb3_plugins/main/";

/// How the engine is set up (`gnomon serve` flags).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Root of plugin files; `None` disables plugins (every plugin operation answers
    /// `Plugin error: Node not configured with plugin directory`).
    pub plugin_dir: Option<PathBuf>,
    /// The plugins' venv; default `<plugin_dir>/.venv`.
    pub virtual_env: Option<PathBuf>,
    pub package_manager: PackageManager,
    /// Base URL of `gh:` plugin names.
    pub plugin_repo: String,
    /// Only these kinds of triggers may be created; `None` allows all.
    pub allowed_triggers: Option<HashSet<PluginType>>,
    /// Threads running Python. More than one lets a plugin waiting on a query or write not
    /// hold up the others (the GIL is released while waiting).
    pub python_threads: usize,
    /// Records kept behind `system.processing_engine_logs`.
    pub log_capacity: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            plugin_dir: None,
            virtual_env: None,
            package_manager: PackageManager::Discover,
            plugin_repo: DEFAULT_PLUGIN_REPO.to_string(),
            allowed_triggers: None,
            python_threads: 4,
            log_capacity: 10_000,
        }
    }
}

/// Counters of one kind of plugin, for `/metrics`.
#[derive(Debug, Default)]
pub struct PluginKindMetrics {
    pub runs: AtomicU64,
    pub errors: AtomicU64,
    pub duration_ns: AtomicU64,
}

#[derive(Debug, Default)]
pub struct EngineMetrics {
    pub wal: PluginKindMetrics,
    pub schedule: PluginKindMetrics,
    pub request: PluginKindMetrics,
}

impl EngineMetrics {
    pub(crate) fn kind(&self, kind: PluginType) -> &PluginKindMetrics {
        match kind {
            PluginType::WalRows => &self.wal,
            PluginType::Schedule => &self.schedule,
            PluginType::Request => &self.request,
        }
    }

    pub(crate) fn record(&self, kind: PluginType, elapsed: Duration, failed: bool) {
        let m = self.kind(kind);
        m.runs.fetch_add(1, Ordering::Relaxed);
        m.duration_ns
            .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
        if failed {
            m.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What a request plugin answered.
#[derive(Debug, Clone)]
pub struct PluginResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Identifies a running trigger: database id (stable across renames) and trigger name.
type TriggerKey = (gnomon_catalog::DbId, String);

/// The processing engine. Cheap to clone.
#[derive(Clone)]
pub struct ProcessingEngine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ProcessingEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessingEngine").finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    config: EngineConfig,
    plugin_dir: Option<PluginDir>,
    venv: Option<PathBuf>,
    catalog: Arc<Catalog>,
    host: Arc<dyn PluginHost>,
    tokio: tokio::runtime::Handle,
    python: OnceCell<Result<PythonPool, String>>,
    feed: Arc<WalFeed>,
    logs: Arc<LogRing>,
    metrics: EngineMetrics,
    running: Mutex<HashMap<TriggerKey, Arc<RunningTrigger>>>,
    /// Request triggers by path.
    requests: RwLock<HashMap<String, Arc<RunningTrigger>>>,
    /// Triggers stopped by `error_behavior = disable`, with the definition they had: they
    /// stay stopped until their definition changes (disable + enable) or the server restarts.
    suspended: Mutex<HashMap<TriggerKey, Arc<TriggerDefinition>>>,
    reconciling: tokio::sync::Mutex<()>,
}

impl ProcessingEngine {
    /// Must be called inside the tokio runtime. `feed` is the observer given to the write
    /// buffer when it was opened. Starts nothing: call [`ProcessingEngine::reconcile`] (and
    /// [`ProcessingEngine::spawn_catalog_watch`]) once the server is ready.
    pub fn new(
        config: EngineConfig,
        catalog: Arc<Catalog>,
        host: Arc<dyn PluginHost>,
        feed: Arc<WalFeed>,
    ) -> Result<Self, EngineError> {
        let plugin_dir = match &config.plugin_dir {
            Some(dir) => Some(PluginDir::open(dir).map_err(EngineError::Engine)?),
            None => None,
        };
        let venv = config
            .virtual_env
            .clone()
            .or_else(|| plugin_dir.as_ref().map(|d| d.root().join(".venv")));
        let inner = Arc::new(Inner {
            logs: Arc::new(LogRing::new(config.log_capacity)),
            config,
            plugin_dir,
            venv,
            catalog,
            host,
            tokio: tokio::runtime::Handle::current(),
            python: OnceCell::new(),
            feed,
            metrics: EngineMetrics::default(),
            running: Mutex::new(HashMap::new()),
            requests: RwLock::new(HashMap::new()),
            suspended: Mutex::new(HashMap::new()),
            reconciling: tokio::sync::Mutex::new(()),
        });
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        inner.feed.connect(sender);
        tokio::spawn(triggers::dispatch_wal(Arc::downgrade(&inner), receiver));
        Ok(Self { inner })
    }

    pub fn plugin_dir(&self) -> Option<&std::path::Path> {
        self.inner.plugin_dir.as_ref().map(|d| d.root())
    }

    pub fn logs(&self) -> &Arc<LogRing> {
        &self.inner.logs
    }

    pub fn metrics(&self) -> &EngineMetrics {
        &self.inner.metrics
    }

    /// WAL flushes queued for WAL triggers and not yet taken by them.
    pub fn wal_backlog(&self) -> usize {
        triggers::wal_backlog(&self.inner)
    }

    /// Checks what a new trigger needs before it goes into the catalog: its kind is allowed
    /// and its plugin file is there (downloading a `gh:` plugin).
    pub async fn check_new_trigger(
        &self,
        specification: &TriggerSpecification,
        plugin_filename: &str,
    ) -> Result<(), EngineError> {
        let kind = specification.plugin_type();
        if let Some(allowed) = &self.inner.config.allowed_triggers {
            if !allowed.contains(&kind) {
                return Err(EngineError::Restricted(kind));
            }
        }
        self.inner.resolve_plugin(plugin_filename).await.map(|_| ())
    }

    /// Starts and stops triggers so that exactly the enabled triggers of live databases run.
    pub async fn reconcile(&self) {
        triggers::reconcile(&self.inner).await
    }

    /// Re-runs [`ProcessingEngine::reconcile`] whenever the catalog changes (a database
    /// deleted, a trigger changed by another path), checked every `interval`.
    pub fn spawn_catalog_watch(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut seen = None;
            loop {
                tokio::time::sleep(interval).await;
                let Some(inner) = weak.upgrade() else { return };
                let sequence = inner.catalog.snapshot().sequence();
                if seen != Some(sequence) {
                    seen = Some(sequence);
                    triggers::reconcile(&inner).await;
                }
            }
        })
    }

    /// Runs the request trigger serving `path`; `None` when no running trigger does.
    pub async fn handle_request(
        &self,
        path: &str,
        query_parameters: BTreeMap<String, String>,
        headers: BTreeMap<String, String>,
        body: Vec<u8>,
    ) -> Option<PluginResponse> {
        let trigger = self.inner.requests.read().get(path).cloned()?;
        Some(triggers::run_request(&self.inner, &trigger, query_parameters, headers, body).await)
    }

    /// `POST /api/v3/plugin_test/wal`.
    pub async fn test_wal(&self, request: WalTestRequest) -> Result<TestResponse, EngineError> {
        plugin_test::test_wal(&self.inner, request).await
    }

    /// `POST /api/v3/plugin_test/schedule`.
    pub async fn test_schedule(
        &self,
        request: ScheduleTestRequest,
    ) -> Result<TestResponse, EngineError> {
        plugin_test::test_schedule(&self.inner, request).await
    }

    /// `POST /api/v3/configure/plugin_environment/install_packages` (and `_requirements`
    /// with `requirements`).
    pub async fn install_packages(
        &self,
        packages: Vec<String>,
        requirements: Option<PathBuf>,
    ) -> Result<(), EngineError> {
        if self.inner.config.package_manager == PackageManager::Disabled {
            return Err(EngineError::PackagesDisabled);
        }
        let venv = self.inner.venv.clone().ok_or_else(|| {
            EngineError::Engine(
                "error installing python packages: no plugin directory or virtual environment \
                 configured (start the server with --plugin-dir)"
                    .into(),
            )
        })?;
        if packages.is_empty() && requirements.is_none() {
            return Err(EngineError::Engine(
                "error installing python packages: no packages given".into(),
            ));
        }
        // The interpreter tells which python to create the venv with.
        self.inner.python().await.map_err(EngineError::Engine)?;
        let base = python::base_interpreter().map_err(EngineError::Engine)?;
        packages::ensure_venv(&venv, base).await?;
        packages::install(
            self.inner.config.package_manager,
            &venv,
            &packages,
            requirements.as_deref(),
        )
        .await?;
        python::activate_venv(&venv).map_err(EngineError::Engine)
    }

    /// `POST /api/v3/plugins/files`: writes a plugin file under the plugin directory.
    pub fn write_plugin_file(&self, name: &str, content: &str) -> Result<(), EngineError> {
        self.inner.plugin_dir()?.write(name, content).map(|_| ())
    }

    /// `PUT /api/v3/plugins/files`: replaces the file a trigger of `db` runs (for a package,
    /// its `__init__.py`).
    pub fn replace_trigger_file(
        &self,
        trigger_name: &str,
        content: &str,
    ) -> Result<(), EngineError> {
        let dir = self.inner.plugin_dir()?;
        let snapshot = self.inner.catalog.snapshot();
        let definition = snapshot
            .databases()
            .find_map(|db| db.trigger(trigger_name).cloned())
            .ok_or_else(|| EngineError::Engine(format!("trigger {trigger_name} not found")))?;
        let path = dir.resolve_local(&definition.plugin_filename)?;
        let target = if path.is_dir() {
            path.join("__init__.py")
        } else {
            path
        };
        let relative = target
            .strip_prefix(dir.root())
            .map_err(|_| EngineError::Engine("plugin outside the plugin directory".into()))?;
        dir.write(&relative.to_string_lossy(), content).map(|_| ())
    }

    /// Rows of `_internal`'s `system.plugin_files`: the file of every trigger.
    pub fn plugin_files(&self) -> Vec<PluginFileInfo> {
        let Some(dir) = &self.inner.plugin_dir else {
            return Vec::new();
        };
        let snapshot = self.inner.catalog.snapshot();
        let mut out = Vec::new();
        for db in snapshot.databases() {
            for trigger in db.triggers() {
                if let Ok(path) = dir.relative(&trigger.plugin_filename) {
                    if let Some(info) =
                        plugin_files::file_info(&trigger.name, &trigger.plugin_filename, &path)
                    {
                        out.push(info);
                    }
                }
            }
        }
        out
    }
}

impl Inner {
    fn plugin_dir(&self) -> Result<&PluginDir, EngineError> {
        self.plugin_dir
            .as_ref()
            .ok_or_else(|| EngineError::Plugin("Node not configured with plugin directory".into()))
    }

    /// The interpreter and its threads, started on first use.
    async fn python(&self) -> Result<&PythonPool, String> {
        let threads = self.config.python_threads;
        let venv = self.venv.clone();
        let plugin_dir = self.plugin_dir.as_ref().map(|d| d.root().to_path_buf());
        self.python
            .get_or_init(|| async move {
                tokio::task::spawn_blocking(move || {
                    let venv = venv.filter(|v| packages::venv_python(v).exists());
                    PythonPool::start(threads, venv.as_deref(), plugin_dir.as_deref())
                })
                .await
                .unwrap_or_else(|e| Err(format!("starting Python: {e}")))
            })
            .await
            .as_ref()
            .map_err(|e| format!("the Python interpreter could not start: {e}"))
    }

    /// The absolute path of a plugin (downloading `gh:` plugins).
    async fn resolve_plugin(&self, plugin_filename: &str) -> Result<PathBuf, EngineError> {
        let dir = self.plugin_dir()?;
        match plugin_filename.strip_prefix("gh:") {
            Some(remote) => dir.resolve_remote(&self.config.plugin_repo, remote).await,
            None => dir.resolve_local(plugin_filename),
        }
    }
}
