//! A minimal flattened device tree (DTB, version 17) writer, for the device
//! tree each guest boots with. The `fdt` crate only reads.

use alloc::string::String;
use alloc::vec::Vec;

const FDT_MAGIC: u32 = 0xd00d_feed;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_END: u32 = 9;
const VERSION: u32 = 17;
const LAST_COMPATIBLE_VERSION: u32 = 16;
const HEADER_SIZE: usize = 40;
const RSVMAP_SIZE: usize = 16; // one empty (terminating) reservation entry

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdtError {
    /// `end_node` without `begin_node`, or `finish` with nodes still open.
    Unbalanced,
    /// A property outside any node, or a second root node.
    NoOpenNode,
    /// Node names must be non-empty (except the root's) and hold no `/` or
    /// NUL; property names must be non-empty and hold no NUL.
    BadName,
    /// A property after a subnode of the same node: the format puts all of
    /// a node's properties first (and the `fdt` crate relies on it).
    PropertyAfterSubnode,
    /// The blob would not fit the header's 32-bit sizes.
    TooLarge,
    /// The guest description cannot be turned into a tree (e.g. no vCPUs).
    InvalidSpec,
}

/// Something a device tree is described to, call by call: the [`FdtWriter`]
/// that makes the blob, or (in proofs) a checker of the calls. Values are
/// passed in parts, never assembled in a buffer: the helpers below allocate
/// nothing, so a model checker follows the calls cheaply.
pub trait TreeSink {
    /// Open a node (`""` for the root).
    fn begin_node(&mut self, name: &str);
    /// Open the node `name@addr` (see [`node_name`]).
    fn begin_node_at(&mut self, name: &str, addr: u64) {
        self.begin_node(&node_name(name, addr));
    }
    fn end_node(&mut self);
    /// A property whose value is the concatenation of `parts`.
    fn property_parts(&mut self, name: &str, parts: &[&[u8]]);

    /// A property with raw bytes.
    fn property(&mut self, name: &str, value: &[u8]) {
        self.property_parts(name, &[value]);
    }

    fn property_empty(&mut self, name: &str) {
        self.property(name, &[]);
    }

    fn property_u32(&mut self, name: &str, v: u32) {
        self.property(name, &v.to_be_bytes());
    }

    fn property_u64(&mut self, name: &str, v: u64) {
        self.property(name, &v.to_be_bytes());
    }

    /// A list of 32-bit cells.
    fn property_cells<const N: usize>(&mut self, name: &str, cells: [u32; N]) {
        self.property(name, cells.map(u32::to_be_bytes).as_flattened());
    }

    fn property_string(&mut self, name: &str, s: &str) {
        self.property_parts(name, &[s.as_bytes(), &[0]]);
    }

    fn property_string_list<const N: usize>(&mut self, name: &str, list: [&str; N]) {
        let parts: [[&[u8]; 2]; N] = list.map(|s| [s.as_bytes(), &[0]]);
        self.property_parts(name, parts.as_flattened());
    }
}

/// A node name holds no `/` and no NUL (bytes: neither can be part of a
/// longer UTF-8 sequence). Only the root's is empty.
fn is_node_name(name: &[u8]) -> bool {
    name.iter().all(|b| *b != 0 && *b != b'/')
}

/// A property name is non-empty and holds no NUL.
fn is_property_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|b| *b != 0)
}

/// Where the writer keeps a block's bytes: a `Vec` for real trees, a fixed
/// array in proofs (a model checker pays for every reallocation of a `Vec`).
pub trait Buffer: Default {
    fn push(&mut self, byte: u8);
    fn bytes(&self) -> &[u8];
    fn extend_from_slice(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.push(*b);
        }
    }
}

impl Buffer for Vec<u8> {
    fn push(&mut self, byte: u8) {
        Vec::push(self, byte);
    }
    fn bytes(&self) -> &[u8] {
        self
    }
    fn extend_from_slice(&mut self, bytes: &[u8]) {
        Vec::extend_from_slice(self, bytes);
    }
}

