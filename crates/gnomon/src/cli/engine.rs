//! Processing-engine commands: `create|delete|enable|disable trigger`, `test wal_plugin|
//! schedule_plugin`, `install package` and `show plugins` (the last runs through
//! [`super::manage`]'s SQL helper).
//!
//! Each command is split in two: a pure function turning the parsed flags into an
//! [`ApiRequest`] (method, path, query string, JSON body), and the code that sends it. The
//! split keeps the HTTP contract (which keys, which defaults, query string or body) testable
//! without a server; the black-box tests cover the sending.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use reqwest::header::CONTENT_TYPE;
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::client::{CliResult, Client, ConnectionArgs};
use super::manage::DatabaseArg;

const TRIGGER_PATH: &str = "/api/v3/configure/processing_engine_trigger";

/// One HTTP call, before it is sent.
#[derive(Debug, Clone, PartialEq)]
struct ApiRequest {
    pub method: Method,
    pub path: &'static str,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<Value>,
}

impl ApiRequest {
    fn post_json(path: &'static str, body: Value) -> Self {
        Self {
            method: Method::POST,
            path,
            query: Vec::new(),
            body: Some(body),
        }
    }

    /// Sends the request; a non-2xx answer is an error quoting the server.
    pub async fn send(&self, client: &Client) -> CliResult<reqwest::Response> {
        let mut req = client.request(self.method.clone(), self.path);
        if !self.query.is_empty() {
            req = req.query(&self.query);
        }
        if let Some(body) = &self.body {
            req = req
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        client.send(req).await
    }
}

/// `key=value`: the value is everything after the first `=`, so values may contain `=`
/// (`query=a=b`) but keys may not.
fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected key=value, got {s:?}")),
    }
}

/// `k=v` pairs as the JSON object the server expects (a later duplicate key wins, as in a
/// query string).
fn arguments_object(pairs: &[(String, String)]) -> Value {
    let map: Map<String, Value> = pairs
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    Value::Object(map)
}

// ------------------------------------------------------------------------------------------
// create / delete / enable / disable trigger
// ------------------------------------------------------------------------------------------

/// What the trigger does when its plugin raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ErrorBehavior {
    /// Record the error in `system.processing_engine_logs` and go on with the next event.
    Log,
    /// Run the same event again until it succeeds.
    Retry,
    /// Stop the trigger.
    Disable,
}

impl ErrorBehavior {
    fn param(self) -> &'static str {
        match self {
            ErrorBehavior::Log => "log",
            ErrorBehavior::Retry => "retry",
            ErrorBehavior::Disable => "disable",
        }
    }
}

/// `gnomon create trigger`.
#[derive(Debug, Args)]
pub struct CreateTrigger {
    /// Name of the new trigger.
    name: String,
    #[command(flatten)]
    db: DatabaseArg,
    /// Plugin file (or directory with `__init__.py`) relative to the server's plugin dir, or a
    /// `gh:` path; with --upload, a local file or directory to upload first.
    #[arg(long = "path", visible_alias = "plugin-filename")]
    path: String,
    /// When the trigger fires: `table:<name>`, `all_tables`, `every:<duration>`,
    /// `cron:<6-field expression>` or `request:<path>`.
    #[arg(long = "trigger-spec")]
    trigger_spec: String,
    /// Arguments passed to the plugin as `args`, e.g. `k1=v1,k2=v2`.
    #[arg(long, value_delimiter = ',', value_parser = parse_key_value)]
    trigger_arguments: Option<Vec<(String, String)>>,
    /// Create the trigger without starting it.
    #[arg(long)]
    disabled: bool,
    /// Let invocations of this trigger overlap instead of running one at a time.
    #[arg(long)]
    run_asynchronous: bool,
    /// What to do when the plugin raises.
    #[arg(long, value_enum, default_value = "log")]
    error_behavior: ErrorBehavior,
    /// Upload the local file (or directory) given by --path to the server's plugin dir first.
    #[arg(long)]
    upload: bool,
}

/// The create request for a plugin that the server knows as `plugin_filename`.
fn create_trigger_request(args: &CreateTrigger, plugin_filename: &str) -> ApiRequest {
    ApiRequest::post_json(
        TRIGGER_PATH,
        json!({
            "db": args.db.database,
            "plugin_filename": plugin_filename,
            "trigger_name": args.name,
            "trigger_specification": args.trigger_spec,
            "trigger_settings": {
                "run_async": args.run_asynchronous,
                "error_behavior": args.error_behavior.param(),
            },
            "trigger_arguments": args.trigger_arguments.as_deref().map(arguments_object),
            "disabled": args.disabled,
        }),
    )
}

