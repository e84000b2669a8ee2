//! The Mandelbrot set rendered tile by tile on every core with `map`, saved as a PNG.
//!
//! Run with `cargo run --release -p wasp-examples --bin mandelbrot [OUTPUT.png]`.

use std::fs::File;
use std::io::BufWriter;
use std::time::Instant;
use wasp::{Module, Server};

const WIDTH: u32 = 1024;
const HEIGHT: u32 = 768;
const TILE: u32 = 128;

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "mandelbrot.png".into());
    let server = Server::new()?;
    println!("Starting wasp with {} workers", server.workers());
    let module = Module::from_bytes(wasp_examples::MANDELBROT)?;
    let start = Instant::now();

    // One job per tile: (x0, y0, w, h) of the tile, then the size of the whole image.
    let tiles: Vec<_> = (0..HEIGHT)
        .step_by(TILE as usize)
        .flat_map(|y0| (0..WIDTH).step_by(TILE as usize).map(move |x0| (x0, y0)))
        .map(|(x0, y0)| (x0, y0, TILE.min(WIDTH - x0), TILE.min(HEIGHT - y0)))
        .collect();
    let inputs = tiles
        .iter()
        .map(|&(x0, y0, w, h)| (x0, y0, w, h, WIDTH, HEIGHT));

    // Results come back in input order, so each can be placed beside its tile.
    let mut image = vec![0u8; (WIDTH * HEIGHT) as usize];
    for (&(x0, y0, w, _), pixels) in tiles.iter().zip(server.map(&module, "render_tile", inputs)) {
        let pixels: Vec<u8> = pixels?;
        for (row, line) in pixels.chunks_exact(w as usize).enumerate() {
            let at = ((y0 + row as u32) * WIDTH + x0) as usize;
            image[at..at + line.len()].copy_from_slice(line);
        }
    }
    println!(
        "Rendered {} tiles in {:.3} s",
        tiles.len(),
        start.elapsed().as_secs_f64()
    );

    let mut encoder = png::Encoder::new(BufWriter::new(File::create(&path)?), WIDTH, HEIGHT);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header()?.write_image_data(&image)?;
    println!("Wrote {path}");

    println!("Time elapsed: {:.3} s", start.elapsed().as_secs_f64());
    server.print_stats();
    Ok(())
}
