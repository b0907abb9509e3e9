//! Memory bombs (issue 11, finding 4): the reader checks the declared size against a limit
//! before allocating, and a file that holds fewer bytes than its header declares is refused
//! before the full buffer is allocated. The largest single allocation made on the reading
//! thread is measured by a counting allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::Command;

use dicyc_volume::nifti_io::{
    parse_byte_count, read_volume, read_volume_with, ReadLimits, DEFAULT_MAX_VOLUME_BYTES,
    MAX_VOLUME_BYTES_ENV,
};
use dicyc_volume::testing::{f32_bytes, gzip, RawNifti};

/// The system allocator, noting the largest single allocation of each thread.
struct Counting;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

// A test-only allocator that delegates every call to `System` unchanged.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded as is to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded as is to the system allocator.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: forwarded as is to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The result of `f` and the largest single allocation it made.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    let r = f();
    (r, LARGEST.with(Cell::get))
}

fn tmpdir(name: &str) -> PathBuf {
    dicyc_volume::testing::scratch_dir("nifti-limits", name)
}

fn error_text(r: anyhow::Result<dicyc_volume::Volume>, p: &Path) -> String {
    let Err(e) = r else {
        panic!("{} was read although it is invalid", p.display())
    };
    let e = format!("{e:#}");
    assert!(e.contains(&p.display().to_string()), "no file name: {e}");
    e
}

const MIB: usize = 1 << 20;

/// A 1 MB file declaring 1024³ float32 voxels (4 GiB) aborted the process with "memory
/// allocation of 4294967296 bytes failed".
#[test]
fn a_volume_declared_over_the_limit_is_refused_before_allocating() {
    let d = tmpdir("bomb");
    let h = RawNifti::float32([1024, 1024, 1024]);
    let bytes = h.file_bytes(&vec![0u8; MIB]);
    for (name, content) in [("bomb.nii", bytes.clone()), ("bomb.nii.gz", gzip(&bytes))] {
        let p = d.join(name);
        std::fs::write(&p, content).unwrap();
        let (r, largest) = largest_allocation(|| read_volume(&p));
        let e = error_text(r, &p);
        for w in [
            "1024×1024×1024 float32",
            "4.0 GiB",
            "limit of 2.0 GiB",
            MAX_VOLUME_BYTES_ENV,
        ] {
            assert!(e.contains(w), "no `{w}` in: {e}");
        }
        assert!(
            largest < 32 * MIB,
            "{name}: allocated {largest} bytes at once"
        );
    }
    std::fs::remove_dir_all(&d).unwrap();
}

