//! The render_tile job of the mandelbrot example: one rectangular tile of the image.
//!
//! The image shows the whole set: real parts from -2.5 to 1.0 across its width, and the
//! same scale vertically, centred on the real axis.

/// Iterations after which a point is taken to be in the set.
pub const MAX_ITERATIONS: u32 = 500;

/// The number of iterations before `c = re + im·i` escapes the radius-2 disc, or
/// [`MAX_ITERATIONS`] if it never does.
pub fn escape_time(re: f64, im: f64) -> u32 {
    let (mut x, mut y) = (0.0f64, 0.0f64);
    for n in 0..MAX_ITERATIONS {
        if x * x + y * y > 4.0 {
            return n;
        }
        (x, y) = (x * x - y * y + re, 2.0 * x * y + im);
    }
    MAX_ITERATIONS
}

/// Grey levels, row by row, of the `w`×`h` tile at (`x0`, `y0`) of a `width`×`height`
/// image: black inside the set, brighter the slower a point escapes.
#[wasp_guest::job]
pub fn render_tile(x0: u32, y0: u32, w: u32, h: u32, width: u32, height: u32) -> Vec<u8> {
    let scale = 3.5 / f64::from(width);
    let mut pixels = Vec::with_capacity((w * h) as usize);
    for y in y0..y0 + h {
        let im = (f64::from(y) - f64::from(height) / 2.0) * scale;
        for x in x0..x0 + w {
            let n = escape_time(-2.5 + f64::from(x) * scale, im);
            let level = if n == MAX_ITERATIONS {
                0.0
            } else {
                f64::from(n).ln_1p() / f64::from(MAX_ITERATIONS).ln_1p() * 255.0
            };
            pixels.push(level as u8);
        }
    }
    pixels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_inside_and_outside_the_set() {
        assert_eq!(escape_time(0.0, 0.0), MAX_ITERATIONS);
        assert_eq!(escape_time(-1.0, 0.0), MAX_ITERATIONS);
        assert_eq!(escape_time(1.0, 1.0), 2);
    }

    #[test]
    fn tiles_have_one_byte_per_pixel_and_black_centres() {
        let tile = render_tile(0, 0, 8, 4, 64, 48);
        assert_eq!(tile.len(), 32);
        // The image's centre row at x = 32 is c = -0.75, inside the set.
        assert_eq!(render_tile(32, 24, 1, 1, 64, 48), [0]);
        // Its top-left corner, c = -2.5 - 1.3125i, escapes at once.
        assert!(tile[0] > 0);
    }
}
