#[wasp_guest::job(foo = "x")]
fn job(x: u32) -> u32 {
    x
}

fn main() {}