/// `POST /api/v3/plugins/files` for one file under the plugin dir.
fn upload_request(plugin_name: &str, content: &str) -> ApiRequest {
    ApiRequest::post_json(
        "/api/v3/plugins/files",
        json!({ "plugin_name": plugin_name, "content": content }),
    )
}

/// The uploads for a local plugin and the name the trigger then uses: a file goes up under
/// its file name; a directory (a multi-file plugin) goes up file by file under its own name,
/// every `.py` below it except `__pycache__`.
fn plugin_uploads(local: &Path) -> Result<(String, Vec<ApiRequest>), String> {
    let name = local
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{}: not a file or directory name", local.display()))?
        .to_string();
    let meta = std::fs::metadata(local).map_err(|e| format!("reading {}: {e}", local.display()))?;
    if meta.is_file() {
        let content = std::fs::read_to_string(local)
            .map_err(|e| format!("reading {}: {e}", local.display()))?;
        return Ok((name.clone(), vec![upload_request(&name, &content)]));
    }
    if !local.join("__init__.py").is_file() {
        return Err(format!(
            "Multi-file plugin directory must contain __init__.py: {}",
            local.display()
        ));
    }
    let mut files = Vec::new();
    collect_python_files(local, Path::new(""), &mut files)?;
    files.sort();
    let mut requests = Vec::with_capacity(files.len());
    for relative in files {
        let full = local.join(&relative);
        let content = std::fs::read_to_string(&full)
            .map_err(|e| format!("reading {}: {e}", full.display()))?;
        // The server's paths use `/` whatever the client's platform.
        let mut remote = name.clone();
        for part in relative.iter() {
            remote.push('/');
            remote.push_str(&part.to_string_lossy());
        }
        requests.push(upload_request(&remote, &content));
    }
    Ok((name, requests))
}

fn collect_python_files(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let dir = root.join(rel);
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("reading {}: {e}", dir.display()))?;
        let file_name = entry.file_name();
        let ty = entry
            .file_type()
            .map_err(|e| format!("reading {}: {e}", entry.path().display()))?;
        let rel_child = rel.join(&file_name);
        if ty.is_dir() {
            if file_name != "__pycache__" {
                collect_python_files(root, &rel_child, out)?;
            }
        } else if ty.is_file() && Path::new(&file_name).extension().is_some_and(|e| e == "py") {
            out.push(rel_child);
        }
    }
    Ok(())
}

pub async fn create_trigger(client: &Client, args: CreateTrigger) -> CliResult<()> {
    let plugin_filename = if args.upload {
        let (name, uploads) = plugin_uploads(Path::new(&args.path)).map_err(|e| client.fail(e))?;
        for upload in &uploads {
            upload.send(client).await?;
        }
        name
    } else {
        args.path.clone()
    };
    create_trigger_request(&args, &plugin_filename)
        .send(client)
        .await?;
    println!("Trigger {} created successfully", args.name);
    Ok(())
}

/// `gnomon delete trigger`.
#[derive(Debug, Args)]
pub struct DeleteTrigger {
    name: String,
    #[command(flatten)]
    db: DatabaseArg,
    /// Delete the trigger even if it is running.
    #[arg(long)]
    force: bool,
}

fn delete_trigger_request(args: &DeleteTrigger) -> ApiRequest {
    ApiRequest {
        method: Method::DELETE,
        path: TRIGGER_PATH,
        query: vec![
            ("db", args.db.database.clone()),
            ("trigger_name", args.name.clone()),
            ("force", args.force.to_string()),
        ],
        body: None,
    }
}

pub async fn delete_trigger(client: &Client, args: DeleteTrigger) -> CliResult<()> {
    delete_trigger_request(&args).send(client).await?;
    println!("Trigger {} deleted successfully", args.name);
    Ok(())
}

/// `gnomon enable …` / `gnomon disable …`.
#[derive(Debug, Args)]
pub struct ToggleArgs {
    #[command(flatten)]
    conn: ConnectionArgs,
    #[command(subcommand)]
    what: ToggleCommand,
}

