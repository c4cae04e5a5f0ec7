//! Hostile sizes never become allocations: a number the reader was only told (a length inside
//! a frame body, a tar header's size field) must not make it reserve more than the limit of what
//! it reads. Both cases were found by the fuzz targets (fuzz/README.md); this binary installs an
//! allocator that records the largest single allocation of the current thread, so each test
//! measures its own allocations while the others run in parallel.

use sandbox_proto::bundle::{self, BundleError};
use sandbox_proto::protocol::{
    self, BundleFile, FrameError, FromChild, LoadBundle, OutputLimits, ToChild,
    MAX_FRAME_FROM_CHILD, MAX_FRAME_TO_CHILD,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;

thread_local! {
    // const-initialised and without Drop: reading it from the allocator never allocates.
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

struct Recording;

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

// SAFETY: every method forwards to `System` with its arguments unchanged; the bookkeeping
// touches only a thread-local Cell.
unsafe impl GlobalAlloc for Recording {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded as received.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded as received.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: `ptr` and `layout` come from System, through this allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` and `layout` come from System, through this allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Recording = Recording;

/// The largest single allocation `f` made on this thread.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    let out = f();
    (out, LARGEST.with(Cell::get))
}

/// The fuzz target `frame_from_child` found a 12-byte body whose string claimed ~11 MB: the
/// supervisor allocated it (the decoder ran with the 40 MiB limit of the other direction) before
/// the read failed.
#[test]
fn a_length_inside_a_childs_frame_is_bounded_by_the_childs_frame_limit() {
    for claim in [MAX_FRAME_FROM_CHILD as u32 + 1, 11 << 20, 40 << 20] {
        // Log, level Info, then a string of `claim` bytes (varint tag 0xfc: a u32 follows).
        let mut body = vec![3u8, 0, 0xfc];
        body.extend_from_slice(&claim.to_le_bytes());
        let (r, largest) = largest_allocation(|| protocol::decode_body::<FromChild>(&body));
        assert!(matches!(r, Err(FrameError::Malformed(_))), "{r:?}");
        assert!(
            largest <= MAX_FRAME_FROM_CHILD,
            "a {}-byte body claiming {claim} bytes allocated {largest} bytes",
            body.len()
        );
    }
}

/// The other direction keeps its own, larger limit: a bundle bigger than a child's frame limit
/// still reaches the child.
#[test]
fn frames_to_a_child_keep_their_larger_limit() {
    let msg = ToChild::LoadBundle(LoadBundle {
        sha256: "0".repeat(64),
        entry: "function.js".into(),
        files: vec![BundleFile {
            path: "function.js".into(),
            contents: vec![b' '; MAX_FRAME_FROM_CHILD + 1],
        }],
        memory_limit_bytes: 64 << 20,
        limits: OutputLimits::default(),
        env: Vec::new(),
        bytecode: None,
        want_bytecode: false,
    });
    let frame = protocol::encode(&msg).expect("encodes");
    let back: ToChild = protocol::read_frame(&mut &frame[..], MAX_FRAME_TO_CHILD).expect("decodes");
    assert_eq!(back, msg);
}

/// The fuzz target `bundle_tar` found a 2476-byte archive whose header claimed a 204801-byte
/// file: the parser reserved the claimed size before reading.
#[test]
fn a_tar_size_field_is_bounded_by_the_archive() {
    let mut files = BTreeMap::new();
    files.insert(
        "manifest.json".to_string(),
        br#"{"schema":"cs.function.script.v1"}"#.to_vec(),
    );
    files.insert(
        "function.js".to_string(),
        b"export default () => 1".to_vec(),
    );
    let mut tar = bundle::pack(&files).expect("packs");
    // The first entry (function.js) now claims 16 MiB - 1 bytes, just within the bundle limit;
    // its checksum is fixed so the header itself is valid.
    tar[124..136].copy_from_slice(b"00077777777\0");
    tar[148..156].copy_from_slice(b"        ");
    let sum: u32 = tar[..512].iter().map(|&b| u32::from(b)).sum();
    tar[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());

    let (r, largest) = largest_allocation(|| bundle::parse_tar(&tar));
    assert!(matches!(r, Err(BundleError::Bundle(_))), "{r:?}");
    assert!(
        largest <= 2 * tar.len(),
        "a {}-byte archive made the parser allocate {largest} bytes at once",
        tar.len()
    );
}
