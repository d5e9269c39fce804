//! Datagrams in batches: one `recvmmsg`/`sendmmsg` system call for up to [`BATCH`] datagrams on
//! Linux, one `recv_from`/`send_to` per datagram elsewhere. The buffers are allocated once.

use core::net::SocketAddr;
use std::io;

use mio::net::UdpSocket;

/// Datagrams moved by one system call.
pub(crate) const BATCH: usize = 32;

/// [`BATCH`] datagram buffers with their lengths and addresses (sources after [`Batch::recv`],
/// destinations for [`Batch::send`]).
pub(crate) struct Batch {
    /// `BATCH` slots of `stride` bytes each.
    buf: Vec<u8>,
    stride: usize,
    lens: [usize; BATCH],
    addrs: [SocketAddr; BATCH],
    /// Slots in use.
    len: usize,
}

/// The system calls' message headers, allocated once per thread (they hold raw pointers, so
/// they cannot travel with a [`Batch`] to another thread) and reused by every call.
#[cfg(target_os = "linux")]
type Headers = nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>;

/// Which headers: `sendmmsg` points them at its own addresses, and `recvmmsg` keeps the address
/// length of the previous call, so sending and each socket's receiving have their own.
#[cfg(target_os = "linux")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Use {
    Send,
    RecvV4,
    RecvV6,
}

#[cfg(target_os = "linux")]
std::thread_local! {
    static HEADERS: [core::cell::RefCell<Headers>; 3] =
        core::array::from_fn(|_| core::cell::RefCell::new(Headers::preallocate(BATCH, None)));
}

/// Runs `f` with this thread's headers for `what`.
#[cfg(target_os = "linux")]
fn with_headers<R>(what: Use, f: impl FnOnce(&mut Headers) -> io::Result<R>) -> io::Result<R> {
    HEADERS.with(|h| {
        let h = h.get(what as usize).ok_or(io::ErrorKind::InvalidInput)?;
        let mut h = h
            .try_borrow_mut()
            .map_err(|_| io::Error::from(io::ErrorKind::WouldBlock))?;
        f(&mut h)
    })
}

impl core::fmt::Debug for Batch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Batch")
            .field("stride", &self.stride)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// What [`Batch::send`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sent {
    /// Datagrams sent.
    pub(crate) ok: usize,
    /// Datagrams the system refused.
    pub(crate) failed: usize,
    /// System calls that sent at least one datagram.
    pub(crate) calls: usize,
}

impl Batch {
    /// Buffers for datagrams of up to `stride` bytes.
    pub(crate) fn new(stride: usize) -> Self {
        Self {
            buf: vec![0; stride.saturating_mul(BATCH)],
            stride,
            lens: [0; BATCH],
            addrs: [SocketAddr::from(([0, 0, 0, 0], 0)); BATCH],
            len: 0,
        }
    }

    /// Datagrams held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether every slot is in use.
    pub(crate) fn is_full(&self) -> bool {
        self.len >= BATCH
    }

    /// Datagram `i`: its address and bytes.
    pub(crate) fn get(&self, i: usize) -> Option<(SocketAddr, &[u8])> {
        if i >= self.len {
            return None;
        }
        let addr = *self.addrs.get(i)?;
        let start = i.checked_mul(self.stride)?;
        let data = self.buf.get(start..start + *self.lens.get(i)?)?;
        Some((addr, data))
    }

    /// The address family of datagram `i` (`0` IPv4, `1` IPv6).
    pub(crate) fn family(&self, i: usize) -> usize {
        self.addrs.get(i).map_or(0, |a| usize::from(a.is_ipv6()))
    }

    /// The next free slot, to be filled and then committed with [`Batch::push`].
    pub(crate) fn slot(&mut self) -> &mut [u8] {
        let start = self.len.saturating_mul(self.stride);
        let end = start.saturating_add(self.stride);
        self.buf.get_mut(start..end).unwrap_or_default()
    }

    /// Commits the slot [`Batch::slot`] returned: `len` bytes for `to`.
    pub(crate) fn push(&mut self, len: usize, to: SocketAddr) {
        if let (Some(l), Some(a)) = (self.lens.get_mut(self.len), self.addrs.get_mut(self.len)) {
            *l = len.min(self.stride);
            *a = to;
            self.len += 1;
        }
    }

