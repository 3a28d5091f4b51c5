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

/// Builds a device tree node by node.
///
/// Misuse does not panic: the first mistake is remembered and returned by
/// [`FdtWriter::finish`].
#[derive(Debug, Default)]
pub struct FdtWriter {
    structure: Vec<u8>,
    strings: Vec<u8>,
    /// One entry per open node: whether it already has a subnode.
    open: Vec<bool>,
    roots: usize,
    error: Option<FdtError>,
}

impl FdtWriter {
    pub fn new() -> Self {
        Self::default()
    }

    fn word(&mut self, v: u32) {
        self.structure.extend_from_slice(&v.to_be_bytes());
    }

    fn pad(&mut self) {
        while !self.structure.len().is_multiple_of(4) {
            self.structure.push(0);
        }
    }

    fn fail(&mut self, e: FdtError) {
        self.error.get_or_insert(e);
    }

    /// Open a node (`""` for the root).
    pub fn begin_node(&mut self, name: &str) {
        let is_root = self.open.is_empty();
        if name.contains(['\0', '/']) || (name.is_empty() != is_root) {
            return self.fail(FdtError::BadName);
        }
        if is_root {
            self.roots += 1;
            if self.roots > 1 {
                return self.fail(FdtError::NoOpenNode);
            }
        }
        if let Some(parent_has_child) = self.open.last_mut() {
            *parent_has_child = true;
        }
        self.word(FDT_BEGIN_NODE);
        self.structure.extend_from_slice(name.as_bytes());
        self.structure.push(0);
        self.pad();
        self.open.push(false);
    }

    pub fn end_node(&mut self) {
        if self.open.pop().is_none() {
            return self.fail(FdtError::Unbalanced);
        }
        self.word(FDT_END_NODE);
    }

    /// Offset of `name` in the strings block, added once: every property
    /// with the same name shares one copy.
    fn string_offset(&mut self, name: &str) -> Option<u32> {
        let bytes = name.as_bytes();
        let mut at = 0;
        while at < self.strings.len() {
            let end = self.strings[at..]
                .iter()
                .position(|b| *b == 0)
                .map_or(self.strings.len(), |p| at + p);
            if &self.strings[at..end] == bytes {
                return u32::try_from(at).ok();
            }
            at = end + 1;
        }
        let offset = u32::try_from(self.strings.len()).ok()?;
        self.strings.extend_from_slice(bytes);
        self.strings.push(0);
        Some(offset)
    }

    /// A property with raw bytes.
    pub fn property(&mut self, name: &str, value: &[u8]) {
        match self.open.last() {
            None => return self.fail(FdtError::NoOpenNode),
            Some(true) => return self.fail(FdtError::PropertyAfterSubnode),
            Some(false) => {}
        }
        if name.is_empty() || name.contains('\0') {
            return self.fail(FdtError::BadName);
        }
        let Ok(len) = u32::try_from(value.len()) else {
            return self.fail(FdtError::TooLarge);
        };
        let Some(offset) = self.string_offset(name) else {
            return self.fail(FdtError::TooLarge);
        };
        self.word(FDT_PROP);
        self.word(len);
        self.word(offset);
        self.structure.extend_from_slice(value);
        self.pad();
    }

    pub fn property_empty(&mut self, name: &str) {
        self.property(name, &[]);
    }

    pub fn property_u32(&mut self, name: &str, v: u32) {
        self.property(name, &v.to_be_bytes());
    }

    pub fn property_u64(&mut self, name: &str, v: u64) {
        self.property(name, &v.to_be_bytes());
    }

    /// A list of 32-bit cells.
    pub fn property_cells(&mut self, name: &str, cells: &[u32]) {
        let bytes: Vec<u8> = cells.iter().flat_map(|c| c.to_be_bytes()).collect();
        self.property(name, &bytes);
    }

    pub fn property_string(&mut self, name: &str, s: &str) {
        let mut bytes = Vec::from(s.as_bytes());
        bytes.push(0);
        self.property(name, &bytes);
    }

    pub fn property_string_list(&mut self, name: &str, list: &[&str]) {
        let mut bytes = Vec::new();
        for s in list {
            bytes.extend_from_slice(s.as_bytes());
            bytes.push(0);
        }
        self.property(name, &bytes);
    }

