//! Transcoding of a video's audio to MP3 with FFmpeg's libraries (`ffmpeg-next`).
//!
//! Demux only the best audio stream (every other stream is discarded in the demuxer, so video
//! is never decoded), decode, resample to a format libmp3lame takes (planar s16/s32/float,
//! mono or stereo, a rate MP3 allows), cut into the encoder's frames of 1152 samples, encode at
//! a constant bit rate and mux MP3.
//!
//! Uploads are hostile: this code only ever runs inside the sandboxed worker process
//! ([`crate::sandbox`]), and it opens its input only as one of the accepted media formats
//! ([`crate::media_formats`]), through custom I/O on the one stream it was given, with every
//! nested open (a playlist entry, a referenced file or URL) refused. The decoded length is
//! bounded ([`TranscodeOptions::max_media_seconds`]): a small file that decodes to hours fails
//! as [`TranscodeError::TooLong`] before its first packet, or as soon as it passes the limit.
//!
//! This is blocking, CPU-bound code. It stops early when its [`StopSignal`] says so. Through a
//! non-seekable stream an MP4 whose index sits at the end makes FFmpeg retry forever, which is
//! why inputs are seekable and packets are read one by one with a cap on consecutive errors
//! instead of through FFmpeg's packet iterator.
//!
//! It reports its progress through the same signal: the media time read so far.
//!
//! - [`input`]: opening an upload (the accepted formats, no nested open, audio only) and
//!   reading its audio packets;
//! - [`mp3_sink`]: resampling, cutting into encoder frames, encoding and muxing the MP3.

mod input;
mod mp3_sink;

use std::sync::Arc;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Instant;

use ffmpeg::{codec, format};
use ffmpeg_next as ffmpeg;
use serde::{Deserialize, Serialize};

pub use input::{Input, Output, ReadSeek, WriteSeek};
pub(crate) use input::{open_audio, warm_up};
use mp3_sink::Mp3Sink;

/// Undecodable audio packets tolerated (skipped, as the ffmpeg CLI does) before giving up.
const MAX_UNDECODABLE_PACKETS: u32 = 256;

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct TranscodeOptions {
    /// Constant bit rate of the MP3, in bits per second.
    pub bit_rate: usize,
    /// The longest audio converted, in seconds: a decompression bomb (hours of silence in a
    /// few megabytes) fails instead of filling the store.
    pub max_media_seconds: f64,
}

impl TranscodeOptions {
    /// The largest MP3 these options can produce (the limit on the worker's output file): the
    /// longest audio at the bit rate, with room for headers and rounding.
    pub fn max_output_bytes(&self) -> u64 {
        (self.max_media_seconds * self.bit_rate as f64 / 8.0 * 1.05) as u64 + (1 << 20)
    }
}

/// What a finished conversion reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Transcoded {
    /// Duration of the MP3's audio.
    pub media_seconds: f64,
}

/// Why a conversion (or an audio copy) did not finish. It crosses from the worker process to
/// the node ([`crate::sandbox`]), hence serde.
#[derive(Clone, Debug, PartialEq, thiserror::Error, Serialize, Deserialize)]
pub enum TranscodeError {
    #[error("the file is not a readable media file ({0})")]
    Unreadable(String),
    /// FFmpeg recognised the content as a format that is not accepted (a playlist, a script,
    /// an image sequence: anything that could name other files): [`crate::media_formats`].
    #[error(
        "the file is not an accepted media format: FFmpeg reads it as '{0}', which is refused (playlists, scripts and image sequences are not media files)"
    )]
    Refused(String),
    /// The audio is longer than the limit (declared so, or found so while decoding).
    #[error("too_long: the audio lasts longer than {0} s, the longest this service converts")]
    TooLong(u64),
    /// The worker process died or misbehaved on this file (a crash inside FFmpeg, out of
    /// memory or CPU time, an unreadable answer). Given once per attempt by the node.
    #[error("the converter crashed on this file ({0})")]
    Crashed(String),
    /// The node could not run FFmpeg at all (no worker process could start): not the file's
    /// fault, so the attempt does not count.
    #[error("the FFmpeg worker could not run ({0})")]
    Unavailable(String),
    #[error("the file has no audio track")]
    NoAudio,
    #[error("the audio track could not be decoded ({0})")]
    Undecodable(String),
    #[error("the conversion took longer than its time limit")]
    TimedOut,
    #[error("the conversion was stopped because the service is shutting down")]
    Cancelled,
    #[error("writing the MP3 failed ({0})")]
    Output(String),
}

/// Tells a running conversion to stop: at its deadline, or when cancelled. It also carries the
/// conversion's progress back, since the conversion checks it all along anyway.
#[derive(Clone)]
pub struct StopSignal {
    /// None inside the worker process: its node keeps the time, and kills it at the deadline.
    deadline: Option<Instant>,
    cancelled: Arc<AtomicBool>,
    /// The fraction of the input's media time read so far, in [`PROGRESS_SCALE`] units; it only
    /// grows (stays 0 when the input does not say how long it is).
    done: Arc<AtomicU32>,
    /// Told of each new percent of progress (the worker process sends it to the node).
    observer: Option<Arc<dyn Fn(f64) + Send + Sync>>,
}

