//! The supervisor lets go of the host program's read-only pages.
//!
//! The supervisor is a fork of the host: its page tables map every page of code and read-only
//! data the host touched before the fork (with the kernel's fault-around, 16 at a time), 400 to
//! 700 pages of which it runs a small part. Unmapping them is work its exit would otherwise do,
//! after the run, while the caller waits for its status (measured in docs/overhead.md). Done
//! once hardened, while the script runs, it costs the caller nothing; a page the supervisor
//! needs again is mapped again from the page cache on its next touch.
//!
//! Only pages that cannot hold anything of the process's own are released: the loaded segments
//! (`PT_LOAD`) that are not writable, of objects without text relocations, rounded inward to
//! whole pages. Writable segments (data, bss, and RELRO, which lies in the writable segment)
//! hold relocated pointers and state that `MADV_DONTNEED` would reset to the file's bytes.

use std::ops::Range;

/// One loaded segment as the dynamic loader reports it: its address range once loaded and
/// whether it is mapped writable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    pub(crate) start: usize,
    pub(crate) length: usize,
    pub(crate) writable: bool,
}

/// The whole pages of `segments` that may be released: those of segments that are not writable.
pub(crate) fn releasable(segments: &[Segment], page: usize) -> Vec<Range<usize>> {
    segments
        .iter()
        .filter(|segment| !segment.writable)
        .filter_map(|segment| {
            let start = segment.start.checked_add(page - 1)? & !(page - 1);
            let end = segment.start.checked_add(segment.length)? & !(page - 1);
            (end > start).then_some(start..end)
        })
        .collect()
}

/// Releases the read-only pages of every loaded object but the vDSO. Best effort: an object
/// the loader cannot describe, or a range the kernel refuses, stays mapped as it was.
pub(crate) fn release() {
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let mut segments = Vec::new();
    // SAFETY: the callback only reads the loader's description of each object for the length
    // of the call and pushes into the vector `data` points to, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(collect), (&mut segments as *mut Vec<Segment>).cast()) };
    for range in releasable(&segments, page) {
        // SAFETY: the range is whole pages of a read-only, file-backed segment: the kernel
        // drops their mappings and maps the file's unchanged bytes again on the next access.
        unsafe { libc::madvise(range.start as *mut libc::c_void, range.end - range.start, libc::MADV_DONTNEED) };
    }
}

/// `dl_iterate_phdr`'s callback: the loaded segments of one object, unless it is the vDSO or
/// has text relocations.
unsafe extern "C" fn collect(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: the loader passes a valid description for the call, and `data` is the vector
    // `release` passed.
    let (info, segments) = unsafe { (&*info, &mut *data.cast::<Vec<Segment>>()) };
    // SAFETY: getauxval has no preconditions.
    let vdso = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) } as usize;
    if info.dlpi_phdr.is_null() || (vdso != 0 && info.dlpi_addr as usize == vdso) {
        return 0;
    }
    // SAFETY: the loader's program header table of this object has `dlpi_phnum` entries.
    let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
    let base = info.dlpi_addr as usize;
    // SAFETY: as above; the dynamic section, when there is one, is mapped at its address.
    if unsafe { has_text_relocations(headers, base) } {
        return 0;
    }
    segments.extend(headers.iter().filter(|header| header.p_type == libc::PT_LOAD).map(|header| Segment {
        start: base.wrapping_add(header.p_vaddr as usize),
        length: header.p_memsz as usize,
        writable: header.p_flags & libc::PF_W != 0,
    }));
    0
}

const DT_NULL: u64 = 0;
const DT_TEXTREL: u64 = 22;
const DT_FLAGS: u64 = 30;
const DF_TEXTREL: u64 = 0x4;

/// Whether the object's dynamic section asks for text relocations (its "read-only" pages were
/// then written by the loader).
///
/// # Safety
/// `headers` are the object's program headers and `base` its load address, as the loader
/// reports them for a loaded object.
unsafe fn has_text_relocations(headers: &[libc::Elf64_Phdr], base: usize) -> bool {
    let Some(dynamic) = headers.iter().find(|header| header.p_type == libc::PT_DYNAMIC) else {
        return false;
    };
    let mut entry = base.wrapping_add(dynamic.p_vaddr as usize) as *const [u64; 2];
    loop {
        // SAFETY: the dynamic section is mapped and ends with a DT_NULL entry.
        let [tag, value] = unsafe { entry.read() };
        match tag {
            DT_NULL => return false,
            DT_TEXTREL => return true,
            DT_FLAGS if value & DF_TEXTREL != 0 => return true,
            _ => {}
        }
        // SAFETY: not past the DT_NULL entry, which ends the section.
        entry = unsafe { entry.add(1) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = 4096;

    #[test]
    fn only_whole_pages_of_read_only_segments_are_released() {
        let segments = [
            Segment { start: 0x40_0000, length: 0x2345, writable: false },
            Segment { start: 0x40_3000, length: 0x1_0800, writable: false },
            Segment { start: 0x41_4000, length: 0x3000, writable: true },
            Segment { start: 0x41_7010, length: 0x100, writable: false },
        ];
        assert_eq!(releasable(&segments, PAGE), vec![0x40_0000..0x40_2000, 0x40_3000..0x41_3000]);
    }

    #[test]
    fn the_loaded_objects_of_this_test_have_read_only_segments_to_release() {
        let mut segments: Vec<Segment> = Vec::new();
        // SAFETY: as in `release`.
        unsafe { libc::dl_iterate_phdr(Some(collect), (&mut segments as *mut Vec<Segment>).cast()) };
        assert!(segments.iter().any(|segment| segment.writable), "{segments:?}");
        assert!(!releasable(&segments, PAGE).is_empty(), "{segments:?}");
    }
}
