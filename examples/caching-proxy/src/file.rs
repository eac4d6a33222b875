//! The configuration file (TOML): several upstreams chosen by `Host`, each with its own cache
//! and forwarding options, and the settings of the whole proxy. Flags given on the command line
//! override the file's settings of the whole proxy.
//!
//! ```toml
//! addr = "0.0.0.0:8080"
//! cache_mib = 512
//! cache_name = "edge-eu-1"          # in Cache-Status (default: tower-edge-proxy)
//! # A cache shared by every instance on this Redis (or redis_cluster_nodes = ["redis://…", …]).
//! redis_url = "redis://127.0.0.1:6379/0"
//!
//! [admin]
//! # Purge and /metrics; the token comes from ADMIN_TOKEN, never from this file.
//! addr = "127.0.0.1:9091"
//!
//! [[upstream]]
//! hosts = ["media.example.com", "cdn.example.com"]
//! url = "https://media-bucket.s3.example"
//! # ca_file = "private-ca.pem"      # trust only this CA (a path relative to this file)
//! # host_header = "upstream"        # or "client", or a host name (default: upstream for https)
//! default_ttl = "1d"                # for objects sent without freshness information
//! stale_if_error = 300
//!
//! [[upstream]]
//! # No hosts: every other request.
//! url = "http://127.0.0.1:8000"
//! heuristic = true
//! compress = true
//! ```
//!
//! Every upstream option: `url` (required), `hosts`, `ca_file`, `host_header`, `default_ttl`,
//! `stale_if_error`, `connect_timeout`, `read_timeout` (seconds, fractions allowed, or a
//! text with units: `"90s"`, `"10m"`, `"1h30m"`, `"1d"`, `"500ms"`),
//! `heuristic`, `compress`, `via`, `cdn_cache_control`, `store_set_cookie` (booleans), with
//! the defaults of [`ProxyConfig`]. A misspelt option is an error, not ignored.

use std::{
    collections::HashSet,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

use crate::{ConfigError, HostHeader, Proxy, ProxyConfig};

/// A parsed and checked configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Where the proxy listens.
    pub addr: Option<SocketAddr>,
    /// The bound of the in-memory cache, in MiB.
    pub cache_mib: Option<u64>,
    /// The proxy's name in `Cache-Status`.
    pub cache_name: Option<String>,
    /// A Redis to share the cache through.
    pub redis_url: Option<String>,
    /// Or a Redis Cluster's node URLs.
    pub redis_cluster_nodes: Option<Vec<String>>,
    /// The admin listener.
    pub admin: Option<AdminSection>,
    #[serde(default)]
    upstream: Vec<Upstream>,
    #[serde(skip)]
    base: PathBuf,
}

/// `[admin]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// The admin listener's address; keep it private.
    pub addr: SocketAddr,
}

/// `[[upstream]]`: one upstream and its options, each `None` for [`ProxyConfig`]'s default.
/// The command line's `--upstream` fills one too.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// `http://host[:port]` or `https://host[:port]`.
    pub url: String,
    /// The `Host` names routed to it; none for the upstream of every other host.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// [`ProxyConfig::upstream_ca`], relative to the file's directory.
    pub ca_file: Option<PathBuf>,
    /// [`ProxyConfig::host_header`]: `client`, `upstream` or a host name.
    pub host_header: Option<String>,
    /// [`ProxyConfig::default_ttl`], in seconds.
    pub default_ttl: Option<Seconds>,
    /// [`ProxyConfig::stale_if_error`], in seconds.
    pub stale_if_error: Option<Seconds>,
    /// [`ProxyConfig::connect_timeout`], in seconds.
    pub connect_timeout: Option<Seconds>,
    /// [`ProxyConfig::read_timeout`], in seconds.
    pub read_timeout: Option<Seconds>,
    /// [`ProxyConfig::heuristic`].
    pub heuristic: Option<bool>,
    /// [`ProxyConfig::compress`].
    pub compress: Option<bool>,
    /// [`ProxyConfig::via`].
    pub via: Option<bool>,
    /// [`ProxyConfig::cdn_cache_control`].
    pub cdn_cache_control: Option<bool>,
    /// [`ProxyConfig::store_set_cookie`].
    pub store_set_cookie: Option<bool>,
}

impl FileConfig {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("config file {}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base)
            .map_err(|e| ConfigError(format!("config file {}: {e}", path.display())))
    }

