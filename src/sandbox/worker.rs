//! The worker process: forked by the zygote ([`super::zygote`]) for one call, with its socket
//! to the node as standard input and nothing else. It locks itself down
//! ([`super::confine`]), says so, receives one job with its input and output files, runs
//! FFmpeg on it, answers with the outcome and exits. It never sees a secret, a path or another
//! job.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::time::Duration;

use super::confine::{self, Limits};
use super::wire::{self, FromWorker, InputSource, Job, Task, WorkerFault};
use crate::audio_copy::copy_audio;
use crate::transcode::{Input, StopSignal, TranscodeError, transcode};

/// Runs the worker in this (freshly forked) process; returns its exit status.
pub fn run(limits: &Limits) -> i32 {
    keep_freed_memory();
    let confinement = confine::lock_down(limits);
    // SAFETY: the zygote made the node's end of the worker's socket this process's descriptor
    // 0, and nothing else in the process owns it.
    let socket = Arc::new(UnixDatagram::from(unsafe { OwnedFd::from_raw_fd(0) }));
    if send(&socket, &FromWorker::Ready(confinement)).is_err() {
        return 1;
    }
    let Some((job, mut files)) = receive_job(&socket) else { return 1 };
    let outcome = match job.fault {
        Some(fault) => misbehave(fault, &socket),
        None => run_job(job, &mut files, &socket),
    };
    match send(&socket, &FromWorker::Finished(outcome)) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// A worker lives for one call: memory it frees is kept for its next allocation rather than
/// given back to the kernel (and faulted in again, zeroed), buffers up to 32 MiB come from the
/// heap instead of a mapping of their own each time, and small freed blocks go straight back
/// to their size's list (no fast bins to sweep up on every large allocation). Its
/// address-space limit still holds.
fn keep_freed_memory() {
    // SAFETY: mallopt only changes the allocator's thresholds; this process is single-threaded.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TOP_PAD, 16 << 20);
        libc::mallopt(libc::M_MXFAST, 0);
    }
}

fn send(socket: &UnixDatagram, message: &FromWorker) -> io::Result<()> {
    socket.send(&message.encode()).map(drop)
}

/// The job and the files that came with it (input first when it is a file, output last).
fn receive_job(socket: &UnixDatagram) -> Option<(Job, Vec<File>)> {
    let mut buffer = vec![0u8; 64 * 1024];
    let (length, descriptors) = wire::receive_with_descriptors(socket, &mut buffer)?;
    let json = buffer[..length].strip_prefix(&[wire::JOB])?;
    Some((serde_json::from_slice(json).ok()?, descriptors.into_iter().map(File::from).collect()))
}

fn run_job(job: Job, files: &mut Vec<File>, socket: &Arc<UnixDatagram>) -> Result<Option<f64>, TranscodeError> {
    let missing = |what: &str| TranscodeError::Output(format!("the worker was given no {what}"));
    let output = files.pop().ok_or_else(|| missing("output"))?;
    let input: Input = match job.input {
        InputSource::File => Input::local(files.pop().ok_or_else(|| missing("input"))?),
        InputSource::Remote { length } => Input::remote(RemoteInput::new(socket.clone(), length)),
    };
    let progress = socket.clone();
    let stop = StopSignal::without_deadline().observed(move |fraction| {
        let _ = send(&progress, &FromWorker::Progress(fraction));
    });
    match job.task {
        Task::Transcode(options) => {
            transcode(input, Box::new(output), options, &stop).map(|done| Some(done.media_seconds))
        }
        Task::CopyAudio => copy_audio(input, Box::new(output), &stop).map(|()| None),
    }
}

/// The input as the node serves it: each read asks for the bytes at the current position.
struct RemoteInput {
    socket: Arc<UnixDatagram>,
    length: u64,
    position: u64,
    /// The node's answer to a read, reused from read to read.
    answer: Vec<u8>,
}

impl RemoteInput {
    fn new(socket: Arc<UnixDatagram>, length: u64) -> Self {
        RemoteInput { socket, length, position: 0, answer: vec![0; wire::MAX_READ as usize + 1] }
    }
}

impl Read for RemoteInput {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if buffer.is_empty() || self.position >= self.length {
            return Ok(0);
        }
        let wanted = buffer.len().min(wire::MAX_READ as usize) as u32;
        send(&self.socket, &FromWorker::Read { offset: self.position, length: wanted })?;
        let received = self.socket.recv(&mut self.answer[..wanted as usize + 1])?;
        match self.answer[..received].split_first() {
            Some((&wire::DATA, data)) if data.len() <= buffer.len() => {
                buffer[..data.len()].copy_from_slice(data);
                self.position += data.len() as u64;
                Ok(data.len())
            }
            Some((&wire::READ_FAILED, reason)) => Err(io::Error::other(String::from_utf8_lossy(reason).into_owned())),
            _ => Err(io::Error::other("the node's answer to a read is malformed")),
        }
    }
}

impl Seek for RemoteInput {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let position = match to {
            SeekFrom::Start(offset) => Some(offset),
            SeekFrom::End(delta) => self.length.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
        };
        self.position = position.ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        Ok(self.position)
    }
}

/// Test-only: what a decoder taken over by a hostile file would try first.
fn escape_attempts() -> String {
    let outcome = |result: io::Result<()>| match result {
        Ok(()) => "ALLOWED".to_owned(),
        Err(error) => format!("refused ({error})"),
    };
    let open = outcome(File::open("/etc/hostname").map(drop));
    let stat = outcome(std::fs::metadata("/etc/hostname").map(drop));
    let socket = outcome(std::net::UdpSocket::bind("127.0.0.1:0").map(drop));
    let spawn = outcome(std::process::Command::new("/bin/true").status().map(drop));
    // The first step of having the kernel signal another process (here: itself) for a socket.
    // SAFETY: fcntl on this process's own socket; F_SETOWN only names who gets its signals.
    let owner = outcome(match unsafe { libc::fcntl(0, libc::F_SETOWN, libc::getpid()) } {
        -1 => Err(io::Error::last_os_error()),
        _ => Ok(()),
    });
    format!("escape attempts: open {open}; stat {stat}; socket {socket}; process {spawn}; signal owner {owner}")
}

/// Test-only: misbehaves as asked; only [`WorkerFault::Escape`] returns, as a failure saying
/// what its attempts got.
fn misbehave(fault: WorkerFault, socket: &UnixDatagram) -> Result<Option<f64>, TranscodeError> {
    match fault {
        WorkerFault::Escape => Err(TranscodeError::Undecodable(escape_attempts())),
        // SAFETY: none: this is the fault being injected (a write through a null pointer).
        WorkerFault::Segfault => unsafe {
            std::ptr::write_volatile(std::ptr::null_mut::<u64>(), 1);
            std::process::abort()
        },
        WorkerFault::Abort => std::process::abort(),
        WorkerFault::StackOverflow => {
            recurse(0);
            std::process::abort()
        }
        WorkerFault::Spin => loop {
            std::hint::spin_loop();
        },
        WorkerFault::Allocate => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 16 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        WorkerFault::Garbage => {
            let _ = socket.send(b"\x00\xffnot a message at all");
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 64]);
    recurse(frame[0] + 1) + frame[1]
}
