//! The import check: each requirement's top-level modules are imported by
//! the generation's own interpreter, the way Ansible will import them, so a
//! module that needs a missing system library or is broken stops the build
//! before the switch.
//!
//! Work comes in groups (distributions that require one another, from
//! [`crate::target::dists::import_groups`]): one interpreter takes all of a group,
//! so imports they share are paid once. There is one interpreter per core;
//! modules are sent one at a time, so a crash names the module. A unit (one
//! distribution's modules) can wait for tokens: while the native installer
//! still compiles, a distribution is checked as soon as it and what it
//! requires are compiled ([`Check::done`]), which hides most of the check
//! behind the compilation. Until the check is closed (the compilers are
//! done) only [`EAGER`] interpreters work: the compilers have every core,
//! and another interpreter would mostly import the standard library again.
//! With nothing to wait for, the check simply runs over every group (a
//! stamp, a pip install).

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Condvar, Mutex};

use crate::sys::exec::{self, Cmd};

/// Imports each module named on its own line of stdin, reports an import
/// that fails, and prints [`NEXT`] after each, ready for the next one.
/// Warnings are not failures; `-B` keeps the check's own byte-code out of
/// the generation. It ends with `os._exit`: the interpreter's teardown would
/// free every module imported (for nothing, at the end of the build), and
/// would wait for any thread an import started.
const IMPORT_CHECK: &str = r#"
import importlib, os, sys
bad = 0
while True:
    name = sys.stdin.readline()
    if not name:
        break
    name = name.strip()
    try:
        importlib.import_module(name)
    except BaseException as exc:
        bad += 1
        print("import %s: %s: %s" % (name, type(exc).__name__, exc))
    print("venvbake-import-check: next", flush=True)
sys.stdout.flush()
sys.stderr.flush()
os._exit(1 if bad else 0)
"#;

/// Opened once, waited on by many: whether something is ready (`true`) or
/// will never be (`false`).
#[derive(Debug, Default)]
pub struct Gate {
    state: Mutex<Option<bool>>,
    opened: Condvar,
}

impl Gate {
    pub fn open(&self, ok: bool) {
        if let Ok(mut s) = self.state.lock() {
            *s = Some(ok);
        }
        self.opened.notify_all();
    }

    /// Wait until opened; what it was opened with.
    pub fn wait(&self) -> bool {
        let Ok(mut s) = self.state.lock() else {
            return false;
        };
        loop {
            if let Some(ok) = *s {
                return ok;
            }
            s = match self.opened.wait(s) {
                Ok(s) => s,
                Err(_) => return false,
            };
        }
    }
}

/// How many interpreters work before [`Check::close`]; the rest start after
/// it. With the compilers on every core, a second interpreter made the
/// `ansible` build 3% slower (interleaved A/B on tmpfs, 9 runs each: median
/// 917 ms with one per core from the start, 890 ms with one).
pub const EAGER: usize = 1;

/// How a check ended: `Ok` with what the interpreters printed although
/// nothing failed (warnings at import: worth a line in the log), or `Err`
/// with what the failing ones printed.
pub type Outcome = Result<Vec<String>, Vec<String>>;

/// What [`IMPORT_CHECK`] prints when it is ready for the next module.
const NEXT: &str = "venvbake-import-check: next";

/// The modules of one distribution, and the tokens they wait for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unit {
    pub modules: Vec<String>,
    pub waits: Vec<usize>,
}

/// The import check of one generation, fed groups of [`Unit`]s and tokens
/// from other threads while [`Check::run`] works through them.
pub struct Check<'a> {
    /// The interpreter's command as the log shows it.
    python: String,
    cmd: Cmd,
    /// Opens when the interpreter exists (the venv may still be being made).
    gate: Option<&'a Gate>,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    groups: Vec<Group>,
    done: BTreeSet<usize>,
    /// No more groups or tokens will come.
    closed: bool,
}

struct Group {
    units: VecDeque<Unit>,
    /// The worker that took this group; only it takes the rest.
    owner: Option<usize>,
}

