//! Pipes between the parent and a child: creation, non-blocking reads, and a write
//! side with an owned buffer.
//!
//! Every descriptor is created close-on-exec (`pipe2(O_CLOEXEC)`), so no spawn running
//! concurrently in another thread can inherit it. The parent's ends are non-blocking;
//! the child's ends stay blocking, as a child expects.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::sys::{cvt, retry_eintr, set_nonblocking};

/// Largest pipe an unprivileged process may ask for by default
/// (`/proc/sys/fs/pipe-max-size`); growing is best effort and stops at the first refusal.
pub const GROWN_PIPE_SIZE: u32 = 1 << 20;

/// A new pipe, both ends close-on-exec: `(read end, write end)`.
pub fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid two-element array for pipe2 to fill.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both descriptors are new and owned by us alone.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sets the capacity of the pipe behind `fd` (`F_SETPIPE_SZ`, whose argument the kernel
/// reads as an unsigned int); returns the size granted.
pub fn set_pipe_size(fd: BorrowedFd<'_>, size: u32) -> io::Result<usize> {
    // SAFETY: F_SETPIPE_SZ on a borrowed open descriptor; the kernel validates the size.
    let got = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, size) })?;
    Ok(got as usize)
}

/// How many bytes can be read from `fd` without blocking (`FIONREAD`).
pub fn bytes_available(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer we pass.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) })?;
    Ok(n.max(0) as usize)
}

/// One non-blocking `read`: `Ok(None)` when nothing is there yet, `Ok(Some(0))` at EOF.
pub fn read_nonblocking(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Option<usize>> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
    unsafe { read_raw(fd, buf.as_mut_ptr(), buf.len()) }
}

