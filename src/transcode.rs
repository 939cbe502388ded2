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

use std::ffi::{CStr, c_char, c_int};
use std::io::{Read, Seek, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Once, OnceLock};
use std::time::Instant;

use ffmpeg::software::resampling;
use ffmpeg::{ChannelLayout, Packet, codec, ffi, format, frame, media};
use ffmpeg_next as ffmpeg;
use serde::{Deserialize, Serialize};

use crate::media_formats;

/// Read errors in a row after which the input is given up as unreadable.
const MAX_CONSECUTIVE_READ_ERRORS: u32 = 32;
/// Undecodable audio packets tolerated (skipped, as the ffmpeg CLI does) before giving up.
const MAX_UNDECODABLE_PACKETS: u32 = 256;
/// Sample rates MPEG audio (layer III, with its 2 and 2.5 extensions) can carry.
const MP3_RATES: [u32; 9] = [44100, 48000, 32000, 22050, 24000, 16000, 11025, 12000, 8000];

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

/// What the transcoder reads: a seekable stream (the worker's input file, or the node's blob
/// store at the other end of the worker's socket), and what a seek in it costs.
pub struct Input {
    stream: Box<dyn ReadSeek>,
    /// A local file, where a seek costs no more than a read: a demuxer that jumps from packet
    /// to packet by its index ([`media_formats::reads_by_index`]) then reads each audio packet
    /// where it lies, and none of the video between them. Across the worker's socket every read
    /// is a round trip, so reads stay large and buffered.
    local: bool,
}

impl Input {
    /// A local file (or anything as cheap to seek in).
    pub fn local(stream: impl ReadSeek + 'static) -> Input {
        Input { stream: Box::new(stream), local: true }
    }

    /// A stream whose every read is costly (a round trip), read in large pieces.
    pub fn remote(stream: impl ReadSeek + 'static) -> Input {
        Input { stream: Box::new(stream), local: false }
    }
}
/// What the transcoder writes: seekable, so that the MP3 muxer can fill in its header last.
pub type Output = Box<dyn WriteSeek>;

pub trait ReadSeek: Read + Seek + Send {}
impl<T: Read + Seek + Send> ReadSeek for T {}
pub trait WriteSeek: Write + Seek + Send {}
impl<T: Write + Seek + Send> WriteSeek for T {}

/// Opens `input` for demuxing: only as one of the accepted formats, with every nested open
/// refused (custom I/O gets no protocol whitelist of its own from FFmpeg).
fn open_input(input: Input) -> Result<format::context::Input, TranscodeError> {
    init();
    let unreadable = |e: ffmpeg::Error| TranscodeError::Unreadable(e.to_string());
    let mut io = format::context::StreamIo::from_read_seek(input.stream).map_err(unreadable)?;
    // SAFETY: a fresh context whose `pb` is our custom I/O (flagged so FFmpeg never frees it);
    // `avformat_open_input` frees the context itself when it fails, and `io` outlives every
    // use of it: on success the wrapper owns both and drops the context first.
    unsafe {
        let mut context = ffi::avformat_alloc_context();
        if context.is_null() {
            return Err(TranscodeError::Output("out of memory".into()));
        }
        (*context).pb = io.as_mut_ptr();
        (*context).flags |= ffi::AVFMT_FLAG_CUSTOM_IO;
        (*context).io_open = Some(refuse_nested_open);
        let mut probed: *const ffi::AVInputFormat = std::ptr::null();
        let score = ffi::av_probe_input_buffer2(io.as_mut_ptr(), &mut probed, std::ptr::null(), context.cast(), 0, 0);
        if score < 0 || probed.is_null() {
            ffi::avformat_free_context(context);
            return Err(unreadable(ffmpeg::Error::from(score.min(-1))));
        }
        let name = CStr::from_ptr((*probed).name).to_string_lossy().into_owned();
        if !media_formats::is_accepted(&name) {
            ffi::avformat_free_context(context);
            return Err(TranscodeError::Refused(name));
        }
        if input.local && media_formats::reads_by_index(&name) {
            // Unbuffered reads and real seeks: an MP4 of 720p video and its audio is read for its
            // audio packets alone (a megabyte a minute), not through the video between them.
            (*io.as_mut_ptr()).direct = 1;
        }
        let mut options = ffmpeg::Dictionary::new();
        options.set("format_whitelist", &media_formats::accepted_list());
        options.set("protocol_whitelist", media_formats::NO_PROTOCOL);
        options.set("codec_whitelist", audio_decoders());
        let mut options = options.disown();
        let opened = ffi::avformat_open_input(&mut context, std::ptr::null(), probed, &mut options);
        ffmpeg::Dictionary::own(options);
        if opened < 0 {
            return Err(unreadable(ffmpeg::Error::from(opened)));
        }
        discard_unless_audio(context);
        let found = ffi::avformat_find_stream_info(context, std::ptr::null_mut());
        if found < 0 {
            ffi::avformat_close_input(&mut context);
            return Err(unreadable(ffmpeg::Error::from(found)));
        }
        Ok(format::context::Input::wrap_with_custom_io(context, io))
    }
}