    /// Parses and checks `text`; relative `ca_file` paths are taken from `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let mut config: Self = toml::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
        config.base = base.to_owned();
        // Build once to check every upstream now (URLs, CA files, host names, durations).
        config.proxy()?;
        Ok(config)
    }

    /// The upstreams of the file, as a [`Proxy`] to give a store and a size.
    pub fn proxy(&self) -> Result<Proxy, ConfigError> {
        if self.upstream.is_empty() {
            return Err(ConfigError(
                "no [[upstream]]: give at least one, with url = \"http://…\"".to_owned(),
            ));
        }
        if self.redis_url.is_some() && self.redis_cluster_nodes.is_some() {
            return Err(ConfigError(
                "set redis_url or redis_cluster_nodes, not both".to_owned(),
            ));
        }
        let mut proxy = Proxy::new();
        let mut seen = HashSet::new();
        let mut default = false;
        for (i, section) in self.upstream.iter().enumerate() {
            let which = format!("upstream {} ({})", i + 1, section.url);
            let config = section
                .config(&self.base)
                .map_err(|e| ConfigError(format!("{which}: {e}")))?;
            if section.hosts.is_empty() {
                if std::mem::replace(&mut default, true) {
                    return Err(ConfigError(format!(
                        "{which}: a second upstream without hosts; only one may take every \
                         other host"
                    )));
                }
                proxy = proxy.upstream(config);
                continue;
            }
            for host in &section.hosts {
                // As `Proxy::site` compares it: without a port, regardless of case.
                let name = crate::sites::normalized_host(host).to_ascii_lowercase();
                if name.is_empty() || name.contains(['/', ' ', ',']) {
                    return Err(ConfigError(format!(
                        "{which}: host {host:?} is not a host name"
                    )));
                }
                if !seen.insert(name.clone()) {
                    return Err(ConfigError(format!(
                        "{which}: host {host:?} is already given to another upstream"
                    )));
                }
                proxy = proxy.site(&name, config.clone());
            }
        }
        Ok(proxy)
    }

    /// How many upstreams the file configures, and how many host names route to them.
    pub fn summary(&self) -> (usize, usize) {
        let hosts = self.upstream.iter().map(|u| u.hosts.len()).sum();
        (self.upstream.len(), hosts)
    }
}

impl Upstream {
    /// The [`ProxyConfig`] these options describe; a relative `ca_file` is taken from `base`.
    pub fn config(&self, base: &Path) -> Result<ProxyConfig, ConfigError> {
        let mut config = ProxyConfig::new(&self.url)?;
        if let Some(ca) = &self.ca_file {
            config = config.upstream_ca(base.join(ca))?;
        }
        if let Some(host) = &self.host_header {
            config = config.host_header(host.parse::<HostHeader>()?);
        }
        if let Some(ttl) = seconds("default_ttl", self.default_ttl.as_ref())? {
            config = config.default_ttl(ttl);
        }
        if let Some(window) = seconds("stale_if_error", self.stale_if_error.as_ref())? {
            config = config.stale_if_error(window);
        }
        if let Some(timeout) = seconds("connect_timeout", self.connect_timeout.as_ref())? {
            config = config.connect_timeout(timeout);
        }
        if let Some(timeout) = seconds("read_timeout", self.read_timeout.as_ref())? {
            config = config.read_timeout(timeout);
        }
        if let Some(on) = self.heuristic {
            config = config.heuristic(on);
        }
        if let Some(on) = self.compress {
            config = config.compress(on);
        }
        if let Some(on) = self.via {
            config = config.via(on);
        }
        if let Some(on) = self.cdn_cache_control {
            config = config.cdn_cache_control(on);
        }
        if let Some(on) = self.store_set_cookie {
            config = config.store_set_cookie(on);
        }
        Ok(config)
    }
}

/// A duration in the file: seconds (`90`, `0.5`), or a text with units (`"90s"`, `"10m"`,
/// `"1h30m"`, `"1d"`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Seconds {
    /// A number of seconds.
    Number(f64),
    /// Numbers with units `d`, `h`, `m`, `s` and `ms`, largest first.
    Text(String),
}

impl From<f64> for Seconds {
    fn from(seconds: f64) -> Self {
        Self::Number(seconds)
    }
}

impl std::fmt::Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::Text(t) => write!(f, "{t:?}"),
        }
    }
}

impl Seconds {
    fn as_secs(&self) -> Result<f64, ConfigError> {
        let text = match self {
            Self::Number(n) => return Ok(*n),
            Self::Text(text) => text.trim(),
        };
        let bad = || {
            ConfigError(format!(
                "{text:?} is not a duration; write seconds (90) or units (\"90s\", \"10m\", \
                 \"1h30m\", \"1d\", \"500ms\")"
            ))
        };
        if let Ok(n) = text.parse::<f64>() {
            return Ok(n);
        }
        let mut total = 0.0;
        let mut rest = text;
        let mut last_unit = f64::INFINITY;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(bad)?;
            let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let (unit, len) = [
                ("ms", 0.001),
                ("d", 86_400.0),
                ("h", 3_600.0),
                ("m", 60.0),
                ("s", 1.0),
            ]
            .into_iter()
            .find_map(|(name, secs)| rest.starts_with(name).then_some((secs, name.len())))
            .ok_or_else(bad)?;
            // Largest first, each once: "1h30m", not "30m1h".
            if unit >= last_unit {
                return Err(bad());
            }
            last_unit = unit;
            total += number * unit;
            rest = &rest[len..];
        }
        Ok(total)
    }
}

