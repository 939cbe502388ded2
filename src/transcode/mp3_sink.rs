//! The encoding half of a conversion: resample to a format libmp3lame takes, cut into the
//! encoder's frames of 1152 samples, encode at a constant bit rate and mux MP3, within the
//! output size the media length allows.

use ffmpeg::software::resampling;
use ffmpeg::{ChannelLayout, Packet, codec, format, frame};
use ffmpeg_next as ffmpeg;

use super::{MAX_UNDECODABLE_PACKETS, Output, TranscodeError, TranscodeOptions, Transcoded};

/// Sample rates MPEG audio (layer III, with its 2 and 2.5 extensions) can carry.
const MP3_RATES: [u32; 9] = [44100, 48000, 32000, 22050, 24000, 16000, 11025, 12000, 8000];

/// The encoding half: resampler, sample queue, encoder and MP3 muxer.
pub(super) struct Mp3Sink {
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
    pub(super) fn create(
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
    pub(super) fn take_decoded(&mut self, decoder: &mut ffmpeg::decoder::Audio) -> Result<(), TranscodeError> {
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

    pub(super) fn finish(mut self) -> Result<Transcoded, TranscodeError> {
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
}
