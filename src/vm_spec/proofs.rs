//! The two decisions of validation that isolation rests on, proven on up to
//! three VMs and eight physical CPUs (the code does not depend on either
//! count).

use super::*;

const VMS: usize = 3;

proof! {
    /// Whatever the VMs ask for: when CPUs are handed out, every VM gets only
    /// CPUs that exist, at least one; a partitioned VM gets at least as many
    /// as it has vCPUs, and no CPU it gets goes to another VM; only
    /// time-shared VMs share CPUs; a VM that named CPUs gets exactly those.
    #[unwind(9)]
    fn cpus_are_partitioned(src) {
        let cpu_count = src.below(9) as usize;
        let mut requests = [CpuRequest { vcpus: 0, cpus: 0, time_shared: false }; VMS];
        for request in requests.iter_mut() {
            request.vcpus = src.below(5) as usize;
            request.time_shared = src.any();
            // Half the VMs name no CPU, which random masks rarely do.
            request.cpus = if src.any::<bool>() { 0 } else { src.below(1 << 9) };
        }
        let mut out = [0u64; VMS];
        let result = assign_cpus(&requests, cpu_count, 4, &mut out);
        if result.is_ok() {
            let existing = (1u64 << cpu_count) - 1;
            for i in 0..VMS {
                assert!(out[i] != 0);
                if !requests[i].time_shared {
                    assert!(out[i].count_ones() as usize >= requests[i].vcpus);
                }
                assert!(requests[i].vcpus >= 1);
                assert_eq!(out[i] & !existing, 0);
                if requests[i].cpus != 0 {
                    assert_eq!(out[i], requests[i].cpus);
                }
                for j in 0..i {
                    if !(requests[i].time_shared && requests[j].time_shared) {
                        assert_eq!(out[i] & out[j], 0);
                    }
                }
            }
        }
        crate::cover!(result.is_ok() && requests.iter().all(|r| r.cpus == 0), "all CPUs chosen by the hypervisor");
        crate::cover!(result.is_ok() && requests[0].cpus != 0 && requests[1].cpus == 0, "named and chosen CPUs mixed");
        crate::cover!(matches!(result, Err((_, CpuProblem::Taken { .. }))), "a CPU asked for twice");
        crate::cover!(matches!(result, Err((_, CpuProblem::NoneFree { .. }))), "not enough CPUs left");
        crate::cover!(
            result.is_ok() && requests[0].time_shared && requests[1].time_shared && out[0] & out[1] != 0,
            "two time-shared VMs share a CPU"
        );
        crate::cover!(
            result.is_ok() && requests[0].time_shared && requests[0].vcpus > out[0].count_ones() as usize,
            "more vCPUs than CPUs"
        );
    }
}

proof! {
    /// Images that pass the check lie inside RAM, clear of every reserved
    /// range and of each other, and no end computation overflows.
    #[unwind(4)]
    fn accepted_images_are_disjoint_and_inside_ram(src) {
        let ram: (u64, u64) = (src.any(), src.any());
        let reserved = [(src.any::<u64>(), src.any::<u64>())];
        let images: [(u64, u64); VMS] = [(src.any(), src.any()), (src.any(), src.any()), (src.any(), src.any())];
        let result = check_images(&images, ram, &reserved);
        if result.is_ok() {
            let ram_end = ram.0 as u128 + ram.1 as u128;
            for i in 0..VMS {
                let (a, s) = (images[i].0 as u128, images[i].1 as u128);
                assert!(s > 0 && a >= ram.0 as u128 && a + s <= ram_end);
                let (r, r_size) = (reserved[0].0 as u128, reserved[0].1 as u128);
                assert!(a + s <= r || r + r_size <= a);
                for &(b, t) in &images[..i] {
                    let (b, t) = (b as u128, t as u128);
                    assert!(a + s <= b || b + t <= a);
                }
            }
        }
        crate::cover!(result.is_ok(), "three images accepted");
        crate::cover!(matches!(result, Err((2, RangeProblem::Overlaps(0)))), "the last image overlaps the first");
        crate::cover!(matches!(result, Err((_, RangeProblem::OverlapsReserved(0)))), "an image over the hypervisor");
    }
}
