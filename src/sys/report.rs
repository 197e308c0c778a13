//! What people see on stderr while venvbake works.
//!
//! The display is chosen once, at start-up: on a terminal an indicatif
//! spinner shows the current step and the command's latest line; without one
//! (Packer, cloud-init, CI logs) every step is a plain line with its duration,
//! and command output is streamed indented, with no `\r` and no colour codes.
//! stdout is never written here: it carries only data.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Progress {
    /// Spinner on a terminal, plain lines otherwise.
    Auto,
    /// Plain step lines with durations (what Packer logs show).
    Plain,
    /// Only warnings and errors.
    Quiet,
}

pub struct Reporter {
    bar: Option<ProgressBar>,
    quiet: bool,
    step: Option<(String, Instant)>,
    /// A transfer under way (terminal only): files done and in all.
    transfer: Option<(usize, usize)>,
}

/// The spinner's look between steps and transfers.
fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg} {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

impl Reporter {
    pub fn new(mode: Progress) -> Self {
        let tty = std::io::stderr().is_terminal();
        let bar = (mode == Progress::Auto && tty).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(spinner_style());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Reporter {
            bar,
            quiet: mode == Progress::Quiet,
            step: None,
            transfer: None,
        }
    }

    fn say(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{line}");
            }
        }
    }

    /// Start a step; the previous one (if any) is finished first.
    pub fn step(&mut self, title: impl Into<String>) {
        self.finish();
        let title = title.into();
        match &self.bar {
            Some(bar) => {
                bar.set_prefix(title.clone());
                bar.set_message("");
            }
            None if !self.quiet => self.say(&format!("venvbake: {title}")),
            None => {}
        }
        self.step = Some((title, Instant::now()));
    }

    /// Finish the current step, printing its duration. The spinner then
    /// shows no step until the next one starts.
    pub fn finish(&mut self) {
        if let Some((title, started)) = self.step.take() {
            if !self.quiet {
                self.say(&format!(
                    "venvbake: {title}: done in {:.2}s",
                    started.elapsed().as_secs_f64()
                ));
            }
            if let Some(bar) = &self.bar {
                bar.set_prefix("");
                bar.set_message("");
            }
        }
    }

    /// The work is done: finish the step and take the spinner off the
    /// screen, before anything is written to stdout (on a terminal both
    /// land on one screen, and a spinner drawn over the data would leave
    /// its last frame behind).
    pub fn close(&mut self) {
        self.finish();
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    /// A line a command printed (during a transfer, a line above the bar).
    pub fn output(&self, line: &str) {
        match &self.bar {
            Some(bar) if self.transfer.is_some() => bar.println(format!("    {line}")),
            Some(bar) => bar.set_message(line.to_string()),
            None if !self.quiet => self.say(&format!("    {line}")),
            None => {}
        }
    }

    /// A transfer of `files` files begins: on a terminal the spinner shows
    /// bytes, rate and files done until [`Reporter::end_transfer`]; plain
    /// output shows only the lines the transfer prints.
    pub fn begin_transfer(&mut self, files: usize) {
        if let Some(bar) = &self.bar {
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {prefix:.bold} {bytes} at {bytes_per_sec}, {msg} {elapsed}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_position(0);
            bar.set_message(format!("0 of {files} files"));
            self.transfer = Some((0, files));
        }
    }

    /// `n` more bytes arrived.
    pub fn transfer_bytes(&self, n: u64) {
        if let (Some(bar), Some(_)) = (&self.bar, self.transfer) {
            bar.inc(n);
        }
    }

    /// One more file of the transfer is done.
    pub fn transfer_file(&mut self) {
        if let (Some(bar), Some((done, all))) = (&self.bar, self.transfer.as_mut()) {
            *done += 1;
            bar.set_message(format!("{done} of {all} files"));
        }
    }

    pub fn end_transfer(&mut self) {
        if let (Some(bar), Some(_)) = (&self.bar, self.transfer.take()) {
            bar.set_style(spinner_style());
            bar.set_message("");
        }
    }

    pub fn info(&self, line: &str) {
        if !self.quiet {
            self.say(&format!("venvbake: {line}"));
        }
    }

    pub fn warn(&self, line: &str) {
        self.say(&format!("venvbake: warning: {line}"));
    }

    /// Stop the spinner without finishing the step (used before an error is printed).
    pub fn abandon(&mut self) {
        self.step = None;
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
