//! In-process transcoding of a video's audio to MP3 with FFmpeg's libraries (`ffmpeg-next`).
//!
//! Demux only the best audio stream (every other stream is discarded in the demuxer, so video
//! is never decoded), decode, resample to a format libmp3lame takes (planar s16/s32/float,
//! mono or stereo, a rate MP3 allows), cut into the encoder's frames of 1152 samples, encode at
//! a constant bit rate and mux MP3.
//!
//! This is blocking, CPU-bound code: run it on a blocking thread. It stops early when its
//! [`StopSignal`] says so (time limit or shutdown), also while FFmpeg is inside a blocking
//! read. The source is a local file or a seekable stream ([`Media`], FFmpeg's custom I/O):
//! through a non-seekable stream an MP4 whose index sits at the end makes FFmpeg retry
//! forever, which is also why packets are read one by one with a cap on consecutive errors
//! instead of through FFmpeg's packet iterator.
//!
//! It reports its progress through the same signal: the media time read so far.

use std::path::Path;
use std::sync::Arc;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Instant;

use ffmpeg::software::resampling;
use ffmpeg::{ChannelLayout, Packet, codec, format, frame, media};
use ffmpeg_next as ffmpeg;

use crate::storage::Media;

/// Read errors in a row after which the input is given up as unreadable.
const MAX_CONSECUTIVE_READ_ERRORS: u32 = 32;
/// Undecodable audio packets tolerated (skipped, as the ffmpeg CLI does) before giving up.
const MAX_UNDECODABLE_PACKETS: u32 = 256;
/// Sample rates MPEG audio (layer III, with its 2 and 2.5 extensions) can carry.
const MP3_RATES: [u32; 9] = [44100, 48000, 32000, 22050, 24000, 16000, 11025, 12000, 8000];

#[derive(Clone, Copy, Debug)]
pub struct TranscodeOptions {
    /// Constant bit rate of the MP3, in bits per second.
    pub bit_rate: usize,
}

/// What a finished conversion reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Transcoded {
    /// Duration of the MP3's audio.
    pub media_seconds: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    #[error("the file is not a readable media file ({0})")]
    Unreadable(String),
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

impl TranscodeError {
    /// True when trying again cannot help: the input itself is at fault.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            TranscodeError::Unreadable(_)
                | TranscodeError::NoAudio
                | TranscodeError::Undecodable(_)
                | TranscodeError::TimedOut
        )
    }
}

/// Tells a running conversion to stop: at its deadline, or when cancelled. It also carries the
/// conversion's progress back, since the conversion checks it all along anyway.
#[derive(Clone, Debug)]
pub struct StopSignal {
    deadline: Instant,
    cancelled: Arc<AtomicBool>,
    /// The fraction of the input's media time read so far, in [`PROGRESS_SCALE`] units; it only
    /// grows (stays 0 when the input does not say how long it is).
    done: Arc<AtomicU32>,
}

/// Steps of [`StopSignal`]'s progress from nothing to all.
const PROGRESS_SCALE: f64 = 10_000.0;

impl StopSignal {
    pub fn new(deadline: Instant) -> Self {
        StopSignal { deadline, cancelled: Arc::new(AtomicBool::new(false)), done: Arc::new(AtomicU32::new(0)) }
    }

    /// Records that `fraction` (0 to 1) of the input is read, unless more was reported before.
    pub fn report_done(&self, fraction: f64) {
        self.done.fetch_max((fraction.clamp(0.0, 1.0) * PROGRESS_SCALE) as u32, Ordering::Relaxed);
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
        } else if Instant::now() >= self.deadline {
            Err(TranscodeError::TimedOut)
        } else {
            Ok(())
        }
    }
}

/// Initialises FFmpeg once per process and keeps its own logging quiet: every failure reaches
/// the caller as a [`TranscodeError`], and a broken file must not flood the logs.
fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = ffmpeg::init();
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Fatal);
    });
}

/// The shape of [`transcode`], so the actors can be given a stand-in in tests.
pub type Transcode = fn(Media, &Path, TranscodeOptions, &StopSignal) -> Result<Transcoded, TranscodeError>;

