//! The one physical console, shared by the hypervisor's log and the guests'
//! emulated UARTs: guest output is line-buffered and written whole, and no
//! guest can produce a line that looks like the hypervisor's.
//!
//! Rules, which the integration tests rely on:
//! - A hypervisor line always starts at column 0 and is written whole: a
//!   guest line partly written is ended first; buffered guest text waits.
//! - A guest line is written when it ends, when its buffer fills, when the
//!   guest goes idle (the glue calls [`ConsoleMux::flush_guest`] on WFI);
//!   its next part then continues on the same
//!   physical line unless something else was written in between.
//! - Only hypervisor lines start with [`HV_PREFIX`] at column 0: a guest
//!   line (or part of one) that would start with it, or with a beginning of
//!   it, is written behind an escape prefix `[vmN] `. This holds both in a
//!   log read with carriage returns removed (as the tests read it) and on a
//!   terminal: after a lone carriage return (one not followed by a line
//!   feed; shells redraw their line with it) the guest's next text counts as
//!   starting a line, and anything else written after it starts a new line.
//!   Every guest line ends in CR LF.
//! - When several VMs share the console, the glue gives each a tag
//!   ([`ConsoleMux::set_tag`]): every line, or part of a line, of that VM
//!   then starts with `(name) ` (as Xen marks its guests' lines), so each
//!   physical line holds one VM's text and says whose it is. A tag starts
//!   with `(`, so a tagged line never starts with [`HV_PREFIX`] either.

/// What every hypervisor line starts with, and no guest line can.
pub const HV_PREFIX: &[u8] = b"[hv";

/// Longest guest line kept before a partial write. Small under Kani, so
/// the proof meets full buffers within its few steps.
pub const LINE_MAX: usize = if cfg!(kani) { 4 } else { 256 };

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

/// Longest tag: `(`, a VM name of up to 16 bytes, `) `.
pub const TAG_MAX: usize = 20;

/// What starts every line of one VM (empty: nothing).
#[derive(Debug, Clone, Copy)]
struct Tag {
    bytes: [u8; TAG_MAX],
    len: usize,
}

impl Tag {
    const NONE: Tag = Tag {
        bytes: [0; TAG_MAX],
        len: 0,
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cursor {
    /// At the start of a line.
    LineStart,
    /// Behind part of guest `vm`'s current line.
    InGuestLine(usize),
    /// Guest `vm` returned the carriage on its line: column 0 on a terminal,
    /// behind its text in the log.
    GuestReturned(usize),
}

/// Console output of the hypervisor and up to `VMS` guests (guest `vm` is
/// slot `vm`; VM ids are small integers).
#[derive(Debug, Clone)]
pub struct ConsoleMux<const VMS: usize> {
    lines: [GuestLine; VMS],
    tags: [Tag; VMS],
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
            tags: [Tag::NONE; VMS],
            cursor: Cursor::LineStart,
            escaped: 0,
        }
    }

    /// Start every line of guest `vm` with `(name) ` from now on. Bytes of
    /// `name` that are not printable, or a space, show as `?`; the name is
    /// cut to fit [`TAG_MAX`].
    pub fn set_tag(&mut self, vm: usize, name: &[u8]) {
        let Some(tag) = self.tags.get_mut(vm) else {
            return;
        };
        let name = &name[..name.len().min(TAG_MAX - 3)];
        tag.bytes[0] = b'(';
        for (slot, &b) in tag.bytes[1..].iter_mut().zip(name) {
            *slot = if b.is_ascii_graphic() { b } else { b'?' };
        }
        tag.bytes[1 + name.len()] = b')';
        tag.bytes[2 + name.len()] = b' ';
        tag.len = name.len() + 3;
    }

