//! Opening an upload for its audio: only as one of the accepted media formats, through custom
//! I/O on the one stream given, every nested open refused and only audio decoders allowed;
//! then reading the chosen audio stream's packets, every other stream discarded in the
//! demuxer.

use std::ffi::{CStr, c_char, c_int};
use std::io::{Read, Seek, Write};
use std::sync::OnceLock;

use ffmpeg::{ChannelLayout, Packet, codec, ffi, format, media};
use ffmpeg_next as ffmpeg;

use super::{StopSignal, TranscodeError, init};
use crate::media_formats;

/// Read errors in a row after which the input is given up as unreadable.
const MAX_CONSECUTIVE_READ_ERRORS: u32 = 32;

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
        if input.local && media_formats::reads_by_index(&name) && indexed_throughout(context) {
            // Unbuffered reads and real seeks from here on: an MP4 of 720p video and its audio
            // is read for its audio packets alone (a megabyte a minute), not through the video
            // between them. Only once the header is parsed, buffered: unbuffered, each of its
            // atoms would cost a seek and a refill (a file of tiny atoms took minutes).
            (*io.as_mut_ptr()).direct = 1;
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

/// Whether every audio stream of an opened, analysed input has its whole index already (an
/// MP4 whose `moov` lists every sample): its packets are then read where the index says, and no
/// atom is parsed on the way. A fragmented MP4 lists its samples in fragments met while
/// reading, whose atoms are parsed as they come, so it stays buffered.
///
/// # Safety
/// `context` must be a valid, opened AVFormatContext.
unsafe fn indexed_throughout(context: *mut ffi::AVFormatContext) -> bool {
    // SAFETY: as the caller promises; `streams` holds `nb_streams` valid stream pointers.
    unsafe {
        let streams = (0..(*context).nb_streams as usize).map(|index| *(*context).streams.add(index));
        let audio: Vec<*mut ffi::AVStream> = streams
            .filter(|stream| (*(**stream).codecpar).codec_type == ffi::AVMediaType::AVMEDIA_TYPE_AUDIO)
            .collect();
        !audio.is_empty()
            && audio.iter().all(|&stream| {
                (*stream).nb_frames > 0
                    && i64::from(ffi::avformat_index_get_entries_count(stream)) >= (*stream).nb_frames
            })
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
