//! What a person sees while files convert: on a terminal, one indicatif bar per file (bytes,
//! rate and time left while transferring; percent while converting); without one (piped, CI),
//! a few plain lines on standard error instead: each phase, and each quarter of it.
//!
//! Sizes are decimal (`76.9 MB`), as on the web page. Each phase is a bar of its own, put in
//! the place of the last one, so that no frame shows one phase's numbers in another's style.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{HumanDuration, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

const TRANSFER_TEMPLATE: &str =
    "{prefix:20!} {msg:12} [{bar:25}] {decimal_bytes}/{decimal_total_bytes} {decimal_bytes_per_sec} {time_left}";
const PERCENT_TEMPLATE: &str = "{prefix:20!} {msg:12} [{bar:25}] {pos}%";
/// A transfer's time left is shown once its rate means something.
const ESTIMATE_AFTER: Duration = Duration::from_secs(2);

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
        FileProgress {
            bars: self.bars.clone(),
            bar: Mutex::new(bar),
            name: name.to_owned(),
            plain: self.plain,
            quarter: AtomicU64::new(0),
        }
    }
}

/// One file's bar.
pub struct FileProgress {
    /// Where the file's bar is shown, to put each phase's bar in its place.
    bars: MultiProgress,
    /// The current phase's bar.
    bar: Mutex<ProgressBar>,
    name: String,
    plain: bool,
    /// The last quarter of the phase reported as a plain line.
    quarter: AtomicU64,
}

impl FileProgress {
    /// A transfer of `total` bytes (if known) begins; `verb` names it ("uploading").
    pub fn transfer(&self, verb: &str, total: Option<u64>) {
        self.phase(verb, transfer_style(), total);
        let size = total.map(|bytes| format!(" ({})", indicatif::DecimalBytes(bytes))).unwrap_or_default();
        self.line(&format!("{verb}{size}"));
    }

    /// `bytes` more were transferred.
    pub fn advance(&self, bytes: u64) {
        self.bar().inc(bytes);
        self.report_quarter();
    }

    /// The conversion is waiting or running (`state`), at `percent` if known.
    pub fn converting(&self, state: &str, percent: Option<f64>) {
        if self.bar().message() != state {
            self.phase(state, style(PERCENT_TEMPLATE), Some(100));
            self.line(state);
        }
        if let Some(percent) = percent {
            self.bar().set_position(percent.clamp(0.0, 100.0) as u64);
            self.report_quarter();
        }
    }

    /// The file waits for the server, for the reason `why` (told above the bars, or on a line).
    pub fn waiting(&self, why: &str) {
        let bar = self.bar();
        bar.set_message("waiting");
        if self.plain {
            self.line(why);
        } else {
            bar.println(format!("{}: {why}", self.name));
        }
    }

    /// The file is finished: the bar goes away.
    pub fn finish(&self) {
        let bar = self.bar();
        bar.finish_and_clear();
        self.bars.remove(&bar);
    }

    /// The current phase's bar (a handle: the bar itself is shared).
    fn bar(&self) -> ProgressBar {
        self.bar.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// A new phase: a new bar, set up whole before it is shown, in the old one's place.
    fn phase(&self, message: &str, style: ProgressStyle, length: Option<u64>) {
        let fresh = ProgressBar::new(length.unwrap_or(0))
            .with_style(style)
            .with_prefix(self.name.clone())
            .with_message(message.to_owned());
        let mut bar = self.bar.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let fresh = self.bars.insert_after(&bar, fresh);
        bar.finish_and_clear();
        self.bars.remove(&bar);
        *bar = fresh;
        self.quarter.store(0, Ordering::Relaxed);
    }

    /// In plain mode, a line each time the phase passes another quarter (25, 50, 75%).
    fn report_quarter(&self) {
        let bar = self.bar();
        let Some(length) = bar.length().filter(|length| *length > 0) else { return };
        let quarter = bar.position() * 4 / length;
        // The end of a phase is told by the next one.
        if quarter < 4 && self.quarter.fetch_max(quarter, Ordering::Relaxed) < quarter {
            self.line(&format!("{} {}%", bar.message(), quarter * 25));
        }
    }

    fn line(&self, what: &str) {
        if self.plain {
            eprintln!("{}: {what}", self.name);
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).expect("a valid template").progress_chars("=> ")
}

/// A transfer's bar: bytes, rate, and the time left once there is a rate to go by.
fn transfer_style() -> ProgressStyle {
    style(TRANSFER_TEMPLATE).with_key("time_left", |state: &ProgressState, out: &mut dyn std::fmt::Write| {
        let _ = out.write_str(&time_left(state.elapsed(), state.pos(), state.eta()));
    })
}

/// `ETA 3m`, or nothing while the transfer is too young (or too still) to estimate.
fn time_left(elapsed: Duration, transferred: u64, estimate: Duration) -> String {
    match elapsed >= ESTIMATE_AFTER && transferred > 0 {
        true => format!("ETA {:#}", HumanDuration(estimate)),
        false => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_time_left_is_guessed_before_the_transfer_has_a_rate() {
        let three_minutes = Duration::from_secs(180);
        assert_eq!(time_left(Duration::from_millis(250), 1_000, three_minutes), "");
        assert_eq!(time_left(Duration::from_secs(10), 0, three_minutes), "");
        assert_eq!(time_left(Duration::from_secs(10), 1_000, three_minutes), "ETA 3m");
    }

    #[test]
    fn a_new_phase_shows_its_own_numbers() {
        let board = Board { bars: MultiProgress::with_draw_target(ProgressDrawTarget::hidden()), plain: false };
        let file = board.file("clip.mp4");
        file.transfer("uploading", Some(80_000_000));
        file.advance(80_000_000);
        assert_eq!((file.bar().position(), file.bar().length()), (80_000_000, Some(80_000_000)));
        file.converting("converting", Some(12.0));
        assert_eq!((file.bar().position(), file.bar().length()), (12, Some(100)));
        assert_eq!(file.bar().message(), "converting");
    }
}
