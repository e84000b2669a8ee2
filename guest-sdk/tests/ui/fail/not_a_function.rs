#[wasp_guest::job]
struct Job {
    x: u32,
}

fn main() {}