/// Under the limit but far more than the file holds: refused before the declared 1 GiB is
/// allocated (plain: from the file size; gzip: the buffer grows only as data arrive).
#[test]
fn a_short_file_is_found_before_the_full_buffer_is_allocated() {
    let d = tmpdir("short");
    let h = RawNifti::float32([512, 512, 1024]);
    let bytes = h.file_bytes(&vec![0u8; MIB]);
    for (name, content) in [("short.nii", bytes.clone()), ("short.nii.gz", gzip(&bytes))] {
        let p = d.join(name);
        std::fs::write(&p, content).unwrap();
        let (r, largest) = largest_allocation(|| read_volume(&p));
        let e = error_text(r, &p);
        for w in ["512×512×1024 float32", "1073741824", "truncated"] {
            assert!(e.contains(w), "no `{w}` in: {e}");
        }
        assert!(
            largest < 32 * MIB,
            "{name}: allocated {largest} bytes at once"
        );
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn the_limit_counts_the_float32_volume_and_the_extensions() {
    let d = tmpdir("limits");
    let limits = ReadLimits {
        max_volume_bytes: 1000,
    };
    let write = |name: &str, h: &RawNifti, data: &[u8]| {
        let p = d.join(name);
        std::fs::write(&p, h.file_bytes(data)).unwrap();
        p
    };
    // 240 float32 bytes: fine under 1000, refused under 200.
    let small = RawNifti::float32([5, 4, 3]);
    let p = write("small.nii", &small, &f32_bytes(&[1.5; 60], false));
    assert_eq!(read_volume_with(&p, &limits).unwrap().dim(), (5, 4, 3));
    let e = error_text(
        read_volume_with(
            &p,
            &ReadLimits {
                max_volume_bytes: 200,
            },
        ),
        &p,
    );
    assert!(e.contains("limit of 200 B"), "{e}");
    // 300 uint8 voxels are 300 file bytes but 1200 bytes as float32: refused.
    let mut u8h = RawNifti::float32([10, 10, 3]);
    u8h.datatype = 2;
    u8h.bitpix = 8;
    let p = write("u8.nii", &u8h, &[7u8; 300]);
    let e = error_text(read_volume_with(&p, &limits), &p);
    assert!(e.contains("10×10×3 uint8") && e.contains("1.2 KiB"), "{e}");
    assert_eq!(read_volume(&p).unwrap().data[[9, 9, 2]], 7.0);
    // 100 float64 voxels are 800 bytes: fine; 150 are 1200: refused.
    let mut f64h = RawNifti::float32([10, 10, 1]);
    f64h.datatype = 64;
    f64h.bitpix = 64;
    let p = write("f64.nii", &f64h, &[0u8; 800]);
    assert!(read_volume_with(&p, &limits).is_ok());
    f64h.dim[3] = 2;
    let p = write("f64b.nii", &f64h, &[0u8; 1600]);
    assert!(error_text(read_volume_with(&p, &limits), &p).contains("float64"));
    // More extension bytes before vox_offset than the limit: refused.
    let mut ext = RawNifti::float32([2, 2, 1]);
    ext.vox_offset = 352.0 + 2048.0;
    let p = write("ext.nii", &ext, &f32_bytes(&[0.0; 4], false));
    assert!(read_volume(&p).is_ok());
    let e = error_text(read_volume_with(&p, &limits), &p);
    assert!(
        e.contains("vox_offset = 2400") && e.contains("extensions"),
        "{e}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn byte_counts_parse_with_binary_suffixes() {
    assert_eq!(DEFAULT_MAX_VOLUME_BYTES, 2 << 30);
    assert_eq!(ReadLimits::default().max_volume_bytes, 2 << 30);
    for (text, want) in [
        ("4294967296", 4u64 << 30),
        ("4G", 4 << 30),
        ("4gib", 4 << 30),
        ("512M", 512 << 20),
        (" 8 GB ", 8 << 30),
        ("100k", 100 << 10),
        ("1T", 1 << 40),
        ("123B", 123),
    ] {
        assert_eq!(parse_byte_count(text).unwrap(), want, "{text}");
    }
    for bad in ["", "abc", "4X", "0", "-5", "1.5G", "99999999999T"] {
        assert!(parse_byte_count(bad).is_err(), "{bad:?} accepted");
    }
}

/// `DICYC_MAX_VOLUME_BYTES` is read by `read_volume`; checked in a child process so that no
/// other test sees the variable.
#[test]
fn the_environment_variable_sets_the_limit() {
    const CHILD: &str = "DICYC_NIFTI_LIMITS_CHILD";
    if let Some(dir) = std::env::var_os(CHILD) {
        let p = PathBuf::from(dir).join("v.nii");
        let r = read_volume(&p);
        match std::env::var(MAX_VOLUME_BYTES_ENV).unwrap().as_str() {
            "1K" => {
                assert!(r.is_ok(), "{:#}", r.unwrap_err());
            }
            "100" => {
                let e = error_text(r, &p);
                assert!(e.contains("limit of 100 B"), "{e}");
            }
            _ => {
                let e = format!("{:#}", r.unwrap_err());
                assert!(
                    e.contains(MAX_VOLUME_BYTES_ENV) && e.contains("lots"),
                    "{e}"
                );
            }
        }
        return;
    }
    let d = tmpdir("env");
    let h = RawNifti::float32([5, 4, 3]);
    std::fs::write(d.join("v.nii"), h.file_bytes(&f32_bytes(&[2.0; 60], false))).unwrap();
    for value in ["1K", "100", "lots"] {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "the_environment_variable_sets_the_limit",
                "--nocapture",
            ])
            .env(CHILD, &d)
            .env(MAX_VOLUME_BYTES_ENV, value)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{value}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "the child ran no test"
        );
    }
    std::fs::remove_dir_all(&d).unwrap();
}
