//! The worker process's lockdown, applied to itself before it reads a byte of its job:
//!
//! 1. it dies with the node (`PR_SET_PDEATHSIG`), cannot be ptrace'd or dumped;
//! 2. every descriptor but its socket (0) and `/dev/null` (1, 2) is closed (the node opens
//!    its own with close-on-exec anyway: this holds even against a library that does not);
//! 3. resource limits: address space ([`Limits::memory_bytes`]), CPU seconds, the size of any
//!    file it writes (its output's ceiling), 8 descriptors, no core dumps;
//! 4. a seccomp filter that allows only what decoding needs: reading and writing the
//!    descriptors it has, memory, time, signals to itself, exiting. Everything else (opening
//!    a file, even looking one up by path with `stat`, a socket, a process, a signal to another
//!    process, `ptrace`, asking the kernel to signal someone through `fcntl`, ...) fails with
//!    `EPERM`;
//! 5. only where the filter could not be installed: a network namespace of its own, where the
//!    kernel allows it (root, or user namespaces).
//!
//! Each step that the kernel or the container refuses is skipped and reported
//! ([`Confinement`]); the node logs what its workers run under. With neither seccomp nor a
//! network namespace, a compromised decoder could open what the service's user can read and
//! reach the network: the demuxer allow-list and the refused nested opens
//! ([`crate::media_formats`]) are then the barrier.

use std::collections::BTreeMap;

use nix::sched::{CloneFlags, unshare};
use nix::sys::resource::{Resource, setrlimit};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
};

use super::wire::Confinement;

/// The worker's resource limits, sent with the request to fork it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Address space (RLIMIT_AS): a decoder that allocates without end fails its allocation.
    pub memory_bytes: u64,
    /// CPU seconds (RLIMIT_CPU): a backstop behind the node's own deadline.
    pub cpu_seconds: u64,
    /// The largest file it may write (RLIMIT_FSIZE): its output's ceiling.
    pub file_bytes: u64,
}

/// Descriptors the worker may hold: its socket, /dev/null twice, its input and its output,
/// and a few FFmpeg might dup.
const MAX_DESCRIPTORS: u64 = 8;

/// Locks the calling process down; call it first thing, while it is single-threaded.
pub fn lock_down(limits: &Limits) -> Confinement {
    // SAFETY: plain system calls on this process with constant or checked arguments.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        libc::prctl(libc::PR_SET_DUMPABLE, 0);
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
    }
    let limited = [
        (Resource::RLIMIT_AS, limits.memory_bytes),
        (Resource::RLIMIT_CPU, limits.cpu_seconds),
        (Resource::RLIMIT_FSIZE, limits.file_bytes),
        (Resource::RLIMIT_NOFILE, MAX_DESCRIPTORS),
        (Resource::RLIMIT_CORE, 0),
    ];
    for (resource, limit) in limited {
        // Lowering a limit is always allowed; a failure would leave the default, so say it.
        if let Err(error) = setrlimit(resource, limit, limit) {
            eprintln!("could not limit {resource:?}: {error}");
        }
    }
    let seccomp = filter().is_ok_and(|program| seccompiler::apply_filter(&program).is_ok());
    // The filter refuses sockets; only where it could not be installed is a network namespace
    // of its own the worker's way off the network.
    let network_namespace = !seccomp
        && (unshare(CloneFlags::CLONE_NEWNET).is_ok()
            || unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET).is_ok());
    Confinement { seccomp, network_namespace }
}

/// The system calls a worker may make; any other fails with `EPERM`.
fn filter() -> Result<BpfProgram, seccompiler::Error> {
    let anyhow: Vec<i64> = vec![
        libc::SYS_read,
        libc::SYS_write,
        libc::SYS_readv,
        libc::SYS_writev,
        libc::SYS_pread64,
        libc::SYS_pwrite64,
        libc::SYS_lseek,
        libc::SYS_close,
        libc::SYS_fstat,
        libc::SYS_mmap,
        libc::SYS_munmap,
        libc::SYS_mremap,
        libc::SYS_mprotect,
        libc::SYS_brk,
        libc::SYS_madvise,
        libc::SYS_futex,
        libc::SYS_sched_yield,
        libc::SYS_sched_getaffinity,
        libc::SYS_rt_sigaction,
        libc::SYS_rt_sigprocmask,
        libc::SYS_rt_sigreturn,
        libc::SYS_sigaltstack,
        libc::SYS_getpid,
        libc::SYS_gettid,
        libc::SYS_exit,
        libc::SYS_exit_group,
        libc::SYS_clock_gettime,
        libc::SYS_clock_nanosleep,
        libc::SYS_nanosleep,
        libc::SYS_getrandom,
        libc::SYS_recvmsg,
        libc::SYS_recvfrom,
        libc::SYS_sendmsg,
        libc::SYS_sendto,
        libc::SYS_restart_syscall,
    ];
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = anyhow.into_iter().map(|call| (call, vec![])).collect();
    // Signals only to itself (`abort()` raises SIGABRT with tgkill).
    // SAFETY: getpid has no preconditions.
    let own_pid = unsafe { libc::getpid() } as u64;
    let to_itself =
        SeccompRule::new(vec![SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, own_pid)?])?;
    rules.insert(libc::SYS_tgkill, vec![to_itself]);
    let arch = std::env::consts::ARCH.try_into()?;
    let filter = SeccompFilter::new(rules, SeccompAction::Errno(libc::EPERM as u32), SeccompAction::Allow, arch)?;
    Ok(filter.try_into()?)
}