#[derive(Debug, Subcommand)]
enum ToggleCommand {
    /// A processing-engine trigger.
    Trigger {
        name: String,
        #[command(flatten)]
        db: DatabaseArg,
    },
}

fn toggle_trigger_request(db: &str, name: &str, enable: bool) -> ApiRequest {
    ApiRequest {
        method: Method::POST,
        path: if enable {
            "/api/v3/configure/processing_engine_trigger/enable"
        } else {
            "/api/v3/configure/processing_engine_trigger/disable"
        },
        // The server reads these from the query string only (API.md §5.14).
        query: vec![("db", db.to_string()), ("trigger_name", name.to_string())],
        body: None,
    }
}

pub async fn enable(args: ToggleArgs) -> CliResult<()> {
    toggle(args, true).await
}

pub async fn disable(args: ToggleArgs) -> CliResult<()> {
    toggle(args, false).await
}

async fn toggle(args: ToggleArgs, enable: bool) -> CliResult<()> {
    let client = Client::new(&args.conn, if enable { "Enable" } else { "Disable" })?;
    let ToggleCommand::Trigger { name, db } = args.what;
    toggle_trigger_request(&db.database, &name, enable)
        .send(&client)
        .await?;
    let state = if enable { "enabled" } else { "disabled" };
    println!("Trigger {name} {state} successfully");
    Ok(())
}

// ------------------------------------------------------------------------------------------
// test wal_plugin / schedule_plugin
// ------------------------------------------------------------------------------------------

#[derive(Debug, Args)]
pub struct TestArgs {
    #[command(flatten)]
    conn: ConnectionArgs,
    #[command(subcommand)]
    what: TestCommand,
}

/// Flags shared by both plugin tests.
#[derive(Debug, Args)]
struct PluginTestArgs {
    /// Plugin file, relative to the server's plugin dir.
    filename: String,
    #[command(flatten)]
    db: DatabaseArg,
    /// Arguments passed to the plugin as `args`, e.g. `k1=v1,k2=v2`.
    #[arg(long, value_delimiter = ',', value_parser = parse_key_value)]
    input_arguments: Option<Vec<(String, String)>>,
    /// Name of the cache namespace shared by test runs (the server's default otherwise).
    #[arg(long)]
    cache_name: Option<String>,
}

#[derive(Debug, Subcommand)]
enum TestCommand {
    /// Run a WAL plugin once on the given line protocol; its writes are returned, not applied.
    #[command(name = "wal_plugin", alias = "wal-plugin")]
    WalPlugin {
        #[command(flatten)]
        plugin: PluginTestArgs,
        /// Line protocol given to the plugin.
        #[arg(long, required_unless_present = "file", conflicts_with = "file")]
        lp: Option<String>,
        /// Read the line protocol from this file.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Run a schedule plugin once at the schedule's next instant; writes are not applied.
    #[command(name = "schedule_plugin", alias = "schedule-plugin")]
    SchedulePlugin {
        #[command(flatten)]
        plugin: PluginTestArgs,
        /// Cron expression with seconds first (default: the server's, every second).
        #[arg(long)]
        schedule: Option<String>,
    },
}

/// The body keys both tests share; optional ones are left out rather than sent as `null`.
fn plugin_test_body(plugin: &PluginTestArgs) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("filename".into(), json!(plugin.filename));
    body.insert("database".into(), json!(plugin.db.database));
    if let Some(args) = &plugin.input_arguments {
        body.insert("input_arguments".into(), arguments_object(args));
    }
    if let Some(cache) = &plugin.cache_name {
        body.insert("cache_name".into(), json!(cache));
    }
    body
}

fn wal_test_request(plugin: &PluginTestArgs, input_lp: &str) -> ApiRequest {
    let mut body = plugin_test_body(plugin);
    body.insert("input_lp".into(), json!(input_lp));
    ApiRequest::post_json("/api/v3/plugin_test/wal", Value::Object(body))
}

fn schedule_test_request(plugin: &PluginTestArgs, schedule: Option<&str>) -> ApiRequest {
    let mut body = plugin_test_body(plugin);
    if let Some(s) = schedule {
        body.insert("schedule".into(), json!(s));
    }
    ApiRequest::post_json("/api/v3/plugin_test/schedule", Value::Object(body))
}

