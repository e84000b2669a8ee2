#[wasp_guest::job]
async fn job(x: u32) -> u32 {
    x
}

fn main() {}
