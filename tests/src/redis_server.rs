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
}

impl RedisServer {
    /// Starts a server on a free port; panics with [`INSTALL_HINT`] if it cannot.
    pub fn start() -> Self {
        let port = free_port();
        let mut server = Self { port, child: None };
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
