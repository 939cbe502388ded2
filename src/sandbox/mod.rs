//! FFmpeg on uploads, in a sandboxed worker process: every call of FFmpeg on user data (the
//! conversion, the gateway's audio-only copy) runs in a child process of the node, forked for
//! that one call from a zygote of the same binary ([`zygote`]), and supervised by the thread
//! that asked for it, the way Erlang supervises a port.
//!
//! The child gets no secret (an environment of one fixed variable, `LD_BIND_NOW=1`, no
//! descriptor but its socket, input and output), no network and no file system (a seccomp filter; a network namespace where the
//! filter cannot be had), bounded
//! memory, CPU time and output size ([`confine`]); its input is a read-only descriptor or
//! reads the node answers from the blob store, its output a scratch file the node stores.
//! Whatever the child does, the node survives: a crash (SIGSEGV, `abort()`, a stack
//! overflow), running out of memory or time, or a message that is not one ends in
//! [`TranscodeError::Crashed`] or [`TranscodeError::TimedOut`], with the child killed and
//! reaped. A fresh process for every call means one user's file never shares a process with
//! another's.
//!
//! - [`wire`]: the messages on the socket pair;
//! - [`worker`]: the child's side;
//! - [`confine`]: the child's lockdown;
//! - [`zygote`]: the process the workers are forked from.

pub mod confine;
pub mod wire;
pub mod worker;
pub mod zygote;

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::storage::{Media, SeekableRead};
use crate::transcode::{StopSignal, TranscodeError, TranscodeOptions, Transcoded};
use wire::{Confinement, FromWorker, InputSource, Job, Task, WorkerFault};

/// What the node asks of FFmpeg. In production a [`Sandbox`]; in tests of the actors' logic,
/// a stand-in.
pub trait MediaWorker: Send + Sync {
    /// Converts the best audio stream of `input` into an MP3 at `output` (an existing scratch
    /// file, overwritten).
    fn transcode(
        &self,
        input: Media,
        output: &Path,
        options: TranscodeOptions,
        fault: Option<WorkerFault>,
        stop: &StopSignal,
    ) -> Result<Transcoded, TranscodeError>;

    /// Copies the best audio stream of the file at `input` (an upload spooled to the node's
    /// scratch folder) into Matroska at `output` (an existing scratch file, overwritten).
    fn copy_audio(&self, input: &Path, output: &Path, stop: &StopSignal) -> Result<(), TranscodeError>;
}

/// Starts worker processes: one per call.
#[derive(Clone, Debug)]
pub struct Sandbox {
    /// Forks the workers; shared by every clone of the sandbox.
    zygote: Arc<zygote::Zygote>,
    /// The address space a worker may use.
    memory_bytes: u64,
}

/// How often the supervising thread looks at the stop signal while the worker is quiet.
const POLL: Duration = Duration::from_millis(100);
/// CPU seconds a worker gets beyond its deadline (the node kills it at the deadline; the
/// limit is the backstop).
const CPU_MARGIN_SECONDS: u64 = 5;
/// How long a worker that closed its socket has to exit before it is killed.
const EXIT_WAIT: Duration = Duration::from_secs(5);

impl Sandbox {
    /// Workers forked from a zygote run by `program` (`/proc/self/exe` for the node's own
    /// binary: the very image that is running, even if the file was replaced by an upgrade
    /// since), each with `memory_bytes` of address space.
    pub fn new(program: impl Into<PathBuf>, memory_bytes: u64) -> Self {
        Sandbox { zygote: Arc::new(zygote::Zygote::new(program.into())), memory_bytes }
    }