/// [`read_nonblocking`] into raw (possibly uninitialised) memory.
///
/// # Safety
/// `ptr` must be valid for writes of `len` bytes.
unsafe fn read_raw(fd: BorrowedFd<'_>, ptr: *mut u8, len: usize) -> io::Result<Option<usize>> {
    let res = retry_eintr(|| {
        // SAFETY: the caller guarantees `ptr` is writable for `len` bytes.
        let n = unsafe { libc::read(fd.as_raw_fd(), ptr.cast(), len) };
        cvt(n)
    });
    match res {
        Ok(n) => Ok(Some(n as usize)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// One non-blocking `write`: returns how much was written, `0` when the pipe is full.
pub fn write_nonblocking(fd: BorrowedFd<'_>, data: &[u8]) -> io::Result<usize> {
    if data.is_empty() {
        return Ok(0);
    }
    let res = retry_eintr(|| {
        // SAFETY: `data` is valid for reads of `data.len()` bytes for the whole call.
        let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
        cvt(n)
    });
    match res {
        Ok(n) => Ok(n as usize),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
        Err(e) => Err(e),
    }
}

/// The parent's reading end of a child's stdout or stderr.
///
/// Reads never block. When a read drains a full pipe, the pipe is grown once to
/// [`GROWN_PIPE_SIZE`] so a fast writer needs fewer wake-ups; memory stays bounded
/// because the caller decides how much to take per read and when to stop reading.
#[derive(Debug)]
pub struct ReadPipe {
    fd: OwnedFd,
    capacity: usize,
    grow: bool,
}

impl ReadPipe {
    pub fn new(fd: OwnedFd) -> io::Result<Self> {
        set_nonblocking(fd.as_fd(), true)?;
        // SAFETY: F_GETPIPE_SZ only queries the pipe.
        let capacity = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETPIPE_SZ) };
        Ok(Self {
            fd,
            capacity: usize::try_from(capacity).unwrap_or(0),
            grow: capacity > 0,
        })
    }

    /// How many bytes a read would return now, at most `max`; `0` means "EOF or nothing
    /// yet" and the caller must read to tell which.
    pub fn ready_len(&self, max: usize) -> io::Result<usize> {
        Ok(bytes_available(self.fd.as_fd())?.min(max))
    }

    /// Reads into `buf`; see [`read_nonblocking`].
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let got = read_nonblocking(self.fd.as_fd(), buf)?;
        self.after_read(got);
        Ok(got)
    }

    /// Reads what is there, at most `max` bytes, appending to `out` without
    /// initialising the space first; see [`read_nonblocking`].
    ///
    /// Room for `max` bytes is reserved without asking the pipe how much it holds
    /// (`FIONREAD` takes the pipe's lock, and contends with a writer copying in); the
    /// pages a short read leaves untouched cost address space, not memory. Room that
    /// cannot be had is an `OutOfMemory` error (never a panic or an abort).
    pub fn read_append(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<Option<usize>> {
        out.try_reserve(max)
            .map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
        let spare = out.spare_capacity_mut();
        // SAFETY: `spare` has room for at least `max` bytes after the reserve above.
        let got = unsafe { read_raw(self.fd.as_fd(), spare.as_mut_ptr().cast(), max) }?;
        if let Some(n) = got {
            // SAFETY: read() initialised the first `n` bytes of the spare capacity.
            unsafe { out.set_len(out.len() + n) };
        }
        self.after_read(got);
        Ok(got)
    }

    fn after_read(&mut self, got: Option<usize>) {
        if self.grow && got.is_some_and(|n| n >= self.capacity) {
            // The writer filled the whole pipe: give it more room for the next round.
            self.grow = false;
            if let Ok(size) = set_pipe_size(self.fd.as_fd(), GROWN_PIPE_SIZE) {
                self.capacity = size;
            }
        }
    }
}

impl AsFd for ReadPipe {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The parent's writing end of a child's stdin, with the bytes not yet accepted by the
/// pipe kept in order.
#[derive(Debug)]
pub struct WritePipe {
    fd: OwnedFd,
    pending: Vec<u8>,
    /// Bytes at the front of `pending` already written.
    sent: usize,
}

impl WritePipe {
    pub fn new(fd: OwnedFd) -> io::Result<Self> {
        set_nonblocking(fd.as_fd(), true)?;
        Ok(Self {
            fd,
            pending: Vec::new(),
            sent: 0,
        })
    }

    /// Bytes accepted by [`write`](Self::write) but not yet by the pipe.
    pub fn buffered(&self) -> usize {
        self.pending.len() - self.sent
    }

    /// Writes what the pipe takes now and keeps the rest; returns the bytes buffered.
    pub fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut written = 0;
        if self.buffered() == 0 {
            written = write_nonblocking(self.fd.as_fd(), data)?;
        }
        self.pending.extend_from_slice(&data[written..]);
        Ok(self.buffered())
    }

    /// Writes as much of the buffer as the pipe takes; returns the bytes still buffered.
    pub fn flush(&mut self) -> io::Result<usize> {
        let n = write_nonblocking(self.fd.as_fd(), &self.pending[self.sent..])?;
        self.sent += n;
        if self.sent == self.pending.len() {
            self.pending.clear();
            self.sent = 0;
        } else if self.sent > self.pending.len() / 2 {
            // Compact once the written prefix dominates, so the buffer never only grows.
            self.pending.drain(..self.sent);
            self.sent = 0;
        }
        Ok(self.buffered())
    }

    /// Drops whatever is still buffered (on abort).
    pub fn discard(&mut self) {
        self.pending = Vec::new();
        self.sent = 0;
    }
}

impl AsFd for WritePipe {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipe_ends_are_cloexec() {
        let (r, w) = pipe_cloexec().unwrap();
        for fd in [r.as_raw_fd(), w.as_raw_fd()] {
            let flags = crate::sys::fd_flags(fd).unwrap();
            assert_ne!(flags & libc::FD_CLOEXEC, 0);
        }
    }

    #[test]
    fn read_reports_would_block_then_data_then_eof() {
        let (r, w) = pipe_cloexec().unwrap();
        let mut reader = ReadPipe::new(r).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(reader.read(&mut buf).unwrap(), None);
        write_nonblocking(w.as_fd(), b"hello").unwrap();
        assert_eq!(reader.ready_len(100).unwrap(), 5);
        assert_eq!(reader.ready_len(3).unwrap(), 3);
        assert_eq!(reader.read(&mut buf).unwrap(), Some(5));
        assert_eq!(&buf[..5], b"hello");
        drop(w);
        assert_eq!(reader.read(&mut buf).unwrap(), Some(0));
    }

    #[test]
    fn read_append_appends_what_is_there() {
        let (r, w) = pipe_cloexec().unwrap();
        let mut reader = ReadPipe::new(r).unwrap();
        let mut out = b"ab".to_vec();
        assert_eq!(reader.read_append(&mut out, 100).unwrap(), None);
        write_nonblocking(w.as_fd(), b"cdef").unwrap();
        assert_eq!(reader.read_append(&mut out, 3).unwrap(), Some(3));
        assert_eq!(out, b"abcde");
        drop(w);
        assert_eq!(reader.read_append(&mut out, 100).unwrap(), Some(1));
        assert_eq!(reader.read_append(&mut out, 100).unwrap(), Some(0));
        assert_eq!(out, b"abcdef");
    }

    #[test]
    fn read_append_without_room_is_out_of_memory() {
        let (r, _w) = pipe_cloexec().unwrap();
        let mut reader = ReadPipe::new(r).unwrap();
        let mut out = Vec::new();
        let err = reader.read_append(&mut out, usize::MAX).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::OutOfMemory);
    }

    #[test]
    fn full_pipe_grows_once() {
        let (r, w) = pipe_cloexec().unwrap();
        let mut reader = ReadPipe::new(r).unwrap();
        let before = reader.capacity;
        let chunk = vec![7u8; before];
        assert_eq!(write_nonblocking(w.as_fd(), &chunk).unwrap(), before);
        let mut buf = vec![0u8; before];
        assert_eq!(reader.read(&mut buf).unwrap(), Some(before));
        assert!(!reader.grow);
        assert!(reader.capacity >= before);
    }

    #[test]
    fn writer_buffers_what_the_pipe_refuses_and_flushes_in_order() {
        let (r, w) = pipe_cloexec().unwrap();
        let mut reader = ReadPipe::new(r).unwrap();
        let mut writer = WritePipe::new(w).unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let left = writer.write(&data).unwrap();
        assert!(left > 0, "a 64 KiB pipe cannot take 200 kB at once");
        let mut got = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        while got.len() < data.len() {
            if let Some(n) = reader.read(&mut buf).unwrap() {
                got.extend_from_slice(&buf[..n]);
            }
            writer.flush().unwrap();
        }
        assert_eq!(got, data);
        assert_eq!(writer.buffered(), 0);
    }

    #[test]
    fn write_to_closed_reader_is_epipe() {
        let (r, w) = pipe_cloexec().unwrap();
        drop(r);
        let mut writer = WritePipe::new(w).unwrap();
        // SAFETY: ignoring SIGPIPE for the test process so EPIPE is returned instead.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        let err = writer.write(b"x").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPIPE));
    }
}
