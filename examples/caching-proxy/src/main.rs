//! Runs the tower-edge caching proxy. `--help` lists every option.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use clap::{CommandFactory, FromArgMatches, Parser};
use tower_edge::cache::CacheName;
use tower_edge_caching_proxy::{
    Admin, Proxy, ProxyConfig,
    file::{self, FileConfig},
};
use tower_edge_store::RedisStore;

/// tower-edge caching proxy: an RFC 9111 shared cache in front of HTTP and HTTPS upstreams.
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = "One upstream from the flags, or several by Host from --config FILE (TOML). \
                  With --config, the flags of the whole proxy (--addr, --cache-mib, Redis, \
                  admin) override the file's."
)]
struct Cli {
    /// Upstream to forward to (http:// or https://) [default: http://127.0.0.1:8000].
    #[arg(long, env = "UPSTREAM", value_name = "URL", conflicts_with = "config")]
    upstream: Option<String>,

    /// Several upstreams by Host, and the other settings, from this TOML file.
    #[arg(long, env = "PROXY_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Check the configuration (flags and file, CA files included), print a summary, and exit.
    #[arg(long)]
    check_config: bool,

    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "ADDR", value_name = "HOST:PORT")]
    addr: Option<SocketAddr>,

    /// The proxy's name in Cache-Status, after the upstream's own [default: tower-edge-proxy].
    #[arg(long, env = "CACHE_NAME", value_name = "TOKEN")]
    cache_name: Option<String>,

    /// In-memory cache size in MiB [default: 256].
    #[arg(long, env = "CACHE_MIB", value_name = "N")]
    cache_mib: Option<u64>,

    /// Share the cache through this Redis: memory in front, invalidations on the bus.
    #[arg(long, env = "REDIS_URL", value_name = "URL")]
    redis_url: Option<String>,

    /// Or through this Redis Cluster: comma-separated node URLs (not both).
    #[arg(long, env = "REDIS_CLUSTER_NODES", value_name = "URLS")]
    redis_cluster_nodes: Option<String>,

    /// Serve POST /purge and GET /metrics on this address (keep it private); needs
    /// ADMIN_TOKEN.
    #[arg(long, env = "ADMIN_ADDR", value_name = "HOST:PORT")]
    admin_addr: Option<SocketAddr>,

    /// Bearer token of the admin listener, at least 16 characters. Prefer the environment
    /// variable: other users can read a process's flags.
    #[arg(
        long,
        env = "ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    admin_token: Option<Secret>,

    #[command(flatten)]
    upstream_options: UpstreamOptions,
}

/// The options of the one upstream given by `--upstream`; a file gives them per upstream.
#[derive(Debug, clap::Args)]
struct UpstreamOptions {
    /// Trust only the CAs in this PEM file for an https upstream (a private CA).
    #[arg(
        long,
        env = "UPSTREAM_CA",
        value_name = "FILE",
        conflicts_with = "config"
    )]
    upstream_ca: Option<PathBuf>,

    /// Host sent upstream: client, upstream, or a host name [default: client for http,
    /// upstream for https].
    #[arg(long, value_name = "MODE", conflicts_with = "config")]
    host_header: Option<String>,

    /// Upstream connect timeout, then 504 [default: 5].
    #[arg(long, value_name = "SECS", value_parser = seconds, conflicts_with = "config")]
    connect_timeout: Option<Duration>,

    /// Wait this long for the upstream's response head, then 504 [default: 30].
    #[arg(long, value_name = "SECS", value_parser = seconds, conflicts_with = "config")]
    read_timeout: Option<Duration>,

    /// Add Via to forwarded requests and responses.
    #[arg(long, conflicts_with = "config")]
    via: bool,

    /// Compress responses for clients that accept it (off: no transformation).
    #[arg(long, conflicts_with = "config")]
    compress: bool,

    /// Heuristic freshness for responses with Last-Modified only (RFC 9111 §4.2.2).
    #[arg(long, conflicts_with = "config")]
    heuristic: bool,

    /// TTL for responses with no freshness information at all [default: none].
    #[arg(long, value_name = "SECS", value_parser = seconds, conflicts_with = "config")]
    default_ttl: Option<Duration>,

    /// Serve a stored response up to SECS past its freshness while the upstream fails
    /// (RFC 5861) [default: none].
    #[arg(long, value_name = "SECS", value_parser = seconds, conflicts_with = "config")]
    stale_if_error: Option<Duration>,

    /// Ignore CDN-Cache-Control (RFC 9213; read by default).
    #[arg(long, conflicts_with = "config")]
    no_cdn_cache_control: bool,

    /// Store responses with Set-Cookie and replay them (RFC 9111 §7.3); only for an upstream
    /// that marks personal cookies private.
    #[arg(long, conflicts_with = "config")]
    store_set_cookie: bool,
}

