#[wasp_guest::job(name = "a", name = "b")]
fn job(x: u32) -> u32 {
    x
}

fn main() {}
