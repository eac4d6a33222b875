//! Runs the tower-edge caching proxy.
//!
//! ```text
//! tower-edge-caching-proxy [--upstream URL] [--addr HOST:PORT] [--cache-mib N] [--via] [--compress]
//! ```

use std::{net::SocketAddr, process::ExitCode, time::Duration};

use tower_edge_caching_proxy::{ProxyConfig, proxy};

const USAGE: &str = "\
tower-edge caching proxy: an RFC 9111 shared cache in front of an HTTP/1.1 upstream

USAGE:
    tower-edge-caching-proxy [OPTIONS]

OPTIONS:
    --upstream URL            upstream to forward to [env: UPSTREAM] [default: http://127.0.0.1:8000]
    --addr HOST:PORT          address to listen on [env: ADDR] [default: 127.0.0.1:8080]
    --cache-mib N             in-memory cache size in MiB [env: CACHE_MIB] [default: 256]
    --connect-timeout SECS    upstream connect timeout, then 504 [default: 5]
    --read-timeout SECS       wait for the upstream's response head, then 504 [default: 30]
    --via                     add Via to forwarded requests and responses
    --compress                compress responses for clients that accept it (off: no transformation)
    --heuristic               heuristic freshness for responses with Last-Modified only (RFC 9111 §4.2.2)
    --default-ttl SECS        TTL for responses with no freshness information at all [default: none]
    --stale-if-error SECS     serve a stored response up to SECS past its freshness while the
                              upstream fails (RFC 5861) [default: 0]
    --no-cdn-cache-control    ignore CDN-Cache-Control (RFC 9213; read by default)
    --store-set-cookie        store responses with Set-Cookie and replay them (RFC 9111 §7.3);
                              only for an upstream that marks personal cookies private
    -h, --help                print this help

The client's Host header is forwarded unchanged, so the upstream sees the public host name.
";

#[derive(Debug)]
struct Args {
    addr: SocketAddr,
    config: ProxyConfig,
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut upstream = std::env::var("UPSTREAM").ok();
    let mut addr = std::env::var("ADDR").ok();
    let mut cache_mib = std::env::var("CACHE_MIB").ok();
    let mut connect_timeout = None;
    let mut read_timeout = None;
    let (mut via, mut compress, mut heuristic) = (false, false, false);
    let mut cdn_cache_control = true;
    let mut store_set_cookie = false;
    let mut default_ttl = None;
    let mut stale_if_error = None;
    let mut args = args.skip(1);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (arg.clone(), None),
        };
        let slot = match name.as_str() {
            "-h" | "--help" => return Ok(None),
            "--via" => {
                via = true;
                continue;
            }
            "--compress" => {
                compress = true;
                continue;
            }
            "--heuristic" => {
                heuristic = true;
                continue;
            }
            "--no-cdn-cache-control" => {
                cdn_cache_control = false;
                continue;
            }
            "--store-set-cookie" => {
                store_set_cookie = true;
                continue;
            }
            "--default-ttl" => &mut default_ttl,
            "--stale-if-error" => &mut stale_if_error,
            "--upstream" => &mut upstream,
            "--addr" => &mut addr,
            "--cache-mib" => &mut cache_mib,
            "--connect-timeout" => &mut connect_timeout,
            "--read-timeout" => &mut read_timeout,
            _ => return Err(format!("unknown argument {arg:?}")),
        };
        let value = inline.or_else(|| args.next());
        *slot = Some(value.ok_or_else(|| format!("{name} needs a value"))?);
    }

    let addr = addr.unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let addr = addr
        .parse()
        .map_err(|e| format!("invalid address {addr:?}: {e}"))?;
    let upstream = upstream.unwrap_or_else(|| "http://127.0.0.1:8000".to_owned());
    let mut config = ProxyConfig::new(&upstream)
        .map_err(|e| e.to_string())?
        .via(via)
        .compress(compress)
        .heuristic(heuristic)
        .cdn_cache_control(cdn_cache_control)
        .store_set_cookie(store_set_cookie);
    if let Some(secs) = default_ttl {
        config = config.default_ttl(seconds("--default-ttl", &secs)?);
    }
    if let Some(secs) = stale_if_error {
        config = config.stale_if_error(seconds("--stale-if-error", &secs)?);
    }
    if let Some(mib) = cache_mib {
        let mib: u64 = mib
            .parse()
            .map_err(|e| format!("invalid --cache-mib {mib:?}: {e}"))?;
        config = config.cache_bytes(mib.saturating_mul(1024 * 1024));
    }
    if let Some(secs) = connect_timeout {
        config = config.connect_timeout(seconds("--connect-timeout", &secs)?);
    }
    if let Some(secs) = read_timeout {
        config = config.read_timeout(seconds("--read-timeout", &secs)?);
    }
    Ok(Some(Args { addr, config }))
}

fn seconds(flag: &str, value: &str) -> Result<Duration, String> {
    value
        .parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("invalid {flag} {value:?}: expected a positive number of seconds"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let Args { addr, config } = match parse_args(std::env::args()) {
        Ok(Some(args)) => args,
        Ok(None) => {
            #[allow(clippy::print_stdout)] // --help goes to standard output
            {
                print!("{USAGE}");
            }
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprint!("error: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
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
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Args>, String> {
        let argv = std::iter::once("proxy").chain(args.iter().copied());
        parse_args(argv.map(str::to_owned))
    }

    #[test]
    fn reads_flags_in_both_forms() {
        let args = parse(&[
            "--upstream",
            "http://10.0.0.1:9000",
            "--addr=0.0.0.0:80",
            "--via",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(args.addr, "0.0.0.0:80".parse().unwrap());
        assert_eq!(args.config.upstream(), "http://10.0.0.1:9000/");
    }

    #[test]
    fn help_and_mistakes() {
        assert!(parse(&["--help"]).unwrap().is_none());
        assert!(parse(&["--upstream"]).is_err());
        assert!(parse(&["--upstream", "https://x"]).is_err());
        assert!(parse(&["--read-timeout", "0"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
        assert!(parse(&["--stale-if-error", "soon"]).is_err());
    }

    #[test]
    fn reads_the_shared_cache_options() {
        let args = parse(&[
            "--stale-if-error",
            "30",
            "--no-cdn-cache-control",
            "--store-set-cookie",
        ])
        .unwrap()
        .unwrap();
        let shown = format!("{:?}", args.config);
        assert!(shown.contains("stale_if_error: 30s"), "{shown}");
        assert!(shown.contains("cdn_cache_control: false"), "{shown}");
        assert!(shown.contains("store_set_cookie: true"), "{shown}");
        let defaults = format!("{:?}", parse(&[]).unwrap().unwrap().config);
        assert!(defaults.contains("cdn_cache_control: true"), "{defaults}");
    }
}