/// Every audio decoder this FFmpeg has, as the input's `codec_whitelist`: the decoders FFmpeg's
/// stream analysis may open on an upload. No video or subtitle decoder ever runs on one (the
/// analysis would otherwise decode a few frames of every stream), which is both work saved and
/// attack surface left out: video decoders are the largest parsers FFmpeg has.
fn audio_decoders() -> &'static str {
    static LIST: OnceLock<String> = OnceLock::new();
    LIST.get_or_init(|| {
        let mut names = Vec::new();
        let mut state = std::ptr::null_mut();
        // SAFETY: av_codec_iterate walks FFmpeg's static codec table with an opaque cursor;
        // every codec it returns, and its name, live as long as the process.
        unsafe {
            loop {
                let codec = ffi::av_codec_iterate(&mut state);
                if codec.is_null() {
                    break;
                }
                if ffi::av_codec_is_decoder(codec) != 0 && (*codec).type_ == ffi::AVMediaType::AVMEDIA_TYPE_AUDIO {
                    names.push(CStr::from_ptr((*codec).name).to_string_lossy().into_owned());
                }
            }
        }
        names.join(",")
    })
}

/// Opens, once per process, the decoders of the commonest audio formats and the MP3 encoder,
/// with no data: their static tables (built at a decoder's first open, a few milliseconds for
/// AAC) are then made once in the zygote and shared by every worker forked from it, instead of
/// built again in each. Nothing of any upload is involved.
pub(crate) fn warm_up() {
    init();
    for name in ["aac", "mp3float", "opus", "libopus", "vorbis", "flac", "ac3", "eac3"] {
        if let Some(codec) = ffmpeg::decoder::find_by_name(name) {
            let _ = codec::context::Context::new_with_codec(codec).decoder().open_as(codec);
        }
    }
    if let Some(codec) = ffmpeg::encoder::find_by_name("libmp3lame") {
        let mut encoder = match codec::context::Context::new_with_codec(codec).encoder().audio() {
            Ok(encoder) => encoder,
            Err(_) => return,
        };
        encoder.set_rate(44100);
        encoder.set_channel_layout(ChannelLayout::STEREO);
        encoder.set_channels(2);
        encoder.set_format(format::Sample::F32(format::sample::Type::Planar));
        encoder.set_bit_rate(192_000);
        encoder.set_time_base((1, 44100));
        let _ = encoder.open_as(codec);
    }
}

/// FFmpeg's `io_open` callback, set on every input: a demuxer that asks to open anything
/// beside the input it was given (a playlist's entry, an external reference) is refused.
unsafe extern "C" fn refuse_nested_open(
    _: *mut ffi::AVFormatContext,
    _: *mut *mut ffi::AVIOContext,
    _: *const c_char,
    _: c_int,
    _: *mut *mut ffi::AVDictionary,
) -> c_int {
    -libc::EPERM
}

/// An input opened for its best audio stream alone: the demuxer discards every other stream.
pub(crate) struct AudioInput {
    pub ictx: format::context::Input,
    /// The audio stream's index.
    pub index: usize,
}

/// Opens `input` for its audio stream ([`audio_stream`]).
pub(crate) fn open_audio(input: Input) -> Result<AudioInput, TranscodeError> {
    let mut ictx = open_input(input)?;
    let index = audio_stream(&ictx).ok_or(TranscodeError::NoAudio)?;
    discard_all_but(&mut ictx, index);
    Ok(AudioInput { ictx, index })
}

