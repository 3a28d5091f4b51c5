//! A minimal flattened device tree (DTB, version 17) writer, for the device
//! tree each guest boots with. The `fdt` crate only reads.

use alloc::string::String;
use alloc::vec::Vec;

const FDT_MAGIC: u32 = 0xd00d_feed;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_END: u32 = 9;
const HEADER_SIZE: usize = 40;
const RSVMAP_SIZE: usize = 16; // one empty (terminating) reservation entry

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdtError {
    /// `end_node` without `begin_node`, or `finish` with nodes still open.
    Unbalanced,
    /// A property outside any node, or a second root node.
    NoOpenNode,
    /// Names may not contain NUL.
    BadName,
    /// The guest description cannot be turned into a tree (e.g. no vCPUs).
    InvalidSpec,
}

/// Builds a device tree node by node.
#[derive(Debug, Default)]
pub struct FdtWriter {
    structure: Vec<u8>,
    strings: Vec<u8>,
    depth: usize,
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
        if name.contains('\0') {
            return self.fail(FdtError::BadName);
        }
        if self.depth == 0 {
            self.roots += 1;
            if self.roots > 1 {
                return self.fail(FdtError::NoOpenNode);
            }
        }
        self.word(FDT_BEGIN_NODE);
        self.structure.extend_from_slice(name.as_bytes());
        self.structure.push(0);
        self.pad();
        self.depth += 1;
    }

    pub fn end_node(&mut self) {
        if self.depth == 0 {
            return self.fail(FdtError::Unbalanced);
        }
        self.word(FDT_END_NODE);
        self.depth -= 1;
    }

    fn string_offset(&mut self, name: &str) -> u32 {
        let bytes = name.as_bytes();
        let mut at = 0;
        while at < self.strings.len() {
            let end = self.strings[at..]
                .iter()
                .position(|b| *b == 0)
                .map_or(self.strings.len(), |p| at + p);
            if &self.strings[at..end] == bytes {
                return at as u32;
            }
            at = end + 1;
        }
        let offset = self.strings.len() as u32;
        self.strings.extend_from_slice(bytes);
        self.strings.push(0);
        offset
    }

    /// A property with raw bytes.
    pub fn property(&mut self, name: &str, value: &[u8]) {
        if self.depth == 0 {
            return self.fail(FdtError::NoOpenNode);
        }
        if name.contains('\0') {
            return self.fail(FdtError::BadName);
        }
        let offset = self.string_offset(name);
        self.word(FDT_PROP);
        self.word(value.len() as u32);
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

    /// The finished blob.
    pub fn finish(mut self) -> Result<Vec<u8>, FdtError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.depth != 0 || self.roots != 1 {
            return Err(FdtError::Unbalanced);
        }
        self.word(FDT_END);
        let off_rsvmap = HEADER_SIZE;
        let off_struct = off_rsvmap + RSVMAP_SIZE;
        let off_strings = off_struct + self.structure.len();
        let total = off_strings + self.strings.len();
        let mut out = Vec::with_capacity(total);
        for v in [
            FDT_MAGIC,
            total as u32,
            off_struct as u32,
            off_strings as u32,
            off_rsvmap as u32,
            17,
            16,
            0,
            self.strings.len() as u32,
            self.structure.len() as u32,
        ] {
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
}
