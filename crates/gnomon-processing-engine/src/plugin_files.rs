//! Plugin files: where a trigger's `plugin_filename` points, and the checks that keep it
//! inside the plugin directory (ENGINE.md §2).

use std::path::{Component, Path, PathBuf};
use std::time::UNIX_EPOCH;

use crate::error::EngineError;

/// Downloaded `gh:` plugins are kept here, under the plugin directory.
const GH_CACHE_DIR: &str = ".gh-plugins";

/// The plugin directory, made absolute once.
#[derive(Debug, Clone)]
pub(crate) struct PluginDir {
    root: PathBuf,
}

impl PluginDir {
    pub(crate) fn open(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("creating plugin directory {}: {e}", dir.display()))?;
        let root = dir
            .canonicalize()
            .map_err(|e| format!("plugin directory {}: {e}", dir.display()))?;
        Ok(Self { root })
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    fn traversal(name: &str) -> EngineError {
        EngineError::Plugin(format!(
            "Path traversal detected: plugin filename '{name}' attempts to access files outside \
             the plugin directory"
        ))
    }

    /// `name` relative to the plugin directory, refused if it could leave it.
    pub(crate) fn relative(&self, name: &str) -> Result<PathBuf, EngineError> {
        let trimmed = name.trim_end_matches('/');
        let relative = Path::new(trimmed);
        if trimmed.is_empty()
            || relative.is_absolute()
            || relative
                .components()
                .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(Self::traversal(name));
        }
        Ok(self.root.join(relative))
    }

    /// The file or package directory a trigger runs, which must exist now.
    pub(crate) fn resolve_local(&self, name: &str) -> Result<PathBuf, EngineError> {
        let path = self.relative(name)?;
        if !path.exists() {
            return Err(EngineError::Plugin(format!(
                "reading plugin file: Plugin not found: {}",
                path.display()
            )));
        }
        let real = path
            .canonicalize()
            .map_err(|e| EngineError::Plugin(format!("reading plugin file: {e}")))?;
        if !real.starts_with(&self.root) {
            return Err(Self::traversal(name));
        }
        if real.is_dir() && !real.join("__init__.py").is_file() {
            return Err(EngineError::Plugin(format!(
                "Multi-file plugin directory must contain __init__.py: {}",
                real.display()
            )));
        }
        Ok(real)
    }

    /// Fetches `gh:<path>` from the plugin repository into the plugin directory's cache.
    pub(crate) async fn resolve_remote(
        &self,
        repo: &str,
        remote_path: &str,
    ) -> Result<PathBuf, EngineError> {
        let local = self.relative(&format!("{GH_CACHE_DIR}/{remote_path}"))?;
        let url = format!("{}{}", repo, remote_path.trim_start_matches('/'));
        let response = reqwest::get(&url).await.map_err(|e| {
            EngineError::Plugin(format!("error fetching plugin from repository: {e}"))
        })?;
        if !response.status().is_success() {
            return Err(EngineError::Plugin(format!(
                "error fetching plugin from repository: {} {url}",
                response.status()
            )));
        }
        let body = response.bytes().await.map_err(|e| {
            EngineError::Plugin(format!("error fetching plugin from repository: {e}"))
        })?;
        if let Some(parent) = local.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| EngineError::Plugin(format!("storing {}: {e}", local.display())))?;
        }
        std::fs::write(&local, &body)
            .map_err(|e| EngineError::Plugin(format!("storing {}: {e}", local.display())))?;
        Ok(local)
    }

    /// Writes a plugin file (`POST /api/v3/plugins/files`), creating its parent directories.
    pub(crate) fn write(&self, name: &str, content: &str) -> Result<PathBuf, EngineError> {
        let path = self.relative(name)?;
        let io = |e: std::io::Error| {
            EngineError::Engine(format!("writing plugin file {}: {e}", path.display()))
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        // Write then rename, so a running trigger never reads half a file.
        let tmp = path.with_extension("gnomon-upload.tmp");
        std::fs::write(&tmp, content).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        Ok(path)
    }
}

/// One row of `_internal`'s `system.plugin_files`.
#[derive(Debug, Clone)]
pub struct PluginFileInfo {
    pub trigger_name: String,
    pub file_name: String,
    pub file_path: String,
    pub size_bytes: i64,
    pub last_modified_ms: i64,
}

pub(crate) fn file_info(trigger: &str, file_name: &str, path: &Path) -> Option<PluginFileInfo> {
    let meta = std::fs::metadata(path).ok()?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    Some(PluginFileInfo {
        trigger_name: trigger.to_string(),
        file_name: file_name.to_string(),
        file_path: path.display().to_string(),
        size_bytes: meta.len() as i64,
        last_modified_ms: modified,
    })
}