/// The audio stream to convert: the one marked default (as a player would play it; FFmpeg's
/// best among several so marked), else FFmpeg's best.
fn audio_stream(ictx: &format::context::Input) -> Option<usize> {
    let best = ictx.streams().best(media::Type::Audio)?.index();
    let is_default = |stream: &format::stream::Stream| {
        stream.parameters().medium() == media::Type::Audio
            && stream.disposition().contains(format::stream::Disposition::DEFAULT)
    };
    let defaults: Vec<usize> = ictx.streams().filter(is_default).map(|stream| stream.index()).collect();
    match defaults.first() {
        Some(first) if !defaults.contains(&best) => Some(*first),
        _ => Some(best),
    }
}

impl AudioInput {
    pub(crate) fn stream(&self) -> format::stream::Stream<'_> {
        self.ictx.stream(self.index).expect("the index of one of its streams")
    }

    /// Hands each packet of the audio stream to `each`, in order, to the end of the input; gives
    /// up after too many read errors in a row, and when `stop` says so.
    pub(crate) fn for_each_packet(
        &mut self,
        stop: &StopSignal,
        mut each: impl FnMut(&mut Packet) -> Result<(), TranscodeError>,
    ) -> Result<(), TranscodeError> {
        let mut read_errors = 0;
        loop {
            stop.check()?;
            // A packet of its own for each read: `Packet::read` (FFmpeg's `av_read_frame`) fills
            // the packet it is given without letting go of what that packet held, so reusing one
            // leaked every packet's data (the 0.4 MiB a job the node used to grow by); this one
            // is released when it goes out of scope.
            let mut packet = Packet::empty();
            match packet.read(&mut self.ictx) {
                Ok(()) => read_errors = 0,
                Err(ffmpeg::Error::Eof) => return Ok(()),
                Err(e) => {
                    stop.check()?;
                    read_errors += 1;
                    if read_errors > MAX_CONSECUTIVE_READ_ERRORS {
                        return Err(TranscodeError::Unreadable(e.to_string()));
                    }
                    continue;
                }
            }
            if packet.stream() == self.index {
                each(&mut packet)?;
            }
        }
    }
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

/// Tells the demuxer to drop every stream but `keep`, so their packets are never even read
/// into memory as far as the container allows (the safe API has no setter for this).
fn discard_all_but(ictx: &mut format::context::Input, keep: usize) {
    // SAFETY: `ictx` owns a valid, opened AVFormatContext.
    unsafe { discard_streams(ictx.as_mut_ptr(), |index, _| index != keep) }
}

/// Before the streams are analysed: tells the demuxer to drop every stream that is not audio,
/// when the container's header named an audio stream, so that FFmpeg's analysis never decodes
/// video (it would decode a few frames of every stream) and reads only the audio packets.
/// Audio streams are all still analysed, since the one to convert is chosen among them.
///
/// # Safety
/// `context` must be a valid, opened AVFormatContext.
unsafe fn discard_unless_audio(context: *mut ffi::AVFormatContext) {
    let is_audio = |stream: *mut ffi::AVStream| {
        // SAFETY: the demuxer gives every stream its codec parameters.
        unsafe { (*(*stream).codecpar).codec_type == ffi::AVMediaType::AVMEDIA_TYPE_AUDIO }
    };
    // SAFETY: as the caller promises; `streams` holds `nb_streams` valid stream pointers (and
    // may be null when there are none: formats whose streams appear as packets come).
    unsafe {
        let count = (*context).nb_streams as usize;
        if (0..count).any(|index| is_audio(*(*context).streams.add(index))) {
            discard_streams(context, |_, stream| !is_audio(stream));
        }
    }
}

/// Sets `AVDISCARD_ALL` on each stream of `context` for which `dropped(index, stream)` holds; the
/// demuxer reads a stream's `discard` before each packet, so it may change between reads.
///
/// # Safety
/// `context` must be a valid, opened AVFormatContext.
unsafe fn discard_streams(context: *mut ffi::AVFormatContext, dropped: impl Fn(usize, *mut ffi::AVStream) -> bool) {
    // SAFETY: an opened context's `streams` array holds `nb_streams` valid stream pointers.
    unsafe {
        for index in 0..(*context).nb_streams as usize {
            let stream = *(*context).streams.add(index);
            if dropped(index, stream) {
                (*stream).discard = ffi::AVDiscard::AVDISCARD_ALL;
            }
        }
    }
}

