//! The sandbox: the locked-down WASI context, the host calls that may not block, and the
//! resource limiter.
//!
//! Design note: a wasm32-wasip2 Rust guest imports WASI through `std` even when it uses none
//! of it, so Sluice links `wasmtime-wasi` with a context that gives nothing ([`wasi_ctx`]): no
//! preopened directories, environment, arguments or network, stdin empty, stdout discarded and
//! stderr captured per call (`super::stderr`), clocks fixed at zero and randomness from a fixed seed, so the same input always
//! gives the same output. The functions that can wait are replaced ([`forbid_waiting`]) by
//! ones that trap with [`WouldBlock`], since the CPU deadline cannot fire inside a host call.
//!
//! [`SandboxLimiter`] is the store's `ResourceLimiter`: it caps linear memory at the
//! transform's `memory_bytes` and table growth at [`MAX_TABLE_ELEMENTS`], and a growth past a
//! cap fails with a typed [`LimitExceeded`], which both travels in the trap (found again with
//! `downcast_ref`) and stays recorded in the limiter, so that a trap is classified by type and
//! never by matching its text. It also gives the structure limits (memories, tables, core
//! instances), which wasmtime checks at instantiation.

use std::time::Duration;

use wasmtime::component::{Linker, Resource};
use wasmtime::ResourceLimiter;
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::WasiCtx;

use super::{HostState, MAX_CORE_INSTANCES, MAX_MEMORIES, MAX_TABLES, MAX_TABLE_ELEMENTS};

/// The WIT package version of the WASI interfaces that `wasmtime-wasi` defines (its
/// `src/p2/wit/deps`); guests importing any 0.2.x version link against them. Check it when
/// upgrading wasmtime: with another version, [`forbid_waiting`] would define new instances
/// instead of replacing the blocking functions (`tests/all/sandbox.rs` would hang on `sleep`).
const WASI_VERSION: &str = "0.2.12";

struct FixedClock;

impl wasmtime_wasi::HostWallClock for FixedClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for FixedClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// Why a host call refused to block; the guest traps with this error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tried to wait ({what}), and a transform may not block: its CPU deadline cannot stop it inside the host. Remove the sleep or wait from the transform")]
pub struct WouldBlock {
    what: &'static str,
}

/// Replaces the WASI functions that can wait (timers, `poll`, `block`) with ones that never do.
pub(super) fn forbid_waiting(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    use wasmtime_wasi::p2::bindings::sync::io::poll::HostPollable;
    linker.allow_shadowing(true);
    {
        let mut clock = linker.instance(&format!("wasi:clocks/monotonic-clock@{WASI_VERSION}"))?;
        clock.func_wrap(
            "subscribe-duration",
            |_, (_,): (u64,)| -> wasmtime::Result<(Resource<DynPollable>,)> {
                Err(WouldBlock {
                    what: "a timer: wasi:clocks subscribe-duration, as std::thread::sleep uses",
                }
                .into())
            },
        )?;
        clock.func_wrap(
            "subscribe-instant",
            |_, (_,): (u64,)| -> wasmtime::Result<(Resource<DynPollable>,)> {
                Err(WouldBlock {
                    what: "a timer: wasi:clocks subscribe-instant",
                }
                .into())
            },
        )?;
    }
    {
        let mut poll = linker.instance(&format!("wasi:io/poll@{WASI_VERSION}"))?;
        poll.func_wrap(
            "poll",
            |mut store, (list,): (Vec<Resource<DynPollable>>,)| -> wasmtime::Result<(Vec<u32>,)> {
                let table = &mut store.data_mut().table;
                let mut ready = Vec::new();
                for (i, p) in list.into_iter().enumerate() {
                    if HostPollable::ready(table, p)? {
                        ready.push(i as u32);
                    }
                }
                if ready.is_empty() {
                    return Err(WouldBlock {
                        what: "wasi:io/poll poll, with nothing ready",
                    }
                    .into());
                }
                Ok((ready,))
            },
        )?;
        poll.func_wrap(
            "[method]pollable.block",
            |mut store, (p,): (Resource<DynPollable>,)| -> wasmtime::Result<()> {
                if HostPollable::ready(&mut store.data_mut().table, p)? {
                    Ok(())
                } else {
                    Err(WouldBlock {
                        what: "wasi:io/poll pollable.block, on something not ready",
                    }
                    .into())
                }
            },
        )?;
    }
    linker.allow_shadowing(false);
    Ok(())
}

/// The fixed seed of the sandbox's randomness.
const SEED: u64 = 0x0051_1CE0;

/// The WASI context of every instance: it gives nothing (see the module's design note) but a
/// stderr that the host reads after each call.
pub(super) fn wasi_ctx(stderr: super::StderrCapture) -> WasiCtx {
    use rand::SeedableRng;
    let mut b = WasiCtx::builder();
    b.stderr(stderr)
        .wall_clock(FixedClock)
        .monotonic_clock(FixedClock)
        .secure_random(rand::rngs::StdRng::seed_from_u64(SEED))
        .insecure_random(rand::rngs::StdRng::seed_from_u64(SEED))
        .insecure_random_seed(u128::from(SEED))
        .allow_ip_name_lookup(false)
        .allow_tcp(false)
        .allow_udp(false);
    b.build()
}