impl<'a> Check<'a> {
    /// The check, run by the interpreter `cmd` names (the generation's,
    /// with its chroot and clean environment) once `gate` (if any) opens.
    pub fn new(cmd: Cmd, gate: Option<&'a Gate>) -> Self {
        Check {
            python: cmd.display(),
            cmd: cmd.args(["-I", "-B", "-c", IMPORT_CHECK]),
            gate,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        }
    }

    /// Every group at once, nothing to wait for: check now.
    pub fn now(cmd: Cmd, groups: Vec<Vec<Unit>>) -> Outcome {
        let check = Check::new(cmd, None);
        check.add(groups);
        check.close();
        check.run()
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        if let Ok(mut s) = self.state.lock() {
            f(&mut s);
        }
        self.changed.notify_all();
    }

    /// More groups to check, biggest first.
    pub fn add(&self, groups: Vec<Vec<Unit>>) {
        self.update(|s| {
            s.groups.extend(
                groups
                    .into_iter()
                    .filter(|g| g.iter().any(|u| !u.modules.is_empty()))
                    .map(|g| Group {
                        units: g.into(),
                        owner: None,
                    }),
            )
        });
    }

    /// Units waiting for `token` may go.
    pub fn done(&self, token: usize) {
        self.update(|s| {
            s.done.insert(token);
        });
    }

    /// Nothing more will come: what still waits never goes, and the workers
    /// stop when they are through what can.
    pub fn close(&self) {
        self.update(|s| s.closed = true);
    }

    /// The result no longer matters: the workers stop after their current module.
    pub fn abandon(&self) {
        self.update(|s| {
            s.groups.clear();
            s.closed = true;
        });
    }

    /// Worker `w`'s next unit: one of its own groups' first, else the first
    /// ready one of a group nobody has taken (which becomes its own), else,
    /// once closed, half of another worker's ([`steal`]); waits while none
    /// is ready and more may come. `None`: nothing more for it.
    fn next(&self, w: usize) -> Option<Unit> {
        let mut s = self.state.lock().ok()?;
        loop {
            if w >= EAGER && !s.closed {
                s = self.changed.wait(s).ok()?;
                continue;
            }
            let done = &s.done;
            let ready = |u: &Unit| u.waits.iter().all(|t| done.contains(t));
            let pick = [Some(w), None].into_iter().find_map(|owner| {
                s.groups.iter().enumerate().find_map(|(g, group)| {
                    let k = group.units.iter().position(ready)?;
                    (group.owner == owner).then_some((g, k))
                })
            });
            if let Some((g, k)) = pick {
                let group = &mut s.groups[g];
                group.owner = Some(w);
                return group.units.remove(k);
            }
            if s.closed {
                if steal(&mut s, w) {
                    continue;
                }
                return None;
            }
            s = self.changed.wait(s).ok()?;
        }
    }