/// The encoding half: resampler, sample queue, encoder and MP3 muxer.
struct Mp3Sink {
    octx: format::context::Output,
    encoder: ffmpeg::encoder::Audio,
    target: AudioFormat,
    /// Built from the first decoded frame that is not in the target format already (stream
    /// parameters can be incomplete until decoding starts), rebuilt if the input format changes
    /// midway, and used for every later frame (its buffered samples must keep their order).
    resampler: Option<(AudioFormat, resampling::Context)>,
    /// The decoder's output, reused.
    decoded: frame::Audio,
    /// The resampler's output, reused.
    resampled: frame::Audio,
    queue: SampleQueue,
    /// The frame every encoder input goes through, reused: the encoder's frame size (1152
    /// samples for MP3), the last one shorter.
    frame: frame::Audio,
    frame_size: usize,
    /// Samples sent to the encoder so far: the next frame's pts, in 1/rate units.
    samples_encoded: i64,
    stream_time_base: ffmpeg::Rational,
    undecodable: u32,
    /// The most samples the MP3 may hold ([`TranscodeOptions::max_media_seconds`]).
    max_samples: i64,
    max_media_seconds: f64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct AudioFormat {
    sample: format::Sample,
    layout: ChannelLayout,
    rate: u32,
}

impl AudioFormat {
    /// The format of a decoded frame, whose channel layout is made explicit first: a decoder
    /// that leaves it unspecified (PCM in WAV, and others) gets the default layout for its
    /// channel count, so that the resampler is handed exactly what it was set up for.
    fn of(frame: &mut frame::Audio) -> Self {
        if frame.channel_layout().is_empty() {
            frame.set_channel_layout(ChannelLayout::default(frame.channels() as i32));
        }
        AudioFormat { sample: frame.format(), layout: frame.channel_layout(), rate: frame.rate() }
    }
}

fn output_error(e: impl std::fmt::Display) -> TranscodeError {
    TranscodeError::Output(e.to_string())
}

impl Mp3Sink {
    fn create(
        output: Output,
        decoder: &ffmpeg::decoder::Audio,
        options: TranscodeOptions,
    ) -> Result<Self, TranscodeError> {
        let codec = ffmpeg::encoder::find_by_name("libmp3lame")
            .ok_or_else(|| output_error("this FFmpeg has no libmp3lame encoder"))?;
        let audio_codec = codec.audio().map_err(output_error)?;
        let target = choose_target(decoder, &audio_codec);

        let io = format::context::StreamIo::from_write_seek(output).map_err(output_error)?;
        let mut octx = format::output_to_stream(io, None, Some("mp3")).map_err(output_error)?;
        let mut encoder = codec::context::Context::new_with_codec(codec).encoder().audio().map_err(output_error)?;
        encoder.set_rate(target.rate as i32);
        encoder.set_channel_layout(target.layout);
        encoder.set_channels(target.layout.channels());
        encoder.set_format(target.sample);
        encoder.set_bit_rate(options.bit_rate);
        encoder.set_time_base((1, target.rate as i32));
        let encoder = encoder.open_as(codec).map_err(output_error)?;
        {
            let mut stream = octx.add_stream(codec).map_err(output_error)?;
            stream.set_parameters(&encoder);
            stream.set_time_base((1, target.rate as i32));
        }
        octx.write_header().map_err(output_error)?;
        let stream_time_base = octx.stream(0).map(|s| s.time_base()).ok_or_else(|| output_error("no output stream"))?;
        let frame_size = encoder.frame_size().max(1) as usize;
        let channels = target.layout.channels() as usize;
        Ok(Mp3Sink {
            octx,
            encoder,
            target,
            resampler: None,
            decoded: frame::Audio::empty(),
            resampled: frame::Audio::empty(),
            queue: SampleQueue::new(channels, target.sample.bytes()),
            frame: frame::Audio::new(target.sample, frame_size, target.layout),
            frame_size,
            samples_encoded: 0,
            stream_time_base,
            undecodable: 0,
            max_samples: (options.max_media_seconds * f64::from(target.rate)) as i64,
            max_media_seconds: options.max_media_seconds,
        })
    }

