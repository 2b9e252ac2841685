//! A PostgreSQL and a Redis that one test owns: started on free loopback ports in a temporary
//! directory, stopped and started again under a running server, and stopped when dropped.
//! PostgreSQL comes from `/usr/lib/postgresql/*/bin` (run as the `postgres` user when the
//! tests run as root, since `initdb` refuses root).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn answers(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// Polls `done` until it holds, for at most `limit`.
pub async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn postgres_bin() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries in /usr/lib/postgresql (apt-get install postgresql)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop().expect("initdb under /usr/lib/postgresql/*/bin")
}

/// A PostgreSQL cluster of this test.
pub struct OwnPostgres {
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    as_postgres: bool,
    _dir: TempDir,
}

impl OwnPostgres {
    fn command(&self, tool: &str) -> Command {
        own_command(&self.bin, tool, self.as_postgres)
    }

    pub fn start() -> OwnPostgres {
        let dir = tempfile::tempdir().unwrap();
        let as_postgres = is_root();
        let data = dir.path().join("pgdata");
        std::fs::create_dir(&data).unwrap();
        if as_postgres {
            // The temporary directory is root's; the cluster belongs to `postgres`.
            run(Command::new("chmod").arg("755").arg(dir.path()));
            run(Command::new("chown")
                .arg("-R")
                .arg("postgres")
                .arg(dir.path()));
        }
        let pg = OwnPostgres {
            port: free_port(),
            bin: postgres_bin(),
            data,
            as_postgres,
            _dir: dir,
        };
        run(pg
            .command("initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&pg.data));
        pg.resume();
        pg
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server again (same port, same data) and waits until it accepts.
    pub fn resume(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.data.display()
        );
        run(self
            .command("pg_ctl")
            .args(["start", "-w", "-t", "30", "-D"])
            .arg(&self.data)
            .arg("-l")
            .arg(self.data.join("log"))
            .args(["-o", &options]));
        assert!(answers(self.port), "PostgreSQL listens on {}", self.port);
    }

    /// Stops the server (fast: open connections are terminated).
    pub fn stop(&self) {
        run(self
            .command("pg_ctl")
            .args(["stop", "-w", "-m", "fast", "-D"])
            .arg(&self.data));
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["stop", "-m", "immediate", "-D"])
            .arg(&self.data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn own_command(bin: &Path, tool: &str, as_postgres: bool) -> Command {
    let program = bin.join(tool);
    if as_postgres {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("the command starts");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Redis server of this test (no persistence).
pub struct OwnRedis {
    pub port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    pub async fn start() -> OwnRedis {
        let mut redis = OwnRedis {
            port: free_port(),
            child: None,
        };
        redis.resume().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub async fn resume(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server)");
        self.child = Some(child);
        let port = self.port;
        wait_until("redis-server to listen", Duration::from_secs(10), || {
            answers(port)
        })
        .await;
    }

    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let port = self.port;
        wait_until("redis-server to stop", Duration::from_secs(10), || {
            !answers(port)
        })
        .await;
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
