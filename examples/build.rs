//! Builds the example guest modules for wasm32-wasip1, so the example programs can embed
//! them (`include_bytes!`) and run with no setup.

use std::path::Path;

fn main() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = examples
        .parent()
        .expect("examples/ is in the workspace root");
    let guests = [
        ("sum-primes-guest", examples.join("guests/sum-primes")),
        ("mandelbrot-guest", examples.join("guests/mandelbrot")),
        ("pi-guest", examples.join("guests/pi")),
        ("trivial-guest", examples.join("guests/trivial")),
        ("data-guest", examples.join("guests/data")),
        ("data-variant-guest", examples.join("guests/data-variant")),
    ];
    let guests: Vec<_> = guests
        .iter()
        .map(|(name, dir)| (*name, dir.as_path()))
        .collect();
    if let Err(err) = wasp_guest_build::embed_guests(workspace, &guests) {
        panic!("building the example guest modules failed: {err}");
    }
}
