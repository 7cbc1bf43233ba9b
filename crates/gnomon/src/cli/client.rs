//! What every client command shares: `--host`, `--token`, the HTTP client and error reporting.

use clap::Args;
use reqwest::{Method, RequestBuilder, Response, StatusCode};

/// Where the server is and how to authenticate.
#[derive(Debug, Clone, Args)]
pub struct ConnectionArgs {
    /// URL of the server.
    #[arg(
        short = 'H',
        long = "host",
        env = "GNOMON_HOST",
        default_value = "http://127.0.0.1:8181",
        global = true
    )]
    pub host: String,

    /// Token sent as `Authorization: Bearer <token>`.
    #[arg(long, env = "GNOMON_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
}

/// A failed client command: what to print and the process exit code.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

pub type CliResult<T> = Result<T, CliError>;

/// An HTTP client bound to one server.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    /// `Create`, `Delete`, `Show`: the start of every error message.
    command: &'static str,
}

impl Client {
    pub fn new(conn: &ConnectionArgs, command: &'static str) -> CliResult<Self> {
        let base = conn.host.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(CliError {
                message: format!(
                    "{command} command failed: invalid --host {:?}: expected http://… or https://…",
                    conn.host
                ),
            });
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("gnomon-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError {
                message: format!("{command} command failed: building the HTTP client: {e}"),
            })?;
        Ok(Self {
            http,
            base,
            token: conn.token.clone(),
            command,
        })
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        req
    }

    /// Sends `req`; a transport failure or a non-2xx answer is an error quoting the server.
    pub async fn send(&self, req: RequestBuilder) -> CliResult<Response> {
        let response = req.send().await.map_err(|e| CliError {
            message: format!(
                "{} command failed: could not reach the server at {}: {e}",
                self.command, self.base
            ),
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        Err(self.server_error(status, &body))
    }

    pub fn server_error(&self, status: StatusCode, body: &str) -> CliError {
        CliError {
            message: format!(
                "{} command failed: server responded with error [{}]: {}",
                self.command,
                status,
                body.trim()
            ),
        }
    }

    pub fn fail(&self, what: impl std::fmt::Display) -> CliError {
        CliError {
            message: format!("{} command failed: {what}", self.command),
        }
    }
}
