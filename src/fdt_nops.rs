//! QEMU edits a device tree it is given (`-dtb`) with libfdt, which leaves
//! NOP tokens where it removed properties and nodes (it replaces the
//! `/memory` nodes, for instance). The `fdt` crate, and the validation in
//! front of it, do not take NOPs everywhere, so the hypervisor copies the
//! tree without them first.

use alloc::vec::Vec;

use crate::guest_config::be32;

const FDT_MAGIC: u32 = 0xd00d_feed;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;
const HEADER_SIZE: usize = 40;

fn put32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// `dtb` with every NOP token removed from its structure block (the header,
/// memory reservations and strings unchanged but for offsets and sizes).
/// `None` if the blob is not a well-formed tree at the token level; the
/// caller's validation then rejects the original.
pub fn without_nops(dtb: &[u8]) -> Option<Vec<u8>> {
    if be32(dtb, 0)? != FDT_MAGIC {
        return None;
    }
    let field = |i: usize| be32(dtb, 4 * i).map(|v| v as usize);
    let (total, off_struct, off_strings, off_rsv) = (field(1)?, field(2)?, field(3)?, field(4)?);
    let (size_strings, size_struct) = (field(8)?, field(9)?);
    if total > dtb.len() || off_rsv < HEADER_SIZE || off_rsv > off_struct {
        return None;
    }
    let structure = dtb.get(off_struct..off_struct.checked_add(size_struct)?)?;
    let strings = dtb.get(off_strings..off_strings.checked_add(size_strings)?)?;
    let reservations = dtb.get(off_rsv..off_struct)?;

    let mut kept = Vec::with_capacity(structure.len());
    let mut at = 0;
    loop {
        let token = be32(structure, at)?;
        let next = match token {
            FDT_BEGIN_NODE => {
                let name_len = structure.get(at + 4..)?.iter().position(|b| *b == 0)?;
                (at + 4 + name_len + 1).div_ceil(4) * 4
            }
            FDT_PROP => {
                let len = be32(structure, at + 4)? as usize;
                (at + 12).checked_add(len)?.div_ceil(4) * 4
            }
            FDT_END_NODE | FDT_NOP | FDT_END => at + 4,
            _ => return None,
        };
        if token != FDT_NOP {
            kept.extend_from_slice(structure.get(at..next.min(structure.len()))?);
            // Padding past the block's end (a last property) stays zero.
            kept.resize(kept.len() + next.saturating_sub(structure.len()), 0);
        }
        if token == FDT_END {
            break;
        }
        at = next;
    }

    let new_struct = HEADER_SIZE + reservations.len().div_ceil(8) * 8;
    let new_strings = new_struct + kept.len();
    let new_total = new_strings + strings.len();
    let mut out = Vec::with_capacity(new_total);
    out.extend_from_slice(dtb.get(..HEADER_SIZE)?);
    out.extend_from_slice(reservations);
    out.resize(new_struct, 0);
    out.extend_from_slice(&kept);
    out.extend_from_slice(strings);
    put32(&mut out, 4, u32::try_from(new_total).ok()?);
    put32(&mut out, 8, u32::try_from(new_struct).ok()?);
    put32(&mut out, 12, u32::try_from(new_strings).ok()?);
    put32(&mut out, 16, HEADER_SIZE as u32);
    put32(&mut out, 36, u32::try_from(kept.len()).ok()?);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fdt_writer::{FdtWriter, TreeSink};

    fn tree() -> Vec<u8> {
        let mut w = FdtWriter::new();
        w.begin_node("");
        w.property_u32("#address-cells", 2);
        w.begin_node("memory@40000000");
        w.property_string("device_type", "memory");
        w.end_node();
        w.begin_node("chosen");
        w.property_string("bootargs", "x");
        w.end_node();
        w.end_node();
        w.finish().unwrap()
    }

    /// Replace the `memory` node's tokens with NOPs, as libfdt's nop_node does.
    fn nop_memory_node(blob: &mut [u8]) {
        let off_struct = be32(blob, 8).unwrap() as usize;
        let start = (off_struct..blob.len())
            .step_by(4)
            .find(|&at| blob[at + 4..].starts_with(b"memory@"))
            .unwrap();
        let end = (start..blob.len())
            .step_by(4)
            .find(|&at| be32(blob, at) == Some(FDT_END_NODE))
            .unwrap();
        for at in (start..=end).step_by(4) {
            put32(blob, at, FDT_NOP);
        }
    }

    #[test]
    fn nops_are_removed_and_the_rest_kept() {
        let mut blob = tree();
        nop_memory_node(&mut blob);
        assert!(crate::guest_config::validate_dtb(&blob).is_err());
        let clean = without_nops(&blob).unwrap();
        crate::guest_config::validate_dtb(&clean).unwrap();
        let parsed = fdt::Fdt::new(&clean).unwrap();
        assert!(parsed.find_node("/memory@40000000").is_none());
        assert_eq!(
            parsed.chosen().bootargs(),
            Some("x"),
            "properties after the removed node survive"
        );
    }

    #[test]
    fn a_tree_without_nops_comes_back_unchanged() {
        let blob = tree();
        assert_eq!(without_nops(&blob).unwrap(), blob);
    }

    #[test]
    fn garbage_is_refused_not_panicked_on() {
        let blob = tree();
        for cut in 0..blob.len() {
            let _ = without_nops(&blob[..cut]);
        }
        let mut bad = blob.clone();
        let off_struct = be32(&bad, 8).unwrap() as usize;
        put32(&mut bad, off_struct, 7);
        assert_eq!(without_nops(&bad), None);
    }
}