/// What the proxy runs with, flags and file combined.
#[derive(Debug)]
struct Settings {
    proxy: Proxy,
    addr: SocketAddr,
    cache_name: Option<CacheName>,
    cache_mib: u64,
    redis: Option<RedisStore>,
    redis_shown: Option<String>,
    admin: Option<(SocketAddr, Secret)>,
    upstreams: String,
}

impl Cli {
    /// The options from the command line, then the environment. An empty variable counts as
    /// unset (`REDIS_URL=` in a compose file means no Redis), where clap alone would read an
    /// empty value.
    ///
    /// With a configuration file, the variables of a single upstream (`UPSTREAM`,
    /// `UPSTREAM_CA`) are left unread, as the file names the upstreams: a variable left in an
    /// environment does not make the file conflict with it. Their flags still do.
    fn from_env() -> Self {
        let with_file = std::env::var_os("PROXY_CONFIG").is_some_and(|v| !v.is_empty())
            || std::env::args_os().any(|arg| {
                arg == "--config" || arg.to_str().is_some_and(|a| a.starts_with("--config="))
            });
        let command = Self::command().mut_args(|arg| {
            let empty = arg
                .get_env()
                .and_then(std::env::var_os)
                .is_some_and(|value| value.is_empty());
            let single_upstream = matches!(arg.get_id().as_str(), "upstream" | "upstream_ca");
            if empty || (with_file && single_upstream) {
                arg.env(None)
            } else {
                arg
            }
        });
        let matches = command.get_matches();
        Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }

    /// The one upstream of `--upstream` and its options.
    fn config(&self) -> Result<ProxyConfig, String> {
        let options = &self.upstream_options;
        let seconds = |d: Option<Duration>| d.map(|d| file::Seconds::from(d.as_secs_f64()));
        let upstream = file::Upstream {
            url: self
                .upstream
                .clone()
                .unwrap_or_else(|| "http://127.0.0.1:8000".to_owned()),
            hosts: Vec::new(),
            ca_file: options.upstream_ca.clone(),
            host_header: options.host_header.clone(),
            default_ttl: seconds(options.default_ttl),
            stale_if_error: seconds(options.stale_if_error),
            connect_timeout: seconds(options.connect_timeout),
            read_timeout: seconds(options.read_timeout),
            heuristic: Some(options.heuristic),
            compress: Some(options.compress),
            via: Some(options.via),
            cdn_cache_control: Some(!options.no_cdn_cache_control),
            store_set_cookie: Some(options.store_set_cookie),
        };
        // A relative --upstream-ca is the working directory's.
        upstream.config(Path::new("")).map_err(|e| e.to_string())
    }

