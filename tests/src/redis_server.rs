//! A real `redis-server` on a free loopback port, for tests: started with persistence off,
//! ready when it answers `PING`, killed (by the PID this helper started) when dropped.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// How to get `redis-server` when it is missing.
pub const INSTALL_HINT: &str = "redis-server was not found or did not start. Install it (Debian/Ubuntu: \
     `sudo apt-get install redis-server`; macOS: `brew install redis`), or run `bash scripts/test.sh`, \
     which installs it";

/// A `redis-server` child process that this test owns.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    /// Arguments added to the defaults (a cluster node's).
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts a server on a free port; panics with [`INSTALL_HINT`] if it cannot.
    pub fn start() -> Self {
        let port = free_port();
        let mut server = Self {
            port,
            child: None,
            extra: Vec::new(),
        };
        server.spawn();
        server
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
                "--loglevel",
                "warning",
                // Fault tests stall the server with DEBUG SLEEP.
                "--enable-debug-command",
                "local",
            ])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{INSTALL_HINT} ({e})"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.command(&["PING"]).as_deref() == Some("+PONG\r\n") {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("{INSTALL_HINT} (redis-server exited: {status})");
            }
            assert!(
                Instant::now() < deadline,
                "{INSTALL_HINT} (no PONG within 10 s)"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the server and waits for it to exit; the port stays reserved for [`restart`].
    ///
    /// [`restart`]: RedisServer::restart
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Stalls the server for `seconds`: every command of every other client waits until then
    /// (`CLIENT PAUSE ... ALL`). Returns once the server has confirmed the pause, so a command
    /// sent after this returns is certain to wait. Keep the returned stream for as long as the
    /// stall should last in the test's reading; the pause itself ends on its own.
    pub fn stall(&self, seconds: f64) -> TcpStream {
        let mut stream = TcpStream::connect(self.addr()).expect("connect to redis-server");
        let millis = ((seconds * 1000.0) as u64).to_string();
        let request = format!(
            "*4\r\n$6\r\nCLIENT\r\n$5\r\nPAUSE\r\n${}\r\n{millis}\r\n$3\r\nALL\r\n",
            millis.len()
        );
        stream
            .write_all(request.as_bytes())
            .expect("send CLIENT PAUSE");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("set a read timeout");
        let mut reply = [0u8; 5];
        stream
            .read_exact(&mut reply)
            .expect("redis-server answers CLIENT PAUSE");
        assert_eq!(&reply, b"+OK\r\n", "CLIENT PAUSE refused");
        stream
    }

    /// Sends one command in RESP and returns the first reply line(s) read, or `None` if the
    /// server is unreachable.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let mut stream =
            TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes()).ok()?;
        let mut buf = [0u8; 4096];
        let n = stream.read(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    listener.local_addr().expect("local address").port()
}

/// A Redis Cluster of three masters (no replicas) on free loopback ports, each a
/// [`RedisServer`] of this test, created with `redis-cli --cluster create` and ready when every
/// node reports `cluster_state:ok`. The nodes' files live in a directory removed on drop.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    dir: std::path::PathBuf,
}

impl RedisCluster {
    /// Starts and creates the cluster; panics with [`INSTALL_HINT`] or the reason it could not.
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "tower-edge-cluster-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("create the cluster's directory");
        let nodes = (0..3)
            .map(|i| {
                // A node also listens on its port + 10000 (the cluster bus).
                let port = free_cluster_port();
                let mut node = RedisServer {
                    port,
                    child: None,
                    extra: vec![
                        "--cluster-enabled".into(),
                        "yes".into(),
                        "--cluster-config-file".into(),
                        dir.join(format!("nodes-{i}.conf")).display().to_string(),
                        "--cluster-node-timeout".into(),
                        "2000".into(),
                        "--dir".into(),
                        dir.display().to_string(),
                    ],
                };
                node.spawn();
                node
            })
            .collect::<Vec<_>>();
        let cluster = Self { nodes, dir };
        let addrs: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap_or_else(|e| panic!("{INSTALL_HINT} (redis-cli: {e})"));
        assert!(
            created.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&created.stderr)
        );
        cluster.until_ok();
        cluster
    }

    /// The nodes' URLs, `redis://127.0.0.1:<port>`, as a cluster client takes them.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }

    /// Node `i` (0, 1 or 2).
    pub fn node(&self, i: usize) -> &RedisServer {
        &self.nodes[i]
    }

    /// Kills node `i`: the slots it served fail until it comes back.
    pub fn stop(&mut self, i: usize) {
        self.nodes[i].stop();
    }

    /// Starts node `i` again on its port, with its cluster configuration (so it serves the
    /// same slots) and no data, and waits until every node says `cluster_state:ok`.
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].restart();
        self.until_ok();
    }

    fn until_ok(&self) {
        // A node marked as failing is cleared a few node timeouts after it answers again.
        let deadline = Instant::now() + Duration::from_secs(30);
        for node in &self.nodes {
            while !node
                .command(&["CLUSTER", "INFO"])
                .is_some_and(|info| info.contains("cluster_state:ok"))
            {
                assert!(
                    Instant::now() < deadline,
                    "the cluster did not reach cluster_state:ok within 30 s"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A free port whose cluster-bus port (+10000) is free too.
fn free_cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}
