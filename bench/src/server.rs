//! The server under test: what `mediation serve` runs, started as a child
//! process of this same executable (its hidden `serve-for-bench`
//! subcommand), so that its memory is its own.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// A running server under test.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    child: tokio::process::Child,
    addr: SocketAddr,
    board: Option<SocketAddr>,
}

/// A loopback address with a port that was free a moment ago.
fn free_port() -> anyhow::Result<SocketAddr> {
    let probe =
        std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port for the server")?;
    Ok(probe.local_addr()?)
}

impl ServerProcess {
    /// Starts the server on `database_url` on a free loopback port, with no
    /// deadline timers, and waits until it reports itself serving.
    pub(crate) async fn start(database_url: &str) -> anyhow::Result<Self> {
        // The gRPC server alone is measured; no board on a fixed port.
        Self::start_on(database_url, None).await
    }

    /// [`ServerProcess::start`] with the web board on a free loopback
    /// port too ([`ServerProcess::board`]), open to all (no agencies file).
    pub(crate) async fn start_with_board(database_url: &str) -> anyhow::Result<Self> {
        Self::start_on(database_url, Some(free_port()?)).await
    }

    async fn start_on(database_url: &str, board: Option<SocketAddr>) -> anyhow::Result<Self> {
        let addr = free_port()?;
        let exe = std::env::current_exe().context("locating the mediation-bench executable")?;
        let http = board.map_or_else(|| "off".to_owned(), |a| a.to_string());
        let child = tokio::process::Command::new(exe)
            .arg("serve-for-bench")
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--timer-interval")
            .arg("0")
            .arg("--http")
            .arg(http)
            .env("DATABASE_URL", database_url)
            .env("RUST_LOG", "warn")
            .env_remove("MEDIATION_AGENCIES")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting the server (`mediation-bench serve-for-bench`)")?;
        let mut server = Self { child, addr, board };
        server.wait_serving(Duration::from_secs(120)).await?;
        Ok(server)
    }

    async fn wait_serving(&mut self, limit: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        let endpoint = Endpoint::from_shared(format!("http://{}", self.addr))?;
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("the server exited before serving: {status}");
            }
            if let Ok(channel) = endpoint.connect().await {
                let serving = HealthClient::new(channel)
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    .is_ok_and(|r| r.into_inner().status == 1);
                if serving {
                    return Ok(());
                }
            }
            if started.elapsed() > limit {
                anyhow::bail!("the server did not report serving within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A channel to the server; `connections` HTTP/2 connections shared
    /// round-robin, as a partner's client pool would.
    pub(crate) async fn channel(&self, connections: usize) -> anyhow::Result<Channel> {
        let uri = format!("http://{}", self.addr);
        let endpoints = (0..connections.max(1))
            .map(|_| Endpoint::from_shared(uri.clone()).map(|e| e.tcp_nodelay(true)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Channel::balance_list(endpoints.into_iter()))
    }

    /// Where the web board listens, if it was started with one.
    pub(crate) fn board(&self) -> Option<SocketAddr> {
        self.board
    }

    /// The server's peak resident memory so far, in bytes (Linux only).
    pub(crate) fn peak_memory(&self) -> Option<u64> {
        let pid = self.child.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status.lines().find_map(|line| {
            let kb = line.strip_prefix("VmHWM:")?.trim().strip_suffix("kB")?;
            kb.trim().parse::<u64>().ok().map(|kb| kb * 1024)
        })
    }

    /// Stops the server as a service manager would (SIGTERM), and kills it
    /// if it has not stopped within ten seconds.
    pub(crate) async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = tokio::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await;
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}