    /// Takes every frame the decoder has ready through resampling and encoding.
    fn take_decoded(&mut self, decoder: &mut ffmpeg::decoder::Audio) -> Result<(), TranscodeError> {
        // One frame for every decoded one: receiving lets go of what it held first.
        let mut decoded = std::mem::replace(&mut self.decoded, frame::Audio::empty());
        let taken = self.receive_all(decoder, &mut decoded);
        self.decoded = decoded;
        taken
    }

    fn receive_all(
        &mut self,
        decoder: &mut ffmpeg::decoder::Audio,
        decoded: &mut frame::Audio,
    ) -> Result<(), TranscodeError> {
        loop {
            match decoder.receive_frame(decoded) {
                Ok(()) => self.push(decoded)?,
                Err(ffmpeg::Error::Eof) => return Ok(()),
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                    return Ok(());
                }
                Err(e) => {
                    self.undecodable += 1;
                    if self.undecodable > MAX_UNDECODABLE_PACKETS {
                        return Err(TranscodeError::Undecodable(e.to_string()));
                    }
                }
            }
        }
    }

    /// Queues a decoded frame for the encoder: as it is when it is in the target format
    /// already (the usual AAC to MP3 case), else through the resampler.
    fn push(&mut self, decoded: &mut frame::Audio) -> Result<(), TranscodeError> {
        let source = AudioFormat::of(decoded);
        if self.resampler.is_none() && source == self.target {
            self.queue.write(decoded);
        } else {
            self.resample(decoded, source)?;
            self.queue.write(&self.resampled);
        }
        self.encode_full_frames()
    }

    fn resample(&mut self, decoded: &frame::Audio, source: AudioFormat) -> Result<(), TranscodeError> {
        if self.resampler.as_ref().is_none_or(|(format, _)| *format != source) {
            let context = resampling::Context::get(
                source.sample,
                source.layout,
                source.rate,
                self.target.sample,
                self.target.layout,
                self.target.rate,
            )
            .map_err(|e| TranscodeError::Undecodable(format!("unsupported audio layout ({e})")))?;
            self.resampler = Some((source, context));
        }
        let capacity = decoded.samples() * self.target.rate as usize / source.rate.max(1) as usize + 512;
        self.prepare_resampled(capacity);
        let (_, resampler) = self.resampler.as_mut().expect("set above");
        resampler.run(decoded, &mut self.resampled).map_err(output_error)?;
        Ok(())
    }

    /// Makes `resampled` a buffer of at least `capacity` samples in the target format.
    fn prepare_resampled(&mut self, capacity: usize) {
        let allocated =
            self.resampled.planes() > 0 && self.resampled.data(0).len() >= capacity * self.target.sample.bytes();
        if allocated {
            self.resampled.set_samples(capacity);
        } else {
            self.resampled = frame::Audio::new(self.target.sample, capacity, self.target.layout);
        }
        self.resampled.set_rate(self.target.rate);
    }

    fn encode_full_frames(&mut self) -> Result<(), TranscodeError> {
        while self.queue.len() >= self.frame_size {
            self.encode(self.frame_size)?;
        }
        Ok(())
    }

    /// Sends the queue's next `samples` to the encoder, through the reused frame; fails once
    /// the MP3 would pass its length limit.
    fn encode(&mut self, samples: usize) -> Result<(), TranscodeError> {
        if self.samples_encoded + samples as i64 > self.max_samples {
            return Err(TranscodeError::TooLong(self.max_media_seconds as u64));
        }
        make_writable(&mut self.frame)?;
        self.frame.set_samples(samples);
        self.queue.read_into(&mut self.frame, samples);
        if self.target.sample == format::Sample::F32(format::sample::Type::Planar) {
            finite_samples(&mut self.frame, samples);
        }
        self.frame.set_rate(self.target.rate);
        self.frame.set_pts(Some(self.samples_encoded));
        self.samples_encoded += samples as i64;
        self.encoder.send_frame(&self.frame).map_err(output_error)?;
        self.write_packets()
    }

