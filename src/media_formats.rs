//! Which of FFmpeg's demuxers an upload may be opened with, and the door check that refuses
//! playlists and scripts before they are stored.
//!
//! Opened with no restriction, FFmpeg lets a file's content choose among all its demuxers,
//! and several of those open *other* resources named inside the file: a 51-byte `ffconcat`
//! script converts another user's video, an HLS playlist converts any readable file of the
//! host or fetches a URL. So every open of user data names the demuxers it accepts
//! ([`ACCEPTED`], FFmpeg's `format_whitelist`), allows no protocol for nested opens
//! ([`NO_PROTOCOL`], FFmpeg's `protocol_whitelist`) and refuses every nested open outright
//! (the transcoder's `io_open` callback). A refused format fails its job with a clear reason.
//! FFmpeg's stream analysis of an upload is shown its audio streams alone and may open only
//! audio decoders (the transcoder's `codec_whitelist`): no video decoder ever parses one.
//!
//! Left out on purpose (each family with its reason):
//! - **playlists and scripts** (`concat`, `hls`, `dash`, `imf`, `webm_dash_manifest`,
//!   `ffmetadata`): their whole purpose is to name other files or URLs;
//! - **network and session descriptions** (`sdp`, `rtp`, `rtsp`, `sap`): they open sockets;
//! - **image sequences and single images** (`image2`, `*_pipe`): `image2` expands a pattern
//!   into file names, and images carry no audio anyway;
//! - **raw data and wrappers** (`data`, `bin`, `tty`, `subfile`-style readers, subtitles and
//!   text formats): no audio to convert, and text formats are how scripts get in;
//! - **rare or legacy containers** (RealMedia, NUT, game and tracker formats, ...): every
//!   demuxer is attack surface, and nobody uploads these to a video-to-MP3 service.
//!
//! The door check ([`playlist_kind`]) is the friendly half: content that starts like a
//! playlist or script is refused at upload with 415, before anything is stored.

/// The accepted demuxers, by the names FFmpeg gives them (a demuxer whose name list holds any
/// of these, e.g. `mov,mp4,m4a,3gp,3g2,mj2` for `mov`, is accepted). Each is a real media
/// container or audio stream format that opens nothing but its own bytes.
pub const ACCEPTED: &[(&str, &str)] = &[
    ("mov", "MP4, MOV, M4A, 3GP (the mov demuxer; external data references stay off)"),
    ("matroska", "MKV, MKA, WebM"),
    ("avi", "AVI"),
    ("flv", "Flash video"),
    ("mpegts", "MPEG transport streams (.ts, .m2ts, camcorders)"),
    ("mpeg", "MPEG program streams (.mpg, .vob)"),
    ("ogg", "Ogg: Vorbis, Opus, FLAC, Theora"),
    ("asf", "ASF: WMV, WMA"),
    ("mxf", "MXF from professional cameras"),
    ("wav", "WAV"),
    ("w64", "Sony Wave64"),
    ("aiff", "AIFF, AIFF-C"),
    ("caf", "Apple Core Audio Format"),
    ("au", "Sun AU"),
    ("flac", "FLAC"),
    ("mp3", "MP3"),
    ("aac", "ADTS AAC"),
    ("ac3", "AC-3"),
    ("eac3", "E-AC-3"),
    ("dts", "DTS"),
    ("dtshd", "DTS-HD"),
    ("truehd", "Dolby TrueHD"),
    ("amr", "AMR (3GPP voice)"),
    ("amrnb", "AMR-NB"),
    ("amrwb", "AMR-WB"),
    ("wv", "WavPack"),
    ("ape", "Monkey's Audio"),
    ("tta", "True Audio"),
    ("mpc", "Musepack SV7"),
    ("mpc8", "Musepack SV8"),
];

/// The accepted demuxers that read each packet where the file's index says it lies, rather
/// than through the file from start to end: in a local file they can skip the streams they do
/// not need without reading them (the transcoder reads such inputs unbuffered).
const READ_BY_INDEX: &[&str] = &["mov"];

/// Whether FFmpeg's demuxer called `name` reads packets by the file's index ([`READ_BY_INDEX`]).
pub fn reads_by_index(name: &str) -> bool {
    name.split(',').any(|one| READ_BY_INDEX.contains(&one))
}

/// A protocol whitelist that names no protocol: nested opens have nothing to open with.
pub const NO_PROTOCOL: &str = "none";

/// The accepted demuxer names as FFmpeg's comma-separated `format_whitelist`.
pub fn accepted_list() -> String {
    ACCEPTED.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(",")
}

/// Whether FFmpeg's demuxer called `name` (a comma-separated list of names, as FFmpeg gives
/// them) is one an upload may be opened with.
pub fn is_accepted(name: &str) -> bool {
    name.split(',').any(|one| ACCEPTED.iter().any(|(accepted, _)| *accepted == one))
}

