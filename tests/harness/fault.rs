//! A TCP proxy in front of one of the stack's servers that a test can cut and restore, so that
//! Redis, moto or a stand-in becomes unreachable mid-flight for one TestApp only (stopping the
//! shared servers would break the tests running beside it). It also counts round trips: a
//! client's bytes that follow the server's answer (or open the connection) start a new one, so a
//! pipeline or a script is one, as the network sees it.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

pub struct FaultProxy {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<JoinHandle<()>>>>,
    round_trips: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
}

impl FaultProxy {
    /// Forwards 127.0.0.1:{random} to `target` until cut.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let live: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (round_trips, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (cut_flag, connections, counter, refusals) =
            (cut.clone(), live.clone(), round_trips.clone(), refused.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if cut_flag.load(Ordering::SeqCst) {
                    drop(client); // refused, as a dead server's port would be
                    refusals.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                let counter = counter.clone();
                let task = tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(target).await {
                        relay(client, server, counter).await;
                    }
                });
                connections.lock().unwrap().push(task);
            }
        });
        Self { addr, cut, live, round_trips, refused }
    }

    /// Connections refused while cut.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    /// Round trips through the proxy so far.
    pub fn round_trips(&self) -> usize {
        self.round_trips.load(Ordering::SeqCst)
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for task in self.live.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }

    /// `url` with its host and port replaced by the proxy's.
    pub fn in_front_of(&self, url: &url::Url) -> url::Url {
        let mut proxied = url.clone();
        proxied.set_ip_host(self.addr.ip()).unwrap();
        proxied.set_port(Some(self.addr.port())).unwrap();
        proxied
    }
}

/// The address a URL points at (the stack binds everything to 127.0.0.1).
pub fn target_of(url: &url::Url) -> SocketAddr {
    format!("{}:{}", url.host_str().unwrap(), url.port_or_known_default().unwrap()).parse().unwrap()
}

/// Copies both ways until either side closes, counting the client's turns to speak.
async fn relay(client: TcpStream, server: TcpStream, round_trips: Arc<AtomicUsize>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    // Whether the server spoke last on this connection (true: the client's next bytes are a new
    // round trip).
    let server_spoke = Arc::new(AtomicBool::new(true));
    let heard = server_spoke.clone();
    let upstream = async move {
        let mut buffer = vec![0; 64 * 1024];
        while let Ok(n @ 1..) = client_read.read(&mut buffer).await {
            if server_spoke.swap(false, Ordering::SeqCst) {
                round_trips.fetch_add(1, Ordering::SeqCst);
            }
            if server_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let downstream = async move {
        let mut buffer = vec![0; 64 * 1024];
        while let Ok(n @ 1..) = server_read.read(&mut buffer).await {
            heard.store(true, Ordering::SeqCst);
            if client_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}