    fn write_packets(&mut self) -> Result<(), TranscodeError> {
        let mut packet = Packet::empty();
        while self.encoder.receive_packet(&mut packet).is_ok() {
            packet.set_stream(0);
            packet.rescale_ts((1, self.target.rate as i32), self.stream_time_base);
            // One stream: nothing to interleave, so no interleaving queue either.
            packet.write(&mut self.octx).map_err(output_error)?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Transcoded, TranscodeError> {
        if let Some((_, resampler)) = self.resampler.as_mut() {
            loop {
                let capacity = 4096;
                let allocated = self.resampled.planes() > 0
                    && self.resampled.data(0).len() >= capacity * self.target.sample.bytes();
                if !allocated {
                    self.resampled = frame::Audio::new(self.target.sample, capacity, self.target.layout);
                }
                self.resampled.set_samples(capacity);
                resampler.flush(&mut self.resampled).map_err(output_error)?;
                if self.resampled.samples() == 0 {
                    break;
                }
                self.queue.write(&self.resampled);
            }
        }
        if self.samples_encoded == 0 && self.queue.len() == 0 {
            return Err(TranscodeError::Undecodable("no audio could be decoded".into()));
        }
        self.encode_full_frames()?;
        let last = self.queue.len();
        if last > 0 {
            self.encode(last)?;
        }
        self.encoder.send_eof().map_err(output_error)?;
        self.write_packets()?;
        self.octx.write_trailer().map_err(output_error)?;
        Ok(Transcoded { media_seconds: self.samples_encoded as f64 / self.target.rate as f64 })
    }
}

/// The encoder's input format closest to the decoder's: the same sample type and rate where
/// libmp3lame takes them (saving a conversion), else float and 44.1 kHz; mono stays mono and
/// everything else is mixed down to stereo.
fn choose_target(decoder: &ffmpeg::decoder::Audio, codec: &ffmpeg::codec::Audio) -> AudioFormat {
    let wanted = decoder.format().planar();
    let supported = codec.formats().is_some_and(|mut formats| formats.any(|f| f == wanted));
    let sample = if supported { wanted } else { format::Sample::F32(format::sample::Type::Planar) };
    let rate = if MP3_RATES.contains(&decoder.rate()) { decoder.rate() } else { 44100 };
    let layout = if decoder.channels() == 1 { ChannelLayout::MONO } else { ChannelLayout::STEREO };
    AudioFormat { sample, layout, rate }
}

/// Replaces what is not a number in a float frame (NaN, infinities: libmp3lame aborts on them)
/// with silence and full scale, so that such a file converts like any other.
fn finite_samples(frame: &mut frame::Audio, samples: usize) {
    for plane in 0..frame.planes() {
        let plane = &mut frame.plane_mut::<f32>(plane)[..samples];
        // A branch-free scan first (it vectorises): a float is not finite when its exponent
        // bits are all ones. Real audio never is, so the fix below almost never runs.
        let exponent = 0x7f80_0000;
        if plane.iter().fold(false, |any, sample| any | (sample.to_bits() & exponent == exponent)) {
            for sample in plane.iter_mut().filter(|sample| !sample.is_finite()) {
                *sample = if sample.is_nan() { 0.0 } else { sample.signum() };
            }
        }
    }
}

/// Gives `frame` buffers of its own before it is refilled: a copy only if the encoder still
/// holds a reference to the last samples sent through it (libmp3lame lets go of them at once).
fn make_writable(frame: &mut frame::Audio) -> Result<(), TranscodeError> {
    // SAFETY: `frame` owns a valid AVFrame with allocated buffers; av_frame_make_writable only
    // replaces shared buffers with a private copy of the same size.
    match unsafe { ffmpeg::ffi::av_frame_make_writable(frame.as_mut_ptr()) } {
        0 => Ok(()),
        error => Err(output_error(ffmpeg::Error::from(error))),
    }
}

/// A first-in, first-out queue of planar samples between the decoder (or resampler) and the
/// encoder, as FFmpeg's `AVAudioFifo`: each sample is copied in once and out once. Reading
/// moves a cursor; the unread rest (less than a frame) moves to the front only when new samples
/// would not fit behind it, so after the first frames the buffers never grow again.
struct SampleQueue {
    /// One byte buffer per channel (plane).
    planes: Vec<Vec<u8>>,
    /// Bytes at the front of every plane that were read already.
    read: usize,
    bytes_per_sample: usize,
}

impl SampleQueue {
    fn new(channels: usize, bytes_per_sample: usize) -> Self {
        SampleQueue { planes: vec![Vec::new(); channels], read: 0, bytes_per_sample }
    }

    /// Samples waiting.
    fn len(&self) -> usize {
        (self.planes[0].len() - self.read) / self.bytes_per_sample
    }

    fn write(&mut self, frame: &frame::Audio) {
        let bytes = frame.samples() * self.bytes_per_sample;
        if self.read > 0 && self.planes[0].len() + bytes > self.planes[0].capacity() {
            for plane in &mut self.planes {
                plane.drain(..self.read);
            }
            self.read = 0;
        }
        for (index, plane) in self.planes.iter_mut().enumerate() {
            plane.extend_from_slice(&frame.data(index)[..bytes]);
        }
    }

    /// Moves the next `samples` (at most [`SampleQueue::len`]) into `frame`'s planes.
    fn read_into(&mut self, frame: &mut frame::Audio, samples: usize) {
        let bytes = samples * self.bytes_per_sample;
        for (index, plane) in self.planes.iter().enumerate() {
            frame.data_mut(index)[..bytes].copy_from_slice(&plane[self.read..self.read + bytes]);
        }
        self.read += bytes;
        if self.read == self.planes[0].len() {
            self.planes.iter_mut().for_each(Vec::clear);
            self.read = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A planar stereo float frame whose samples count on from `first` (the right channel
    /// negated), so that any lost, doubled or reordered sample shows.
    fn counting_frame(first: usize, samples: usize) -> frame::Audio {
        let mut frame =
            frame::Audio::new(format::Sample::F32(format::sample::Type::Planar), samples, ChannelLayout::STEREO);
        for (plane, sign) in [(0, 1.0f32), (1, -1.0)] {
            let values: Vec<u8> = (first..first + samples).flat_map(|i| (sign * i as f32).to_ne_bytes()).collect();
            frame.data_mut(plane)[..values.len()].copy_from_slice(&values);
        }
        frame
    }

    #[test]
    fn the_sample_queue_gives_back_every_sample_once_in_order() {
        let mut queue = SampleQueue::new(2, 4);
        let mut out = frame::Audio::new(format::Sample::F32(format::sample::Type::Planar), 1152, ChannelLayout::STEREO);
        let (mut written, mut read) = (0, 0);
        // Decoder frames of varying sizes; encoder frames of 1152, the last one shorter.
        for size in [1024, 2048, 100, 1024, 3000, 1, 1024].into_iter().cycle().take(200) {
            queue.write(&counting_frame(written, size));
            written += size;
            while queue.len() >= 1152 || (written > 100_000 && queue.len() > 0) {
                let samples = queue.len().min(1152);
                queue.read_into(&mut out, samples);
                for i in 0..samples {
                    let sample =
                        |plane: usize| f32::from_ne_bytes(out.data(plane)[i * 4..i * 4 + 4].try_into().unwrap());
                    assert_eq!((sample(0), sample(1)), ((read + i) as f32, -((read + i) as f32)));
                }
                read += samples;
            }
        }
        assert_eq!((read, queue.len()), (written, 0));
        // Bounded by the biggest frame plus a partial one (growth doubles), not by all written.
        let bound = 2 * (3000 + 1152) * 4;
        assert!(queue.planes[0].capacity() <= bound, "the buffers grew to {}", queue.planes[0].capacity());
    }

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

    #[test]
    fn the_stream_analysis_may_open_audio_decoders_only() {
        init();
        let allowed: Vec<&str> = audio_decoders().split(',').collect();
        for audio in ["aac", "mp3float", "flac", "pcm_s16le", "vorbis", "ac3"] {
            assert!(allowed.contains(&audio), "{audio} is missing");
        }
        for other in ["h264", "hevc", "vp9", "av1", "mpeg4", "png", "ass", "subrip"] {
            assert!(!allowed.contains(&other), "{other} is allowed");
        }
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
