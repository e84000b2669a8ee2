#[wasp_guest::job(name = "other")]
fn original(x: u32) -> u32 {
    x + 1
}

fn main() {
    // The function keeps its own name; only the export is renamed.
    assert_eq!(original(1), 2);
}
