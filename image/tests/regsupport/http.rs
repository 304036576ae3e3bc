//! A tiny HTTP/1.1 server for the registry tests (hostile registries, a
//! token endpoint), on 127.0.0.1.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// A request as the server saw it.
pub struct Req {
    pub method: String,
    pub path: String,
    /// The request head, lower-cased.
    pub headers: String,
    /// The request head as sent.
    pub raw: String,
}

pub type Handler = dyn Fn(&Req, &mut TcpStream, &Ctx) + Send + Sync;

/// What handlers see of their server.
pub struct Ctx {
    pub addr: String,
    pub stop: AtomicBool,
    pub hits: AtomicUsize,
}

impl Ctx {
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// A tiny HTTP/1.1 server: one thread per connection, each request
/// answered by the handler, stopped on drop.
pub struct Server {
    pub ctx: Arc<Ctx>,
    pub addr: String,
}

impl Server {
    pub fn start(handler: impl Fn(&Req, &mut TcpStream, &Ctx) + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let ctx = Arc::new(Ctx {
            addr: addr.clone(),
            stop: AtomicBool::new(false),
            hits: AtomicUsize::new(0),
        });
        let handler: Arc<Handler> = Arc::new(handler);
        let shared = ctx.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if shared.stopped() {
                    return;
                }
                let Ok(mut conn) = conn else { continue };
                let handler = handler.clone();
                let ctx = shared.clone();
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                    while let Some(req) = read_request(&mut conn) {
                        ctx.hits.fetch_add(1, Ordering::Relaxed);
                        handler(&req, &mut conn, &ctx);
                        if ctx.stopped() {
                            return;
                        }
                    }
                });
            }
        });
        Server { ctx, addr }
    }

    pub fn hits(&self) -> usize {
        self.ctx.hits.load(Ordering::Relaxed)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.ctx.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(&self.addr);
    }
}

pub fn read_request(conn: &mut TcpStream) -> Option<Req> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte).ok()? == 0 || head.len() > 65536 {
            return None;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut words = text.split_whitespace();
    Some(Req {
        method: words.next()?.to_string(),
        path: words.next()?.to_string(),
        headers: text.to_ascii_lowercase(),
        raw: text.clone(),
    })
}

pub fn respond(conn: &mut TcpStream, status: &str, headers: &[(&str, &str)], body: &[u8]) {
    let mut out = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let _ = conn.write_all(out.as_bytes());
    let _ = conn.write_all(body);
}

/// A TCP proxy to `upstream` that sends the answers on slowly (`chunk`
/// bytes per 10 ms), so a test can kill a client mid-download.
pub struct Proxy {
    pub addr: String,
    stop: Arc<AtomicBool>,
    /// Bytes sent on to clients.
    pub sent: Arc<std::sync::atomic::AtomicU64>,
}

impl Proxy {
    pub fn start(upstream: &str, chunk: usize) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (up, halt, count) = (upstream.to_string(), stop.clone(), sent.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if halt.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = conn else { continue };
                let Ok(server) = TcpStream::connect(&up) else {
                    continue;
                };
                let (mut c_read, mut s_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c_read, &mut s_write);
                    let _ = s_write.shutdown(std::net::Shutdown::Write);
                });
                let (mut s_read, mut c_write) = (server, client);
                let halt = halt.clone();
                let count = count.clone();
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; chunk];
                    loop {
                        if halt.load(Ordering::Relaxed) {
                            return;
                        }
                        match s_read.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if c_write.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                                count.fetch_add(n as u64, Ordering::Relaxed);
                            }
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    let _ = c_write.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        Proxy { addr, stop, sent }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(&self.addr);
    }
}