/// Opens `media` for demuxing; FFmpeg's blocking reads give up once `stop` says so.
fn open_input(media: Media, stop: &StopSignal) -> Result<format::context::Input, TranscodeError> {
    init();
    let interrupt = stop.clone();
    let interrupted = move || interrupt.check().is_err();
    let opened = match media {
        Media::File(path) => format::input_with_interrupt(&path, interrupted),
        Media::Stream(stream) => format::context::StreamIo::from_read_seek(stream)
            .and_then(|io| format::input_from_stream_with_interrupt(io, None, None, interrupted)),
    };
    opened.map_err(|e| stop.check().err().unwrap_or_else(|| TranscodeError::Unreadable(e.to_string())))
}

/// An input opened for its best audio stream alone: the demuxer discards every other stream.
pub(crate) struct AudioInput {
    pub ictx: format::context::Input,
    /// The audio stream's index.
    pub index: usize,
}

/// Opens `media` for its best audio stream.
pub(crate) fn open_audio(media: Media, stop: &StopSignal) -> Result<AudioInput, TranscodeError> {
    let mut ictx = open_input(media, stop)?;
    let index = ictx.streams().best(media::Type::Audio).ok_or(TranscodeError::NoAudio)?.index();
    discard_all_but(&mut ictx, index);
    Ok(AudioInput { ictx, index })
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
        let mut packet = Packet::empty();
        let mut read_errors = 0;
        loop {
            stop.check()?;
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

/// Converts the best audio stream of `input` into an MP3 file at `output`.
pub fn transcode(
    input: Media,
    output: &Path,
    options: TranscodeOptions,
    stop: &StopSignal,
) -> Result<Transcoded, TranscodeError> {
    let mut input = open_audio(input, stop)?;
    let clock = ProgressClock::of(&input.ictx, &input.stream());
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
    // SAFETY: `ictx` owns a valid AVFormatContext whose `streams` array holds `nb_streams`
    // valid stream pointers; we only set each stream's `discard` field, which the demuxer
    // reads and which may be changed between packet reads.
    unsafe {
        let context = ictx.as_mut_ptr();
        for index in 0..(*context).nb_streams as usize {
            if index != keep {
                let stream = *(*context).streams.add(index);
                (*stream).discard = ffmpeg::ffi::AVDiscard::AVDISCARD_ALL;
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
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct AudioFormat {
    sample: format::Sample,
    layout: ChannelLayout,
    rate: u32,
}

impl AudioFormat {
    fn of(frame: &frame::Audio) -> Self {
        let layout = frame.channel_layout();
        let layout = if layout.is_empty() { ChannelLayout::default(frame.channels() as i32) } else { layout };
        AudioFormat { sample: frame.format(), layout, rate: frame.rate() }
    }
}

fn output_error(e: impl std::fmt::Display) -> TranscodeError {
    TranscodeError::Output(e.to_string())
}

impl Mp3Sink {
    fn create(
        output: &Path,
        decoder: &ffmpeg::decoder::Audio,
        options: TranscodeOptions,
    ) -> Result<Self, TranscodeError> {
        let codec = ffmpeg::encoder::find_by_name("libmp3lame")
            .ok_or_else(|| output_error("this FFmpeg has no libmp3lame encoder"))?;
        let audio_codec = codec.audio().map_err(output_error)?;
        let target = choose_target(decoder, &audio_codec);

        let mut octx = format::output_as(output, "mp3").map_err(output_error)?;
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
            resampled: frame::Audio::empty(),
            queue: SampleQueue::new(channels, target.sample.bytes()),
            frame: frame::Audio::new(target.sample, frame_size, target.layout),
            frame_size,
            samples_encoded: 0,
            stream_time_base,
            undecodable: 0,
        })
    }

    /// Takes every frame the decoder has ready through resampling and encoding.
    fn take_decoded(&mut self, decoder: &mut ffmpeg::decoder::Audio) -> Result<(), TranscodeError> {
        let mut decoded = frame::Audio::empty();
        loop {
            match decoder.receive_frame(&mut decoded) {
                Ok(()) => self.push(&decoded)?,
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
    fn push(&mut self, decoded: &frame::Audio) -> Result<(), TranscodeError> {
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

    /// Sends the queue's next `samples` to the encoder, through the reused frame.
    fn encode(&mut self, samples: usize) -> Result<(), TranscodeError> {
        make_writable(&mut self.frame)?;
        self.frame.set_samples(samples);
        self.queue.read_into(&mut self.frame, samples);
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
            packet.write_interleaved(&mut self.octx).map_err(output_error)?;
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
