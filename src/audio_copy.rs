//! The audio-only copy of an upload: its best audio stream remuxed into Matroska, packets as
//! they are (nothing decoded), every other stream left out. A minute of 720p video (57 MB)
//! becomes about 1 MB, which is all a conversion needs; the gateway stores this copy instead
//! of the video when `--store-audio-only` is on.
//!
//! Blocking code (FFmpeg) on user data: it runs only inside the sandboxed worker process
//! ([`crate::sandbox`]). It opens and reads its input as the converter does
//! ([`crate::transcode`]: accepted formats only, no nested opens, the same cap on read errors
//! and the same stop signal).

use ffmpeg::{codec, encoder, format};
use ffmpeg_next as ffmpeg;

use crate::transcode::{Input, Output, StopSignal, TranscodeError, open_audio};

/// The copy's container: Matroska takes nearly every audio codec as it is.
const CONTAINER: &str = "matroska";
/// The content type of the stored copy.
pub const CONTENT_TYPE: &str = "audio/x-matroska";

/// Copies the best audio stream of `input` into Matroska, written to `output`. An error means
/// no usable copy (no audio, an unreadable or refused file, a codec Matroska cannot hold).
pub fn copy_audio(input: Input, output: Output, stop: &StopSignal) -> Result<(), TranscodeError> {
    let mut input = open_audio(input)?;
    let (parameters, in_time_base) = {
        let stream = input.stream();
        (stream.parameters(), stream.time_base())
    };
    let failed = |e: ffmpeg::Error| TranscodeError::Output(e.to_string());
    let io = format::context::StreamIo::from_write_seek(output).map_err(failed)?;
    let mut octx = format::output_to_stream(io, None, Some(CONTAINER)).map_err(failed)?;
    // SAFETY: `octx` owns a valid output context; the flag only tells the muxer to write fixed
    // values where it would write random ones. Without it, the Matroska muxer asks for a random
    // seed, which the worker's sandbox lets it read nowhere (no /dev/urandom), and FFmpeg then
    // makes one by reading the CPU clock in a loop: a quarter of a second per copy.
    unsafe { (*octx.as_mut_ptr()).flags |= ffmpeg::ffi::AVFMT_FLAG_BITEXACT };
    {
        let mut stream = octx.add_stream(encoder::find(codec::Id::None)).map_err(failed)?;
        stream.set_parameters(parameters);
        // SAFETY: the stream's codec parameters are valid and owned by `octx`; a tag of 0 lets
        // the muxer choose Matroska's own tag for the codec instead of the source container's.
        unsafe { (*stream.parameters().as_mut_ptr()).codec_tag = 0 };
    }
    octx.write_header().map_err(failed)?;
    let out_time_base = octx.stream(0).map(|s| s.time_base()).ok_or(TranscodeError::NoAudio)?;
    let mut packets = 0u64;
    input.for_each_packet(stop, |packet| {
        packet.rescale_ts(in_time_base, out_time_base);
        packet.set_position(-1);
        packet.set_stream(0);
        packets += 1;
        packet.write(&mut octx).map(drop).map_err(failed)
    })?;
    if packets == 0 {
        return Err(TranscodeError::Undecodable("the audio stream has no packets".into()));
    }
    octx.write_trailer().map_err(failed)
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::path::Path;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::test_media::{ffmpeg, ffprobe};

    fn remux(input: &Path, output: &Path) -> Result<(), TranscodeError> {
        let input = Input::local(File::open(input).unwrap());
        copy_audio(input, Box::new(File::create(output).unwrap()), &stop())
    }

    /// Audio stream count, video stream count and duration, per ffprobe.
    fn probe(path: &Path) -> (usize, usize, f64) {
        let json = ffprobe(path, "stream=codec_type:format=duration");
        let streams = json["streams"].as_array().cloned().unwrap_or_default();
        let count = |kind: &str| streams.iter().filter(|s| s["codec_type"] == kind).count();
        let duration = json["format"]["duration"].as_str().and_then(|d| d.parse().ok()).unwrap_or(f64::NAN);
        (count("audio"), count("video"), duration)
    }

    fn stop() -> StopSignal {
        StopSignal::new(Instant::now() + Duration::from_secs(60))
    }

    #[test]
    fn keeps_the_audio_alone_and_its_length() {
        let dir = tempfile::tempdir().unwrap();
        let video = dir.path().join("in.mp4");
        let lavfi = ["-f", "lavfi", "-i"];
        ffmpeg(
            &[
                &lavfi[..],
                &["testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"],
                &["-t", "5", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-f", "mp4"],
            ]
            .concat(),
            &video,
        );
        let copy = dir.path().join("out.mka");
        remux(&video, &copy).unwrap();
        let (audio, video_streams, duration) = probe(&copy);
        assert_eq!((audio, video_streams), (1, 0), "audio only");
        assert!((duration - 5.0).abs() < 0.1, "{duration} s");
        assert!(std::fs::metadata(&copy).unwrap().len() < std::fs::metadata(&video).unwrap().len());
    }

    #[test]
    fn a_file_without_audio_or_not_media_has_no_copy() {
        let dir = tempfile::tempdir().unwrap();
        let silent = dir.path().join("silent.mp4");
        ffmpeg(&["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10", "-t", "1", "-f", "mp4"], &silent);
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, b"not a video").unwrap();
        let copy = dir.path().join("out.mka");
        assert!(matches!(remux(&silent, &copy), Err(TranscodeError::NoAudio)));
        assert!(matches!(remux(&text, &copy), Err(TranscodeError::Unreadable(_))));
    }
}
