use gnomon_catalog::{CatalogError, PluginType};

/// Why an engine operation failed. The `Display` texts are the bodies the HTTP layer sends.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The plugin file cannot be used: no plugin directory, missing file, path traversal,
    /// download failure (API.md §5.12: 500 `Plugin error: ...`).
    #[error("Plugin error: {0}")]
    Plugin(String),

    /// The engine itself failed: interpreter, virtual environment, package manager.
    #[error("Processing engine error: {0}")]
    Engine(String),

    /// `--restrict-plugin-triggers-to` excludes this kind of trigger (400).
    #[error("invalid request: server is configured to reject {0} plugin triggers")]
    Restricted(PluginType),

    /// `--package-manager disabled` (403).
    #[error(
        "package installation is disabled on this server (--package-manager disabled); \
         install packages into the plugin environment by hand"
    )]
    PackagesDisabled,

    #[error(transparent)]
    Catalog(#[from] CatalogError),
}