/// Builds a device tree node by node.
///
/// Misuse does not panic: the first mistake is remembered and returned by
/// [`FdtWriter::finish`].
#[derive(Debug, Default)]
pub struct FdtWriter<B: Buffer = Vec<u8>> {
    structure: B,
    strings: B,
    /// Nodes open.
    depth: usize,
    /// Whether the innermost open node has a subnode yet. (Every outer open
    /// node has one: the node inside it.)
    innermost_has_child: bool,
    roots: usize,
    error: Option<FdtError>,
}

impl FdtWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// The finished blob: header, an empty memory-reservation map, the
    /// structure block, then the strings block.
    pub fn finish(mut self) -> Result<Vec<u8>, FdtError> {
        let header = self.finish_header()?;
        Ok(self.blob(&header))
    }
}

impl<B: Buffer> FdtWriter<B> {
    fn word(&mut self, v: u32) {
        self.structure.extend_from_slice(&v.to_be_bytes());
    }

    fn pad(&mut self) {
        while !self.structure.bytes().len().is_multiple_of(4) {
            self.structure.push(0);
        }
    }

    fn fail(&mut self, e: FdtError) {
        self.error.get_or_insert(e);
    }

    /// Offset of `name` in the strings block, added once: every property
    /// with the same name shares one copy.
    fn string_offset(&mut self, name: &[u8]) -> Option<u32> {
        let strings = self.strings.bytes();
        // One pass: entries start at 0 and after each NUL; `matched` counts
        // the bytes of the current entry that equal the name's so far.
        let (mut start, mut matched) = (0, 0);
        for (end, b) in strings.iter().enumerate() {
            if *b == 0 {
                if matched == name.len() && end - start == name.len() {
                    return u32::try_from(start).ok();
                }
                (start, matched) = (end + 1, 0);
            } else if matched == end - start && name.get(matched) == Some(b) {
                matched += 1;
            }
        }
        let offset = u32::try_from(strings.len()).ok()?;
        self.strings.extend_from_slice(name);
        self.strings.push(0);
        Some(offset)
    }

    /// Close the structure block and lay out the blob: the header's ten
    /// words (the blocks follow it in the order [`FdtWriter::finish`] writes them).
    fn finish_header(&mut self) -> Result<[u32; 10], FdtError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.depth != 0 || self.roots != 1 {
            return Err(FdtError::Unbalanced);
        }
        self.word(FDT_END);
        let (structure, strings) = (self.structure.bytes().len(), self.strings.bytes().len());
        let off_rsvmap = HEADER_SIZE;
        let off_struct = off_rsvmap + RSVMAP_SIZE;
        let off_strings = off_struct
            .checked_add(structure)
            .ok_or(FdtError::TooLarge)?;
        let total = off_strings.checked_add(strings).ok_or(FdtError::TooLarge)?;
        let header_field = |v: usize| u32::try_from(v).map_err(|_| FdtError::TooLarge);
        Ok([
            FDT_MAGIC,
            header_field(total)?,
            header_field(off_struct)?,
            header_field(off_strings)?,
            header_field(off_rsvmap)?,
            VERSION,
            LAST_COMPATIBLE_VERSION,
            0, // boot_cpuid_phys
            header_field(strings)?,
            header_field(structure)?,
        ])
    }

    /// The blob [`FdtWriter::finish_header`] laid out.
    fn blob(&self, header: &[u32; 10]) -> Vec<u8> {
        let mut out = Vec::with_capacity(header[1] as usize);
        for v in header {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&[0; RSVMAP_SIZE]);
        out.extend_from_slice(self.structure.bytes());
        out.extend_from_slice(self.strings.bytes());
        out
    }
}

// Names are handled as bytes: a name is checked byte by byte, never as text.
impl<B: Buffer> FdtWriter<B> {
    /// Open a node (`""` for the root).
    fn begin_node_bytes(&mut self, name: &[u8]) {
        let is_root = self.depth == 0;
        if !is_node_name(name) || (name.is_empty() != is_root) {
            return self.fail(FdtError::BadName);
        }
        if is_root {
            self.roots += 1;
            if self.roots > 1 {
                return self.fail(FdtError::NoOpenNode);
            }
        }
        self.word(FDT_BEGIN_NODE);
        self.structure.extend_from_slice(name);
        self.structure.push(0);
        self.pad();
        self.depth += 1;
        self.innermost_has_child = false;
    }

