//! What a person sees while files convert: on a terminal, one indicatif bar per file (bytes,
//! rate and time left while transferring; percent while converting); without one (piped, CI),
//! a few plain lines on standard error instead: each phase, and each quarter of it.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

const TRANSFER_TEMPLATE: &str =
    "{prefix:20!} {msg:12} [{bar:25}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}";
const PERCENT_TEMPLATE: &str = "{prefix:20!} {msg:12} [{bar:25}] {pos}%";

/// Every file's progress.
pub struct Board {
    bars: MultiProgress,
    plain: bool,
}

impl Board {
    /// Bars when standard error is a terminal, plain lines otherwise.
    pub fn new() -> Board {
        let plain = !std::io::stderr().is_terminal();
        let target = if plain { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() };
        Board { bars: MultiProgress::with_draw_target(target), plain }
    }

    pub fn file(&self, name: &str) -> FileProgress {
        let bar = self.bars.add(ProgressBar::no_length().with_prefix(name.to_owned()));
        FileProgress { bar, name: name.to_owned(), plain: self.plain, quarter: AtomicU64::new(0) }
    }

    /// A line above the bars (or just a line).
    pub fn println(&self, line: &str) {
        if self.plain {
            eprintln!("{line}");
        } else {
            let _ = self.bars.println(line);
        }
    }
}

/// One file's bar.
pub struct FileProgress {
    bar: ProgressBar,
    name: String,
    plain: bool,
    /// The last quarter of the phase reported as a plain line.
    quarter: AtomicU64,
}

impl FileProgress {
    /// A transfer of `total` bytes (if known) begins; `verb` names it ("uploading").
    pub fn transfer(&self, verb: &str, total: Option<u64>) {
        self.phase(verb, TRANSFER_TEMPLATE, total);
        let size = total.map(|bytes| format!(" ({})", indicatif::HumanBytes(bytes))).unwrap_or_default();
        self.line(&format!("{verb}{size}"));
    }

    /// `bytes` more were transferred.
    pub fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
        self.report_quarter();
    }

    /// The conversion is waiting or running (`state`), at `percent` if known.
    pub fn converting(&self, state: &str, percent: Option<f64>) {
        if self.bar.message() != state {
            self.phase(state, PERCENT_TEMPLATE, Some(100));
            self.line(state);
        }
        if let Some(percent) = percent {
            self.bar.set_position(percent.clamp(0.0, 100.0) as u64);
            self.report_quarter();
        }
    }

    /// The file waits for the server, for the reason `why` (told above the bars, or on a line).
    pub fn waiting(&self, why: &str) {
        self.bar.set_message("waiting");
        if self.plain {
            self.line(why);
        } else {
            self.bar.println(format!("{}: {why}", self.name));
        }
    }

    /// The file is finished: the bar goes away.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    fn phase(&self, message: &str, template: &str, length: Option<u64>) {
        // Length and position first: no frame shows the new style with the old numbers.
        self.bar.set_length(length.unwrap_or(0));
        self.bar.set_position(0);
        self.bar.set_style(ProgressStyle::with_template(template).expect("a valid template").progress_chars("=> "));
        self.bar.set_message(message.to_owned());
        self.quarter.store(0, Ordering::Relaxed);
    }

    /// In plain mode, a line each time the phase passes another quarter (25, 50, 75%).
    fn report_quarter(&self) {
        let Some(length) = self.bar.length().filter(|length| *length > 0) else { return };
        let quarter = self.bar.position() * 4 / length;
        // The end of a phase is told by the next one.
        if quarter < 4 && self.quarter.fetch_max(quarter, Ordering::Relaxed) < quarter {
            self.line(&format!("{} {}%", self.bar.message(), quarter * 25));
        }
    }

    fn line(&self, what: &str) {
        if self.plain {
            eprintln!("{}: {what}", self.name);
        }
    }
}
