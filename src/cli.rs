//! The `ferrogate` command line: `serve`, `mock-upstream`, `check-config`. The Python console
//! script and `python -m ferrogate` call [`run`]; so does the Rust binary.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ServerRuntime};
use crate::gateway::Gateway;
use crate::mock::{MockOptions, RunningMock};
use crate::server;

#[derive(Parser, Debug)]
#[command(
    name = "ferrogate",
    version,
    about = "A fast LLM gateway: one OpenAI-compatible API in front of many providers."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway's HTTP server (OpenAI-compatible API).
    Serve(ServeArgs),
    /// Run a mock LLM provider speaking the providers' wire formats, to test or rehearse a setup.
    MockUpstream(MockArgs),
    /// Load-test a running gateway (or any OpenAI-compatible server) and report latency,
    /// throughput, errors and the gateway's own overhead.
    Bench(BenchArgs),
    /// Validate a config file and print the resolved providers.
    CheckConfig {
        /// JSON or YAML config file.
        file: PathBuf,
    },
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Config file (JSON or YAML). Default: $FERROGATE_CONFIG, else built-in defaults.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Address to listen on (overrides server.host).
    #[arg(long)]
    host: Option<String>,
    /// Port to listen on (overrides server.port).
    #[arg(long, short)]
    port: Option<u16>,
    /// Log level or filter, e.g. `debug` or `info,ferrogate=debug` (overrides logging.level).
    #[arg(long)]
    log_level: Option<String>,
    /// Worker threads (overrides server.threads). Default: one per core.
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Args, Debug)]
struct BenchArgs {
    /// Base URL of the server under test.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Instead of --url: start a gateway with this config in this process, every provider it
    /// uses pointed at a built-in mock upstream, and load-test that.
    #[arg(long, value_name = "FILE", conflicts_with = "url")]
    config: Option<PathBuf>,
    /// With --config: delay the mock adds before each answer, in milliseconds.
    #[arg(long, default_value_t = 0.0, requires = "config")]
    mock_latency_ms: f64,
    /// Endpoint path.
    #[arg(long, default_value = "/v1/chat/completions")]
    path: String,
    #[arg(long, short, default_value = "gpt-4o-mini")]
    model: String,
    /// Requests per second (0: as fast as --concurrency allows).
    #[arg(long, short, default_value_t = 100.0)]
    rate: f64,
    /// How long to send, e.g. 30s or 2m.
    #[arg(long, short, default_value = "10s", value_parser = crate::config::parse_duration)]
    duration: Duration,
    /// Requests in flight at most.
    #[arg(long, short, default_value_t = 256)]
    concurrency: usize,
    /// Stream the responses (also measures time to first byte).
    #[arg(long)]
    stream: bool,
    /// Words in the prompt.
    #[arg(long, default_value_t = 16)]
    prompt_words: usize,
    /// Count the values of this response header per second (e.g. x-ferrogate-deployment).
    #[arg(long)]
    track_header: Option<String>,
    /// Bearer token to send.
    #[arg(long, env = "FERROGATE_BENCH_API_KEY")]
    api_key: Option<String>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct MockArgs {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, short, default_value_t = 9090)]
    port: u16,
    /// Delay added before every answer, in milliseconds.
    #[arg(long, default_value_t = 0.0)]
    latency_ms: f64,
    /// Fraction of requests (0 to 1) answered with --error-status.
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// HTTP status of injected errors (429 also sends Retry-After).
    #[arg(long, default_value_t = 500)]
    error_status: u16,
    /// Require this API key (as a real provider would).
    #[arg(long)]
    api_key: Option<String>,
    /// Pause between streamed chunks, in milliseconds.
    #[arg(long, default_value_t = 0.0)]
    chunk_delay_ms: f64,
    /// Embedding size when a request does not set `dimensions`.
    #[arg(long, default_value_t = 16)]
    embedding_dims: usize,
    /// Bedrock: verify SigV4 signatures against this access key id (with --aws-secret-access-key).
    #[arg(long, requires = "aws_secret_access_key")]
    aws_access_key_id: Option<String>,
    /// Bedrock: the secret access key SigV4 signatures are checked with.
    #[arg(long, requires = "aws_access_key_id")]
    aws_secret_access_key: Option<String>,
    /// A Google service-account key file whose signed token requests the mock's OAuth endpoint
    /// (`/oauth2/token`, for Vertex AI) accepts, checking their signature.
    #[arg(long, value_name = "FILE")]
    google_service_account: Option<PathBuf>,
}

/// Runs the command line; returns the process exit code.
pub fn run(args: Vec<String>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match cli.command {
        Command::Serve(a) => serve(a),
        Command::MockUpstream(a) => mock_upstream(a),
        Command::Bench(a) => bench(a),
        Command::CheckConfig { file } => check_config(file),
    }
}