    /// Runs one task in a fresh worker. `output_limit` caps the output file.
    fn run(
        &self,
        task: Task,
        input: Media,
        output: &Path,
        output_limit: u64,
        fault: Option<WorkerFault>,
        stop: &StopSignal,
    ) -> Result<Option<f64>, TranscodeError> {
        stop.check()?;
        let seconds_left = stop.deadline().map_or(Duration::MAX, |deadline| deadline - Instant::now());
        let cpu_seconds = seconds_left.as_secs().saturating_add(CPU_MARGIN_SECONDS);
        let not_run = |e: io::Error| TranscodeError::Unavailable(format!("the FFmpeg worker could not run: {e}"));
        let output_file = OpenOptions::new().write(true).truncate(true).open(output).map_err(not_run)?;
        let (input_file, mut stream, source) = match input {
            Media::File(path) => (Some(File::open(path).map_err(not_run)?), None, InputSource::File),
            Media::Stream(mut stream) => {
                let length = stream.seek(SeekFrom::End(0)).map_err(not_run)?;
                (None, Some(stream), InputSource::Remote { length })
            }
        };
        let limits = confine::Limits { memory_bytes: self.memory_bytes, cpu_seconds, file_bytes: output_limit };
        let (pid, socket) = self.zygote.fork_worker(&limits).map_err(not_run)?;
        let worker = WorkerProcess::watch(pid, socket).map_err(not_run)?;
        let job = Job { task, input: source, fault };
        let files: Vec<&File> = input_file.iter().chain([&output_file]).collect();
        let mut started = false;
        let mut buffer = vec![0u8; wire::MAX_WORKER_MESSAGE + 1];
        loop {
            stop.check()?;
            let received = match worker.socket.recv(&mut buffer) {
                Ok(0) => break,
                Ok(length) if length > wire::MAX_WORKER_MESSAGE => return Err(garbage("a message too long")),
                Ok(length) => &buffer[..length],
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => continue,
                Err(e) => return Err(TranscodeError::Crashed(format!("its socket failed: {e}"))),
            };
            match FromWorker::decode(received) {
                Some(FromWorker::Ready(confinement)) if !started => {
                    report_confinement(confinement);
                    worker.send_job(&job, &files).map_err(not_run)?;
                    started = true;
                }
                Some(FromWorker::Progress(fraction)) if started => stop.report_done(fraction),
                Some(FromWorker::Read { offset, length }) if started => {
                    let Some(stream) = stream.as_mut() else { return Err(garbage("a read of a file input")) };
                    serve_read(&worker.socket, stream.as_mut(), offset, length);
                }
                Some(FromWorker::Finished(outcome)) if started => return checked(outcome),
                _ => return Err(garbage("a message that is not one")),
            }
        }
        Err(worker.died(stop))
    }
}

impl MediaWorker for Sandbox {
    fn transcode(
        &self,
        input: Media,
        output: &Path,
        options: TranscodeOptions,
        fault: Option<WorkerFault>,
        stop: &StopSignal,
    ) -> Result<Transcoded, TranscodeError> {
        let media_seconds =
            self.run(Task::Transcode(options), input, output, options.max_output_bytes(), fault, stop)?;
        let media_seconds = media_seconds
            .filter(|seconds| (0.0..=options.max_media_seconds + 1.0).contains(seconds))
            .ok_or_else(|| garbage("no possible length for its MP3"))?;
        check_output(output, &[b"ID3", b"\xFF\xFB", b"\xFF\xF3", b"\xFF\xF2", b"\xFF\xE3"], "an MP3")?;
        Ok(Transcoded { media_seconds })
    }

    fn copy_audio(&self, input: &Path, output: &Path, stop: &StopSignal) -> Result<(), TranscodeError> {
        let length = std::fs::metadata(input).map(|m| m.len()).unwrap_or(0);
        // A remux is about as long as its input; Matroska adds a little.
        let output_limit = length + length / 10 + (1 << 20);
        self.run(Task::CopyAudio, Media::File(input.to_owned()), output, output_limit, None, stop)?;
        check_output(output, &[b"\x1A\x45\xDF\xA3"], "a Matroska file")
    }
}

/// A worker's outcome as the node may believe it: stopping and being unable to run are the
/// node's own verdicts (one would requeue the job uncounted), never a worker's.
fn checked(outcome: Result<Option<f64>, TranscodeError>) -> Result<Option<f64>, TranscodeError> {
    match outcome {
        Err(TranscodeError::Cancelled | TranscodeError::Unavailable(_)) => {
            Err(garbage("an outcome only the node gives"))
        }
        other => other,
    }
}

/// A worker that said something it should not have.
fn garbage(what: &str) -> TranscodeError {
    TranscodeError::Crashed(format!("it sent {what}"))
}

/// Refuses an output that does not start as `what` should (a worker that wrote garbage).
fn check_output(path: &Path, magics: &[&[u8]], what: &str) -> Result<(), TranscodeError> {
    let mut head = [0u8; 4];
    let read = File::open(path).and_then(|mut file| file.read(&mut head)).unwrap_or(0);
    match magics.iter().any(|magic| head[..read].starts_with(magic)) {
        true => Ok(()),
        false => Err(TranscodeError::Crashed(format!("its output is not {what}"))),
    }
}