/// A sandbox limit a guest ran into. The growth that broke it fails with this error, so the
/// guest traps with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    #[error("exceeded its memory cap of {} MiB", cap >> 20)]
    Memory {
        /// The cap in bytes: `memory_bytes`, or the memory's own maximum when that is lower.
        cap: usize,
        /// The size the guest asked for, in bytes.
        desired: usize,
    },
    #[error(
        "could not grow its memory to {} MiB within its cap of {} MiB ({reason})",
        desired >> 20,
        cap >> 20
    )]
    MemoryGrowFailed {
        cap: usize,
        desired: usize,
        reason: String,
    },
    #[error("grew a table to {desired} elements, past the sandbox's {max}")]
    TableElements { max: usize, desired: usize },
}

/// The store's resource limiter (see the module's design note).
#[derive(Debug)]
pub(crate) struct SandboxLimiter {
    memory_bytes: usize,
    /// The size of the memory growth in progress (for [`LimitExceeded::MemoryGrowFailed`]).
    growing: usize,
    /// The limit the current call broke, if any.
    exceeded: Option<LimitExceeded>,
}

impl SandboxLimiter {
    /// Linear memory capped at `memory_bytes` in all.
    pub(crate) fn new(memory_bytes: usize) -> Self {
        SandboxLimiter {
            memory_bytes,
            growing: 0,
            exceeded: None,
        }
    }

    /// The limit broken since the last [`SandboxLimiter::take`], which forgets it.
    pub(crate) fn take(&mut self) -> Option<LimitExceeded> {
        self.exceeded.take()
    }

    /// Records `limit` and makes it the trap's error.
    fn exceed(&mut self, limit: LimitExceeded) -> wasmtime::Error {
        self.exceeded = Some(limit.clone());
        wasmtime::Error::new(limit)
    }
}

impl ResourceLimiter for SandboxLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let cap = maximum.map_or(self.memory_bytes, |m| m.min(self.memory_bytes));
        if desired > cap {
            return Err(self.exceed(LimitExceeded::Memory { cap, desired }));
        }
        self.growing = desired;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(self.exceed(LimitExceeded::MemoryGrowFailed {
            cap: self.memory_bytes,
            desired: self.growing,
            reason: format!("{error:#}"),
        }))
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let max = maximum.map_or(MAX_TABLE_ELEMENTS, |m| m.min(MAX_TABLE_ELEMENTS));
        if desired > max {
            return Err(self.exceed(LimitExceeded::TableElements { max, desired }));
        }
        Ok(true)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error.context("growing a table failed"))
    }

    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES as usize
    }

    fn tables(&self) -> usize {
        MAX_TABLES as usize
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_growth_past_a_cap_fails_with_a_typed_error_that_is_also_recorded() {
        let mut l = SandboxLimiter::new(16 << 20);
        assert!(l.memory_growing(0, 8 << 20, None).unwrap());
        assert!(l.memory_growing(0, 4 << 20, Some(1 << 30)).unwrap());
        assert_eq!(l.take(), None);
        // Past the cap: the error is typed (a trap carries it) and the limiter remembers it.
        let e = l.memory_growing(8 << 20, 32 << 20, None).unwrap_err();
        let want = LimitExceeded::Memory {
            cap: 16 << 20,
            desired: 32 << 20,
        };
        assert_eq!(e.downcast_ref::<LimitExceeded>(), Some(&want));
        // Found through the context wasmtime adds on the way out, too.
        let wrapped = e.context("wasm backtrace");
        assert_eq!(wrapped.downcast_ref::<LimitExceeded>(), Some(&want));
        assert_eq!(want.to_string(), "exceeded its memory cap of 16 MiB");
        assert_eq!(l.take(), Some(want));
        assert_eq!(l.take(), None, "taken once");
        // The memory's own maximum is the cap when it is lower.
        let e = l.memory_growing(0, 2 << 20, Some(1 << 20)).unwrap_err();
        assert!(matches!(
            e.downcast_ref::<LimitExceeded>(),
            Some(LimitExceeded::Memory { cap, .. }) if *cap == 1 << 20
        ));
        // Tables: the sandbox's element limit.
        assert!(l.table_growing(0, MAX_TABLE_ELEMENTS, None).unwrap());
        let e = l
            .table_growing(0, MAX_TABLE_ELEMENTS + 1, None)
            .unwrap_err();
        assert!(matches!(
            e.downcast_ref::<LimitExceeded>(),
            Some(LimitExceeded::TableElements { .. })
        ));
        assert_eq!(
            (l.instances(), l.tables(), l.memories()),
            (
                MAX_CORE_INSTANCES as usize,
                MAX_TABLES as usize,
                MAX_MEMORIES as usize
            )
        );
    }
}
