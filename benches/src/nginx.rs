//! nginx as a baseline for the file scenarios: the same files, served by nginx 1.x as people
//! tune it for static files (`sendfile`, an open-file cache, one worker, no access log), started
//! by the bench on a free loopback port and stopped by the PID it started.
//!
//! Used only when `nginx` is installed (Debian: `apt-get install nginx-light`); the `nginx-…`
//! scenarios are skipped with a warning otherwise.

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tempfile::TempDir;

/// Whether `name` is an nginx scenario (its server is nginx, not the scenario's router).
pub fn is_nginx(name: &str) -> bool {
    name.starts_with("nginx-")
}

/// Whether an `nginx` binary answers `nginx -v`.
pub fn installed() -> bool {
    Command::new("nginx")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The scenario of nginx with `sendfile off`: it reads the file into memory and writes it to
/// the socket from there, as hyper (and so any `axum::serve` server) writes every body. Set
/// against `nginx-10k`, it shows what `sendfile` alone is worth to nginx.
pub const COPYING: &str = "nginx-10k-copy";

/// The nginx twin of a tower-edge file scenario.
pub fn twin(name: &str) -> Option<&'static str> {
    match name {
        "fs-10k" => Some("nginx-10k"),
        "fs-1m" => Some("nginx-1m"),
        "fs-range" | "fs-range-hot" => Some("nginx-range"),
        "fs-304" => Some("nginx-304"),
        _ => None,
    }
}

/// An nginx process serving [`files`](crate::fs::files), one worker, no master.
#[derive(Debug)]
pub struct Nginx {
    child: Child,
    addr: SocketAddr,
    _dir: TempDir,
}

impl Nginx {
    /// Starts nginx on a free loopback port, pinned to `core` with `taskset` when given, and
    /// waits until it accepts connections. Without `sendfile`, it copies files through memory
    /// ([`COPYING`]).
    pub fn start(core: Option<usize>, sendfile: bool) -> Result<Self, String> {
        let sendfile = if sendfile { "on" } else { "off" };
        let dir = tempfile::Builder::new()
            .prefix("tower-edge-bench-nginx")
            .tempdir()
            .map_err(|e| format!("nginx directory: {e}"))?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("a free port: {e}"))?
            .port();
        let root = crate::fs::files().display().to_string();
        let d = dir.path().display().to_string();
        let config = format!(
            "daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    types {{ application/octet-stream bin; }}
    sendfile {sendfile};
    tcp_nopush on;
    tcp_nodelay on;
    open_file_cache max=1000 inactive=60s;
    open_file_cache_valid 60s;
    keepalive_requests 100000000;
    keepalive_timeout 75s;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"
        );
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config).map_err(|e| format!("nginx.conf: {e}"))?;
        let conf = conf.display().to_string();
        let args = ["-p", d.as_str(), "-e", "stderr", "-c", conf.as_str()];
        let mut command = match core {
            Some(core) => {
                let mut c = Command::new("taskset");
                c.args(["-c", &core.to_string(), "nginx"]);
                c
            }
            None => Command::new("nginx"),
        };
        let child = command
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("nginx: {e}"))?;
        let mut nginx = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(nginx.addr).is_err() {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                let mut err = String::new();
                if let Some(mut stderr) = nginx.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut stderr, &mut err);
                }
                return Err(format!("nginx exited ({status}): {err}"));
            }
            if Instant::now() > deadline {
                return Err("nginx did not accept connections within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(nginx)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its scheduler statistics (the first field is its CPU time in nanoseconds). With no
    /// master process, the process `taskset` became is the worker itself.
    pub fn cpu_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/schedstat", self.child.id()))
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM is nginx's fast shutdown; the PID is the one this bench started.
        let terminated = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        let deadline = Instant::now() + Duration::from_secs(5);
        while terminated && Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