    /// Check until closed and through: one interpreter per core, each
    /// started when it first has a module. Returns what failing imports
    /// printed (the last lines of each failing interpreter), or when none
    /// failed, everything the interpreters printed.
    pub fn run(&self) -> Outcome {
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 16);
        let results: Vec<(Vec<String>, bool)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|w| s.spawn(move || self.work(w)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        (vec!["the import check thread failed".to_string()], true)
                    })
                })
                .collect()
        });
        let mut failures = Vec::new();
        let mut said = Vec::new();
        for (printed, failed) in results {
            if failed {
                let skip = printed.len().saturating_sub(exec::TAIL_LINES);
                failures.extend(printed.into_iter().skip(skip));
            } else {
                said.extend(printed);
            }
        }
        if failures.is_empty() {
            Ok(said)
        } else {
            Err(failures)
        }
    }

    /// One worker: what its interpreter printed, and whether it failed.
    fn work(&self, w: usize) -> (Vec<String>, bool) {
        let mut mine: VecDeque<String> = VecDeque::new();
        // The next module for this worker, waiting for one if need be.
        let take = |mine: &mut VecDeque<String>| loop {
            if let Some(m) = mine.pop_front() {
                return Some(m);
            }
            mine.extend(self.next(w)?.modules);
        };
        let Some(first) = take(&mut mine) else {
            return (Vec::new(), false);
        };
        if self.gate.is_some_and(|g| !g.wait()) {
            // The venv was not made: its own error says why.
            return (Vec::new(), false);
        }
        let (input, pipe) = match std::io::pipe() {
            Ok(p) => p,
            Err(e) => {
                return (
                    vec![format!("could not open a pipe for the import check: {e}")],
                    true,
                )
            }
        };
        let mut pipe = Some(pipe);
        let send = |pipe: &mut Option<std::io::PipeWriter>, m: Option<String>| {
            use std::io::Write;
            if let (Some(m), Some(p)) = (m, pipe.as_mut()) {
                if p.write_all(format!("{m}\n").as_bytes()).is_ok() {
                    return Some(m);
                }
            }
            // Closing the input ends the interpreter.
            *pipe = None;
            None
        };
        let mut current = send(&mut pipe, Some(first));
        let mut printed = Vec::new();
        let r = exec::run_fed(&self.cmd, input, 0, &mut |l| {
            if l == NEXT {
                let m = take(&mut mine);
                current = send(&mut pipe, m);
            } else {
                printed.push(l.to_string());
            }
        });
        match r {
            Ok(_) => (printed, false),
            // A crash prints little or nothing: say which import, and how it ended.
            Err(e) => {
                match &current {
                    Some(m) => printed.push(format!("import {m}: the interpreter {}", e.outcome())),
                    None if printed.is_empty() => printed.push(format!(
                        "the import check ({}) {}",
                        self.python,
                        e.outcome()
                    )),
                    None => {}
                }
                (printed, true)
            }
        }
    }
}

/// Fewer ready units than this in a group are not worth stealing: the
/// thief pays again for everything the stolen units import, which a busy
/// owner near its group's end has mostly loaded already. Interleaved A/B on
/// tmpfs against no stealing: from groups of 2 or more, the `ansible` stamp
/// took 1.16x as long (the large profile's stamp 0.82x); from 4 or more,
/// the `ansible` stamp 0.98x, its cold build 0.99x, the large stamp 0.92x.
const STEAL_MIN: usize = 4;

/// For worker `w`, which has nothing ready: of the group with the most
/// ready units that another worker owns, the back half of those units
/// becomes a group of `w`'s own. Distributions that require one another
/// are all one group (in a big profile most of them are), which would
/// leave the other cores idle; the owner keeps the front, what the back
/// requires, and the thief pays for those shared imports again. Only once
/// closed: no token comes later, so a stolen unit is ready for good.
fn steal(s: &mut State, w: usize) -> bool {
    let State { groups, done, .. } = s;
    let ready = |u: &Unit| u.waits.iter().all(|t| done.contains(t));
    let Some((n, g)) = groups
        .iter()
        .enumerate()
        .filter(|(_, g)| g.owner.is_some_and(|o| o != w))
        .map(|(i, g)| (g.units.iter().filter(|u| ready(u)).count(), i))
        .filter(|&(n, _)| n >= STEAL_MIN)
        .max()
    else {
        return false;
    };
    let mut take = n / 2;
    let mut kept = VecDeque::new();
    let mut taken = VecDeque::new();
    while let Some(u) = groups[g].units.pop_back() {
        if take > 0 && ready(&u) {
            take -= 1;
            taken.push_front(u);
        } else {
            kept.push_front(u);
        }
    }
    groups[g].units = kept;
    groups.push(Group {
        units: taken,
        owner: Some(w),
    });
    true
}

/// Abandons a [`Check`] when dropped, so its workers end on every path
/// (after its result was taken, that changes nothing).
pub struct Abandons<'c, 'a>(pub &'c Check<'a>);