/// Bytes of an upload's start that [`playlist_kind`] looks at.
pub const DOOR_CHECK_BYTES: usize = 4096;

/// What an upload that starts with `head` is, when it is a playlist or script rather than
/// media: the signatures FFmpeg's own probes look for, after an optional byte-order mark, white
/// space and ID3v2 tag (FFmpeg skips such a tag before probing), and a DASH manifest's `<MPD`
/// with its `dash` namespace or profile anywhere (where FFmpeg's DASH probe looks for them).
/// Media files never start so.
pub fn playlist_kind(head: &[u8]) -> Option<&'static str> {
    let text = skip_id3v2(trim_start(head));
    const SIGNATURES: &[(&[u8], &str)] = &[
        (b"ffconcat", "an FFmpeg concat script"),
        (b"#EXTM3U", "an M3U/HLS playlist"),
        (b"#EXT-X-", "an HLS playlist"),
        (b"#EXTINF", "an M3U playlist"),
        (b"[playlist]", "a PLS playlist"),
        (b"<", "an XML or HTML document (a DASH manifest, a playlist)"),
        (b"v=0", "an SDP session description"),
        (b";FFMETADATA", "an FFmpeg metadata file"),
    ];
    let signature = SIGNATURES.iter().find(|(signature, _)| starts_with_ignoring_case(text, signature));
    let contains = |needle: &[u8]| head.windows(needle.len()).any(|window| window == needle);
    let manifest = contains(b"<MPD") && contains(b"dash");
    signature.map(|(_, kind)| *kind).or(manifest.then_some("a DASH manifest"))
}

/// `bytes` after a UTF-8 byte-order mark and white space.
fn trim_start(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(bytes.len());
    &bytes[start..]
}

/// `bytes` after an ID3v2 tag at their start (its size is four 7-bit bytes), trimmed again; as
/// they are when there is none, or when the tag is longer than what was seen.
fn skip_id3v2(bytes: &[u8]) -> &[u8] {
    let Some(header) = bytes.get(..10).filter(|header| header.starts_with(b"ID3")) else { return bytes };
    let size = header[6..10].iter().fold(0usize, |size, byte| (size << 7) | usize::from(byte & 0x7f));
    let footer = if header[5] & 0x10 != 0 { 10 } else { 0 };
    bytes.get(10 + size + footer..).map_or(bytes, trim_start)
}

fn starts_with_ignoring_case(text: &[u8], prefix: &[u8]) -> bool {
    text.len() >= prefix.len() && text[..prefix.len()].eq_ignore_ascii_case(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_real_media_demuxers_are_accepted() {
        assert!(is_accepted("mov,mp4,m4a,3gp,3g2,mj2"));
        assert!(is_accepted("matroska,webm"));
        assert!(is_accepted("wav"));
        for refused in ["concat", "hls", "dash", "image2", "sdp", "rtp", "data", "tee", "imf", "ffmetadata", "png_pipe"]
        {
            assert!(!is_accepted(refused), "{refused}");
        }
        assert!(accepted_list().starts_with("mov,matroska,"));
    }

    #[test]
    fn playlists_and_scripts_are_recognised_at_the_door() {
        assert_eq!(playlist_kind(b"ffconcat version 1.0\nfile 42\n"), Some("an FFmpeg concat script"));
        assert_eq!(playlist_kind(b"\xEF\xBB\xBF  \r\n#EXTM3U\n#EXT-X-TARGETDURATION:1"), Some("an M3U/HLS playlist"));
        assert_eq!(playlist_kind(b"#ext-x-version:3"), Some("an HLS playlist"));
        assert!(playlist_kind(b"<?xml version=\"1.0\"?><MPD").is_some());
        assert!(playlist_kind(b"v=0\r\no=- 0 0 IN IP4 127.0.0.1").is_some());
        // Behind an ID3v2 tag (FFmpeg skips it), and a manifest behind anything.
        assert_eq!(playlist_kind(b"ID3\x04\0\0\0\0\0\x06abcdef#EXTM3U\n"), Some("an M3U/HLS playlist"));
        assert_eq!(playlist_kind(b"garbage <MPD xmlns=\"urn:mpeg:dash\">"), Some("a DASH manifest"));
        // Real media: an MP4 box, a WAV header, an MP3 with ID3, Matroska's EBML magic.
        for media in [&b"\0\0\0\x20ftypisom"[..], b"RIFF\x24\0\0\0WAVEfmt ", b"ID3\x04\0", b"\x1A\x45\xDF\xA3"] {
            assert_eq!(playlist_kind(media), None);
        }
        assert_eq!(playlist_kind(b""), None);
    }
}
