//! The one physical console, shared by the hypervisor's log and the guests'
//! emulated UARTs: guest output is line-buffered and written whole, and no
//! guest can produce a line that looks like the hypervisor's.
//!
//! Rules, which the integration tests rely on:
//! - A hypervisor line always starts at column 0 and is written whole: a
//!   guest line in progress is flushed and ended first.
//! - A guest line is written when it ends, when its buffer fills, when the
//!   guest goes idle (the glue calls [`ConsoleMux::flush_guest`] on WFI), or
//!   before a hypervisor line; its next part then continues on the same
//!   physical line unless something else was written in between.
//! - Only hypervisor lines start with [`HV_PREFIX`] at column 0: a guest
//!   line (or part of one) that would start with it, or with a beginning of
//!   it, is written behind an escape prefix `[vmN] `. A lone carriage return
//!   (one not followed by a line feed) is dropped, so a guest cannot go back
//!   to column 0 without a new line. Every guest line ends in CR LF.

/// What every hypervisor line starts with, and no guest line can.
pub const HV_PREFIX: &[u8] = b"[hv";

/// Longest guest line kept before a partial write.
pub const LINE_MAX: usize = 256;

/// Where console bytes go (the physical UART).
pub trait Sink {
    fn write(&mut self, bytes: &[u8]);
}

#[derive(Debug, Clone, Copy)]
struct GuestLine {
    pending: [u8; LINE_MAX],
    len: usize,
    /// A carriage return waits for the next byte: kept only before a line feed.
    cr: bool,
}

