//! Runs the tower-edge caching proxy. `--help` lists every option.

use std::{net::SocketAddr, process::ExitCode, time::Duration};

use clap::Parser;
use tower_edge_caching_proxy::{ProxyConfig, proxy};

/// tower-edge caching proxy: an RFC 9111 shared cache in front of an HTTP/1.1 upstream.
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = "The client's Host header is forwarded unchanged, so the upstream sees the \
                  public host name."
)]
struct Cli {
    /// Upstream to forward to.
    #[arg(
        long,
        env = "UPSTREAM",
        value_name = "URL",
        default_value = "http://127.0.0.1:8000"
    )]
    upstream: String,

    /// Address to listen on.
    #[arg(
        long,
        env = "ADDR",
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:8080"
    )]
    addr: SocketAddr,

    /// In-memory cache size in MiB.
    #[arg(long, env = "CACHE_MIB", value_name = "N", default_value = "256")]
    cache_mib: u64,

    /// Upstream connect timeout, then 504.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = seconds)]
    connect_timeout: Duration,

    /// Wait this long for the upstream's response head, then 504.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = seconds)]
    read_timeout: Duration,

    /// Add Via to forwarded requests and responses.
    #[arg(long)]
    via: bool,

    /// Compress responses for clients that accept it (off: no transformation).
    #[arg(long)]
    compress: bool,

    /// Heuristic freshness for responses with Last-Modified only (RFC 9111 §4.2.2).
    #[arg(long)]
    heuristic: bool,

    /// TTL for responses with no freshness information at all [default: none].
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    default_ttl: Option<Duration>,

    /// Serve a stored response up to SECS past its freshness while the upstream fails
    /// (RFC 5861) [default: none].
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    stale_if_error: Option<Duration>,

    /// Ignore CDN-Cache-Control (RFC 9213; read by default).
    #[arg(long)]
    no_cdn_cache_control: bool,

    /// Store responses with Set-Cookie and replay them (RFC 9111 §7.3); only for an upstream
    /// that marks personal cookies private.
    #[arg(long)]
    store_set_cookie: bool,
}

impl Cli {
    /// The proxy's configuration; `Err` for an upstream it cannot forward to.
    fn config(&self) -> Result<ProxyConfig, String> {
        let mut config = ProxyConfig::new(&self.upstream)
            .map_err(|e| e.to_string())?
            .via(self.via)
            .compress(self.compress)
            .heuristic(self.heuristic)
            .cdn_cache_control(!self.no_cdn_cache_control)
            .store_set_cookie(self.store_set_cookie)
            .cache_bytes(self.cache_mib.saturating_mul(1024 * 1024))
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.read_timeout);
        if let Some(ttl) = self.default_ttl {
            config = config.default_ttl(ttl);
        }
        if let Some(window) = self.stale_if_error {
            config = config.stale_if_error(window);
        }
        Ok(config)
    }
}

/// A positive number of seconds, fractions allowed.
fn seconds(value: &str) -> Result<Duration, String> {
    value
        .parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| "expected a positive number of seconds".to_owned())
}

#[tokio::main]
async fn main() -> ExitCode {
    // `--help` and mistakes end here (exit 0 and 2).
    let cli = Cli::parse();
    let config = match cli.config() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let addr = cli.addr;
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("error: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let local = listener.local_addr().map_or(addr, |a| a);
    eprintln!(
        "tower-edge caching proxy on http://{local}/ in front of {}",
        config.upstream()
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("shutting down");
    };
    match axum::serve(listener, proxy(config))
        .with_graceful_shutdown(shutdown)
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

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
        assert_eq!(cli.addr, "0.0.0.0:80".parse().unwrap());
        assert_eq!(cli.config().unwrap().upstream(), "http://10.0.0.1:9000/");
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
            &["--cache-mib", "lots"],
        ] {
            let error = parse(wrong).expect_err("refused");
            assert_eq!(error.exit_code(), 2, "{wrong:?}");
        }
        // Parsed, but not an upstream this proxy forwards to.
        assert!(
            parse(&["--upstream", "https://x"])
                .unwrap()
                .config()
                .is_err()
        );
    }

    #[test]
    fn reads_the_shared_cache_options() {
        let cli = parse(&[
            "--stale-if-error",
            "30",
            "--no-cdn-cache-control",
            "--store-set-cookie",
            "--connect-timeout=0.5",
        ])
        .unwrap();
        let shown = format!("{:?}", cli.config().unwrap());
        assert!(shown.contains("stale_if_error: 30s"), "{shown}");
        assert!(shown.contains("cdn_cache_control: false"), "{shown}");
        assert!(shown.contains("store_set_cookie: true"), "{shown}");
        assert!(shown.contains("connect_timeout: 500ms"), "{shown}");
        let defaults = format!("{:?}", parse(&[]).unwrap().config().unwrap());
        assert!(defaults.contains("cdn_cache_control: true"), "{defaults}");
    }
}
