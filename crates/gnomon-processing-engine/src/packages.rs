//! The plugins' virtual environment and package installs (ENGINE.md §9).

use std::path::{Path, PathBuf};
use std::str::FromStr;

use tokio::process::Command;

use crate::error::EngineError;

/// `--package-manager`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PackageManager {
    /// `uv` when it is on the PATH, else pip.
    #[default]
    Discover,
    Pip,
    Uv,
    /// Install endpoints answer 403.
    Disabled,
}

impl FromStr for PackageManager {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "discover" => Ok(Self::Discover),
            "pip" => Ok(Self::Pip),
            "uv" => Ok(Self::Uv),
            "disabled" => Ok(Self::Disabled),
            other => Err(format!(
                "unknown package manager {other:?}: expected discover, pip, uv or disabled"
            )),
        }
    }
}

fn install_error(message: impl std::fmt::Display) -> EngineError {
    EngineError::Engine(format!("error installing python packages: {message}"))
}

pub(crate) fn venv_python(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

/// Creates the venv with the interpreter this process embeds, unless it exists.
pub(crate) async fn ensure_venv(
    venv: &Path,
    base_python: Option<String>,
) -> Result<bool, EngineError> {
    if venv_python(venv).exists() {
        return Ok(false);
    }
    let python = base_python.ok_or_else(|| {
        install_error(
            "cannot find the python executable of the embedded interpreter to create the \
             plugin virtual environment with",
        )
    })?;
    run(Command::new(&python).arg("-m").arg("venv").arg(venv))
        .await
        .map_err(|e| {
            install_error(format!(
                "creating virtual environment {}: {e}",
                venv.display()
            ))
        })?;
    Ok(true)
}

fn uv_available() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("uv").is_file()))
}

/// Installs `packages` (or, with `requirements`, the file's contents) into `venv`.
pub(crate) async fn install(
    manager: PackageManager,
    venv: &Path,
    packages: &[String],
    requirements: Option<&Path>,
) -> Result<(), EngineError> {
    let python = venv_python(venv);
    let use_uv = match manager {
        PackageManager::Disabled => return Err(EngineError::PackagesDisabled),
        PackageManager::Discover => uv_available(),
        // The reference treats `uv` as pip too; use uv only when it is really there.
        PackageManager::Uv => uv_available(),
        PackageManager::Pip => false,
    };
    let mut command = if use_uv {
        let mut c = Command::new("uv");
        c.arg("pip").arg("install").arg("--python").arg(&python);
        c
    } else {
        let mut c = Command::new(&python);
        c.args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
        ]);
        c
    };
    if let Some(requirements) = requirements {
        command.arg("-r").arg(requirements);
    } else {
        command.args(packages);
    }
    run(&mut command).await.map_err(install_error)
}

/// Runs a command; its stderr (or stdout) is the error when it fails.
async fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run {:?}: {e}", command.as_std().get_program()))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let text = if stderr.trim().is_empty() {
        String::from_utf8_lossy(&output.stdout).into_owned()
    } else {
        stderr.into_owned()
    };
    Err(format!("{} ({})", text.trim(), output.status))
}