pub async fn test(args: TestArgs) -> CliResult<()> {
    let client = Client::new(&args.conn, "Test")?;
    let request = match &args.what {
        TestCommand::WalPlugin { plugin, lp, file } => {
            let lp = match (lp, file) {
                (Some(lp), _) => lp.clone(),
                (None, Some(path)) => std::fs::read_to_string(path)
                    .map_err(|e| client.fail(format!("reading {}: {e}", path.display())))?,
                (None, None) => unreachable!("clap requires --lp or --file"),
            };
            wal_test_request(plugin, &lp)
        }
        TestCommand::SchedulePlugin { plugin, schedule } => {
            schedule_test_request(plugin, schedule.as_deref())
        }
    };
    let response = request.send(&client).await?;
    let text = response
        .text()
        .await
        .map_err(|e| client.fail(format!("reading the response: {e}")))?;
    // Pretty-printed like influxdb3 does; a body that is not JSON is shown as it came.
    if serde_json::from_str::<Value>(&text).is_ok() {
        println!("{}", indent_json(&text));
    } else {
        println!("{}", text.trim_end());
    }
    Ok(())
}

/// Re-indents valid JSON text keeping the server's key order (`log_lines`, then
/// `database_writes`, then `errors`): parsing into `serde_json::Value` would sort the keys,
/// and turning on serde_json's `preserve_order` would change every crate's JSON.
fn indent_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = text.trim().chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
                // An empty object or array stays on one line.
                if matches!(chars.peek(), Some('}' | ']')) {
                    out.push(chars.next().unwrap_or_default());
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

// ------------------------------------------------------------------------------------------
// install package
// ------------------------------------------------------------------------------------------

#[derive(Debug, Args)]
pub struct InstallArgs {
    #[command(flatten)]
    conn: ConnectionArgs,
    #[command(subcommand)]
    what: InstallCommand,
}

#[derive(Debug, Subcommand)]
enum InstallCommand {
    /// Install Python packages into the server's plugin environment.
    #[command(alias = "packages")]
    Package {
        /// Packages, as pip understands them (`name`, `name==1.2`).
        #[arg(
            required_unless_present = "requirements",
            conflicts_with = "requirements"
        )]
        packages: Vec<String>,
        /// A requirements file on the server's file system.
        #[arg(short = 'r', long)]
        requirements: Option<String>,
    },
}

fn install_packages_request(packages: &[String]) -> ApiRequest {
    ApiRequest::post_json(
        "/api/v3/configure/plugin_environment/install_packages",
        json!({ "packages": packages }),
    )
}

/// The server reads the requirements file itself; a relative path that exists here is made
/// absolute, since the server's working directory is not the user's.
fn install_requirements_request(location: &str) -> ApiRequest {
    let location = match std::fs::canonicalize(location) {
        Ok(abs) if Path::new(location).is_relative() => abs.display().to_string(),
        _ => location.to_string(),
    };
    ApiRequest::post_json(
        "/api/v3/configure/plugin_environment/install_requirements",
        json!({ "requirements_location": location }),
    )
}

pub async fn install(args: InstallArgs) -> CliResult<()> {
    let client = Client::new(&args.conn, "Install")?;
    let InstallCommand::Package {
        packages,
        requirements,
    } = args.what;
    match requirements {
        Some(location) => {
            install_requirements_request(&location)
                .send(&client)
                .await?;
            println!("Requirements from {location} installed successfully");
        }
        None => {
            install_packages_request(&packages).send(&client).await?;
            println!("Packages installed successfully: {}", packages.join(", "));
        }
    }
    Ok(())
}

