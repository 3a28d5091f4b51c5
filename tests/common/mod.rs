//! Running QEMU from integration tests: build once, boot with a deadline,
//! keep the whole console log, and fail with it attached.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

static BUILD: Once = Once::new();
static FETCH: Once = Once::new();

/// Build the hypervisor and test guests (once per test binary).
/// `HV_TEST_PREBUILT=1` uses the images already in `.cache/images` (to run
/// new tests against an older hypervisor, e.g. to see a regression test fail).
pub fn build_images() {
    BUILD.call_once(|| {
        if std::env::var_os("HV_TEST_PREBUILT").is_some() {
            return;
        }
        let status = Command::new(root().join("tools/build"))
            .status()
            .expect("run tools/build");
        assert!(status.success(), "tools/build failed");
    });
}

/// Fetch the Linux guest (once per test binary).
pub fn fetch_linux() {
    FETCH.call_once(|| {
        let status = Command::new(root().join("tools/fetch-guest"))
            .stdout(Stdio::null())
            .status()
            .expect("run tools/fetch-guest");
        assert!(status.success(), "tools/fetch-guest failed");
    });
}

/// What one QEMU run produced.
pub struct Run {
    pub output: String,
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub elapsed: Duration,
    pub log_path: PathBuf,
}

/// Whether a console line is the hypervisor's: only hypervisor lines start
/// with `[hv` (the hypervisor escapes guest lines that would), so facts about
/// the hypervisor (counters, power-off, panics, boot failures) are read from
/// these lines only, never from text a guest could have written.
pub fn is_hv_line(line: &str) -> bool {
    line.starts_with("[hv")
}

impl Run {
    /// The hypervisor's lines (see [`is_hv_line`]).
    pub fn hv_lines(&self) -> impl Iterator<Item = &str> {
        self.output.lines().filter(|l| is_hv_line(l))
    }

    /// Fail unless a hypervisor line contains `needle`.
    pub fn assert_hv_line(&self, needle: &str) {
        assert!(
            self.hv_lines().any(|l| l.contains(needle)),
            "no hypervisor line with {needle:?}\n{}",
            self.tail(80)
        );
    }

    /// The `name=value` counters of the hypervisor's last line starting
    /// with `prefix` (e.g. `[hv] exits:`), if there is one.
    pub fn hv_counters(&self, prefix: &str) -> Option<std::collections::BTreeMap<String, u64>> {
        let line = self.hv_lines().filter(|l| l.starts_with(prefix)).last()?;
        Some(
            line[prefix.len()..]
                .split_whitespace()
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    Some((k.to_string(), v.parse().ok()?))
                })
                .collect(),
        )
    }

    /// One counter of the hypervisor's `[hv] exits:` or `[hv] events:` line.
    pub fn hv_counter(&self, prefix: &str, name: &str) -> u64 {
        let counters = self
            .hv_counters(prefix)
            .unwrap_or_else(|| panic!("no {prefix:?} line\n{}", self.tail(40)));
        *counters
            .get(name)
            .unwrap_or_else(|| panic!("no counter {name} in {prefix:?}: {counters:?}"))
    }

    /// The run's log, for failure messages: the last `lines` lines.
    pub fn tail(&self, lines: usize) -> String {
        let all: Vec<&str> = self.output.lines().collect();
        let start = all.len().saturating_sub(lines);
        format!(
            "--- console ({}), last {} lines ---\n{}",
            self.log_path.display(),
            all.len() - start,
            all[start..].join("\n")
        )
    }

    /// Fail unless the run ended by itself with exit status 0 in time.
    pub fn assert_clean_exit(&self) {
        assert!(
            !self.timed_out,
            "QEMU timed out after {:?}\n{}",
            self.elapsed,
            self.tail(60)
        );
        assert_eq!(
            self.exit_code,
            Some(0),
            "QEMU exit status\n{}",
            self.tail(60)
        );
        assert!(
            !self.hv_lines().any(|l| l.contains("] PANIC")),
            "hypervisor panic in the log\n{}",
            self.tail(60)
        );
        assert!(
            !self.output.contains("GUEST PANIC"),
            "guest panic in the log\n{}",
            self.tail(60)
        );
        assert!(
            !self.output.contains("Kernel panic"),
            "guest kernel panic\n{}",
            self.tail(60)
        );
    }

    /// Fail unless `needle` appears in the console output.
    pub fn assert_line(&self, needle: &str) {
        assert!(
            self.output.contains(needle),
            "missing {needle:?}\n{}",
            self.tail(80)
        );
    }
}