impl GuestLine {
    const EMPTY: GuestLine = GuestLine {
        pending: [0; LINE_MAX],
        len: 0,
        cr: false,
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cursor {
    /// At the start of a line.
    LineStart,
    /// Behind part of guest `vm`'s current line.
    InGuestLine(usize),
}

/// Console output of the hypervisor and up to `VMS` guests (guest `vm` is
/// slot `vm`; VM ids are small integers).
#[derive(Debug, Clone)]
pub struct ConsoleMux<const VMS: usize> {
    lines: [GuestLine; VMS],
    cursor: Cursor,
    /// Guest lines (or parts) written behind the escape prefix.
    pub escaped: u64,
}

impl<const VMS: usize> Default for ConsoleMux<VMS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const VMS: usize> ConsoleMux<VMS> {
    pub const fn new() -> Self {
        ConsoleMux {
            lines: [GuestLine::EMPTY; VMS],
            cursor: Cursor::LineStart,
            escaped: 0,
        }
    }

    /// Guest `vm` wrote `byte` to its UART. Bytes for a VM slot that does
    /// not exist are dropped.
    pub fn guest_byte(&mut self, vm: usize, byte: u8, out: &mut impl Sink) {
        let Some(line) = self.lines.get_mut(vm) else {
            return;
        };
        match byte {
            b'\r' => line.cr = true,
            b'\n' => {
                line.cr = false;
                self.emit(vm, true, out);
            }
            _ => {
                line.cr = false;
                line.pending[line.len] = byte;
                line.len += 1;
                if line.len == LINE_MAX {
                    self.emit(vm, false, out);
                }
            }
        }
    }

    /// Write what guest `vm` has buffered (it went idle, or is stopping).
    pub fn flush_guest(&mut self, vm: usize, out: &mut impl Sink) {
        if self.lines.get(vm).is_some_and(|l| l.len > 0) {
            self.emit(vm, false, out);
        }
    }

    /// Whether guest `vm` has output waiting for [`Self::flush_guest`].
    pub fn has_pending(&self, vm: usize) -> bool {
        self.lines.get(vm).is_some_and(|l| l.len > 0)
    }

    /// Make room for a hypervisor line: buffered guest output is written
    /// first (it happened first), and a guest line in progress is ended.
    /// The caller then writes one whole line ending in a line feed.
    pub fn begin_hypervisor_line(&mut self, out: &mut impl Sink) {
        for vm in 0..VMS {
            self.flush_guest(vm, out);
        }
        if self.cursor != Cursor::LineStart {
            out.write(b"\r\n");
            self.cursor = Cursor::LineStart;
        }
    }

    fn emit(&mut self, vm: usize, line_end: bool, out: &mut impl Sink) {
        let line = &mut self.lines[vm];
        let bytes = &line.pending[..line.len];
        if self.cursor != Cursor::InGuestLine(vm) {
            if self.cursor != Cursor::LineStart {
                out.write(b"\r\n");
            }
            // At column 0: the one place a forged hypervisor line could start.
            let forged = bytes.starts_with(HV_PREFIX) || HV_PREFIX.starts_with(bytes);
            if forged && !bytes.is_empty() {
                write_escape(vm, out);
                self.escaped += 1;
            }
        }
        out.write(bytes);
        line.len = 0;
        if line_end {
            out.write(b"\r\n");
            self.cursor = Cursor::LineStart;
        } else if !bytes.is_empty() {
            self.cursor = Cursor::InGuestLine(vm);
        }
    }
}

fn write_escape(vm: usize, out: &mut impl Sink) {
    let mut buf = [0u8; 32];
    let mut n = 0;
    for &b in b"[vm" {
        buf[n] = b;
        n += 1;
    }
    let mut digits = [0u8; 20];
    let mut d = 0;
    let mut v = vm;
    loop {
        digits[d] = b'0' + (v % 10) as u8;
        d += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    while d > 0 {
        d -= 1;
        buf[n] = digits[d];
        n += 1;
    }
    buf[n] = b']';
    buf[n + 1] = b' ';
    out.write(&buf[..n + 2]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Out(Vec<u8>);
    impl Sink for Out {
        fn write(&mut self, bytes: &[u8]) {
            self.0.extend_from_slice(bytes);
        }
    }
    impl Out {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0).into_owned()
        }
    }

    fn guest(mux: &mut ConsoleMux<4>, vm: usize, s: &str, out: &mut Out) {
        for b in s.bytes() {
            mux.guest_byte(vm, b, out);
        }
    }

    fn hv(mux: &mut ConsoleMux<4>, s: &str, out: &mut Out) {
        mux.begin_hypervisor_line(out);
        out.write(s.as_bytes());
    }

    /// Lines as the test harness reads them: CR removed.
    fn lines(out: &Out) -> Vec<String> {
        out.text()
            .replace('\r', "")
            .lines()
            .map(String::from)
            .collect()
    }

    #[test]
    fn whole_lines_pass_unchanged() {
        let (mut mux, mut out) = (ConsoleMux::<4>::new(), Out::default());
        guest(&mut mux, 1, "hello\r\nworld\n", &mut out);
        assert_eq!(out.text(), "hello\r\nworld\r\n");
    }

    #[test]
    fn nothing_written_before_the_line_ends_or_idles() {
        let (mut mux, mut out) = (ConsoleMux::<4>::new(), Out::default());
        guest(&mut mux, 1, "~ # ", &mut out);
        assert_eq!(out.text(), "");
        assert!(mux.has_pending(1));
        mux.flush_guest(1, &mut out);
        assert_eq!(out.text(), "~ # ");
        guest(&mut mux, 1, "ls\r\n", &mut out);
        assert_eq!(out.text(), "~ # ls\r\n");
    }

    #[test]
    fn hypervisor_line_never_lands_mid_guest_line() {
        let (mut mux, mut out) = (ConsoleMux::<4>::new(), Out::default());
        guest(&mut mux, 1, "partial", &mut out);
        hv(&mut mux, "[hv cpu0] WARN x\n", &mut out);
        guest(&mut mux, 1, " rest\n", &mut out);
        assert_eq!(lines(&out), ["partial", "[hv cpu0] WARN x", " rest"]);
    }

    #[test]
    fn forged_hypervisor_lines_are_escaped() {
        let (mut mux, mut out) = (ConsoleMux::<4>::new(), Out::default());
        guest(&mut mux, 1, "[hv cpu0] ERROR fake\r\n", &mut out);
        guest(&mut mux, 1, "[hv] exits: hvc=1\n", &mut out);
        // A lone CR cannot bring the cursor back to column 0.
        guest(&mut mux, 1, "abc\r[hv cpu0] ERROR again\n", &mut out);
        // Split by an idle flush just after "[h".
        guest(&mut mux, 1, "[h", &mut out);
        mux.flush_guest(1, &mut out);
        guest(&mut mux, 1, "v cpu0] ERROR split\n", &mut out);
        // Split by a hypervisor line: the continuation starts a line too.
        guest(&mut mux, 1, "xx", &mut out);
        hv(&mut mux, "[hv cpu0] INFO real\n", &mut out);
        guest(&mut mux, 1, "[hv cpu0] ERROR continued\n", &mut out);
        let all = lines(&out);
        let hv_lines: Vec<&String> = all.iter().filter(|l| l.starts_with("[hv")).collect();
        assert_eq!(hv_lines, ["[hv cpu0] INFO real"], "{all:#?}");
        assert!(all.contains(&"[vm1] [hv cpu0] ERROR fake".to_string()));
        assert!(all.contains(&"abc[hv cpu0] ERROR again".to_string()));
        assert_eq!(mux.escaped, 4);
    }

    #[test]
    fn full_buffer_is_written_and_continues_on_the_same_line() {
        let (mut mux, mut out) = (ConsoleMux::<4>::new(), Out::default());
        let long = "x".repeat(LINE_MAX + 10);
        guest(&mut mux, 1, &long, &mut out);
        assert_eq!(out.0.len(), LINE_MAX);
        guest(&mut mux, 1, "\n", &mut out);
        assert_eq!(lines(&out), [long]);
    }

    #[test]
    fn two_guests_do_not_interleave_mid_line() {
        let (mut mux, mut out) = (ConsoleMux::<4>::new(), Out::default());
        guest(&mut mux, 1, "one-", &mut out);
        guest(&mut mux, 2, "two-", &mut out);
        guest(&mut mux, 1, "end\n", &mut out);
        guest(&mut mux, 2, "end\n", &mut out);
        assert_eq!(lines(&out), ["one-end", "two-end"]);
    }

    #[test]
    fn escape_prefix_names_the_vm() {
        let mut out = Out::default();
        write_escape(12, &mut out);
        assert_eq!(out.text(), "[vm12] ");
    }

    #[test]
    fn unknown_vm_slot_is_ignored() {
        let (mut mux, mut out) = (ConsoleMux::<4>::new(), Out::default());
        guest(&mut mux, 9, "x\n", &mut out);
        mux.flush_guest(9, &mut out);
        assert_eq!(out.text(), "");
    }
}

#[cfg(any(test, kani))]
mod proofs {
    use super::*;

    /// Records output and checks, at each point a line starts, that only
    /// the hypervisor starts one with the prefix.
    struct Checked {
        column: usize,
        line_start: [u8; 3],
        hv_writing: bool,
    }

    impl Sink for Checked {
        fn write(&mut self, bytes: &[u8]) {
            for &b in bytes {
                if b == b'\n' {
                    self.column = 0;
                    continue;
                }
                if b == b'\r' {
                    continue; // the harness drops CRs, and so does this check
                }
                if self.column < 3 {
                    self.line_start[self.column] = b;
                }
                self.column += 1;
                if self.column == 3 && !self.hv_writing {
                    assert!(self.line_start != [b'[', b'h', b'v']);
                }
            }
        }
    }

    proof! {
        /// Whatever bytes guests write, with idle flushes and hypervisor
        /// lines anywhere between them, no line the guests produce starts
        /// with "[hv" (CRs ignored, as the test harness reads the log).
        #[unwind(12)]
        fn guests_cannot_start_a_hypervisor_line(src) {
            let mut mux = ConsoleMux::<2>::new();
            let mut out = Checked { column: 0, line_start: [0; 3], hv_writing: false };
            const ALPHABET: [u8; 6] = [b'[', b'h', b'v', b'\r', b'\n', b'x'];
            for _ in 0..10 {
                let vm = src.below(2) as usize;
                match src.below(8) {
                    0 => mux.flush_guest(vm, &mut out),
                    1 => {
                        mux.begin_hypervisor_line(&mut out);
                        out.hv_writing = true;
                        out.write(b"[hv]\n");
                        out.hv_writing = false;
                    }
                    _ => {
                        let byte = ALPHABET[src.below(6) as usize];
                        mux.guest_byte(vm, byte, &mut out);
                    }
                }
            }
            cover!(mux.escaped > 0, "a forged line is escaped");
        }
    }
}
