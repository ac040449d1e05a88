//! A TCP proxy in front of one of the stack's servers that a test can cut and restore, so that
//! Redis, moto or a stand-in becomes unreachable mid-flight for one TestApp only (stopping the
//! shared servers would break the tests running beside it).

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::{
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

pub struct FaultProxy {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl FaultProxy {
    /// Forwards 127.0.0.1:{random} to `target` until cut.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let live: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (cut_flag, connections) = (cut.clone(), live.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if cut_flag.load(Ordering::SeqCst) {
                    drop(client); // refused, as a dead server's port would be
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                connections.lock().unwrap().push(task);
            }
        });
        Self { addr, cut, live }
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