    /// A property with raw bytes.
    #[cfg(any(test, kani))]
    fn property_bytes(&mut self, name: &[u8], value: &[u8]) {
        self.property_parts_bytes(name, &[value]);
    }

    /// A property whose value is the concatenation of `parts`.
    fn property_parts_bytes(&mut self, name: &[u8], parts: &[&[u8]]) {
        if self.depth == 0 {
            return self.fail(FdtError::NoOpenNode);
        }
        if self.innermost_has_child {
            return self.fail(FdtError::PropertyAfterSubnode);
        }
        if !is_property_name(name) {
            return self.fail(FdtError::BadName);
        }
        let value_len = parts.iter().map(|part| part.len()).sum::<usize>();
        let Ok(len) = u32::try_from(value_len) else {
            return self.fail(FdtError::TooLarge);
        };
        let Some(offset) = self.string_offset(name) else {
            return self.fail(FdtError::TooLarge);
        };
        self.word(FDT_PROP);
        self.word(len);
        self.word(offset);
        for part in parts {
            self.structure.extend_from_slice(part);
        }
        self.pad();
    }
}

impl<B: Buffer> TreeSink for FdtWriter<B> {
    fn begin_node(&mut self, name: &str) {
        self.begin_node_bytes(name.as_bytes());
    }

    fn begin_node_at(&mut self, name: &str, addr: u64) {
        let (digits, count) = hex_digits(addr);
        let mut full = Vec::with_capacity(name.len() + 1 + count);
        full.extend_from_slice(name.as_bytes());
        full.push(b'@');
        full.extend_from_slice(&digits[16 - count..]);
        self.begin_node_bytes(&full);
    }

    fn end_node(&mut self) {
        let Some(depth) = self.depth.checked_sub(1) else {
            return self.fail(FdtError::Unbalanced);
        };
        self.depth = depth;
        // The node it was in now has a subnode: the one just closed.
        self.innermost_has_child = depth > 0;
        self.word(FDT_END_NODE);
    }

    fn property_parts(&mut self, name: &str, parts: &[&[u8]]) {
        self.property_parts_bytes(name.as_bytes(), parts);
    }
}

/// `"name@addr"` in the usual hexadecimal form (lower case, no leading zeros).
pub fn node_name(name: &str, addr: u64) -> String {
    let (digits, count) = hex_digits(addr);
    let mut s = String::with_capacity(name.len() + 1 + count);
    s.push_str(name);
    s.push('@');
    for digit in &digits[16 - count..] {
        s.push(char::from(*digit));
    }
    s
}

