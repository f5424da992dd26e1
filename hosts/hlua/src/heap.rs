//! Lua's heap: the allocation function of hlua's Lua state, in place of mlua's.
//!
//! mlua's function counts the bytes Lua asks for, refuses a block beyond its limit (Lua then
//! collects garbage and raises "not enough memory"), and ends the process when the allocator
//! itself fails (Rust's allocation-error handler aborts). Every block costs the allocator more
//! than Lua asked for (a header, and rounding to its alignment), so a script of many small
//! objects reached the kernel's data limit long before mlua's count reached its own, and the run
//! ended in an abort instead of Lua's error. This function counts what each block costs the
//! allocator, and answers a failed allocation with NULL as well, so that either limit ends in
//! Lua's own memory error (exit 2).

use std::alloc::Layout;
use std::ffi::c_void;

use mlua::{ffi, Lua};

/// The alignment every block has (what mlua allocates with, so that a block it allocated before
/// [`install`] is freed here with the layout it was made with).
const ALIGN: usize = ffi::SYS_MIN_ALIGN;

/// The allocator's cost of a block of `size` bytes, at most: dlmalloc keeps a word before every
/// block, rounds to 16 bytes and makes no chunk smaller than 32.
fn footprint(size: usize) -> usize {
    size.saturating_add(std::mem::size_of::<usize>()).next_multiple_of(16).max(32)
}

/// The state the allocation function keeps: what the live blocks cost, and how much they may.
struct Heap {
    used: usize,
    limit: usize,
}

/// Makes `lua` allocate through [`allocate`], its blocks costing at most `limit` bytes.
pub fn install(lua: &Lua, limit: usize) -> mlua::Result<()> {
    // mlua runs its own Lua calls protected against memory errors only while a limit is set;
    // its limit is never reached once its allocation function is replaced.
    lua.set_memory_limit(usize::MAX / 2)?;
    // The blocks made so far (the state and the standard library), as mlua counted them.
    let heap = Box::new(Heap { used: lua.used_memory(), limit });
    // The state's allocation function is called until the state is closed, when the process
    // ends: the heap's record lives as long.
    let heap: *mut Heap = Box::leak(heap);
    // SAFETY: `lua_setallocf` only stores the function and its data in the state; `allocate`
    // frees and resizes every block made before with the layout mlua made it with (`ALIGN`,
    // the size Lua passes), through the same global allocator, and `heap` stays valid.
    unsafe { lua.exec_raw::<()>((), |state| ffi::lua_setallocf(state, allocate, heap.cast())) }
}

/// Lua's allocation function (`lua_Alloc`): frees (`new_size` 0), allocates (`block` NULL: then
/// `old_size` is the kind of object, not a size) or resizes a block; NULL when the block would
/// exceed the heap's limit or the allocator has no memory left, which Lua turns into its
/// "not enough memory" error after a full collection.
unsafe extern "C" fn allocate(data: *mut c_void, block: *mut c_void, old_size: usize, new_size: usize) -> *mut c_void {
    // SAFETY: `data` is the `Heap` that `install` leaked, used by this state alone (one thread).
    let heap = unsafe { &mut *data.cast::<Heap>() };
    let old_cost = if block.is_null() { 0 } else { footprint(old_size) };
    if new_size == 0 {
        if !block.is_null() {
            // SAFETY: Lua frees a block it allocated through this function or mlua's, both
            // with `Layout(old_size, ALIGN)` from the global allocator.
            unsafe { std::alloc::dealloc(block.cast(), Layout::from_size_align_unchecked(old_size, ALIGN)) };
            heap.used = heap.used.saturating_sub(old_cost);
        }
        return std::ptr::null_mut();
    }
    let new_cost = footprint(new_size);
    let used = heap.used.saturating_sub(old_cost).saturating_add(new_cost);
    if new_cost > old_cost && used > heap.limit {
        return std::ptr::null_mut();
    }
    let Ok(new_layout) = Layout::from_size_align(new_size, ALIGN) else { return std::ptr::null_mut() };
    let moved = if block.is_null() {
        // SAFETY: a layout of non-zero size.
        unsafe { std::alloc::alloc(new_layout) }
    } else {
        // SAFETY: `block` was allocated with `Layout(old_size, ALIGN)` (above), and `new_size`,
        // non-zero, makes a valid layout with that alignment.
        unsafe { std::alloc::realloc(block.cast(), Layout::from_size_align_unchecked(old_size, ALIGN), new_size) }
    };
    if !moved.is_null() {
        heap.used = used;
    }
    moved.cast()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_costs_its_header_and_rounding() {
        assert_eq!(footprint(1), 32);
        assert_eq!(footprint(24), 32);
        assert_eq!(footprint(25), 48);
        assert_eq!(footprint(56), 64);
        assert_eq!(footprint(1 << 20), (1 << 20) + 16);
    }

    /// The limit is on what the blocks cost the allocator, not on what Lua asked for: 1000
    /// blocks of 24 bytes cost 32 each, and the next one is refused.
    #[test]
    fn the_limit_counts_what_blocks_cost() {
        let mut heap = Heap { used: 0, limit: 32_000 };
        let data: *mut c_void = std::ptr::addr_of_mut!(heap).cast();
        let mut blocks = Vec::new();
        for _ in 0..1000 {
            // SAFETY: a new block (NULL), with the heap above as data.
            let block = unsafe { allocate(data, std::ptr::null_mut(), 0, 24) };
            assert!(!block.is_null());
            blocks.push(block);
        }
        // SAFETY: as above.
        assert!(unsafe { allocate(data, std::ptr::null_mut(), 0, 24) }.is_null(), "past the limit");
        for block in blocks {
            // SAFETY: each block was made above with 24 bytes.
            unsafe { allocate(data, block, 24, 0) };
        }
        assert_eq!(heap.used, 0, "every block freed");
    }

    /// Many small objects stop at the heap's limit with Lua's error, and the state goes on.
    #[test]
    fn small_objects_end_in_luas_memory_error() {
        let lua = Lua::new();
        install(&lua, 8 << 20).unwrap();
        let error = lua.load("local t = {} for i = 1, 1e7 do t[i] = {i} end").exec().unwrap_err();
        assert!(matches!(error, mlua::Error::MemoryError(_)), "{error}");
        assert_eq!(lua.load("return 1 + 1").eval::<i32>().unwrap(), 2);
    }
}
