#[wasp_guest::job]
fn job(text: &str) -> usize {
    text.len()
}

fn main() {}
