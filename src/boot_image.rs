//! The arm64 Linux boot protocol (Documentation/arch/arm64/booting.rst):
//! the Image header, and where kernel, device tree and initramfs go in guest
//! RAM. All sizes come from guest-supplied files, so all arithmetic is checked.

/// What the 64-byte Image header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHeader {
    /// Offset of the image from a 2 MiB-aligned RAM base.
    pub text_offset: u64,
    /// Bytes the kernel occupies once running (BSS included).
    pub image_size: u64,
    pub flags: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageError {
    TooShort,
    BadMagic,
    BigEndian,
    /// The kernel, device tree and initramfs do not fit in guest RAM as the protocol requires.
    DoesNotFit,
}

const MAGIC: u32 = 0x644d_5241; // "ARM\x64"
const TWO_MIB: u64 = 2 << 20;
/// The device tree must lie within 512 MiB of the kernel image's start.
const DTB_WINDOW: u64 = 512 << 20;
/// And must not be larger than 2 MiB.
const DTB_MAX: u64 = 2 << 20;
const PAGE: u64 = 4096;

fn le64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Parse the header at the start of an Image.
pub fn parse_image_header(bytes: &[u8]) -> Result<ImageHeader, ImageError> {
    if bytes.len() < 64 {
        return Err(ImageError::TooShort);
    }
    if u32::from_le_bytes([bytes[56], bytes[57], bytes[58], bytes[59]]) != MAGIC {
        return Err(ImageError::BadMagic);
    }
    let flags = le64(bytes, 24);
    if flags & 1 != 0 {
        return Err(ImageError::BigEndian);
    }
    let image_size = le64(bytes, 16);
    // Kernels before 3.17 leave image_size 0; their text_offset is 0x80000.
    let text_offset = if image_size == 0 {
        0x80000
    } else {
        le64(bytes, 8)
    };
    Ok(ImageHeader {
        text_offset,
        image_size,
        flags,
    })
}

/// Where everything goes, as guest-physical addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestLayout {
    pub kernel_ipa: u64,
    /// Bytes to copy (the Image file).
    pub kernel_size: u64,
    /// Bytes the kernel may use from `kernel_ipa` (at least `image_size`).
    pub kernel_footprint: u64,
    pub dtb_ipa: u64,
    pub initrd_ipa: Option<u64>,
    pub initrd_size: u64,
}

fn align_up(v: u64, align: u64) -> Option<u64> {
    Some(v.checked_add(align - 1)? & !(align - 1))
}