impl Drop for Abandons<'_, '_> {
    fn drop(&mut self) {
        self.0.abandon();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(m: &str, waits: &[usize]) -> Unit {
        Unit {
            modules: vec![m.into()],
            waits: waits.to_vec(),
        }
    }

    fn check() -> Check<'static> {
        Check::new(Cmd::new("python3", &[]), None)
    }

    #[test]
    fn a_worker_keeps_its_group_and_units_wait_for_their_tokens() {
        let c = check();
        c.add(vec![
            vec![unit("a1", &[1]), unit("a2", &[1, 2])],
            vec![unit("b", &[]), unit("b2", &[4])],
            vec![unit("c", &[3])],
        ]);
        // Worker 0 finds nothing of group A ready, so it takes group B.
        assert_eq!(c.next(0).unwrap().modules, ["b"]);
        c.done(1);
        // Group A's first unit is ready; worker 0 takes it (b2 waits).
        assert_eq!(c.next(0).unwrap().modules, ["a1"]);
        c.done(2);
        c.done(3);
        c.close();
        // Once closed, the other workers start: worker 1 gets group C, the
        // only one not taken; groups A and B stay worker 0's.
        assert_eq!(c.next(1).unwrap().modules, ["c"]);
        assert!(c.next(1).is_none());
        assert_eq!(c.next(0).unwrap().modules, ["a2"]);
        // b2 never got its token: after close it never goes.
        assert!(c.next(0).is_none());
    }

    #[test]
    fn an_idle_worker_takes_the_back_half_of_a_busy_ones_big_group() {
        let c = check();
        let mut group: Vec<Unit> = (0..10).map(|i| unit(&format!("a{i}"), &[])).collect();
        group.push(unit("never", &[9]));
        c.add(vec![group]);
        assert_eq!(c.next(0).unwrap().modules, ["a0"]);
        // Before the close nothing is stolen (worker 1 is not eager either).
        c.close();
        // Nine ready units left: worker 1 takes the back four, in order.
        assert_eq!(c.next(1).unwrap().modules, ["a6"]);
        assert_eq!(c.next(0).unwrap().modules, ["a1"]);
        for i in 7..10 {
            assert_eq!(c.next(1).unwrap().modules, [format!("a{i}")]);
        }
        // Worker 0 has four left (a2..a5): worker 1 takes a4 and a5.
        assert_eq!(c.next(1).unwrap().modules, ["a4"]);
        assert_eq!(c.next(0).unwrap().modules, ["a2"]);
        assert_eq!(c.next(0).unwrap().modules, ["a3"]);
        // Three left among both: too few to steal.
        assert!(c.next(0).is_none(), "what never got its token never goes");
        assert_eq!(c.next(1).unwrap().modules, ["a5"]);
        assert!(c.next(1).is_none());
    }

    #[test]
    fn until_closed_only_the_eager_workers_work() {
        let c = check();
        c.add(vec![vec![unit("x", &[])], vec![unit("y", &[])]]);
        std::thread::scope(|s| {
            let late = s.spawn(|| c.next(EAGER).map(|u| u.modules));
            assert_eq!(c.next(0).unwrap().modules, ["x"]);
            std::thread::sleep(std::time::Duration::from_millis(20));
            assert!(!late.is_finished(), "worker {EAGER} started before close");
            c.close();
            assert_eq!(late.join().unwrap(), Some(vec!["y".to_string()]));
        });
    }

    #[test]
    fn after_close_what_still_waits_never_goes() {
        let c = check();
        c.add(vec![vec![unit("x", &[7])]]);
        c.close();
        assert!(c.next(0).is_none());
    }

    #[test]
    fn a_waiting_worker_wakes_when_its_token_comes() {
        let c = check();
        c.add(vec![vec![unit("late", &[3])]]);
        std::thread::scope(|s| {
            let got = s.spawn(|| c.next(0).map(|u| u.modules));
            std::thread::sleep(std::time::Duration::from_millis(20));
            c.done(3);
            assert_eq!(got.join().unwrap(), Some(vec!["late".to_string()]));
        });
    }
}
