//! The hypervisor console: the physical UART's input belongs to one VM (the
//! one with the focus) until the user presses Ctrl-] (0x1d, the telnet and
//! `virsh console` escape: no shell or editor binds it). Then the hypervisor
//! reads a command line:
//!
//! | command         | what it does                                         |
//! |-----------------|------------------------------------------------------|
//! | `help`          | list the commands                                    |
//! | `list`          | every VM: state, vCPUs, CPUs, memory, exits          |
//! | `focus NAME`    | console input goes to VM NAME from now on            |
//! | `stats NAME`    | VM NAME's exit counters by cause                     |
//! | `stop NAME`     | power VM NAME off (as its own SYSTEM_OFF would)      |
//! | `start NAME`    | boot a stopped VM NAME again from its images         |
//! | `reboot NAME`   | `stop` then `start`                                  |
//! | `resume` or Ctrl-] | back to the VM with the focus                     |
//!
//! This module decides (bytes in, actions out); the glue performs them. It
//! is the one place the management commands are defined: later interfaces
//! (snapshots, migration) add theirs here.

/// The key that opens (and closes) the hypervisor console.
pub const ESCAPE: u8 = 0x1d;
/// Longest command line.
pub const LINE_MAX: usize = 40;
/// Longest VM name a command can carry (the configuration's limit).
pub const NAME_MAX: usize = crate::vm_spec::MAX_NAME_LEN;

/// A VM name as typed, without allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Name {
    bytes: [u8; NAME_MAX],
    len: usize,
}

impl Name {
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len.min(NAME_MAX)]
    }

    /// Whether this is `name`.
    pub fn is(&self, name: &str) -> bool {
        self.as_bytes() == name.as_bytes()
    }
}

/// A management command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Help,
    List,
    Resume,
    Focus(Name),
    Stats(Name),
    Stop(Name),
    Start(Name),
    Reboot(Name),
}

/// Why a command line means nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandError {
    Empty,
    Unknown,
    /// The command needs a VM name.
    MissingName,
    /// The name is longer than any VM's.
    NameTooLong,
    /// More words than the command takes.
    ExtraWords,
}

/// The first three space-separated words of `line` (as ranges) and how
/// many there are, counting at most three. Index loops, not slice
/// iterators: the prover unwinds each once per byte.
fn words(line: &[u8]) -> ([core::ops::Range<usize>; 3], usize) {
    let mut found = [0..0, 0..0, 0..0];
    let mut count = 0;
    let mut i = 0;
    while i < line.len() && count < 3 {
        if line[i] == b' ' {
            i += 1;
            continue;
        }
        let start = i;
        while i < line.len() && line[i] != b' ' {
            i += 1;
        }
        found[count] = start..i;
        count += 1;
    }
    (found, count)
}

/// Parse one command line (ASCII words separated by spaces).
pub fn parse_command(line: &[u8]) -> Result<Command, CommandError> {
    let (found, count) = words(line);
    if count == 0 {
        return Err(CommandError::Empty);
    }
    if count > 2 {
        return Err(CommandError::ExtraWords);
    }
    let verb = &line[found[0].clone()];
    let name = (count == 2).then(|| &line[found[1].clone()]);
    let no_name = |command| match name {
        None => Ok(command),
        Some(_) => Err(CommandError::ExtraWords),
    };
    let named = |make: fn(Name) -> Command| {
        let word = name.ok_or(CommandError::MissingName)?;
        if word.len() > NAME_MAX {
            return Err(CommandError::NameTooLong);
        }
        let mut bytes = [0; NAME_MAX];
        bytes[..word.len()].copy_from_slice(word);
        Ok(make(Name {
            bytes,
            len: word.len(),
        }))
    };
    match verb {
        b"help" | b"?" => no_name(Command::Help),
        b"list" | b"ls" => no_name(Command::List),
        b"resume" => no_name(Command::Resume),
        b"focus" => named(Command::Focus),
        b"stats" => named(Command::Stats),
        b"stop" => named(Command::Stop),
        b"start" => named(Command::Start),
        b"reboot" => named(Command::Reboot),
        _ => Err(CommandError::Unknown),
    }
}

