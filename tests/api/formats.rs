//! The media people really send, converted by the real FFmpeg worker ([`Sandbox`]): video
//! containers, every PCM flavour of WAV and the common audio formats, channel layouts from
//! mono to 7.1 (and unspecified), rates from 8 to 192 kHz, audio that starts late or before
//! zero, several audio tracks and a 0.2 s clip, each made at test time with the ffmpeg CLI.
//! Whatever the CLI converts, we convert: each MP3 must last what
//! `ffmpeg -i IN -vn -c:a libmp3lame OUT` gives (within 1 % or 0.1 s), at a rate MP3 allows,
//! with at most 2 channels, and not be silent.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mp3converter::sandbox::{MediaWorker, Sandbox};
use mp3converter::storage::Media;
use mp3converter::transcode::{StopSignal, TranscodeOptions};

use crate::helpers::binary;
use crate::tools::{ffmpeg, ffprobe, run};

/// One input: its file name, the ffmpeg arguments that make it (after the inputs of
/// [`inputs`]), which audio track the CLI should be pointed at for the reference (None: its
/// own choice), and the inputs to use.
struct Case {
    file: &'static str,
    args: &'static [&'static str],
    inputs: Inputs,
    reference_track: Option<usize>,
}

#[derive(Clone, Copy)]
enum Inputs {
    /// A 2 s tone at this rate (mono; `-ac` in the arguments makes more channels).
    Tone(u32),
    /// A 2 s test pattern and a 2 s tone at 48 kHz.
    VideoAndTone,
    /// Video from 0 and a tone that starts 1 s later.
    LateAudio,
    /// Video from 0 and a tone whose timestamps start at -0.3 s.
    EarlyAudio,
    /// Two tones: 3 s of 48 kHz stereo (not default, FFmpeg's own pick) and 5 s of
    /// 22.05 kHz mono (default disposition).
    TwoTracks,
    /// A 0.2 s tone.
    Blip,
}

fn inputs(inputs: Inputs) -> Vec<String> {
    let tone = |rate: u32, seconds: f64| format!("sine=frequency=440:sample_rate={rate}:duration={seconds}");
    let video = "testsrc2=size=64x48:rate=10:duration=2".to_owned();
    let args: Vec<String> = match inputs {
        Inputs::Tone(rate) => vec!["-f".into(), "lavfi".into(), "-i".into(), tone(rate, 2.0)],
        Inputs::VideoAndTone => {
            ["-f", "lavfi", "-i", &video, "-f", "lavfi", "-i", &tone(48000, 2.0)].map(String::from).into()
        }
        Inputs::LateAudio => ["-f", "lavfi", "-i", &video, "-itsoffset", "1", "-f", "lavfi", "-i", &tone(48000, 2.0)]
            .map(String::from)
            .into(),
        Inputs::EarlyAudio => {
            ["-f", "lavfi", "-i", &video, "-itsoffset", "-0.3", "-f", "lavfi", "-i", &tone(48000, 2.0)]
                .map(String::from)
                .into()
        }
        Inputs::TwoTracks => {
            let stereo = format!("{},aformat=channel_layouts=stereo", tone(48000, 3.0));
            ["-f", "lavfi", "-i", &stereo, "-f", "lavfi", "-i", &tone(22050, 5.0)].map(String::from).into()
        }
        Inputs::Blip => vec!["-f".into(), "lavfi".into(), "-i".into(), tone(44100, 0.2)],
    };
    args
}