    /// Everything checked: the upstreams (from the flags or the file), the addresses, Redis
    /// and the admin token. Redis is not contacted here.
    fn settings(&self) -> Result<Settings, String> {
        let file = self
            .config
            .as_deref()
            .map(FileConfig::load)
            .transpose()
            .map_err(|e| e.to_string())?;
        let (proxy, upstreams) = match &file {
            Some(file) => {
                let (upstreams, hosts) = file.summary();
                (
                    file.proxy().map_err(|e| e.to_string())?,
                    format!("{upstreams} upstream(s) for {hosts} host name(s) from the file"),
                )
            }
            None => {
                let config = self.config()?;
                let shown = config.upstream().to_string();
                (Proxy::new().upstream(config), shown)
            }
        };
        let addr = self
            .addr
            .or(file.as_ref().and_then(|f| f.addr))
            .unwrap_or_else(|| "127.0.0.1:8080".parse().expect("a valid address"));
        let cache_mib = self
            .cache_mib
            .or(file.as_ref().and_then(|f| f.cache_mib))
            .unwrap_or(256);
        let nodes_from_file = file
            .as_ref()
            .and_then(|f| f.redis_cluster_nodes.as_ref())
            .map(|nodes| nodes.join(","));
        let (url, nodes) = if self.redis_url.is_some() || self.redis_cluster_nodes.is_some() {
            (self.redis_url.clone(), self.redis_cluster_nodes.clone())
        } else {
            (
                file.as_ref().and_then(|f| f.redis_url.clone()),
                nodes_from_file,
            )
        };
        let redis = shared_store(url.as_deref(), nodes.as_deref())?;
        let admin_addr = self
            .admin_addr
            .or(file.as_ref().and_then(|f| f.admin.as_ref()).map(|a| a.addr));
        if admin_addr.is_some_and(|admin| admin == addr && admin.port() != 0) {
            return Err(format!(
                "the admin listener and the proxy cannot both listen on {addr}"
            ));
        }
        let cache_name = self
            .cache_name
            .clone()
            .or(file.as_ref().and_then(|f| f.cache_name.clone()))
            .map(|name| CacheName::new(&name))
            .transpose()
            .map_err(|e| e.to_string())?;
        let admin = match (admin_addr, &self.admin_token) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(
                    "the admin listener needs ADMIN_TOKEN (at least 16 characters)".to_owned(),
                );
            }
            (Some(addr), Some(token)) => {
                Admin::check_token(&token.0).map_err(|e| e.to_string())?;
                Some((addr, token.clone()))
            }
        };
        Ok(Settings {
            proxy,
            addr,
            cache_name,
            cache_mib,
            redis,
            redis_shown: url.or(nodes).as_deref().map(without_passwords),
            admin,
            upstreams,
        })
    }
}

/// The Redis (or Redis Cluster) the cache is shared through, if one is given.
fn shared_store(url: Option<&str>, nodes: Option<&str>) -> Result<Option<RedisStore>, String> {
    let builder = match (url, nodes) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err("set REDIS_URL or REDIS_CLUSTER_NODES, not both".to_owned());
        }
        (Some(url), None) => RedisStore::builder(url),
        (None, Some(nodes)) => {
            let nodes: Vec<&str> = nodes
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .collect();
            if nodes.is_empty() {
                return Err("REDIS_CLUSTER_NODES lists no node URL".to_owned());
            }
            RedisStore::cluster_builder(nodes)
        }
    };
    builder
        .prefix("tower-edge-proxy:")
        .build()
        .map(Some)
        .map_err(|e| {
            let shown = without_passwords(url.or(nodes).unwrap_or_default());
            format!("Redis {shown}: {e}")
        })
}

/// A secret from the command line or the environment, never printed.
#[derive(Clone)]
struct Secret(String);

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Self(value.to_owned()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(hidden)")
    }
}