    /// Guest `vm` wrote `byte` to its UART. Bytes for a VM slot that does
    /// not exist are dropped.
    pub fn guest_byte(&mut self, vm: usize, byte: u8, out: &mut impl Sink) {
        let Some(line) = self.lines.get_mut(vm) else {
            return;
        };
        if line.cr && byte != b'\n' {
            line.cr = false;
            self.carriage_return(vm, out);
        }
        let line = &mut self.lines[vm];
        match byte {
            b'\r' => line.cr = true,
            b'\n' => {
                line.cr = false;
                self.emit(vm, true, out);
            }
            _ => {
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

    /// Make room for a hypervisor line: a guest line in progress on the
    /// console (partly written) is ended. Unfinished guest lines still in
    /// their buffers stay there, so a hypervisor line never cuts one in
    /// two (a guest printing while the hypervisor logs a flood of its
    /// faults still gets whole lines). The caller then writes one whole
    /// line ending in a line feed.
    pub fn begin_hypervisor_line(&mut self, out: &mut impl Sink) {
        if self.cursor != Cursor::LineStart {
            out.write(b"\r\n");
            self.cursor = Cursor::LineStart;
        }
    }

    /// A carriage return not followed by a line feed: write what is
    /// buffered, then the return if the line has text (at column 0 it
    /// changes nothing and is dropped).
    fn carriage_return(&mut self, vm: usize, out: &mut impl Sink) {
        self.flush_guest(vm, out);
        if matches!(self.cursor, Cursor::InGuestLine(v) | Cursor::GuestReturned(v) if v == vm) {
            out.write(b"\r");
            self.cursor = Cursor::GuestReturned(vm);
        }
    }

    fn emit(&mut self, vm: usize, line_end: bool, out: &mut impl Sink) {
        let line = &mut self.lines[vm];
        let bytes = &line.pending[..line.len];
        if self.cursor != Cursor::InGuestLine(vm) {
            if !matches!(self.cursor, Cursor::LineStart) && self.cursor != Cursor::GuestReturned(vm)
            {
                out.write(b"\r\n");
            }
            // At column 0: the one place a forged hypervisor line could start.
            let tag = self.tags[vm];
            if tag.len > 0 {
                out.write(&tag.bytes[..tag.len]);
            } else if could_start_hv_prefix(bytes) {
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

/// Whether guest text at column 0 starts with [`HV_PREFIX`], or with a
/// beginning of it that the guest's next bytes could complete.
fn could_start_hv_prefix(bytes: &[u8]) -> bool {
    // Slice patterns, not slice comparisons: no loops for the prover.
    matches!(bytes, [b'['] | [b'[', b'h'] | [b'[', b'h', b'v', ..])
}

/// `[vmN] ` for VM slot `vm` (slots are few: two digits at most).
fn write_escape(vm: usize, out: &mut impl Sink) {
    let digit = |d: usize| b'0' + (d % 10) as u8;
    if vm < 10 {
        out.write(&[b'[', b'v', b'm', digit(vm), b']', b' ']);
    } else {
        out.write(&[b'[', b'v', b'm', digit(vm / 10), digit(vm), b']', b' ']);
    }
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
    fn tagged_vms_get_their_name_on_every_line_part() {
        let (mut mux, mut out) = (ConsoleMux::<4>::new(), Out::default());
        mux.set_tag(1, b"web");
        mux.set_tag(2, b"a b\n");
        guest(&mut mux, 1, "GET /\n[hv] forged\nhal", &mut out);
        guest(&mut mux, 2, "x\n", &mut out);
        guest(&mut mux, 2, "unfin", &mut out);
        hv(&mut mux, "[hv] between\n", &mut out);
        guest(&mut mux, 1, "f\n", &mut out);
        guest(&mut mux, 2, "ished\n", &mut out);
        hv(&mut mux, "[hv] real\n", &mut out);
        assert_eq!(
            lines(&out),
            [
                "(web) GET /",
                "(web) [hv] forged",
                "(a?b?) x",
                "[hv] between",
                "(web) half",
                "(a?b?) unfinished",
                "[hv] real"
            ]
        );
        assert_eq!(mux.escaped, 0, "a tagged line needs no escape");
        let long = [b'n'; 40];
        mux.set_tag(3, &long);
        assert_eq!(mux.tags[3].len, TAG_MAX);
        mux.set_tag(9, b"nobody");
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
        // Still buffered: the hypervisor line goes first, the guest line stays whole.
        guest(&mut mux, 1, "partial", &mut out);
        hv(&mut mux, "[hv cpu0] WARN x\n", &mut out);
        guest(&mut mux, 1, " rest\n", &mut out);
        assert_eq!(lines(&out), ["[hv cpu0] WARN x", "partial rest"]);
        // Partly written already (the guest idled): the line is ended first.
        guest(&mut mux, 1, "~ # ", &mut out);
        mux.flush_guest(1, &mut out);
        hv(&mut mux, "[hv cpu0] WARN y\n", &mut out);
        guest(&mut mux, 1, "ls\n", &mut out);
        assert_eq!(
            lines(&out)[2..],
            ["~ # ", "[hv cpu0] WARN y", "ls"].map(String::from)
        );
    }

    #[test]
    fn forged_hypervisor_lines_are_escaped() {
        let (mut mux, mut out) = (ConsoleMux::<4>::new(), Out::default());
        guest(&mut mux, 1, "[hv cpu0] ERROR fake\r\n", &mut out);
        guest(&mut mux, 1, "[hv] exits: hvc=1\n", &mut out);
        // After a lone CR the text is at column 0 on a terminal: escaped too.
        guest(&mut mux, 1, "abc\r[hv cpu0] ERROR again\n", &mut out);
        // Split by an idle flush just after "[h".
        guest(&mut mux, 1, "[h", &mut out);
        mux.flush_guest(1, &mut out);
        guest(&mut mux, 1, "v cpu0] ERROR split\n", &mut out);
        // Partly written, then a hypervisor line: the continuation starts a line too.
        guest(&mut mux, 1, "xx", &mut out);
        mux.flush_guest(1, &mut out);
        hv(&mut mux, "[hv cpu0] INFO real\n", &mut out);
        guest(&mut mux, 1, "[hv cpu0] ERROR continued\n", &mut out);
        let all = lines(&out);
        let hv_lines: Vec<&String> = all.iter().filter(|l| l.starts_with("[hv")).collect();
        assert_eq!(hv_lines, ["[hv cpu0] INFO real"], "{all:#?}");
        assert!(all.contains(&"[vm1] [hv cpu0] ERROR fake".to_string()));
        assert!(all.contains(&"abc[vm1] [hv cpu0] ERROR again".to_string()));
        assert_eq!(mux.escaped, 5);
    }

    #[test]
    fn a_shell_redrawing_its_line_keeps_its_carriage_returns() {
        let (mut mux, mut out) = (ConsoleMux::<4>::new(), Out::default());
        guest(&mut mux, 1, "~ # ls", &mut out);
        guest(&mut mux, 1, "\r~ # pwd\x1b[K", &mut out);
        mux.flush_guest(1, &mut out);
        assert_eq!(out.text(), "~ # ls\r~ # pwd\x1b[K");
        // A hypervisor line after the return starts a new line.
        hv(&mut mux, "[hv cpu0] WARN x\n", &mut out);
        assert!(out.text().ends_with("\x1b[K\r\n[hv cpu0] WARN x\n"));
        // A return at column 0 is dropped.
        guest(&mut mux, 1, "\rok\n", &mut out);
        assert!(out.text().ends_with("WARN x\nok\r\n"));
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
        write_escape(3, &mut out);
        assert_eq!(out.text(), "[vm12] [vm3] ");
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
    use crate::verify::Source;

    /// The first columns of a line as one reader sees it.
    #[derive(Default)]
    struct View {
        column: usize,
        /// Columns written on this line so far (a return keeps them).
        width: usize,
        start: [u8; 3],
    }

    impl View {
        /// Put `b` at the cursor (over what was there).
        fn put(&mut self, b: u8) {
            if self.column < 3 {
                self.start[self.column] = b;
            }
            self.column += 1;
            self.width = self.width.max(self.column);
        }

        /// The line starts with "[hv".
        fn forged(&self) -> bool {
            self.width >= 3 && self.start == [b'[', b'h', b'v']
        }

        fn new_line(&mut self) {
            self.column = 0;
            self.width = 0;
        }
    }

    /// Records output and checks, as a log reader that drops CRs and as a
    /// terminal that returns to column 0 on CR, that only the hypervisor
    /// starts a line with the prefix (after each write: an escape prefix
    /// written over a returned line may pass through "[hv" on its way).
    #[derive(Default)]
    struct Checked {
        log: View,
        terminal: View,
        hv_writing: bool,
    }

    /// Longest single write: a full line buffer (the longest), an escape
    /// prefix, a hypervisor line.
    const WRITE_MAX: usize = LINE_MAX + 8;

    impl Sink for Checked {
        fn write(&mut self, bytes: &[u8]) {
            assert!(bytes.len() <= WRITE_MAX);
            // `take` gives the prover a constant loop bound.
            for &b in bytes.iter().take(WRITE_MAX) {
                match b {
                    b'\n' => {
                        self.log.new_line();
                        self.terminal.new_line();
                    }
                    b'\r' => self.terminal.column = 0,
                    b => {
                        self.log.put(b);
                        self.terminal.put(b);
                    }
                }
            }
            assert!(self.hv_writing || !(self.log.forged() || self.terminal.forged()));
        }
    }

    impl View {
        /// No continuation of the line can make it start with "[hv": a column already
        /// written, which later bytes do not overwrite, differs from the prefix.
        fn settled(&self) -> bool {
            (0..HV_PREFIX.len()).any(|i| i < self.column && self.start[i] != HV_PREFIX[i])
        }
    }

    /// What holds between any two steps (so after any sequence of them): no line starts
    /// with "[hv"; at a line start both readers are at a fresh line; behind a guest's text
    /// the line is settled for both, or, after the guest's carriage return, settled in the
    /// log and at column 0 on the terminal.
    fn invariant(mux: &ConsoleMux<2>, out: &Checked) -> bool {
        let (log, terminal) = (&out.log, &out.terminal);
        log.column == log.width
            && terminal.column <= terminal.width
            && !log.forged()
            && !terminal.forged()
            && mux.lines.iter().all(|l| l.len < LINE_MAX)
            && match mux.cursor {
                Cursor::LineStart => log.width == 0 && terminal.width == 0,
                Cursor::InGuestLine(vm) => vm < 2 && log.settled() && terminal.settled(),
                Cursor::GuestReturned(vm) => vm < 2 && log.settled() && terminal.column == 0,
            }
    }

    /// One step: a guest byte, an idle flush, or a hypervisor line.
    fn step(mux: &mut ConsoleMux<2>, out: &mut Checked, src: &mut Source) {
        // Mostly one guest, so that random tests meet long sequences. Each guest by its
        // constant slot: the model checker then folds the slot arithmetic (the escape
        // prefix's digits) instead of encoding a divider.
        if src.below(8) == 0 {
            step_of(1, mux, out, src);
        } else {
            step_of(0, mux, out, src);
        }
        assert!(invariant(mux, out));
    }

    fn step_of(vm: usize, mux: &mut ConsoleMux<2>, out: &mut Checked, src: &mut Source) {
        match src.below(8) {
            0 => mux.flush_guest(vm, out),
            1 => {
                mux.begin_hypervisor_line(out);
                out.hv_writing = true;
                out.write(b"[hv]\n");
                out.hv_writing = false;
            }
            _ => {
                // Any byte under Kani; in tests mostly those that matter ("v" stands for any
                // byte that does not start "[hv").
                let byte = if cfg!(kani) || src.below(8) == 0 {
                    src.any()
                } else {
                    b"[hv\r\n"[src.below(5) as usize]
                };
                mux.guest_byte(vm, byte, out);
            }
        }
    }

    /// Under Kani: any state the invariant allows (any buffered guest text, any line on
    /// the screen), which covers every sequence of steps. Under test: the state after a
    /// few random steps from the start, checked on the way.
    fn any_state(src: &mut Source) -> (ConsoleMux<2>, Checked) {
        let mut mux = ConsoleMux::<2>::new();
        let mut out = Checked::default();
        #[cfg(kani)]
        {
            for line in mux.lines.iter_mut() {
                *line = GuestLine {
                    pending: src.any(),
                    len: src.below(LINE_MAX as u64) as usize,
                    cr: src.any(),
                };
            }
            let vm = src.below(2) as usize;
            mux.cursor = match src.below(3) {
                0 => Cursor::LineStart,
                1 => Cursor::InGuestLine(vm),
                _ => Cursor::GuestReturned(vm),
            };
            for view in [&mut out.log, &mut out.terminal] {
                // Columns far beyond the prefix behave alike.
                *view = View {
                    column: src.below(8) as usize,
                    width: src.below(8) as usize,
                    start: src.any(),
                };
            }
            kani::assume(invariant(&mux, &out));
        }
        #[cfg(not(kani))]
        {
            assert!(invariant(&mux, &out));
            for _ in 0..src.below(12) {
                step(&mut mux, &mut out, src);
            }
        }
        (mux, out)
    }

    proof! {
        /// Whatever bytes guests write, with idle flushes and hypervisor lines anywhere
        /// between them, no line the guests produce starts with "[hv", in the log (CRs
        /// ignored, as the test harness reads it) or on a terminal. One step from any state
        /// the invariant allows, the start included, so every sequence of steps.
        #[unwind(14)]
        fn guests_cannot_start_a_hypervisor_line(src) {
            let (mut mux, mut out) = any_state(src);
            let (escaped, cursor) = (mux.escaped, mux.cursor);
            step(&mut mux, &mut out, src);
            cover!(mux.escaped > escaped, "a forged line is escaped");
            cover!(
                mux.escaped > escaped && matches!(cursor, Cursor::GuestReturned(_)),
                "a forgery after a carriage return is escaped"
            );
            cover!(
                matches!(cursor, Cursor::InGuestLine(_)) && mux.cursor == Cursor::LineStart,
                "a guest line is ended"
            );
        }
    }
}