/// What the glue does with one received byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputAction {
    /// Give the byte to the VM with the focus.
    ToGuest(u8),
    /// The console opened: show the prompt.
    Opened,
    /// The console closed: input goes to the VM with the focus again.
    Closed,
    /// Echo this byte of the command line being typed.
    Echo(u8),
    /// Erase the last echoed byte.
    Erase,
    /// A whole line was entered: run [`ConsoleInput::entered_command`].
    Entered,
    /// Nothing to do (a byte that does not fit or does not print).
    Ignore,
}

/// The input side of the physical console: which mode it is in, and the
/// command line typed so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsoleInput {
    open: bool,
    line: [u8; LINE_MAX],
    len: usize,
    /// Length of the line last entered (it stays in `line` until typing
    /// starts over).
    entered: usize,
}

impl Default for ConsoleInput {
    fn default() -> Self {
        Self::new()
    }
}

impl ConsoleInput {
    pub const fn new() -> Self {
        ConsoleInput {
            open: false,
            line: [0; LINE_MAX],
            len: 0,
            entered: 0,
        }
    }

    /// The command on the line last entered.
    pub fn entered_command(&self) -> Result<Command, CommandError> {
        parse_command(&self.line[..self.entered.min(LINE_MAX)])
    }

    /// Whether the hypervisor console has the input.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Leave the hypervisor console (after `resume`).
    pub fn close(&mut self) {
        self.open = false;
        self.len = 0;
    }

