//! The programs the tests run beside the service: FFmpeg's CLI and ffprobe (fixtures and
//! reference conversions), and a guard for the client processes a test starts. One helper
//! per program, so that every call has the same flags and a failure says what failed.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, Output, Stdio};

use serde_json::Value;

/// `ffmpeg` that reads no terminal, overwrites its output and shows only errors (a later
/// `-loglevel` overrides this one).
pub fn ffmpeg() -> Command {
    let mut command = Command::new("ffmpeg");
    command.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"]);
    command
}

/// Runs `command` to its end and asserts that it succeeded; its output.
pub fn run(command: &mut Command) -> Output {
    let output =
        command.output().unwrap_or_else(|error| panic!("{command:?} runs (scripts/test installs it): {error}"));
    assert!(output.status.success(), "{command:?}: {}", String::from_utf8_lossy(&output.stderr));
    output
}

/// What ffprobe says of `path`: the `entries` (e.g. `stream=codec_name:format=duration`) of
/// the streams `select` picks (e.g. `a:0`), as JSON.
pub fn ffprobe(path: &Path, select: &str, entries: &str) -> Value {
    let output = run(Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", select, "-show_entries", entries, "-of", "json"])
        .arg(path));
    serde_json::from_slice(&output.stdout).expect("ffprobe writes JSON")
}

/// A process a test started: killed (by its PID) and reaped when the test ends before it
/// does, so that a failed assert leaves no client running.
pub struct Running(Option<Child>);

impl Running {
    /// Starts `command` with its standard input, output and error piped.
    pub fn spawn(command: &mut Command) -> Running {
        let child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("{:?} starts: {error}", command.get_program()));
        Running(Some(child))
    }

    /// Starts `command` and writes `input` to its standard input, which it then closes.
    pub fn with_input(command: &mut Command, input: impl AsRef<OsStr>) -> Running {
        let mut running = Running::spawn(command);
        std::io::Write::write_all(&mut running.stdin(), input.as_ref().as_encoded_bytes()).unwrap();
        running
    }

    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("the process is not waited for yet")
    }

    pub fn id(&mut self) -> u32 {
        self.child().id()
    }

    /// Its standard input (taken: dropping it closes the pipe).
    pub fn stdin(&mut self) -> ChildStdin {
        self.child().stdin.take().expect("stdin is piped and not taken yet")
    }

    pub fn stdout(&mut self) -> ChildStdout {
        self.child().stdout.take().expect("stdout is piped and not taken yet")
    }

    pub fn stderr(&mut self) -> ChildStderr {
        self.child().stderr.take().expect("stderr is piped and not taken yet")
    }

    /// Waits for its exit, on a blocking thread; what it wrote to the pipes not taken.
    pub async fn exit(mut self) -> Output {
        let child = self.0.take().expect("waited for once");
        tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap()
    }

    /// Waits for its exit on this thread.
    pub fn wait(mut self) -> Output {
        self.0.take().expect("waited for once").wait_with_output().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
