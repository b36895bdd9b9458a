//! A PostgreSQL server of the test's own, for tests that stop and start the
//! database under a running engine (the shared server that `DATABASE_URL`
//! names serves every other test at the same time and must stay up).
//!
//! It runs the same PostgreSQL as the shared server: `initdb` and `pg_ctl`
//! from the installation `pg_config --bindir` names (or the newest under
//! `/usr/lib/postgresql`). PostgreSQL refuses to run as root, so as root
//! they run as the `postgres` user.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A private PostgreSQL server in a temporary directory, on a free port;
/// stopped and removed on drop.
#[derive(Debug)]
pub struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

impl Cluster {
    /// Creates and starts a server, or returns `None` if PostgreSQL's
    /// server programs are not installed here (a test that needs one
    /// fails in CI, where they are).
    pub fn start() -> Option<Self> {
        let bin = bin_dir()?;
        let as_postgres = is_root();
        let dir = tempfile::tempdir().expect("a temporary directory");
        if as_postgres {
            run(Command::new("chown").arg("postgres").arg(dir.path()));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let cluster = Self {
            bin,
            dir,
            port,
            as_postgres,
        };
        let mut initdb = cluster.command("initdb");
        initdb
            .args([
                "--auth=trust",
                "--username=postgres",
                "--no-sync",
                "--pgdata",
            ])
            .arg(cluster.data());
        run(&mut initdb);
        cluster.resume();
        Some(cluster)
    }

    /// The URL of database `name` on this server (created on first
    /// connect by the store).
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Stops the server at once, as a crash or `kill -9` of the postmaster
    /// would (`pg_ctl stop -m immediate`): connections are cut, nothing is
    /// flushed politely.
    pub fn halt(&self) {
        run(self
            .command("pg_ctl")
            .args(["stop", "--wait", "--mode=immediate", "--pgdata"])
            .arg(self.data()));
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub fn resume(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories='{}' -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        run(self
            .command("pg_ctl")
            .args(["start", "--wait", "--silent", "--pgdata"])
            .arg(self.data())
            .arg("--log")
            .arg(self.dir.path().join("server.log"))
            .arg("-o")
            .arg(options));
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["stop", "--mode=immediate", "--pgdata"])
            .arg(self.data())
            .output();
    }
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Where `initdb` and `pg_ctl` are.
fn bin_dir() -> Option<PathBuf> {
    let from_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(dir) = from_config.filter(|d| d.join("initdb").exists()) {
        return Some(dir);
    }
    let mut installed: Vec<PathBuf> = std::fs::read_dir(Path::new("/usr/lib/postgresql"))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| d.join("initdb").exists())
        .collect();
    installed.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
    });
    installed.pop()
}