/// `addr` in lower-case hexadecimal without leading zeros: the digits are
/// the last `count` bytes of the array. Written out rather than with
/// `format!`: the formatting machinery is far more than this needs, and more
/// than a model checker can afford.
pub(crate) fn hex_digits(addr: u64) -> ([u8; 16], usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    for (i, digit) in digits.iter_mut().enumerate() {
        *digit = HEX[((addr >> (4 * (15 - i))) & 0xf) as usize];
    }
    let count = (64 - addr.leading_zeros()).div_ceil(4).max(1) as usize;
    (digits, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_fdt_parser() {
        let mut w = FdtWriter::new();
        w.begin_node("");
        w.property_u32("#address-cells", 2);
        w.property_u32("#size-cells", 2);
        w.property_string("compatible", "linux,dummy-virt");
        w.begin_node("memory@40000000");
        w.property_string("device_type", "memory");
        w.property_cells("reg", [0, 0x4000_0000, 0, 0x1000_0000]);
        w.end_node();
        w.begin_node("chosen");
        w.property_string("bootargs", "console=ttyAMA0");
        w.end_node();
        w.end_node();
        let blob = w.finish().unwrap();
        let fdt = fdt::Fdt::new(&blob).unwrap();
        assert_eq!(fdt.total_size(), blob.len());
        assert_eq!(fdt.chosen().bootargs(), Some("console=ttyAMA0"));
        let region = fdt.memory().regions().next().unwrap();
        assert_eq!(
            (region.starting_address as usize, region.size),
            (0x4000_0000, Some(0x1000_0000))
        );
        assert_eq!(fdt.root().compatible().first(), "linux,dummy-virt");
    }

    #[test]
    fn misuse_is_an_error() {
        let mut w = FdtWriter::new();
        w.begin_node("");
        assert_eq!(w.finish(), Err(FdtError::Unbalanced));
        let mut w = FdtWriter::new();
        w.property_u32("x", 1);
        assert_eq!(w.finish(), Err(FdtError::NoOpenNode));
        let mut w = FdtWriter::new();
        w.end_node();
        assert_eq!(w.finish(), Err(FdtError::Unbalanced));
    }

    fn finish_after(build: impl FnOnce(&mut FdtWriter)) -> Result<Vec<u8>, FdtError> {
        let mut w = FdtWriter::new();
        build(&mut w);
        w.finish()
    }

    #[test]
    fn bad_names_and_order_are_errors() {
        let in_root = |f: fn(&mut FdtWriter)| {
            finish_after(|w| {
                w.begin_node("");
                f(w);
                w.end_node();
            })
        };
        assert_eq!(in_root(|w| w.begin_node("")), Err(FdtError::BadName));
        assert_eq!(in_root(|w| w.begin_node("a/b")), Err(FdtError::BadName));
        assert_eq!(in_root(|w| w.begin_node("a\0b")), Err(FdtError::BadName));
        assert_eq!(in_root(|w| w.property_u32("", 1)), Err(FdtError::BadName));
        assert_eq!(
            in_root(|w| w.property_u32("a\0", 1)),
            Err(FdtError::BadName)
        );
        assert_eq!(
            finish_after(|w| w.begin_node("root")),
            Err(FdtError::BadName)
        );
        assert_eq!(
            in_root(|w| {
                w.begin_node("child");
                w.end_node();
                w.property_u32("late", 1);
            }),
            Err(FdtError::PropertyAfterSubnode)
        );
        assert_eq!(
            finish_after(|w| {
                w.begin_node("");
                w.end_node();
                w.begin_node("");
                w.end_node();
            }),
            Err(FdtError::NoOpenNode)
        );
        assert_eq!(finish_after(|_| {}), Err(FdtError::Unbalanced));
    }

    fn header_word(blob: &[u8], index: usize) -> u32 {
        u32::from_be_bytes(blob[4 * index..4 * index + 4].try_into().unwrap())
    }

    #[test]
    fn header_and_strings_block_follow_the_format() {
        let blob = finish_after(|w| {
            w.begin_node("");
            w.property_u32("#size-cells", 1);
            w.begin_node("a");
            w.property_u32("#size-cells", 2);
            w.property_string_list("compatible", ["x", "y"]);
            w.end_node();
            w.begin_node("b");
            w.property_empty("compatible");
            w.property_u64("big", 0x0102_0304_0506_0708);
            w.end_node();
            w.end_node();
        })
        .unwrap();
        let words: Vec<u32> = (0..10).map(|i| header_word(&blob, i)).collect();
        let (total, off_struct, off_strings, off_rsvmap) = (words[1], words[2], words[3], words[4]);
        assert_eq!(words[0], FDT_MAGIC);
        assert_eq!(total as usize, blob.len());
        assert_eq!((off_rsvmap, off_struct), (40, 56));
        assert_eq!(&words[5..8], &[17, 16, 0]);
        assert_eq!(off_struct + words[9], off_strings);
        assert_eq!(off_strings + words[8], total);
        assert_eq!(&blob[40..56], &[0u8; 16], "empty reservation map");
        assert_eq!(
            &blob[off_strings as usize..],
            b"#size-cells\0compatible\0big\0",
            "each name stored once"
        );
        let tree = fdt::Fdt::new(&blob).unwrap();
        let a = tree.find_node("/a").unwrap();
        assert_eq!(
            a.compatible().unwrap().all().collect::<Vec<_>>(),
            ["x", "y"]
        );
        let b = tree.find_node("/b").unwrap();
        assert_eq!(b.property("compatible").unwrap().value, b"");
        assert_eq!(b.property("big").unwrap().value, &[1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn node_names_match_the_usual_format() {
        for addr in [0, 1, 0xf, 0x10, 0x900_0000, 0x4000_0000, u64::MAX, 1 << 63] {
            assert_eq!(node_name("pl011", addr), alloc::format!("pl011@{addr:x}"));
        }
    }

    #[test]
    fn cells_are_big_endian() {
        let blob = finish_after(|w| {
            w.begin_node("");
            w.property_cells("reg", [0x0102_0304, 0xa0b0_c0d0]);
            w.property_string("s", "hi");
            w.end_node();
        })
        .unwrap();
        let tree = fdt::Fdt::new(&blob).unwrap();
        let root = tree.find_node("/").unwrap();
        assert_eq!(
            root.property("reg").unwrap().value,
            &[1, 2, 3, 4, 0xa0, 0xb0, 0xc0, 0xd0]
        );
        assert_eq!(root.property("s").unwrap().value, b"hi\0");
    }
}

/// What a writer that catches every misuse must answer for a sequence of
/// calls: the first misuse, or whether the tree is complete. Proofs check the
/// [`FdtWriter`] against it, and check other code's calls with it alone.
#[cfg(any(test, kani))]
#[derive(Debug, Default)]
pub(crate) struct CallModel {
    /// Per open node, outermost first: whether it has a subnode yet.
    has_child: [bool; MODEL_DEPTH],
    /// Nodes open.
    open: usize,
    roots: usize,
    /// Nodes begun, the root included.
    pub nodes: usize,
    first_error: Option<FdtError>,
}

/// Deepest nesting the model follows (the trees checked are shallower).
#[cfg(any(test, kani))]
const MODEL_DEPTH: usize = 8;

#[cfg(any(test, kani))]
impl CallModel {
    fn misuse(&mut self, e: FdtError) {
        self.first_error.get_or_insert(e);
    }

    /// What [`FdtWriter::finish`] must return, the blob aside.
    pub fn result(&self) -> Result<(), FdtError> {
        match self.first_error {
            Some(e) => Err(e),
            None if self.open != 0 || self.roots != 1 => Err(FdtError::Unbalanced),
            None => Ok(()),
        }
    }

    /// Depth of the innermost open node (1 for the root).
    pub fn depth(&self) -> usize {
        self.open
    }
}

#[cfg(any(test, kani))]
impl CallModel {
    fn begin(&mut self, name_ok: bool, empty: bool) {
        let is_root = self.open == 0;
        if !name_ok || empty != is_root {
            self.misuse(FdtError::BadName);
        } else if is_root && self.roots == 1 {
            self.misuse(FdtError::NoOpenNode);
        }
        self.roots += usize::from(is_root);
        if let Some(parent) = self.open.checked_sub(1) {
            self.has_child[parent] = true;
        }
        assert!(
            self.open < MODEL_DEPTH,
            "a tree deeper than the model follows"
        );
        self.has_child[self.open] = false;
        self.open += 1;
        self.nodes += 1;
    }
}

#[cfg(any(test, kani))]
impl TreeSink for CallModel {
    fn begin_node(&mut self, name: &str) {
        let name_ok = !name.bytes().any(|b| b == b'/' || b == 0);
        self.begin(name_ok, name.is_empty());
    }

    /// `name@addr`: hexadecimal digits are valid name bytes, and the name is not empty.
    fn begin_node_at(&mut self, name: &str, _addr: u64) {
        let name_ok = !name.bytes().any(|b| b == b'/' || b == 0);
        self.begin(name_ok, false);
    }

    fn end_node(&mut self) {
        match self.open.checked_sub(1) {
            Some(open) => self.open = open,
            None => self.misuse(FdtError::Unbalanced),
        }
    }

    fn property_parts(&mut self, name: &str, _parts: &[&[u8]]) {
        let innermost = self.open.checked_sub(1).map(|i| self.has_child[i]);
        match innermost {
            None => self.misuse(FdtError::NoOpenNode),
            Some(true) => self.misuse(FdtError::PropertyAfterSubnode),
            Some(false) if name.is_empty() || name.bytes().any(|b| b == 0) => {
                self.misuse(FdtError::BadName)
            }
            Some(false) => {}
        }
    }
}

#[cfg(any(test, kani))]
mod proofs {
    use super::*;

    /// A block of at most `N` bytes: the writer's buffers in proofs.
    #[derive(Debug, Clone, Copy)]
    struct Fixed<const N: usize> {
        bytes: [u8; N],
        len: usize,
    }

    impl<const N: usize> Default for Fixed<N> {
        fn default() -> Self {
            Fixed {
                bytes: [0; N],
                len: 0,
            }
        }
    }

    impl<const N: usize> Buffer for Fixed<N> {
        fn push(&mut self, byte: u8) {
            assert!(self.len < N, "a proof's buffer is too small");
            self.bytes[self.len] = byte;
            self.len += 1;
        }
        fn bytes(&self) -> &[u8] {
            &self.bytes[..self.len]
        }
    }

    /// Byte by byte: slice comparison is a `memcmp` the model checker unrolls badly.
    fn same(a: &[u8], b: &[u8]) -> bool {
        a.len() == b.len() && (0..a.len()).all(|i| a[i] == b[i])
    }

    /// Room for the longest sequence of calls below.
    const BLOCK: usize = if cfg!(kani) { 96 } else { 160 };

    /// Calls made to the writer and to the model alike.
    struct Both {
        writer: FdtWriter<Fixed<BLOCK>>,
        model: CallModel,
    }

    impl TreeSink for Both {
        fn begin_node(&mut self, name: &str) {
            self.writer.begin_node(name);
            self.model.begin_node(name);
        }
        fn end_node(&mut self) {
            self.writer.end_node();
            self.model.end_node();
        }
        fn property_parts(&mut self, name: &str, parts: &[&[u8]]) {
            self.writer.property_parts(name, parts);
            self.model.property_parts(name, parts);
        }
    }

    /// Mostly the name the format expects here, sometimes a bad one (1 in 8),
    /// so that both valid trees and every kind of misuse are generated.
    fn node_name(src: &mut crate::verify::Source, is_root: bool) -> &'static str {
        match (src.below(8), is_root) {
            (0, _) => ["", "x/y", "a"][src.below(3) as usize],
            (_, true) => "",
            (_, false) => ["a", "b@1"][src.below(2) as usize],
        }
    }

    fn property_name(src: &mut crate::verify::Source) -> &'static str {
        ["reg", "compatible", "reg", ""][src.below(4) as usize]
    }

    /// Calls in a sequence: fewer for the model checker, which covers all of them.
    const MAX_OPS: u64 = if cfg!(kani) { 3 } else { 5 };

    proof! {
        /// Any sequence of up to 3 node/property calls (5 in the property test) after an
        /// optional root, before an optional close of what is open, yields exactly the first
        /// misuse as an error, and otherwise a header that places the structure block
        /// (ending in FDT_END) and the strings block back to back up to totalsize. (The
        /// property test also writes the blob and runs the validator and the `fdt` crate on
        /// it; that the tokens inside are right is the two proofs below.)
        #[unwind(17)]
        fn writer_output_is_a_valid_tree_or_an_error(src) {
            let mut both = Both { writer: FdtWriter::default(), model: CallModel::default() };
            // Usually start with the root, so that many sequences are complete trees.
            if src.below(8) != 0 {
                both.begin_node("");
            }
            for _ in 0..src.below(MAX_OPS + 1) {
                match src.below(4) {
                    0 => {
                        let name = node_name(src, both.model.depth() == 0);
                        both.begin_node(name);
                    }
                    1 => both.end_node(),
                    _ => {
                        let name = property_name(src);
                        let value = [0xa5u8; 8];
                        both.property(name, &value[..src.below(9) as usize]);
                    }
                }
            }
            // And usually close what is open.
            if src.below(4) != 0 {
                for _ in 0..both.model.depth() {
                    both.end_node();
                }
            }
            let Both { mut writer, model } = both;
            let result = writer.finish_header();
            assert_eq!(result.map(|_| ()), model.result());
            crate::cover!(model.result() == Err(FdtError::PropertyAfterSubnode), "a property after a subnode refused");
            crate::cover!(model.result() == Err(FdtError::BadName), "a bad name refused");
            crate::cover!(model.result() == Err(FdtError::Unbalanced), "an unclosed node refused");
            let Ok(header) = result else { return };
            crate::cover!(model.nodes >= 2, "a tree with a child node written");
            let field = |i: usize| header[i] as usize;
            let (total, off_struct, off_strings, size_strings, size_struct) = (field(1), field(2), field(3), field(8), field(9));
            let structure = writer.structure.bytes();
            assert_eq!(size_struct, structure.len());
            assert_eq!(size_strings, writer.strings.bytes().len());
            assert_eq!(off_struct, HEADER_SIZE + RSVMAP_SIZE);
            assert_eq!(off_struct + size_struct, off_strings);
            assert_eq!(off_strings + size_strings, total);
            let end = structure.len() - 4;
            assert!(same(&structure[end..], &FDT_END.to_be_bytes()));
            #[cfg(not(kani))]
            {
                let blob = writer.blob(&header);
                assert_eq!(blob.len(), total);
                assert_eq!(crate::guest_config::validate_dtb(&blob), Ok(()));
                let tree = fdt::Fdt::new(&blob).unwrap();
                assert_eq!(tree.total_size(), blob.len());
                assert_eq!(tree.all_nodes().count(), model.nodes);
            }
        }
    }

    /// A name of up to `N` bytes: mostly the bytes that matter (a letter, `@`, and the two
    /// forbidden ones), else any byte. A byte array, not a `String`: built character by
    /// character, text costs the model checker far more than the writer does.
    fn short_name<const N: usize>(src: &mut crate::verify::Source) -> [u8; N] {
        let mut name = [0u8; N];
        for b in name.iter_mut() {
            *b = if src.below(4) != 0 {
                b"a@1/\0"[src.below(5) as usize]
            } else {
                src.any()
            };
        }
        name
    }

    proof! {
        /// Opening a node inside the root appends exactly its token, its name, a NUL and
        /// zeros up to a 4-byte boundary, for any name of up to 6 bytes without `/` or NUL;
        /// any other name is refused and appends nothing.
        #[unwind(8)]
        fn begin_node_appends_token_name_and_padding(src) {
            let bytes = short_name::<6>(src);
            // Every length in turn: concrete lengths keep the model checker's copies of the
            // buffers small, where one symbolic length would make every copy symbolic.
            for len in 0..=6 {
                let mut w = FdtWriter::<Fixed<24>>::default();
                w.begin_node("");
                let before = w.structure.len;
                let name = &bytes[..len];
                w.begin_node_bytes(name);
                let valid = len > 0 && name.iter().all(|b| *b != b'/' && *b != 0);
                assert_eq!(w.error.is_none(), valid);
                if !valid {
                    assert_eq!(w.structure.len, before);
                    crate::cover!((0..len).any(|i| name[i] == b'/'), "a name with a slash refused");
                    continue;
                }
                let added = &w.structure.bytes()[before..];
                assert_eq!(added.len(), (4 + len + 1).div_ceil(4) * 4);
                assert!(same(&added[..4], &FDT_BEGIN_NODE.to_be_bytes()));
                assert!(same(&added[4..4 + len], name));
                assert!(added[4 + len..].iter().all(|b| *b == 0));
                crate::cover!(len == 3, "a name that fills its word with its NUL");
                crate::cover!(len == 6, "a name that needs padding");
            }
        }
    }

    /// The writer of the proof below.
    type PropertyWriter = FdtWriter<Fixed<40>>;

    proof! {
        /// A property appends its token, length, name offset, value and zero padding; the
        /// offset names exactly the property's name in the strings block, and a name
        /// already there is shared, not added again. Two names from a list of five (equal,
        /// prefix, different, empty, with a NUL), values of up to 5 bytes.
        #[unwind(7)]
        fn property_appends_header_value_and_shared_name(src) {
            // Names from a list that has every relation that matters between two names:
            // equal, a prefix of the other, different, empty, holding a NUL. Every pair and
            // value length in turn: concrete lengths keep the model checker's copies small.
            const NAMES: [&[u8]; 5] = [b"a", b"ab", b"b", b"", b"a\0"];
            let data: [u8; 5] = src.any();
            for first in NAMES {
                for name in NAMES {
                    for value_len in 0..=data.len() {
                        let mut w = PropertyWriter::default();
                        w.begin_node("");
                        w.property_bytes(first, &[]);
                        property_appends(w, first, name, &data[..value_len]);
                    }
                }
            }
        }
    }

    /// The checks of the proof above, for one writer that holds one property named `first`.
    fn property_appends(mut w: PropertyWriter, first: &[u8], name: &[u8], value: &[u8]) {
        let strings_before = w.strings;
        let before = w.structure.len;
        w.property_bytes(name, value);
        let valid = |n: &[u8]| !n.is_empty() && n.iter().all(|b| *b != 0);
        if !valid(first) || !valid(name) {
            assert!(w.error.is_some());
            crate::cover!(valid(first), "an empty or NUL property name refused");
            return;
        }
        assert!(w.error.is_none());
        let added = &w.structure.bytes()[before..];
        assert_eq!(added.len(), 12 + value.len().div_ceil(4) * 4);
        assert!(same(&added[..4], &FDT_PROP.to_be_bytes()));
        assert!(same(&added[4..8], &(value.len() as u32).to_be_bytes()));
        let offset = u32::from_be_bytes([added[8], added[9], added[10], added[11]]) as usize;
        assert!(same(&added[12..12 + value.len()], value));
        assert!(added[12 + value.len()..].iter().all(|b| *b == 0));
        // The offset starts an entry, and the entry is the name.
        let strings = w.strings.bytes();
        assert!(offset == 0 || strings[offset - 1] == 0);
        assert!(same(&strings[offset..offset + name.len()], name));
        assert_eq!(strings[offset + name.len()], 0);
        let shared = same(name, first);
        if shared {
            assert!(same(strings, strings_before.bytes()));
        } else {
            assert_eq!(strings.len(), strings_before.len + name.len() + 1);
        }
        crate::cover!(shared, "a name shared with the previous property");
        crate::cover!(
            !shared && first.len() > name.len() && same(&first[..name.len()], name),
            "a name that is a prefix of a stored one added anew"
        );
        crate::cover!(!value.len().is_multiple_of(4), "a value that needs padding");
    }

    proof! {
        /// A node's unit address is the address in lower-case hexadecimal without leading
        /// zeros, for every 64-bit address (`node_name` appends these digits after the `@`).
        #[unwind(17)]
        fn node_name_is_the_address_in_hex(src) {
            let addr: u64 = src.any();
            let (digits, count) = hex_digits(addr);
            let digits = &digits[16 - count..];
            assert!(!digits.is_empty());
            assert!(digits.len() == 1 || digits[0] != b'0');
            let mut back = 0u64;
            for d in digits {
                let nibble = match d {
                    b'0'..=b'9' => d - b'0',
                    b'a'..=b'f' => d - b'a' + 10,
                    _ => panic!("not a lower-case hex digit"),
                };
                back = (back << 4) | u64::from(nibble);
            }
            assert_eq!(back, addr);
            crate::cover!(digits.len() == 16, "a 16-digit address");
            crate::cover!(addr == 0, "address zero");
        }
    }
}
