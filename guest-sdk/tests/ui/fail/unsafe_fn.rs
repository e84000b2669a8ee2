#[wasp_guest::job]
unsafe fn job(x: u32) -> u32 {
    x
}

fn main() {}