impl std::fmt::Debug for StopSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StopSignal").field("deadline", &self.deadline).field("done", &self.fraction_done()).finish()
    }
}

/// Steps of [`StopSignal`]'s progress from nothing to all.
const PROGRESS_SCALE: f64 = 10_000.0;

impl StopSignal {
    pub fn new(deadline: Instant) -> Self {
        StopSignal { deadline: Some(deadline), ..StopSignal::without_deadline() }
    }

    /// A signal that only cancellation stops (the worker process's: its node keeps the time).
    pub fn without_deadline() -> Self {
        StopSignal {
            deadline: None,
            cancelled: Arc::new(AtomicBool::new(false)),
            done: Arc::new(AtomicU32::new(0)),
            observer: None,
        }
    }

    /// The same signal, also telling `observer` of each new percent of progress.
    pub fn observed(self, observer: impl Fn(f64) + Send + Sync + 'static) -> Self {
        StopSignal { observer: Some(Arc::new(observer)), ..self }
    }

    /// When the conversion must stop, if it has a deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Records that `fraction` (0 to 1) of the input is read, unless more was reported before.
    pub fn report_done(&self, fraction: f64) {
        let new = (fraction.clamp(0.0, 1.0) * PROGRESS_SCALE) as u32;
        let old = self.done.fetch_max(new, Ordering::Relaxed);
        let percent = (PROGRESS_SCALE / 100.0) as u32;
        if let Some(observer) = &self.observer
            && new / percent > old / percent
        {
            observer(f64::from(new) / PROGRESS_SCALE);
        }
    }

    /// The fraction (0 to 1) of the input read so far.
    pub fn fraction_done(&self) -> f64 {
        f64::from(self.done.load(Ordering::Relaxed)) / PROGRESS_SCALE
    }

    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    /// `Err` with the reason once the conversion should stop.
    pub fn check(&self) -> Result<(), TranscodeError> {
        if self.cancelled.load(Ordering::Relaxed) {
            Err(TranscodeError::Cancelled)
        } else if self.deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            Err(TranscodeError::TimedOut)
        } else {
            Ok(())
        }
    }
}

/// Initialises FFmpeg once per process and keeps its own logging quiet: every failure reaches
/// the caller as a [`TranscodeError`], and a broken file must not flood the logs.
pub(crate) fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = ffmpeg::init();
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Fatal);
    });
}

/// Converts the best audio stream of `input` into an MP3 written to `output`.
pub fn transcode(
    input: Input,
    output: Output,
    options: TranscodeOptions,
    stop: &StopSignal,
) -> Result<Transcoded, TranscodeError> {
    let mut input = open_audio(input)?;
    let clock = ProgressClock::of(&input.ictx, &input.stream());
    if clock.duration.is_some_and(|declared| declared > options.max_media_seconds) {
        return Err(TranscodeError::TooLong(options.max_media_seconds as u64));
    }
    let mut decoder = codec::context::Context::from_parameters(input.stream().parameters())
        .and_then(|context| context.decoder().audio())
        .map_err(|e| TranscodeError::Undecodable(e.to_string()))?;
    let mut sink = Mp3Sink::create(output, &decoder, options)?;
    let mut undecodable = 0;
    input.for_each_packet(stop, |packet| {
        if let Some(fraction) = clock.fraction(packet.pts()) {
            stop.report_done(fraction);
        }
        if decoder.send_packet(packet).is_err() {
            undecodable += 1;
            if undecodable > MAX_UNDECODABLE_PACKETS {
                return Err(TranscodeError::Undecodable("too many corrupt audio packets".into()));
            }
            return Ok(());
        }
        sink.take_decoded(&mut decoder)
    })?;
    // Flush what the decoder still holds; an error here only means it had nothing more.
    let _ = decoder.send_eof();
    sink.take_decoded(&mut decoder)?;
    sink.finish()
}

/// Turns an audio packet's timestamp into the fraction of the input's media time it reaches.
struct ProgressClock {
    /// The audio stream's first timestamp, and seconds per timestamp unit.
    start: i64,
    seconds_per_unit: f64,
    /// The media time: the audio stream's, else the container's; None when neither tells.
    duration: Option<f64>,
}

impl ProgressClock {
    fn of(ictx: &format::context::Input, audio: &format::stream::Stream) -> ProgressClock {
        let seconds_per_unit = f64::from(audio.time_base());
        let stream = (audio.duration() > 0).then(|| audio.duration() as f64 * seconds_per_unit);
        let container = (ictx.duration() > 0).then(|| ictx.duration() as f64 * f64::from(ffmpeg::rescale::TIME_BASE));
        // Unknown timestamps are AV_NOPTS_VALUE, the most negative i64.
        let start = audio.start_time().max(0);
        ProgressClock { start, seconds_per_unit, duration: stream.or(container).filter(|d| *d > 0.0) }
    }

