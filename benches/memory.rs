//! Memory (issue #16): what each stage of a first load keeps per app, counted by the
//! allocator (bytes asked for and blocks live), so a change to how objects, indexes or the
//! table are held shows in bytes that do not wobble with the machine. N apps as in the scale
//! bench (each an Ingress with its own host and two paths, a Service and an EndpointSlice
//! with two endpoints), one file per object.
//!
//!   cargo bench --bench memory                       # 10k apps
//!   MEMORY_APPS=100000 cargo bench --bench memory
//!
//! Bytes here are what the program asked for; the process's RSS adds the allocator's size
//! classes and free pages (the scale bench measures that).

#[path = "support/apps.rs"]
mod apps;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use vestibule::model::incremental::{Change, Model};
use vestibule::source::files::ManifestDir;

struct Counting;

static BYTES: AtomicUsize = AtomicUsize::new(0);
static BLOCKS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; only counts are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        BYTES.fetch_add(layout.size(), Relaxed);
        BLOCKS.fetch_add(1, Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        BYTES.fetch_sub(layout.size(), Relaxed);
        BLOCKS.fetch_sub(1, Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        BYTES.fetch_add(new_size, Relaxed);
        BYTES.fetch_sub(layout.size(), Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Live bytes and blocks now.
fn live() -> (usize, usize) {
    (BYTES.load(Relaxed), BLOCKS.load(Relaxed))
}

fn main() {
    // `cargo test --benches` runs benches without --bench: keep that quick.
    let apps: usize = match std::env::args().any(|a| a == "--bench") {
        true => std::env::var("MEMORY_APPS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(10_000),
        false => 100,
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let put = |name: &str, object: serde_json::Value| {
        let text = serde_json::to_string(&object).expect("json");
        std::fs::write(dir.path().join(format!("{name}.json")), text).expect("write");
    };
    put("class", apps::class());
    for i in 0..apps {
        put(&format!("ingress-{i}"), apps::ingress(i, &apps::host(i)));
        put(&format!("service-{i}"), apps::service(i, "http"));
        put(&format!("slice-{i}"), apps::slice(i, 8080));
    }

    let per_app = |now: usize, then: usize| (now as f64 - then as f64) / apps as f64;
    let mut rows: Vec<(&str, (usize, usize))> = Vec::new();
    let start = live();
    let mut manifests = ManifestDir::settling_for(std::time::Duration::from_secs(1));
    let read = manifests.reload(dir.path()).expect("read");
    let changes: Vec<Change> = read
        .changed
        .iter()
        .map(|r| Change::Put(manifests.current(r).expect("read object")))
        .collect();
    drop(read);
    rows.push(("objects and the manifest dir", live()));
    let mut model = Model::new(vestibule::model::Options::default());
    let recorded = model.record(changes);
    rows.push(("the model's store", live()));
    let (built, _) = model.rebuild(recorded);
    assert_eq!(built.table.routes().len(), 2 * apps, "every route built");
    rows.push(("table and index (full build)", live()));

    println!("{apps} apps: live memory per app after each stage of a first load");
    let mut before = start;
    for (stage, now) in &rows {
        println!(
            "  {stage:<30} {:>+7.0} B  {:>+6.1} blocks",
            per_app(now.0, before.0),
            per_app(now.1, before.1)
        );
        before = *now;
    }
    println!(
        "  {:<30} {:>7.0} B  {:>6.1} blocks",
        "in all",
        per_app(before.0, start.0),
        per_app(before.1, start.1)
    );
}