/// Plan the layout in RAM `[ram_base, ram_base + ram_size)` (ram_base 2 MiB aligned):
/// kernel at ram_base + text_offset; device tree on the next 2 MiB boundary
/// after the kernel's footprint; initramfs on the next page after the DTB.
///
/// Putting the kernel at the lowest 2 MiB-aligned base satisfies either
/// value of the header's physical-placement flag (bit 3): as close to the
/// start of RAM as possible, and (for guest RAM below 2^48) inside the
/// 48-bit range. A 2 MiB boundary keeps the DTB out of the 2 MiB block the
/// kernel maps for its own image end, and the DTB must end within 512 MiB
/// of the kernel's start (older kernels map it from there).
pub fn plan_layout(
    ram_base: u64,
    ram_size: u64,
    header: &ImageHeader,
    kernel_file_size: u64,
    initrd_size: u64,
    dtb_max_size: u64,
) -> Result<GuestLayout, ImageError> {
    let fit = ImageError::DoesNotFit;
    if !ram_base.is_multiple_of(TWO_MIB)
        || dtb_max_size == 0
        || dtb_max_size > DTB_MAX
        || kernel_file_size == 0
    {
        return Err(fit);
    }
    let ram_end = ram_base.checked_add(ram_size).ok_or(fit)?;
    let kernel_ipa = ram_base.checked_add(header.text_offset).ok_or(fit)?;
    if kernel_ipa % PAGE != 0 {
        return Err(fit);
    }
    let footprint = header.image_size.max(kernel_file_size);
    let kernel_end = kernel_ipa.checked_add(footprint).ok_or(fit)?;
    let dtb_ipa = align_up(kernel_end, TWO_MIB).ok_or(fit)?;
    let dtb_end = dtb_ipa.checked_add(dtb_max_size).ok_or(fit)?;
    if dtb_end - kernel_ipa > DTB_WINDOW {
        return Err(fit);
    }
    let (initrd_ipa, end) = if initrd_size > 0 {
        let at = align_up(dtb_end, PAGE).ok_or(fit)?;
        (Some(at), at.checked_add(initrd_size).ok_or(fit)?)
    } else {
        (None, dtb_end)
    };
    if end > ram_end {
        return Err(fit);
    }
    Ok(GuestLayout {
        kernel_ipa,
        kernel_size: kernel_file_size,
        kernel_footprint: footprint,
        dtb_ipa,
        initrd_ipa,
        initrd_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(text_offset: u64, image_size: u64, flags: u64) -> [u8; 64] {
        let mut h = [0u8; 64];
        h[8..16].copy_from_slice(&text_offset.to_le_bytes());
        h[16..24].copy_from_slice(&image_size.to_le_bytes());
        h[24..32].copy_from_slice(&flags.to_le_bytes());
        h[56..60].copy_from_slice(&MAGIC.to_le_bytes());
        h
    }

    #[test]
    fn parses_headers() {
        assert_eq!(
            parse_image_header(&header(0, 0x1a0_0000, 0xa)).unwrap(),
            ImageHeader {
                text_offset: 0,
                image_size: 0x1a0_0000,
                flags: 0xa
            }
        );
        assert_eq!(
            parse_image_header(&header(0x1234, 0, 0))
                .unwrap()
                .text_offset,
            0x80000
        );
        assert_eq!(
            parse_image_header(&header(0, 1, 1)),
            Err(ImageError::BigEndian)
        );
        assert_eq!(parse_image_header(&[0u8; 64]), Err(ImageError::BadMagic));
        assert_eq!(parse_image_header(&[0u8; 10]), Err(ImageError::TooShort));
    }

    #[test]
    fn lays_out_linux() {
        let h = ImageHeader {
            text_offset: 0,
            image_size: 0x1b4_0000,
            flags: 0xa,
        };
        let l = plan_layout(0x4000_0000, 256 << 20, &h, 0x19f_0000, 0x10_0000, 0x1_0000).unwrap();
        assert_eq!(l.kernel_ipa, 0x4000_0000);
        assert_eq!(l.dtb_ipa, 0x41c0_0000);
        assert_eq!(l.initrd_ipa, Some(0x41c1_0000));
        assert_eq!(
            plan_layout(0x4000_0000, 16 << 20, &h, 0x19f_0000, 0, 0x1_0000),
            Err(ImageError::DoesNotFit)
        );
    }

    #[test]
    fn old_kernels_without_image_size_use_the_file_size() {
        let h = parse_image_header(&header(0x1234, 0, 0)).unwrap();
        let l = plan_layout(0x4000_0000, 64 << 20, &h, 0x30_0000, 0, 0x1000).unwrap();
        assert_eq!(l.kernel_ipa, 0x4008_0000);
        assert_eq!(l.kernel_footprint, 0x30_0000);
        assert_eq!(l.dtb_ipa, 0x4040_0000);
        assert_eq!(l.initrd_ipa, None);
    }

    #[test]
    fn impossible_layouts_are_refused() {
        let h = ImageHeader {
            text_offset: 0,
            image_size: 0x100_0000,
            flags: 0,
        };
        let gib = 1 << 30;
        let refused = |ram_base, ram_size, h: &ImageHeader, kernel, initrd, dtb| {
            plan_layout(ram_base, ram_size, h, kernel, initrd, dtb) == Err(ImageError::DoesNotFit)
        };
        assert!(
            refused(0x4010_0000, gib, &h, 0x1000, 0, 0x1000),
            "RAM base not 2 MiB aligned"
        );
        assert!(refused(0x4000_0000, gib, &h, 0, 0, 0x1000), "empty kernel");
        assert!(refused(0x4000_0000, gib, &h, 0x1000, 0, 0), "DTB size 0");
        assert!(
            refused(0x4000_0000, gib, &h, 0x1000, 0, DTB_MAX + 1),
            "DTB over 2 MiB"
        );
        assert!(
            refused(!(TWO_MIB - 1), gib, &h, 0x1000, 0, 0x1000),
            "RAM wraps"
        );
        assert!(
            refused(0x4000_0000, gib, &h, 0x1000, u64::MAX, 0x1000),
            "initrd wraps"
        );
        assert!(
            refused(0x4000_0000, gib, &h, u64::MAX, 0, 0x1000),
            "kernel wraps"
        );
        let odd_offset = ImageHeader {
            text_offset: 0x80001,
            ..h
        };
        assert!(refused(0x4000_0000, gib, &odd_offset, 0x1000, 0, 0x1000));
        let huge = ImageHeader {
            image_size: 511 << 20,
            ..h
        };
        assert!(
            refused(0x4000_0000, 2 * gib, &huge, 0x1000, 0, 0x1000),
            "DTB beyond 512 MiB"
        );
        let just_fits = ImageHeader {
            image_size: 510 << 20,
            ..h
        };
        let l = plan_layout(0x4000_0000, 2 * gib, &just_fits, 0x1000, 0, DTB_MAX).unwrap();
        assert_eq!(l.dtb_ipa + DTB_MAX, l.kernel_ipa + DTB_WINDOW);
    }
}

#[cfg(any(test, kani))]
mod proofs {
    use super::*;

    /// Under test, mostly a size of the typical magnitude, so that many layouts
    /// succeed, otherwise any value (under Kani, that branch covers every value).
    fn size(src: &mut crate::verify::Source, typical: u64) -> u64 {
        if src.below(4) == 0 {
            src.any()
        } else {
            src.below(typical)
        }
    }

    proof! {
        /// For any header and sizes, the plan is an error or puts kernel, DTB and initramfs in
        /// guest RAM, aligned as the boot protocol requires, without overlapping each other.
        #[unwind(2)]
        fn layout_fits_and_does_not_overlap(src) {
            let ram_base = if src.any() { src.below(4) * TWO_MIB } else { src.any::<u64>() & !(TWO_MIB - 1) };
            let ram_size = size(src, 1 << 30);
            let header = ImageHeader { text_offset: if src.below(4) == 0 { src.any() } else { src.below(4) * 0x8_0000 }, image_size: size(src, 64 << 20), flags: 0 };
            let kernel = size(src, 64 << 20);
            let initrd = size(src, 64 << 20);
            let dtb = 1 + src.below(DTB_MAX);
            let plan = plan_layout(ram_base, ram_size, &header, kernel, initrd, dtb);
            cover!(plan.is_err(), "a layout is refused");
            cover!(plan.is_ok() && initrd > 0, "a layout with an initramfs");
            cover!(plan.is_ok() && initrd == 0, "a layout without an initramfs");
            cover!(plan.is_ok() && header.image_size == 0, "a kernel whose header has no image_size");
            if let Ok(l) = plan {
                let ram_end = ram_base + ram_size;
                // Kernel: text_offset from a 2 MiB-aligned base, room for image_size and the file.
                assert_eq!(l.kernel_ipa - header.text_offset, ram_base);
                assert_eq!(l.kernel_ipa % PAGE, 0);
                assert_eq!(l.kernel_size, kernel);
                assert!(l.kernel_footprint >= l.kernel_size && l.kernel_footprint >= header.image_size);
                // DTB: 8-byte aligned (2 MiB in fact), after the kernel, within 512 MiB of it.
                assert!(l.kernel_ipa + l.kernel_footprint <= l.dtb_ipa);
                assert_eq!(l.dtb_ipa % 8, 0);
                // (Stated as a difference: the kernel may sit within 512 MiB of 2^64.)
                assert!(l.dtb_ipa + dtb - l.kernel_ipa <= DTB_WINDOW);
                assert!(l.dtb_ipa + dtb <= ram_end);
                // Initramfs: page aligned, after the DTB, inside RAM; present iff non-empty.
                assert_eq!(l.initrd_ipa.is_some(), initrd > 0);
                assert_eq!(l.initrd_size, initrd);
                if let Some(i) = l.initrd_ipa {
                    assert_eq!(i % PAGE, 0);
                    assert!(i >= l.dtb_ipa + dtb && i + l.initrd_size <= ram_end);
                }
            }
        }
    }
}