    /// How far a packet at `pts` is into the media, if both are known.
    fn fraction(&self, pts: Option<i64>) -> Option<f64> {
        let seconds = pts?.saturating_sub(self.start) as f64 * self.seconds_per_unit;
        Some((seconds / self.duration?).clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Seek};

    use super::*;

    /// A file that counts the bytes read from it.
    struct Counted {
        file: std::fs::File,
        read: Arc<std::sync::atomic::AtomicU64>,
    }

    impl Read for Counted {
        fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
            let read = self.file.read(buffer)?;
            self.read.fetch_add(read as u64, Ordering::Relaxed);
            Ok(read)
        }
    }

    impl Seek for Counted {
        fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
            self.file.seek(to)
        }
    }

    #[test]
    fn a_local_mp4_is_read_for_its_audio_alone_and_a_remote_one_in_large_reads() {
        let dir = tempfile::tempdir().unwrap();
        let video = dir.path().join("in.mp4");
        let pattern = "testsrc2=size=320x240:rate=25:duration=5";
        let tone = "sine=frequency=440:sample_rate=48000:duration=5";
        let encode = ["-c:v", "libx264", "-preset", "ultrafast", "-b:v", "3M", "-c:a", "aac", "-b:a", "64k"];
        let args = [&["-f", "lavfi", "-i", pattern, "-f", "lavfi", "-i", tone][..], &encode, &["-f", "mp4"]].concat();
        crate::test_media::ffmpeg(&args, &video);
        let size = std::fs::metadata(&video).unwrap().len();
        let convert = |input: fn(Counted) -> Input| {
            let read = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let counted = Counted { file: std::fs::File::open(&video).unwrap(), read: read.clone() };
            let output = Box::new(std::fs::File::create(dir.path().join("out.mp3")).unwrap());
            let options = TranscodeOptions { bit_rate: 128_000, max_media_seconds: 60.0 };
            let done = transcode(
                input(counted),
                output,
                options,
                &StopSignal::new(Instant::now() + std::time::Duration::from_secs(60)),
            );
            assert!((done.unwrap().media_seconds - 5.0).abs() < 0.1);
            read.load(Ordering::Relaxed)
        };
        let local = convert(Input::local);
        assert!(local < size / 4, "a local MP4 of {size} bytes was read for {local} bytes: through its video");
        let remote = convert(Input::remote);
        assert!(remote > size / 2, "read {remote} of {size} bytes: the remote input is read through, in large reads");
    }

    /// An MP4 followed by thousands of tiny atoms: FFmpeg parses them all in the header (it
    /// looks for fragments to the end of a seekable file). Buffered, that reads the file about
    /// once; unbuffered, every atom cost a seek and a refill of the whole I/O buffer.
    #[test]
    fn a_header_of_tiny_atoms_is_parsed_buffered() {
        let dir = tempfile::tempdir().unwrap();
        let audio = dir.path().join("in.m4a");
        let tone = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=3", "-c:a", "aac"];
        crate::test_media::ffmpeg(&[&tone[..], &["-movflags", "+faststart", "-f", "mp4"]].concat(), &audio);
        let mut bytes = std::fs::read(&audio).unwrap();
        for _ in 0..20_000 {
            bytes.extend_from_slice(&[0, 0, 0, 9, b'j', b'u', b'n', b'k', 0]);
        }
        std::fs::write(&audio, &bytes).unwrap();
        let read = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = Counted { file: std::fs::File::open(&audio).unwrap(), read: read.clone() };
        let output = Box::new(std::fs::File::create(dir.path().join("out.mp3")).unwrap());
        let options = TranscodeOptions { bit_rate: 128_000, max_media_seconds: 60.0 };
        let stop = StopSignal::new(Instant::now() + std::time::Duration::from_secs(60));
        let done = transcode(Input::local(counted), output, options, &stop).unwrap();
        assert!((done.media_seconds - 3.0).abs() < 0.1);
        let read = read.load(Ordering::Relaxed);
        assert!(read < 4 * bytes.len() as u64, "{read} bytes read of a {}-byte file", bytes.len());
    }

    #[test]
    fn progress_is_the_media_time_read_and_only_grows() {
        let clock = ProgressClock { start: 1_000, seconds_per_unit: 0.001, duration: Some(10.0) };
        assert_eq!(clock.fraction(Some(6_000)), Some(0.5));
        assert_eq!(clock.fraction(Some(500)), Some(0.0), "before the first timestamp");
        assert_eq!(clock.fraction(Some(99_000)), Some(1.0));
        assert_eq!(clock.fraction(None), None);
        assert_eq!(ProgressClock { duration: None, ..clock }.fraction(Some(6_000)), None);

        let stop = StopSignal::new(Instant::now());
        assert_eq!(stop.fraction_done(), 0.0);
        stop.clone().report_done(0.5);
        stop.report_done(0.25);
        assert_eq!(stop.fraction_done(), 0.5, "a packet out of order does not move it back");
    }
}
