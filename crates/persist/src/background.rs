//! How background work (snapshots, full-sync encoders) yields the CPU to the server.
//!
//! A snapshot or a replica's RDB encoding runs on a thread of its own beside the
//! server's threads. Clients' latency comes first: the thread lowers its own
//! priority before it starts. Linux only; elsewhere (and when a call fails) the
//! thread keeps normal priority.

/// Nice value of background threads (0 = normal, 19 = lowest).
pub const BACKGROUND_NICE: i32 = 10;

/// The scheduler slice asked for a background thread (EEVDF, Linux 6.12+), in ns.
pub const BACKGROUND_SLICE_NS: u64 = 100_000;

/// Lowers the calling thread's scheduling priority: nice [`BACKGROUND_NICE`], and on
/// kernels with EEVDF custom slices a slice of [`BACKGROUND_SLICE_NS`]. Best effort.
pub fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    linux::lower(std::env::var("REDSNAP_BG_SCHED").ok().as_deref());
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
    const SCHED_IDLE: u32 = 5;

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

    pub(super) fn lower(mode: Option<&str>) {
        let base = SchedAttr {
            size: std::mem::size_of::<SchedAttr>() as u32,
            sched_policy: SCHED_OTHER,
            sched_nice: BACKGROUND_NICE,
            ..SchedAttr::default()
        };
        let ok = match mode {
            Some("nice") => nice(),
            Some("idle") => setattr(&SchedAttr {
                sched_policy: SCHED_IDLE,
                sched_nice: 0,
                ..base
            }),
            _ => {
                setattr(&SchedAttr {
                    sched_runtime: BACKGROUND_SLICE_NS,
                    ..base
                }) || nice()
            }
        };
        if !ok {
            tracing::debug!("could not lower a background thread's priority");
        }
    }
}