/// Whether these arguments can be run by the native `ferrogate` executable instead of inside a
/// Python interpreter: a `serve` whose config loads and names no Python plugin. Anything else
/// (other commands, a config with errors, which the in-process run reports) says no.
pub fn runs_natively(args: &[String]) -> bool {
    let Ok(cli) = Cli::try_parse_from(args) else {
        return false;
    };
    let Command::Serve(serve) = cli.command else {
        return false;
    };
    load_config(serve.config).is_ok_and(|config| config.plugins.iter().all(|p| p.python.is_none()))
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ferrogate-worker")
        .build()
}

/// The config a server starts with: `--config`, else `$FERROGATE_CONFIG`, else defaults.
pub fn load_config(path: Option<PathBuf>) -> Result<Config, String> {
    let path = path.or_else(|| {
        std::env::var_os("FERROGATE_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    match path {
        Some(p) => Config::from_file(&p).map_err(|e| e.to_string()),
        None => Ok(Config::default()),
    }
}

fn serve(args: ServeArgs) -> i32 {
    let mut config = match load_config(args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ferrogate: {e}");
            return 2;
        }
    };
    if let Some(h) = args.host {
        config.server.host = h;
    }
    if let Some(p) = args.port {
        config.server.port = p;
    }
    if let Some(l) = args.log_level {
        config.logging.level = l;
    }
    if let Some(t) = args.threads {
        config.server.threads = Some(t);
    }
    // The server keeps a request log unless the config says otherwise.
    config.telemetry.log_store.enabled.get_or_insert(true);
    let logging = config.logging.clone();
    let tracing_cfg = config.telemetry.tracing.clone();
    let (host, port) = (config.server.host.clone(), config.server.port);
    let drain = config.server.shutdown_timeout.0;
    let threads = server::per_core::thread_count(config.server.threads);
    let model = config.server.runtime;
    let gateway = match Gateway::new(config) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("ferrogate: invalid config: {e}");
            return 2;
        }
    };
    // Per core: this thread's runtime runs start-up and the background tasks (log store writer,
    // trace export) and the worker threads serve requests. Work stealing: one runtime does all.
    let built = match model {
        ServerRuntime::PerCore => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        ServerRuntime::WorkStealing => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .thread_name("ferrogate-worker")
            .build(),
    };
    let rt = match built {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferrogate: cannot start the async runtime: {e}");
            return 1;
        }
    };
    rt.block_on(async move {
        // Inside the runtime: trace export runs on its tasks.
        if let Err(e) = crate::telemetry::init(Some(&logging), Some(&tracing_cfg)) {
            eprintln!("ferrogate: telemetry.tracing: {e}");
            return 2;
        }
        let sockets = if model == ServerRuntime::PerCore { threads } else { 1 };
        let listeners = match server::per_core::bind(&host, port, sockets) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("ferrogate: {e}");
                return 1;
            }
        };
        if let Err(e) = gateway.open_log_store().await {
            eprintln!("ferrogate: {e}");
            return 2;
        }
        let addr = listeners.addr.to_string();
        let snapshot = gateway.snapshot();
        let active: Vec<String> = {
            let mut v: Vec<String> = snapshot.providers.iter().filter(|p| p.active).map(|p| p.name.to_string()).collect();
            v.sort();
            v
        };
        tracing::info!(address = %addr, providers = ?active, threads, "ferrogate {} listening on http://{addr}", env!("CARGO_PKG_VERSION"));
        eprintln!("ferrogate {} listening on http://{addr}", env!("CARGO_PKG_VERSION"));
        let stop = server::shutdown_signal();
        let result = match model {
            ServerRuntime::PerCore => server::per_core::serve(gateway, listeners, stop, drain).await,
            ServerRuntime::WorkStealing => {
                server::per_core::serve_shared(gateway, listeners, stop, drain).await
            }
        };
        crate::telemetry::otel::shutdown();
        match result {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("ferrogate: server error: {e}");
                1
            }
        }
    })
}

fn mock_upstream(a: MockArgs) -> i32 {
    if !(0.0..=1.0).contains(&a.error_rate) {
        eprintln!("ferrogate mock-upstream: --error-rate must be between 0 and 1");
        return 2;
    }
    if !(400..600).contains(&a.error_status) {
        eprintln!("ferrogate mock-upstream: --error-status must be an HTTP error status (400-599)");
        return 2;
    }
    if a.latency_ms < 0.0 || a.chunk_delay_ms < 0.0 {
        eprintln!("ferrogate mock-upstream: delays must not be negative");
        return 2;
    }
    let google_account = match &a.google_service_account {
        Some(path) => {
            match crate::providers::google_auth::ServiceAccount::from_file(&path.to_string_lossy())
            {
                Ok(account) => Some(
                    crate::mock::google_oauth::MockGoogleAccount::from_service_account(&account),
                ),
                Err(e) => {
                    eprintln!("ferrogate mock-upstream: --google-service-account: {e}");
                    return 2;
                }
            }
        }
        None => None,
    };
    let options = MockOptions {
        latency: Duration::from_secs_f64(a.latency_ms / 1000.0),
        error_rate: a.error_rate,
        error_status: a.error_status,
        api_key: a.api_key,
        chunk_delay: Duration::from_secs_f64(a.chunk_delay_ms / 1000.0),
        embedding_dims: a.embedding_dims.max(1),
        aws_access_key_id: a.aws_access_key_id,
        aws_secret_access_key: a.aws_secret_access_key,
        google_account,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferrogate: cannot start the async runtime: {e}");
            return 1;
        }
    };
    rt.block_on(async move {
        let mock = match RunningMock::start(options, &a.host, a.port).await {
            Ok(m) => m,
            Err(e) => {
                eprintln!("ferrogate mock-upstream: {e}");
                return 1;
            }
        };
        eprintln!(
            "ferrogate mock-upstream listening on {} (OpenAI API under /v1; Anthropic, Cohere, Azure, Gemini, Vertex AI, Bedrock and OAuth routes too)",
            mock.base_url()
        );
        server::shutdown_signal().await;
        mock.stop().await;
        0
    })
}