/// The SQL behind `gnomon show plugins`.
pub const SHOW_PLUGINS_SQL: &str =
    "SELECT * FROM system.processing_engine_triggers ORDER BY trigger_name";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cli, Command};
    use clap::Parser;

    fn parse(argv: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("gnomon").chain(argv.iter().copied()))
    }

    fn create_args(argv: &[&str]) -> CreateTrigger {
        let cli = parse(argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        match cli.command {
            Command::Create(c) => c
                .into_trigger()
                .unwrap_or_else(|| panic!("not create trigger: {argv:?}")),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn create_trigger_full_body_with_defaults() {
        let args = create_args(&[
            "create",
            "trigger",
            "t1",
            "-d",
            "foo",
            "--path",
            "p.py",
            "--trigger-spec",
            "table:cpu",
        ]);
        let req = create_trigger_request(&args, "p.py");
        assert_eq!(req.method, Method::POST);
        assert_eq!(req.path, "/api/v3/configure/processing_engine_trigger");
        assert!(req.query.is_empty());
        assert_eq!(
            req.body.unwrap(),
            json!({
                "db": "foo",
                "plugin_filename": "p.py",
                "trigger_name": "t1",
                "trigger_specification": "table:cpu",
                "trigger_settings": {"run_async": false, "error_behavior": "log"},
                "trigger_arguments": null,
                "disabled": false,
            })
        );
    }

    #[test]
    fn create_trigger_every_flag() {
        let args = create_args(&[
            "create",
            "trigger",
            "--plugin-filename",
            "dir/p.py",
            "--database",
            "db2",
            "--trigger-spec",
            "every:10s",
            "--trigger-arguments",
            "query_path=/metrics?format=json,whatever=hello",
            "--trigger-arguments",
            "third=",
            "--disabled",
            "--run-asynchronous",
            "--error-behavior",
            "retry",
            "named",
        ]);
        assert!(!args.upload);
        let body = create_trigger_request(&args, &args.path).body.unwrap();
        assert_eq!(body["plugin_filename"], "dir/p.py");
        assert_eq!(body["trigger_name"], "named");
        assert_eq!(body["db"], "db2");
        assert_eq!(body["disabled"], true);
        assert_eq!(
            body["trigger_settings"],
            json!({"run_async": true, "error_behavior": "retry"})
        );
        assert_eq!(
            body["trigger_arguments"],
            json!({"query_path": "/metrics?format=json", "whatever": "hello", "third": ""})
        );
    }

    #[test]
    fn create_trigger_rejects_bad_flags() {
        let base = [
            "create",
            "trigger",
            "t",
            "-d",
            "db",
            "--path",
            "p.py",
            "--trigger-spec",
            "all_tables",
        ];
        let with = |extra: &[&str]| {
            let mut argv = base.to_vec();
            argv.extend_from_slice(extra);
            parse(&argv)
        };
        assert!(with(&[]).is_ok());
        assert!(with(&["--error-behavior", "explode"]).is_err());
        assert!(with(&["--trigger-arguments", "novalue"]).is_err());
        assert!(with(&["--trigger-arguments", "=v"]).is_err());
        // --path and --trigger-spec are required.
        assert!(parse(&["create", "trigger", "t", "-d", "db", "--path", "p.py"]).is_err());
        assert!(parse(&["create", "trigger", "t", "-d", "db", "--trigger-spec", "x"]).is_err());
    }

    #[test]
    fn upload_of_a_file_and_of_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("single.py");
        std::fs::write(&file, "def process_writes(a, b, c):\n    pass\n").unwrap();
        let (name, reqs) = plugin_uploads(&file).unwrap();
        assert_eq!(name, "single.py");
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].path, "/api/v3/plugins/files");
        assert_eq!(
            reqs[0].body.as_ref().unwrap(),
            &json!({"plugin_name": "single.py",
                    "content": "def process_writes(a, b, c):\n    pass\n"})
        );

        let pkg = dir.path().join("pkg");
        std::fs::create_dir_all(pkg.join("sub")).unwrap();
        std::fs::create_dir_all(pkg.join("__pycache__")).unwrap();
        std::fs::write(pkg.join("__init__.py"), "from .sub import x\n").unwrap();
        std::fs::write(pkg.join("sub/x.py"), "x = 1\n").unwrap();
        std::fs::write(pkg.join("notes.txt"), "not python").unwrap();
        std::fs::write(pkg.join("__pycache__/y.py"), "skip").unwrap();
        let (name, reqs) = plugin_uploads(&pkg).unwrap();
        assert_eq!(name, "pkg");
        let names: Vec<&Value> = reqs
            .iter()
            .map(|r| &r.body.as_ref().unwrap()["plugin_name"])
            .collect();
        assert_eq!(names, [&json!("pkg/__init__.py"), &json!("pkg/sub/x.py")]);

        std::fs::remove_file(pkg.join("__init__.py")).unwrap();
        let err = plugin_uploads(&pkg).unwrap_err();
        assert!(err.contains("must contain __init__.py"), "{err}");
        let err = plugin_uploads(&dir.path().join("absent.py")).unwrap_err();
        assert!(err.contains("absent.py"), "{err}");
    }

    #[test]
    fn delete_enable_disable_use_the_query_string() {
        let cli = parse(&["delete", "trigger", "t9", "-d", "db", "--force"]).unwrap();
        let Command::Delete(d) = cli.command else {
            panic!("not delete")
        };
        let d = d.into_trigger().expect("delete trigger");
        let req = delete_trigger_request(&d);
        assert_eq!(req.method, Method::DELETE);
        assert_eq!(req.body, None);
        assert_eq!(
            req.query,
            vec![
                ("db", "db".to_string()),
                ("trigger_name", "t9".to_string()),
                ("force", "true".to_string())
            ]
        );
        let cli = parse(&["delete", "trigger", "t9", "-d", "db"]).unwrap();
        let Command::Delete(d) = cli.command else {
            panic!("not delete")
        };
        assert_eq!(
            delete_trigger_request(&d.into_trigger().unwrap()).query[2],
            ("force", "false".to_string())
        );

        for (verb, suffix) in [("enable", "/enable"), ("disable", "/disable")] {
            let cli = parse(&[verb, "trigger", "t2", "-d", "db3"]).unwrap();
            let (args, enable) = match cli.command {
                Command::Enable(a) => (a, true),
                Command::Disable(a) => (a, false),
                other => panic!("parsed as {other:?}"),
            };
            assert_eq!(enable, verb == "enable");
            let ToggleCommand::Trigger { name, db } = args.what;
            let req = toggle_trigger_request(&db.database, &name, enable);
            assert!(req.path.ends_with(suffix), "{}", req.path);
            assert_eq!(req.method, Method::POST);
            assert_eq!(req.body, None);
            assert_eq!(
                req.query,
                vec![
                    ("db", "db3".to_string()),
                    ("trigger_name", "t2".to_string())
                ]
            );
        }
    }

    fn test_command(argv: &[&str]) -> TestCommand {
        match parse(argv)
            .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
            .command
        {
            Command::Test(t) => t.what,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn wal_plugin_test_body() {
        let TestCommand::WalPlugin { plugin, lp, file } = test_command(&[
            "test",
            "wal_plugin",
            "p.py",
            "-d",
            "foo",
            "--lp",
            "cpu,host=a f=1i 500",
            "--input-arguments",
            "arg1=v,arg2=w",
            "--cache-name",
            "c1",
        ]) else {
            panic!("not wal_plugin")
        };
        assert_eq!(file, None);
        let req = wal_test_request(&plugin, lp.as_deref().unwrap());
        assert_eq!(req.path, "/api/v3/plugin_test/wal");
        assert_eq!(
            req.body.unwrap(),
            json!({"filename": "p.py", "database": "foo", "input_lp": "cpu,host=a f=1i 500",
                   "input_arguments": {"arg1": "v", "arg2": "w"}, "cache_name": "c1"})
        );

        // Optional keys are absent, not null; --lp and --file exclude each other, one needed.
        let TestCommand::WalPlugin { plugin, .. } =
            test_command(&["test", "wal_plugin", "p.py", "-d", "foo", "--file", "x.lp"])
        else {
            panic!("not wal_plugin")
        };
        let body = wal_test_request(&plugin, "m f=1").body.unwrap();
        assert_eq!(
            body,
            json!({"filename": "p.py", "database": "foo", "input_lp": "m f=1"})
        );
        assert!(parse(&["test", "wal_plugin", "p.py", "-d", "foo"]).is_err());
        assert!(parse(&[
            "test",
            "wal_plugin",
            "p.py",
            "-d",
            "foo",
            "--lp",
            "m f=1",
            "--file",
            "x"
        ])
        .is_err());
    }

    #[test]
    fn schedule_plugin_test_body() {
        let TestCommand::SchedulePlugin { plugin, schedule } = test_command(&[
            "test",
            "schedule_plugin",
            "s.py",
            "-d",
            "foo",
            "--schedule",
            "*/5 * * * * *",
            "--input-arguments",
            "k=v",
        ]) else {
            panic!("not schedule_plugin")
        };
        let req = schedule_test_request(&plugin, schedule.as_deref());
        assert_eq!(req.path, "/api/v3/plugin_test/schedule");
        assert_eq!(
            req.body.unwrap(),
            json!({"filename": "s.py", "database": "foo", "schedule": "*/5 * * * * *",
                   "input_arguments": {"k": "v"}})
        );
        let TestCommand::SchedulePlugin { plugin, schedule } =
            test_command(&["test", "schedule_plugin", "s.py", "-d", "foo"])
        else {
            panic!("not schedule_plugin")
        };
        let body = schedule_test_request(&plugin, schedule.as_deref())
            .body
            .unwrap();
        assert_eq!(body, json!({"filename": "s.py", "database": "foo"}));
    }

    #[test]
    fn install_packages_or_requirements() {
        let install = |argv: &[&str]| match parse(argv) {
            Ok(Cli {
                command: Command::Install(i),
            }) => Ok(i.what),
            Ok(other) => panic!("parsed as {other:?}"),
            Err(e) => Err(e),
        };
        let InstallCommand::Package {
            packages,
            requirements,
        } = install(&["install", "package", "six==1.16.0", "pandas"]).unwrap();
        assert_eq!(requirements, None);
        let req = install_packages_request(&packages);
        assert_eq!(
            req.path,
            "/api/v3/configure/plugin_environment/install_packages"
        );
        assert_eq!(
            req.body.unwrap(),
            json!({"packages": ["six==1.16.0", "pandas"]})
        );

        let InstallCommand::Package { requirements, .. } =
            install(&["install", "package", "-r", "/srv/req.txt"]).unwrap();
        let req = install_requirements_request(requirements.as_deref().unwrap());
        assert_eq!(
            req.path,
            "/api/v3/configure/plugin_environment/install_requirements"
        );
        assert_eq!(
            req.body.unwrap(),
            json!({"requirements_location": "/srv/req.txt"})
        );
        // A relative path to a file that exists here goes out absolute.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("requirements.txt");
        std::fs::write(&file, "six\n").unwrap();
        let abs = install_requirements_request(file.to_str().unwrap());
        assert_eq!(
            abs.body.unwrap()["requirements_location"],
            json!(file.canonicalize().unwrap().display().to_string())
        );

        assert!(install(&["install", "package"]).is_err());
        assert!(install(&["install", "package", "six", "-r", "req.txt"]).is_err());
    }

    #[test]
    fn show_plugins_parses() {
        let cli = parse(&["show", "plugins", "-d", "db", "--format", "json"]).unwrap();
        assert!(matches!(cli.command, Command::Show(_)), "{cli:?}");
        assert!(SHOW_PLUGINS_SQL.contains("system.processing_engine_triggers"));
    }

    #[test]
    fn json_is_indented_in_the_servers_key_order() {
        let text = r#"{"log_lines":["INFO: a, b: {c}","x \\\" y"],"database_writes":{},"errors":[],"z":{"k":[1, 2.5,null,true]}}"#;
        let pretty = indent_json(text);
        assert_eq!(
            pretty,
            "{\n  \"log_lines\": [\n    \"INFO: a, b: {c}\",\n    \"x \\\\\\\" y\"\n  ],\n  \
             \"database_writes\": {},\n  \"errors\": [],\n  \"z\": {\n    \"k\": [\n      \
             1,\n      2.5,\n      null,\n      true\n    ]\n  }\n}"
        );
        // Same value, and for key-sorted input the same text as serde_json's pretty printer.
        let reparsed: Value = serde_json::from_str(&pretty).unwrap();
        assert_eq!(reparsed, serde_json::from_str::<Value>(text).unwrap());
        let sorted = r#"{"a":[1,{"b":"c"}],"d":{}}"#;
        let value: Value = serde_json::from_str(sorted).unwrap();
        assert_eq!(
            indent_json(sorted),
            serde_json::to_string_pretty(&value).unwrap()
        );
    }

    #[test]
    fn key_value_parsing() {
        assert_eq!(
            parse_key_value("a=b=c").unwrap(),
            ("a".to_string(), "b=c".to_string())
        );
        assert_eq!(
            parse_key_value("a=").unwrap(),
            ("a".to_string(), String::new())
        );
        assert!(parse_key_value("a").is_err());
        assert!(parse_key_value("=b").is_err());
        assert_eq!(
            arguments_object(&[("k".into(), "1".into()), ("k".into(), "2".into())]),
            json!({"k": "2"})
        );
    }
}
