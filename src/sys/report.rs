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
}

impl Reporter {
    pub fn new(mode: Progress) -> Self {
        let tty = std::io::stderr().is_terminal();
        let bar = (mode == Progress::Auto && tty).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Reporter {
            bar,
            quiet: mode == Progress::Quiet,
            step: None,
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

    /// A line a command printed.
    pub fn output(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(line.to_string()),
            None if !self.quiet => self.say(&format!("    {line}")),
            None => {}
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
