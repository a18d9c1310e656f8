//! The runtime of `ferrogate serve`: one single-threaded tokio runtime per core, each with its own
//! listening socket (`SO_REUSEPORT`, so the kernel spreads connections over them) and its own
//! upstream connection pools.
//!
//! A request is then read, routed, sent upstream and answered by one thread. On a work-stealing
//! runtime the client connection, the upstream connection and the request's task often live on
//! different workers, and every hand-off between them is a thread wake-up: measured here, that
//! was most of the gap to an nginx hop. The cost is balance: a thread busy with one heavy
//! connection does not lend its core to another thread's connections; the kernel's hashing of
//! many connections evens that out.
//!
//! Shared state (the gateway's snapshot, health, metrics) stays shared; background work (log
//! store writer, trace export) runs on the calling thread's runtime, which [`serve`] expects to be
//! driving it.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::{mpsc, watch};

use crate::gateway::Gateway;
use crate::providers::transport;

/// Pending connections each listening socket holds before the kernel refuses more.
const BACKLOG: i32 = 1024;

/// The worker threads to use: the config's, else one per available core.
pub fn thread_count(configured: Option<usize>) -> usize {
    configured.filter(|&n| n > 0).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    })
}

/// Sockets bound to one address, one per worker thread.
pub struct Listeners {
    pub addr: SocketAddr,
    sockets: Vec<std::net::TcpListener>,
}

/// Binds `host:port` once per thread. Fails as a plain bind would when the address is taken: the
/// address is first bound without `SO_REUSEPORT`, which also keeps two gateways from silently
/// sharing a port.
pub fn bind(host: &str, port: u16, threads: usize) -> io::Result<Listeners> {
    let cannot =
        |e: io::Error| io::Error::new(e.kind(), format!("cannot listen on {host}:{port}: {e}"));
    let candidates: Vec<SocketAddr> = (host, port).to_socket_addrs().map_err(cannot)?.collect();
    let mut last_error = io::Error::new(io::ErrorKind::AddrNotAvailable, "no address");
    for candidate in candidates {
        match bind_all(candidate, threads.max(1)) {
            Ok(listeners) => return Ok(listeners),
            Err(e) => last_error = e,
        }
    }
    Err(cannot(last_error))
}

fn bind_all(addr: SocketAddr, threads: usize) -> io::Result<Listeners> {
    let probe = std::net::TcpListener::bind(addr)?;
    let addr = probe.local_addr()?;
    if threads == 1 {
        probe.set_nonblocking(true)?;
        return Ok(Listeners {
            addr,
            sockets: vec![probe],
        });
    }
    // The probe proved the address free (and fixed the port when 0 was asked for); the group of
    // SO_REUSEPORT sockets takes its place.
    drop(probe);
    let sockets = (0..threads)
        .map(|_| reuseport_listener(addr))
        .collect::<io::Result<Vec<_>>>()?;
    Ok(Listeners { addr, sockets })
}

fn reuseport_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Serves on the calling runtime (a work-stealing one) from the first socket: the
/// `work_stealing` model, where the runtime's own worker threads share all connections.
pub async fn serve_shared(
    gateway: Gateway,
    mut listeners: Listeners,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    drain_timeout: Duration,
) -> io::Result<()> {
    let socket = listeners.sockets.swap_remove(0);
    let listener = tokio::net::TcpListener::from_std(socket)?;
    super::serve(gateway, listener, shutdown, drain_timeout).await
}

/// Serves on one thread per listener until `shutdown` resolves, then lets every thread drain its
/// in-flight requests (up to `drain_timeout`) and returns. Must be awaited on a runtime that
/// keeps running meanwhile: the gateway's background tasks live there.
pub async fn serve(
    gateway: Gateway,
    listeners: Listeners,
    shutdown: impl std::future::Future<Output = ()>,
    drain_timeout: Duration,
) -> io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (exit_tx, mut exit_rx) = mpsc::unbounded_channel::<io::Result<()>>();
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    for (i, socket) in listeners.sockets.into_iter().enumerate() {
        let gateway = gateway.clone();
        let stop = stop_rx.clone();
        let exit = exit_tx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("ferrogate-worker-{i}"))
            .spawn(move || {
                let result = run_worker(gateway, socket, stop, drain_timeout);
                let _ = exit.send(result);
            });
        match spawned {
            Ok(handle) => threads.push(handle),
            Err(e) => {
                let _ = stop_tx.send(true);
                return Err(io::Error::other(format!(
                    "cannot start a worker thread: {e}"
                )));
            }
        }
    }
    drop(exit_tx);

    // A worker that stops on its own (its listener failed) stops the whole server: a gateway
    // serving on part of its cores would be a silent degradation.
    let first_exit = tokio::select! {
        () = shutdown => None,
        exit = exit_rx.recv() => exit,
    };
    if first_exit.is_none() {
        tracing::info!(
            timeout_s = drain_timeout.as_secs_f64(),
            "shutting down: draining in-flight requests"
        );
    }
    let _ = stop_tx.send(true);
    let mut result = first_exit.unwrap_or(Ok(()));
    while let Some(exit) = exit_rx.recv().await {
        if result.is_ok() {
            result = exit;
        }
    }
    for handle in threads {
        let _ = handle.join();
    }
    tracing::info!("stopped");
    result
}

fn run_worker(
    gateway: Gateway,
    socket: std::net::TcpListener,
    mut stop: watch::Receiver<bool>,
    drain_timeout: Duration,
) -> io::Result<()> {
    transport::use_thread_local_pools();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(socket)?;
        let stopped = async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        };
        super::serve_quietly(gateway, listener, stopped, drain_timeout).await
    })
}
