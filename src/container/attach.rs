//! Attaching to a detached container's stdio through its monitor
//! (`docker start -a -i`, `docker attach`).
//!
//! The monitor listens on `containers/<id>/attach.sock` (a Unix stream
//! socket, mode 0600) from the moment the container is created until its
//! process has exited. Every client gets frames: a header of 8 bytes (the
//! stream: 0 the greeting, 1 stdout, 2 stderr, 3 the exit; three zero
//! bytes; the payload's length as a big-endian `u32`, Docker's stdcopy
//! layout) and the payload. The first is an empty greeting, sent once the
//! client is among those that get the process's output from then on. The
//! last
//! frame is the exit (stream 3, payload the exit code as a big-endian
//! `i32`, 128 + the signal for a process killed by one), then the monitor
//! closes the connection. What a client writes goes to the process's stdin
//! when the container was made with an open stdin (`-i`), after one byte
//! (1) that declares the client gives input; the first client that
//! declared input and ends it (shuts its writing half) closes the
//! process's stdin, as docker's `StdinOnce`. A client that leaves without
//! declaring input leaves the stdin open. A client attached before the
//! start (the one that starts the container and waits for it, as `run`
//! and `start -a` do) holds the output back while it does not read, as a
//! docker attach does: nothing is lost on its way. A client that attaches
//! later and does not read its frames for [`WRITE_TIMEOUT`] is dropped, so
//! it cannot stall the process's output. Attach before
//! [`ContainerHandle::start`] to see all the output.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::container::error::{Error, Result, io_err};
use crate::container::handle::ContainerHandle;

/// The stream number of the exit frame.
const EXIT_STREAM: u8 = 3;

/// The stream number of the greeting, the empty first frame.
const GREETING_STREAM: u8 = 0;

/// How long the monitor waits for a client to take a frame before it drops
/// the client.
pub const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The byte a client sends first when it gives input.
const INPUT_MARKER: u8 = 1;

/// The socket's name in the container's directory.
pub(crate) const SOCKET: &str = "attach.sock";

/// `dir/attach.sock` as a short path through a descriptor of `dir` (a
/// socket's path has at most 107 bytes; a store's container directories
/// can be longer), with the descriptor that must stay open while it is
/// used.
fn short_path(dir: &Path) -> Result<(File, PathBuf)> {
    let d = File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(dir)
        .map_err(io_err("open", dir))?;
    let path = PathBuf::from(format!("/proc/self/fd/{}/{SOCKET}", d.as_raw_fd()));
    Ok((d, path))
}

/// One frame's header.
fn header(stream: u8, len: usize) -> [u8; 8] {
    let mut h = [0u8; 8];
    h[0] = stream;
    h[4..].copy_from_slice(&(len.min(u32::MAX as usize) as u32).to_be_bytes());
    h
}

/// The monitor's side: the attached clients and the process's stdin.
#[derive(Debug)]
pub(crate) struct Clients {
    /// The clients, and the exit code once the process has exited.
    list: Mutex<(Vec<UnixStream>, Option<i32>)>,
    stdin: Mutex<Option<File>>,
    path: PathBuf,
    /// The process was started: clients from now on get the write timeout.
    started: std::sync::atomic::AtomicBool,
}

