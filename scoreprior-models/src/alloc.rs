//! Allocator tuning for dfdx workloads. dfdx allocates a fresh buffer for every op's output
//! and gradient; glibc's malloc serves buffers above `M_MMAP_THRESHOLD` (128 KiB at start)
//! with `mmap` and unmaps them on free, so every network pass page-faults its whole working
//! set again and the kernel's fault handling and TLB shootdowns dominate (measured on the
//! main job, 6 DPI steps on 2 cores: 4.5 s of system time in 14.2 s wall; with the tuning
//! below 0.28 s in 4.2 s). Keeping freed memory in the heap for reuse removes them.
//!
//! mimalloc was tried as the global allocator instead and measured slower here (8.9 s wall,
//! 1.3 s system): it too returns large spans to the OS.

use std::sync::Once;

static TUNED: Once = Once::new();

/// Makes glibc's malloc keep freed memory for reuse: large buffers come from the heap
/// instead of fresh `mmap`s and the heap is not trimmed back. The process then holds its
/// peak working set. Idempotent; called by [`crate::score::NcsnppScore::new`], the
/// `scoreprior` binary and the benches. A no-op on other platforms.
///
/// ```
/// scoreprior_models::alloc::retain_freed_memory();
/// ```
pub fn retain_freed_memory() {
    TUNED.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only changes allocator parameters; it is called once, before
        // the workload, and glibc documents it as safe to call at any time.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
            libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
            libc::mallopt(libc::M_TOP_PAD, 64 << 20);
        }
    });
}
