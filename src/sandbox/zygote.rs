//! The zygote: a process of the node's own binary (`mp3converter sandboxed-ffmpeg-zygote`,
//! started once, with an environment of nothing but `LD_BIND_NOW=1`) that has loaded FFmpeg's
//! libraries and bound their symbols, and does nothing but fork a fresh worker for each call,
//! on the node's request.
//!
//! Starting a worker by `exec` costs about as much CPU as a short conversion's tail (the
//! binary maps some 140 shared libraries); a fork of the zygote costs a millisecond. Every
//! worker is still a process of its own that has never seen another call's data: the zygote
//! never touches user data, so what it hands down is the same clean image every time.
//!
//! Each worker is forked with `CLONE_PARENT`: it is the node's child, not the zygote's, so the
//! node waits for it and kills it by a pid that cannot be reused under it. The zygote dies
//! with the node (and the workers with it: the parent-death signal follows the thread that
//! started the zygote, so one thread that lives as long as the node starts them all); a zygote
//! that died is started again at the next call.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::Duration;

use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nix::unistd::Pid;

use super::confine::Limits;
use super::{wire, worker};

/// The hidden subcommand that runs the zygote.
pub const COMMAND: &str = "sandboxed-ffmpeg-zygote";

/// Longest wait for the zygote's answer to a request.
const ANSWER_WAIT: Duration = Duration::from_secs(5);

/// Runs the zygote: serves fork requests on its standard input until the node goes.
pub fn main() -> ExitCode {
    // SAFETY: plain system calls on this process, which is single-threaded here.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        libc::prctl(libc::PR_SET_DUMPABLE, 0);
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
    }
    crate::transcode::warm_up();
    // SAFETY: the node started this process with its end of the control socket as descriptor
    // 0, and nothing else in the process owns it.
    let control = UnixDatagram::from(unsafe { OwnedFd::from_raw_fd(0) });
    while let Some((limits, job_socket)) = receive_request(&control) {
        let answer = fork_worker(&limits, job_socket).map_err(|e| e.to_string());
        if control.send(&serde_json::to_vec(&answer).expect("plain data serialises")).is_err() {
            break;
        }
    }
    ExitCode::SUCCESS
}

/// The limits of the worker to fork, and its socket; None once the node is gone.
fn receive_request(control: &UnixDatagram) -> Option<(Limits, OwnedFd)> {
    let mut buffer = [0u8; 1024];
    let (length, mut descriptors) = wire::receive_with_descriptors(control, &mut buffer)?;
    Some((serde_json::from_slice(&buffer[..length]).ok()?, descriptors.pop()?))
}

/// Forks a worker as the node's child, with `job_socket` as its standard input.
fn fork_worker(limits: &Limits, job_socket: OwnedFd) -> io::Result<i32> {
    // SAFETY: this process is single-threaded, so the child's copy of it is consistent (no
    // lock held by another thread); the child only sets up its descriptors and runs the
    // worker, which ends by exiting.
    let pid =
        unsafe { libc::syscall(libc::SYS_clone, (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong, 0, 0, 0, 0) };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            let fd = job_socket.into_raw_fd();
            // SAFETY: both descriptors are open; descriptor 0 (the zygote's control socket)
            // is replaced by the worker's socket, and the original is closed by the lockdown.
            unsafe { libc::dup2(fd, 0) };
            std::process::exit(worker::run(limits))
        }
        pid => Ok(pid as i32),
    }
}

/// The node's handle on its zygote: started at the first call, started again if it died.
#[derive(Debug)]
pub struct Zygote {
    program: PathBuf,
    running: Mutex<Option<Running>>,
}

#[derive(Debug)]
struct Running {
    child: Child,
    control: UnixDatagram,
}

impl Zygote {
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Zygote { program: program.into(), running: Mutex::new(None) }
    }

    /// A fresh worker with `limits`: its pid (a child of this process) and the node's end of
    /// its socket.
    pub fn fork_worker(&self, limits: &Limits) -> io::Result<(Pid, UnixDatagram)> {
        let (ours, theirs): (OwnedFd, OwnedFd) =
            socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)?;
        let mut running = self.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // A zygote that died since the last call fails its request: it is started again, once.
        let mut retried = false;
        loop {
            let zygote = match &mut *running {
                Some(zygote) => zygote,
                idle => idle.insert(start_from_keeper(&self.program)?),
            };
            match zygote.request(limits, &theirs) {
                Ok(pid) => return Ok((Pid::from_raw(pid), UnixDatagram::from(ours))),
                Err(error) if retried => {
                    *running = None;
                    return Err(error);
                }
                Err(error) => {
                    tracing::warn!(%error, "the FFmpeg zygote failed; starting it again");
                    *running = None;
                    retried = true;
                }
            }
        }
    }
}

/// A zygote started by one thread that lives as long as the process. The parent-death signal
/// that the zygote and its workers (forked with `CLONE_PARENT`) ask for follows the *thread*
/// that started the zygote: started from a pool thread that later ends (tokio retires idle
/// blocking threads), the zygote and every worker running then would be killed with it.
fn start_from_keeper(program: &Path) -> io::Result<Running> {
    type Request = (PathBuf, mpsc::Sender<io::Result<Running>>);
    static KEEPER: OnceLock<mpsc::Sender<Request>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (requests, received) = mpsc::channel::<Request>();
        let serve =
            move || received.into_iter().for_each(|(program, answer)| drop(answer.send(Running::start(&program))));
        std::thread::Builder::new().name("ffmpeg-zygotes".into()).spawn(serve).expect("a thread can start");
        requests
    });
    let gone = || io::Error::other("the thread that starts FFmpeg zygotes is gone");
    let (answer, answered) = mpsc::channel();
    keeper.send((program.to_owned(), answer)).map_err(|_| gone())?;
    answered.recv().map_err(|_| gone())?
}

impl Running {
    fn start(program: &Path) -> io::Result<Running> {
        let (ours, theirs): (OwnedFd, OwnedFd) =
            socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)?;
        let child = Command::new(program)
            .arg(COMMAND)
            .env_clear()
            // Every symbol of FFmpeg's libraries bound once, here, instead of lazily in each
            // worker on its first call of each function (a few milliseconds per worker).
            .env("LD_BIND_NOW", "1")
            .current_dir("/")
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let control = UnixDatagram::from(ours);
        control.set_read_timeout(Some(ANSWER_WAIT))?;
        Ok(Running { child, control })
    }

    /// Asks for one worker; its pid, or why not.
    fn request(&self, limits: &Limits, job_socket: &OwnedFd) -> io::Result<i32> {
        let message = serde_json::to_vec(limits).expect("plain data serialises");
        wire::send_with_descriptors(&self.control, &message, &[job_socket.as_raw_fd()])?;
        let mut answer = [0u8; 1024];
        let length = self.control.recv(&mut answer)?;
        match serde_json::from_slice::<Result<i32, String>>(&answer[..length]) {
            Ok(Ok(pid)) if pid > 0 => Ok(pid),
            Ok(Err(error)) => Err(io::Error::other(format!("the zygote could not fork: {error}"))),
            _ => Err(io::Error::other("the zygote's answer is malformed")),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
