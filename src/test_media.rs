//! Test-only: media made and read back with the ffmpeg and ffprobe CLI tools, for the unit
//! tests of the code that runs FFmpeg's libraries (`scripts/install-deps --test` installs the
//! tools). Fixtures are made at test time, never committed.

use std::path::Path;
use std::process::Command;

/// Runs `ffmpeg` with `args` and writes `output`; panics when it fails.
pub fn ffmpeg(args: &[&str], output: &Path) {
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y"])
        .args(args)
        .arg(output)
        .status()
        .expect("the ffmpeg CLI (scripts/install-deps --test) makes the fixture");
    assert!(status.success(), "ffmpeg failed making {}", output.display());
}

/// What `ffprobe` reads of `path`: `entries` as its `-show_entries` takes them, as JSON.
pub fn ffprobe(path: &Path, entries: &str) -> serde_json::Value {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", entries, "-of", "json"])
        .arg(path)
        .output()
        .expect("the ffprobe CLI (scripts/install-deps --test) reads the result");
    serde_json::from_slice(&output.stdout).expect("ffprobe answers JSON")
}