/// Answers one read of the worker from `stream`; a store that fails is told to the worker as
/// a failed read (the stream records the cause for the converter).
fn serve_read(socket: &UnixDatagram, stream: &mut dyn SeekableRead, offset: u64, length: u32) {
    let length = length.min(wire::MAX_READ) as usize;
    let mut answer = Vec::with_capacity(length + 1);
    answer.push(wire::DATA);
    answer.resize(length + 1, 0);
    let read = stream.seek(SeekFrom::Start(offset)).and_then(|_| read_up_to(stream, &mut answer[1..]));
    match read {
        Ok(bytes) => answer.truncate(bytes + 1),
        Err(error) => answer = [&[wire::READ_FAILED][..], error.to_string().as_bytes()].concat(),
    }
    let _ = socket.send(&answer);
}

/// Reads until `buffer` is full or the stream ends.
fn read_up_to(stream: &mut dyn SeekableRead, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match stream.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(bytes) => filled += bytes,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Logs once per process how far the workers' lockdown goes (the same for all of them): a
/// warning without seccomp, the part that keeps a compromised decoder off files and network
/// (a network namespace then still keeps it off the network, where the kernel allows one).
fn report_confinement(confinement: Confinement) {
    static REPORTED: OnceLock<()> = OnceLock::new();
    REPORTED.get_or_init(|| {
        let Confinement { seccomp, network_namespace } = confinement;
        if seccomp {
            tracing::info!(seccomp, network_namespace, "FFmpeg runs in sandboxed worker processes");
        } else {
            tracing::warn!(
                seccomp,
                network_namespace,
                "FFmpeg worker processes run without their system call filter: this kernel or container refuses \
                 seccomp (see the README's security section)"
            );
        }
    });
}

/// A running worker (a child of this process): killed and reaped when dropped, so that no path
/// leaves a zombie or a runaway process.
struct WorkerProcess {
    pid: Pid,
    socket: UnixDatagram,
    /// Set once it was waited for: its pid may then belong to another process.
    reaped: bool,
}

impl WorkerProcess {
    fn watch(pid: Pid, socket: UnixDatagram) -> io::Result<WorkerProcess> {
        let worker = WorkerProcess { pid, socket, reaped: false };
        worker.socket.set_read_timeout(Some(POLL))?;
        Ok(worker)
    }

    /// Sends the job with its descriptors (input first, output last).
    fn send_job(&self, job: &Job, files: &[&File]) -> io::Result<()> {
        let message = [&[wire::JOB][..], &serde_json::to_vec(job).expect("plain data serialises")].concat();
        let fds: Vec<i32> = files.iter().map(|file| file.as_raw_fd()).collect();
        wire::send_with_descriptors(&self.socket, &message, &fds)
    }

    /// Why a worker that closed its socket without an outcome ended. One that closed it and
    /// kept running is given [`EXIT_WAIT`] to end, then killed.
    fn died(mut self, stop: &StopSignal) -> TranscodeError {
        let until = Instant::now() + EXIT_WAIT;
        while Instant::now() < until {
            match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => {}
                Ok(status) => {
                    self.reaped = true;
                    return death_reason(status);
                }
                Err(e) => return TranscodeError::Crashed(format!("it could not be waited for: {e}")),
            }
            if let Err(stopped) = stop.check() {
                return stopped;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        TranscodeError::Crashed("it closed its socket without an answer".into())
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = kill(self.pid, Signal::SIGKILL);
            let _ = waitpid(self.pid, None);
        }
    }
}

/// The error for a worker that ended with `status` before answering.
fn death_reason(status: WaitStatus) -> TranscodeError {
    match status {
        WaitStatus::Signaled(_, Signal::SIGXCPU, _) => TranscodeError::TimedOut,
        WaitStatus::Signaled(_, Signal::SIGXFSZ, _) => {
            TranscodeError::Crashed("its output grew past its size limit".into())
        }
        WaitStatus::Signaled(_, Signal::SIGKILL, _) => {
            TranscodeError::Crashed("it was killed (SIGKILL), most likely out of memory".into())
        }
        WaitStatus::Signaled(_, signal, _) => TranscodeError::Crashed(format!("it died of {}", signal.as_str())),
        WaitStatus::Exited(_, code) => {
            TranscodeError::Crashed(format!("it exited with status {code} without an answer"))
        }
        other => TranscodeError::Crashed(format!("it ended unexpectedly ({other:?})")),
    }
}
