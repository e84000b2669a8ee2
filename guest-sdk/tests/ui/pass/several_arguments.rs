#[wasp_guest::job]
fn describe(name: String, count: u32, scale: f64, flags: Vec<bool>) -> String {
    format!("{name}: {count} x {scale} ({} flags)", flags.len())
}

fn main() {
    let _ = describe;
}