fn bench(a: BenchArgs) -> i32 {
    if a.rate < 0.0 || !a.rate.is_finite() {
        eprintln!("ferrogate bench: --rate must be 0 or a positive number");
        return 2;
    }
    if !(a.mock_latency_ms >= 0.0 && a.mock_latency_ms.is_finite()) {
        eprintln!("ferrogate bench: --mock-latency-ms must be 0 or a positive number");
        return 2;
    }
    let mut options = crate::bench::BenchOptions {
        url: a.url,
        path: a.path,
        model: a.model,
        rate: a.rate,
        duration: a.duration,
        concurrency: a.concurrency.max(1),
        stream: a.stream,
        prompt_words: a.prompt_words,
        track_header: a.track_header,
        api_key: a.api_key,
        progress: !a.quiet,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferrogate: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let result = rt.block_on(async {
        let Some(file) = &a.config else {
            return crate::bench::run(options).await;
        };
        // The mock and the gateway live as long as the run.
        let (mock, server) = start_against_mock(file, &options.model, a.mock_latency_ms).await?;
        options.url = server.base_url();
        eprintln!(
            "ferrogate bench: gateway from {} at {}, providers served by the mock at {}",
            file.display(),
            options.url,
            mock.base_url()
        );
        let report = crate::bench::run(options).await;
        let _ = server.stop().await;
        mock.stop().await;
        report
    });
    match result {
        Ok(report) => {
            print!("{}", report.text());
            if let Some(path) = a.json {
                let json = serde_json::to_string_pretty(&report).unwrap_or_default();
                if let Err(e) = std::fs::write(&path, json) {
                    eprintln!("ferrogate bench: cannot write {}: {e}", path.display());
                    return 1;
                }
            }
            if report.ok == 0 { 1 } else { 0 }
        }
        Err(e) => {
            eprintln!("ferrogate bench: {e}");
            1
        }
    }
}

/// Starts the mock upstream and a gateway built from `file` with its providers pointed at it.
async fn start_against_mock(
    file: &std::path::Path,
    model: &str,
    latency_ms: f64,
) -> Result<(RunningMock, server::RunningServer), String> {
    let mut config = Config::from_file(file).map_err(|e| e.to_string())?;
    let options = MockOptions {
        latency: Duration::from_secs_f64(latency_ms / 1000.0),
        ..MockOptions::default()
    };
    let mock = RunningMock::start(options, "127.0.0.1", 0)
        .await
        .map_err(|e| format!("cannot start the mock upstream: {e}"))?;
    crate::bench::point_at_mock(&mut config, &mock.base_url(), model);
    let gateway = Gateway::new(config).map_err(|e| e.to_string())?;
    let server = server::RunningServer::start(gateway, "127.0.0.1", 0)
        .await
        .map_err(|e| format!("cannot start the gateway: {e}"))?;
    Ok((mock, server))
}

fn check_config(file: PathBuf) -> i32 {
    let config = match Config::from_file(&file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ferrogate: {e}");
            return 2;
        }
    };
    match Gateway::new(config) {
        Ok(g) => {
            let snapshot = g.snapshot();
            println!("{}: valid", file.display());
            let mut providers: Vec<_> = snapshot.providers.iter().filter(|p| p.active).collect();
            providers.sort_by(|a, b| a.name.cmp(&b.name));
            for p in providers {
                let keys: Vec<&str> = p.keys.all().iter().map(|k| k.name.as_ref()).collect();
                // Azure has no default endpoint: say what is missing instead of a blank.
                let endpoint = match (p.base_url.is_empty(), p.hint.base_url_var) {
                    (true, Some(var)) => format!("no endpoint (set {var} or base_url)"),
                    (true, None) => "no endpoint (set base_url)".to_string(),
                    (false, _) => format!("{} (base URL from {})", p.base_url, p.base_url_source),
                };
                println!(
                    "  {:<12} {} {}, keys: {}",
                    p.name,
                    p.api.as_str(),
                    endpoint,
                    if keys.is_empty() {
                        "none".to_string()
                    } else {
                        keys.join(", ")
                    }
                );
            }
            for line in crate::router::describe(&snapshot.config) {
                println!("  model {line}");
            }
            0
        }
        Err(e) => {
            eprintln!("ferrogate: {e}");
            2
        }
    }
}