    /// Empties the batch.
    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    /// Replaces the contents with the datagrams waiting on `socket` (at least one, or an
    /// error: [`io::ErrorKind::WouldBlock`] when there are none).
    /// `v6` tells which family the socket is.
    pub(crate) fn recv(&mut self, socket: &UdpSocket, v6: bool) -> io::Result<usize> {
        self.len = 0;
        #[cfg(target_os = "linux")]
        {
            use std::io::IoSliceMut;
            use std::os::fd::AsRawFd as _;

            use nix::sys::socket::{MsgFlags, SockaddrStorage, recvmmsg};

            let (buf, lens, addrs, len, stride) = (
                &mut self.buf,
                &mut self.lens,
                &mut self.addrs,
                &mut self.len,
                self.stride,
            );
            let what = if v6 { Use::RecvV6 } else { Use::RecvV4 };
            with_headers(what, |headers| {
                let mut chunks = buf.chunks_mut(stride);
                let mut slices: [[IoSliceMut<'_>; 1]; BATCH] =
                    core::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or_default())]);
                let results = recvmmsg(
                    socket.as_raw_fd(),
                    headers,
                    slices.iter_mut(),
                    MsgFlags::empty(),
                    None,
                )
                .map_err(io::Error::from)?;
                for msg in results {
                    let addr = msg.address.as_ref().and_then(to_socket_addr);
                    let (Some(addr), Some(l), Some(a)) =
                        (addr, lens.get_mut(*len), addrs.get_mut(*len))
                    else {
                        continue;
                    };
                    *l = msg.bytes.min(stride);
                    *a = addr;
                    *len += 1;
                }
                Ok(())
            })?;
            fn to_socket_addr(s: &SockaddrStorage) -> Option<SocketAddr> {
                s.as_sockaddr_in()
                    .map(|v4| SocketAddr::V4((*v4).into()))
                    .or_else(|| s.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into())))
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = v6;
            while self.len < BATCH {
                let start = self.len.saturating_mul(self.stride);
                let Some(slot) = self.buf.get_mut(start..start.saturating_add(self.stride)) else {
                    break;
                };
                match socket.recv_from(slot) {
                    Ok((n, from)) => self.push(n, from),
                    Err(e) if self.len == 0 => return Err(e),
                    Err(_) => break,
                }
            }
        }
        Ok(self.len)
    }

    /// Sends datagrams `from..to` (all of one address family) on `socket`. A datagram the
    /// operating system refuses is dropped and counted, like a lost one; the rest still go.
    pub(crate) fn send(&mut self, socket: &UdpSocket, from: usize, to: usize) -> Sent {
        let mut sent = Sent::default();
        let mut next = from;
        while next < to.min(self.len) {
            match self.send_some(socket, next, to.min(self.len)) {
                Ok(0) => {
                    sent.failed += 1;
                    next += 1;
                }
                Ok(n) => {
                    sent.ok += n;
                    sent.calls += 1;
                    next += n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if let Some(to) = self.addrs.get(next) {
                        log::debug!("cannot send to {to}: {e}");
                    }
                    sent.failed += 1;
                    next += 1;
                }
            }
        }
        sent
    }

    /// One system call: sends from datagram `from` on, returns how many went.
    fn send_some(&mut self, socket: &UdpSocket, from: usize, to: usize) -> io::Result<usize> {
        #[cfg(target_os = "linux")]
        {
            use std::io::IoSlice;
            use std::os::fd::AsRawFd as _;

            use nix::sys::socket::{MsgFlags, SockaddrStorage, sendmmsg};

            let count = to.saturating_sub(from);
            let mut addrs = self.addrs.iter().skip(from);
            let addrs: [Option<SockaddrStorage>; BATCH] =
                core::array::from_fn(|_| addrs.next().map(|a| SockaddrStorage::from(*a)));
            let (buf, lens, stride) = (&self.buf, &self.lens, self.stride);
            with_headers(Use::Send, |headers| {
                let mut chunks = buf.chunks(stride).skip(from);
                let mut lens = lens.iter().skip(from);
                let slices: [[IoSlice<'_>; 1]; BATCH] = core::array::from_fn(|_| {
                    let chunk = chunks.next().unwrap_or_default();
                    let len = lens.next().copied().unwrap_or(0);
                    [IoSlice::new(chunk.get(..len).unwrap_or_default())]
                });
                let results = sendmmsg(
                    socket.as_raw_fd(),
                    headers,
                    slices.iter().take(count),
                    addrs,
                    [],
                    MsgFlags::empty(),
                )
                .map_err(io::Error::from)?;
                Ok(results.count())
            })
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = to;
            let (addr, data) = self.get(from).ok_or(io::ErrorKind::InvalidInput)?;
            socket.send_to(data, addr).map(|_| 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (UdpSocket, UdpSocket) {
        let a = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let b = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        (a, b)
    }

    /// Reads until `want` datagrams arrived (the sockets are non-blocking).
    fn recv_all(batch: &mut Batch, socket: &UdpSocket, want: usize) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + core::time::Duration::from_secs(5);
        while got.len() < want && std::time::Instant::now() < deadline {
            match batch.recv(socket, false) {
                Ok(n) => {
                    assert!(n <= BATCH);
                    got.extend((0..n).map(|i| {
                        let (a, d) = batch.get(i).unwrap();
                        (a, d.to_vec())
                    }));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(core::time::Duration::from_millis(1));
                }
                Err(e) => panic!("{e}"),
            }
        }
        got
    }

    #[test]
    fn a_batch_goes_out_in_order_and_comes_back_with_sources() {
        let (a, b) = pair();
        let to = b.local_addr().unwrap();
        let mut tx = Batch::new(64);
        while !tx.is_full() {
            let i = tx.len();
            let slot = tx.slot();
            assert_eq!(slot.len(), 64);
            slot[..3].copy_from_slice(&[b'd', i as u8, 7]);
            tx.push(3, to);
        }
        assert_eq!(
            tx.send(&a, 0, BATCH),
            Sent {
                ok: BATCH,
                failed: 0,
                calls: if cfg!(target_os = "linux") { 1 } else { BATCH }
            }
        );
        // A second batch: more than one receive call is needed for all of them.
        assert_eq!(
            tx.send(&a, 0, BATCH),
            Sent {
                ok: BATCH,
                failed: 0,
                calls: if cfg!(target_os = "linux") { 1 } else { BATCH }
            }
        );
        let mut rx = Batch::new(64);
        let got = recv_all(&mut rx, &b, 2 * BATCH);
        assert_eq!(got.len(), 2 * BATCH);
        for (k, (from, data)) in got.iter().enumerate() {
            assert_eq!(*from, a.local_addr().unwrap());
            assert_eq!(data, &[b'd', (k % BATCH) as u8, 7]);
        }
        assert!(rx.get(BATCH).is_none());
    }

    #[test]
    fn each_family_keeps_whole_source_addresses() {
        let (a, b) = pair();
        let (Ok(a6), Ok(b6)) = (
            UdpSocket::bind("[::1]:0".parse().unwrap()),
            UdpSocket::bind("[::1]:0".parse().unwrap()),
        ) else {
            return; // no IPv6 here
        };
        let mut rx = Batch::new(64);
        for _ in 0..2 {
            a.send_to(b"4", b.local_addr().unwrap()).unwrap();
            let mut got = Vec::new();
            while got.is_empty() {
                got = recv_all(&mut rx, &b, 1);
            }
            assert_eq!(got[0].0, a.local_addr().unwrap());
            a6.send_to(b"6", b6.local_addr().unwrap()).unwrap();
            let deadline = std::time::Instant::now() + core::time::Duration::from_secs(5);
            loop {
                match rx.recv(&b6, true) {
                    Ok(1) => break,
                    Ok(n) => panic!("{n} datagrams"),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        assert!(std::time::Instant::now() < deadline);
                        std::thread::sleep(core::time::Duration::from_millis(1));
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            assert_eq!(rx.get(0).unwrap(), (a6.local_addr().unwrap(), &b"6"[..]));
        }
    }

    #[test]
    fn an_oversized_datagram_is_cut_at_the_slot_size() {
        let (a, b) = pair();
        a.send_to(&[1; 100], b.local_addr().unwrap()).unwrap();
        let mut rx = Batch::new(10);
        let got = recv_all(&mut rx, &b, 1);
        assert_eq!(got, vec![(a.local_addr().unwrap(), vec![1; 10])]);
    }

    #[test]
    fn a_refused_datagram_is_counted_and_the_rest_still_go() {
        let (a, b) = pair();
        let to = b.local_addr().unwrap();
        let mut tx = Batch::new(64);
        tx.slot()[0] = 1;
        tx.push(1, to);
        // IPv6 destination on an IPv4 socket: refused by the system.
        tx.slot()[0] = 2;
        tx.push(1, "[::1]:9".parse().unwrap());
        tx.slot()[0] = 3;
        tx.push(1, to);
        let sent = tx.send(&a, 0, 3);
        assert_eq!((sent.ok, sent.failed), (2, 1));
        let mut rx = Batch::new(64);
        let got = recv_all(&mut rx, &b, 2);
        let bytes: Vec<u8> = got.iter().map(|(_, d)| d[0]).collect();
        assert_eq!(bytes, [1, 3]);
        tx.clear();
        assert_eq!(tx.len(), 0);
        assert_eq!(
            rx.recv(&b, false).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
    }
}