/// Redis URLs (comma-separated) as they may be shown: any password replaced by `***`.
fn without_passwords(urls: &str) -> String {
    urls.split(',')
        .map(|url| {
            let Some((scheme, rest)) = url.split_once("://") else {
                return url.to_owned();
            };
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rsplit_once('@') {
                Some((userinfo, host)) => {
                    let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
                    format!("{scheme}://{user}:***@{host}{}", &rest[authority_end..])
                }
                None => url.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A positive number of seconds, fractions allowed, up to a year.
fn seconds(value: &str) -> Result<Duration, String> {
    value
        .parse::<f64>()
        .map_err(|_| "expected a positive number of seconds".to_owned())
        .and_then(|s| file::positive_seconds(s).map_err(|e| e.to_string()))
}

async fn listen(addr: SocketAddr, what: &str) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} ({what}): {e}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    // `--help` and mistakes end here (exit 0 and 2).
    let cli = Cli::from_env();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let settings = match cli.settings() {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    if cli.check_config {
        if let Some(l2) = &settings.redis {
            // Checked, not required: the proxy starts without Redis and shares once it answers.
            if let Err(reason) = probe(l2).await {
                eprintln!("warning: {reason}");
            }
        }
        eprintln!(
            "configuration OK: {}; listen on {}; {} MiB in memory{}{}",
            settings.upstreams,
            settings.addr,
            settings.cache_mib,
            settings
                .redis_shown
                .as_deref()
                .map(|r| format!(", shared through Redis {r}"))
                .unwrap_or_default(),
            settings
                .admin
                .as_ref()
                .map(|(addr, _)| format!(", admin on {addr}"))
                .unwrap_or_default(),
        );
        return ExitCode::SUCCESS;
    }
    match run(settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Whether Redis answers a read: a warning at start and in `--check-config`, since the proxy
/// runs without it (every request goes to the upstream or to memory) until it answers.
async fn probe(l2: &RedisStore) -> Result<(), String> {
    use tower_edge_store::{CacheKey, CacheStore};
    let key = CacheKey::new("tower-edge-proxy:probe");
    match tokio::time::timeout(Duration::from_secs(2), l2.get(&key)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!(
            "Redis does not answer ({e}); the cache is not shared until it does"
        )),
        Err(_) => {
            Err("Redis did not answer within 2 s; the cache is not shared until it does".to_owned())
        }
    }
}

async fn run(settings: Settings) -> Result<(), String> {
    if let Some(l2) = &settings.redis
        && let Err(reason) = probe(l2).await
    {
        tracing::warn!("{reason}");
    }
    let mut proxy = settings
        .proxy
        .cache_bytes(settings.cache_mib.saturating_mul(1024 * 1024));
    if let Some(name) = settings.cache_name {
        proxy = proxy.cache_name(name);
    }
    if let Some(l2) = settings.redis {
        proxy = proxy.shared(l2);
    }
    let built = proxy.build();
    let listener = listen(settings.addr, "proxy").await?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    if let Some((addr, token)) = settings.admin {
        let admin = Admin::new(built.purge.clone(), &token.0).map_err(|e| e.to_string())?;
        let admin = match metrics_recorder() {
            Some(handle) => admin.metrics(handle),
            None => admin,
        };
        let admin_listener = listen(addr, "admin").await?;
        let admin_local = admin_listener.local_addr().map_err(|e| e.to_string())?;
        eprintln!("admin (purge, metrics) on http://{admin_local}/");
        tokio::spawn(async move {
            if let Err(e) = axum::serve(admin_listener, admin.router()).await {
                eprintln!("error: admin listener: {e}");
            }
        });
    }
    eprintln!(
        "tower-edge caching proxy on http://{local}/ in front of {}",
        settings.upstreams
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("shutting down");
    };
    axum::serve(listener, built.router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| e.to_string())
}

/// A Prometheus recorder for `/metrics`, with buckets that suit a cache (10 µs to 10 s).
fn metrics_recorder() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().set_buckets_for_metric(
        metrics_exporter_prometheus::Matcher::Prefix("tower_edge_".to_owned()),
        &tower_edge::observe::DURATION_BUCKETS,
    );
    match recorder.and_then(|recorder| recorder.install_recorder()) {
        Ok(handle) => {
            let upkeep = handle.clone();
            // Drains the histograms' buffers, as the exporter expects of its user.
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                loop {
                    tick.tick().await;
                    upkeep.run_upkeep();
                }
            });
            Some(handle)
        }
        Err(e) => {
            eprintln!("warning: no metrics recorder ({e}); /metrics answers 404");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("proxy").chain(args.iter().copied()))
    }

    #[test]
    fn the_options_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn reads_flags_in_both_forms() {
        let cli = parse(&[
            "--upstream",
            "http://10.0.0.1:9000",
            "--addr=0.0.0.0:80",
            "--via",
        ])
        .unwrap();
        assert_eq!(cli.addr, Some("0.0.0.0:80".parse().unwrap()));
        assert_eq!(cli.config().unwrap().upstream(), "http://10.0.0.1:9000/");
        let settings = parse(&["--upstream", "https://bucket.example"])
            .unwrap()
            .settings()
            .unwrap();
        assert_eq!(settings.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(settings.cache_mib, 256);
    }

    #[test]
    fn help_and_mistakes() {
        let help = parse(&["--help"]).unwrap_err();
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
        assert_eq!(help.exit_code(), 0);
        for wrong in [
            &["--upstream"][..],
            &["--read-timeout", "0"],
            &["--bogus"],
            &["--stale-if-error", "soon"],
            &["--read-timeout", "1e19"],
            &["--cache-mib", "lots"],
            &["--config", "proxy.toml", "--upstream", "http://x"],
            &["--config", "proxy.toml", "--via"],
        ] {
            let error = parse(wrong).expect_err("refused");
            assert_eq!(error.exit_code(), 2, "{wrong:?}");
        }
        // Parsed, but not a configuration the proxy can run.
        for wrong in [
            &["--upstream", "ftp://x"][..],
            &[
                "--upstream",
                "https://x",
                "--upstream-ca",
                "/no/such/ca.pem",
            ],
            &["--host-header", "a b"],
            &["--admin-addr", "127.0.0.1:0"],
            &[
                "--redis-url",
                "redis://a",
                "--redis-cluster-nodes",
                "redis://b",
            ],
            &["--config", "/no/such/proxy.toml"],
            &[
                "--addr",
                "127.0.0.1:9000",
                "--admin-addr",
                "127.0.0.1:9000",
                "--admin-token",
                "0123456789abcdef",
            ],
            &["--cache-name", "two words"],
        ] {
            let error = parse(wrong).unwrap().settings().expect_err("refused");
            assert!(!error.is_empty(), "{wrong:?}");
        }
    }

    #[test]
    fn secrets_are_never_shown() {
        assert_eq!(
            without_passwords("redis://:s3cret@cache:6379/0,redis://u:pw@b:7000"),
            "redis://:***@cache:6379/0,redis://u:***@b:7000"
        );
        assert_eq!(
            without_passwords("redis://cache:6379"),
            "redis://cache:6379"
        );
        let cli = parse(&[
            "--admin-addr",
            "127.0.0.1:0",
            "--admin-token",
            "0123456789abcdef",
        ])
        .unwrap();
        assert!(!format!("{cli:?}").contains("0123456789abcdef"));
        let settings = cli.settings().unwrap();
        assert!(!format!("{settings:?}").contains("0123456789abcdef"));
        // Too short for the admin listener: refused before it starts, --check-config included.
        let short = parse(&["--admin-addr", "127.0.0.1:0", "--admin-token", "short"]).unwrap();
        assert!(short.settings().unwrap_err().contains("16 characters"));
    }

    #[test]
    fn reads_the_shared_cache_options() {
        let cli = parse(&[
            "--stale-if-error",
            "30",
            "--no-cdn-cache-control",
            "--store-set-cookie",
            "--connect-timeout=0.5",
            "--host-header=upstream",
        ])
        .unwrap();
        let shown = format!("{:?}", cli.config().unwrap());
        assert!(shown.contains("stale_if_error: 30s"), "{shown}");
        assert!(shown.contains("cdn_cache_control: false"), "{shown}");
        assert!(shown.contains("store_set_cookie: true"), "{shown}");
        assert!(shown.contains("connect_timeout: 500ms"), "{shown}");
        assert!(shown.contains("host_header: Some(Upstream)"), "{shown}");
        let defaults = format!("{:?}", parse(&[]).unwrap().config().unwrap());
        assert!(defaults.contains("cdn_cache_control: true"), "{defaults}");
    }
}