    /// One byte from the physical UART.
    pub fn feed(&mut self, byte: u8) -> InputAction {
        if byte == ESCAPE {
            self.len = 0;
            self.open = !self.open;
            return if self.open {
                InputAction::Opened
            } else {
                InputAction::Closed
            };
        }
        if !self.open {
            return InputAction::ToGuest(byte);
        }
        match byte {
            b'\r' | b'\n' => {
                self.entered = self.len.min(LINE_MAX);
                self.len = 0;
                InputAction::Entered
            }
            // Backspace or DEL.
            0x08 | 0x7f if self.len > 0 => {
                self.len -= 1;
                InputAction::Erase
            }
            0x20..=0x7e if self.len < LINE_MAX => {
                self.line[self.len] = byte;
                self.len += 1;
                InputAction::Echo(byte)
            }
            _ => InputAction::Ignore,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(input: &mut ConsoleInput, text: &str) -> Vec<InputAction> {
        text.bytes().map(|b| input.feed(b)).collect()
    }

    #[test]
    fn bytes_go_to_the_guest_until_the_escape() {
        let mut input = ConsoleInput::new();
        assert_eq!(
            typed(&mut input, "ls\r"),
            [b'l', b's', b'\r'].map(InputAction::ToGuest)
        );
        assert_eq!(input.feed(ESCAPE), InputAction::Opened);
        let actions = typed(&mut input, "stop web\r");
        assert_eq!(actions[0], InputAction::Echo(b's'));
        let stop = parse_command(b"stop web").unwrap();
        assert_eq!(actions.last(), Some(&InputAction::Entered));
        assert_eq!(input.entered_command(), Ok(stop));
        assert!(matches!(stop, Command::Stop(n) if n.is("web")));
        assert_eq!(input.feed(ESCAPE), InputAction::Closed);
        assert_eq!(input.feed(b'x'), InputAction::ToGuest(b'x'));
    }

    #[test]
    fn editing_and_limits() {
        let mut input = ConsoleInput::new();
        input.feed(ESCAPE);
        typed(&mut input, "lisx");
        assert_eq!(input.feed(0x7f), InputAction::Erase);
        assert_eq!(typed(&mut input, "t\r").last(), Some(&InputAction::Entered));
        assert_eq!(input.entered_command(), Ok(Command::List));
        assert_eq!(input.feed(0x7f), InputAction::Ignore, "nothing to erase");
        let long = "x".repeat(LINE_MAX + 5);
        let actions = typed(&mut input, &long);
        assert_eq!(
            actions
                .iter()
                .filter(|a| **a == InputAction::Ignore)
                .count(),
            5
        );
        assert_eq!(input.feed(b'\r'), InputAction::Entered);
        assert_eq!(input.entered_command(), Err(CommandError::Unknown));
        assert_eq!(
            input.feed(0x1b),
            InputAction::Ignore,
            "escape sequences are not typed"
        );
    }

    #[test]
    fn commands_parse_or_say_why_not() {
        assert_eq!(parse_command(b"  help "), Ok(Command::Help));
        assert_eq!(parse_command(b"resume"), Ok(Command::Resume));
        assert_eq!(parse_command(b""), Err(CommandError::Empty));
        assert_eq!(parse_command(b"stop"), Err(CommandError::MissingName));
        assert_eq!(parse_command(b"list all"), Err(CommandError::ExtraWords));
        assert_eq!(parse_command(b"stop a b"), Err(CommandError::ExtraWords));
        assert_eq!(
            parse_command(b"focus abcdefghijklmnopq"),
            Err(CommandError::NameTooLong)
        );
        assert_eq!(parse_command(b"format c:"), Err(CommandError::Unknown));
        for (text, check) in [
            ("focus a", Command::Focus as fn(Name) -> Command),
            ("stats a", Command::Stats),
            ("start a", Command::Start),
            ("reboot a", Command::Reboot),
        ] {
            let mut bytes = [0; NAME_MAX];
            bytes[0] = b'a';
            assert_eq!(
                parse_command(text.as_bytes()),
                Ok(check(Name { bytes, len: 1 }))
            );
        }
    }
}

#[cfg(any(test, kani))]
mod proofs {
    use super::*;

    proof! {
        /// From any state, one byte: the escape key toggles the console and
        /// never reaches a guest; with the console closed every other byte
        /// goes to the guest unchanged; with it open no byte reaches a
        /// guest, and the command line never outgrows its buffer.
        #[unwind(2)]
        fn input_routing_is_total(src) {
            let open: bool = src.any();
            let len = src.below(LINE_MAX as u64 + 1) as usize;
            let mut input = ConsoleInput { open, line: [b'a'; LINE_MAX], len, entered: 0 };
            let byte: u8 = src.any();
            let action = input.feed(byte);
            if byte == ESCAPE {
                assert_eq!(input.open, !open);
                assert!(matches!(action, InputAction::Opened | InputAction::Closed));
            } else if !open {
                assert_eq!(action, InputAction::ToGuest(byte));
            } else {
                assert!(!matches!(action, InputAction::ToGuest(_)));
            }
            assert!(input.len <= LINE_MAX);
            crate::cover!(matches!(action, InputAction::ToGuest(_)), "a byte for the guest");
            crate::cover!(matches!(action, InputAction::Echo(_)) && input.len == LINE_MAX, "the line filled up");
            crate::cover!(action == InputAction::Entered, "a command line entered");
        }
    }

    proof! {
        /// Any command line of up to 8 bytes parses or is refused without a
        /// panic, and a parsed name is the word that was typed.
        #[unwind(10)]
        fn command_parsing_is_total(src) {
            let mut line: [u8; 8] = src.any();
            let mut len = src.below(9) as usize;
            // Half the cases start from real commands, which random bytes
            // almost never spell.
            if src.any::<bool>() {
                let templates: [&[u8; 8]; 4] = [b"list    ", b"stop web", b"stop    ", b"reboot x"];
                let lens = [4, 8, 4, 8];
                let pick = src.below(4) as usize;
                line = *templates[pick];
                len = lens[pick];
            }
            let result = parse_command(&line[..len]);
            if let Ok(Command::Stop(name)) = result {
                assert!(name.len >= 1 && name.len <= NAME_MAX);
                assert!(name.as_bytes().iter().all(|b| *b != b' '));
            }
            crate::cover!(result == Ok(Command::List), "list");
            crate::cover!(matches!(result, Ok(Command::Stop(_))), "stop NAME");
            crate::cover!(result == Err(CommandError::MissingName), "a verb without its name");
        }
    }
}