    /// The finished blob: header, an empty memory-reservation map, the
    /// structure block, then the strings block.
    pub fn finish(mut self) -> Result<Vec<u8>, FdtError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if !self.open.is_empty() || self.roots != 1 {
            return Err(FdtError::Unbalanced);
        }
        self.word(FDT_END);
        let off_rsvmap = HEADER_SIZE;
        let off_struct = off_rsvmap + RSVMAP_SIZE;
        let off_strings = off_struct
            .checked_add(self.structure.len())
            .ok_or(FdtError::TooLarge)?;
        let total = off_strings
            .checked_add(self.strings.len())
            .ok_or(FdtError::TooLarge)?;
        let header_field = |v: usize| u32::try_from(v).map_err(|_| FdtError::TooLarge);
        let header = [
            FDT_MAGIC,
            header_field(total)?,
            header_field(off_struct)?,
            header_field(off_strings)?,
            header_field(off_rsvmap)?,
            VERSION,
            LAST_COMPATIBLE_VERSION,
            0, // boot_cpuid_phys
            header_field(self.strings.len())?,
            header_field(self.structure.len())?,
        ];
        let mut out = Vec::with_capacity(total);
        for v in header {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&[0; RSVMAP_SIZE]);
        out.extend_from_slice(&self.structure);
        out.extend_from_slice(&self.strings);
        Ok(out)
    }
}

/// `"name@addr"` in the usual hexadecimal form.
pub fn node_name(name: &str, addr: u64) -> String {
    alloc::format!("{name}@{addr:x}")
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
        w.property_cells("reg", &[0, 0x4000_0000, 0, 0x1000_0000]);
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
            w.property_string_list("compatible", &["x", "y"]);
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
    fn cells_are_big_endian() {
        let blob = finish_after(|w| {
            w.begin_node("");
            w.property_cells("reg", &[0x0102_0304, 0xa0b0_c0d0]);
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

#[cfg(any(test, kani))]
mod proofs {
    use super::*;

    const MAX_OPS: u64 = 8;

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

    /// What a writer that catches every misuse must answer for a sequence of calls.
    #[derive(Default)]
    struct Model {
        open: Vec<bool>,
        roots: usize,
        nodes: usize,
        misused: bool,
    }

    impl Model {
        fn begin(&mut self, name: &str) {
            let is_root = self.open.is_empty();
            let name_ok = !name.contains('/') && name.is_empty() == is_root;
            self.misused |= !name_ok || (is_root && self.roots == 1);
            self.roots += usize::from(is_root);
            if let Some(has_child) = self.open.last_mut() {
                *has_child = true;
            }
            self.open.push(false);
            self.nodes += 1;
        }
        fn end(&mut self) {
            self.misused |= self.open.pop().is_none();
        }
        fn property(&mut self, name: &str) {
            self.misused |= name.is_empty() || self.open.last() != Some(&false);
        }
        fn well_formed(&self) -> bool {
            !self.misused && self.open.is_empty() && self.roots == 1
        }
    }

    proof! {
        /// Any sequence of writer calls yields an error exactly when the calls misuse the
        /// format, and otherwise a blob the `fdt` crate and the validator accept, whose
        /// header totalsize is its length and which holds every node written.
        #[unwind(10)]
        fn writer_output_is_a_valid_tree_or_an_error(src) {
            let mut w = FdtWriter::new();
            let mut model = Model::default();
            // Usually start with the root, so that many sequences are complete trees.
            if src.below(8) != 0 {
                w.begin_node("");
                model.begin("");
            }
            for _ in 0..src.below(MAX_OPS + 1) {
                match src.below(4) {
                    0 => {
                        let name = node_name(src, model.open.is_empty());
                        w.begin_node(name);
                        model.begin(name);
                    }
                    1 => {
                        w.end_node();
                        model.end();
                    }
                    _ => {
                        let name = property_name(src);
                        let value = [0xa5u8; 8];
                        w.property(name, &value[..src.below(9) as usize]);
                        model.property(name);
                    }
                }
            }
            // And usually close what is open.
            if src.below(4) != 0 {
                for _ in 0..model.open.len() {
                    w.end_node();
                    model.end();
                }
            }
            let result = w.finish();
            assert_eq!(result.is_ok(), model.well_formed());
            let Ok(blob) = result else { return };
            assert!(crate::guest_config::validate_dtb(&blob).is_ok());
            let tree = fdt::Fdt::new(&blob).unwrap();
            assert_eq!(tree.total_size(), blob.len());
            assert_eq!(tree.all_nodes().count(), model.nodes);
        }
    }
}
