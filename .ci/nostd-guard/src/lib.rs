//! A `no_std` staticlib that uses dht-proto's API. If anything in its dependency graph links
//! `std`, the duplicate `panic_impl` lang item fails this build (E0152).
#![no_std]

use core::alloc::{GlobalAlloc, Layout};

struct NoAlloc;

// SAFETY: never hands out memory; returning null is the documented failure signal.
unsafe impl GlobalAlloc for NoAlloc {
    unsafe fn alloc(&self, _layout: Layout) -> *mut u8 {
        core::ptr::null_mut()
    }
    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

#[global_allocator]
static ALLOC: NoAlloc = NoAlloc;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

/// Uses the public API so that it is compiled and linked in.
#[unsafe(no_mangle)]
pub extern "C" fn nostd_guard_entry(byte: u8) -> u64 {
    let id = dht_proto::Id::new([byte; 20]);
    let config = dht_proto::Config::new([byte; 32]);
    let ok = config.validate().is_ok();
    let t = dht_proto::Instant::from_millis(u64::from(byte));
    id.distance(&dht_proto::Id::ZERO).leading_zeros() as u64 + t.as_millis() + u64::from(ok)
}