/// Boot with `tools/boot ARGS`, killing QEMU after `timeout`.
pub fn boot(name: &str, args: &[&str], timeout: Duration) -> Run {
    boot_with_input(name, args, &[], timeout)
}

/// Like [`boot`], typing each `(after, text)` on the console once `after`
/// has appeared in the output after the place where the previous step's
/// `after` appeared (so the same text can be waited for twice; `\n` in
/// `text` is Enter).
pub fn boot_with_input(
    name: &str,
    args: &[&str],
    input: &[(&str, &str)],
    timeout: Duration,
) -> Run {
    boot_inner(name, args, input, None, timeout)
}

/// Like [`boot`], but kill QEMU (SIGKILL: no clean shutdown of anything)
/// as soon as a whole output line contains `stop_at`.
pub fn boot_until(name: &str, args: &[&str], stop_at: &str, timeout: Duration) -> Run {
    boot_inner(name, args, &[], Some(stop_at), timeout)
}

fn boot_inner(
    name: &str,
    args: &[&str],
    input: &[(&str, &str)],
    stop_at: Option<&str>,
    timeout: Duration,
) -> Run {
    let log_dir = root().join("target/qemu-logs");
    std::fs::create_dir_all(&log_dir).expect("create log dir");
    let log_path = log_dir.join(format!("{name}.log"));
    let log_file = std::fs::File::create(&log_path).expect("create log");
    let start = Instant::now();
    let mut child = Command::new(root().join("tools/boot"))
        .args(args)
        .stdin(if input.is_empty() {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stdout(log_file.try_clone().expect("clone log"))
        .stderr(log_file)
        .spawn()
        .expect("start tools/boot");
    let mut stdin = child.stdin.take();
    let mut next_input = 0;
    let mut search_from = 0;
    let mut timed_out = false;
    let status = loop {
        if let (Some(pipe), Some((after, text))) = (stdin.as_mut(), input.get(next_input)) {
            let so_far = std::fs::read_to_string(&log_path).unwrap_or_default();
            if let Some(at) = so_far.get(search_from..).and_then(|rest| rest.find(after)) {
                search_from += at + after.len();
                use std::io::Write;
                let _ = pipe.write_all(text.replace("\\n", "\n").as_bytes());
                let _ = pipe.flush();
                next_input += 1;
            }
        }
        if let Some(status) = child.try_wait().expect("wait for QEMU") {
            break Some(status);
        }
        // A hypervisor that cannot go on halts; do not wait for the deadline.
        let so_far = std::fs::read_to_string(&log_path).unwrap_or_default();
        // Whole lines only: a line still being written may be cut short.
        let complete = &so_far[..so_far.rfind('\n').unwrap_or(0)];
        let stop_here = stop_at.is_some_and(|marker| complete.lines().any(|l| l.contains(marker)));
        if stop_here
            || complete.lines().any(|l| {
                let l = l.trim_start_matches('\r');
                is_hv_line(l) && (l.contains("boot failed") || l.contains("] PANIC"))
            })
        {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        if start.elapsed() > timeout {
            timed_out = true;
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut output = String::new();
    let _ = std::fs::File::open(&log_path).and_then(|mut f| f.read_to_string(&mut output));
    Run {
        output: output.replace('\r', ""),
        exit_code: status.and_then(|s| s.code()),
        timed_out,
        elapsed: start.elapsed(),
        log_path: log_path.to_path_buf(),
    }
}

pub fn exists(path: &Path) -> bool {
    path.exists()
}

/// Write a VM configuration file under target/vm-configs for a test to boot.
#[allow(dead_code)] // not every test file boots configurations
pub fn config_file(name: &str, text: &str) -> PathBuf {
    let dir = root().join("target/vm-configs");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}
