//! What a node and its FFmpeg worker process say to each other over their socket pair: one
//! datagram per message (`SOCK_SEQPACKET`: the kernel keeps message boundaries, so there is no
//! framing to get wrong), each at most a few KiB but the input bytes the node serves.
//!
//! - worker to node: [`FromWorker`], JSON;
//! - node to worker: the job ([`Job`], JSON after the tag [`JOB`], with the input and output
//!   files as descriptors), then the answers to its reads ([`DATA`] + bytes, or
//!   [`READ_FAILED`] + a reason).
//!
//! The node trusts nothing it receives: a message that does not parse, is too long or comes
//! out of turn ends the worker (it is killed, and the attempt fails as a crash).

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use serde::{Deserialize, Serialize};

pub use crate::config::WorkerFault;
use crate::transcode::{TranscodeError, TranscodeOptions};

/// Sends one message with open descriptors (the receiver gets its own copies).
pub fn send_with_descriptors(socket: &UnixDatagram, message: &[u8], descriptors: &[RawFd]) -> io::Result<()> {
    let rights = [ControlMessage::ScmRights(descriptors)];
    sendmsg::<()>(socket.as_raw_fd(), &[IoSlice::new(message)], &rights, MsgFlags::empty(), None)?;
    Ok(())
}

/// Receives one message into `buffer`, with the descriptors that came with it (at most two);
/// its length, or None once the other end is gone.
pub fn receive_with_descriptors(socket: &UnixDatagram, buffer: &mut [u8]) -> Option<(usize, Vec<OwnedFd>)> {
    let mut space = nix::cmsg_space!([RawFd; 2]);
    let mut iov = [IoSliceMut::new(buffer)];
    let message = recvmsg::<()>(socket.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC).ok()?;
    let mut descriptors = Vec::new();
    for control in message.cmsgs().ok()? {
        if let ControlMessageOwned::ScmRights(fds) = control {
            // SAFETY: descriptors just received from the kernel belong to this process alone.
            descriptors.extend(fds.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    (message.bytes > 0).then_some((message.bytes, descriptors))
}

/// The most input bytes the worker asks for (and the node sends) in one read.
pub const MAX_READ: u32 = 64 * 1024;
/// The longest message a worker may send; anything longer is garbage.
pub const MAX_WORKER_MESSAGE: usize = 4096;

/// Tag of the node's job message.
pub const JOB: u8 = b'J';
/// Tag of an answer to a read: the bytes follow (none at the end of the input).
pub const DATA: u8 = b'D';
/// Tag of a read the node could not serve (its store failed): a reason follows.
pub const READ_FAILED: u8 = b'F';

/// One piece of work for a worker process.
#[derive(Debug, Serialize, Deserialize)]
pub struct Job {
    pub task: Task,
    pub input: InputSource,
    /// Test-only (fault hooks): misbehave this way instead of working.
    pub fault: Option<WorkerFault>,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Task {
    /// Convert the input's best audio stream to MP3 ([`crate::transcode::transcode`]).
    Transcode(TranscodeOptions),
    /// Copy the input's best audio stream into Matroska ([`crate::audio_copy::copy_audio`]).
    CopyAudio,
}

/// Where the worker's input comes from.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum InputSource {
    /// The first descriptor sent with the job: a file opened read-only.
    File,
    /// Reads answered by the node over the socket, of a stream `length` bytes long (a blob
    /// read in place from its store).
    Remote { length: u64 },
}

/// What the worker's sandbox could put in place ([`super::confine`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confinement {
    /// The system call filter: no files opened, no sockets, no processes, no signals to others.
    pub seccomp: bool,
    /// A network namespace of its own, with no interface but a down loopback (tried only
    /// without the filter, which refuses sockets anyway).
    pub network_namespace: bool,
}

/// A worker's messages to its node.
#[derive(Debug, Serialize, Deserialize)]
pub enum FromWorker {
    /// Locked down and waiting for its job; says how far the lockdown went.
    Ready(Confinement),
    /// The fraction of the input read so far.
    Progress(f64),
    /// Asks for input bytes (a [`InputSource::Remote`] input).
    Read { offset: u64, length: u32 },
    /// The end: the media seconds of the MP3 (a conversion) or nothing (an audio copy).
    Finished(Result<Option<f64>, TranscodeError>),
}

impl FromWorker {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("plain data serialises")
    }

    pub fn decode(bytes: &[u8]) -> Option<FromWorker> {
        serde_json::from_slice(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_named_in_kebab_case_and_messages_round_trip() {
        assert_eq!(WorkerFault::parse("stack-overflow"), Some(WorkerFault::StackOverflow));
        assert_eq!(WorkerFault::parse("segfault"), Some(WorkerFault::Segfault));
        assert_eq!(WorkerFault::parse("nonsense"), None);
        let finished = FromWorker::Finished(Err(TranscodeError::TooLong(60)));
        match FromWorker::decode(&finished.encode()) {
            Some(FromWorker::Finished(Err(TranscodeError::TooLong(60)))) => {}
            other => panic!("{other:?}"),
        }
        assert!(FromWorker::decode(b"\xff\x00 not a message").is_none());
        assert!(finished.encode().len() < MAX_WORKER_MESSAGE);
    }
}
