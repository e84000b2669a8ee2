#[wasp_guest::job(name = 3)]
fn job(x: u32) -> u32 {
    x
}

fn main() {}
