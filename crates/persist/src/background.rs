//! How background work (snapshots, full-sync encoders) yields the CPU to the server.
//!
//! A snapshot or a replica's RDB encoding runs on a thread of its own beside the
//! server's threads. Clients' latency comes first: the thread lowers its own
//! priority before it starts. Linux only; elsewhere (and when a call fails) the
//! thread keeps normal priority.

/// Nice value of background threads (0 = normal, 19 = lowest).
pub const BACKGROUND_NICE: i32 = 10;

/// The scheduler slice asked for a background thread (EEVDF, Linux 6.12+), in ns: a
/// server thread that wakes waits at most this long for a core the background
/// thread holds (the default slice is about 3 ms; 1.4 ms on this machine). Older
/// kernels ignore it and keep only the nice value.
pub const BACKGROUND_SLICE_NS: u64 = 100_000;

/// Lowers the calling thread's scheduling priority: nice [`BACKGROUND_NICE`], and on
/// kernels with EEVDF custom slices a slice of [`BACKGROUND_SLICE_NS`]. Best effort.
pub fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    linux::lower();
}

#[cfg(target_os = "linux")]
mod linux {
    use super::{BACKGROUND_NICE, BACKGROUND_SLICE_NS};

    /// `struct sched_attr` of sched_setattr(2) (SCHED_ATTR_SIZE_VER1).
    #[repr(C)]
    #[derive(Default)]
    struct SchedAttr {
        size: u32,
        sched_policy: u32,
        sched_flags: u64,
        sched_nice: i32,
        sched_priority: u32,
        sched_runtime: u64,
        sched_deadline: u64,
        sched_period: u64,
        sched_util_min: u32,
        sched_util_max: u32,
    }

    const SCHED_OTHER: u32 = 0;

    fn setattr(attr: &SchedAttr) -> bool {
        // SAFETY: sched_setattr on the calling thread (pid 0) with a fully initialised
        // `sched_attr` whose `size` field is the struct's size; the kernel only reads it.
        unsafe {
            libc::syscall(
                libc::SYS_sched_setattr,
                0 as libc::pid_t,
                attr as *const SchedAttr,
                0 as libc::c_uint,
            ) == 0
        }
    }

    fn nice() -> bool {
        // SAFETY: plain syscalls on the calling thread's own id.
        unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, BACKGROUND_NICE) == 0
        }
    }

    pub(super) fn lower() {
        let attr = SchedAttr {
            size: std::mem::size_of::<SchedAttr>() as u32,
            sched_policy: SCHED_OTHER,
            sched_nice: BACKGROUND_NICE,
            sched_runtime: BACKGROUND_SLICE_NS,
            ..SchedAttr::default()
        };
        // Kernels without sched_setattr (before 3.14) or that refuse the slice: nice.
        let ok = setattr(&attr) || nice();
        if !ok {
            tracing::debug!("could not lower a background thread's priority");
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    /// The nice value of the calling thread, from /proc (field 19 of its stat line).
    fn own_nice() -> i64 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        after_name.split(' ').nth(16).unwrap().parse().unwrap()
    }

    #[test]
    fn a_background_thread_runs_at_the_background_nice_value() {
        let mine = own_nice();
        let after = std::thread::spawn(|| {
            super::lower_thread_priority();
            own_nice()
        })
        .join()
        .unwrap();
        // At least the background value (a process started at a lower priority
        // than that keeps it).
        assert!(after >= i64::from(super::BACKGROUND_NICE), "nice {after}");
        assert!(after > mine || mine >= i64::from(super::BACKGROUND_NICE));
        // The calling thread is untouched (nice is per thread on Linux).
        assert_eq!(own_nice(), mine);
    }
}