const fn tone(file: &'static str, rate: u32, args: &'static [&'static str]) -> Case {
    Case { file, args, inputs: Inputs::Tone(rate), reference_track: None }
}

const fn video(file: &'static str, args: &'static [&'static str]) -> Case {
    Case { file, args, inputs: Inputs::VideoAndTone, reference_track: None }
}

const CASES: &[Case] = &[
    // Video containers.
    video("h264-aac.mp4", &["-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"]),
    video("h264-alac.mov", &["-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "alac"]),
    video(
        "h264-aac.3gp",
        &["-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-ar", "16000"],
    ),
    video("vorbis.mkv", &["-map", "0:v", "-map", "1:a", "-c:v", "mpeg4", "-c:a", "libvorbis"]),
    video("opus.webm", &["-map", "1:a", "-c:a", "libopus"]),
    video("mp3.avi", &["-map", "0:v", "-map", "1:a", "-c:v", "mpeg4", "-c:a", "libmp3lame"]),
    video("aac.flv", &["-map", "0:v", "-map", "1:a", "-c:v", "flv1", "-c:a", "aac", "-ar", "44100"]),
    video("mp2.ts", &["-map", "0:v", "-map", "1:a", "-c:v", "mpeg2video", "-c:a", "mp2"]),
    video("wma.wmv", &["-map", "0:v", "-map", "1:a", "-c:v", "wmv2", "-c:a", "wmav2"]),
    // WAV: every PCM flavour, the ADPCMs and GSM.
    tone("u8.wav", 8000, &["-c:a", "pcm_u8"]),
    tone("s16-mono-8k.wav", 8000, &["-c:a", "pcm_s16le"]),
    tone("s24.wav", 44100, &["-ac", "2", "-c:a", "pcm_s24le"]),
    tone("s32.wav", 48000, &["-ac", "2", "-c:a", "pcm_s32le"]),
    tone("f32.wav", 48000, &["-c:a", "pcm_f32le"]),
    tone("f64.wav", 44100, &["-c:a", "pcm_f64le"]),
    tone("alaw.wav", 8000, &["-c:a", "pcm_alaw"]),
    tone("alaw-stereo.wav", 8000, &["-ac", "2", "-c:a", "pcm_alaw"]),
    tone("mulaw.wav", 8000, &["-c:a", "pcm_mulaw"]),
    tone("adpcm-ms.wav", 22050, &["-c:a", "adpcm_ms"]),
    tone("adpcm-ima.wav", 16000, &["-ac", "2", "-c:a", "adpcm_ima_wav"]),
    tone("gsm.wav", 8000, &["-c:a", "libgsm_ms"]),
    // Other audio formats.
    tone("s16be.aiff", 44100, &["-ac", "2", "-c:a", "pcm_s16be"]),
    tone("alac.caf", 44100, &["-ac", "2", "-c:a", "alac"]),
    tone("s16.w64", 48000, &["-ac", "2", "-c:a", "pcm_s16le"]),
    tone("stereo.flac", 44100, &["-ac", "2", "-c:a", "flac"]),
    tone("alac.m4a", 44100, &["-ac", "2", "-c:a", "alac"]),
    tone("joint.mp3", 44100, &["-ac", "2", "-c:a", "libmp3lame"]),
    tone("adts.aac", 44100, &["-ac", "2", "-c:a", "aac", "-f", "adts"]),
    tone("voice.opus", 48000, &["-c:a", "libopus"]),
    tone("vorbis.ogg", 44100, &["-ac", "2", "-c:a", "libvorbis"]),
    tone("surround.ac3", 48000, &["-ac", "6", "-c:a", "ac3"]),
    tone("stereo.eac3", 48000, &["-ac", "2", "-c:a", "eac3"]),
    tone("stereo.dts", 48000, &["-ac", "2", "-c:a", "dca", "-strict", "-2"]),
    tone("wavpack.wv", 44100, &["-ac", "2", "-c:a", "wavpack"]),
    tone("tta.tta", 44100, &["-ac", "2", "-c:a", "tta"]),
    // Channel layouts.
    tone("5.1.wav", 48000, &["-ac", "6", "-c:a", "pcm_s16le"]),
    tone("7.1.wav", 48000, &["-ac", "8", "-c:a", "pcm_s16le"]),
    tone("quad.flac", 48000, &["-ac", "4", "-c:a", "flac"]),
    tone("3ch.aiff", 44100, &["-ac", "3", "-c:a", "pcm_s16be"]),
    tone("7.1.opus", 48000, &["-ac", "8", "-c:a", "libopus", "-mapping_family", "1"]),
    // Rates.
    tone("192k.wav", 192000, &["-ac", "2", "-c:a", "pcm_s24le"]),
    tone("96k.flac", 96000, &["-ac", "2", "-c:a", "flac"]),
    tone("88k.flac", 88200, &["-c:a", "flac"]),
    tone("11k.wav", 11025, &["-c:a", "pcm_s16le"]),
    tone("22k.wav", 22050, &["-c:a", "pcm_s16le"]),
    // Timing.
    Case {
        file: "late-audio.mkv",
        args: &["-map", "0:v", "-map", "1:a", "-c:v", "mpeg4", "-c:a", "flac"],
        inputs: Inputs::LateAudio,
        reference_track: None,
    },
    Case {
        file: "early-audio.mkv",
        args: &["-map", "0:v", "-map", "1:a", "-c:v", "mpeg4", "-c:a", "flac", "-avoid_negative_ts", "disabled"],
        inputs: Inputs::EarlyAudio,
        reference_track: None,
    },
    Case {
        file: "two-tracks.mkv",
        args: &["-map", "0:a", "-map", "1:a", "-c:a", "flac", "-disposition:a:0", "0", "-disposition:a:1", "default"],
        inputs: Inputs::TwoTracks,
        reference_track: Some(1),
    },
    Case { file: "blip.wav", args: &["-c:a", "pcm_s16le"], inputs: Inputs::Blip, reference_track: None },
];

/// Rates an MP3 may have.
const MP3_RATES: [u64; 9] = [8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000];

fn make(case: &Case, dir: &Path) -> PathBuf {
    let path = dir.join(case.file);
    run(ffmpeg().args(inputs(case.inputs)).args(case.args).arg(&path));
    path
}

/// Sample rate, channels and duration of an MP3, per ffprobe.
fn probe(path: &Path) -> (u64, u64, f64) {
    let entries = "stream=sample_rate,channels,duration";
    let json = ffprobe(path, "a:0", entries);
    let stream = &json["streams"][0];
    let number = |key: &str| {
        stream[key].as_str().and_then(|v| v.parse::<f64>().ok()).or(stream[key].as_f64()).unwrap_or(f64::NAN)
    };
    (number("sample_rate") as u64, number("channels") as u64, number("duration"))
}

/// The mean volume in dB, per ffmpeg's volumedetect (-91 is digital silence).
fn mean_volume(path: &Path) -> f64 {
    let output =
        run(ffmpeg().args(["-loglevel", "info", "-i"]).arg(path).args(["-af", "volumedetect", "-f", "null", "-"]));
    let log = String::from_utf8_lossy(&output.stderr);
    let line = log.lines().find(|l| l.contains("mean_volume:")).unwrap_or("mean_volume: -91.0 dB");
    line.split("mean_volume:").nth(1).and_then(|v| v.trim().trim_end_matches(" dB").parse().ok()).unwrap_or(-91.0)
}

/// What is wrong with our conversion of `case`, if anything.
fn check(case: &Case, dir: &Path, sandbox: &Sandbox) -> Option<String> {
    let input = make(case, dir);
    let reference = dir.join(format!("{}.cli.mp3", case.file));
    let map = case.reference_track.map(|track| vec!["-map".to_owned(), format!("0:a:{track}")]).unwrap_or_default();
    run(ffmpeg().arg("-i").arg(&input).args(map).args(["-vn", "-c:a", "libmp3lame"]).arg(&reference));
    let ours = dir.join(format!("{}.mp3", case.file));
    std::fs::write(&ours, b"").unwrap();
    let options = TranscodeOptions { bit_rate: 192_000, max_media_seconds: 3600.0 };
    let stop = StopSignal::new(Instant::now() + Duration::from_secs(120));
    if let Err(error) = sandbox.transcode(Media::File(input), &ours, options, None, &stop) {
        return Some(format!("{}: not converted: {error}", case.file));
    }
    let (_, _, expected) = probe(&reference);
    let (rate, channels, duration) = probe(&ours);
    let tolerance = (expected * 0.01).max(0.1);
    let mut wrong = Vec::new();
    if (duration - expected).abs() > tolerance {
        wrong.push(format!("lasts {duration:.3} s, the CLI's {expected:.3} s"));
    }
    if !MP3_RATES.contains(&rate) {
        wrong.push(format!("rate {rate}"));
    }
    if !(1..=2).contains(&channels) {
        wrong.push(format!("{channels} channels"));
    }
    let volume = mean_volume(&ours);
    if volume < -60.0 {
        wrong.push(format!("silent ({volume} dB)"));
    }
    (!wrong.is_empty()).then(|| format!("{}: {}", case.file, wrong.join(", ")))
}

#[test]
fn whatever_the_cli_converts_we_convert() {
    let _heavy = crate::helpers::HEAVY.blocking_lock();
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::new(binary(), 1 << 30);
    // Two at a time: the machine has two cores.
    let (first, second) = CASES.split_at(CASES.len() / 2);
    let problems: Vec<String> = std::thread::scope(|scope| {
        let half = |cases: &'static [Case]| {
            let (dir, sandbox) = (dir.path(), &sandbox);
            scope.spawn(move || cases.iter().filter_map(|case| check(case, dir, sandbox)).collect::<Vec<_>>())
        };
        let (a, b) = (half(first), half(second));
        [a.join().unwrap(), b.join().unwrap()].concat()
    });
    assert!(problems.is_empty(), "{} of {} inputs:\n{}", problems.len(), CASES.len(), problems.join("\n"));
}

/// A float recording with samples that are not numbers (NaN, infinities) in its second half:
/// libmp3lame aborts on them (so does the ffmpeg CLI); we convert it, with those samples as
/// silence and full scale.
#[test]
fn float_audio_with_samples_that_are_not_numbers_converts() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("nan.wav");
    let expression = "aevalsrc=exprs='if(lt(t,1),sin(2*PI*440*t),if(lt(t,1.5),log(-1),1/0))':s=44100:d=2";
    run(ffmpeg().args(["-f", "lavfi", "-i", expression, "-c:a", "pcm_f32le"]).arg(&input));
    let output = dir.path().join("nan.mp3");
    std::fs::write(&output, b"").unwrap();
    let options = TranscodeOptions { bit_rate: 192_000, max_media_seconds: 3600.0 };
    let stop = StopSignal::new(Instant::now() + Duration::from_secs(60));
    let converted = Sandbox::new(binary(), 1 << 30).transcode(Media::File(input), &output, options, None, &stop);
    let seconds = converted.expect("converted").media_seconds;
    assert!((seconds - 2.0).abs() < 0.1, "{seconds} s");
    assert!(mean_volume(&output) > -60.0, "not silent");
}

/// Set in the process that [`converting_many_files_in_one_process_does_not_grow`] starts to
/// measure in: a test process of its own, where no other test allocates meanwhile.
const MEASURING: &str = "MP3C_TEST_MEASURE_GROWTH";

/// The conversion and the audio copy run many times in one process (as a long-lived worker
/// would) without growing: each used to leak every packet it read (about 0.4 MiB for a 10 s
/// clip). Measured in a process of its own (this test binary, running this test alone).
#[test]
fn converting_many_files_in_one_process_does_not_grow() {
    let _heavy = (std::env::var_os(MEASURING).is_none()).then(|| crate::helpers::HEAVY.blocking_lock());
    const NAME: &str = "formats::converting_many_files_in_one_process_does_not_grow";
    if std::env::var_os(MEASURING).is_some() {
        println!("KIB_PER_FILE {}", growth_per_file_kib());
        return;
    }
    let test_binary = std::env::current_exe().unwrap();
    let output = Command::new(test_binary)
        .args(["--exact", NAME, "--nocapture", "--test-threads", "1"])
        .env(MEASURING, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let per_file: f64 = stdout
        .lines()
        .find_map(|line| line.split("KIB_PER_FILE ").nth(1))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no measurement: {stdout}{}", String::from_utf8_lossy(&output.stderr)));
    assert!(per_file < 16.0, "grew {per_file:.1} KiB a file");
}

/// Converts and copies the test clip many times in this process; its RSS growth per file, KiB.
fn growth_per_file_kib() -> f64 {
    const WARM_UP: usize = 20;
    const MEASURED: usize = 120;
    let rss_kib = || -> f64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let input = crate::helpers::fixture("clip.mp4");
    let options = TranscodeOptions { bit_rate: 192_000, max_media_seconds: 3600.0 };
    let convert_and_copy = || {
        let stop = StopSignal::new(Instant::now() + Duration::from_secs(60));
        let open = || mp3converter::transcode::Input::local(std::fs::File::open(&input).unwrap());
        let create = |name: &str| Box::new(std::fs::File::create(dir.path().join(name)).unwrap());
        mp3converter::transcode::transcode(open(), create("out.mp3"), options, &stop).unwrap();
        mp3converter::audio_copy::copy_audio(open(), create("out.mka"), &stop).unwrap();
    };
    (0..WARM_UP).for_each(|_| convert_and_copy());
    let before = rss_kib();
    (0..MEASURED).for_each(|_| convert_and_copy());
    (rss_kib() - before) / MEASURED as f64
}