impl Clients {
    /// Listen on `dir/attach.sock`; clients' input goes to `stdin`.
    pub(crate) fn listen(dir: &Path, stdin: Option<File>) -> Result<Arc<Clients>> {
        let path = dir.join(SOCKET);
        let (_dir, short) = short_path(dir)?;
        let listener = UnixListener::bind(&short).map_err(io_err("bind", &path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(io_err("chmod", &path))?;
        let clients = Arc::new(Clients {
            list: Mutex::new((Vec::new(), None)),
            stdin: Mutex::new(stdin),
            path,
            started: std::sync::atomic::AtomicBool::new(false),
        });
        let accepting = Arc::clone(&clients);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                accepting.add(conn);
            }
        });
        Ok(clients)
    }

    fn add(self: &Arc<Clients>, conn: UnixStream) {
        let has_stdin = self.stdin.lock().is_ok_and(|s| s.is_some());
        if has_stdin && let Ok(reader) = conn.try_clone() {
            let me = Arc::clone(self);
            std::thread::spawn(move || me.forward_input(reader));
        }
        // The greeting (an empty frame of stream 0) tells the client it is
        // in the list: output from now on reaches it. Under the lock, so
        // no output frame comes before it. A client that comes after the
        // exit gets the greeting and the exit frame.
        if self.started.load(std::sync::atomic::Ordering::SeqCst) {
            let _ = conn.set_write_timeout(Some(WRITE_TIMEOUT));
        }
        if let Ok(mut list) = self.list.lock() {
            let mut conn = conn;
            if conn.write_all(&header(GREETING_STREAM, 0)).is_ok() {
                match list.1 {
                    None => list.0.push(conn),
                    Some(code) => {
                        let _ = send_to(&mut conn, EXIT_STREAM, &code.to_be_bytes());
                        let _ = conn.shutdown(std::net::Shutdown::Both);
                    }
                }
            }
        }
    }

    /// Copy a client's input to the process's stdin; at its end, close
    /// the stdin. A client that ends without declaring input (its first
    /// byte) leaves the stdin as it is.
    fn forward_input(&self, mut from: UnixStream) {
        let mut marker = [0u8; 1];
        if from.read_exact(&mut marker).is_err() || marker[0] != INPUT_MARKER {
            return;
        }
        let mut buf = [0u8; 8192];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let Ok(mut stdin) = self.stdin.lock() else {
                return;
            };
            let written = stdin.as_mut().map(|s| s.write_all(&buf[..n]).is_ok());
            if written != Some(true) {
                return;
            }
        }
        if let Ok(mut stdin) = self.stdin.lock() {
            stdin.take();
        }
    }

    /// The process is about to start: clients attached from now on are
    /// dropped when they do not read (see the [module docs](self)).
    pub(crate) fn mark_started(&self) {
        self.started
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Send output of `stream` (1 stdout, 2 stderr) to every client; one
    /// that cannot take it is dropped.
    pub(crate) fn send(&self, stream: u8, data: &[u8]) {
        let Ok(mut list) = self.list.lock() else {
            return;
        };
        list.0.retain_mut(|c| send_to(c, stream, data).is_ok());
    }

    /// Send the exit frame, close every client and the socket.
    pub(crate) fn finish(&self, code: i32) {
        let _ = std::fs::remove_file(&self.path);
        if let Ok(mut list) = self.list.lock() {
            list.1 = Some(code);
            for mut c in list.0.drain(..) {
                let _ = send_to(&mut c, EXIT_STREAM, &code.to_be_bytes());
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
        }
        if let Ok(mut stdin) = self.stdin.lock() {
            stdin.take();
        }
    }
}

/// One frame to one client.
fn send_to(conn: &mut UnixStream, stream: u8, data: &[u8]) -> std::io::Result<()> {
    conn.write_all(&header(stream, data.len()))?;
    conn.write_all(data)
}

/// A connection to a detached container's monitor: its output to relay,
/// its input to write (see the [module docs](self)).
#[derive(Debug)]
pub struct Attach {
    conn: UnixStream,
    id: String,
    declared: std::sync::atomic::AtomicBool,
}

impl Attach {
    /// A writer to the process's stdin (when the container was made with
    /// an open stdin; otherwise what is written is dropped). Call
    /// [`Attach::close_input`] at the end of the input.
    pub fn input(&self) -> Result<UnixStream> {
        self.declare_input()?;
        self.conn
            .try_clone()
            .map_err(io_err("dup", Path::new(SOCKET)))
    }

    /// Tell the monitor, once, that this client gives input.
    fn declare_input(&self) -> Result<()> {
        if !self
            .declared
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            (&self.conn)
                .write_all(&[INPUT_MARKER])
                .map_err(io_err("write", Path::new(SOCKET)))?;
        }
        Ok(())
    }

    /// End the input: the process's stdin is closed.
    pub fn close_input(&self) -> Result<()> {
        self.declare_input()?;
        self.conn
            .shutdown(std::net::Shutdown::Write)
            .map_err(io_err("shutdown", Path::new(SOCKET)))
    }

    /// Copy the process's output to `out` and `err` until it exits;
    /// returns its exit code (128 + the signal for a process a signal
    /// killed). A monitor that goes without reporting the exit is an
    /// [`Error::Monitor`].
    pub fn relay(mut self, out: &mut impl Write, err: &mut impl Write) -> Result<i32> {
        let mut h = [0u8; 8];
        let mut payload = Vec::new();
        loop {
            if self.conn.read_exact(&mut h).is_err() {
                return Err(Error::Monitor {
                    op: "attach",
                    message: format!("the monitor of {} ended without an exit code", self.id),
                });
            }
            let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
            payload.resize(len, 0);
            self.conn
                .read_exact(&mut payload)
                .map_err(io_err("read", Path::new(SOCKET)))?;
            let to: &mut dyn Write = match h[0] {
                1 => out,
                2 => err,
                EXIT_STREAM if len == 4 => {
                    let _ = out.flush();
                    let _ = err.flush();
                    return Ok(i32::from_be_bytes([
                        payload[0], payload[1], payload[2], payload[3],
                    ]));
                }
                _ => {
                    return Err(Error::Monitor {
                        op: "attach",
                        message: format!("a frame of unknown stream {}", h[0]),
                    });
                }
            };
            // The reader may have gone (a closed pipe): keep draining.
            let _ = to.write_all(&payload).and_then(|()| to.flush());
        }
    }
}

impl ContainerHandle {
    /// Attach to the stdio of a detached container (made by
    /// [`Container::create_detached`](crate::container::Container::create_detached))
    /// through its monitor; see the [attach module](self). Fails with
    /// [`Error::Unsupported`] when no monitor listens (a container made
    /// by this process, or one whose process has exited).
    pub fn attach_stdio(&self) -> Result<Attach> {
        let (_dir, short) = short_path(&self.dir())?;
        let gone = || Error::Unsupported {
            op: "attach",
            reason: "no monitor listens for this container (not detached, or exited)",
        };
        let mut conn = UnixStream::connect(&short).map_err(|_| gone())?;
        // Attached once greeted: what the process writes from now on
        // reaches this connection.
        let mut greeting = [0u8; 8];
        conn.read_exact(&mut greeting).map_err(|_| gone())?;
        if greeting != header(GREETING_STREAM, 0) {
            return Err(Error::Monitor {
                op: "attach",
                message: "an unexpected greeting".to_owned(),
            });
        }
        Ok(Attach {
            conn,
            id: self.id().to_owned(),
            declared: std::sync::atomic::AtomicBool::new(false),
        })
    }
}
