#[wasp_guest::job(name = "a-b")]
fn job(x: u32) -> u32 {
    x
}

fn main() {}