/// A positive duration, if given.
fn seconds(name: &str, value: Option<&Seconds>) -> Result<Option<Duration>, ConfigError> {
    value
        .map(|given| {
            given
                .as_secs()
                .and_then(positive_seconds)
                .map_err(|e| ConfigError(format!("{name} = {given}: {e}")))
        })
        .transpose()
}

/// The longest duration an option takes: a year. Longer ones are mistakes, and past some
/// point a deadline computed from one would not be representable.
const MAX_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// `seconds` as a duration: positive, at most a year.
pub fn positive_seconds(seconds: f64) -> Result<Duration, ConfigError> {
    if !(seconds > 0.0 && seconds <= MAX_SECONDS) {
        return Err(ConfigError(
            "expected a positive number of seconds, at most a year (31536000)".to_owned(),
        ));
    }
    Duration::try_from_secs_f64(seconds)
        .map_err(|e| ConfigError(format!("expected a number of seconds: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FileConfig, String> {
        FileConfig::parse(text, Path::new(".")).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_several_upstreams_and_the_proxy_settings() {
        let config = parse(
            r#"
            addr = "0.0.0.0:8080"
            cache_mib = 64
            redis_url = "redis://127.0.0.1:6379/0"
            [admin]
            addr = "127.0.0.1:9091"
            [[upstream]]
            hosts = ["media.example.com", "CDN.example.com"]
            url = "https://bucket.s3.example"
            default_ttl = "1d"
            stale_if_error = 0.5
            read_timeout = "1m30s"
            [[upstream]]
            url = "http://127.0.0.1:8000"
            host_header = "origin.internal"
            compress = true
            "#,
        )
        .unwrap();
        assert_eq!(config.addr, Some("0.0.0.0:8080".parse().unwrap()));
        assert_eq!(config.cache_mib, Some(64));
        assert_eq!(config.admin.as_ref().unwrap().addr.port(), 9091);
        assert_eq!(config.summary(), (2, 2));
        let shown = format!("{:?}", config.proxy().unwrap());
        assert!(shown.contains("\"cdn.example.com\""), "{shown}");
        assert!(shown.contains("stale_if_error: 500ms"), "{shown}");
        assert!(shown.contains("default_ttl: Some(86400s)"), "{shown}");
        assert!(shown.contains("read_timeout: 90s"), "{shown}");
        assert!(shown.contains("Fixed(\"origin.internal\")"), "{shown}");
    }

    #[test]
    fn says_what_is_wrong() {
        for (text, expected) in [
            ("", "no [[upstream]]"),
            ("[[upstream]]\nurl = \"ftp://x\"", "upstream 1 (ftp://x)"),
            (
                "[[upstream]]\nurl = \"http://x\"\nttl = 3",
                "unknown field `ttl`",
            ),
            (
                "[[upstream]]\nurl = \"http://a\"\n[[upstream]]\nurl = \"http://b\"",
                "a second upstream without hosts",
            ),
            (
                "[[upstream]]\nurl = \"http://a\"\nhosts = [\"x\"]\n\
                 [[upstream]]\nurl = \"http://b\"\nhosts = [\"X\"]",
                "already given",
            ),
            (
                "[[upstream]]\nurl = \"http://a\"\nread_timeout = 0",
                "read_timeout = 0",
            ),
            (
                "[[upstream]]\nurl = \"http://a\"\nread_timeout = 1e19",
                "at most a year",
            ),
            (
                "[[upstream]]\nurl = \"http://a\"\ndefault_ttl = \"30m1h\"",
                "is not a duration",
            ),
            (
                "[[upstream]]\nurl = \"http://a\"\ndefault_ttl = \"soon\"",
                "is not a duration",
            ),
            (
                "[[upstream]]\nurl = \"http://a\"\nhosts = [\"x.example\"]\n\
                 [[upstream]]\nurl = \"http://b\"\nhosts = [\"X.example:8080\"]",
                "already given",
            ),
            (
                "[[upstream]]\nurl = \"https://a\"\nca_file = \"no-such-ca.pem\"",
                "no-such-ca.pem",
            ),
            (
                "[[upstream]]\nurl = \"http://a\"\nhost_header = \"a b\"",
                "host header \"a b\"",
            ),
            (
                "redis_url = \"redis://a\"\nredis_cluster_nodes = [\"redis://b\"]\n\
                 [[upstream]]\nurl = \"http://a\"",
                "not both",
            ),
            ("addr = 8080", "addr"),
        ] {
            let error = parse(text).expect_err(text);
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }
}
